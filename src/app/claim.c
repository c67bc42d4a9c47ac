/*
 * Who holds an account (contract sections 3 and 10).
 *
 * Whoever first proves the mailbox of an account whose email was never
 * verified (a magic link, a password reset, GitHub with that verified
 * email, `tollgatectl admin create`) takes the account over: before it
 * is handed over, everything made for it until then stops working, so
 * somebody who signed up first with another person's address keeps
 * nothing (account_takeover).
 *
 * A password change or reset spends every one-time link of the account
 * that is still open and every half-finished second-factor step
 * (account_links_spend); the pending code step of a browser sign-in is
 * bound to the password it was started under (pending.c), so it dies
 * with it too.
 */
#include <string.h>
#include <strings.h>

#include "app/app.h"

static struct sql q_links_spend = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) "
    "WHERE user_id = ? AND used_at IS NULL");
static struct sql q_drop_keys = SQL("DELETE FROM api_keys WHERE user_id = ?");
static struct sql q_drop_recovery = SQL(
    "DELETE FROM recovery_codes WHERE user_id = ?");
static struct sql q_drop_totp = SQL(
    "DELETE FROM totp_secrets WHERE user_id = ?");
static struct sql q_drop_devices = SQL(
    "DELETE FROM device_codes WHERE user_id = ? AND status <> 'used'");
static struct sql q_drop_password = SQL(
    "UPDATE users SET password_hash = NULL, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_enrolment_drop = SQL(
    "DELETE FROM totp_secrets WHERE user_id = ? AND enabled_at IS NULL");
static struct sql q_keys_of = SQL(
    "SELECT name, preview, DATE_FORMAT(created_at, '%Y-%m-%d') "
    "FROM api_keys WHERE user_id = ? ORDER BY created_at LIMIT 100");

/*
 * Deletes uid's recovery codes and, unless codes_only, its TOTP secret
 * (enrolled or pending).  Returns the secrets deleted (0 or 1) or a
 * DB_* code.
 */
int
second_factor_drop(const char *uid, bool codes_only)
{
	int	 n = 0, rc;

	if (!codes_only && (n = db_exec(&q_drop_totp, "s", uid)) < 0)
		return n;
	if ((rc = db_exec(&q_drop_recovery, "s", uid)) < 0)
		return rc;
	return n;
}

/*
 * Hands the never-verified account uid to whoever proved its mailbox
 * (how: "magic", "reset", "github", "admin_create", for the audit trail):
 * its password, every session (and with them every refresh and access
 * token), every API key, its TOTP enrolment and recovery codes, every
 * open one-time link (a pending email change among them) and every
 * pending device sign-in go.  Runs inside the caller's transaction, which
 * then sets what the new holder brings (a password, a session) and
 * counts the address as verified.  Returns 0 or a DB_* code.
 */
int
account_takeover(struct req *r, const char *uid, const char *how)
{
	int	 rc;

	if ((rc = db_exec(&q_drop_keys, "s", uid)) < 0 ||
	    (rc = db_exec(&q_links_spend, "s", uid)) < 0 ||
	    (rc = second_factor_drop(uid, false)) < 0 ||
	    (rc = db_exec(&q_drop_devices, "s", uid)) < 0 ||
	    (rc = db_exec(&q_drop_password, "s", uid)) < 0 ||
	    (rc = sessions_revoke_all(uid, NULL, "takeover")) < 0 ||
	    (rc = audit(r, "user.takeover", uid, how)) < 0)
		return rc;
	log_info("account_takeover", " user=%s via=%s", uid, how);
	return 0;
}

/*
 * Spends every one-time link of uid that is still open (verification,
 * email change, reset, magic link) and drops a second-factor enrolment
 * that was started but not confirmed: a password change or reset leaves
 * nothing half-finished that was begun under the old password.  Runs
 * inside the caller's transaction.  Returns 0 or a DB_* code.
 */
int
account_links_spend(struct req *r, const char *uid)
{
	int	 rc;

	(void)r;
	if ((rc = db_exec(&q_links_spend, "s", uid)) < 0 ||
	    (rc = db_exec(&q_enrolment_drop, "s", uid)) < 0)
		return rc;
	return 0;
}

/*
 * The lines of a security notice that list uid's API keys (name, public
 * preview, creation day) and say how to revoke them all; "" when the
 * account has none.  In the arena, or NULL with a DB_* code in *rc.
 */
