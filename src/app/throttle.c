/*
 * The login throttle.  A login is throttled per email and client address
 * and per address over all emails, never per email alone, so nobody can
 * lock another person out by guessing at their address.  Wrong current
 * passwords and wrong second-factor codes count here too.
 */
#include <string.h>

#include "app/app.h"

#define THROTTLE_WINDOW	"15 MINUTE"

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

static const char *account_key(struct req *, const char *, const char *);

/*
 * Forgets the failures of this email from this address after a login,
 * and the account's wrong second-factor codes once a right one came (an
 * attacker who holds only the password never gets that far).
 */
void
login_succeeded(struct req *r, const char *email_lc)
{
	const char	*pair, *addr;

	throttle_keys(r, email_lc, &pair, &addr);
	db_exec(&q_throttle_clear, "s", pair);
	db_exec(&q_throttle_clear, "s", account_key(r, "2fa", email_lc));
}

/* Fills o with the 429 of a throttled login (retry: seconds). */
void
outcome_throttled(struct outcome *o, long retry)
{
	o->status = 429;
	o->limit = cfg.login_failures;
	o->retry = retry;
}

/* Answers 429 for a throttled login. */
void
reply_throttled(struct req *r, long retry)
{
	struct outcome	 o = OUTCOME_INIT;

	outcome_throttled(&o, retry);
	reply_outcome(r, &o);
}

/*
 * Per-account counters, over all addresses, in the same table and the
 * same 15-minute windows: kind "2fa" counts the wrong second-factor
 * codes of an account (id: its email, lower case; a right code forgets
 * them), kind "ok" its successful
 * password logins (id: its email, lower case).  Only a holder of the
 * password reaches either, so neither lets a stranger lock anyone out.
 */
static const char *
account_key(struct req *r, const char *kind, const char *id)
{
	return token_hash(r->a, arena_printf(r->a, "account|%s|%s", kind,
	    id));
}

/*
 * Returns 0 when the account's count of kind is under limit, 1 when it
 * has reached it (the seconds until the window ends in *retry), or a
 * DB_* code.
 */
int
account_throttled(struct req *r, const char *kind, const char *id,
    long long limit, long *retry)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_throttle_get, &row, "s",
	    account_key(r, kind, id))) < 0)
		return rc;
	if (rc == 1 && dbi(&row, 0, 0) >= limit) {
		*retry = (long)dbi(&row, 0, 1);
		return 1;
	}
	return 0;
}

/* Counts one event of kind for the account.  Returns 0 or a DB_* code. */
int
account_counted(struct req *r, const char *kind, const char *id)
{
	int	 rc;

	if ((rc = db_exec(&q_throttle_add, "s", account_key(r, kind,
	    id))) < 0)
		return rc;
	return 0;
}
