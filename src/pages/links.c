/*
 * The HTML pages that mail links open: /verify-email?token= and
 * /auth/magic?token=.  Their GET never uses the token, because mail
 * scanners open links: each shows one button, whose CSRF-protected POST
 * verifies the address or signs the browser in.  Errors are pages (the
 * routes are ROUTE_HTML) carrying the API's messages.
 */
#include <string.h>

#include "pages/pages.h"

/*
 * GET /verify-email?token=: 200 page with one button whose POST verifies
 * the address (the token is looked at, never used: mail scanners open
 * links); 400 page for a token that is unknown, used or expired; 503.
 * A HEAD (link checkers send them) answers 200 and looks at nothing.
 */
void
h_page_verify_email(struct req *r)
{
	const char	*token = in_str(r, "token");
	struct buf	 b;
	int		 rc;

	if (r->method == M_HEAD) {
		reply_html(r, 200, "Verify your email address", "");
		return;
	}
	if ((rc = email_token_usable(r, token)) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == 0) {
		reply_token_error(r, TOKEN_INVALID);
		return;
	}
	buf_init(&b, r->a);
	buf_puts(&b, "<p>Confirm that this email address is yours: it is "
	    "the address of a tollgate account (or the new address an "
	    "account asked to move to). If you did not ask for this, close "
	    "this page and nothing happens.</p>\n");
	csrf_form(r, &b, "/verify-email");
	form_hidden(&b, "token", token);
	buf_puts(&b, "<p><button type=\"submit\">Confirm my email "
	    "address</button></p>\n</form>\n");
	reply_html(r, 200, "Confirm your email address", b.p);
}

/*
 * POST /verify-email (form: token, csrf): 200 page, the address verified
 * (an email change takes effect); 400 page for a bad token; 403 page
 * for a bad CSRF field; 409 page when the new address was taken
 * meanwhile; 503.
 */
void
h_page_verify_email_post(struct req *r)
{
	const char	*uid;
	int		 rc;

	if (!csrf_ok_signin(r)) {
		reply_error(r, 403, "forbidden", "This form has expired. Open "
		    "the link from your mail again.");
		return;
	}
	if ((rc = email_token_apply(r, in_str(r, "token"), &uid)) !=
	    TOKEN_OK) {
		reply_token_error(r, rc);
		return;
	}
	reply_html(r, 200, "Email address verified", "<p>Thank you: your "
	    "email address is verified.</p>\n<p><a href=\"/profile\">Go to "
	    "your profile</a></p>\n");
}

/*
 * Appends the sign-in form of a magic link: the token hidden, the CSRF
 * field, and with ask_code a field for the second factor.
 */
static void
magic_form(struct req *r, struct buf *b, const char *token, bool ask_code)
{
	csrf_form(r, b, "/auth/magic");
	form_hidden(b, "token", token);
	if (ask_code)
		buf_puts(b, "<p><label>Code from your authenticator app "
		    "<input name=\"totp_code\" inputmode=\"numeric\" "
		    "autocomplete=\"one-time-code\" required></label></p>\n");
	buf_puts(b, "<p><button type=\"submit\">Sign in</button></p>\n"
	    "</form>\n");
}

/*
 * GET /auth/magic?token=: 200 page with the sign-in button (the token
 * is not looked at, let alone used); 400 page without a token.
 */
void
h_page_magic(struct req *r)
{
	const char	*token = in_str(r, "token");
	struct buf	 b;

	if (token == NULL || valid_token(token, strlen(token)) != NULL) {
		reply_token_error(r, TOKEN_INVALID);
		return;
	}
	buf_init(&b, r->a);
	buf_puts(&b, "<p>Sign in to your ");
	buf_html(&b, cfg.product_name);
	buf_puts(&b, " account with this link?</p>\n");
	magic_form(r, &b, token, false);
	reply_html(r, 200, "Sign in", b.p);
}

/*
 * POST /auth/magic (form: token, csrf, totp_code?): 303 to /profile
 * with a session cookie, the address verified; 400 page for a bad
 * token; 401 page asking for the second factor (or saying it is wrong);
 * 403 page for a bad CSRF field or a disabled account; 503.
 */
void
h_page_magic_post(struct req *r)
{
	struct json_object	*tokens = NULL, *user = NULL;
	struct buf		 b;
	const char		*token = in_str(r, "token");
	int			 rc;

	if (!csrf_ok_signin(r)) {
		reply_error(r, 403, "forbidden", "This form has expired. Open "
		    "the link from your mail again.");
		return;
	}
	rc = magic_token_apply(r, token, true, &tokens, &user);
	if (rc == TOKEN_OK) {
		reply_redirect(r, 303, "/profile");
		return;
	}
	if (rc == TOKEN_TOTP || rc == TOKEN_BADCODE) {
		buf_init(&b, r->a);
		buf_puts(&b, rc == TOKEN_TOTP ? "<p>Your account has "
		    "two-factor authentication on: enter the code from your "
		    "authenticator app.</p>\n" : "<p class=\"error\">The code "
		    "is wrong. Try again.</p>\n");
		magic_form(r, &b, token, true);
		reply_header(r, "WWW-Authenticate", "Bearer");
		reply_html(r, 401, "Second factor", b.p);
		return;
	}
	reply_token_error(r, rc);
}
