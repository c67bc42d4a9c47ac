/*
 * Usage (contract section 5): what a user consumed of each meter in the
 * current billing period, the events the operator's services report with
 * a service key, and the 80 % and 100 % notices.  Counters live in
 * usage_counters (per period) and usage_daily (per UTC day); the gate
 * counts through the engine's journal (src/engine/), events through
 * h_usage_event, and both send the notices through usage_notice.  Plans
 * and periods follow the SQL functions tg_plan and tg_period_start/_end
 * (sql/routines/rules.sql).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "app/app.h"

/*
 * The user's plan and period, the credits left (as the gate counts), the
 * period's bounds as DATETIMEs, and the plan's currency.
 */
static struct sql q_state = SQL(
    "SELECT x.plan, DATE_FORMAT(x.ps, '%Y-%m-%dT%H:%i:%sZ'), "
    "DATE_FORMAT(x.pe, '%Y-%m-%dT%H:%i:%sZ'), "
    "tg_credits(x.id, ?), x.ps, x.pe, "
    "COALESCE((SELECT p.currency FROM plans p WHERE p.name = x.plan), "
    "'usd') "
    "FROM (SELECT y.id, y.plan, tg_period_start(y.id, y.plan) ps, "
    "tg_period_end(y.id, y.plan) pe FROM (SELECT u.id, tg_plan(u.id) plan "
    "FROM users u WHERE u.id = ?) y) x");
/* The one credits figure of a user (sql/routines/rules.sql). */
static struct sql q_credits_now = SQL(
    "SELECT tg_credits(?, ?) FROM users WHERE id = ?");
/* The daily counts of a user's meters between two days. */
static struct sql q_daily = SQL(
    "SELECT meter, DATE_FORMAT(day, '%Y-%m-%d'), used FROM usage_daily "
    "WHERE user_id = ? AND day >= ? AND day <= ? ORDER BY meter, day");
/*
 * The plan's meters, every other meter used in the period, and every
 * level meter the user holds: name, limit (NULL: none), what is used
 * (a level meter: its level now), and whether it is a level.
 */
static struct sql q_meters = SQL(
    "SELECT l.meter, l.period_limit, IF(m.kind <=> 'level', "
    "COALESCE(v.level, 0), COALESCE(c.used, 0)), m.kind <=> 'level' "
    "FROM plan_limits l LEFT JOIN meters m ON m.name = l.meter "
    "LEFT JOIN usage_counters c ON c.user_id = ? AND "
    "c.meter = l.meter AND c.period_start = ? "
    "LEFT JOIN usage_levels v ON v.user_id = ? AND v.meter = l.meter "
    "WHERE l.plan = ? "
    "UNION ALL SELECT c.meter, NULL, c.used, 0 FROM usage_counters c "
    "WHERE c.user_id = ? AND c.period_start = ? AND NOT EXISTS "
    "(SELECT 1 FROM plan_limits l WHERE l.plan = ? AND l.meter = c.meter) "
    "AND NOT EXISTS (SELECT 1 FROM meters m WHERE m.name = c.meter AND "
    "m.kind = 'level') "
    "UNION ALL SELECT v.meter, NULL, v.level, 1 FROM usage_levels v "
    "JOIN meters m ON m.name = v.meter AND m.kind = 'level' "
    "WHERE v.user_id = ? AND NOT EXISTS (SELECT 1 FROM plan_limits l "
    "WHERE l.plan = ? AND l.meter = v.meter) "
    "ORDER BY 1");
/* The money of the period's usage events, per meter. */
static struct sql q_money = SQL(
    "SELECT meter, cost_micros FROM usage_counters WHERE user_id = ? "
    "AND period_start = ? AND cost_micros > 0 ORDER BY meter");

