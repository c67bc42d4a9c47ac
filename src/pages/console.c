/*
 * The HTML pages, part three: /admin.  The list of users with search
 * and paging, and a user's page with plan, role, disable, second factor,
 * credits, trial extension, deletion and the audit trail.  Every action
 * goes through the same functions as the admin API (admin.c), so it is
 * audited the same way.
 */
#include <stdio.h>
#include <string.h>

#include "pages/pages.h"


static void
put_text(struct buf *b, const char *s)
{
	buf_html(b, s != NULL ? s : "—");
}

/*
 * Who an audit row names as its actor or target (what: "actor" or
 * "target"): the email it had at the time, else its user id.  The
 * string belongs to the row.
 */
static const char *
who_of(struct json_object *e, const char *what)
{
	char		 k[32];
	const char	*email;

	snprintf(k, sizeof(k), "%s_email", what);
	email = member_str(e, k);
	return email != NULL ? email : member_str(e, what);
}

/*
 * Payments as a table (at most max rows), newest first; with who, a
 * column naming the account (a link to its page).  empty is the sentence
 * shown when there are none.
 */
static void
payments_table(struct page *p, struct json_object *pays, bool who,
    size_t max, const char *empty)
{
	struct json_object	*e;
	size_t			 i, n = json_object_array_length(pays);

	if (!pg_table(p, n, empty, NULL, who ?
	    (const char *[]){ "Date", "Who", "Amount", "Status", NULL } :
	    (const char *[]){ "Date", "Amount", "Status", NULL }))
		return;
	for (i = 0; i < n && i < max; i++) {
		e = json_object_array_get_idx(pays, i);
		buf_puts(&p->b, "<tr><td>");
		pg_time(&p->b, member_str(e, "created_at"));
		buf_puts(&p->b, "</td><td>");
		if (who && member_str(e, "user_id") != NULL &&
		    *member_str(e, "email") != '\0') {
			buf_puts(&p->b, "<a href=\"/admin/users/");
			buf_html(&p->b, member_str(e, "user_id"));
			buf_puts(&p->b, "\">");
			buf_html(&p->b, member_str(e, "email"));
			buf_puts(&p->b, "</a></td><td>");
		} else if (who)
			buf_puts(&p->b, "(deleted account)</td><td>");
		buf_html(&p->b, money_text(p->r->a, member_int(e, "amount"),
		    member_str(e, "currency")));
		buf_puts(&p->b, "</td><td>");
		buf_html(&p->b, member_str(e, "status"));
		buf_puts(&p->b, "</td></tr>\n");
	}
	pg_table_end(p);
}

/*
 * Audit rows as a table; with detail, a column of each row's detail
 * (as JSON).  empty is the sentence shown when there are none.
 */
static void
audit_table(struct page *p, struct json_object *aud, bool detail,
    const char *empty)
{
	struct json_object	*e, *dt;
	size_t			 i, n = json_object_array_length(aud);

	if (!pg_table(p, n, empty, NULL, detail ?
	    (const char *[]){ "When", "Who", "What", "Whom", "Detail", "From",
	    NULL } :
	    (const char *[]){ "When", "Who", "What", "Whom", "From", NULL }))
		return;
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(aud, i);
		buf_puts(&p->b, "<tr><td>");
		pg_time(&p->b, member_str(e, "at"));
		buf_puts(&p->b, "</td><td>");
		put_text(&p->b, who_of(e, "actor"));
		buf_puts(&p->b, "</td><td>");
		buf_html(&p->b, member_str(e, "action"));
		buf_puts(&p->b, "</td><td>");
		put_text(&p->b, who_of(e, "target"));
		buf_puts(&p->b, "</td><td>");
		if (detail) {
			buf_puts(&p->b, "<code>");
			dt = NULL;
			json_object_object_get_ex(e, "detail", &dt);
			if (dt != NULL)
				buf_html(&p->b, json_object_to_json_string_ext(
				    dt, JSON_C_TO_STRING_PLAIN |
				    JSON_C_TO_STRING_NOSLASHESCAPE));
			buf_puts(&p->b, "</code></td><td>");
		}
		put_text(&p->b, member_str(e, "address"));
		buf_puts(&p->b, "</td></tr>\n");
	}
	pg_table_end(p);
}

