/*
 * The background sender (tollgated --sender): delivers the mail outbox
 * over SMTP, and writes the trial mails when they fall due.  Rows are
 * claimed with a lease, so several senders may run; a relay outage only
 * delays mail (retries back off from 10 s to an hour), and a message the
 * relay accepted is marked sent at once so it is not sent again.  After
 * MAX_ATTEMPTS a message stays visible as failed with its last error.
 * Every attempt of a message carries the same Message-ID (its outbox
 * id), so the rare copy sent twice (the sender died between the relay's
 * "250" and marking the row) can be recognised downstream.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sender/sender.h"

#define MAX_ATTEMPTS	30
#define MARK_TRIES	60	/* seconds to keep marking a sent message */
#define TRIAL_EVERY	5	/* seconds between trial-notice passes */
#define TRIAL_BATCH	"100"

static volatile sig_atomic_t	 stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static struct sql q_due = SQL(
    "SELECT id FROM outbox WHERE status = 'pending' AND "
    "next_attempt_at <= UTC_TIMESTAMP(6) ORDER BY next_attempt_at LIMIT 20");
static struct sql q_claim = SQL(
    "UPDATE outbox SET status = 'sending', locked_by = ?, "
    "locked_until = UTC_TIMESTAMP(6) + INTERVAL 5 MINUTE, "
    "attempts = attempts + 1 WHERE id = ? AND status = 'pending'");
static struct sql q_load = SQL(
    "SELECT to_addr, subject, body_text, body_html, attempts, "
    "DATE_FORMAT(created_at, '%a, %d %b %Y %H:%i:%s +0000') "
    "FROM outbox WHERE id = ?");
static struct sql q_sent = SQL(
    "UPDATE outbox SET status = 'sent', sent_at = UTC_TIMESTAMP(6), "
    "locked_by = NULL, locked_until = NULL, last_error = NULL "
    "WHERE id = ? AND locked_by = ?");
static struct sql q_retry = SQL(
    "UPDATE outbox SET status = IF(attempts >= ?, 'failed', 'pending'), "
    "next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL "
    "LEAST(3600, 10 * POW(2, LEAST(attempts - 1, 12))) SECOND, "
    "locked_by = NULL, locked_until = NULL, last_error = ? "
    "WHERE id = ? AND locked_by = ?");
/* A sender that died holding a lease: its rows go back to the queue. */
static struct sql q_expire = SQL(
    "UPDATE outbox SET status = 'pending', locked_by = NULL, "
    "locked_until = NULL WHERE status = 'sending' AND "
    "locked_until < UTC_TIMESTAMP(6)");

/*
 * Marks a delivered message sent.  The relay has it now, so this must
 * not be lost: while the database is unreachable it is tried again (for
 * up to MARK_TRIES seconds, well inside the lease), since a row left
 * 'sending' would go back to the queue when its lease ran out and be
 * delivered a second time.  Returns true when the row is marked.
 */
static bool
mark_sent(const char *id, const char *me)
{
	struct timespec	 pause = { 1, 0 };
	int		 i, rc = DB_FAIL;

	for (i = 0; i < MARK_TRIES; i++) {
		if ((rc = db_exec(&q_sent, "ss", id, me)) >= 0)
			return true;
		if (rc != DB_DOWN && rc != DB_RETRY)
			break;
		nanosleep(&pause, NULL);
	}
	log_err("mail_mark_failed", " id=%s rc=%d", id, rc);
	return false;
}

/* Delivers one claimed message and records the outcome. */
static void
deliver(struct arena *a, const char *id, const char *me)
{
	struct dbrows	 row;
	char		 err[256];
	char		*msg;
	size_t		 len;

	if (db_select(a, &q_load, &row, "s", id) != 1)
		return;		/* the lease runs out; it comes back */
	msg = mail_compose(a, id, mail_from_header(a), dbv(&row, 0, 0),
	    dbv(&row, 0, 1), dbv(&row, 0, 2), dbv(&row, 0, 3), dbv(&row, 0, 5),
	    &len);
	if (smtp_send(cfg.smtp_from, dbv(&row, 0, 0), msg, len, err,
	    sizeof(err)) == 0) {
		if (mark_sent(id, me))
			log_info("mail_sent", " id=%s attempt=%lld", id,
			    dbi(&row, 0, 4));
		return;
	}
	log_warn("mail_deferred", " id=%s attempt=%lld err=\"%s\"", id,
	    dbi(&row, 0, 4), err);
	db_exec(&q_retry, "isss", (long long)MAX_ATTEMPTS, err, id, me);
}

/* One pass over the outbox.  Returns the number of messages tried. */
static int
outbox_pass(struct arena *a, const char *me)
{
	struct dbrows	 due;
	size_t		 i;
	int		 n, tried = 0;

	db_exec(&q_expire, "");
	if ((n = db_select(a, &q_due, &due, "")) <= 0)
		return 0;
	for (i = 0; i < due.n && !stop; i++) {
		const char *id = dbv(&due, i, 0);

		if (db_exec(&q_claim, "ss", me, id) != 1)
			continue;	/* another sender has it */
		deliver(a, id, me);
		tried++;
	}
	return tried;
}

/*
 * Trial notices (contract section 9): "ending" mails 7, 3 and 1 days
 * before a trial's end, and "ended" after it, each at most once per user
 * (trial_notices).  A user who verified late enough to be inside several
 * windows at once gets only the tightest one: a notice is due when
 * neither it nor a tighter one was recorded.  Only users whose plan is
 * still the trial are told it is ending; only users without an admin's
 * plan or a live subscription are told it has ended.  The notice row and
 * its mail are written in one transaction, and the row's INSERT IGNORE
 * decides which of several senders sends it.
 */
