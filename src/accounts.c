/*
 * Accounts: sign-up and login, the user object, and the login throttle.
 * A login is throttled per email and client address and per address over
 * all emails, never per email alone, so nobody can lock another person
 * out by guessing at their address.
 */
#include <string.h>

#include "tollgate.h"

#define THROTTLE_WINDOW	"15 MINUTE"

static struct sql q_user = SQL(
    "SELECT " USER_COLUMNS " FROM users u WHERE u.id = ?");
static struct sql q_insert_user = SQL(
    "INSERT INTO users (id, email, email_lc, name, password_hash) "
    "VALUES (?, ?, ?, ?, ?)");
static struct sql q_insert_balance = SQL(
    "INSERT INTO credit_balances (user_id) VALUES (?)");
static struct sql q_insert_token = SQL(
    "INSERT INTO tokens (token_hash, kind, user_id, new_email, "
    "new_email_lc, expires_at) VALUES (?, ?, ?, ?, ?, "
    "UTC_TIMESTAMP(6) + INTERVAL ? MINUTE)");
static struct sql q_login_user = SQL(
    "SELECT id, password_hash, disabled_at IS NOT NULL, "
    "(SELECT enabled_at IS NOT NULL FROM totp_secrets t "
    "WHERE t.user_id = users.id) FROM users WHERE email_lc = ?");
static struct sql q_rehash = SQL(
    "UPDATE users SET password_hash = ? WHERE id = ?");
static struct sql q_throttle_get = SQL(
    "SELECT count, GREATEST(1, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), "
    "window_start + INTERVAL " THROTTLE_WINDOW ")) FROM login_failures "
    "WHERE key_hash = ? AND window_start > UTC_TIMESTAMP(6) - INTERVAL "
    THROTTLE_WINDOW);
static struct sql q_throttle_add = SQL(
    "INSERT INTO login_failures (key_hash, window_start, count) "
    "VALUES (?, UTC_TIMESTAMP(6), 1) ON DUPLICATE KEY UPDATE "
    "count = IF(window_start <= UTC_TIMESTAMP(6) - INTERVAL "
    THROTTLE_WINDOW ", 1, count + 1), "
    "window_start = IF(window_start <= UTC_TIMESTAMP(6) - INTERVAL "
    THROTTLE_WINDOW ", UTC_TIMESTAMP(6), window_start)");
static struct sql q_throttle_clear = SQL(
    "DELETE FROM login_failures WHERE key_hash = ?");

/*
 * Builds the contract's user object from a row of USER_COLUMNS starting
 * at column c.  The result is owned by the caller.
 */
struct json_object *
user_json_row(const struct dbrows *row, size_t i, size_t c)
{
	struct json_object	*u = json_object_new_object();
	const char		*plan = dbv(row, i, c + 4);

	json_object_object_add(u, "id", json_object_new_string(dbv(row, i, c)));
	json_object_object_add(u, "email",
	    json_object_new_string(dbv(row, i, c + 1)));
	json_object_object_add(u, "name",
	    json_object_new_string(dbv(row, i, c + 2)));
	json_object_object_add(u, "role",
	    json_object_new_string(dbv(row, i, c + 3)));
	json_object_object_add(u, "plan",
	    plan ? json_object_new_string(plan) : NULL);
	json_object_object_add(u, "email_verified",
	    json_object_new_boolean(dbi(row, i, c + 5) != 0));
	json_object_object_add(u, "created_at",
	    json_object_new_string(dbv(row, i, c + 6)));
	return u;
}

/*
 * Loads user uid's object into *out (owned by the caller).  Returns 1,
 * 0 when there is no such user, or a DB_* code.
 */
int
user_json(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_user, &row, "s", uid)) <= 0)
		return rc;
	*out = user_json_row(&row, 0, 0);
	return 1;
}

/*
 * Makes a one-time token of kind for uid, living minutes.  Returns the
 * token (in the arena; only its hash is stored) or NULL with *rc set.
 */