/* The newest payments and audit rows of everyone, for /admin. */
static int
recent_section(struct page *p)
{
	struct req		*r = p->r;
	struct json_object	*pays = NULL, *aud = NULL;
	int			 rc;

	if ((rc = admin_payments(r, NULL, &pays)) < 0)
		return rc;
	if ((rc = audit_list(r, NULL, 20, &aud)) < 0) {
		json_object_put(pays);
		return rc;
	}
	buf_puts(&p->b, "<section id=\"payments\">\n<h2>Recent payments</h2>"
	    "\n");
	payments_table(p, pays, true, 20, "None yet.");
	buf_puts(&p->b, "</section>\n<section id=\"recent-audit\">\n<h2>Recent "
	    "changes</h2>\n");
	audit_table(p, aud, false, "Nothing recorded.");
	buf_puts(&p->b, "</section>\n");
	json_object_put(pays);
	json_object_put(aud);
	return 0;
}

/* GET /admin ?q=&page=: 200 with the users; 303 to /login; 403 non-admins. */
void
h_page_admin(struct req *r)
{
	struct page		 p;
	struct json_object	*o = NULL, *users, *u;
	const char		*q;
	long long		 page, total, pages;
	size_t			 i, n;
	int			 rc;

	if (!pg_get(r, &p, true))
		return;
	if (!pg_take(&p)) {
		json_object_put(p.errs);
		p.errs = NULL;
		r->nin = 0;	/* a bad page number: the first page */
	}
	q = in_str(r, "q");
	page = in_int(r, "page", 1);
	if ((rc = admin_users_list(r, q, page, &o)) < 0) {
		reply_db(r, rc);
		return;
	}
	json_object_object_get_ex(o, "users", &users);
	total = member_int(o, "total");
	pages = (total + 49) / 50;
	pg_nav(&p, "/admin");
	buf_puts(&p.b, "<section>\n<form method=\"get\" action=\"/admin\" "
	    "class=\"row\" role=\"search\"><div class=\"field\"><label "
	    "for=\"f-q\">Search email or name</label><input id=\"f-q\" "
	    "name=\"q\" type=\"search\" value=\"");
	buf_html(&p.b, q ? q : "");
	buf_puts(&p.b, "\"></div><button type=\"submit\">Search</button>"
	    "</form>\n");
	buf_printf(&p.b, "<p id=\"user-count\">%lld user%s%s</p>\n", total,
	    total == 1 ? "" : "s", q ? " match" : "");
	n = json_object_array_length(users);
	pg_table(&p, n, NULL, NULL, (const char *[]){ "Email", "Name", "Plan",
	    "Role", "State", "Created", NULL });
	for (i = 0; i < n; i++) {
		u = json_object_array_get_idx(users, i);
		buf_puts(&p.b, "<tr><td><a href=\"/admin/users/");
		buf_html(&p.b, member_str(u, "id"));
		buf_puts(&p.b, "\">");
		if (member_bool(u, "guest"))
			buf_puts(&p.b, "<em>guest</em>");
		else
			buf_html(&p.b, member_str(u, "email"));
		buf_puts(&p.b, "</a></td><td>");
		buf_html(&p.b, member_str(u, "name"));
		buf_puts(&p.b, "</td><td>");
		put_text(&p.b, member_str(u, "plan"));
		buf_puts(&p.b, "</td><td>");
		buf_html(&p.b, member_str(u, "role"));
		buf_puts(&p.b, "</td><td>");
		buf_puts(&p.b, member_bool(u, "disabled") ? "<span class=\"tag warn\">"
		    "disabled</span>" : member_bool(u, "guest") ? "<span class=\"tag\">"
		    "guest</span>" : member_bool(u, "email_verified") ? "active" :
		    "unverified");
		buf_puts(&p.b, "</td><td>");
		pg_time(&p.b, member_str(u, "created_at"));
		buf_puts(&p.b, "</td></tr>\n");
	}
	pg_table_end(&p);
	buf_puts(&p.b, "<nav class=\"pager\" "
	    "aria-label=\"Pages\">");
	if (page > 1) {
		buf_printf(&p.b, "<a rel=\"prev\" href=\"/admin?page=%lld",
		    page - 1);
		if (q != NULL) {
			buf_puts(&p.b, "&amp;q=");
			buf_html(&p.b, uri_escape(r->a, q, "/"));
		}
		buf_puts(&p.b, "\">Previous</a>");
	}
	buf_printf(&p.b, "<span>Page %lld of %lld</span>", page,
	    pages > 0 ? pages : 1);
	if (page < pages) {
		buf_printf(&p.b, "<a rel=\"next\" href=\"/admin?page=%lld",
		    page + 1);
		if (q != NULL) {
			buf_puts(&p.b, "&amp;q=");
			buf_html(&p.b, uri_escape(r->a, q, "/"));
		}
		buf_puts(&p.b, "\">Next</a>");
	}
	buf_puts(&p.b, "</nav>\n</section>\n");
	/* Every user's usage events in a period, as CSV (a plain GET). */
	buf_puts(&p.b, "<section>\n<h2>Usage export</h2>\n<form method=\"get\" "
	    "action=\"/api/v1/admin/usage/export\" class=\"inline\">"
	    "<div><label for=\"exp-from\">From</label><input id=\"exp-from\" "
	    "name=\"from\" type=\"date\"></div><div><label for=\"exp-to\">"
	    "To (not included)</label><input id=\"exp-to\" name=\"to\" "
	    "type=\"date\"></div><div><label for=\"exp-meter\">Meter</label>"
	    "<input id=\"exp-meter\" name=\"meter\" maxlength=\"64\"></div>"
	    "<button type=\"submit\">Download CSV</button></form>\n<p>Left "
	    "empty: this calendar month so far (UTC), every meter.</p>\n"
	    "</section>\n");
	json_object_put(o);
	if ((rc = recent_section(&p)) < 0) {
		json_object_put(p.errs);
		reply_db(r, rc);
		return;
	}
	pg_send(&p, 200, "Admin: users");
}

