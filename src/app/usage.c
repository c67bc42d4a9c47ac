/*
 * Usage (contract section 5): what a user consumed of each meter in the
 * current billing period, the events the operator's services report with
 * a service key, and the 80 % and 100 % notices.  Counters live in
 * usage_counters (per period) and usage_daily (per UTC day); the gate
 * counts through tg_gate, events through h_usage_event, and both send
 * the notices through usage_notice.  Plans and periods follow the SQL
 * functions tg_plan and tg_period_start/_end (sql/020-gate.sql).
 */
#include <string.h>

#include "app/app.h"

#define TRIES	3

/* The user's plan and period, and the credits left (as tg_gate counts). */
static struct sql q_state = SQL(
    "SELECT x.plan, DATE_FORMAT(x.ps, '%Y-%m-%dT%H:%i:%sZ'), "
    "DATE_FORMAT(x.pe, '%Y-%m-%dT%H:%i:%sZ'), "
    "tg_credits(x.id, ?), x.ps "
    "FROM (SELECT y.id, y.plan, tg_period_start(y.id, y.plan) ps, "
    "tg_period_end(y.id, y.plan) pe FROM (SELECT u.id, tg_plan(u.id) plan "
    "FROM users u WHERE u.id = ?) y) x");
/* The daily counts of a user's meters between two days. */
static struct sql q_daily = SQL(
    "SELECT meter, DATE_FORMAT(day, '%Y-%m-%d'), used FROM usage_daily "
    "WHERE user_id = ? AND day >= ? AND day <= ? ORDER BY meter, day");
/* The plan's meters and every other meter used in the period. */
static struct sql q_meters = SQL(
    "SELECT l.meter, l.period_limit, COALESCE(c.used, 0) "
    "FROM plan_limits l LEFT JOIN usage_counters c ON c.user_id = ? AND "
    "c.meter = l.meter AND c.period_start = ? WHERE l.plan = ? "
    "UNION ALL SELECT c.meter, NULL, c.used FROM usage_counters c "
    "WHERE c.user_id = ? AND c.period_start = ? AND NOT EXISTS "
    "(SELECT 1 FROM plan_limits l WHERE l.plan = ? AND l.meter = c.meter) "
    "ORDER BY 1");

/*
 * The core of GET /api/v1/usage: uid's {plan, period: {start, end},
 * meters: {<meter>: {used, limit}}, credits: {remaining}}.  Returns 0
 * with the object in *out (owned by the caller), USAGE_GONE when there
 * is no such user, or a DB_* code.
 */
int
usage_core(struct req *r, const char *uid, struct json_object **out)
{
	struct json_object	*o, *period, *meters, *m, *credits;
	struct dbrows		 st, mr;
	const char		*plan;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_state, &st, "is",
	    (long long)cfg.trial_credits, uid)) < 0)
		return rc;
	if (rc == 0)
		return USAGE_GONE;
	plan = dbv(&st, 0, 0);
	if ((rc = db_select(r->a, &q_meters, &mr, "ssssss", uid,
	    dbv(&st, 0, 4), plan, uid, dbv(&st, 0, 4), plan)) < 0)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, "plan", plan ? json_object_new_string(plan) :
	    NULL);
	period = json_object_new_object();
	json_object_object_add(period, "start", dbv(&st, 0, 1) ?
	    json_object_new_string(dbv(&st, 0, 1)) : NULL);
	json_object_object_add(period, "end", dbv(&st, 0, 2) ?
	    json_object_new_string(dbv(&st, 0, 2)) : NULL);
	json_object_object_add(o, "period", period);
	meters = json_object_new_object();
	for (i = 0; i < mr.n; i++) {
		m = json_object_new_object();
		json_object_object_add(m, "used",
		    json_object_new_int64(dbi(&mr, i, 2)));
		json_object_object_add(m, "limit", dbv(&mr, i, 1) ?
		    json_object_new_int64(dbi(&mr, i, 1)) : NULL);
		json_object_object_add(meters, dbv(&mr, i, 0), m);
	}
	json_object_object_add(o, "meters", meters);
	credits = json_object_new_object();
	json_object_object_add(credits, "remaining",
	    json_object_new_int64(dbi(&st, 0, 3)));
	json_object_object_add(o, "credits", credits);
	*out = o;
	return 0;
}