const char *
onetime_token(struct req *r, const char *kind, const char *uid,
    const char *new_email, int minutes, int *rc)
{
	const char	*t = new_token(r->a, "", 32);

	*rc = db_exec(&q_insert_token, "sssssi", token_hash(r->a, t), kind,
	    uid, new_email, new_email ? ascii_lower(r->a, new_email) : NULL,
	    (long long)minutes);
	return *rc < 0 ? NULL : t;
}

/* The two throttle keys of a login: email and address, and address. */
static void
throttle_keys(struct req *r, const char *email_lc, const char **pair,
    const char **addr)
{
	const char	*a = r->remote_addr ? r->remote_addr : "-";

	*pair = token_hash(r->a, arena_printf(r->a, "login|%s|%s",
	    email_lc, a));
	*addr = token_hash(r->a, arena_printf(r->a, "login-addr|%s", a));
}

/*
 * Checks the login throttle for email_lc from this address.  Returns 0
 * when a try is allowed, 1 when throttled (the seconds until it lifts in
 * *retry), or a DB_* code.
 */
int
login_throttled(struct req *r, const char *email_lc, long *retry)
{
	struct dbrows	 row;
	const char	*pair, *addr;
	int		 rc;

	throttle_keys(r, email_lc, &pair, &addr);
	if ((rc = db_select(r->a, &q_throttle_get, &row, "s", pair)) < 0)
		return rc;
	if (rc == 1 && dbi(&row, 0, 0) >= cfg.login_failures) {
		*retry = (long)dbi(&row, 0, 1);
		return 1;
	}
	if ((rc = db_select(r->a, &q_throttle_get, &row, "s", addr)) < 0)
		return rc;
	if (rc == 1 && dbi(&row, 0, 0) >= 5LL * cfg.login_failures) {
		*retry = (long)dbi(&row, 0, 1);
		return 1;
	}
	return 0;
}

/* Counts a failed login (or a wrong current password).  Returns 0 or rc. */
int
login_failed(struct req *r, const char *email_lc)
{
	const char	*pair, *addr;
	int		 rc;

	throttle_keys(r, email_lc, &pair, &addr);
	if ((rc = db_exec(&q_throttle_add, "s", pair)) < 0 ||
	    (rc = db_exec(&q_throttle_add, "s", addr)) < 0)
		return rc;
	return 0;
}

/* Forgets the failures of this email from this address after a login. */
static void
login_succeeded(struct req *r, const char *email_lc)
{
	const char	*pair, *addr;

	throttle_keys(r, email_lc, &pair, &addr);
	db_exec(&q_throttle_clear, "s", pair);
}

/* Answers 429 for a throttled login. */
void
reply_throttled(struct req *r, long retry)
{
	reply_rate_limited(r, cfg.login_failures, retry);
}

/*
 * POST /api/v1/auth/signup: 201 {user, tokens, api_key}; 409
 * email_taken; 422 for bad fields; 503 when the database is down.  The
 * account, its first session, first API key and the verification mail
 * are written in one transaction.
 */
void
h_signup(struct req *r)
{
	struct json_object	*o, *user = NULL, *tokens = NULL, *key = NULL;
	const char		*email = in_str(r, "email");
	const char		*name = in_str(r, "name");
	const char		*hash, *uid, *sid, *vt;
	int			 rc = DB_FAIL, attempt;

	if (name == NULL)
		name = "";
	if ((hash = password_hash(r->a, in_str(r, "password"))) == NULL)
		goto dberr;
	for (attempt = 0; attempt < 3; attempt++) {
		uid = new_id(r->a);
		if ((rc = db_begin()) < 0)
			goto dberr;
		if ((rc = db_exec(&q_insert_user, "sssss", uid, email,
		    ascii_lower(r->a, email), name, hash)) < 0 ||
		    (rc = db_exec(&q_insert_balance, "s", uid)) < 0 ||
		    (rc = session_create(r, uid, "signup", NULL, false,
		    &sid)) < 0 ||
		    (rc = tokens_issue(r, uid, sid, &tokens, NULL)) < 0 ||
		    (rc = apikey_create(r, uid, "default", 0, &key)) < 0 ||
		    (vt = onetime_token(r, "verify", uid, NULL, 48 * 60,
		    &rc)) == NULL ||
		    (rc = mail_verify(r, uid, email, vt)) < 0 ||
		    (rc = user_json(r, uid, &user)) < 0) {
			db_rollback();
			json_object_put(tokens);
			json_object_put(key);
			tokens = key = NULL;
			if (rc == DB_RETRY)
				continue;
			if (rc == DB_DUP) {
				reply_error(r, 409, "email_taken", "An account "
				    "with this email already exists.");
				return;
			}
			goto dberr;
		}
		if ((rc = db_commit()) < 0) {
			json_object_put(tokens);
			json_object_put(key);
			json_object_put(user);
			goto dberr;
		}
		o = json_object_new_object();
		json_object_object_add(o, "user", user);
		json_object_object_add(o, "tokens", tokens);
		json_object_object_add(o, "api_key", key);
		log_info("signup", " user=%s", uid);
		reply_json(r, 201, o);
		return;
	}
dberr:
	reply_db(r, rc);
}