/* The messages of an admin page's ?notice= codes. */
static const struct pg_notice_text admin_notices[] = {
	{ "saved", "The changes have been saved." },
	{ "credits", "The credits have been granted." },
	{ "trial", "The trial's end has been moved." },
	{ "revoked", "Revoked: it stops working at once." },
};

/* The cells of a session's row before its times: client, kind, from. */
static void
session_cells(struct page *p, struct json_object *e)
{
	buf_puts(&p->b, "<td>");
	put_text(&p->b, member_str(e, "client_name") ?
	    member_str(e, "client_name") : member_str(e, "user_agent"));
	buf_puts(&p->b, "</td><td>");
	buf_html(&p->b, member_str(e, "kind"));
	buf_puts(&p->b, "</td><td>");
	put_text(&p->b, member_str(e, "address"));
	buf_puts(&p->b, "</td>");
}

/*
 * A table of user uid's API keys or sessions (list, consumed) under
 * heads: a row has the cells that cells writes, the times, and a button
 * that posts to /admin/users/{uid}/{what}/{id}/delete.
 */
static void
access_table(struct page *p, const char *uid, struct json_object *list,
    const char *what, const char *const *heads,
    void (*cells)(struct page *, struct json_object *))
{
	struct json_object	*e;
	size_t			 i, n = json_object_array_length(list);

	pg_table(p, n, "None.", NULL, heads);
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(list, i);
		buf_puts(&p->b, "<tr>");
		cells(p, e);
		pg_used_cells(p, e);
		pg_revoke_cell(p, arena_printf(p->r->a, "/admin/users/%s/%s/%s/"
		    "delete", uid, what, member_str(e, "id")), "Revoke");
	}
	if (n > 0)
		pg_table_end(p);
	json_object_put(list);
}

