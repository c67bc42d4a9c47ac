/*
 * Purging what has expired (tollgatectl gc, run from a timer): refresh
 * tokens past their life, sessions revoked or expired for more than 30
 * days (kept that long for the account's own history), one-time tokens
 * and device codes a day past their expiry, login and mail throttle rows
 * and rate windows a day past their windows, mail sent more than 30 days
 * ago, and POST /api/v1/check's remembered answers past their life.
 * Nothing live goes: every statement keys on an expiry, revocation or
 * sending time well in the past.  Rows go in batches, so no statement
 * holds many locks for long.
 */
#include "app/app.h"

#define GC_BATCH	"5000"

static struct sql q_gc_refresh = SQL(
    "DELETE FROM refresh_tokens WHERE expires_at < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_sessions = SQL(
    "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < "
    "UTC_TIMESTAMP(6) - INTERVAL 30 DAY) OR (expires_at IS NOT NULL AND "
    "expires_at < UTC_TIMESTAMP(6) - INTERVAL 30 DAY) LIMIT " GC_BATCH);
static struct sql q_gc_tokens = SQL(
    "DELETE FROM tokens WHERE expires_at < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_devices = SQL(
    "DELETE FROM device_codes WHERE expires_at < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_logins = SQL(
    "DELETE FROM login_failures WHERE window_start < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_mail = SQL(
    "DELETE FROM mail_throttle WHERE window_start < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_rates = SQL(
    "DELETE FROM rate_windows WHERE window_start < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_buckets = SQL(
    "DELETE FROM bucket_windows WHERE window_start < "
    "UTC_TIMESTAMP(6) - INTERVAL 1 DAY LIMIT " GC_BATCH);
static struct sql q_gc_outbox = SQL(
    "DELETE FROM outbox WHERE status = 'sent' AND sent_at < "
    "UTC_TIMESTAMP(6) - INTERVAL 30 DAY LIMIT " GC_BATCH);
static struct sql q_gc_checks = SQL(
    "DELETE FROM check_requests WHERE created_at < "
    "UTC_TIMESTAMP(6) - " CHECK_ANSWER_LIFE " LIMIT " GC_BATCH);

static struct sql *const purges[GC_KINDS] = {
	&q_gc_refresh, &q_gc_sessions, &q_gc_tokens, &q_gc_devices,
	&q_gc_logins, &q_gc_mail, &q_gc_rates, &q_gc_buckets, &q_gc_outbox,
	&q_gc_checks,
};

const char *const gc_names[GC_KINDS] = {
	"refresh_tokens", "sessions", "tokens", "device_codes",
	"login_failures", "mail_throttle", "rate_windows", "bucket_windows",
	"outbox", "check_requests",
};

/*
 * Purges every kind of expired row, batch after batch, counting what
 * went into counts[] (in gc_names' order).  Returns 0, or the DB_* code
 * of the statement that failed (the counts so far are kept).
 */
int
gc_core(long long counts[GC_KINDS])
{
	int	 k, rc, tries;

	for (k = 0; k < GC_KINDS; k++) {
		counts[k] = 0;
		tries = 0;
		for (;;) {
			if ((rc = db_exec(purges[k], "")) == DB_RETRY &&
			    ++tries < DB_TX_TRIES)
				continue;
			if (rc < 0)
				return rc;
			counts[k] += rc;
			if (rc < 5000)
				break;
		}
	}
	return 0;
}