/*
 * The core of GET /api/v1/usage: uid's {plan, period: {start, end},
 * meters: {<meter>: {used, limit}}, credits: {remaining}, money:
 * {currency, total_micros, meters: {<meter>: micros}}}.  A level meter
 * also has kind "level" and level (= used, what is in use now).
 * Returns 0 with the object in *out (owned by the caller), USAGE_GONE
 * when there is no such user, or a DB_* code.
 */
int
usage_core(struct req *r, const char *uid, struct json_object **out)
{
	struct json_object	*o, *period, *meters, *m, *credits, *money,
				*mm;
	struct dbrows		 st, mr, mo;
	const char		*plan, *ps;
	long long		 total = 0;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_state, &st, "is",
	    (long long)cfg.trial_credits, uid)) < 0)
		return rc;
	if (rc == 0)
		return USAGE_GONE;
	plan = dbv(&st, 0, 0);
	ps = dbv(&st, 0, 4);
	if ((rc = db_select(r->a, &q_meters, &mr, "sssssssss", uid, ps, uid,
	    plan, uid, ps, plan, uid, plan)) < 0 ||
	    (rc = db_select(r->a, &q_money, &mo, "ss", uid, ps)) < 0)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, "plan", jstr_or_null(plan));
	period = json_object_new_object();
	json_object_object_add(period, "start", jstr_or_null(dbv(&st, 0, 1)));
	json_object_object_add(period, "end", jstr_or_null(dbv(&st, 0, 2)));
	json_object_object_add(o, "period", period);
	meters = json_object_new_object();
	for (i = 0; i < mr.n; i++) {
		m = json_object_new_object();
		json_object_object_add(m, "used",
		    json_object_new_int64(dbi(&mr, i, 2)));
		json_object_object_add(m, "limit", dbv(&mr, i, 1) ?
		    json_object_new_int64(dbi(&mr, i, 1)) : NULL);
		if (dbi(&mr, i, 3)) {
			json_object_object_add(m, "kind",
			    json_object_new_string("level"));
			json_object_object_add(m, "level",
			    json_object_new_int64(dbi(&mr, i, 2)));
		}
		json_object_object_add(meters, dbv(&mr, i, 0), m);
	}
	json_object_object_add(o, "meters", meters);
	credits = json_object_new_object();
	json_object_object_add(credits, "remaining",
	    json_object_new_int64(dbi(&st, 0, 3)));
	json_object_object_add(o, "credits", credits);
	money = json_object_new_object();
	mm = json_object_new_object();
	for (i = 0; i < mo.n; i++) {
		json_object_object_add(mm, dbv(&mo, i, 0),
		    json_object_new_int64(dbi(&mo, i, 1)));
		total += dbi(&mo, i, 1);
	}
	json_object_object_add(money, "currency",
	    json_object_new_string(dbv(&st, 0, 6)));
	json_object_object_add(money, "total_micros",
	    json_object_new_int64(total));
	json_object_object_add(money, "meters", mm);
	json_object_object_add(o, "money", money);
	*out = o;
	return 0;
}

/*
 * Every credit user uid can spend now (tg_credits, sql/routines/rules.sql):
 * the one figure of /api/v1/usage, /api/v1/me and the admin's view
 * (contract section 3), for answers that are not built on those reads.
 * Returns 0 with it in *remaining, USAGE_GONE, or a DB_* code.
 */
int
credits_now(struct req *r, const char *uid, long long *remaining)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_credits_now, &row, "sis", uid,
	    (long long)cfg.trial_credits, uid)) < 0)
		return rc;
	if (rc == 0)
		return USAGE_GONE;
	*remaining = dbi(&row, 0, 0);
	return 0;
}

/*
 * GET /api/v1/usage (login or API key): 200 {plan, period: {start, end},
 * meters: {<meter>: {used, limit}}, credits: {remaining}}; 503.
 */
void
h_usage(struct req *r)
{
	struct json_object	*o = NULL;
	int			 rc;

	rc = usage_core(r, r->who.user_id, &o);
	reply_own(r, rc, USAGE_GONE, o);
}

