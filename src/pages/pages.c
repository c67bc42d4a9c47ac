/*
 * The HTML pages (contract section 11), part one: the helpers every page
 * uses, and the pages of signing up, in and out and of a forgotten
 * password.  The pages work without JavaScript: plain forms, each with
 * its CSRF field, posting to the same path (or a sub-path) and answered
 * by a page or a 303.  A form whose fields are bad is shown again (422)
 * with each message next to its field.  Every value goes through
 * buf_html.  The other pages are in pages_account.c and pages_admin.c.
 */
#include <stdio.h>
#include <string.h>

#include "pages/pages.h"

/* ------------------------------------------------------------------ */
/* Helpers.                                                            */
/* ------------------------------------------------------------------ */

void
pg_init(struct page *p, struct req *r)
{
	memset(p, 0, sizeof(*p));
	p->r = r;
	buf_init(&p->b, r->a);
}

/*
 * True when a person is signed in (a session cookie or a login token);
 * otherwise answers 303 to /login?next=<this page> and returns false.
 */
bool
pg_login(struct req *r)
{
	const char	*here;

	if (r->who.kind == WHO_COOKIE || r->who.kind == WHO_JWT)
		return true;
	here = r->method == M_GET && *r->query != '\0' ?
	    arena_printf(r->a, "%s?%s", r->path, r->query) : r->path;
	if (r->method != M_GET)
		here = "/profile";
	reply_redirect(r, 303, arena_printf(r->a, "/login?next=%s",
	    uri_escape(r->a, safe_next(here, "/profile"), "/")));
	return false;
}

/*
 * The start of a page's GET handler: a login (with admin, an admin's),
 * then *p ready.  Returns false when it answered.
 */
bool
pg_get(struct req *r, struct page *p, bool admin)
{
	if (!(admin ? pg_admin(r) : pg_login(r)))
		return false;
	pg_init(p, r);
	return true;
}

/* The start of a page's POST handler: pg_get, then a good CSRF field. */
bool
pg_post(struct req *r, struct page *p, bool admin)
{
	return pg_get(r, p, admin) && pg_csrf(r);
}

/* Like pg_login, and the person must be an admin (else a 403 page). */
bool
pg_admin(struct req *r)
{
	if (!pg_login(r))
		return false;
	if (strcmp(r->who.role, "admin") != 0) {
		reply_error(r, 403, "forbidden", "Only an admin may see this "
		    "page.");
		return false;
	}
	return true;
}

/* True when the posted form's CSRF field is good; else a 403 page. */
bool
pg_csrf(struct req *r)
{
	if (csrf_ok(r))
		return true;
	reply_error(r, 403, "forbidden", "This form has expired or did not "
	    "come from this site. Go back, reload the page and try again.");
	return false;
}

/* pg_csrf for the sign-in forms (csrf_ok_signin). */
bool
pg_csrf_signin(struct req *r)
{
	if (csrf_ok_signin(r))
		return true;
	reply_error(r, 403, "forbidden", "This form has expired or did not "
	    "come from this site. Go back, reload the page and try again.");
	return false;
}

/*
 * The fields of a page's form are declared in the route table and taken
 * by the dispatcher like a JSON route's (ROUTE_FORM_ERRORS: the bad ones
 * come here instead of a 422).  Returns true when all are good, else
 * false with each message in p->errs, for the form shown again.
 */
bool
pg_take(struct page *p)
{
	struct json_object	*bad = p->r->bad;

	if (bad == NULL)
		return true;
	json_object_object_foreach(bad, k, v)
		pg_error(p, k, json_object_get_string(v));
	return false;
}

/* Records a message for field (a phrase like "is required", or a sentence). */
void
pg_error(struct page *p, const char *field, const char *message)
{
	if (p->errs == NULL)
		p->errs = json_object_new_object();
	if (!json_object_object_get_ex(p->errs, field, NULL))
		json_object_object_add(p->errs, field,
		    json_object_new_string(message));
}

/* The message recorded for field, or NULL. */
const char *
pg_err_text(struct page *p, const char *field)
{
	struct json_object	*v;

	if (p->errs == NULL || !json_object_object_get_ex(p->errs, field, &v))
		return NULL;
	return json_object_get_string(v);
}