/* The user's API keys and live sessions, with revoke buttons. */
static int
access_section(struct page *p, const char *uid)
{
	struct req		*r = p->r;
	struct json_object	*keys = NULL, *ss = NULL;
	int			 rc;

	if ((rc = apikeys_list_core(r, uid, &keys)) < 0)
		return rc;
	if ((rc = sessions_list_core(r, uid, &ss)) < 0) {
		json_object_put(keys);
		return rc;
	}
	buf_puts(&p->b, "<section id=\"access\">\n<h2>API keys</h2>\n");
	access_table(p, uid, keys, "keys", (const char *[]){ "Name", "Key",
	    "Created", "Last used", ".Actions", NULL }, pg_key_cells);
	buf_puts(&p->b, "<h2>Sessions</h2>\n");
	access_table(p, uid, ss, "sessions", (const char *[]){ "Client",
	    "Kind", "From", "Signed in", "Last used", ".Actions", NULL },
	    session_cells);
	buf_puts(&p->b, "</section>\n");
	return 0;
}

/* The account at a glance: who, plan, state, trial, credits, usage. */
static void
user_summary(struct page *p, const char *uid, struct json_object *d)
{
	struct json_object	*u, *usage, *ms, *sub, *cr, *trial;
	const char		*override;

	json_object_object_get_ex(d, "user", &u);
	json_object_object_get_ex(d, "usage", &usage);
	json_object_object_get_ex(d, "subscription", &sub);
	json_object_object_get_ex(d, "credits", &cr);
	json_object_object_get_ex(u, "trial", &trial);
	json_object_object_get_ex(usage, "meters", &ms);
	override = member_str(u, "plan_override");
	buf_puts(&p->b, "<section>\n<h2>");
	if (member_bool(u, "guest"))
		buf_puts(&p->b, "Guest (no email yet)");
	else
		buf_html(&p->b, member_str(u, "email"));
	buf_puts(&p->b, "</h2>\n<dl><dt>Name</dt><dd>");
	put_text(&p->b, member_str(u, "name"));
	buf_puts(&p->b, "</dd><dt>Id</dt><dd><code>");
	buf_html(&p->b, uid);
	buf_puts(&p->b, "</code></dd><dt>Plan</dt><dd id=\"user-plan\">");
	put_text(&p->b, member_str(u, "plan"));
	if (override != NULL)
		buf_puts(&p->b, " <small>(set by an admin)</small>");
	buf_puts(&p->b, "</dd><dt>Role</dt><dd id=\"user-role\">");
	buf_html(&p->b, member_str(u, "role"));
	buf_puts(&p->b, "</dd><dt>State</dt><dd id=\"user-state\">");
	buf_puts(&p->b, member_bool(u, "disabled") ? "disabled" : "active");
	buf_puts(&p->b, member_bool(u, "guest") ? ", guest" :
	    member_bool(u, "email_verified") ? ", email verified" :
	    ", email not verified");
	buf_puts(&p->b, member_bool(u, "totp") ? ", second factor on" : "");
	buf_puts(&p->b, "</dd><dt>Trial</dt><dd id=\"user-trial\">");
	if (member_str(trial, "ends_at") != NULL) {
		buf_puts(&p->b, "ends ");
		pg_time(&p->b, member_str(trial, "ends_at"));
	} else
		buf_puts(&p->b, "not started");
	buf_puts(&p->b, "</dd><dt>Credits</dt><dd id=\"user-credits\">");
	buf_printf(&p->b, "%lld (%lld of the plan, %lld granted)",
	    member_int(cr, "remaining"), member_int(cr, "allowance"), member_int(cr, "granted"));
	buf_puts(&p->b, "</dd><dt>Subscription</dt><dd>");
	if (sub != NULL) {
		put_text(&p->b, member_str(sub, "plan"));
		buf_puts(&p->b, ", ");
		put_text(&p->b, member_str(sub, "status"));
		buf_puts(&p->b, ", period ends ");
		pg_time(&p->b, member_str(sub, "current_period_end"));
	} else
		buf_puts(&p->b, "none");
	buf_puts(&p->b, "</dd><dt>Created</dt><dd>");
	pg_time(&p->b, member_str(u, "created_at"));
	buf_puts(&p->b, "</dd></dl>\n");
	if (json_object_object_length(ms) > 0) {
		buf_puts(&p->b, "<h3>Usage this period</h3>\n<ul>");
		json_object_object_foreach(ms, name, m) {
			buf_puts(&p->b, "<li>");
			buf_html(&p->b, name);
			buf_printf(&p->b, ": %lld", member_int(m, "used"));
			if (member_str(m, "limit") != NULL)
				buf_printf(&p->b, " of %lld", member_int(m, "limit"));
			buf_puts(&p->b, "</li>");
		}
		buf_puts(&p->b, "</ul>\n");
	}
	buf_puts(&p->b, "</section>\n");
}