static struct sql q_notice = SQL(
    "INSERT IGNORE INTO usage_notices (user_id, meter, period_start, "
    "threshold) VALUES (?, ?, ?, ?)");

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
	const char	*kind, *link, *to;
	int		 rc;

	if ((rc = db_exec(&q_notice, "sssi", uid, meter, period_start,
	    (long long)threshold)) <= 0)
		return rc;
	if ((rc = user_email(r, uid, &to)) <= 0)
		return rc;
	if (to == NULL)
		return 0;	/* a guest: no address to tell */
	link = arena_printf(r->a, "%s/usage", cfg.base_url);
	kind = threshold >= 100 ? "usage_100" : "usage_80";
	return mail_text(r, uid, kind, kind, to, link,
	    (const char *[]){ "used", arena_printf(r->a, "%lld", used),
	    "limit", arena_printf(r->a, "%lld", limit), "meter", meter,
	    "threshold", arena_printf(r->a, "%d", threshold), "link", link,
	    NULL });
}

/* A usage notice, run by db_tx_run (maybe more than once). */
struct usage_notice_tx {
	struct req	*r;
	const char	*uid, *meter, *period_start;
	int		 threshold;
	long long	 used, limit;
};

static int
usage_notice_body(void *v)
{
	struct usage_notice_tx	*t = v;

	return notice_once(t->r, t->uid, t->meter, t->period_start,
	    t->threshold, t->used, t->limit);
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
	struct usage_notice_tx	 t;
	int			 rc;

	t.r = r;
	t.uid = uid;
	t.meter = meter;
	t.period_start = period_start;
	t.threshold = threshold;
	t.used = used;
	t.limit = limit;
	if ((rc = db_tx_run(usage_notice_body, NULL, &t, DB_TX_TRIES)) < 0)
		log_warn("usage_notice", " user=%s meter=%s rc=%d", uid, meter,
		    rc);
}

