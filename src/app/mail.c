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
 * Queues a message.  text is the plain-text body; the HTML part is the
 * same text, escaped, with the link (when given) as an anchor.  Returns
 * 0 or a DB_* code.
 */
int
mail_queue(struct req *r, const char *user_id, const char *kind,
    const char *to, const char *subject, const char *text, const char *link)
{
	struct buf	 html;
	const char	*p, *line;
	int		 rc;

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

/* The verification mail with its link.  Returns 0 or a DB_* code. */
int
mail_verify(struct req *r, const char *uid, const char *to, const char *token)
{
	const char	*link = arena_printf(r->a, "%s/verify-email?token=%s",
			    cfg.base_url, token);

	return mail_queue(r, uid, "verification", to, "Verify your email "
	    "address", arena_printf(r->a, "Hello,\n\nPlease confirm your "
	    "email address by opening this link:\n\n%s\n\nThe link works "
	    "once and expires in 48 hours. If you did not sign up, ignore "
	    "this message.\n", link), link);
}

/*
 * The messages of contract section 9.  Each builds its text here and
 * queues it with mail_queue in the caller's transaction; every link is
 * built on [server] base_url.  Each returns 0 or a DB_* code.
 */

/*
 * The welcome mail, sent once when an address is first verified: with
 * the trial that starts (ends, credits), or saying that this address had
 * its trial before, or plain.
 */
int
mail_welcome(struct req *r, const char *uid, const char *to,
    enum welcome kind, const char *ends, long long credits)
{
	const char	*trial;

	switch (kind) {
	case WELCOME_TRIAL:
		trial = arena_printf(r->a, "Your free trial has started: it "
		    "runs until %s and comes with %lld credits.\n\n", ends,
		    credits);
		break;
	case WELCOME_HAD_TRIAL:
		trial = "This email address had a free trial before, so this "
		    "account starts without one: choose a plan to go on.\n\n";
		break;
	default:
		trial = "";
		break;
	}
	return mail_queue(r, uid, "welcome", to, "Welcome to tollgate",
	    arena_printf(r->a, "Hello,\n\nyour email address is verified. "
	    "Welcome!\n\n%sYour account: %s/profile\n", trial,
	    cfg.base_url), NULL);
}

/* The password reset mail with its link (valid for an hour). */
int
mail_reset(struct req *r, const char *uid, const char *to, const char *token)
{
	const char	*link = arena_printf(r->a, "%s/reset-password?token=%s",
			    cfg.base_url, token);

	return mail_queue(r, uid, "password_reset", to, "Reset your password",
	    arena_printf(r->a, "Hello,\n\nsomeone (hopefully you) asked to "
	    "reset the password of your account. Choose a new one here:\n\n"
	    "%s\n\nThe link works once and expires in one hour. If you did "
	    "not ask for this, ignore this message: your password stays as "
	    "it is.\n", link), link);
}

/* The one-time login link (valid for 15 minutes). */
int
mail_magic(struct req *r, const char *uid, const char *to, const char *token)
{
	const char	*link = arena_printf(r->a, "%s/auth/magic?token=%s",
			    cfg.base_url, token);

	return mail_queue(r, uid, "magic_link", to, "Your sign-in link",
	    arena_printf(r->a, "Hello,\n\nopen this link to sign in:\n\n%s\n\n"
	    "The link works once and expires in 15 minutes. If you did not "
	    "ask for it, ignore this message.\n", link), link);
}

/* The verification link of an email change, to the new address. */
int
mail_email_change(struct req *r, const char *uid, const char *to,
    const char *token)
{
	const char	*link = arena_printf(r->a, "%s/verify-email?token=%s",
			    cfg.base_url, token);

	return mail_queue(r, uid, "email_change", to, "Confirm your new email "
	    "address", arena_printf(r->a, "Hello,\n\nplease confirm that "
	    "this is the new email address of your tollgate account by "
	    "opening this link:\n\n%s\n\nThe change takes effect when you "
	    "open it. The link works once and expires in 24 hours. If you "
	    "did not ask for this, ignore this message.\n", link), link);
}

/* The notice to the old address that a change to new_email was asked. */
int
mail_email_change_notice(struct req *r, const char *uid, const char *to,
    const char *new_email)
{
	return mail_queue(r, uid, "email_change_notice", to, "Your email "
	    "address is being changed", arena_printf(r->a, "Hello,\n\n"
	    "someone signed in to your tollgate account asked to change its "
	    "email address to %s. The change takes effect when the link "
	    "sent to that address is opened.\n\nIf this was not you, change "
	    "your password now: %s/forgot-password\n", new_email,
	    cfg.base_url), NULL);
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
	return mail_queue(r, uid, "security_notice", to, "Security notice for "
	    "your tollgate account", arena_printf(r->a, "Hello,\n\n%s\n\n"
	    "From address: %s\n\nIf this was you, there is nothing to do. "
	    "If it was not, reset your password at once: "
	    "%s/forgot-password\n", what, r->remote_addr != NULL ?
	    r->remote_addr : "(none)", cfg.base_url), NULL);
}

/* The trial is ending: days left (1 or more), ends at the given time. */
int
mail_trial_ending(struct req *r, const char *uid, const char *to, int days,
    const char *ends)
{
	return mail_queue(r, uid, "trial_ending", to, days == 1 ?
	    "Your trial ends tomorrow" : arena_printf(r->a, "Your trial ends "
	    "in %d days", days), arena_printf(r->a, "Hello,\n\nyour tollgate "
	    "trial ends on %s. To keep going without interruption, choose a "
	    "plan:\n\n%s/billing\n", ends, cfg.base_url), NULL);
}

/* The trial has ended. */
int
mail_trial_ended(struct req *r, const char *uid, const char *to)
{
	const char	*next = cfg.trial_fallback_plan[0] != '\0' ?
			    arena_printf(r->a, "Your account is now on the %s "
			    "plan.", cfg.trial_fallback_plan) :
			    "Metered actions now need a plan.";

	return mail_queue(r, uid, "trial_ended", to, "Your trial has ended",
	    arena_printf(r->a, "Hello,\n\nyour tollgate trial has ended. %s "
	    "Choose a plan here:\n\n%s/billing\n", next, cfg.base_url), NULL);
}

/* The account was deleted (sent after the fact to its last address). */
int
mail_account_deleted(struct req *r, const char *uid, const char *to)
{
	return mail_queue(r, uid, "account_deleted", to, "Your tollgate "
	    "account was deleted", "Hello,\n\nyour tollgate account, its API "
	    "keys and its sessions have been deleted, as asked. Thank you "
	    "for trying tollgate.\n", NULL);
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
