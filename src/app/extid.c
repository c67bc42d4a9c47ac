/*
 * Accounts of people who prove who they are to another identity service:
 * GitHub, an OpenID Connect provider ([oidc NAME]) or a trusted token
 * issuer ([trust NAME]) (contract section 3, "More ways in").  The one
 * core of the GitHub and OpenID callbacks and of a trusted token's first
 * sight.
 *
 * A (provider, subject) pair names one account: a GitHub id is kept in
 * users.github_id (and github_login), any other subject in external_ids.
 * The first time a subject is seen: the account already linked to it
 * signs in; else the account with the same address, when the provider
 * vouches for it (a verified email claim), is linked (taking over one
 * whose address was never verified: whatever was made for it goes
 * first, account_takeover); else the guest that started the sign-in is
 * claimed (guest_claim); else an account is made, verified, with its
 * trial.  One account holds at most one subject per provider.
 *
 * One trial per person: besides the address (account_verified), the
 * subject has a trial history of its own (trial_history kind `github`
 * with the id, kind `oidc` with "provider|sub" for OpenID and trusted
 * subjects), so an account deleted and made again through the same
 * subject starts with its trial over.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "app/app.h"

#define HIST_MAX	254	/* trial_history.subject */

static struct sql q_by_subject = SQL(
    "SELECT u.id, u.disabled_at IS NOT NULL, (SELECT t.enabled_at IS NOT "
    "NULL FROM totp_secrets t WHERE t.user_id = u.id) FROM external_ids e "
    "JOIN users u ON u.id = e.user_id WHERE e.provider = ? AND "
    "e.subject = ? FOR UPDATE");
static struct sql q_gh_by_subject = SQL(
    "SELECT u.id, u.disabled_at IS NOT NULL, (SELECT t.enabled_at IS NOT "
    "NULL FROM totp_secrets t WHERE t.user_id = u.id) FROM users u "
    "WHERE u.github_id = ? FOR UPDATE");
static struct sql q_by_email = SQL(
    "SELECT u.id, u.disabled_at IS NOT NULL, (SELECT t.enabled_at IS NOT "
    "NULL FROM totp_secrets t WHERE t.user_id = u.id), "
    "u.email_verified_at IS NOT NULL, (SELECT e.subject FROM external_ids "
    "e WHERE e.user_id = u.id AND e.provider = ?) FROM users u "
    "WHERE u.email_lc = ? FOR UPDATE");
static struct sql q_gh_by_email = SQL(
    "SELECT u.id, u.disabled_at IS NOT NULL, (SELECT t.enabled_at IS NOT "
    "NULL FROM totp_secrets t WHERE t.user_id = u.id), "
    "u.email_verified_at IS NOT NULL, u.github_id FROM users u "
    "WHERE u.email_lc = ? FOR UPDATE");
static struct sql q_link = SQL(
    "INSERT INTO external_ids (provider, subject, user_id) VALUES (?, ?, ?)");
static struct sql q_gh_link = SQL(
    "UPDATE users SET github_id = ?, github_login = ?, "
    "updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_create = SQL(
    "INSERT INTO users (id, email, email_lc, name) VALUES (?, ?, ?, ?)");
/* An account without an address: nothing to prove; its trial starts. */
static struct sql q_verified_no_email = SQL(
    "UPDATE users SET email_verified_at = UTC_TIMESTAMP(6), "
    "trial_started_at = COALESCE(trial_started_at, UTC_TIMESTAMP(6)), "
    "trial_ends_at = COALESCE(trial_ends_at, UTC_TIMESTAMP(6) + "
    "INTERVAL ? DAY) WHERE id = ? AND email_verified_at IS NULL");
/* The subject's trial history (kind 'github' or 'oidc'). */
static struct sql q_history = SQL(
    "INSERT IGNORE INTO trial_history (kind, subject, user_id) "
    "VALUES (?, ?, ?)");
static struct sql q_history_undo = SQL(
    "DELETE FROM trial_history WHERE kind = ? AND subject = ? AND "
    "user_id = ?");
/* A trial given to an account counts for the subject linked to it. */
static struct sql q_link_history = SQL(
    "INSERT IGNORE INTO trial_history (kind, subject, user_id) "
    "SELECT ?, ?, id FROM users WHERE id = ? AND "
    "trial_started_at IS NOT NULL");