static struct sql q_event = SQL(
    "INSERT INTO usage_events (id, service_key_id, idempotency_key, "
    "user_id, meter, quantity, metadata, cost_micros) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
static struct sql q_event_seen = SQL(
    "SELECT 1 FROM usage_events WHERE service_key_id = ? AND "
    "idempotency_key = ?");
static struct sql q_event_period = SQL(
    "SELECT x.plan, tg_period_start(x.id, x.plan), "
    "tg_period_end(x.id, x.plan) FROM (SELECT u.id, tg_plan(u.id) plan "
    "FROM users u WHERE u.id = ?) x");
static struct sql q_event_count = SQL(
    "INSERT INTO usage_counters (user_id, meter, period_start, period_end, "
    "used, cost_micros) VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
    "used = used + VALUES(used), "
    "cost_micros = cost_micros + VALUES(cost_micros)");
static struct sql q_event_daily = SQL(
    "INSERT INTO usage_daily (user_id, meter, day, used) VALUES "
    "(?, ?, UTC_DATE(), ?) ON DUPLICATE KEY UPDATE used = used + "
    "VALUES(used)");
static struct sql q_event_used = SQL(
    "SELECT c.used, l.period_limit FROM usage_counters c LEFT JOIN "
    "plan_limits l ON l.plan = ? AND l.meter = c.meter WHERE "
    "c.user_id = ? AND c.meter = ? AND c.period_start = ?");

/* A usage event, run by db_tx_run (maybe more than once). */
struct usage_event_tx {
	struct req	*r;
	const char	*uid, *meter;
	long long	 qty;
	bool		 has_cost;
	bool		 no_user;
};

static int
usage_event_body(void *v)
{
	struct usage_event_tx	*t = v;
	struct req		*r = t->r;
	struct dbrows		 per, used;
	long long		 u, lim;
	int			 rc, th;

	t->no_user = false;
	if ((rc = db_select(r->a, &q_event_period, &per, "s", t->uid)) < 0)
		return rc;
	if (rc == 0) {
		t->no_user = true;
		return DB_ABORT;
	}
	if ((rc = db_exec(&q_event, t->has_cost ? "sssssisi" : "sssssisn",
	    new_id(r->a), r->who.key_id, in_str(r, "idempotency_key"), t->uid,
	    t->meter, t->qty, in_str(r, "metadata"),
	    in_int(r, "cost_micros", 0))) == DB_DUP)
		return DB_ABORT;	/* counted before */
	if (rc < 0 ||
	    (rc = db_exec(&q_event_count, "ssssii", t->uid, t->meter,
	    dbv(&per, 0, 1), dbv(&per, 0, 2), t->qty,
	    in_int(r, "cost_micros", 0))) < 0 ||
	    (rc = db_exec(&q_event_daily, "ssi", t->uid, t->meter,
	    t->qty)) < 0 ||
	    (rc = db_select(r->a, &q_event_used, &used, "ssss",
	    dbv(&per, 0, 0), t->uid, t->meter, dbv(&per, 0, 1))) < 0)
		return rc;
	if (rc == 1 && dbv(&used, 0, 1) != NULL &&
	    (lim = dbi(&used, 0, 1)) > 0) {
		u = dbi(&used, 0, 0);
		th = u >= lim ? 100 : u * 5 >= lim * 4 ? 80 : 0;
		if (th > 0 && (rc = notice_once(r, t->uid, t->meter,
		    dbv(&per, 0, 1), th, u, lim)) < 0)
			return rc;
	}
	if ((rc = meter_report_add(r, t->uid, t->meter, t->qty)) < 0)
		return rc;
	return 0;
}

/*
 * After a lost COMMIT answer: is the event (its idempotency key, of
 * this service key) recorded?  The counters came in the same
 * transaction.
 */
static int
usage_event_committed(void *v)
{
	struct usage_event_tx	*t = v;
	struct dbrows		 row;

	return db_select(t->r->a, &q_event_seen, &row, "ss",
	    t->r->who.key_id, in_str(t->r, "idempotency_key"));
}

/*
 * POST /api/v1/usage/events {user_id, meter, quantity, idempotency_key,
 * metadata?, cost_micros?} (service keys only): 202 when recorded, and
 * when the same service sent the same idempotency key before (counted
 * once); 422 for an unknown user, for the meter `credits` (credits move
 * only through spends, which take them from the balance and write the
 * ledger; an event that raised the meter alone would make the meter and
 * the balance disagree) and for a level meter (its level is set with PUT
 * /api/v1/usage/levels/{meter}); 503.  No limit refuses an event: it
 * records what happened.
 */
void
h_usage_event(struct req *r)
{
	struct usage_event_tx	 t;
	const char	*uid = in_str(r, "user_id"), *meter = in_str(r, "meter");
	const char	*kind;
	const struct input *cost = req_in(r, "cost_micros");
	long long	 qty = in_int(r, "quantity", 0);
	int		 rc = DB_FAIL;
	bool		 has_cost = cost != NULL && cost->present &&
			    !cost->is_null;

	if (strcmp(meter, "credits") == 0) {
		reply_invalid1(r, "meter", "credits are spent through the gate "
		    "or POST /api/v1/check, never by a usage event");
		return;
	}
	if ((rc = meter_kind(r, meter, &kind)) < 0)
		goto dberr;
	if (rc == 1 && strcmp(kind, "level") == 0) {
		reply_invalid1(r, "meter", "is a level meter: set its level "
		    "with PUT /api/v1/usage/levels/{meter}");
		return;
	}
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	t.meter = meter;
	t.qty = qty;
	t.has_cost = has_cost;
	rc = db_tx_run(usage_event_body, usage_event_committed, &t, DB_TX_TRIES);
	if (rc == DB_ABORT && t.no_user) {
		reply_invalid1(r, "user_id", "no such user");
		return;
	}
	if (rc >= 0 || rc == DB_ABORT) {
		reply_empty(r, 202);	/* recorded, or counted before */
		return;
	}
dberr:
	reply_db(r, rc);
}

/* ------------------------------------------------------------------ */
/* The events: the user's own list and the admin's export.            */
/* ------------------------------------------------------------------ */

#define EVENTS_PER_PAGE	50
#define EXPORT_MAX	100000	/* rows in one CSV export */

/*
 * Reads a time of a query: "2026-01-31", "2026-01-31T12:00:00Z" (with
 * optional fractions of a second, and "+00:00" for Z).  Returns the
 * DATETIME text "2026-01-31 12:00:00.000000" in the arena, or NULL when
 * s is none of these.
 */
static const char *
query_time(struct arena *a, const char *s)
{
	static const int days_in[12] = { 31, 28, 31, 30, 31, 30, 31, 31,
	    30, 31, 30, 31 };
	int	 y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	long	 frac = 0;
	size_t	 digits = 0;

	/* Digits exactly where the forms have them: no signs, no blanks. */
	for (n = 0; n < 19 && s[n] != '\0'; n++)
		if ((n == 4 || n == 7) ? s[n] != '-' : n == 10 ?
		    s[n] != 'T' && s[n] != 't' : (n == 13 || n == 16) ?
		    s[n] != ':' : !isdigit((unsigned char)s[n]))
			return NULL;
	if (n != 10 && n != 19)
		return NULL;
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return NULL;
	s += n;
	if (*s != '\0') {
		if ((*s != 'T' && *s != 't') || sscanf(s + 1, "%2d:%2d:%2d%n",
		    &h, &mi, &sec, &n) != 3 || n != 8)
			return NULL;
		s += 1 + n;
		if (*s == '.') {
			for (s++; *s >= '0' && *s <= '9'; s++, digits++)
				if (digits < 6)
					frac = frac * 10 + (*s - '0');
			if (digits == 0)
				return NULL;
			for (; digits < 6; digits++)
				frac *= 10;
		}
		if (strcmp(s, "Z") != 0 && strcmp(s, "z") != 0 &&
		    strcmp(s, "+00:00") != 0)
			return NULL;
	}
	if (y < 1970 || y > 9998 || mo < 1 || mo > 12 || d < 1 ||
	    d > days_in[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 ||
	    y % 400 == 0)) || h > 23 || mi > 59 || sec > 59)
		return NULL;
	return arena_printf(a, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", y, mo, d,
	    h, mi, sec, frac);
}