/* Writes the message of a field: "Label phrase." or the sentence. */
static void
pg_err_html(struct page *p, const char *field, const char *label)
{
	const char	*m = pg_err_text(p, field);

	if (m == NULL)
		return;
	buf_printf(&p->b, "<p class=\"field-error\" id=\"%s-error\">", field);
	if (m[0] >= 'a' && m[0] <= 'z') {
		/* "Password (at least 10 characters)" -> "Password". */
		const char *paren = strstr(label, " (");

		buf_html(&p->b, paren ? arena_strndup(p->r->a, label,
		    (size_t)(paren - label)) : label);
		buf_puts(&p->b, " ");
		buf_html(&p->b, m);
		buf_puts(&p->b, ".");
	} else
		buf_html(&p->b, m);
	buf_puts(&p->b, "</p>\n");
}

/* A message box: cls is "notice" or "error". */
void
pg_notice(struct page *p, const char *cls, const char *text)
{
	buf_printf(&p->b, "<p class=\"%s\" role=\"%s\">", cls,
	    strcmp(cls, "error") == 0 ? "alert" : "status");
	buf_html(&p->b, text);
	buf_puts(&p->b, "</p>\n");
}

/*
 * Shows the message of the request's ?notice= code (after a redirect)
 * when the table tab (n entries) has it.
 */
void
pg_notice_of(struct page *p, const struct pg_notice_text *tab, size_t n)
{
	const char	*code = pg_arg(p->r, "notice");
	size_t		 i;

	for (i = 0; code != NULL && i < n; i++)
		if (strcmp(code, tab[i].code) == 0) {
			pg_notice(p, "notice", tab[i].text);
			return;
		}
}

/*
 * Opens a table (class cls, may be NULL) with the column heads (a NULL-
 * terminated list of plain text; one starting with "." is for screen
 * readers only, as ".Actions" over buttons) for rows rows.  With no
 * rows and empty given, writes that sentence instead and returns false.
 * Returns whether the table is open: pg_table_end closes it.
 */
bool
pg_table(struct page *p, size_t rows, const char *empty, const char *cls,
    const char *const *heads)
{
	size_t	 i;

	if (rows == 0 && empty != NULL) {
		buf_puts(&p->b, "<p>");
		buf_html(&p->b, empty);
		buf_puts(&p->b, "</p>\n");
		return false;
	}
	buf_puts(&p->b, "<div class=\"scroll\"><table");
	if (cls != NULL)
		buf_printf(&p->b, " class=\"%s\"", cls);
	buf_puts(&p->b, ">\n<thead><tr>");
	for (i = 0; heads[i] != NULL; i++) {
		if (heads[i][0] == '.') {
			buf_puts(&p->b, "<th><span class=\"sr\">");
			buf_html(&p->b, heads[i] + 1);
			buf_puts(&p->b, "</span></th>");
		} else {
			buf_puts(&p->b, "<th>");
			buf_html(&p->b, heads[i]);
			buf_puts(&p->b, "</th>");
		}
	}
	buf_puts(&p->b, "</tr></thead>\n<tbody>\n");
	return true;
}

/* Closes a table pg_table opened. */
void
pg_table_end(struct page *p)
{
	buf_puts(&p->b, "</tbody></table></div>\n");
}

/* Opens a POST form to action with its CSRF field. */
void
pg_form(struct page *p, const char *action, const char *cls)
{
	buf_puts(&p->b, "<form method=\"post\" action=\"");
	buf_html(&p->b, action);
	buf_printf(&p->b, "\" class=\"%s\">", cls ? cls : "stack");
	csrf_field(p->r, &p->b);
	buf_puts(&p->b, "\n");
}

void
pg_hidden(struct page *p, const char *name, const char *value)
{
	form_hidden(&p->b, name, value);
}

/*
 * A labelled input with its message, if any.  type is an HTML input
 * type; value (may be NULL) is escaped; autocomplete may be NULL.
 */