static struct sql q_trial_over = SQL(
    "UPDATE users SET trial_started_at = UTC_TIMESTAMP(6), "
    "trial_ends_at = UTC_TIMESTAMP(6) WHERE id = ? AND "
    "trial_started_at IS NULL");
static struct sql q_trial_given = SQL(
    "SELECT trial_ends_at > trial_started_at FROM users WHERE id = ?");
/* An ID token's nonce, spent: one ID token, one sign-in. */
static struct sql q_once = SQL(
    "INSERT INTO oidc_replay (nonce_hash, expires_at) VALUES (?, "
    "UTC_TIMESTAMP(6) + INTERVAL 1 DAY)");

static bool
is_github(const struct ext_identity *x)
{
	return strcmp(x->provider, "github") == 0;
}

/* The kind and subject of x's trial history, in the arena. */
static const char *
history_of(struct req *r, const struct ext_identity *x, const char **kind)
{
	unsigned char	 h[crypto_hash_sha256_BYTES];
	char		 hex[2 * sizeof(h) + 1];
	const char	*s;

	if (is_github(x)) {
		*kind = "github";
		return x->subject;
	}
	*kind = "oidc";
	s = arena_printf(r->a, "%s|%s", x->provider, x->subject);
	if (strlen(s) <= HIST_MAX)
		return s;
	/* A long subject: its provider and a hash of it. */
	crypto_hash_sha256(h, (const unsigned char *)x->subject,
	    strlen(x->subject));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return arena_printf(r->a, "%.*s|#%s", (int)(HIST_MAX - 66),
	    x->provider, hex);
}

/* Links x's subject to uid.  Inside the caller's transaction. */
static int
ext_link(struct req *r, const struct ext_identity *x, const char *uid)
{
	if (is_github(x))
		return db_exec(&q_gh_link, "iss", x->github_id, x->login, uid);
	return db_exec(&q_link, "sss", x->provider, x->subject, uid);
}

/*
 * Counts uid as verified: with an address, account_verified (the trial,
 * once per address, and the welcome mail); without one, the trial
 * starts.  The subject's own trial history first: one that had a trial
 * (on another account) starts this account with its trial over, and the
 * subject is recorded only when this account gets a trial.  Inside the
 * caller's transaction; 0 or a DB_* code.
 */
static int
ext_verified(struct req *r, const char *uid, const struct ext_identity *x)
{
	struct dbrows	 row;
	const char	*kind, *hist = history_of(r, x, &kind);
	bool		 fresh;
	int		 rc;

	if ((rc = db_exec(&q_history, "sss", kind, hist, uid)) < 0)
		return rc;
	fresh = rc == 1;
	if (!fresh && ((rc = db_exec(&q_trial_over, "s", uid)) < 0 ||
	    (rc = trial_mail_skip(uid)) < 0))
		return rc;
	if (x->email != NULL)
		rc = account_verified(r, uid);
	else
		rc = db_exec(&q_verified_no_email, "is",
		    (long long)cfg.trial_days, uid);
	if (rc < 0)
		return rc;
	if (fresh) {
		if ((rc = db_select(r->a, &q_trial_given, &row, "s", uid)) < 0)
			return rc;
		if ((rc != 1 || !dbi(&row, 0, 0)) &&
		    (rc = db_exec(&q_history_undo, "sss", kind, hist, uid)) < 0)
			return rc;
	}
	return 0;
}

/*
 * Inside a transaction: finds, links, takes over, claims (x->guest) or
 * makes the account of x.  Returns 0 with the account in *uid and what
 * to do in *what (EXT_SESSION, EXT_TOTP: the second factor first,
 * EXT_DISABLED, EXT_OTHER: the address's account is linked to another
 * subject of this provider), or a DB_* code.
 */