/*
 * Takes the from and to of a query into *from and *to (NULL when absent).
 * Returns true, or false with the 422 answered.
 */
static bool
query_period(struct req *r, const char **from, const char **to)
{
	struct json_object	*bad = NULL;
	const char		*f = in_str(r, "from"), *t = in_str(r, "to");

	*from = *to = NULL;
	if (f != NULL && (*from = query_time(r->a, f)) == NULL) {
		bad = json_object_new_object();
		json_object_object_add(bad, "from", json_object_new_string(
		    "must be an RFC 3339 UTC time or a date"));
	}
	if (t != NULL && (*to = query_time(r->a, t)) == NULL) {
		if (bad == NULL)
			bad = json_object_new_object();
		json_object_object_add(bad, "to", json_object_new_string(
		    "must be an RFC 3339 UTC time or a date"));
	}
	if (bad == NULL && *from != NULL && *to != NULL &&
	    strcmp(*from, *to) > 0) {
		bad = json_object_new_object();
		json_object_object_add(bad, "to", json_object_new_string(
		    "must not be before from"));
	}
	if (bad != NULL) {
		reply_invalid(r, bad);
		return false;
	}
	return true;
}

/* One user's events, newest first, from <= created_at < to. */
static struct sql q_events = SQL(
    "SELECT id, meter, quantity, cost_micros, metadata, "
    "DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ') FROM usage_events "
    "WHERE user_id = ? AND (? IS NULL OR created_at >= ?) AND "
    "(? IS NULL OR created_at < ?) AND (? IS NULL OR meter = ?) "
    "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
static struct sql q_events_count = SQL(
    "SELECT COUNT(*) FROM usage_events WHERE user_id = ? AND "
    "(? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?) AND "
    "(? IS NULL OR meter = ?)");

/*
 * The core of GET /api/v1/usage/events: uid's events in [from, to) (each
 * a DATETIME text or NULL), of meter (or all), page (from 1) of 50,
 * newest first: {events: [{id, meter, quantity, cost_micros, metadata,
 * created_at}], total, page, per_page}.  Returns 0 with the object in
 * *out (owned by the caller), or a DB_* code.
 */
int
usage_events_core(struct req *r, const char *uid, const char *from,
    const char *to, const char *meter, long long page,
    struct json_object **out)
{
	struct json_object	*o, *arr, *e, *md;
	struct dbrows		 rows, cnt;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_events_count, &cnt, "sssssss", uid, from,
	    from, to, to, meter, meter)) < 0 ||
	    (rc = db_select(r->a, &q_events, &rows, "sssssssii", uid, from,
	    from, to, to, meter, meter, (long long)EVENTS_PER_PAGE,
	    (page - 1) * EVENTS_PER_PAGE)) < 0)
		return rc;
	arr = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		e = json_object_new_object();
		json_object_object_add(e, "id",
		    json_object_new_string(dbv(&rows, i, 0)));
		json_object_object_add(e, "meter",
		    json_object_new_string(dbv(&rows, i, 1)));
		json_object_object_add(e, "quantity",
		    json_object_new_int64(dbi(&rows, i, 2)));
		json_object_object_add(e, "cost_micros", dbv(&rows, i, 3) ?
		    json_object_new_int64(dbi(&rows, i, 3)) : NULL);
		md = dbv(&rows, i, 4) ? parse_json_object(dbv(&rows, i, 4),
		    strlen(dbv(&rows, i, 4))) : NULL;
		json_object_object_add(e, "metadata", md);
		json_object_object_add(e, "created_at",
		    json_object_new_string(dbv(&rows, i, 5)));
		json_object_array_add(arr, e);
	}
	o = json_object_new_object();
	json_object_object_add(o, "events", arr);
	json_object_object_add(o, "total", json_object_new_int64(cnt.n ?
	    dbi(&cnt, 0, 0) : 0));
	json_object_object_add(o, "page", json_object_new_int64(page));
	json_object_object_add(o, "per_page",
	    json_object_new_int64(EVENTS_PER_PAGE));
	*out = o;
	return 0;
}