/* The plan, role, disable and second-factor forms. */
static void
user_plan_role(struct page *p, const char *uid, struct json_object *u,
    struct json_object *plans)
{
	struct req		*r = p->r;
	struct json_object	*e;
	const char		*override = member_str(u, "plan_override");
	size_t			 i, n;

	buf_puts(&p->b, "<section>\n<h2>Plan and role</h2>\n");
	pg_form(p, arena_printf(r->a, "/admin/users/%s", uid), "row");
	buf_puts(&p->b, "<div class=\"field\"><label for=\"f-plan\">Plan"
	    "</label><select id=\"f-plan\" name=\"plan\"><option value=\"\">"
	    "automatic (subscription, trial or fallback)</option>");
	n = json_object_array_length(plans);
	for (i = 0; i < n; i++) {
		const char *name;

		e = json_object_array_get_idx(plans, i);
		name = member_str(e, "name");
		buf_puts(&p->b, "<option value=\"");
		buf_html(&p->b, name);
		buf_puts(&p->b, "\"");
		if (override != NULL && strcmp(override, name) == 0)
			buf_puts(&p->b, " selected");
		buf_puts(&p->b, ">");
		buf_html(&p->b, member_str(e, "display_name") ?
		    member_str(e, "display_name") : name);
		buf_puts(&p->b, "</option>");
	}
	buf_puts(&p->b, "</select></div>\n<div class=\"field\"><label "
	    "for=\"f-role\">Role</label><select id=\"f-role\" name=\"role\">");
	buf_printf(&p->b, "<option value=\"user\"%s>user</option><option "
	    "value=\"admin\"%s>admin</option></select></div>\n",
	    strcmp(member_str(u, "role"), "user") == 0 ? " selected" : "",
	    strcmp(member_str(u, "role"), "admin") == 0 ? " selected" : "");
	pg_submit(p, "Save", NULL);
	buf_puts(&p->b, "<p>");
	pg_form(p, arena_printf(r->a, "/admin/users/%s", uid), "inline");
	pg_hidden(p, "disabled", member_bool(u, "disabled") ? "false" : "true");
	pg_submit(p, member_bool(u, "disabled") ? "Enable account" : "Disable account",
	    member_bool(u, "disabled") ? "secondary" : "danger");
	if (member_bool(u, "totp")) {
		pg_form(p, arena_printf(r->a, "/admin/users/%s", uid),
		    "inline");
		pg_hidden(p, "totp", "false");
		pg_submit(p, "Turn the second factor off", "danger");
	}
	buf_puts(&p->b, "</p>\n</section>\n");
}

