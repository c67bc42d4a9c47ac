/*
 * Operations: the health check and the Prometheus metrics.
 */
#include <string.h>

#include "tollgate.h"

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

/* GET /metrics: 200 with the counters of every worker, loopback only. */
void
h_metrics(struct req *r)
{
	struct buf	 b;

	buf_init(&b, r->a);
	metrics_render(&b);
	reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8",
	    b.p, b.len);
}

/* GET /: 302 to the profile page (which asks for a login when needed). */
void
h_root(struct req *r)
{
	reply_redirect(r, 302, "/profile");
}
