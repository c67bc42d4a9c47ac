/*
 * CSRF protection for HTML forms: a random cookie (tg_csrf, HttpOnly,
 * SameSite=Lax) and, in every form, a hidden field holding the keyed
 * hash of that cookie.  Another site can make a browser send the cookie
 * but cannot read it, so it cannot make the field.
 */
#include <string.h>

#include "http/http.h"

#define CSRF_COOKIE	"tg_csrf"

/* The expected field value for a cookie value, in the arena. */
static const char *
csrf_for(struct req *r, const char *cookie)
{
	return token_hash(r->a, arena_printf(r->a, "csrf|%s", cookie));
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

/* True when the posted form's "csrf" field matches the cookie. */
bool
csrf_ok(struct req *r)
{
	const char	*c = kv_get(&r->cookies, CSRF_COOKIE);
	const char	*f = kv_get(&r->form, "csrf");

	if (c == NULL || f == NULL || valid_token(c, strlen(c)) != NULL)
		return false;
	return ct_streq(f, csrf_for(r, c));
}

/* Appends the hidden csrf input to a form being built. */
void
csrf_field(struct req *r, struct buf *b)
{
	buf_puts(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
	buf_html(b, csrf_token(r));
	buf_puts(b, "\">");
}