/* The credits and trial forms. */
static void
user_credits_trial(struct page *p, const char *uid)
{
	struct req	*r = p->r;

	buf_puts(&p->b, "<section>\n<h2>Credits</h2>\n");
	pg_form(p, arena_printf(r->a, "/admin/users/%s/credits", uid), "row");
	pg_input(p, "Credits to grant (negative to take back)", "delta",
	    "number", p->errs ? pg_arg(r, "delta") : NULL, "off", true);
	pg_input(p, "Reason", "reason", "text", p->errs ? pg_arg(r,
	    "reason") : NULL, "off", true);
	pg_submit(p, "Grant", NULL);
	buf_puts(&p->b, "<h2>Trial</h2>\n");
	pg_form(p, arena_printf(r->a, "/admin/users/%s/extend-trial", uid),
	    "row");
	pg_input(p, "Days to add (negative to shorten)", "days", "number",
	    p->errs ? pg_arg(r, "days") : NULL, "off", true);
	pg_submit(p, "Move the trial's end", NULL);
	buf_puts(&p->b, "</section>\n");
}

/* The user's payments. */
static void
user_payments(struct page *p, struct json_object *pays)
{
	buf_puts(&p->b, "<section>\n<h2>Payments</h2>\n");
	payments_table(p, pays, false, (size_t)-1, "None.");
	buf_puts(&p->b, "</section>\n");
}

/* The user's audit trail. */
static void
user_audit(struct page *p, struct json_object *audit)
{
	buf_puts(&p->b, "<section id=\"audit\">\n<h2>Audit trail</h2>\n");
	audit_table(p, audit, true, "Nothing recorded.");
	buf_puts(&p->b, "</section>\n");
}

/* The deletion form. */
static void
user_delete_form(struct page *p, const char *uid)
{
	struct req	*r = p->r;

	buf_puts(&p->b, "<section class=\"danger-zone\">\n<h2>Delete the "
	    "account</h2>\n<p>The account, its keys and sessions are gone "
	    "for good; the audit trail and payments stay.</p>\n");
	pg_form(p, arena_printf(r->a, "/admin/users/%s/delete", uid), "row");
	pg_input(p, "Type the email to confirm", "confirm", "text", NULL,
	    "off", true);
	pg_submit(p, "Delete the account", "danger");
	buf_puts(&p->b, "</section>\n");
}

/* Renders a user's admin page; answers the request. */
static void
admin_user_page(struct page *p, int status, const char *uid)
{
	struct req		*r = p->r;
	struct json_object	*d = NULL, *u, *audit = NULL, *pays = NULL,
				*plans = NULL;
	int			 rc;

	if ((rc = admin_user_detail(r, uid, &d)) <= 0) {
		if (rc == 0) {
			json_object_put(p->errs);
			reply_error(r, 404, "not_found", "There is no such "
			    "user.");
			return;
		}
		goto fail;
	}
	if ((rc = audit_list(r, uid, 100, &audit)) < 0 ||
	    (rc = admin_payments(r, uid, &pays)) < 0 ||
	    (rc = plans_core(r, &plans)) < 0)
		goto fail;
	json_object_object_get_ex(d, "user", &u);

	pg_nav(p, "/admin");
	buf_puts(&p->b, "<p><a href=\"/admin\">← All users</a></p>\n");
	pg_notice_of(p, admin_notices, sizeof(admin_notices) /
	    sizeof(admin_notices[0]));
	if (pg_err_text(p, "_form") != NULL)
		pg_notice(p, "error", pg_err_text(p, "_form"));
	user_summary(p, uid, d);
	user_plan_role(p, uid, u, plans);
	user_credits_trial(p, uid);
	/* Keys and sessions, each revocable. */
	if ((rc = access_section(p, uid)) < 0)
		goto fail;
	user_payments(p, pays);
	user_audit(p, audit);
	user_delete_form(p, uid);
	pg_send(p, status, "Admin: user");
	rc = 0;
fail:
	if (rc < 0) {
		json_object_put(p->errs);
		reply_db(r, rc);
	}
	json_object_put(d);
	json_object_put(audit);
	json_object_put(pays);
	json_object_put(plans);
}