/*
 * GET /api/v1/usage/events ?from=&to=&meter=&page= (a login): 200
 * {events, total, page, per_page} of the caller's own events, newest
 * first, from <= created_at < to; 422 for a bad time; 503.
 */
void
h_usage_events(struct req *r)
{
	struct json_object	*o;
	const char		*from, *to;
	int			 rc;

	if (!query_period(r, &from, &to))
		return;
	if ((rc = usage_events_core(r, r->who.user_id, from, to,
	    in_str(r, "meter"), in_int(r, "page", 1), &o)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, o);
}

/* Every user's events in a period, oldest first, for the export. */
static struct sql q_export_count = SQL(
    "SELECT COUNT(*) FROM usage_events WHERE created_at >= ? AND "
    "created_at < ? AND (? IS NULL OR meter = ?) AND "
    "(? IS NULL OR user_id = ?)");
static struct sql q_export = SQL(
    "SELECT e.id, DATE_FORMAT(e.created_at, '%Y-%m-%dT%H:%i:%s.%fZ'), "
    "e.user_id, u.email, e.meter, e.quantity, e.cost_micros, k.name, "
    "e.idempotency_key, e.metadata FROM usage_events e "
    "LEFT JOIN users u ON u.id = e.user_id "
    "LEFT JOIN service_keys k ON k.id = e.service_key_id "
    "WHERE e.created_at >= ? AND e.created_at < ? AND "
    "(? IS NULL OR e.meter = ?) AND (? IS NULL OR e.user_id = ?) "
    "ORDER BY e.created_at, e.id");
static struct sql q_month = SQL(
    "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01 00:00:00.000000'), "
    "DATE_FORMAT(UTC_TIMESTAMP(6) + INTERVAL 1 SECOND, "
    "'%Y-%m-%d %H:%i:%s.%f')");

/*
 * Appends one CSV field (RFC 4180: quoted when it holds a comma, quote
 * or line break, quotes doubled).  A text field starting with = + - @
 * or a tab is prefixed with ' so a spreadsheet never runs it as a
 * formula.
 */
static void
csv_field(struct buf *b, const char *s, bool text, bool last)
{
	bool	 quote;

	if (s == NULL)
		s = "";
	if (text && (*s == '=' || *s == '+' || *s == '-' || *s == '@' ||
	    *s == '\t' || *s == '\r')) {
		buf_puts(b, "\"'");
		quote = true;
	} else if ((quote = strpbrk(s, ",\"\r\n") != NULL))
		buf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' && quote)
			buf_add(b, "\"", 1);
		buf_add(b, s, 1);
	}
	if (quote)
		buf_add(b, "\"", 1);
	buf_puts(b, last ? "\r\n" : ",");
}

