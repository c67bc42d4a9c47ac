/*
 * Guest accounts (contract section 3, "More ways in").
 *
 * POST /api/v1/auth/guest makes an account with no email yet, on the
 * `guest` plan (its plan_override, so the operator edits the plan like
 * any other), and signs it in: the tokens it gets work at the gate within
 * the guest plan's limits.  Creation is throttled per client address
 * ([guest] per_hour in a fixed one-hour window).  Having no mailbox to
 * prove, a guest counts as verified for the gate; it becomes a full
 * account, keeping its id, usage, credits and keys, when it signs up,
 * asks for a magic link, or signs in with GitHub or OpenID Connect while
 * presenting its own access token (guest_claim, claim.c).  The sender
 * deletes guests never claimed after [guest] days without activity
 * (guest_gc).
 */
#include <string.h>

#include "app/app.h"

static struct sql q_guest_count = SQL(
    "INSERT INTO guest_throttle (addr_hash, window_start, count) "
    "VALUES (?, UTC_TIMESTAMP(6), 1) ON DUPLICATE KEY UPDATE "
    "count = IF(window_start <= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR, 1, "
    "count + 1), window_start = IF(window_start <= UTC_TIMESTAMP(6) - "
    "INTERVAL 1 HOUR, UTC_TIMESTAMP(6), window_start)");
static struct sql q_guest_counted = SQL(
    "SELECT count, GREATEST(1, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), "
    "window_start + INTERVAL 1 HOUR)) FROM guest_throttle "
    "WHERE addr_hash = ?");
static struct sql q_guest_insert = SQL(
    "INSERT INTO users (id, email, email_lc, name, guest_at, "
    "email_verified_at, plan_override) VALUES (?, NULL, NULL, '', "
    "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), 'guest')");
/*
 * Guests never claimed and without activity for [guest] days: made that
 * long ago, and no session of theirs used since.
 */
static struct sql q_guest_stale = SQL(
    "SELECT u.id FROM users u WHERE u.guest_at IS NOT NULL AND "
    "u.email IS NULL AND u.guest_at < UTC_TIMESTAMP(6) - INTERVAL ? DAY "
    "AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND "
    "s.last_used_at >= UTC_TIMESTAMP(6) - INTERVAL ? DAY) "
    "ORDER BY u.guest_at LIMIT 500");
static struct sql q_guest_delete = SQL(
    "DELETE FROM users WHERE id = ? AND guest_at IS NOT NULL AND "
    "email IS NULL");

/*
 * Counts one guest made from the request's address.  Returns 1 when it
 * may be made, 0 when the address has made [guest] per_hour this hour
 * (the seconds left in *retry), or a DB_* code.
 */
static int
guest_allowed(struct req *r, long *retry)
{
	struct dbrows	 row;
	const char	*h = token_hash(r->a, arena_printf(r->a, "guest|%s",
			    r->remote_addr != NULL ? r->remote_addr : "-"));
	int		 rc;

	*retry = 0;
	if ((rc = db_exec(&q_guest_count, "s", h)) < 0 ||
	    (rc = db_select(r->a, &q_guest_counted, &row, "s", h)) < 0)
		return rc;
	if (rc == 1 && dbi(&row, 0, 0) > cfg.guest_per_hour) {
		*retry = (long)dbi(&row, 0, 1);
		return 0;
	}
	return 1;
}

/* The guest's creation, run by db_tx_run. */
struct guest_new {
	struct req		*r;
	size_t			 headers;
	const char		*uid;
	struct json_object	*user, *tokens;
};

static int
guest_body(void *v)
{
	struct guest_new	*g = v;
	struct req		*r = g->r;
	const char		*sid;
	int			 rc;

	r->headers_out.n = g->headers;
	json_object_put(g->user);
	json_object_put(g->tokens);
	g->user = g->tokens = NULL;
	g->uid = new_id(r->a);
	if ((rc = db_exec(&q_guest_insert, "s", g->uid)) < 0 ||
	    (rc = credit_balance_open(g->uid)) < 0 ||
	    (rc = session_create(r, g->uid, "guest", NULL, false, &sid)) < 0 ||
	    (rc = tokens_issue(r, g->uid, sid, &g->tokens, NULL)) < 0 ||
	    (rc = user_json(r, g->uid, &g->user)) < 0)
		return rc;
	return 0;
}

/*
 * POST /api/v1/auth/guest: 201 {user, tokens} of a new guest account;
 * 429 rate_limited past [guest] per_hour from one address; 503.
 */
void
h_guest(struct req *r)
{
	struct guest_new	 g;
	struct json_object	*o;
	long			 retry;
	int			 rc;

	memset(&g, 0, sizeof(g));
	g.r = r;
	g.headers = r->headers_out.n;
	if ((rc = guest_allowed(r, &retry)) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == 0) {
		log_info("guest_throttled", " addr=%s", r->remote_addr);
		reply_throttled(r, retry);
		return;
	}
	if ((rc = db_tx_run(guest_body, NULL, &g, DB_TX_TRIES)) < 0) {
		json_object_put(g.user);
		json_object_put(g.tokens);
		r->headers_out.n = g.headers;
		reply_db(r, rc);
		return;
	}
	log_info("guest_new", " user=%s", g.uid);
	o = json_object_new_object();
	json_object_object_add(o, "user", g.user);
	json_object_object_add(o, "tokens", g.tokens);
	reply_json(r, 201, o);
}

/*
 * Deletes the guests never claimed and idle for [guest] days (their
 * sessions, balances and counters go with them).  For the sender's
 * periodic pass; a is its arena.  Returns how many went, or a DB_* code.
 */
int
guest_gc(struct arena *a)
{
	struct dbrows	 rows;
	size_t		 i;
	int		 rc, n = 0;

	if ((rc = db_select(a, &q_guest_stale, &rows, "ii",
	    (long long)cfg.guest_days, (long long)cfg.guest_days)) < 0)
		return rc;
	for (i = 0; i < rows.n; i++) {
		if ((rc = db_exec(&q_guest_delete, "s", dbv(&rows, i, 0))) < 0)
			return rc;
		n += rc;
	}
	if (n > 0)
		log_info("guest_gc", " deleted=%d days=%d", n, cfg.guest_days);
	return n;
}