static const struct {
	const char	*kind;
	int		 days;
	const char	*kinds;	/* it and the tighter ones */
} ending[] = {
	{ "1d", 1, "1d" },
	{ "3d", 3, "1d,3d" },
	{ "7d", 7, "1d,3d,7d" },
};

static struct sql q_trial_ending = SQL(
    "SELECT u.id, u.email, DATE_FORMAT(u.trial_ends_at, "
    "'%Y-%m-%d %H:%i UTC'), GREATEST(1, CEIL(TIMESTAMPDIFF(SECOND, "
    "UTC_TIMESTAMP(6), u.trial_ends_at) / 86400)), "
    "DATE_FORMAT(u.trial_ends_at, '%Y-%m-%d %H:%i:%s.%f') "
    "FROM users u WHERE u.trial_ends_at > UTC_TIMESTAMP(6) AND "
    "u.trial_ends_at <= UTC_TIMESTAMP(6) + INTERVAL ? DAY AND "
    "u.email_verified_at IS NOT NULL AND u.email IS NOT NULL AND "
    "u.disabled_at IS NULL AND "
    "tg_plan(u.id) = 'trial' AND NOT EXISTS (SELECT 1 FROM "
    "trial_notices n WHERE n.user_id = u.id AND FIND_IN_SET(n.kind, ?)) "
    "LIMIT " TRIAL_BATCH);
static struct sql q_trial_ended = SQL(
    "SELECT u.id, u.email, DATE_FORMAT(u.trial_ends_at, "
    "'%Y-%m-%d %H:%i:%s.%f') FROM users u "
    "WHERE u.trial_ends_at <= UTC_TIMESTAMP(6) AND "
    "u.trial_ends_at > UTC_TIMESTAMP(6) - INTERVAL 7 DAY AND "
    "u.email_verified_at IS NOT NULL AND u.email IS NOT NULL AND "
    "u.disabled_at IS NULL AND "
    "u.plan_override IS NULL AND tg_live_sub(u.id) IS NULL AND NOT EXISTS (SELECT 1 FROM "
    "trial_notices n WHERE n.user_id = u.id AND n.kind = 'ended') "
    "LIMIT " TRIAL_BATCH);
static struct sql q_notice = SQL(
    "INSERT IGNORE INTO trial_notices (user_id, kind, trial_ends_at) "
    "VALUES (?, ?, ?)");

/*
 * Records notice kind for user uid and queues its mail, in one
 * transaction.  days is 0 for "ended".
 */
static void
trial_notice(struct req *r, const char *uid, const char *to,
    const char *kind, int days, const char *ends, const char *ends_raw)
{
	int	 rc;

	if ((rc = db_begin()) < 0)
		return;
	if ((rc = db_exec(&q_notice, "sss", uid, kind, ends_raw)) < 0)
		goto fail;
	if (rc == 0) {		/* another sender has done it */
		db_rollback();
		return;
	}
	rc = days > 0 ? mail_trial_ending(r, uid, to, days, ends) :
	    mail_trial_ended(r, uid, to);
	if (rc < 0 || (rc = db_commit()) < 0)
		goto fail;
	log_info("trial_notice", " user=%s kind=%s", uid, kind);
	return;
fail:
	db_rollback();
	log_warn("trial_notice_failed", " user=%s kind=%s rc=%d", uid, kind,
	    rc);
}

/* One pass of trial notices. */
static void
trial_pass(struct arena *a)
{
	struct req	 r;
	struct dbrows	 rows;
	size_t		 k, i;

	memset(&r, 0, sizeof(r));
	r.a = a;
	for (k = 0; k < sizeof(ending) / sizeof(ending[0]) && !stop; k++) {
		if (db_select(a, &q_trial_ending, &rows, "is",
		    (long long)ending[k].days, ending[k].kinds) <= 0)
			continue;
		for (i = 0; i < rows.n && !stop; i++)
			trial_notice(&r, dbv(&rows, i, 0), dbv(&rows, i, 1),
			    ending[k].kind, (int)dbi(&rows, i, 3),
			    dbv(&rows, i, 2), dbv(&rows, i, 4));
	}
	if (stop || db_select(a, &q_trial_ended, &rows, "") <= 0)
		return;
	for (i = 0; i < rows.n && !stop; i++)
		trial_notice(&r, dbv(&rows, i, 0), dbv(&rows, i, 1), "ended",
		    0, NULL, dbv(&rows, i, 2));
}

int
sender_run(void)
{
	struct sigaction	 sa;
	struct arena		*a;
	char			 me[128], host[64];
	struct timespec		 pause = { 1, 0 };
	double			 last_trial = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (outside_init() < 0 || (a = arena_new()) == NULL)
		return 1;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(me, sizeof(me), "%s:%d", host, (int)getpid());
	log_info("sender_start", " id=%s", me);
	while (!stop) {
		int worked;

		if (now_seconds() - last_trial >= TRIAL_EVERY) {
			trial_pass(a);
			arena_reset(a);
			guest_gc(a);	/* guests never claimed */
			last_trial = now_seconds();
			arena_reset(a);
		}
		worked = outbox_pass(a, me);

		arena_reset(a);
		worked += billing_pass(a, me);	/* Stripe: meter events, cancels */
		if (worked == 0 && !stop)
			nanosleep(&pause, NULL);
	}
	db_close();
	arena_free(a);
	log_info("sender_stop", "%s", "");
	return 0;
}