/*
 * GET /api/v1/usage (login or API key): 200 {plan, period: {start, end},
 * meters: {<meter>: {used, limit}}, credits: {remaining}}; 503.
 */
void
h_usage(struct req *r)
{
	struct json_object	*o;
	int			 rc;

	if ((rc = usage_core(r, r->who.user_id, &o)) == USAGE_GONE) {
		reply_unauth(r, "unauthenticated", "The account is gone.");
		return;
	}
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, o);
}

static struct sql q_notice = SQL(
    "INSERT IGNORE INTO usage_notices (user_id, meter, period_start, "
    "threshold) VALUES (?, ?, ?, ?)");
static struct sql q_email = SQL(
    "SELECT email FROM users WHERE id = ?");

/*
 * Records the notice that user uid reached threshold (80 or 100) % of
 * meter's limit in the period starting at period_start, and queues its
 * mail, once per period, meter and threshold.  Runs inside the caller's
 * transaction when there is one.  Returns 0 or a DB_* code.
 */
static int
notice_once(struct req *r, const char *uid, const char *meter,
    const char *period_start, int threshold, long long used, long long limit)
{
	struct dbrows	 row;
	const char	*subject, *text, *link;
	int		 rc;

	if ((rc = db_exec(&q_notice, "sssi", uid, meter, period_start,
	    (long long)threshold)) <= 0)
		return rc;
	if ((rc = db_select(r->a, &q_email, &row, "s", uid)) <= 0)
		return rc;
	if (dbv(&row, 0, 0) == NULL)
		return 0;	/* a guest: no address to tell */
	link = arena_printf(r->a, "%s/usage", cfg.base_url);
	subject = arena_printf(r->a, "You have used %d %% of your %s",
	    threshold, meter);
	text = arena_printf(r->a, "Hello,\n\nYou have used %lld of the %lld "
	    "%s your plan includes in this billing period (%d %%).%s\n\n"
	    "Your usage:\n%s\n\n-- tollgate\n", used, limit, meter, threshold,
	    threshold >= 100 ? " Further use is refused until the next "
	    "period, unless you upgrade." : "", link);
	return mail_queue(r, uid, threshold >= 100 ? "usage_100" :
	    "usage_80", dbv(&row, 0, 0), subject, text, link);
}

/*
 * Sends the 80 % or 100 % notice for a meter after the gate counted a
 * check (its own transaction; a failure is logged, the check stands).
 */
void
usage_notice(struct req *r, const char *uid, const char *meter,
    const char *period_start, int threshold, long long used,
    long long limit)
{
	int	 rc;

	if ((rc = db_begin()) < 0 ||
	    (rc = notice_once(r, uid, meter, period_start, threshold, used,
	    limit)) < 0 || (rc = db_commit()) < 0) {
		db_rollback();
		log_warn("usage_notice", " user=%s meter=%s rc=%d", uid, meter,
		    rc);
	}
}

static struct sql q_event = SQL(
    "INSERT INTO usage_events (id, service_key_id, idempotency_key, "
    "user_id, meter, quantity) VALUES (?, ?, ?, ?, ?, ?)");
static struct sql q_event_period = SQL(
    "SELECT x.plan, tg_period_start(x.id, x.plan), "
    "tg_period_end(x.id, x.plan) FROM (SELECT u.id, tg_plan(u.id) plan "
    "FROM users u WHERE u.id = ?) x");
static struct sql q_event_count = SQL(
    "INSERT INTO usage_counters (user_id, meter, period_start, period_end, "
    "used) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
    "used = used + VALUES(used)");