/*
 * Checks an email and password for a login.  Returns 1 with the user id
 * in *uid (and whether TOTP is on in *totp), 0 after answering the
 * request (401, 403, 429, 503).
 */
int
login_check(struct req *r, const char *email, const char *password,
    const char **uid, bool *totp)
{
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, email), *hash = NULL;
	long		 retry = 0;
	bool		 good;
	int		 rc;

	if ((rc = login_throttled(r, email_lc, &retry)) < 0)
		goto dberr;
	if (rc == 1) {
		reply_throttled(r, retry);
		return 0;
	}
	if ((rc = db_select(r->a, &q_login_user, &row, "s", email_lc)) < 0)
		goto dberr;
	if (rc == 1)
		hash = dbv(&row, 0, 1);
	good = password_verify(hash, password);
	if (!good) {
		if ((rc = login_failed(r, email_lc)) < 0)
			goto dberr;
		reply_unauth(r, "invalid_credentials", "The email or password "
		    "is wrong.");
		return 0;
	}
	if (dbi(&row, 0, 2)) {
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
		return 0;
	}
	*uid = dbv(&row, 0, 0);
	*totp = dbi(&row, 0, 3) != 0;
	if (password_needs_rehash(hash)) {
		const char *nh = password_hash(r->a, password);

		if (nh != NULL)
			db_exec(&q_rehash, "ss", nh, *uid);
	}
	login_succeeded(r, email_lc);
	return 1;
dberr:
	reply_db(r, rc);
	return 0;
}

/*
 * POST /api/v1/auth/login (JSON {email, password} or the form
 * username=&password=): 200 {user, tokens}; 401 invalid_credentials or
 * totp_required; 403 account_disabled; 429 while throttled.
 */
void
h_login(struct req *r)
{
	struct json_object	*o, *user = NULL, *tokens = NULL;
	const char		*email = in_str(r, "email");
	const char		*uid, *sid;
	bool			 totp = false;
	int			 rc;

	if (email == NULL)
		email = in_str(r, "username");
	if (email == NULL) {
		reply_invalid1(r, r->json ? "email" : "username", "is required");
		return;
	}
	if (!login_check(r, email, in_str(r, "password"), &uid, &totp))
		return;
	if (totp && in_str(r, "totp_code") == NULL &&
	    in_str(r, "recovery_code") == NULL) {
		reply_unauth(r, "totp_required", "This account needs its "
		    "second factor: send totp_code or recovery_code.");
		return;
	}
	if ((rc = db_begin()) < 0 ||
	    (rc = session_create(r, uid, "password", NULL, false, &sid)) < 0 ||
	    (rc = tokens_issue(r, uid, sid, &tokens, NULL)) < 0 ||
	    (rc = user_json(r, uid, &user)) < 0 ||
	    (rc = db_commit()) < 0) {
		db_rollback();
		json_object_put(tokens);
		json_object_put(user);
		reply_db(r, rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	json_object_object_add(o, "tokens", tokens);
	reply_json(r, 200, o);
}