void
pg_input(struct page *p, const char *label, const char *name,
    const char *type, const char *value, const char *autocomplete,
    bool required)
{
	bool	 bad = pg_err_text(p, name) != NULL;

	buf_printf(&p->b, "<div class=\"field%s\"><label for=\"f-%s\">",
	    bad ? " invalid" : "", name);
	buf_html(&p->b, label);
	buf_printf(&p->b, "</label>\n<input id=\"f-%s\" name=\"%s\" "
	    "type=\"%s\"", name, name, type);
	if (value != NULL && strcmp(type, "password") != 0) {
		buf_puts(&p->b, " value=\"");
		buf_html(&p->b, value);
		buf_puts(&p->b, "\"");
	}
	if (autocomplete != NULL)
		buf_printf(&p->b, " autocomplete=\"%s\"", autocomplete);
	if (required)
		buf_puts(&p->b, " required");
	if (bad)
		buf_printf(&p->b, " aria-invalid=\"true\" "
		    "aria-describedby=\"%s-error\"", name);
	buf_puts(&p->b, ">\n");
	pg_err_html(p, name, label);
	buf_puts(&p->b, "</div>\n");
}

/* A submit button and the end of the form. */
void
pg_submit(struct page *p, const char *label, const char *cls)
{
	buf_printf(&p->b, "<button type=\"submit\"%s%s%s>", cls ? " class=\"" :
	    "", cls ? cls : "", cls ? "\"" : "");
	buf_html(&p->b, label);
	buf_puts(&p->b, "</button>\n</form>\n");
}

/* A one-button form posting to action (used for revoke, log out...). */
void
pg_button_form(struct page *p, const char *action, const char *label,
    const char *cls)
{
	pg_form(p, action, "inline");
	pg_submit(p, label, cls);
}

/* The "Name" and "Key" cells of API key k's row (its preview). */
void
pg_key_cells(struct page *p, struct json_object *k)
{
	buf_puts(&p->b, "<td>");
	buf_html(&p->b, member_str(k, "name"));
	buf_puts(&p->b, "</td><td><code>");
	buf_html(&p->b, member_str(k, "preview"));
	buf_puts(&p->b, "…</code></td>");
}

/*
 * The "Created" and "Last used" cells of an API key's or a session's
 * row, from e's created_at and last_used_at.
 */
void
pg_used_cells(struct page *p, struct json_object *e)
{
	buf_puts(&p->b, "<td>");
	pg_time(&p->b, member_str(e, "created_at"));
	buf_puts(&p->b, "</td><td>");
	pg_time(&p->b, member_str(e, "last_used_at"));
	buf_puts(&p->b, "</td>");
}

/*
 * The last cell of an API key's or a session's row, which it ends: the
 * button (label: "Revoke", "Log out") that posts to action.
 */
void
pg_revoke_cell(struct page *p, const char *action, const char *label)
{
	buf_puts(&p->b, "<td class=\"actions\">");
	pg_button_form(p, action, label, "danger");
	buf_puts(&p->b, "</td></tr>\n");
}

/* The navigation bar of a signed-in person; current is the page's path. */
void
pg_nav(struct page *p, const char *current)
{
	static const struct { const char *path, *label; } links[] = {
		{ "/profile", "Profile" }, { "/usage", "Usage" },
		{ "/billing", "Billing" }, { "/admin", "Admin" },
	};
	size_t	 i;

	buf_puts(&p->b, "<nav class=\"tabs\" aria-label=\"Account\">");
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		if (strcmp(links[i].path, "/admin") == 0 && (p->r->who.role ==
		    NULL || strcmp(p->r->who.role, "admin") != 0))
			continue;
		buf_printf(&p->b, "<a href=\"%s\"%s>%s</a>", links[i].path,
		    current && strcmp(current, links[i].path) == 0 ?
		    " aria-current=\"page\"" : "", links[i].label);
	}
	pg_form(p, "/logout", "inline logout");
	pg_submit(p, "Log out", "link");
	buf_puts(&p->b, "</nav>\n");
}

/* Sends the page; the error fields are released. */
void
pg_send(struct page *p, int status, const char *title)
{
	json_object_put(p->errs);
	p->errs = NULL;
	reply_html(p->r, status, title, p->b.p);
}

/* The value of a posted (or query) field as sent, or NULL. */
const char *
pg_arg(struct req *r, const char *name)
{
	const struct kv	*kv = kv_find(&r->form, name);

	if (kv == NULL || memchr(kv->val, '\0', kv->vlen) != NULL ||
	    valid_utf8_text(kv->val, kv->vlen, 1024) != NULL)
		return NULL;
	return kv->val;
}

/* ------------------------------------------------------------------ */
/* Signing up.                                                         */
/* ------------------------------------------------------------------ */