static struct sql q_event_daily = SQL(
    "INSERT INTO usage_daily (user_id, meter, day, used) VALUES "
    "(?, ?, UTC_DATE(), ?) ON DUPLICATE KEY UPDATE used = used + "
    "VALUES(used)");
static struct sql q_event_used = SQL(
    "SELECT c.used, l.period_limit FROM usage_counters c LEFT JOIN "
    "plan_limits l ON l.plan = ? AND l.meter = c.meter WHERE "
    "c.user_id = ? AND c.meter = ? AND c.period_start = ?");

/*
 * POST /api/v1/usage/events {user_id, meter, quantity, idempotency_key}
 * (service keys only): 202 when recorded, and when the same service sent
 * the same idempotency key before (counted once); 422 for an unknown
 * user; 503.  No limit refuses an event: it records what happened.
 */
void
h_usage_event(struct req *r)
{
	struct dbrows	 per, used;
	const char	*uid = in_str(r, "user_id"), *meter = in_str(r, "meter");
	long long	 qty = in_int(r, "quantity", 0), u, lim;
	int		 rc = DB_FAIL, i, th;

	for (i = 0; i < TRIES; i++) {
		if ((rc = db_begin()) < 0)
			goto dberr;
		if ((rc = db_select(r->a, &q_event_period, &per, "s", uid)) < 0)
			goto fail;
		if (rc == 0) {
			db_rollback();
			reply_invalid1(r, "user_id", "no such user");
			return;
		}
		if ((rc = db_exec(&q_event, "sssssi", new_id(r->a),
		    r->who.key_id, in_str(r, "idempotency_key"), uid, meter,
		    qty)) == DB_DUP) {
			db_rollback();
			reply_empty(r, 202);	/* counted before */
			return;
		}
		if (rc < 0 ||
		    (rc = db_exec(&q_event_count, "ssssi", uid, meter,
		    dbv(&per, 0, 1), dbv(&per, 0, 2), qty)) < 0 ||
		    (rc = db_exec(&q_event_daily, "ssi", uid, meter, qty)) < 0 ||
		    (rc = db_select(r->a, &q_event_used, &used, "ssss",
		    dbv(&per, 0, 0), uid, meter, dbv(&per, 0, 1))) < 0)
			goto fail;
		if (rc == 1 && dbv(&used, 0, 1) != NULL &&
		    (lim = dbi(&used, 0, 1)) > 0) {
			u = dbi(&used, 0, 0);
			th = u >= lim ? 100 : u * 5 >= lim * 4 ? 80 : 0;
			if (th > 0 && (rc = notice_once(r, uid, meter,
			    dbv(&per, 0, 1), th, u, lim)) < 0)
				goto fail;
		}
		if ((rc = meter_report_add(r, uid, meter, qty)) < 0 ||
		    (rc = db_commit()) < 0)
			goto fail;
		reply_empty(r, 202);
		return;
fail:
		db_rollback();
		if (rc != DB_RETRY)
			break;
	}
dberr:
	reply_db(r, rc);
}

/*
 * The daily use of uid's meters from day from to day to (YYYY-MM-DD),
 * as an array (the caller's) of {meter, day, used}.  Returns 0 or a DB_*
 * code.
 */
int
usage_daily_core(struct req *r, const char *uid, const char *from,
    const char *to, struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*a, *e;
	size_t			 i;
	int			 rc;

	*out = NULL;
	if ((rc = db_select(r->a, &q_daily, &rows, "sss", uid, from, to)) < 0)
		return rc;
	a = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		e = json_object_new_object();
		json_object_object_add(e, "meter",
		    json_object_new_string(dbv(&rows, i, 0)));
		json_object_object_add(e, "day",
		    json_object_new_string(dbv(&rows, i, 1)));
		json_object_object_add(e, "used",
		    json_object_new_int64(dbi(&rows, i, 2)));
		json_object_array_add(a, e);
	}
	*out = a;
	return 0;
}
