/*
 * The checks of a password: a login's (login_check, for the JSON API and
 * the /login page) and the current password before a change
 * (me_password_check).  Both go through the login throttle, and a wrong
 * password counts there as a failed login.
 */
#include "app/app.h"

static struct sql q_login_user = SQL(
    "SELECT id, password_hash, disabled_at IS NOT NULL, "
    "(SELECT enabled_at IS NOT NULL FROM totp_secrets t "
    "WHERE t.user_id = users.id) FROM users WHERE email_lc = ?");
static struct sql q_rehash = SQL(
    "UPDATE users SET password_hash = ? WHERE id = ?");
static struct sql q_password_of = SQL(
    "SELECT password_hash FROM users WHERE id = ?");
static struct sql q_set_password = SQL(
    "UPDATE users SET password_hash = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_password_is = SQL(
    "SELECT 1 FROM users WHERE id = ? AND password_hash = ?");

/*
 * Sets uid's password to hash (a password_hash result; NULL: none, the
 * account signs in by mail only).  Returns the rows changed or a DB_*
 * code.
 */
int
password_set(const char *uid, const char *hash)
{
	return db_exec(&q_set_password, "ss", hash, uid);
}

/*
 * uid's stored password hash into *hash (in the arena; NULL when it has
 * none).  Returns 1, 0 when there is no such account, or a DB_* code.
 */
int
password_of(struct req *r, const char *uid, const char **hash)
{
	struct dbrows	 row;
	int		 rc;

	*hash = NULL;
	if ((rc = db_select(r->a, &q_password_of, &row, "s", uid)) <= 0)
		return rc;
	*hash = dbv(&row, 0, 0);
	return 1;
}

/*
 * Whether uid's stored password hash is hash (a committed callback's
 * look after a password was set: every hash has its own salt).
 * Returns 1, 0, or a DB_* code.
 */
int
password_is(struct req *r, const char *uid, const char *hash)
{
	struct dbrows	 row;

	return db_select(r->a, &q_password_is, &row, "ss", uid, hash);
}

/*
 * The one check of an email and password, for every password login (the
 * JSON API and the /login page).  Returns LOGIN_OK with the user id in
 * *uid and whether TOTP is on in *totp; LOGIN_THROTTLED with the seconds
 * to wait in *retry; LOGIN_WRONG (counted by the login throttle);
 * LOGIN_DISABLED; or a DB_* code (TG_BUSY when no hashing slot came
 * free).  It answers nothing.  Right passwords count too, per account
 * (LOGIN_OK_LIMIT in 15 minutes), since each costs an Argon2id.  The throttle's
 * failures are forgotten here only when TOTP is off; otherwise the
 * caller forgets them once the second factor is right too
 * (login_succeeded).
 */
int
login_check(struct req *r, const char *email, const char *password,
    const char **uid, bool *totp, long *retry)
{
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, email), *hash = NULL;
	int		 rc;

	*retry = 0;
	/* Good logins are throttled too: each costs an Argon2id. */
	if ((rc = login_throttled(r, email_lc, retry)) == 0)
		rc = account_throttled(r, "ok", email_lc, LOGIN_OK_LIMIT,
		    retry);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return LOGIN_THROTTLED;
	if ((rc = db_select(r->a, &q_login_user, &row, "s", email_lc)) < 0)
		return rc;
	if (rc == 1)
		hash = dbv(&row, 0, 1);
	if ((rc = password_check(hash, password)) < 0)
		return rc;	/* TG_BUSY: the hashing cap stayed full */
	if (rc == 0) {
		if ((rc = login_failed(r, email_lc)) < 0)
			return rc;
		return LOGIN_WRONG;
	}
	if (dbi(&row, 0, 2))
		return LOGIN_DISABLED;
	*uid = dbv(&row, 0, 0);
	*totp = dbi(&row, 0, 3) != 0;
	if ((rc = account_counted(r, "ok", email_lc)) < 0)
		return rc;
	if (password_needs_rehash(hash)) {
		const char *nh = password_hash(r->a, password);

		if (nh != NULL)
			db_exec(&q_rehash, "ss", nh, *uid);
	}
	/* With TOTP on, the failures go only once the code is right too. */
	if (!*totp)
		login_succeeded(r, email_lc);
	return LOGIN_OK;
}

/*
 * Checks user uid's current password pw (email is the account's, for
 * the login throttle).  Returns 0 when it is right, ME_THROTTLED (the
 * seconds to wait in *retry) while the login throttle holds, ME_WRONG,
 * or a DB_* code.  A wrong password counts as a failed login of email
 * from this address.
 */
int
me_password_check(struct req *r, const char *uid, const char *email,
    const char *pw, long *retry)
{
	struct dbrows	 row;
	const char	*email_lc;
	int		 rc;

	/* An account without an address (a guest) is counted by its id. */
	email_lc = email != NULL && *email != '\0' ? ascii_lower(r->a, email) :
	    arena_printf(r->a, "id:%s", uid);
	*retry = 0;
	if ((rc = login_throttled(r, email_lc, retry)) < 0)
		return rc;
	if (rc == 1)
		return ME_THROTTLED;
	if ((rc = db_select(r->a, &q_password_of, &row, "s", uid)) < 0)
		return rc;
	if ((rc = password_check(rc == 1 ? dbv(&row, 0, 0) : NULL, pw)) < 0)
		return rc;	/* TG_BUSY: the hashing cap stayed full */
	if (rc == 1)
		return 0;
	if ((rc = login_failed(r, email_lc)) < 0)
		return rc;
	log_info("password_check_failed", " user=%s", uid);
	return ME_WRONG;
}
