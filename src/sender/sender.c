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

static volatile sig_atomic_t	 stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

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
		if ((rc = outbox_sent(id, me)) >= 0)
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

	if (outbox_load(a, id, &row) != 1)
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
	outbox_retry(id, me, err, MAX_ATTEMPTS);
}

/* One pass over the outbox.  Returns the number of messages tried. */
static int
outbox_pass(struct arena *a, const char *me)
{
	struct dbrows	 due;
	size_t		 i;
	int		 n, tried = 0;

	outbox_expire();
	if ((n = outbox_due(a, &due)) <= 0)
		return 0;
	for (i = 0; i < due.n && !stop; i++) {
		const char *id = dbv(&due, i, 0);

		if (outbox_claim(id, me) != 1)
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

/*
 * Records notice kind for user uid and queues its mail (mail.c's
 * trial_notice); days is 0 for "ended".
 */
static void
trial_notice_send(struct req *r, const char *uid, const char *to,
    const char *kind, int days, const char *ends, const char *ends_raw)
{
	int	 rc;

	if ((rc = trial_notice(r, uid, to, kind, days, ends, ends_raw)) < 0)
		log_warn("trial_notice_failed", " user=%s kind=%s rc=%d", uid,
		    kind, rc);
	else if (rc > 0)
		log_info("trial_notice", " user=%s kind=%s", uid, kind);
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
		if (trial_ending_due(a, ending[k].days, ending[k].kinds,
		    &rows) <= 0)
			continue;
		for (i = 0; i < rows.n && !stop; i++)
			trial_notice_send(&r, dbv(&rows, i, 0),
			    dbv(&rows, i, 1), ending[k].kind,
			    (int)dbi(&rows, i, 3), dbv(&rows, i, 2),
			    dbv(&rows, i, 4));
	}
	if (stop || trial_ended_due(a, &rows) <= 0)
		return;
	for (i = 0; i < rows.n && !stop; i++)
		trial_notice_send(&r, dbv(&rows, i, 0), dbv(&rows, i, 1),
		    "ended", 0, NULL, dbv(&rows, i, 2));
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
