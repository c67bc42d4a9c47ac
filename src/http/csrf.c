/*
 * CSRF protection for HTML forms: a random cookie (tg_csrf, HttpOnly,
 * SameSite=Lax) and, in every form, a hidden field holding the keyed
 * hash of that cookie and of the browser's session cookie.  Another site
 * can make a browser send the cookies but cannot read them, so it cannot
 * make the field; and a field made in one session passes in no other.
 */
#include <string.h>

#include "http/http.h"

#define CSRF_COOKIE	"__Host-tg_csrf"

/*
 * The expected field value for a cookie value, in the arena.  It is
 * bound to the browser's session cookie too ("-" before a login), so a CSRF
 * cookie and field planted from elsewhere (a sibling subdomain setting
 * cookies, a field copied from another session) pass in no other
 * session than the one they were made in.
 */
static const char *
csrf_for(struct req *r, const char *cookie)
{
	const char	*sess = kv_get(&r->cookies, SESSION_COOKIE);

	return token_hash(r->a, arena_printf(r->a, "csrf|%s|%s", cookie,
	    sess != NULL ? sess : "-"));
}

/*
 * Returns the value for a form's hidden "csrf" field, setting the cookie
 * first when the browser has none.  The result is in the arena.
 */
const char *
csrf_token(struct req *r)
{
	const char	*c = kv_get(&r->cookies, CSRF_COOKIE);

	if (c == NULL || valid_token(c, strlen(c)) != NULL) {
		c = new_token(r->a, "", 24);
		/* Later forms of this request see the same cookie. */
		if (r->cookies.n < MAX_PAIRS) {
			r->cookies.v[r->cookies.n].key = CSRF_COOKIE;
			r->cookies.v[r->cookies.n].val = c;
			r->cookies.v[r->cookies.n].vlen = strlen(c);
			r->cookies.n++;
		}
		reply_header(r, "Set-Cookie", arena_printf(r->a,
		    "%s=%s; Path=/; HttpOnly; Secure; SameSite=Lax",
		    CSRF_COOKIE, c));
	}
	return csrf_for(r, c);
}

/*
 * True when the posted form's "csrf" field matches the cookie and the
 * browser's session (the forms of a signed-in person: profile, keys,
 * admin, device approval).
 */
bool
csrf_ok(struct req *r)
{
	const char	*c = kv_get(&r->cookies, CSRF_COOKIE);
	const char	*f = kv_get(&r->form, "csrf");

	if (c == NULL || f == NULL || valid_token(c, strlen(c)) != NULL)
		return false;
	return ct_streq(f, csrf_for(r, c));
}

/*
 * The same for the sign-in forms (log in, sign up, a mailed link's
 * button, asking for a sign-in link or a reset, the code step, log
 * out), which may have been drawn before the browser's session changed:
 * a field made without a session passes too.  Such forms change nothing
 * a stranger could use.
 */
bool
csrf_ok_signin(struct req *r)
{
	const char	*c = kv_get(&r->cookies, CSRF_COOKIE);
	const char	*f = kv_get(&r->form, "csrf");

	if (csrf_ok(r))
		return true;
	if (c == NULL || f == NULL || valid_token(c, strlen(c)) != NULL)
		return false;
	return ct_streq(f, token_hash(r->a, arena_printf(r->a, "csrf|%s|-",
	    c)));
}

/* Appends the hidden csrf input to a form being built. */
void
csrf_field(struct req *r, struct buf *b)
{
	buf_puts(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
	buf_html(b, csrf_token(r));
	buf_puts(b, "\">");
}

/*
 * Opens a POST form to action (escaped here) with its CSRF field, for
 * the caller to fill and close.
 */
void
csrf_form(struct req *r, struct buf *b, const char *action)
{
	buf_puts(b, "<form method=\"post\" action=\"");
	buf_html(b, action);
	buf_puts(b, "\">\n");
	csrf_field(r, b);
	buf_puts(b, "\n");
}

/* Appends a hidden input name (not escaped) = value (escaped; NULL: ""). */
void
form_hidden(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
	buf_html(b, value != NULL ? value : "");
	buf_puts(b, "\">\n");
}