int
ext_account(struct req *r, const struct ext_identity *x, const char **uid,
    int *what)
{
	struct dbrows	 row;
	const char	*email_lc, *kind, *hist;
	const char	*tag = is_github(x) ? "github" : "extid";
	const char	*detail = is_github(x) && x->login != NULL ? x->login :
			    x->provider;
	int		 rc;

	*what = EXT_SESSION;
	if (is_github(x))
		rc = db_select(r->a, &q_gh_by_subject, &row, "i", x->github_id);
	else
		rc = db_select(r->a, &q_by_subject, &row, "ss", x->provider,
		    x->subject);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		*uid = dbv(&row, 0, 0);
		if (dbi(&row, 0, 1))
			*what = EXT_DISABLED;
		else if (dbi(&row, 0, 2))
			*what = EXT_TOTP;
		return 0;
	}
	if (x->email != NULL) {
		email_lc = ascii_lower(r->a, x->email);
		if (is_github(x))
			rc = db_select(r->a, &q_gh_by_email, &row, "s",
			    email_lc);
		else
			rc = db_select(r->a, &q_by_email, &row, "ss",
			    x->provider, email_lc);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			*uid = dbv(&row, 0, 0);
			if (dbv(&row, 0, 4) != NULL) {
				*what = EXT_OTHER;
				return 0;
			}
			if (dbi(&row, 0, 1)) {
				*what = EXT_DISABLED;
				return 0;
			}
			if (dbi(&row, 0, 3)) {
				/* A verified address: the same person. */
				hist = history_of(r, x, &kind);
				if ((rc = ext_link(r, x, *uid)) < 0 ||
				    (rc = db_exec(&q_link_history, "sss", kind,
				    hist, *uid)) < 0 ||
				    (rc = audit(r, arena_printf(r->a, "%s.link",
				    tag), *uid, detail)) < 0)
					return rc;
				if (dbi(&row, 0, 2))
					*what = EXT_TOTP;
				log_info("extid_link", " user=%s provider=%s",
				    *uid, x->provider);
				return 0;
			}
			/* Never verified: the squatter's everything goes. */
			if ((rc = account_takeover(r, *uid, x->provider)) < 0 ||
			    (rc = ext_link(r, x, *uid)) < 0 ||
			    (rc = credit_balance_ensure(*uid)) < 0 ||
			    (rc = ext_verified(r, *uid, x)) < 0 ||
			    (rc = audit(r, arena_printf(r->a, "%s.takeover",
			    tag), *uid, detail)) < 0)
				return rc;
			log_info("extid_takeover", " user=%s provider=%s",
			    *uid, x->provider);
			return 0;
		}
	}
	if (x->guest != NULL) {
		/* The guest that started this sign-in becomes the account. */
		if ((rc = guest_claim(r, x->guest, x->email, x->provider)) < 0)
			return rc;
		if (rc == 1) {
			*uid = x->guest;
			if ((rc = ext_link(r, x, *uid)) < 0 ||
			    (rc = ext_verified(r, *uid, x)) < 0)
				return rc;
			log_info("extid_signup", " user=%s provider=%s guest=1",
			    *uid, x->provider);
			return 0;
		}
	}
	*uid = new_id(r->a);
	if ((rc = db_exec(&q_create, "ssss", *uid, x->email,
	    x->email != NULL ? ascii_lower(r->a, x->email) : NULL,
	    x->name != NULL ? x->name : "")) < 0 ||
	    (rc = credit_balance_ensure(*uid)) < 0 ||
	    (rc = ext_link(r, x, *uid)) < 0 ||
	    (rc = ext_verified(r, *uid, x)) < 0 ||
	    (rc = audit(r, "user.signup", *uid, x->provider)) < 0)
		return rc;
	log_info("extid_signup", " user=%s provider=%s", *uid, x->provider);
	return 0;
}

/* One sign-in's transaction, run by db_tx_run (maybe more than once). */
struct ext_tx {
	struct req			*r;
	const struct ext_identity	*x;
	const char			*session_kind, *once;
	const char			*uid, *sid;
	int				 what;
};

static int
ext_body(void *p)
{
	struct ext_tx	*t = p;
	int		 rc;

	t->uid = t->sid = NULL;
	t->what = EXT_SESSION;
	if (t->once != NULL && (rc = db_exec(&q_once, "s", t->once)) < 0) {
		if (rc != DB_DUP)
			return rc;
		t->what = EXT_REPLAY;
		return DB_ABORT;
	}
	if ((rc = ext_account(t->r, t->x, &t->uid, &t->what)) < 0 ||
	    (t->session_kind != NULL && t->what == EXT_SESSION &&
	    (rc = session_create(t->r, t->uid, t->session_kind, NULL, true,
	    &t->sid)) < 0))
		/* Two first sign-ins at once: the second finds one. */
		return rc == DB_DUP ? DB_RETRY : rc;
	return 0;
}

