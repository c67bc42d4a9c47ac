/*
 * Operations: the health check and the Prometheus metrics.
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"

/* GET /healthz: 200 when the database answers, else 503. */
void
h_healthz(struct req *r)
{
	struct json_object	*o;

	if (db_ping() < 0) {
		reply_db(r, DB_DOWN);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ok"));
	reply_json(r, 200, o);
}

/* The depths of the queues the sender drains, read when scraped. */
static struct sql q_queues = SQL(
    "SELECT (SELECT COUNT(*) FROM outbox WHERE status IN "
    "('pending', 'sending')), (SELECT COUNT(*) FROM outbox WHERE "
    "status = 'failed'), (SELECT COUNT(*) FROM meter_reports WHERE "
    "status = 'pending'), (SELECT COUNT(*) FROM meter_reports WHERE "
    "status = 'failed')");

/*
 * GET /metrics: 200 with the counters of every worker and the queue
 * depths (left out while the database is down), loopback only.
 */
void
h_metrics(struct req *r)
{
	struct dbrows	 q;
	struct buf	 b;

	buf_init(&b, r->a);
	metrics_render(&b);
	eng_metrics_render(&b);
	if (db_select(r->a, &q_queues, &q, "") == 1)
		buf_printf(&b, "# HELP tollgate_queue_depth Rows waiting in "
		    "the sender's queues.\n# TYPE tollgate_queue_depth gauge\n"
		    "tollgate_queue_depth{queue=\"mail\",state=\"pending\"} "
		    "%lld\ntollgate_queue_depth{queue=\"mail\",state=\"failed\"} "
		    "%lld\ntollgate_queue_depth{queue=\"meter_events\","
		    "state=\"pending\"} %lld\ntollgate_queue_depth{queue="
		    "\"meter_events\",state=\"failed\"} %lld\n", dbi(&q, 0, 0),
		    dbi(&q, 0, 1), dbi(&q, 0, 2), dbi(&q, 0, 3));
	reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8",
	    b.p, b.len);
}

/* GET /: 302 to the profile page (which asks for a login when needed). */
void
h_root(struct req *r)
{
	reply_redirect(r, 302, "/profile");
}

static struct sql q_schema = SQL(
    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
static struct sql q_routines = SQL(
    "SELECT digest FROM schema_routines WHERE id = 1");

/*
 * Compares the database's schema version (its highest applied
 * migration) and the digest of its routines (sql/routines, recorded by
 * tollgatectl migrate) with the ones this build expects.  Returns 0 when
 * they are equal, DB_DOWN when the database cannot be asked, and 1 when
 * they differ, with a sentence for the operator in msg.
 */
int
schema_check(char *msg, size_t len)
{
	struct arena	*a;
	struct dbrows	 q, rq;
	long long	 have;
	bool		 same = false;
	int		 rc, rrc = 0, want = tg_schema_version();

	if ((a = arena_new()) == NULL) {
		snprintf(msg, len, "out of memory");
		return DB_DOWN;
	}
	if (db_ensure() < 0) {
		arena_free(a);
		snprintf(msg, len, "the database cannot be reached");
		return DB_DOWN;
	}
	rc = db_select(a, &q_schema, &q, "");
	have = rc == 1 ? dbi(&q, 0, 0) : 0;
	/* No schema_routines table (DB_FAIL): an older tollgatectl migrated. */
	if (rc != DB_DOWN && (rrc = db_select(a, &q_routines, &rq, "")) == 1)
		same = strcmp(dbv(&rq, 0, 0), tg_routines_digest()) == 0;
	arena_free(a);
	if (rc == DB_DOWN || rrc == DB_DOWN) {
		snprintf(msg, len, "the database cannot be reached");
		return DB_DOWN;
	}
	/* No schema_migrations table (DB_FAIL): nothing was ever applied. */
	if (have == want && same) {
		snprintf(msg, len, "schema version %lld", have);
		return 0;
	}
	if (have == want) {
		snprintf(msg, len, "the database's stored routines are not "
		    "the ones this tollgate %s was built with (sql/routines): "
		    "run its 'tollgatectl migrate'", tg_version());
		return 1;
	}
	if (have < want)
		snprintf(msg, len, "the database's schema is at version %lld, "
		    "older than this tollgate %s expects (%d): run "
		    "'tollgatectl migrate'", have, tg_version(), want);
	else
		snprintf(msg, len, "the database's schema is at version %lld, "
		    "newer than this tollgate %s knows (%d): a newer tollgate "
		    "migrated it; run that version (or restore a backup made "
		    "before its upgrade)", have, tg_version(), want);
	return 1;
}
