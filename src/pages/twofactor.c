/*
 * The HTML side of the second factor.
 *
 * The code step of a browser sign-in (app/pending.c keeps the pending
 * sign-in's cookie): the form for the code, and POST /login/totp, which
 * checks the code and only then makes the session.
 *
 * The TOTP part of /profile: totp_profile_section writes the state and
 * the forms; POST /profile/totp starts an enrolment (a QR code drawn as
 * inline SVG, the secret and the otpauth:// link), POST
 * /profile/totp/confirm turns it on and shows the recovery codes once,
 * POST /profile/totp/off turns it off (password and code).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "pages/pages.h"

/* The page of a pending sign-in that is gone. */
static void
pending_gone(struct req *r)
{
	pending_clear(r);
	reply_html(r, 400, "Sign-in expired", "<p class=\"error\">This "
	    "sign-in has expired or was not started here. Please log in "
	    "again.</p>\n<p><a href=\"/login\">Log in</a></p>\n");
}

/*
 * GET /login/totp: 200 with the code form while a sign-in waits for its
 * code; otherwise 303 to /login.
 */
void
h_page_login_totp(struct req *r)
{
	struct pending	 p;
	int		 rc;

	if ((rc = pending_read(r, &p)) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == 0) {
		pending_clear(r);
		reply_redirect(r, 303, "/login");
		return;
	}
	pending_code_page(r, 200, NULL);
}

/*
 * POST /login/totp (form: csrf, totp_code or recovery_code): 303 to the
 * sign-in's next page with a new session cookie; 401 page again for a
 * missing or wrong code (a wrong one counts toward the login throttle);
 * 400 page when no sign-in waits; 403 page for a bad CSRF field or a
 * disabled account; 429 page while throttled; 503.
 */
void
h_page_login_totp_post(struct req *r)
{
	struct pending	 p;
	const char	*code = in_str(r, "totp_code");
	const char	*rec = in_str(r, "recovery_code");
	const char	*email_lc;
	long		 retry = 0;
	int		 rc;

	if (!csrf_ok_signin(r)) {
		reply_error(r, 403, "forbidden", "This form has expired or did "
		    "not come from this site. Go back, reload the page and try "
		    "again.");
		return;
	}
	if ((rc = pending_read(r, &p)) <= 0) {
		if (rc < 0)
			reply_db(r, rc);
		else
			pending_gone(r);
		return;
	}
	if (code != NULL && *code == '\0')
		code = NULL;
	if (rec != NULL && *rec == '\0')
		rec = NULL;
	if ((rc = pending_user(r, &p)) < 0)
		goto dberr;
	if (rc == 0) {
		pending_gone(r);
		return;
	}
	email_lc = p.email_lc;
	if (p.disabled) {
		pending_clear(r);
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
		return;
	}
	if ((rc = login_throttled(r, email_lc, &retry)) < 0)
		goto dberr;
	if (rc == 1) {
		reply_retry_after(r, retry);
		pending_code_page(r, 429, "<p class=\"error\">Too many failed tries. "
		    "Please wait a few minutes and try again.</p>\n");
		return;
	}
	/* TOTP turned off meanwhile (by an admin): the first factor holds. */
	if (p.totp) {
		if (code == NULL && rec == NULL) {
			pending_code_page(r, 401, "<p class=\"error\">Enter the code "
			    "from your authenticator app, or a recovery code."
			    "</p>\n");
			return;
		}
		if ((rc = totp_second_factor(r, p.uid, code, rec,
		    &retry)) < 0)
			goto dberr;
		if (rc == TOTP_LIMITED) {
			reply_retry_after(r, retry);
			pending_code_page(r, 429, "<p class=\"error\">Too many "
			    "wrong codes for this account. Please wait a few "
			    "minutes and try again.</p>\n");
			return;
		}
		if (rc == 0) {
			if ((rc = totp_failed(r, p.uid, email_lc)) < 0)
				goto dberr;
			log_info("totp_page_refused", " user=%s", p.uid);
			pending_code_page(r, 401, "<p class=\"error\">The code is "
			    "wrong. Try again.</p>\n");
			return;
		}
	}
	login_succeeded(r, email_lc);
	if ((rc = session_login(r, p.uid, p.kind, r->who.kind == WHO_COOKIE ?
	    r->who.session_id : NULL, NULL, NULL)) < 0)
		goto dberr;
	pending_clear(r);
	log_info("login", " user=%s via=%s totp=1", p.uid, p.kind);
	reply_redirect(r, 303, p.next);
	return;
dberr:
	reply_db(r, rc);
}

