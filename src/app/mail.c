/*
 * Mail: messages are written to the outbox in the caller's transaction
 * (so a mail exists exactly when the event that causes it committed) and
 * delivered later by the sender.  Every message has a plain-text part
 * and an HTML part; links are built on [server] base_url.
 */
#include <string.h>

#include <sodium.h>

#include "app/app.h"

static struct sql q_outbox = SQL(
    "INSERT INTO outbox (id, user_id, kind, to_addr, subject, body_text, "
    "body_html) VALUES (?, ?, ?, ?, ?, ?, ?)");
/* Counts one mail toward the recipient's hourly limit; see mail_allowed. */
static struct sql q_throttle = SQL(
    "INSERT INTO mail_throttle (email_hash, window_start, count) "
    "VALUES (?, UTC_TIMESTAMP(6), 1) ON DUPLICATE KEY UPDATE "
    "count = IF(window_start <= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR, 1, "
    "count + 1), window_start = IF(window_start <= UTC_TIMESTAMP(6) - "
    "INTERVAL 1 HOUR, UTC_TIMESTAMP(6), window_start)");
static struct sql q_throttle_count = SQL(
    "SELECT count FROM mail_throttle WHERE email_hash = ?");

/*
 * Counts a mail to email_lc against [limits] mail_per_hour.  Returns 1
 * when it may be sent, 0 when the recipient has had enough this hour,
 * or a DB_* code.
 */
int
mail_allowed(struct req *r, const char *email_lc)
{
	struct dbrows	 row;
	const char	*h = token_hash(r->a, arena_printf(r->a, "mail|%s",
			    email_lc));
	int		 rc;

	if ((rc = db_exec(&q_throttle, "s", h)) < 0)
		return rc;
	if ((rc = db_select(r->a, &q_throttle_count, &row, "s", h)) < 0)
		return rc;
	return rc == 1 && dbi(&row, 0, 0) <= cfg.mail_per_hour ? 1 : 0;
}

/*
 * Branding: s with every "{product}" replaced by [server] name, in the
 * arena.  Every mail text says {product} where it names the service.
 */
char *
mail_brand(struct arena *a, const char *s)
{
	static const char	 tag[] = "{product}";
	struct buf		 b;
	const char		*p;

	buf_init(&b, a);
	while ((p = strstr(s, tag)) != NULL) {
		buf_add(&b, s, (size_t)(p - s));
		buf_puts(&b, cfg.product_name);
		s = p + sizeof(tag) - 1;
	}
	buf_puts(&b, s);
	return b.p;
}

/*
 * The From: header of every mail: [smtp] from, with [smtp] from_name as
 * its display name when set (RFC 2047-encoded when not ASCII).
 */
