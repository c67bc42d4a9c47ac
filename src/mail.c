/*
 * Mail: messages are written to the outbox in the caller's transaction
 * (so a mail exists exactly when the event that causes it committed) and
 * delivered later by the sender.  Every message has a plain-text part
 * and an HTML part; links are built on [server] base_url.
 */
#include <string.h>

#include "tollgate.h"

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