const char *
account_keys_text(struct req *r, const char *uid, int *rc)
{
	struct dbrows	 rows;
	struct buf	 b;
	size_t		 i;

	if ((*rc = db_select(r->a, &q_keys_of, &rows, "s", uid)) < 0)
		return NULL;
	*rc = 0;
	if (rows.n == 0)
		return "";
	buf_init(&b, r->a);
	buf_puts(&b, "\n\nThese API keys of the account still work (a reset "
	    "does not stop them, so that your own services keep running):\n\n");
	for (i = 0; i < rows.n; i++)
		buf_printf(&b, "  %s...  %s  (created %s)\n",
		    dbv(&rows, i, 1), dbv(&rows, i, 0), dbv(&rows, i, 2));
	buf_printf(&b, "\nIf you did not make each of them, revoke them all "
	    "at once on your profile (\"Revoke every key\"):\n\n%s/profile\n\n"
	    "or with DELETE %s/api/v1/api-keys while logged in.",
	    cfg.base_url, cfg.base_url);
	return b.p;
}

/* ------------------------------------------------------------------ */
/* Re-authentication before enrolling a second factor or minting a key. */
/* ------------------------------------------------------------------ */

static struct sql q_session_fresh = SQL(
    "SELECT created_at > UTC_TIMESTAMP(6) - INTERVAL ? SECOND "
    "FROM sessions WHERE id = ?");

/*
 * Whether the caller may make a lasting credential (an API key, a second
 * factor) now: its session signed in within REAUTH_SECONDS, or it gives
 * its current password (password, from the request's body).  A stolen
 * access token of an old session (refreshed for days) cannot mint a key
 * that outlives it.  Returns 0 when it may; REAUTH_NEEDED (no password
 * given), ME_WRONG (counted by the login throttle) or ME_THROTTLED (the
 * seconds to wait in *retry); or a DB_* code.
 */
int
reauth_check(struct req *r, const char *password, long *retry)
{
	struct dbrows	 row;
	int		 rc;

	*retry = 0;
	if (r->who.session_id != NULL) {
		if ((rc = db_select(r->a, &q_session_fresh, &row, "is",
		    (long long)REAUTH_SECONDS, r->who.session_id)) < 0)
			return rc;
		if (rc == 1 && dbi(&row, 0, 0))
			return 0;
	}
	if (password == NULL || *password == '\0')
		return REAUTH_NEEDED;
	return me_password_check(r, r->who.user_id, r->who.email, password,
	    retry);
}

/*
 * Answers a refused reauth_check: 422 naming password (missing or
 * wrong), 429, or the database's failure.
 */
void
reply_reauth(struct req *r, int rc, long retry)
{
	if (rc == REAUTH_NEEDED)
		reply_invalid1(r, "password", "is required: this session "
		    "signed in a while ago, so confirm your current password");
	else if (rc == ME_WRONG)
		reply_invalid1(r, "password", "is wrong");
	else if (rc == ME_THROTTLED)
		reply_throttled(r, retry);
	else
		reply_db(r, rc);
}

/* Every key's revocation, run by db_tx_run (maybe more than once). */
struct revoke_tx {
	struct req	*r;
	const char	*uid;
	int		 n;
};

static int
revoke_all_body(void *v)
{
	struct revoke_tx	*t = v;

	if ((t->n = db_exec(&q_drop_keys, "s", t->uid)) < 0)
		return t->n;
	return audit(t->r, "apikey.revoke_all", t->uid, NULL);
}

/*
 * Revokes every API key of uid at once (after a reset notice says which
 * keys the account has).  Returns the number revoked or a DB_* code.
 */
int
apikeys_revoke_all_core(struct req *r, const char *uid)
{
	struct revoke_tx	 t;
	int			 rc;

	t.r = r;
	t.uid = uid;
	t.n = 0;
	if ((rc = db_tx_run(revoke_all_body, NULL, &t, DB_TX_TRIES)) < 0)
		return rc;
	log_info("apikeys_revoked", " user=%s count=%d", uid, t.n);
	return t.n;
}