/* ------------------------------------------------------------------ */
/* The TOTP section of /profile and its forms.                         */
/* ------------------------------------------------------------------ */

/*
 * Appends the profile's two-factor section for the signed-in user (on
 * says whether TOTP is on): the state, and the button that starts an
 * enrolment or the form that turns it off.
 */
void
totp_profile_section(struct req *r, struct buf *b, bool on)
{
	buf_puts(b, "<section id=\"totp\">\n<h3>Two-factor authentication"
	    "</h3>\n");
	if (!on) {
		buf_puts(b, "<p><span class=\"tag\">Off</span> Protect your "
		    "account with a code from an authenticator app (TOTP) "
		    "when you log in.</p>\n");
		csrf_form(r, b, "/profile/totp");
		buf_puts(b, "<p><button type=\"submit\">Set up two-factor "
		    "authentication</button></p>\n</form>\n</section>\n");
		return;
	}
	buf_puts(b, "<p><span class=\"tag ok\">On</span> Logging in asks for "
	    "a code from your authenticator app.</p>\n");
	csrf_form(r, b, "/profile/totp/off");
	buf_puts(b, "<p><label>Your password <input type=\"password\" "
	    "name=\"password\" autocomplete=\"current-password\" required>"
	    "</label></p>\n<p><label>A code from your app, or a recovery "
	    "code <input name=\"code\" autocomplete=\"one-time-code\" "
	    "required></label></p>\n<p><button type=\"submit\" "
	    "class=\"danger\">Turn two-factor authentication off</button>"
	    "</p>\n</form>\n</section>\n");
}

/*
 * The signed-in browser's checks for the profile's TOTP forms: a login
 * (else 303 to /login) and the CSRF field (else a 403 page).
 */
static bool
profile_form(struct req *r)
{
	if (r->who.kind != WHO_COOKIE && r->who.kind != WHO_JWT) {
		reply_redirect(r, 303, "/login?next=%2Fprofile");
		return false;
	}
	if (!csrf_ok(r)) {
		reply_error(r, 403, "forbidden", "This form has expired or did "
		    "not come from this site. Go back, reload the page and try "
		    "again.");
		return false;
	}
	return true;
}

/* The enrolment page: QR code, secret, link, and the confirm form. */
static void
enrol_page(struct req *r, int status, const char *secret,
    const char *message_html)
{
	struct buf	 b;
	const char	*uri = totp_uri(r->a, r->who.email, secret);
	const char	*svg = qr_svg(r->a, uri);
	size_t		 i;

	buf_init(&b, r->a);
	if (message_html != NULL)
		buf_puts(&b, message_html);
	buf_puts(&b, "<p>Scan this QR code with your authenticator app "
	    "(or enter the key by hand), then type the six-digit code it "
	    "shows to turn two-factor authentication on.</p>\n");
	if (svg != NULL) {
		buf_puts(&b, "<p>");
		buf_puts(&b, svg);
		buf_puts(&b, "</p>\n");
	}
	buf_puts(&b, "<p>Key: <code id=\"totp-secret\">");
	for (i = 0; secret[i] != '\0'; i++) {
		if (i > 0 && i % 4 == 0)
			buf_puts(&b, " ");
		buf_add(&b, &secret[i], 1);
	}
	buf_puts(&b, "</code></p>\n<p><a href=\"");
	buf_html(&b, uri);
	buf_puts(&b, "\">Open in an authenticator app on this device</a>"
	    "</p>\n");
	csrf_form(r, &b, "/profile/totp/confirm");
	buf_puts(&b, "<p><label>Code <input name=\"code\" "
	    "inputmode=\"numeric\" autocomplete=\"one-time-code\" required>"
	    "</label></p>\n<p><button type=\"submit\">Turn on</button></p>\n"
	    "</form>\n<p><a href=\"/profile\">Cancel</a></p>\n");
	reply_html(r, status, "Set up two-factor authentication", b.p);
}

/*
 * POST /profile/totp (form: csrf): 200 enrolment page; 409 page when the
 * second factor is on already; 303 to /login without a login; 403 page
 * for a bad CSRF field; 503.
 */
void
h_page_totp_start(struct req *r)
{
	const char	*secret;
	int		 rc;

	if (!profile_form(r) || !pg_reauth(r, "/profile/totp"))
		return;
	if ((rc = totp_enrol(r, r->who.user_id, &secret)) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == 0) {
		reply_error(r, 409, "totp_enabled", "Two-factor authentication "
		    "is on already.");
		return;
	}
	enrol_page(r, 200, secret, NULL);
}

