/*
 * The background sender (tollgated --sender): delivers the mail outbox
 * over SMTP.  Rows are claimed with a lease, so several senders may run;
 * a relay outage only delays mail (retries back off from 10 s to an
 * hour), and a message the relay accepted is marked sent at once so it
 * is not sent again.  After MAX_ATTEMPTS a message stays visible as
 * failed with its last error.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tollgate.h"

#define MAX_ATTEMPTS	30
#define BATCH		20

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
 * Builds the RFC 5322 message: plain text, and HTML when there is one,
 * as multipart/alternative.  Returns it in the arena.
 */
static char *
compose(struct arena *a, const char *id, const char *to, const char *subject,
    const char *text, const char *html, const char *date, size_t *len)
{
	struct buf	 b;
	const char	*boundary = arena_printf(a, "tg-%s", id);
	const char	*s;
	bool		 ascii = true;

	for (s = subject; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			ascii = false;
	buf_init(&b, a);
	buf_printf(&b, "Date: %s\r\nFrom: %s\r\nTo: <%s>\r\n", date,
	    cfg.smtp_from, to);
	if (ascii)
		buf_printf(&b, "Subject: %s\r\n", subject);
	else {
		size_t	 n = strlen(subject);
		size_t	 elen = sodium_base64_ENCODED_LEN(n,
		    sodium_base64_VARIANT_ORIGINAL);
		char	*enc = arena_alloc(a, elen);

		/* RFC 2047: non-ASCII subjects travel base64-encoded. */
		sodium_bin2base64(enc, elen, (const unsigned char *)subject,
		    n, sodium_base64_VARIANT_ORIGINAL);
		buf_printf(&b, "Subject: =?UTF-8?B?%s?=\r\n", enc);
	}
	buf_printf(&b, "Message-ID: <%s@tollgate>\r\nMIME-Version: 1.0\r\n",
	    id);
	if (html == NULL) {
		buf_puts(&b, "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_puts(&b, text);
		buf_puts(&b, "\r\n");
	} else {
		buf_printf(&b, "Content-Type: multipart/alternative; "
		    "boundary=\"%s\"\r\n\r\n--%s\r\n", boundary, boundary);
		buf_puts(&b, "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_puts(&b, text);
		buf_printf(&b, "\r\n--%s\r\n", boundary);
		buf_puts(&b, "Content-Type: text/html; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_puts(&b, html);
		buf_printf(&b, "\r\n--%s--\r\n", boundary);
	}
	*len = b.len;
	return b.p;
}

/* Delivers one claimed message and records the outcome. */
static void
deliver(struct arena *a, const char *id, const char *me)
{
	struct dbrows	 row;
	char		 err[256];
	char		*msg;
	size_t		 len;
	int		 rc;

	if (db_select(a, &q_load, &row, "s", id) != 1)
		return;
	msg = compose(a, id, dbv(&row, 0, 0), dbv(&row, 0, 1), dbv(&row, 0, 2),
	    dbv(&row, 0, 3), dbv(&row, 0, 5), &len);
	if (smtp_send(cfg.smtp_from, dbv(&row, 0, 0), msg, len, err,
	    sizeof(err)) == 0) {
		if ((rc = db_exec(&q_sent, "ss", id, me)) < 0)
			log_err("mail_mark_failed", " id=%s rc=%d", id, rc);
		else
			log_info("mail_sent", " id=%s", id);
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

int
sender_run(void)
{
	struct sigaction	 sa;
	struct arena		*a;
	char			 me[128], host[64];
	struct timespec		 pause = { 1, 0 };

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
		int worked = outbox_pass(a, me);

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
