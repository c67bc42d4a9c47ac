/*
 * The pending second factor of a browser sign-in.  A way in that has
 * checked the first factor (the password on /login, GitHub) and finds
 * TOTP on calls pending_begin: a short-lived cookie (tg_2fa: the user,
 * the kind of sign-in and where to go next, sealed with the crypto key,
 * 10 minutes).  POST /login/totp reads it back, checks the code and only
 * then makes the session.  Each code is good once, so a copied cookie is
 * no way in.  The cookie also carries a stamp of the password it was
 * started under (a keyed hash of its hash), so a password change, a
 * reset or a takeover ends every half-finished code step.  pending_code_page is the form of that step, answered by
 * every way in that starts one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "app/app.h"

#define PENDING_COOKIE	"__Host-tg_2fa"
#define PENDING_TTL	600	/* seconds to enter the code */

static struct sql q_pending_user = SQL(
    "SELECT email_lc, disabled_at IS NOT NULL, "
    "(SELECT enabled_at IS NOT NULL FROM totp_secrets t "
    "WHERE t.user_id = users.id) FROM users WHERE id = ?");

/*
 * Fills p->email_lc, p->disabled and p->totp from the account of the
 * sign-in p (read by pending_read).  Returns 1, 0 when the account is
 * gone, or a DB_* code.
 */
int
pending_user(struct req *r, struct pending *p)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_pending_user, &row, "s", p->uid)) <= 0)
		return rc;
	p->email_lc = dbv(&row, 0, 0);
	p->disabled = dbi(&row, 0, 1) != 0;
	p->totp = dbi(&row, 0, 2) != 0;
	return 1;
}

/*
 * The stamp of uid's current password (16 hex characters, in the arena),
 * or NULL with a DB_* code in *rc (DB_FAIL: no such user).
 */
static const char *
password_stamp(struct req *r, const char *uid, int *rc)
{
	const char	*h;

	if ((*rc = password_of(r, uid, &h)) <= 0) {
		if (*rc == 0)
			*rc = DB_FAIL;
		return NULL;
	}
	return arena_strndup(r->a, token_hash(r->a, arena_printf(r->a,
	    "pending|%s|%s", uid, h != NULL ? h : "-")), 16);
}

/*
 * Starts a browser sign-in of uid (kind: "password", "github", ...) whose
 * first factor is good and whose TOTP is on: sets the cookie that lets
 * POST /login/totp finish it, then go to next (a relative path; /profile
 * when NULL).  pending_ask answers.  Returns 0 or a DB_* code.
 */
static int
pending_begin(struct req *r, const char *uid, const char *kind,
    const char *next)
{
	const char	*plain, *stamp;
	long long	 now;
	int		 rc;

	if ((rc = db_unix_now(r->a, &now)) < 0)
		return rc;
	if ((stamp = password_stamp(r, uid, &rc)) == NULL)
		return rc;
	plain = arena_printf(r->a, "%s|%s|%lld|%s|%s", uid, kind,
	    now + PENDING_TTL, stamp, safe_next(next, "/profile"));
	cookie_seal(r, PENDING_COOKIE, plain, "/", PENDING_TTL);
	log_info("totp_pending", " user=%s kind=%s", uid, kind);
	return 0;
}

/*
 * Reads the pending sign-in.  Returns 1 with *p filled (in the arena), 0
 * when there is none or it has expired or was tampered with, or a DB_*
 * code.
 */
int
pending_read(struct req *r, struct pending *p)
{
	char		*plain, *f[5], *save = NULL;
	const char	*stamp;
	long long	 now;
	int		 i, rc;

	if ((plain = cookie_unseal(r, PENDING_COOKIE)) == NULL)
		return 0;
	for (i = 0; i < 5; i++) {
		f[i] = strtok_r(i == 0 ? plain : NULL, "|", &save);
		if (f[i] == NULL)
			return 0;
	}
	if ((rc = db_unix_now(r->a, &now)) < 0)
		return rc;
	if (strtoll(f[2], NULL, 10) < now)
		return 0;
	/* Started under another password (or for a user now gone): over. */
	if ((stamp = password_stamp(r, f[0], &rc)) == NULL)
		return rc == DB_FAIL ? 0 : rc;
	if (!ct_streq(stamp, f[3])) {
		log_info("totp_pending_stale", " user=%s", f[0]);
		return 0;
	}
	p->uid = f[0];
	p->kind = f[1];
	p->next = safe_next(f[4], "/profile");
	return 1;
}

/*
 * Starts the pending sign-in of uid (pending_begin's kind and next) and
 * answers with the form of the code step; the session comes after the
 * code.  Answers 503 or 500 when the database failed.
 */
void
pending_ask(struct req *r, const char *uid, const char *kind,
    const char *next)
{
	int	 rc;

	if ((rc = pending_begin(r, uid, kind, next)) < 0)
		reply_db(r, rc);
	else
		pending_code_page(r, 200, NULL);
}

/* Forgets the pending sign-in in the browser. */
void
pending_clear(struct req *r)
{
	reply_header(r, "Set-Cookie", PENDING_COOKIE "=; Path=/; "
	    "Max-Age=0; HttpOnly; Secure; SameSite=Lax");
}

/* The form of the code step, after an optional message (HTML). */
void
pending_code_page(struct req *r, int status, const char *message_html)
{
	struct buf	 b;

	buf_init(&b, r->a);
	if (message_html != NULL)
		buf_puts(&b, message_html);
	buf_puts(&b, "<p>Your account has two-factor authentication on: "
	    "enter the code from your authenticator app.</p>\n");
	csrf_form(r, &b, "/login/totp");
	buf_puts(&b, "<p><label>Code <input name=\"totp_code\" "
	    "inputmode=\"numeric\" pattern=\"[0-9 ]*\" "
	    "autocomplete=\"one-time-code\" autofocus></label></p>\n"
	    "<p><label>Or a recovery code <input name=\"recovery_code\" "
	    "autocomplete=\"off\" spellcheck=\"false\"></label></p>\n"
	    "<p><button type=\"submit\">Sign in</button></p>\n</form>\n"
	    "<p><a href=\"/login\">Start again</a></p>\n");
	if (status == 401)
		reply_header(r, "WWW-Authenticate", "Bearer");
	reply_html(r, status, "Second factor", b.p);
}