const char *
mail_from_header(struct arena *a)
{
	const char	*n = cfg.smtp_from_name, *s;
	bool		 ascii = true;

	if (n == NULL || *n == '\0')
		return cfg.smtp_from;
	for (s = n; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			ascii = false;
	if (ascii)
		return arena_printf(a, "\"%s\" <%s>", n, cfg.smtp_from);
	{
		size_t	 len = strlen(n), elen = sodium_base64_ENCODED_LEN(len,
			    sodium_base64_VARIANT_ORIGINAL);
		char	*enc = arena_alloc(a, elen);

		sodium_bin2base64(enc, elen, (const unsigned char *)n, len,
		    sodium_base64_VARIANT_ORIGINAL);
		return arena_printf(a, "=?UTF-8?B?%s?= <%s>", enc,
		    cfg.smtp_from);
	}
}

/*
 * Queues a message.  text is the plain-text body; the HTML part is the
 * same text, escaped, with the link (when given) as an anchor.  {product}
 * in the subject and the text becomes [server] name, and with [server]
 * support_url set every mail ends with a line naming it.  Returns 0 or a
 * DB_* code.
 */
int
mail_queue(struct req *r, const char *user_id, const char *kind,
    const char *to, const char *subject, const char *text, const char *link)
{
	struct buf	 html;
	const char	*p, *line;
	int		 rc;

	subject = mail_brand(r->a, subject);
	text = mail_brand(r->a, text);
	if (cfg.support_url[0] != '\0')
		text = arena_printf(r->a, "%s\nHelp and support: %s\n", text,
		    cfg.support_url);
	buf_init(&html, r->a);
	buf_puts(&html, "<!doctype html><html><body style=\"font-family:"
	    "sans-serif\">");
	for (p = text; *p != '\0';) {
		size_t n = strcspn(p, "\n");

		line = arena_strndup(r->a, p, n);
		if (link != NULL && strcmp(line, link) == 0) {
			buf_puts(&html, "<p><a href=\"");
			buf_html(&html, link);
			buf_puts(&html, "\">");
			buf_html(&html, link);
			buf_puts(&html, "</a></p>");
		} else if (n > 0) {
			buf_puts(&html, "<p>");
			buf_html(&html, line);
			buf_puts(&html, "</p>");
		}
		p += n;
		if (*p == '\n')
			p++;
	}
	buf_puts(&html, "</body></html>");
	rc = db_exec(&q_outbox, "sssssss", new_id(r->a), user_id, kind, to,
	    subject, text, html.p);
	return rc < 0 ? rc : 0;
}

/*
 * The messages of contract section 9.  Their texts are in
 * share/mail-texts.txt (or the operator's copy, [server] mail_texts);
 * each function here fills in its placeholders and queues it with
 * mail_queue in the caller's transaction; every link is built on
 * [server] base_url.  Each returns 0 or a DB_* code.
 */

int
mail_text(struct req *r, const char *uid, const char *name,
    const char *kind, const char *to, const char *link,
    const char *const *vars)
{
	const char	*subject, *text;

	if ((text = mail_message(r->a, name, vars, &subject)) == NULL)
		return DB_FAIL;
	return mail_queue(r, uid, kind, to, subject, text, link);
}

/*
 * A mail whose link (base_url, path, the token) is the point of it:
 * text name, recorded as kind name too.
 */
static int
mail_link(struct req *r, const char *uid, const char *to, const char *name,
    const char *path, const char *token)
{
	const char	*link = arena_printf(r->a, "%s%s?token=%s",
			    cfg.base_url, path, token);
	const char	*vars[] = { "link", link, NULL };

	return mail_text(r, uid, name, name, to, link, vars);
}

/* The verification mail with its link. */
int
mail_verify(struct req *r, const char *uid, const char *to, const char *token)
{
	return mail_link(r, uid, to, "verification", "/verify-email", token);
}

/*
 * The welcome mail, sent once when an address is first verified: with
 * the trial that starts (ends, credits), or saying that this address had
 * its trial before, or plain.
 */
int
mail_welcome(struct req *r, const char *uid, const char *to,
    enum welcome kind, const char *ends, long long credits)
{
	const char	*pv[] = { "ends", ends, "credits",
			    arena_printf(r->a, "%lld", credits), NULL };
	const char	*trial = "";
	const char	*vars[] = { "trial", NULL, NULL };

	if (kind == WELCOME_TRIAL)
		trial = arena_printf(r->a, "%s\n\n", mail_part(r->a,
		    "welcome.trial", pv));
	else if (kind == WELCOME_HAD_TRIAL)
		trial = arena_printf(r->a, "%s\n\n", mail_part(r->a,
		    "welcome.had_trial", pv));
	vars[1] = trial;
	return mail_text(r, uid, "welcome", "welcome", to, NULL, vars);
}

/* The password reset mail with its link (valid for an hour). */
int
mail_reset(struct req *r, const char *uid, const char *to, const char *token)
{
	return mail_link(r, uid, to, "password_reset", "/reset-password",
	    token);
}

/* The one-time login link (valid for 15 minutes). */
int
mail_magic(struct req *r, const char *uid, const char *to, const char *token)
{
	return mail_link(r, uid, to, "magic_link", "/auth/magic", token);
}

/* The verification link of an email change, to the new address. */
int
mail_email_change(struct req *r, const char *uid, const char *to,
    const char *token)
{
	return mail_link(r, uid, to, "email_change", "/verify-email", token);
}

/* The notice to the old address that a change to new_email was asked. */
int
mail_email_change_notice(struct req *r, const char *uid, const char *to,
    const char *new_email)
{
	const char	*vars[] = { "new_email", new_email, NULL };

	return mail_text(r, uid, "email_change_notice", "email_change_notice",
	    to, NULL, vars);
}

/*
 * A security notice: what is a sentence saying what happened to the
 * account (e.g. "Your password was changed.").  Also for the API key
 * and TOTP issues.
 */
int
mail_security_notice(struct req *r, const char *uid, const char *to,
    const char *what)
{
	const char	*vars[] = { "what", what, "address",
			    r->remote_addr != NULL ? r->remote_addr : "(none)",
			    NULL };

	return mail_text(r, uid, "security_notice", "security_notice", to,
	    NULL, vars);
}

/* The trial is ending: days left (1 or more), ends at the given time. */
int
mail_trial_ending(struct req *r, const char *uid, const char *to, int days,
    const char *ends)
{
	const char	*vars[] = { "days", arena_printf(r->a, "%d", days),
			    "ends", ends, NULL };

	return mail_text(r, uid, days == 1 ? "trial_ending.tomorrow" :
	    "trial_ending", "trial_ending", to, NULL, vars);
}

/* The trial has ended. */
int
mail_trial_ended(struct req *r, const char *uid, const char *to)
{
	const char	*pv[] = { "plan", cfg.trial_fallback_plan, NULL };
	const char	*vars[] = { "next", mail_part(r->a,
			    cfg.trial_fallback_plan[0] != '\0' ?
			    "trial_ended.fallback" : "trial_ended.no_plan", pv),
			    NULL };

	return mail_text(r, uid, "trial_ended", "trial_ended", to, NULL, vars);
}

/* The account was deleted (sent after the fact to its last address). */
int
mail_account_deleted(struct req *r, const char *uid, const char *to)
{
	return mail_text(r, uid, "account_deleted", "account_deleted", to,
	    NULL, NULL);
}

/* Appends text with every line ending made CRLF (bare LF or CR too). */
static void
buf_crlf(struct buf *b, const char *text)
{
	const char	*p = text;
	size_t		 n;

	while (*p != '\0') {
		n = strcspn(p, "\r\n");
		buf_add(b, p, n);
		p += n;
		if (*p == '\0')
			break;
		buf_add(b, "\r\n", 2);
		if (p[0] == '\r' && p[1] == '\n')
			p += 2;
		else
			p++;
	}
}

/*
 * Builds the RFC 5322 message of an outbox row: headers, then the plain
 * text alone or, with html, a multipart/alternative of both parts.  Every
 * line ends in CRLF; a non-ASCII subject is RFC 2047-encoded; the
 * Message-ID is made from the row's id, so every attempt of one message
 * carries the same one.  Returns the message in the arena (its length in
 * *len).  SMTP dot-stuffing is libcurl's.
 */
char *
mail_compose(struct arena *a, const char *id, const char *from,
    const char *to, const char *subject, const char *text, const char *html,
    const char *date, size_t *len)
{
	struct buf	 b;
	const char	*boundary = arena_printf(a, "tg-%s", id);
	const char	*s;
	bool		 ascii = true;

	for (s = subject; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80 || *s == '\r' || *s == '\n')
			ascii = false;
	buf_init(&b, a);
	buf_printf(&b, "Date: %s\r\nFrom: %s\r\nTo: <%s>\r\n", date, from, to);
	if (ascii)
		buf_printf(&b, "Subject: %s\r\n", subject);
	else {
		size_t	 n = strlen(subject);
		size_t	 elen = sodium_base64_ENCODED_LEN(n,
		    sodium_base64_VARIANT_ORIGINAL);
		char	*enc = arena_alloc(a, elen);

		sodium_bin2base64(enc, elen, (const unsigned char *)subject,
		    n, sodium_base64_VARIANT_ORIGINAL);
		buf_printf(&b, "Subject: =?UTF-8?B?%s?=\r\n", enc);
	}
	buf_printf(&b, "Message-ID: <%s@tollgate>\r\nMIME-Version: 1.0\r\n",
	    id);
	if (html == NULL) {
		buf_puts(&b, "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_crlf(&b, text);
		buf_puts(&b, "\r\n");
	} else {
		buf_printf(&b, "Content-Type: multipart/alternative; "
		    "boundary=\"%s\"\r\n\r\n--%s\r\n", boundary, boundary);
		buf_puts(&b, "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_crlf(&b, text);
		buf_printf(&b, "\r\n--%s\r\n", boundary);
		buf_puts(&b, "Content-Type: text/html; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_crlf(&b, html);
		buf_printf(&b, "\r\n--%s--\r\n", boundary);
	}
	*len = b.len;
	return b.p;
}

/* ------------------------------------------------------------------ */
/* The sender's side (sender.c): outbox leases and trial notices.      */
/* ------------------------------------------------------------------ */

#define TRIAL_BATCH	"100"

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

/* Returns leases run out to the queue.  Rows changed or DB_*. */
int
outbox_expire(void)
{
	return db_exec(&q_expire, "");
}

/* The ids of up to 20 messages due, in *due.  Row count or DB_*. */
int
outbox_due(struct arena *a, struct dbrows *due)
{
	return db_select(a, &q_due, due, "");
}

/*
 * Leases message id to sender me (5 minutes).  Returns 1 when this
 * sender has it, 0 when another has, or a DB_* code.
 */
int
outbox_claim(const char *id, const char *me)
{
	return db_exec(&q_claim, "ss", me, id);
}

/*
 * Message id in *row: to, subject, text, html, attempts, the Date:
 * header's value.  Returns 1, 0, or a DB_* code.
 */
int
outbox_load(struct arena *a, const char *id, struct dbrows *row)
{
	return db_select(a, &q_load, row, "s", id);
}

/* Marks message id, leased by me, sent.  Rows changed or DB_*. */
int
outbox_sent(const char *id, const char *me)
{
	return db_exec(&q_sent, "ss", id, me);
}

/*
 * Puts message id, leased by me, back with error err and a back-off
 * (failed for good after max attempts).  Rows changed or DB_*.
 */
int
outbox_retry(const char *id, const char *me, const char *err, int max)
{
	return db_exec(&q_retry, "isss", (long long)max, err, id, me);
}

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
    "u.plan_override IS NULL AND tg_live_sub(u.id) IS NULL AND "
    "NOT EXISTS (SELECT 1 FROM trial_notices n WHERE n.user_id = u.id "
    "AND n.kind = 'ended') LIMIT " TRIAL_BATCH);
static struct sql q_notice = SQL(
    "INSERT IGNORE INTO trial_notices (user_id, kind, trial_ends_at) "
    "VALUES (?, ?, ?)");

/*
 * The users on the trial whose trial ends within days and who have had
 * no notice of kinds (a comma-separated list: the notice and the tighter
 * ones): id, email, the end for people, the days left, the end as
 * stored.  Returns the row count or a DB_* code.
 */
int
trial_ending_due(struct arena *a, int days, const char *kinds,
    struct dbrows *rows)
{
	return db_select(a, &q_trial_ending, rows, "is", (long long)days,
	    kinds);
}

/*
 * The users whose trial ended in the last 7 days, with no admin's plan
 * nor live subscription and no "ended" notice: id, email, the end as
 * stored.  Returns the row count or a DB_* code.
 */
int
trial_ended_due(struct arena *a, struct dbrows *rows)
{
	return db_select(a, &q_trial_ended, rows, "");
}

/* A trial notice, run by db_tx_run (maybe more than once). */
struct trial_notice_tx {
	struct req	*r;
	const char	*uid, *to, *kind, *ends, *ends_raw;
	int		 days;
};

static int
trial_notice_body(void *v)
{
	struct trial_notice_tx	*t = v;
	int			 rc;

	if ((rc = db_exec(&q_notice, "sss", t->uid, t->kind,
	    t->ends_raw)) <= 0)
		return rc < 0 ? rc : DB_ABORT;	/* another sender did it */
	if ((rc = t->days > 0 ? mail_trial_ending(t->r, t->uid, t->to,
	    t->days, t->ends) : mail_trial_ended(t->r, t->uid, t->to)) < 0)
		return rc;
	return 1;
}

/*
 * Records trial notice kind for uid (whose trial ends at ends_raw, as
 * stored) and queues its mail to to, in one transaction: the row's
 * INSERT IGNORE decides which of several senders sends it.  days is 0
 * for "ended".  Returns 1 when this call queued it, 0 when another had,
 * or a DB_* code.
 */
int
trial_notice(struct req *r, const char *uid, const char *to,
    const char *kind, int days, const char *ends, const char *ends_raw)
{
	struct trial_notice_tx	 t;
	int			 rc;

	t.r = r;
	t.uid = uid;
	t.to = to;
	t.kind = kind;
	t.days = days;
	t.ends = ends;
	t.ends_raw = ends_raw;
	rc = db_tx_run(trial_notice_body, NULL, &t, DB_TX_TRIES);
	return rc == DB_ABORT ? 0 : rc;
}