/*
 * One link per configured OpenID Connect provider ([oidc NAME]):
 * "<verb> with Name" to /api/v1/auth/oidc/NAME.
 */
static void
oidc_buttons(struct page *p, const char *verb)
{
	size_t	 i;

	if (cfg.n_oidc == 0)
		return;
	buf_puts(&p->b, "<p class=\"oidc\">");
	for (i = 0; i < cfg.n_oidc; i++) {
		const char *n = cfg.oidc[i].name;

		buf_printf(&p->b, "%s<a class=\"button\" href=\"/api/v1/auth/"
		    "oidc/", i > 0 ? " · " : "");
		buf_html(&p->b, n);
		buf_printf(&p->b, "\">%s with %c", verb,
		    n[0] >= 'a' && n[0] <= 'z' ? n[0] - 'a' + 'A' : n[0]);
		buf_html(&p->b, n + 1);
		buf_puts(&p->b, "</a>");
	}
	buf_puts(&p->b, "</p>\n");
}

/* The sign-up form, with the values sent and their messages. */
static void
signup_page(struct req *r, struct page *p, int status)
{
	pg_form(p, "/signup", NULL);
	pg_input(p, "Email", "email", "email", pg_arg(r, "email"), "email",
	    true);
	pg_input(p, "Name", "name", "text", pg_arg(r, "name"), "name", false);
	pg_input(p, "Password (at least 10 characters)", "password",
	    "password", NULL, "new-password", true);
	pg_submit(p, "Create account", NULL);
	oidc_buttons(p, "Sign up");
	buf_puts(&p->b, "<p>Have an account? <a href=\"/login\">Log "
	    "in</a>.</p>\n");
	pg_send(p, status, "Create your account");
}

/* GET /signup: 200 with the form (a signed-in person goes to /profile). */
void
h_page_signup(struct req *r)
{
	struct page	 p;

	if (r->who.user_id != NULL) {
		reply_redirect(r, 303, "/profile");
		return;
	}
	pg_init(&p, r);
	signup_page(r, &p, 200);
}

/*
 * POST /signup: 303 to /profile with a session cookie; 422 (the form
 * with its messages); 409 (email taken, in the form); 403 without CSRF.
 */
void
h_page_signup_post(struct req *r)
{
	struct page	 p;
	struct signup	 s;
	int		 rc;

	if (!pg_csrf_signin(r))
		return;
	pg_init(&p, r);
	if (!pg_take(&p)) {
		signup_page(r, &p, 422);
		return;
	}
	memset(&s, 0, sizeof(s));
	s.email = in_str(r, "email");
	s.name = in_str(r, "name");
	s.password = in_str(r, "password");
	s.cookie = true;
	if ((rc = signup_core(r, &s)) == SIGNUP_TAKEN) {
		pg_error(&p, "email", "An account with this email already "
		    "exists.");
		signup_page(r, &p, 409);
		return;
	}
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	reply_redirect(r, 303, "/profile?notice=welcome");
}

/* ------------------------------------------------------------------ */
/* Logging in and out.                                                 */
/* ------------------------------------------------------------------ */

/* The login form; totp asks for the second factor's code too. */
static void
login_page(struct req *r, struct page *p, int status, bool totp)
{
	const char	*next = safe_next(pg_arg(r, "next"), NULL);
	const char	*notice = pg_arg(r, "notice");

	if (notice != NULL && strcmp(notice, "reset") == 0)
		pg_notice(p, "notice", "Your password has been changed. Log "
		    "in with the new one.");
	else if (notice != NULL && strcmp(notice, "logout") == 0)
		pg_notice(p, "notice", "You have logged out.");
	pg_form(p, "/login", NULL);
	if (next != NULL)
		pg_hidden(p, "next", next);
	pg_input(p, "Email", "username", "email", pg_arg(r, "username"),
	    "username", true);
	pg_input(p, "Password", "password", "password", NULL,
	    "current-password", true);
	if (totp)
		pg_input(p, "Code from your authenticator app", "totp_code",
		    "text", NULL, "one-time-code", true);
	pg_submit(p, "Log in", NULL);
	buf_puts(&p->b, "<p><a href=\"/forgot-password\">Forgot your "
	    "password?</a> · <a href=\"/login/magic\">Email me a login "
	    "link</a>");
	/* GitHub only where it is set up: no button that fails. */
	if (github_configured())
		buf_puts(&p->b, " · <a href=\"/api/v1/auth/github\">Log in "
		    "with GitHub</a>");
	buf_puts(&p->b, "</p>\n");
	oidc_buttons(p, "Log in");
	buf_puts(&p->b, "<p>New here? <a href=\"/signup\">Create an "
	    "account</a>.</p>\n");
	pg_send(p, status, "Log in");
}