/*
 * The whole account step of a sign-in by another identity service, in
 * one transaction of its own: once (when not NULL: the hash of an ID
 * token's nonce) is spent, ext_account decides, and with session_kind
 * (NULL: no session, as for a trusted token) an EXT_SESSION outcome gets
 * a session of that kind (*sid; its cookie set on the reply).  Returns 0
 * with *uid and *what (EXT_REPLAY: once was spent already, nothing
 * done), or a DB_* code.
 */
int
ext_signin(struct req *r, const struct ext_identity *x,
    const char *session_kind, const char *once, const char **uid,
    const char **sid, int *what)
{
	struct ext_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.x = x;
	t.session_kind = session_kind;
	t.once = once;
	rc = db_tx_run(ext_body, NULL, &t, DB_TX_TRIES);
	*uid = t.uid;
	if (sid != NULL)
		*sid = t.sid;
	*what = t.what;
	if (rc == DB_ABORT && t.what == EXT_REPLAY)
		return 0;
	return rc < 0 ? rc : 0;
}

/*
 * The verified address of an ID token's or access token's claims: its
 * "email" when "email_verified" is true (a boolean, or the string
 * "true" some providers send) and it is a valid address; else NULL.  In
 * the arena.
 */
const char *
ext_verified_email(struct req *r, struct json_object *claims)
{
	struct json_object	*v;
	const char		*e = json_str_at(claims, "email");
	bool			 ok = false;

	if (e == NULL || valid_email(e, strlen(e)) != NULL)
		return NULL;
	if (json_object_object_get_ex(claims, "email_verified", &v) &&
	    v != NULL)
		ok = json_object_is_type(v, json_type_boolean) ?
		    json_object_get_boolean(v) :
		    json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), "true") == 0;
	return ok ? arena_strdup(r->a, e) : NULL;
}

/* A subject fit to store (1 to 255 bytes of UTF-8 text), or NULL. */
const char *
ext_subject(struct req *r, struct json_object *claims)
{
	const char	*s = json_str_at(claims, "sub");

	if (s == NULL || *s == '\0' || strlen(s) > 255 ||
	    valid_utf8_text(s, strlen(s), 255) != NULL)
		return NULL;
	return arena_strdup(r->a, s);
}

/* The claims' "name" when it is a valid name, else NULL; in the arena. */
const char *
ext_name(struct req *r, struct json_object *claims)
{
	const char	*s = json_str_at(claims, "name");

	return s != NULL && valid_name(s, strlen(s)) == NULL ?
	    arena_strdup(r->a, s) : NULL;
}

/*
 * The checks every external sign-in's callback makes on its state
 * cookie: it was read (opened), and its state is the one the provider
 * sent back; it is used up now (clear), whatever follows; and it has not
 * expired.  Returns 0 to go on, 400 with the page's message in *why, or a
 * DB_* code.
 */
int
ext_state_check(struct req *r, bool opened, const char *state,
    const char *cookie_state, long long expires, void (*clear)(struct req *),
    const char **why)
{
	long long	 now;
	int		 rc;

	if (!opened || state == NULL || cookie_state == NULL ||
	    !ct_streq(state, cookie_state)) {
		*why = "This sign-in could not be matched to your browser (its "
		    "state is missing or wrong). Please start again.";
		return 400;
	}
	if ((rc = db_unix_now(r->a, &now)) < 0)
		return rc;
	clear(r);
	if (now > expires) {
		*why = "This sign-in took too long. Please start again.";
		return 400;
	}
	return 0;
}

/*
 * Ends a GitHub or OpenID sign-in on a page: the message (plain text,
 * escaped here), then the ways on: a link to again (a path) that says
 * again_label when again is not NULL, and the email login.  A 503 asks
 * to come back in 30 seconds.  An HTML answer, never a 500.
 */
void
ext_page(struct req *r, int status, const char *title, const char *message,
    const char *again, const char *again_label)
{
	struct buf	 b;

	buf_init(&b, r->a);
	buf_puts(&b, "<p class=\"error\">");
	buf_html(&b, message);
	buf_puts(&b, "</p>\n<p>");
	if (again != NULL) {
		buf_puts(&b, "<a href=\"");
		buf_html(&b, again);
		buf_puts(&b, "\">");
		buf_html(&b, again_label);
		buf_puts(&b, "</a> · ");
	}
	buf_puts(&b, "<a href=\"/login\">Log in with your email</a></p>\n");
	if (status == 503)
		reply_header(r, "Retry-After", "30");
	reply_html(r, status, title, b.p);
}
