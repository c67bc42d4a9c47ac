/*
 * Interim cores for the pages: the actions whose JSON handlers (in
 * accounts.c, me.c, and the gate and billing branches) answer inside
 * the handler, so a page cannot call them.  Each mirrors its handler's
 * statements and mail (the mail texts are accounts.c's); when the owner
 * factors the core into a function taking explicit arguments, the page
 * calls that and the copy here goes.  The lead has the list.
 */
#include <string.h>

#include "tollgate.h"

/*
 * A transaction of these cores, run by db_tx_run (so possibly more than
 * once: each body starts from its arguments).  A body returns what it
 * decided (>= 0; the transaction commits) or a DB_* code.
 */
struct itx {
	struct req		*r;
	const char		*uid, *email, *name, *token, *hash, *old;
	long long		 days;
	struct json_object	*out;	/* an object made inside, or NULL */
	int			(*body)(struct itx *);
};

static int
itx_body(void *v)
{
	struct itx	*t = v;

	json_object_put(t->out);
	t->out = NULL;
	return t->body(t);
}

/* Runs t->body; returns its result or a DB_* code (t->out then NULL). */
static int
itx_run(struct itx *t)
{
	int	 rc = db_tx_run(itx_body, NULL, t, DB_TX_TRIES);

	if (rc < 0) {
		json_object_put(t->out);
		t->out = NULL;
	}
	return rc;
}

static struct sql q_user_by_email = SQL(
    "SELECT id, email FROM users WHERE email_lc = ?");
static struct sql q_use_token = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) WHERE token_hash = ? "
    "AND kind = ? AND used_at IS NULL AND expires_at > UTC_TIMESTAMP(6)");
static struct sql q_token_user = SQL(
    "SELECT t.user_id, u.email FROM tokens t JOIN users u ON u.id = "
    "t.user_id WHERE t.token_hash = ?");
static struct sql q_tokens_kill = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND "
    "kind IN ('reset', 'magic') AND used_at IS NULL");
static struct sql q_set_password = SQL(
    "UPDATE users SET password_hash = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
/*
 * The core of POST /api/v1/auth/password/forgot (accounts.c answers
 * inside its handler; asked the lead to factor it): a reset link to the
 * account of email, if any and under the hourly mail limit.  Returns 0
 * or a DB_* code.
 */
static int
forgot_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, t->email), *tok;
	int		 rc, allowed;

	if ((allowed = mail_allowed(r, email_lc)) < 0)
		return allowed;
	if ((rc = db_select(r->a, &q_user_by_email, &row, "s", email_lc)) < 0)
		return rc;
	if (rc == 1 && allowed &&
	    ((tok = onetime_token(r, "reset", dbv(&row, 0, 0),
	    dbv(&row, 0, 1), 60, &rc)) == NULL ||
	    (rc = mail_reset(r, dbv(&row, 0, 0), dbv(&row, 0, 1), tok)) < 0))
		return rc;
	return 0;
}

int
interim_password_forgot(struct req *r, const char *email)
{
	struct itx	 t = { .r = r, .email = email, .body = forgot_body };

	return itx_run(&t);
}

/*
 * The core of POST /api/v1/auth/password/reset: the new password set,
 * the other mailed tokens spent, every session revoked, the address
 * verified (which starts the trial), a notice mailed.  Returns 1, 0 for
 * a token unknown, used or expired, or a DB_* code.
 */
static int
reset_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*h = token_hash(r->a, t->token), *uid;
	int		 rc;

	if ((rc = db_exec(&q_use_token, "ss", h, "reset")) <= 0 ||
	    (rc = db_select(r->a, &q_token_user, &row, "s", h)) <= 0)
		return rc;
	uid = dbv(&row, 0, 0);
	if ((rc = db_exec(&q_set_password, "ss", t->hash, uid)) < 0 ||
	    (rc = db_exec(&q_tokens_kill, "s", uid)) < 0 ||
	    (rc = sessions_revoke_all(uid, NULL, "password_reset")) < 0 ||
	    (rc = account_verified(r, uid)) < 0 ||
	    (rc = mail_security_notice(r, uid, dbv(&row, 0, 1), "The "
	    "password of your tollgate account was reset, and every session "
	    "of it was signed out.")) < 0)
		return rc;
	t->uid = uid;
	return 1;
}

int
interim_password_reset(struct req *r, const char *token, const char *pw)
{
	struct itx	 t = { .r = r, .token = token, .body = reset_body };
	int		 rc;

	if ((t.hash = password_hash(r->a, pw)) == NULL)
		return DB_FAIL;
	if ((rc = itx_run(&t)) == 1)
		log_info("password_reset", " user=%s via=page", t.uid);
	return rc;
}

static struct sql q_verify_state = SQL(
    "SELECT email, email_lc, email_verified_at IS NOT NULL FROM users "
    "WHERE id = ?");

static int
resend_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*tok;
	int		 rc, allowed;

	if ((rc = db_select(r->a, &q_verify_state, &row, "s", t->uid)) < 0)
		return rc;
	if (rc == 0 || dbi(&row, 0, 2))
		return 0;
	if ((allowed = mail_allowed(r, dbv(&row, 0, 1))) < 0)
		return allowed;
	if (allowed && ((tok = onetime_token(r, "verify", t->uid,
	    dbv(&row, 0, 0), 48 * 60, &rc)) == NULL ||
	    (rc = mail_verify(r, t->uid, dbv(&row, 0, 0), tok)) < 0))
		return rc;
	return 0;
}

/*
 * The core of POST /api/v1/auth/resend-verification: a new link unless
 * the address is verified or has had its hourly mail.  Returns 0 or a
 * DB_* code.
 */
int
interim_resend_verification(struct req *r, const char *uid)
{
	struct itx	 t = { .r = r, .uid = uid, .body = resend_body };

	return itx_run(&t);
}
