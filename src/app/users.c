/*
 * The user object of the contract (section 3), read from the users row
 * with the effective plan.
 */
#include <string.h>

#include "app/app.h"

static struct sql q_user = SQL(
    "SELECT " USER_COLUMNS " FROM users u WHERE u.id = ?");
static struct sql q_profile = SQL(
    "SELECT " USER_COLUMNS ", (SELECT t.enabled_at IS NOT NULL FROM "
    "totp_secrets t WHERE t.user_id = u.id), "
    "DATE_FORMAT(u.trial_ends_at, '%Y-%m-%d %H:%i UTC'), "
    "u.password_hash IS NOT NULL FROM users u WHERE u.id = ?");
static struct sql q_insert_balance = SQL(
    "INSERT INTO credit_balances (user_id) VALUES (?)");
static struct sql q_ensure_balance = SQL(
    "INSERT IGNORE INTO credit_balances (user_id) VALUES (?)");
static struct sql q_credit_refresh = SQL(
    "CALL tg_credit_refresh(?, ?)");
/* No "trial ended" mail for a trial never had. */
static struct sql q_trial_no_mail = SQL(
    "INSERT IGNORE INTO trial_notices (user_id, kind, trial_ends_at) "
    "SELECT id, 'ended', trial_ends_at FROM users WHERE id = ?");
static struct sql q_email = SQL(
    "SELECT email FROM users WHERE id = ?");
static struct sql q_delete = SQL(
    "DELETE FROM users WHERE id = ?");

/*
 * The account uid for its /profile page, in *row: USER_COLUMNS, then
 * whether TOTP is on, the trial's end for people, whether it has a
 * password.  Returns 1, 0, or a DB_* code.
 */
int
user_profile(struct req *r, const char *uid, struct dbrows *row)
{
	return db_select(r->a, &q_profile, row, "s", uid);
}

/*
 * uid's address into *email (in the arena; NULL for an account without
 * one).  Returns 1, 0 when there is no such account, or a DB_* code.
 */
int
user_email(struct req *r, const char *uid, const char **email)
{
	struct dbrows	 row;
	int		 rc;

	*email = NULL;
	if ((rc = db_select(r->a, &q_email, &row, "s", uid)) <= 0)
		return rc;
	*email = dbv(&row, 0, 0);
	return 1;
}

/*
 * Deletes account uid and, by the foreign keys, what it owns.  Returns
 * the rows deleted or a DB_* code.
 */
int
user_delete(const char *uid)
{
	return db_exec(&q_delete, "s", uid);
}

/* Makes uid's credit balance unless it has one.  Rows or DB_*. */
int
credit_balance_ensure(const char *uid)
{
	return db_exec(&q_ensure_balance, "s", uid);
}

/*
 * Brings uid's credit allowance up to date by the allowance rule
 * (tg_credit_refresh, sql/routines/rules.sql: a lapsed allowance lapses,
 * the current period's is granted, with their ledger rows) and leaves
 * the balance row locked until the caller's transaction ends.  Rows or
 * DB_*.
 */
int
credit_refresh(const char *uid)
{
	return db_exec(&q_credit_refresh, "si", uid,
	    (long long)cfg.trial_credits);
}

/*
 * Records that uid is owed no "trial ended" mail (it never had a trial:
 * a second account of a person whose trial is over).  Rows or DB_*.
 */
int
trial_mail_skip(const char *uid)
{
	return db_exec(&q_trial_no_mail, "s", uid);
}

/*
 * Opens a new account's credit balance (empty: the trial or a plan
 * brings its allowance).  Returns 1 or a DB_* code.
 */
int
credit_balance_open(const char *uid)
{
	return db_exec(&q_insert_balance, "s", uid);
}

/*
 * Builds the contract's user object from a row of USER_COLUMNS starting
 * at column c.  The result is owned by the caller.
 */
struct json_object *
user_json_row(const struct dbrows *row, size_t i, size_t c)
{
	struct json_object	*u = json_object_new_object();
	const char		*plan = dbv(row, i, c + 4);
	const char		*email = dbv(row, i, c + 1);

	json_object_object_add(u, "id", json_object_new_string(dbv(row, i, c)));
	/* A guest (section 3) has no address yet: email null. */
	json_object_object_add(u, "email",
	    jstr_or_null(email));
	json_object_object_add(u, "name",
	    json_object_new_string(dbv(row, i, c + 2)));
	json_object_object_add(u, "role",
	    json_object_new_string(dbv(row, i, c + 3)));
	json_object_object_add(u, "plan",
	    jstr_or_null(plan));
	json_object_object_add(u, "email_verified",
	    json_object_new_boolean(dbi(row, i, c + 5) != 0));
	json_object_object_add(u, "created_at",
	    json_object_new_string(dbv(row, i, c + 6)));
	json_object_object_add(u, "guest", json_object_new_boolean(email ==
	    NULL && plan != NULL && strcmp(plan, "guest") == 0));
	return u;
}

/* The 401 of a JSON handler whose caller's account went meanwhile. */
void
reply_gone(struct req *r)
{
	reply_unauth(r, "unauthenticated", "The account is gone.");
}

/*
 * Answers a JSON GET of the caller's own state, which a core built into
 * o and returned rc for: 401 when rc is gone (that core's code for an
 * account that went meanwhile), the database's error when rc < 0, else
 * 200 with o (consumed).
 */
void
reply_own(struct req *r, int rc, int gone, struct json_object *o)
{
	if (rc == gone)
		reply_gone(r);
	else if (rc < 0)
		reply_db(r, rc);
	else
		reply_json(r, 200, o);
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