/*
 * GET /api/v1/admin/usage/export ?from=&to=&meter=&user_id= (admins):
 * 200 text/csv of every usage event with from <= created_at < to (the
 * calendar month so far, UTC, when left out), oldest first, with a
 * header row; 422 for a bad time or a period of more than 100,000
 * events; 503.
 */
void
h_admin_usage_export(struct req *r)
{
	static const char *const cols[] = { "id", "created_at", "user_id",
	    "email", "meter", "quantity", "cost_micros", "service",
	    "idempotency_key", "metadata" };
	struct dbrows	 rows, cnt, month;
	struct buf	 b;
	const char	*from, *to, *meter = in_str(r, "meter"),
			*user = in_str(r, "user_id");
	size_t		 i, c;
	int		 rc;

	if (!query_period(r, &from, &to))
		return;
	if (from == NULL || to == NULL) {
		if ((rc = db_select(r->a, &q_month, &month, "")) < 0)
			goto dberr;
		if (from == NULL)
			from = dbv(&month, 0, 0);
		if (to == NULL)
			to = dbv(&month, 0, 1);
	}
	if ((rc = db_select(r->a, &q_export_count, &cnt, "ssssss", from, to,
	    meter, meter, user, user)) < 0)
		goto dberr;
	if (dbi(&cnt, 0, 0) > EXPORT_MAX) {
		reply_invalid1(r, "to", arena_printf(r->a, "the period holds "
		    "%lld events, more than %d: ask for a shorter one",
		    dbi(&cnt, 0, 0), EXPORT_MAX));
		return;
	}
	if ((rc = db_select(r->a, &q_export, &rows, "ssssss", from, to, meter,
	    meter, user, user)) < 0)
		goto dberr;
	/* Who took every user's usage out, and of which period. */
	if ((rc = audit(r, "usage.export", user, arena_printf(r->a,
	    "%s to %s%s%s: %zu events", from, to, meter ? ", meter " : "",
	    meter ? meter : "", rows.n))) < 0)
		goto dberr;
	buf_init(&b, r->a);
	for (c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
		csv_field(&b, cols[c], false, c + 1 == sizeof(cols) /
		    sizeof(cols[0]));
	for (i = 0; i < rows.n; i++)
		for (c = 0; c < rows.ncol; c++)
			csv_field(&b, dbv(&rows, i, c), c == 3 || c == 7 ||
			    c == 8 || c == 9, c + 1 == rows.ncol);
	reply_header(r, "Content-Disposition", arena_printf(r->a,
	    "attachment; filename=\"usage-%.10s-%.10s.csv\"", from, to));
	reply_raw(r, 200, "text/csv; charset=utf-8", b.p, b.len);
	return;
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
