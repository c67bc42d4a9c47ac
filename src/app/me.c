/*
 * The signed-in user's own account: read it, rename it, change its
 * email address or password, delete it.  Every change asks for the
 * current password, and a wrong one answers 422 naming the field and
 * counts toward the login throttle (per email and address, and per
 * address), so these endpoints cannot be used to guess a password.
 */
#include <string.h>

#include "app/app.h"

static struct sql q_me = SQL(
    "SELECT " USER_COLUMNS ", "
    "DATE_FORMAT(u.trial_ends_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "u.trial_started_at IS NULL, "
    "tg_credits(u.id, ?), "
    "s.plan, s.status, "
    "DATE_FORMAT(s.current_period_end, '%Y-%m-%dT%H:%i:%sZ'), s.id "
    "FROM users u LEFT JOIN subscriptions s ON s.id = (SELECT s2.id "
    "FROM subscriptions s2 WHERE s2.user_id = u.id AND "
    "s2.deleted_at IS NULL ORDER BY s2.stripe_updated DESC, "
    "s2.created_at DESC LIMIT 1) WHERE u.id = ?");
static struct sql q_rename = SQL(
    "UPDATE users SET name = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_email_used = SQL(
    "SELECT 1 FROM users WHERE email_lc = ? AND id <> ?");
/* The other admins, locked, so two last admins cannot both leave. */
static struct sql q_other_admins = SQL(
    "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL "
    "AND id <> ? FOR UPDATE");
static struct sql q_role = SQL(
    "SELECT role FROM users WHERE id = ? FOR UPDATE");
static struct sql q_exists = SQL(
    "SELECT 1 FROM users WHERE id = ?");

/* A change of the account, run by db_tx_run (maybe more than once). */
struct me_tx {
	struct req	*r;
	const char	*uid, *email, *cur, *keep, *hash;
	bool		 taken, last_admin;
	int		 sent;
};

/*
 * Answers a failed check of the current password given in field (422
 * naming field, 429 while the login throttle holds, 503).
 */
static void
reply_password_check(struct req *r, const char *field, int rc, long retry)
{
	if (rc == ME_THROTTLED)
		reply_throttled(r, retry);
	else if (rc == ME_WRONG)
		reply_invalid1(r, field, "is wrong");
	else
		reply_db(r, rc);
}

/*
 * Checks the caller's current password, given in field.  Returns 1 when
 * it is right; otherwise answers (422 naming field, 429 while the login
 * throttle holds, 503) and returns 0.
 */
static int
check_password(struct req *r, const char *field)
{
	long	 retry;
	int	 rc;

	if ((rc = me_password_check(r, r->who.user_id, r->who.email,
	    in_str(r, field), &retry)) == 0)
		return 1;
	reply_password_check(r, field, rc, retry);
	return 0;
}

/*
 * GET /api/v1/me (a login or an API key): 200 {user, trial: {ends_at,
 * credits_remaining}, subscription: {plan, status, current_period_end}
 * or null}; 503.  Before the trial starts (at verification) ends_at is
 * null.  credits_remaining is every credit the user can spend now (the
 * number /api/v1/usage reports; before verification, what the trial
 * will bring).
 */