/*
 * POST /profile/totp/confirm (form: csrf, code): 200 page with the ten
 * recovery codes, shown this once; 422 enrolment page again for a wrong
 * code (counts toward the login throttle); 409 page without an
 * enrolment or when on already; 429 page while throttled; 303 to /login
 * without a login; 403 page for a bad CSRF field; 503.
 */
void
h_page_totp_confirm(struct req *r)
{
	struct json_object	*codes = NULL;
	struct buf		 b;
	const char		*email_lc, *secret;
	long			 retry = 0;
	size_t			 i;
	int			 rc;

	if (!profile_form(r))
		return;
	email_lc = ascii_lower(r->a, r->who.email);
	if ((rc = login_throttled(r, email_lc, &retry)) != 0) {
		if (rc < 0)
			reply_db(r, rc);
		else
			reply_throttled(r, retry);
		return;
	}
	rc = totp_confirm(r, r->who.user_id, r->who.email, in_str(r, "code"),
	    &codes);
	if (rc == TOTP_WRONG) {
		if ((rc = login_failed(r, email_lc)) < 0 ||
		    (rc = totp_pending_secret(r, r->who.user_id,
		    &secret)) < 0) {
			reply_db(r, rc);
			return;
		}
		if (rc == 0)
			rc = TOTP_NOT_PENDING;
		else {
			enrol_page(r, 422, secret, "<p class=\"error\">The "
			    "code is wrong. Check the time on your device and "
			    "try the next code.</p>\n");
			return;
		}
	}
	if (rc == TOTP_NOT_PENDING || rc == TOTP_ACTIVE) {
		reply_error(r, 409, rc == TOTP_ACTIVE ? "totp_enabled" :
		    "totp_not_enrolled", rc == TOTP_ACTIVE ? "Two-factor "
		    "authentication is on already." : "Start setting up "
		    "two-factor authentication from your profile first.");
		return;
	}
	if (rc != TOTP_OK) {
		reply_db(r, rc);
		return;
	}
	buf_init(&b, r->a);
	buf_puts(&b, "<p>Two-factor authentication is on. Logging in now "
	    "also asks for a code from your app.</p>\n<p>Keep these "
	    "recovery codes somewhere safe: each signs you in once if you "
	    "lose your device. They are not shown again.</p>\n"
	    "<ul id=\"recovery-codes\">\n");
	for (i = 0; i < json_object_array_length(codes); i++) {
		buf_puts(&b, "<li><code>");
		buf_html(&b, json_object_get_string(
		    json_object_array_get_idx(codes, i)));
		buf_puts(&b, "</code></li>\n");
	}
	buf_puts(&b, "</ul>\n<p><a href=\"/profile\">Back to your profile</a>"
	    "</p>\n");
	json_object_put(codes);
	reply_html(r, 200, "Two-factor authentication is on", b.p);
}

/*
 * POST /profile/totp/off (form: csrf, password, code): 200 page, the
 * second factor off and a notice mailed; 422 page naming the wrong field
 * (counts toward the login throttle); 429 page while throttled; 303 to
 * /login without a login; 403 page for a bad CSRF field; 503.
 */
void
h_page_totp_off(struct req *r)
{
	struct buf	 b;
	const char	*field = NULL;
	long		 retry = 0;
	int		 rc;

	if (!profile_form(r))
		return;
	rc = totp_disable(r, in_str(r, "password"), in_str(r, "code"), &field,
	    &retry);
	if (rc == TOTP_THROTTLED) {
		reply_throttled(r, retry);
		return;
	}
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	buf_init(&b, r->a);
	if (rc == TOTP_WRONG) {
		if ((rc = totp_is_on(r, r->who.user_id)) < 0) {
			reply_db(r, rc);
			return;
		}
		buf_puts(&b, strcmp(field, "password") == 0 ?
		    "<p class=\"error\">Your password is wrong.</p>\n" :
		    "<p class=\"error\">The code is wrong.</p>\n");
		totp_profile_section(r, &b, rc == 1);
		reply_html(r, 422, "Two-factor authentication", b.p);
		return;
	}
	buf_puts(&b, "<p>Two-factor authentication is off: logging in no "
	    "longer asks for a code.</p>\n<p><a href=\"/profile\">Back to "
	    "your profile</a></p>\n");
	reply_html(r, 200, "Two-factor authentication is off", b.p);
}