/* DELETE /api/v1/api-keys (a login): 204, every key of the caller revoked. */
void
h_apikeys_delete_all(struct req *r)
{
	int	 rc;

	if ((rc = apikeys_revoke_all_core(r, r->who.user_id)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_empty(r, 204);
}

/* ------------------------------------------------------------------ */
/* Guests (section 3, "More ways in"): who presents one, and its claim.  */
/* ------------------------------------------------------------------ */

static struct sql q_guest_session = SQL(
    "SELECT u.id FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id = ? AND s.user_id = ? AND "
    "tg_session_live(s.revoked_at, s.expires_at) AND "
    "u.guest_at IS NOT NULL AND u.email IS NULL AND u.disabled_at IS NULL");
static struct sql q_guest_credits = SQL(
    "SELECT tg_credits(u.id, ?), COALESCE(b.granted, 0) FROM users u "
    "LEFT JOIN credit_balances b ON b.user_id = u.id "
    "WHERE u.id = ? AND u.guest_at IS NOT NULL FOR UPDATE");
static struct sql q_guest_keep_credits = SQL(
    "UPDATE credit_balances SET granted = ?, allowance = 0, "
    "allowance_plan = NULL, allowance_period_start = NULL, "
    "allowance_period_end = NULL, updated_at = UTC_TIMESTAMP(6) "
    "WHERE user_id = ?");
static struct sql q_guest_ledger = SQL(
    "INSERT INTO credit_ledger (id, user_id, kind, delta, balance_after, "
    "reason) VALUES (?, ?, 'grant', ?, ?, 'guest account claimed')");
static struct sql q_guest_claim = SQL(
    "UPDATE users SET email = ?, email_lc = ?, guest_at = NULL, "
    "email_verified_at = NULL, plan_override = IF(plan_override = 'guest', "
    "NULL, plan_override), updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ? AND guest_at IS NOT NULL");

/*
 * The guest that the request's Authorization header names: a live
 * access token of a guest account (never an API key, a cookie or a
 * claimed account).  Returns 1 with its id in *uid (in the arena), 0 when
 * the request presents none, or a DB_* code.
 */
int
guest_of_request(struct req *r, const char **uid)
{
	struct dbrows	 row;
	const char	*cred = req_env(r, "HTTP_AUTHORIZATION");
	const char	*tuid, *sid;
	int		 rc;

	*uid = NULL;
	if (cred == NULL || strncasecmp(cred, "Bearer ", 7) != 0)
		return 0;
	cred += 7;
	while (*cred == ' ')
		cred++;
	if (strncmp(cred, "tg", 2) == 0 ||
	    jwt_check(r->a, cred, &tuid, &sid) != JWT_OK)
		return 0;
	if ((rc = db_select(r->a, &q_guest_session, &row, "ss", sid,
	    tuid)) <= 0)
		return rc;
	*uid = dbv(&row, 0, 0);
	return 1;
}

/*
 * Makes guest uid a full account with the address email (NULL: an
 * account of another identity service that gave none), keeping its
 * id, usage, keys and sessions.  Its credits are kept too: whatever it
 * could still spend becomes granted credits (which never lapse), so the
 * trial that the claim starts (account_verified, called by the caller
 * once the address is proven) grants its own in full.  The address is
 * left unverified: the caller verifies it (magic link, GitHub, OpenID)
 * or mails a verification link (sign-up).  Inside the caller's
 * transaction.  Returns 1, 0 when uid is no guest (any more), or a DB_*
 * code (DB_DUP: the address has an account).
 */
int
guest_claim(struct req *r, const char *uid, const char *email, const char *how)
{
	struct dbrows	 row;
	long long	 total, granted;
	int		 rc;

	if ((rc = db_select(r->a, &q_guest_credits, &row, "is",
	    cfg.trial_credits, uid)) <= 0)
		return rc;
	total = dbi(&row, 0, 0);
	granted = dbi(&row, 0, 1);
	if ((rc = db_exec(&q_guest_claim, "sss", email, email != NULL ?
	    ascii_lower(r->a, email) : NULL, uid)) <= 0)
		return rc;
	if ((rc = db_exec(&q_guest_keep_credits, "is", total, uid)) < 0)
		return rc;
	if (total != granted && (rc = db_exec(&q_guest_ledger, "ssii",
	    new_id(r->a), uid, total - granted, total)) < 0)
		return rc;
	if ((rc = audit(r, "guest.claim", uid, how)) < 0)
		return rc;
	log_info("guest_claim", " user=%s via=%s credits=%lld", uid, how,
	    total);
	return 1;
}