/* GET /login ?next=: 200 with the form; 303 to next when signed in. */
void
h_page_login(struct req *r)
{
	struct page	 p;

	if (r->who.kind == WHO_COOKIE) {
		reply_redirect(r, 303, safe_next(pg_arg(r, "next"),
		    "/profile"));
		return;
	}
	pg_init(&p, r);
	login_page(r, &p, 200, false);
}

/*
 * Checks an email and password (login_check) and, when they do not let
 * the person in, says why for the form: returns 1 with *uid and *totp, 0
 * with the status and message of the refusal in *status and *msg (and
 * *retry for 429), or a DB_* code.
 */
static int
login_verify(struct req *r, const char *email, const char *password,
    const char **uid, bool *totp, int *status, const char **msg,
    long *retry)
{
	int	 rc;

	switch ((rc = login_check(r, email, password, uid, totp, retry))) {
	case LOGIN_OK:
		return 1;
	case LOGIN_THROTTLED:
		*status = 429;
		*msg = "Too many failed logins. Please wait a few minutes "
		    "and try again.";
		return 0;
	case LOGIN_WRONG:
		*status = 401;
		*msg = "The email or password is wrong.";
		return 0;
	case LOGIN_DISABLED:
		*status = 403;
		*msg = "This account has been disabled.";
		return 0;
	default:
		return rc;
	}
}

/*
 * POST /login (username, password, next): 303 to next or /profile with
 * a fresh session cookie; the form again with the message: 401 wrong
 * email or password, 403 disabled, 422 bad fields, 429 throttled; 403
 * without CSRF.
 */
void
h_page_login_post(struct req *r)
{
	struct page	 p;
	const char	*uid = NULL, *msg = NULL, *next;
	bool		 totp = false;
	long		 retry = 0;
	int		 rc, status = 0;

	if (!pg_csrf_signin(r))
		return;
	pg_init(&p, r);
	if (!pg_take(&p)) {
		login_page(r, &p, 422, false);
		return;
	}
	if ((rc = login_verify(r, in_str(r, "username"), in_str(r, "password"),
	    &uid, &totp, &status, &msg, &retry)) < 0)
		goto dberr;
	if (rc == 0) {
		if (status == 429)
			reply_retry_after(r, retry);
		pg_error(&p, "password", msg);
		login_page(r, &p, status, false);
		return;
	}
	if (totp) {
		const char *code = in_str(r, "totp_code");
		const char *rec = in_str(r, "recovery_code");

		/* Without a code: the code step (pages/totp.c) comes next. */
		if ((code == NULL || *code == '\0') &&
		    (rec == NULL || *rec == '\0')) {
			pending_ask(r, uid, "password", safe_next(in_str(r,
			    "next"), "/profile"));
			return;
		}
		if ((rc = totp_second_factor(r, uid, code != NULL &&
		    *code != '\0' ? code : NULL, rec, &retry)) < 0)
			goto dberr;
		if (rc == TOTP_LIMITED) {
			reply_retry_after(r, retry);
			pg_error(&p, "totp_code", "Too many wrong codes. Please "
			    "wait a few minutes and try again.");
			login_page(r, &p, 429, true);
			return;
		}
		if (rc == 0) {
			if ((rc = totp_failed(r, uid, ascii_lower(r->a,
			    in_str(r, "username")))) < 0)
				goto dberr;
			pg_error(&p, "totp_code", "The code is wrong.");
			reply_header(r, "WWW-Authenticate", "Bearer");
			login_page(r, &p, 401, true);
			return;
		}
		login_succeeded(r, ascii_lower(r->a, in_str(r, "username")));
	}
	/* A fresh session id; the one this browser had ends here. */
	if ((rc = session_login(r, uid, "password", r->who.kind == WHO_COOKIE ?
	    r->who.session_id : NULL, NULL, NULL)) < 0)
		goto dberr;
	next = safe_next(in_str(r, "next"), "/profile");
	log_info("login", " user=%s via=page", uid);
	reply_redirect(r, 303, next);
	return;
dberr:
	reply_db(r, rc);
}