/* GET /admin/users/{id}: 200; 404; 303 to /login; 403 non-admins. */
void
h_page_admin_user(struct req *r)
{
	struct page	 p;

	if (pg_get(r, &p, true))
		admin_user_page(&p, 200, r->params[0]);
}

/* Shows the outcome of an admin action that did not succeed. */
static void
admin_failed(struct page *p, int rc)
{
	struct req	*r = p->r;

	switch (rc) {
	case ADM_NOT_FOUND:
		json_object_put(p->errs);
		reply_error(r, 404, "not_found", "There is no such user.");
		break;
	case ADM_LAST_ADMIN:
		pg_error(p, "_form", "This is the last admin: make another "
		    "admin first.");
		admin_user_page(p, 409, r->params[0]);
		break;
	case ADM_NO_PLAN:
		pg_error(p, "_form", "There is no such plan.");
		admin_user_page(p, 422, r->params[0]);
		break;
	case ADM_FORBIDDEN:
		json_object_put(p->errs);
		reply_error(r, 403, "forbidden", "Only an admin may do this.");
		break;
	default:
		json_object_put(p->errs);
		reply_db(r, rc);
	}
}

/* The common start of the admin pages' POST handlers. */
static bool
admin_post(struct req *r, struct page *p)
{
	return pg_post(r, p, true);
}

/*
 * The common start of the admin pages' form handlers: false when it
 * answered, with a refusal or with the user's page again (422) showing
 * the messages of the form's bad fields.
 */
static bool
admin_form(struct req *r, struct page *p)
{
	if (!admin_post(r, p))
		return false;
	if (pg_take(p))
		return true;
	admin_user_page(p, 422, r->params[0]);
	return false;
}

/* Shows user r->params[0]'s page again (422) with message at field. */
static void
admin_again(struct page *p, const char *field, const char *message)
{
	pg_error(p, field, message);
	admin_user_page(p, 422, p->r->params[0]);
}

/* Answers 303 back to the page of user r->params[0], showing notice. */
static void
admin_back(struct req *r, const char *notice)
{
	reply_redirect(r, 303, arena_printf(r->a, "/admin/users/%s?notice=%s",
	    r->params[0], notice));
}

/*
 * Answers the revocation of one of user r->params[0]'s API keys or
 * sessions (what: "API key", "session") by the code rc of
 * admin_revoke_key or _session: 303 back; 404 when it is not the user's.
 */
static void
admin_revoked(struct req *r, int rc, const char *what)
{
	if (rc == ADM_NOT_FOUND)
		reply_error(r, 404, "not_found", arena_printf(r->a, "This user "
		    "has no such %s.", what));
	else if (rc != ADM_OK)
		reply_db(r, rc);
	else
		admin_back(r, "revoked#access");
}

/*
 * Ends an admin action on the user's page by its ADM_* or DB_* code rc:
 * 303 back showing notice, else admin_failed.
 */
static void
admin_done(struct page *p, int rc, const char *notice)
{
	if (rc != ADM_OK)
		admin_failed(p, rc);
	else
		admin_back(p->r, notice);
}

/*
 * POST /admin/users/{id} {plan?, role?, disabled?, totp?}: 303 back to
 * the user's page; 409 (the page, with the message) for the last admin.
 */
