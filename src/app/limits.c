/*
 * Limits: the per-user, per-minute rate windows kept in the database so
 * they hold across every worker and host.  A window is 60 seconds from
 * the user's first counted request, on the database's clock.
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"

/*
 * Counts one request in the user's API window (the rate window's rule:
 * tg_window_live, sql/routines/rules.sql), opening a new window when the
 * old one is over.  Assignments run left to right, so count is decided
 * on the old window_start before it moves.
 */
static struct sql q_api_hit = SQL(
    "INSERT INTO rate_windows (user_id, bucket, window_start, count) "
    "VALUES (?, 'api', UTC_TIMESTAMP(6), 1) ON DUPLICATE KEY UPDATE "
    "count = IF(tg_window_live(window_start, UTC_TIMESTAMP(6)), "
    "count + 1, 1), window_start = IF(tg_window_live(window_start, "
    "UTC_TIMESTAMP(6)), window_start, UTC_TIMESTAMP(6))");
static struct sql q_api_window = SQL(
    "SELECT count, GREATEST(1, CEIL(tg_window_left_us(window_start, "
    "UTC_TIMESTAMP(6)) / 1000000)) "
    "FROM rate_windows WHERE user_id = ? AND bucket = 'api'");

/* Adds X-RateLimit-Limit, -Remaining and -Reset. */
void
ratelimit_headers(struct req *r, long limit, long remaining, long reset)
{
	char	 v[32];

	snprintf(v, sizeof(v), "%ld", limit);
	reply_header(r, "X-RateLimit-Limit", v);
	snprintf(v, sizeof(v), "%ld", remaining < 0 ? 0 : remaining);
	reply_header(r, "X-RateLimit-Remaining", v);
	snprintf(v, sizeof(v), "%ld", reset);
	reply_header(r, "X-RateLimit-Reset", v);
}

/*
 * Applies [limits] api_per_minute to a signed-in caller of tollgate's
 * own API.  Returns true when the request may go on; otherwise it has
 * been answered (429, or 503 when the database is down).
 */
bool
api_limit(struct req *r)
{
	struct dbrows	 row;
	long		 count, reset;
	int		 rc;

	if (r->route == NULL || !(r->route->flags & ROUTE_API) ||
	    r->who.user_id == NULL)
		return true;
	if ((rc = db_exec(&q_api_hit, "s", r->who.user_id)) < 0 ||
	    (rc = db_select(r->a, &q_api_window, &row, "s",
	    r->who.user_id)) < 0) {
		reply_db(r, rc);
		return false;
	}
	count = rc == 1 ? (long)dbi(&row, 0, 0) : 1;
	reset = rc == 1 ? (long)dbi(&row, 0, 1) : 60;
	if (count > cfg.api_per_minute) {
		reply_rate_limited(r, cfg.api_per_minute, reset);
		return false;
	}
	ratelimit_headers(r, cfg.api_per_minute, cfg.api_per_minute - count,
	    reset);
	return true;
}