/* POST /logout: 303 to /login, the session revoked and its cookie gone. */
void
h_page_logout(struct req *r)
{
	int	 rc;

	if (!pg_csrf_signin(r))
		return;
	if (r->who.session_id != NULL &&
	    (rc = session_revoke(r->who.session_id, "logout")) < 0) {
		reply_db(r, rc);
		return;
	}
	session_clear_cookie(r);
	reply_redirect(r, 303, "/login?notice=logout");
}

/* ------------------------------------------------------------------ */
/* A link by mail: a forgotten password, or a login without one (the   */
/* /login page's "Email me a login link").                             */
/* ------------------------------------------------------------------ */

/* One of the two pages that mail a link to an address. */
struct link_page {
	const char	*action;	/* the form's, and the route's path */
	const char	*title;
	const char	*what;		/* what the link does */
	const char	*button;
	const char	*kind;		/* the token's (mail_link_core) */
	int		 minutes;	/* how long the link works */
	const char	*sent;		/* the notice once asked */
};

static const struct link_page forgot = {
	"/forgot-password", "Forgot your password?",
	"a link to choose a new password", "Send the link", "reset", 60,
	"If an account has this email, a link to choose a new password is on "
	"its way. It works once, for an hour."
};

static const struct link_page magic = {
	"/login/magic", "Log in by email",
	"a link that logs you in without a password", "Email me a login link",
	"magic", 15,
	"If an account has this email, a login link is on its way. It works "
	"once, for 15 minutes."
};

static void
link_form(struct req *r, struct page *p, const struct link_page *l,
    int status)
{
	buf_printf(&p->b, "<p>Enter the email of your account, and we will "
	    "send you %s.</p>\n", l->what);
	pg_form(p, l->action, NULL);
	pg_input(p, "Email", "email", "email", pg_arg(r, "email"), "email",
	    true);
	pg_submit(p, l->button, NULL);
	buf_puts(&p->b, "<p><a href=\"/login\">Back to log in</a></p>\n");
	pg_send(p, status, l->title);
}

static void
link_get(struct req *r, const struct link_page *l)
{
	struct page	 p;

	pg_init(&p, r);
	link_form(r, &p, l, 200);
}

/*
 * Mails the link to the posted email when an account has it (within the
 * mail throttle, as the JSON API does), and answers 202 with the same
 * page whether or not one does; 422 the form with its message; 403
 * without CSRF; 503.
 */
static void
link_post(struct req *r, const struct link_page *l)
{
	struct page	 p;
	int		 rc;

	if (!pg_csrf_signin(r))
		return;
	pg_init(&p, r);
	if (!pg_take(&p)) {
		link_form(r, &p, l, 422);
		return;
	}
	if ((rc = mail_link_core(r, in_str(r, "email"), l->kind, l->minutes,
	    NULL)) < 0) {
		reply_db(r, rc);
		return;
	}
	pg_notice(&p, "notice", l->sent);
	buf_puts(&p.b, "<p><a href=\"/login\">Back to log in</a></p>\n");
	pg_send(&p, 202, "Check your email");
}

/* GET /forgot-password: 200 with the form. */
void
h_page_forgot(struct req *r)
{
	link_get(r, &forgot);
}

/* POST /forgot-password {email}: as link_post. */
void
h_page_forgot_post(struct req *r)
{
	link_post(r, &forgot);
}

/* GET /login/magic: 200 with the form. */
void
h_page_magic_request(struct req *r)
{
	link_get(r, &magic);
}

/* POST /login/magic {email}: as link_post. */
void
h_page_magic_request_post(struct req *r)
{
	link_post(r, &magic);
}

static void
reset_page(struct req *r, struct page *p, int status, const char *token)
{
	pg_form(p, "/reset-password", NULL);
	pg_hidden(p, "token", token);
	pg_input(p, "New password (at least 10 characters)", "password",
	    "password", NULL, "new-password", true);
	pg_submit(p, "Set the new password", NULL);
	(void)r;
	pg_send(p, status, "Choose a new password");
}