void
h_page_admin_update(struct req *r)
{
	struct page		 p;
	struct admin_change	 c;
	const char		*role, *plan;

	if (!admin_post(r, &p))
		return;
	memset(&c, 0, sizeof(c));
	c.disabled = -1;
	if (!pg_take(&p)) {
		json_object_put(p.errs);
		p.errs = NULL;
		admin_again(&p, "_form", "The form was not valid.");
		return;
	}
	role = in_str(r, "role");
	plan = in_str(r, "plan");
	if (role != NULL && strcmp(role, "user") != 0 &&
	    strcmp(role, "admin") != 0) {
		admin_again(&p, "_form", "The role must be user or admin.");
		return;
	}
	if (in_present(r, "totp") && in_bool(r, "totp", false)) {
		admin_again(&p, "_form", "An admin can only turn the second "
		    "factor off.");
		return;
	}
	c.role = role;
	if (in_present(r, "plan")) {
		c.plan_set = true;
		c.plan = plan != NULL && *plan != '\0' ? plan : NULL;
	}
	if (in_present(r, "disabled"))
		c.disabled = in_bool(r, "disabled", false) ? 1 : 0;
	c.totp_off = in_present(r, "totp");
	admin_done(&p, admin_update(r, r->params[0], &c), "saved");
}

/* POST /admin/users/{id}/credits {delta, reason}: 303; 422 the page. */
void
h_page_admin_credits(struct req *r)
{
	struct page	 p;
	long long	 applied, remaining;

	if (!admin_form(r, &p))
		return;
	if (in_int(r, "delta", 0) == 0)
		admin_again(&p, "delta", "must not be zero");
	else
		admin_done(&p, admin_credits(r, r->params[0], in_int(r, "delta",
		    0), in_str(r, "reason"), &applied, &remaining), "credits");
}

/* POST /admin/users/{id}/extend-trial {days}: 303; 422 the page. */
void
h_page_admin_trial(struct req *r)
{
	struct page	 p;
	const char	*ends;

	if (admin_form(r, &p))
		admin_done(&p, admin_extend_trial(r, r->params[0], in_int(r,
		    "days", 0), &ends), "trial");
}

/*
 * POST /admin/users/{id}/delete {confirm}: 303 to /admin; 422 the page
 * when confirm is not the user's email; 409 for the last admin.
 */
void
h_page_admin_delete(struct req *r)
{
	struct page		 p;
	struct json_object	*d = NULL, *u;
	bool			 same;
	int			 rc;

	if (!admin_form(r, &p))
		return;
	if ((rc = admin_user_detail(r, r->params[0], &d)) <= 0) {
		admin_failed(&p, rc == 0 ? ADM_NOT_FOUND : rc);
		return;
	}
	json_object_object_get_ex(d, "user", &u);
	/* A guest has no email: its id confirms instead. */
	same = strcmp(ascii_lower(r->a, member_str(u, "email") != NULL ?
	    member_str(u, "email") : member_str(u, "id")), ascii_lower(r->a,
	    in_str(r, "confirm"))) == 0;
	json_object_put(d);
	if (!same) {
		admin_again(&p, "confirm", "does not match the account's "
		    "email");
		return;
	}
	if ((rc = admin_delete(r, r->params[0])) != ADM_OK) {
		admin_failed(&p, rc);
		return;
	}
	reply_redirect(r, 303, "/admin");
}

/* POST /admin/users/{id}/keys/{kid}/delete: 303 back; 404 not that user's. */
void
h_page_admin_key_delete(struct req *r)
{
	struct page	 p;

	if (admin_post(r, &p))
		admin_revoked(r, admin_revoke_key(r, r->params[0],
		    r->params[1]), "API key");
}

/* POST /admin/users/{id}/sessions/{sid}/delete: 303 back; 404. */
void
h_page_admin_session_delete(struct req *r)
{
	struct page	 p;

	if (admin_post(r, &p))
		admin_revoked(r, admin_revoke_session(r, r->params[0],
		    r->params[1]), "session");
}