void
h_me_get(struct req *r)
{
	struct dbrows		 row;
	struct json_object	*o, *t, *s;
	const size_t		 c = 7;	/* the columns after USER_COLUMNS */
	int			 rc;

	if ((rc = db_select(r->a, &q_me, &row, "is", cfg.trial_credits,
	    r->who.user_id)) <= 0) {
		/* Deleted between the credential check and now. */
		if (rc == 0)
			reply_unauth(r, "unauthenticated", "The credential "
			    "is not valid.");
		else
			reply_db(r, rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user_json_row(&row, 0, 0));
	t = json_object_new_object();
	json_object_object_add(t, "ends_at", jstr_or_null(dbv(&row, 0, c)));
	json_object_object_add(t, "credits_remaining",
	    json_object_new_int64(dbi(&row, 0, c + 2)));
	json_object_object_add(o, "trial", t);
	s = NULL;
	if (dbv(&row, 0, c + 6) != NULL) {
		s = json_object_new_object();
		json_object_object_add(s, "plan",
		    jstr_or_null(dbv(&row, 0, c + 3)));
		json_object_object_add(s, "status",
		    json_object_new_string(dbv(&row, 0, c + 4)));
		json_object_object_add(s, "current_period_end",
		    jstr_or_null(dbv(&row, 0, c + 5)));
	}
	json_object_object_add(o, "subscription", s);
	reply_json(r, 200, o);
}

/* The core of PATCH /api/v1/me: uid's name set.  Returns 0 or DB_*. */
int
me_rename_core(struct req *r, const char *uid, const char *name)
{
	int	 rc;

	(void)r;
	if ((rc = db_exec(&q_rename, "ss", name, uid)) < 0)
		return rc;
	return 0;
}

/* PATCH /api/v1/me {name}: 200 {user}; 422; 503. */
void
h_me_patch(struct req *r)
{
	struct json_object	*o, *user = NULL;
	int			 rc;

	if ((rc = me_rename_core(r, r->who.user_id, in_str(r, "name"))) < 0 ||
	    (rc = user_json(r, r->who.user_id, &user)) <= 0) {
		reply_db(r, rc == 0 ? DB_FAIL : rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	reply_json(r, 200, o);
}

static int
email_body(void *v)
{
	struct me_tx	*t = v;
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, t->email), *tok;
	int		 rc;

	t->taken = false;
	if ((rc = db_select(r->a, &q_email_used, &row, "ss", email_lc,
	    t->uid)) < 0)
		return rc;
	if (rc > 0) {
		t->taken = true;
		return DB_ABORT;
	}
	if ((t->sent = mail_allowed(r, email_lc)) <= 0)
		return t->sent;
	if ((tok = onetime_token(r, "email_change", t->uid, t->email,
	    24 * 60, &rc)) == NULL ||
	    (rc = mail_email_change(r, t->uid, t->email, tok)) < 0 ||
	    (rc = mail_email_change_notice(r, t->uid, t->cur, t->email)) < 0)
		return rc;
	return 0;
}

/*
 * The core of POST /api/v1/me/email: user uid (whose address is cur)
 * asks to move to email, proving it with the current password pw.  A
 * verification link goes to the new address and a notice to the old
 * one, both unless the new address has had its [limits] mail_per_hour.
 * Returns 0, ME_THROTTLED (*retry) or ME_WRONG for the password, ME_SAME
 * when email is cur, ME_TAKEN when another account has it, or a DB_*
 * code.
 */
int
me_email_core(struct req *r, const char *uid, const char *cur,
    const char *email, const char *pw, long *retry)
{
	struct me_tx	 t;
	int		 rc;

	if ((rc = me_password_check(r, uid, cur, pw, retry)) != 0)
		return rc;
	if (strcmp(email, cur) == 0)
		return ME_SAME;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	t.cur = cur;
	t.email = email;
	if ((rc = db_tx_run(email_body, NULL, &t, DB_TX_TRIES)) < 0)
		return rc == DB_ABORT && t.taken ? ME_TAKEN : rc;
	log_info("email_change_asked", " user=%s sent=%d", uid, t.sent);
	return 0;
}

/*
 * POST /api/v1/me/email {email, password}: 202, a verification link
 * goes to the new address (the change takes effect when it is followed)
 * and a notice to the old one, both unless the new address has had its
 * [limits] mail_per_hour; 409 email_taken; 422 (password: wrong; email:
 * the current one); 429 while the login throttle holds; 503.
 */
void
h_me_email(struct req *r)
{
	struct json_object	*o;
	long			 retry;
	int			 rc;

	rc = me_email_core(r, r->who.user_id, r->who.email,
	    in_str(r, "email"), in_str(r, "password"), &retry);
	if (rc == ME_SAME) {
		reply_invalid1(r, "email", "is already your email address");
		return;
	}
	if (rc == ME_TAKEN) {
		reply_error(r, 409, "email_taken", "Another account uses this "
		    "email address.");
		return;
	}
	if (rc != 0) {
		reply_password_check(r, "password", rc, retry);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "message", json_object_new_string("A link "
	    "to confirm the new address is on its way to it; the change "
	    "takes effect when it is opened."));
	reply_json(r, 202, o);
}

static int
password_body(void *v)
{
	struct me_tx	*t = v;
	int		 rc;

	if ((rc = password_set(t->uid, t->hash)) < 0 ||
	    (rc = sessions_revoke_all(t->uid, t->keep,
	    "password_change")) < 0 ||
	    (rc = account_links_spend(t->r, t->uid)) < 0 ||
	    (rc = mail_security_notice(t->r, t->uid, t->email, "The "
	    "password of your {product} account was changed, and every other "
	    "session of it was signed out.")) < 0)
		return rc;
	return 0;
}

/* After a lost COMMIT answer: is the new password (its hash) there? */
static int
password_committed(void *v)
{
	struct me_tx	*t = v;

	return password_is(t->r, t->uid, t->hash);
}

/*
 * The core of POST /api/v1/me/password: user uid (address email) proves
 * the current password cur and sets pw; every session but keep_session
 * (NULL: none kept) revoked, every open one-time link (verification,
 * email change, reset, magic link) and a pending second-factor
 * enrolment spent, a notice mailed.
 * Returns 0, ME_THROTTLED (*retry) or ME_WRONG for the current
 * password, or a DB_* code.
 */
int
me_password_core(struct req *r, const char *uid, const char *email,
    const char *keep_session, const char *cur, const char *pw, long *retry)
{
	struct me_tx	 t;
	const char	*hash;
	int		 rc;

	if ((rc = me_password_check(r, uid, email, cur, retry)) != 0)
		return rc;
	if ((hash = password_hash(r->a, pw)) == NULL)
		return password_busy() ? TG_BUSY : DB_FAIL;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	t.email = email;
	t.keep = keep_session;
	t.hash = hash;
	if ((rc = db_tx_run(password_body, password_committed, &t,
	    DB_TX_TRIES)) < 0)
		return rc;
	log_info("password_changed", " user=%s", uid);
	return 0;
}

/*
 * POST /api/v1/me/password {current_password, new_password}: 204, the
 * other sessions revoked and a notice mailed; 422 (current_password:
 * wrong; new_password: too short or long); 429 while the login
 * throttle holds; 503.
 */
void
h_me_password(struct req *r)
{
	long	 retry;
	int	 rc;

	if ((rc = me_password_core(r, r->who.user_id, r->who.email,
	    r->who.session_id, in_str(r, "current_password"),
	    in_str(r, "new_password"), &retry)) != 0) {
		reply_password_check(r, "current_password", rc, retry);
		return;
	}
	reply_empty(r, 204);
}

static int
delete_body(void *v)
{
	struct me_tx	*t = v;
	struct req	*r = t->r;
	struct dbrows	 row;
	int		 rc;

	t->last_admin = false;
	if ((rc = db_select(r->a, &q_role, &row, "s", t->uid)) < 0)
		return rc;
	if (rc == 1 && strcmp(dbv(&row, 0, 0), "admin") == 0) {
		if ((rc = db_select(r->a, &q_other_admins, &row, "s",
		    t->uid)) < 0)
			return rc;
		if (rc == 0) {
			t->last_admin = true;
			return DB_ABORT;
		}
	}
	/*
	 * The Stripe subscription's cancellation is queued in this
	 * transaction, so a Stripe outage cannot lose it.  The subscription
	 * rows stay, with user_id set to NULL by the foreign key.
	 */
	if ((rc = billing_cancel_for_user(r, t->uid)) < 0 ||
	    (rc = audit(r, "user.delete", t->uid, "self")) < 0 ||
	    (rc = mail_account_deleted(r, t->uid, t->email)) < 0 ||
	    (rc = user_delete(t->uid)) < 0)
		return rc;
	return 0;
}

/* After a lost COMMIT answer: is the account gone? */
static int
delete_committed(void *v)
{
	struct me_tx	*t = v;
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(t->r->a, &q_exists, &row, "s", t->uid)) < 0)
		return rc;
	return rc == 0 ? 1 : 0;
}

/*
 * DELETE /api/v1/me {password}: 204, the account and everything it owns
 * (keys, sessions, tokens, balances) deleted, a last mail sent; 409
 * last_admin; 422 (password: wrong); 429 while the login throttle
 * holds; 503.
 */
void
h_me_delete(struct req *r)
{
	struct me_tx	 t;
	int		 rc;

	if (!check_password(r, "password"))
		return;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = r->who.user_id;
	t.email = r->who.email;
	if ((rc = db_tx_run(delete_body, delete_committed, &t,
	    DB_TX_TRIES)) < 0) {
		if (rc == DB_ABORT && t.last_admin)
			reply_error(r, 409, "last_admin", "The last admin "
			    "cannot delete their account.");
		else
			reply_db(r, rc);
		return;
	}
	log_info("account_deleted", " user=%s", r->who.user_id);
	if (r->who.kind == WHO_COOKIE)
		session_clear_cookie(r);
	reply_empty(r, 204);
}