/* GET /reset-password ?token=: 200 with the form (the token unused). */
void
h_page_reset(struct req *r)
{
	struct page	 p;
	const char	*t = pg_arg(r, "token");

	if (t == NULL || valid_token(t, strlen(t)) != NULL) {
		reply_error(r, 400, "invalid_token", "This link is not "
		    "valid. Ask for a new one on the forgotten password "
		    "page.");
		return;
	}
	pg_init(&p, r);
	reset_page(r, &p, 200, t);
}

/*
 * POST /reset-password {token, password}: 303 to /login; 400 for a
 * token unknown, used or expired; 422 the form with its message.
 */
void
h_page_reset_post(struct req *r)
{
	struct page	 p;
	const char	*t;
	int		 rc;

	if (!pg_csrf_signin(r))
		return;
	pg_init(&p, r);
	t = pg_arg(r, "token");
	if (!pg_take(&p)) {
		if (t == NULL || valid_token(t, strlen(t)) != NULL) {
			reply_error(r, 400, "invalid_token", "This link is "
			    "not valid. Ask for a new one.");
			return;
		}
		reset_page(r, &p, 422, t);
		return;
	}
	if ((rc = password_reset_core(r, in_str(r, "token"),
	    in_str(r, "password"))) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == TOKEN_INVALID) {
		reply_error(r, 400, "invalid_token", "This link is not valid "
		    "any more: it was used, or it expired. Ask for a new "
		    "one on the forgotten password page.");
		return;
	}
	reply_redirect(r, 303, "/login?notice=reset");
}

/* Member k of a JSON object as a string (owned by o), or NULL. */
const char *
member_str(struct json_object *o, const char *k)
{
	struct json_object	*v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) || v == NULL)
		return NULL;
	return json_object_get_string(v);
}

/* Member k of a JSON object as an integer, or 0. */
long long
member_int(struct json_object *o, const char *k)
{
	struct json_object	*v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) || v == NULL)
		return 0;
	return json_object_get_int64(v);
}

/* Member k of a JSON object as a boolean, or false. */
bool
member_bool(struct json_object *o, const char *k)
{
	struct json_object	*v;

	return o != NULL && json_object_object_get_ex(o, k, &v) && v != NULL &&
	    json_object_get_boolean(v);
}

/*
 * An RFC 3339 time as "YYYY-MM-DD HH:MM UTC" inside a <time> element, or
 * a dash: the one way the pages show a time.
 */
void
pg_time(struct buf *b, const char *t)
{
	if (t == NULL || strlen(t) < 16) {
		buf_puts(b, "—");
		return;
	}
	buf_puts(b, "<time datetime=\"");
	buf_html(b, t);
	buf_printf(b, "\">%.10s %.5s UTC</time>", t, t + 11);
}

/*
 * Before a lasting credential is made from a browser (an API key, a
 * second factor): true when the session signed in within the last
 * REAUTH_SECONDS or the form carries the right current password;
 * otherwise answers a page asking for the password, whose form posts the
 * same fields again to action (422; 429 while throttled; 503), and
 * returns false.
 */
bool
pg_reauth(struct req *r, const char *action)
{
	struct page	 p;
	long		 retry = 0;
	size_t		 i;
	int		 rc, status = 422;

	if ((rc = reauth_check(r, pg_arg(r, "password"), &retry)) == 0)
		return true;
	if (rc < 0) {
		reply_db(r, rc);
		return false;
	}
	pg_init(&p, r);
	if (rc == ME_THROTTLED) {
		reply_retry_after(r, retry);
		status = 429;
		pg_error(&p, "password", "Too many wrong passwords. Please "
		    "wait a few minutes and try again.");
	} else
		pg_error(&p, "password", rc == ME_WRONG ? "The password is "
		    "wrong." : "This session signed in a while ago: confirm "
		    "your current password to go on.");
	pg_form(&p, action, NULL);
	for (i = 0; i < r->form.n; i++)
		if (strcmp(r->form.v[i].key, "csrf") != 0 &&
		    strcmp(r->form.v[i].key, "password") != 0 &&
		    pg_arg(r, r->form.v[i].key) != NULL)
			pg_hidden(&p, r->form.v[i].key, pg_arg(r,
			    r->form.v[i].key));
	pg_input(&p, "Current password", "password", "password", NULL,
	    "current-password", true);
	pg_submit(&p, "Confirm", NULL);
	buf_puts(&p.b, "<p><a href=\"/profile\">Cancel</a></p>\n");
	pg_send(&p, status, "Confirm your password");
	return false;
}
