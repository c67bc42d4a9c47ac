/*
 * The HTML pages, part two: what a signed-in person sees of their own
 * account.  /profile (name, email, password, second factor, API keys,
 * sessions), /usage (the meters of the current billing period and a
 * chart of daily use drawn as SVG on the server), /billing (the plans,
 * Checkout, the customer portal, payments).  Helpers are in pages.c.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pages/pages.h"

/* A count with thousands grouped: 100000 -> "100,000", in the arena. */
static const char *
num(struct arena *a, long long n)
{
	char	 d[32], out[48];
	size_t	 len, i, o = 0;

	snprintf(d, sizeof(d), "%lld", n < 0 ? -n : n);
	len = strlen(d);
	if (n < 0)
		out[o++] = '-';
	for (i = 0; i < len; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = d[i];
	}
	out[o] = '\0';
	return arena_strdup(a, out);
}

/* The messages of /profile's ?notice= codes after a redirect. */
static const struct pg_notice_text profile_notices[] = {
	{ "welcome", "Welcome! We sent you a link to verify your email "
	    "address: open it to start your trial." },
	{ "name", "Your name has been saved." },
	{ "resent", "If your address still needs verifying, a new link is "
	    "on its way." },
	{ "email", "Check your new address: the change takes effect when "
	    "you open the link we sent there." },
	{ "password", "Your password has been changed. Your other sessions "
	    "have been logged out." },
	{ "key_deleted", "The API key has been revoked." },
	{ "session", "The session has been logged out." },
};

/* ------------------------------------------------------------------ */
/* /profile                                                            */
/* ------------------------------------------------------------------ */

/* The API keys section; new_key is a key just made, shown this once. */
static int
keys_section(struct page *p, struct json_object *new_key)
{
	struct req		*r = p->r;
	struct json_object	*keys = NULL, *k;
	size_t			 i, n;
	int			 rc;

	buf_puts(&p->b, "<section id=\"keys\">\n<h2>API keys</h2>\n");
	if (new_key != NULL) {
		buf_puts(&p->b, "<div class=\"secret\" role=\"status\"><p>Your "
		    "new key <strong>");
		buf_html(&p->b, member_str(new_key, "name"));
		buf_puts(&p->b, "</strong>. Copy it now: it is not shown "
		    "again.</p>\n<p><code id=\"new-key\">");
		buf_html(&p->b, member_str(new_key, "key"));
		buf_puts(&p->b, "</code></p></div>\n");
	}
	if ((rc = apikeys_list_core(r, r->who.user_id, &keys)) < 0)
		return rc;
	n = json_object_array_length(keys);
	if (pg_table(p, n, "You have no API keys.", NULL, (const char *[]){
	    "Name", "Key", "Created", "Last used", "Expires", ".Actions",
	    NULL })) {
		for (i = 0; i < n; i++) {
			const char *id;

			k = json_object_array_get_idx(keys, i);
			id = member_str(k, "id");
			buf_puts(&p->b, "<tr>");
			pg_key_cells(p, k);
			pg_used_cells(p, k);
			buf_puts(&p->b, "<td>");
			if (member_str(k, "expires_at") == NULL)
				buf_puts(&p->b, "never");
			else
				pg_time(&p->b, member_str(k, "expires_at"));
			buf_puts(&p->b, "</td><td class=\"actions\">");
			pg_button_form(p, arena_printf(r->a, "/profile/keys/"
			    "%s/regenerate", id), "Regenerate", "secondary");
			pg_button_form(p, arena_printf(r->a, "/profile/keys/"
			    "%s/delete", id), "Revoke", "danger");
			buf_puts(&p->b, "</td></tr>\n");
		}
		pg_table_end(p);
		pg_button_form(p, "/profile/keys/revoke-all", "Revoke every key",
		    "danger");
	}
	json_object_put(keys);
	buf_puts(&p->b, "<h3>New key</h3>\n");
	pg_form(p, "/profile/keys", "row");
	pg_input(p, "Name", "key_name", "text", new_key ? NULL :
	    pg_arg(r, "key_name"), "off", true);
	pg_input(p, "Expires after (days, empty: never)", "expires_in_days",
	    "number", new_key ? NULL : pg_arg(r, "expires_in_days"), "off",
	    false);
	pg_submit(p, "Create key", NULL);
	buf_puts(&p->b, "</section>\n");
	return 0;
}

/* The sessions section. */
static int
sessions_section(struct page *p)
{
	struct req		*r = p->r;
	struct json_object	*list, *e;
	size_t			 i, n;
	int			 rc;

	if ((rc = sessions_list_core(r, r->who.user_id, &list)) < 0)
		return rc;
	buf_puts(&p->b, "<section id=\"sessions\">\n<h2>Sessions</h2>\n");
	n = json_object_array_length(list);
	pg_table(p, n, NULL, NULL, (const char *[]){ "Device", "Signed in",
	    "Last used", ".Actions", NULL });
	for (i = 0; i < n; i++) {
		const char *id, *client, *addr;
		bool current;

		e = json_object_array_get_idx(list, i);
		id = member_str(e, "id");
		client = member_str(e, "client_name");
		addr = member_str(e, "address");
		current = member_bool(e, "current");
		buf_puts(&p->b, "<tr><td>");
		if (client != NULL) {
			buf_html(&p->b, client);
			buf_puts(&p->b, " (device sign-in)");
		} else
			buf_html(&p->b, member_str(e, "user_agent") ?
			    member_str(e, "user_agent") : "Unknown client");
		if (current)
			buf_puts(&p->b, " <strong class=\"tag\">this "
			    "browser</strong>");
		buf_puts(&p->b, "<br><small>");
		buf_html(&p->b, member_str(e, "kind"));
		if (addr != NULL) {
			buf_puts(&p->b, " from ");
			buf_html(&p->b, addr);
		}
		buf_puts(&p->b, "</small></td>");
		pg_used_cells(p, e);
		pg_revoke_cell(p, arena_printf(r->a, "/profile/sessions/%s/"
		    "delete", id), current ? "Log out" : "Revoke");
	}
	json_object_put(list);
	pg_table_end(p);
	buf_puts(&p->b, "</section>\n");
	return 0;
}

/*
 * Renders /profile with status; new_key (consumed) is a key to show
 * once.  Answers the request.
 */
static void
profile_page(struct page *p, int status, struct json_object *new_key)
{
	struct req	*r = p->r;
	struct dbrows	 me;
	int		 rc;

	if ((rc = user_profile(r, r->who.user_id, &me)) <= 0) {
		json_object_put(new_key);
		json_object_put(p->errs);
		reply_db(r, rc == 0 ? DB_FAIL : rc);
		return;
	}
	pg_nav(p, "/profile");
	pg_notice_of(p, profile_notices, sizeof(profile_notices) /
	    sizeof(profile_notices[0]));
	if (p->errs != NULL)
		pg_notice(p, "error", "Some fields need your attention: see "
		    "below.");

	buf_puts(&p->b, "<section id=\"account\">\n<h2>Account</h2>\n<dl>"
	    "<dt>Email</dt><dd>");
	buf_html(&p->b, dbv(&me, 0, 1));
	buf_puts(&p->b, dbi(&me, 0, 5) ? " <span class=\"tag ok\">verified"
	    "</span>" : " <span class=\"tag warn\">not verified yet</span> ");
	if (!dbi(&me, 0, 5))
		pg_button_form(p, "/profile/resend", "Send the link again",
		    "link");
	buf_puts(&p->b, "</dd><dt>Plan</dt><dd>");
	buf_html(&p->b, dbv(&me, 0, 4) ? dbv(&me, 0, 4) : "none");
	if (dbv(&me, 0, 4) && strcmp(dbv(&me, 0, 4), "trial") == 0) {
		buf_puts(&p->b, dbv(&me, 0, 8) ? ", until " : ", starts when "
		    "you verify your email");
		buf_html(&p->b, dbv(&me, 0, 8));
	}
	buf_puts(&p->b, " · <a href=\"/billing\">billing</a></dd>");
	buf_puts(&p->b, "<dt>Member since</dt><dd>");
	pg_time(&p->b, dbv(&me, 0, 6));
	buf_puts(&p->b, "</dd></dl>\n");

	buf_puts(&p->b, "<h3>Name</h3>\n");
	pg_form(p, "/profile/name", "row");
	pg_input(p, "Your name", "name", "text", p->errs ? pg_arg(r, "name") :
	    dbv(&me, 0, 2), "name", true);
	pg_submit(p, "Save name", NULL);

	buf_puts(&p->b, "<h3>Email</h3>\n");
	pg_form(p, "/profile/email", NULL);
	pg_input(p, "New email", "email", "email", pg_arg(r, "email"),
	    "email", true);
	pg_input(p, "Your password", "password", "password", NULL,
	    "current-password", true);
	pg_submit(p, "Change email", NULL);

	buf_puts(&p->b, "<h3>Password</h3>\n");
	pg_form(p, "/profile/password", NULL);
	pg_input(p, "Current password", "current_password", "password", NULL,
	    "current-password", true);
	pg_input(p, "New password (at least 10 characters)", "new_password",
	    "password", NULL, "new-password", true);
	pg_submit(p, "Change password", NULL);

	/* The TOTP state and its forms (pages_totp.c). */
	totp_profile_section(r, &p->b, dbi(&me, 0, 7) != 0);
	buf_puts(&p->b, "</section>\n");

	rc = keys_section(p, new_key);
	json_object_put(new_key);
	if (rc < 0 || (rc = sessions_section(p)) < 0) {
		json_object_put(p->errs);
		reply_db(r, rc);
		return;
	}
	pg_send(p, status, "Your profile");
}

/* GET /profile: 200; 303 to /login without a session. */
void
h_page_profile(struct req *r)
{
	struct page	 p;

	if (pg_get(r, &p, false))
		profile_page(&p, 200, NULL);
}

/* The common start of the profile's POST handlers. */
static bool
profile_post(struct req *r, struct page *p)
{
	return pg_post(r, p, false);
}

/*
 * The common start of the profile's form handlers: false when it
 * answered, with a refusal or with /profile again (422) showing the
 * messages of the form's bad fields.
 */
static bool
profile_form(struct req *r, struct page *p)
{
	if (!profile_post(r, p))
		return false;
	if (pg_take(p))
		return true;
	profile_page(p, 422, NULL);
	return false;
}

/*
 * Ends a profile action whose core returned rc: the database's error
 * when rc < 0, else 303 to /profile showing notice.
 */
static void
profile_done(struct req *r, int rc, const char *notice)
{
	if (rc < 0)
		reply_db(r, rc);
	else
		reply_redirect(r, 303, arena_printf(r->a, "/profile?notice=%s",
		    notice));
}

/* POST /profile/name {name}: 303 to /profile; 422 with the message. */
void
h_page_profile_name(struct req *r)
{
	struct page	 p;

	if (profile_form(r, &p))
		profile_done(r, me_rename_core(r, r->who.user_id, in_str(r,
		    "name")), "name");
}

/* POST /profile/resend: 303 to /profile, a new verification link sent. */
void
h_page_profile_resend(struct req *r)
{
	struct page	 p;

	if (profile_post(r, &p))
		profile_done(r, resend_verification_core(r, r->who.user_id),
		    "resent");
}

/*
 * POST /profile/email {email, password}: 303 to /profile (a link goes
 * to the new address); 422 wrong password or bad email; 409 taken.
 */
void
h_page_profile_email(struct req *r)
{
	struct page	 p;
	long		 retry;
	int		 rc;

	if (!profile_form(r, &p))
		return;
	rc = me_email_core(r, r->who.user_id, r->who.email, in_str(r, "email"),
	    in_str(r, "password"), &retry);
	switch (rc) {
	case ME_WRONG:
	case ME_THROTTLED:
		pg_error(&p, "password", "is wrong");
		profile_page(&p, 422, NULL);
		break;
	case ME_TAKEN:
		pg_error(&p, "email", "An account with this email already "
		    "exists.");
		profile_page(&p, 409, NULL);
		break;
	case ME_SAME:
		pg_error(&p, "email", "is already your email address");
		profile_page(&p, 422, NULL);
		break;
	default:
		profile_done(r, rc, "email");
	}
}

/*
 * POST /profile/password {current_password, new_password}: 303 to
 * /profile, other sessions logged out; 422 wrong current password.
 */
void
h_page_profile_password(struct req *r)
{
	struct page	 p;
	long		 retry;
	int		 rc;

	if (!profile_form(r, &p))
		return;
	rc = me_password_core(r, r->who.user_id, r->who.email,
	    r->who.session_id, in_str(r, "current_password"),
	    in_str(r, "new_password"), &retry);
	if (rc > 0) {
		pg_error(&p, "current_password", "is wrong");
		profile_page(&p, 422, NULL);
	} else
		profile_done(r, rc, "password");
}

/*
 * POST /profile/keys {key_name, expires_in_days?}: 201 the profile with
 * the new key shown once; 422 bad fields; 403 past the plan's key limit.
 */
void
h_page_key_create(struct req *r)
{
	struct page		 p;
	struct json_object	*key = NULL;
	const char		*refusal = NULL;
	int			 rc;

	if (!profile_post(r, &p) || !pg_reauth(r, "/profile/keys"))
		return;
	if (!pg_take(&p)) {
		profile_page(&p, 422, NULL);
		return;
	}
	rc = apikey_create_core(r, r->who.user_id, in_str(r, "key_name"),
	    in_int(r, "expires_in_days", 0), &key, &refusal);
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == APIKEY_GONE)
		/* The account went: no plan, so no next plan to name. */
		refusal = quota_message(r->a, "api_keys", NULL);
	if (rc > 0) {
		pg_error(&p, "key_name", arena_printf(r->a, "%s: you have as "
		    "many API keys as your plan allows.", refusal ? refusal :
		    "API key quota exceeded"));
		profile_page(&p, 403, NULL);
		return;
	}
	log_info("apikey_create", " user=%s via=page", r->who.user_id);
	profile_page(&p, 201, key);
}

/* POST /profile/keys/{id}/regenerate: 200 with the new key; 403 not yours. */
void
h_page_key_regenerate(struct req *r)
{
	struct page		 p;
	struct json_object	*key = NULL;
	int			 rc;

	if (!profile_post(r, &p) || !pg_reauth(r, arena_printf(r->a,
	    "/profile/keys/%s/regenerate", r->params[0])))
		return;
	rc = apikey_regenerate_core(r, r->who.user_id, r->params[0], &key);
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc > 0) {
		reply_error(r, 403, "forbidden", "This API key is not yours.");
		return;
	}
	profile_page(&p, 200, key);
}

/* POST /profile/keys/revoke-all: 303 to /profile, every key revoked. */
void
h_page_keys_revoke_all(struct req *r)
{
	struct page	 p;

	if (profile_post(r, &p))
		profile_done(r, apikeys_revoke_all_core(r, r->who.user_id),
		    "key_deleted#keys");
}

/* POST /profile/keys/{id}/delete: 303 to /profile; 403 not yours. */
void
h_page_key_delete(struct req *r)
{
	struct page	 p;
	int		 rc;

	if (!profile_post(r, &p))
		return;
	rc = apikey_delete_core(r, r->who.user_id, r->params[0], false);
	if (rc > 0)
		reply_error(r, 403, "forbidden", "This API key is not yours.");
	else
		profile_done(r, rc, "key_deleted#keys");
}

/*
 * POST /profile/sessions/{id}/delete: 303 to /profile (to /login when it
 * was this browser's session); 403 not yours.
 */
void
h_page_session_delete(struct req *r)
{
	struct page	 p;
	const char	*sid = r->params[0];
	int		 rc;

	if (!profile_post(r, &p))
		return;
	rc = session_delete_core(r, r->who.user_id, sid, false);
	if (rc > 0)
		reply_error(r, 403, "forbidden", "This session is not yours.");
	else if (rc == 0 && r->who.session_id != NULL &&
	    strcmp(r->who.session_id, sid) == 0) {
		session_clear_cookie(r);
		reply_redirect(r, 303, "/login?notice=logout");
	} else
		profile_done(r, rc, "session#sessions");
}

/* ------------------------------------------------------------------ */
/* /usage                                                              */
/* ------------------------------------------------------------------ */

/* Days since the epoch of "YYYY-MM-DD...", or -1. */
static long
day_number(const char *s)
{
	struct tm	 tm;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || sscanf(s, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday) != 3)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long)(timegm(&tm) / 86400);
}

/* "YYYY-MM-DD" of a day number, in the arena. */
static const char *
day_text(struct arena *a, long day)
{
	time_t		 t = (time_t)day * 86400;
	struct tm	 tm;

	gmtime_r(&t, &tm);
	return arena_printf(a, "%04d-%02d-%02d", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday);
}

/* A meter's name for people: "compute_minutes" -> "Compute minutes". */
static const char *
meter_label(struct arena *a, const char *m)
{
	char	*s = arena_strdup(a, m), *c;

	for (c = s; *c != '\0'; c++)
		if (*c == '_')
			*c = ' ';
	if (strncmp(s, "api ", 4) == 0)
		memcpy(s, "API", 3);
	else if (s[0] >= 'a' && s[0] <= 'z')
		s[0] = (char)(s[0] - 'a' + 'A');
	return s;
}

#define CHART_W		640
#define CHART_H		180
#define CHART_L		44	/* room for the y labels */
#define CHART_B		24	/* room for the x labels */

/*
 * Draws one meter's daily use from day first to day last as an SVG bar
 * chart: one bar per day, the largest day's value on the y axis, each
 * bar titled with its date and value.
 */
static void
draw_chart(struct page *p, const char *meter, struct json_object *rows,
    long first, long last)
{
	struct arena	*a = p->r->a;
	long		 ndays = last - first + 1, d;
	long long	*v, max = 0, total = 0;
	double		 bw, plot_h = CHART_H - CHART_B - 8;
	size_t		 i;

	if (ndays < 1)
		ndays = 1;
	if (ndays > 400)
		ndays = 400;
	v = arena_alloc(a, sizeof(*v) * (size_t)ndays);
	memset(v, 0, sizeof(*v) * (size_t)ndays);
	for (i = 0; i < json_object_array_length(rows); i++) {
		struct json_object *e = json_object_array_get_idx(rows, i);

		if (strcmp(member_str(e, "meter"), meter) != 0)
			continue;
		d = day_number(member_str(e, "day")) - first;
		if (d >= 0 && d < ndays)
			v[d] += member_int(e, "used");
	}
	for (d = 0; d < ndays; d++) {
		if (v[d] > max)
			max = v[d];
		total += v[d];
	}
	bw = (double)(CHART_W - CHART_L - 4) / (double)ndays;
	buf_printf(&p->b, "<figure class=\"chart\">\n<svg viewBox=\"0 0 %d "
	    "%d\" role=\"img\" aria-labelledby=\"chart-", CHART_W, CHART_H);
	buf_html(&p->b, meter);
	buf_puts(&p->b, "\" xmlns=\"http://www.w3.org/2000/svg\">\n<title "
	    "id=\"chart-");
	buf_html(&p->b, meter);
	buf_puts(&p->b, "\">");
	buf_html(&p->b, meter_label(a, meter));
	buf_printf(&p->b, " per day, %s to %s: %lld in all</title>\n",
	    day_text(a, first), day_text(a, first + ndays - 1), total);
	buf_printf(&p->b, "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" "
	    "x2=\"%d\" y2=\"%.1f\"/>\n", CHART_L, 8 + plot_h, CHART_W - 2,
	    8 + plot_h);
	buf_printf(&p->b, "<text class=\"label\" x=\"%d\" y=\"14\" "
	    "text-anchor=\"end\">%lld</text>\n<text class=\"label\" x=\"%d\" "
	    "y=\"%.1f\" text-anchor=\"end\">0</text>\n", CHART_L - 6, max,
	    CHART_L - 6, 8 + plot_h);
	for (d = 0; d < ndays; d++) {
		double h = max > 0 ? plot_h * (double)v[d] / (double)max : 0;

		if (v[d] > 0 && h < 1)
			h = 1;
		buf_printf(&p->b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" "
		    "width=\"%.1f\" height=\"%.1f\"><title>%s: %lld</title>"
		    "</rect>\n", CHART_L + 2 + bw * (double)d + bw * 0.1,
		    8 + plot_h - h, bw * 0.8, h, day_text(a, first + d), v[d]);
	}
	buf_printf(&p->b, "<text class=\"label\" x=\"%d\" y=\"%d\">%s</text>"
	    "\n<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">"
	    "%s</text>\n</svg>\n", CHART_L + 2, CHART_H - 6,
	    day_text(a, first), CHART_W - 2, CHART_H - 6,
	    day_text(a, first + ndays - 1));
	buf_puts(&p->b, "</figure>\n");
}

/*
 * The money of the period's usage events (cost_micros), per meter and in
 * all, when there is some; nothing otherwise.
 */
static void
usage_money(struct page *p, struct json_object *u)
{
	struct json_object	*money, *mm;
	const char		*cur;

	if (!json_object_object_get_ex(u, "money", &money) ||
	    !json_object_object_get_ex(money, "meters", &mm) ||
	    json_object_object_length(mm) == 0)
		return;
	cur = member_str(money, "currency");
	buf_puts(&p->b, "<section>\n<h2>Cost</h2>\n");
	pg_table(p, 1, NULL, "money", (const char *[]){ "Meter",
	    "Cost this period", NULL });
	json_object_object_foreach(mm, name, v) {
		buf_puts(&p->b, "<tr id=\"cost-");
		buf_html(&p->b, name);
		buf_puts(&p->b, "\"><th scope=\"row\">");
		buf_html(&p->b, meter_label(p->r->a, name));
		buf_puts(&p->b, "</th><td>");
		buf_html(&p->b, money_micros_text(p->r->a,
		    json_object_get_int64(v), cur));
		buf_puts(&p->b, "</td></tr>\n");
	}
	buf_puts(&p->b, "</tbody>\n<tfoot><tr><th scope=\"row\">In all</th>"
	    "<td id=\"cost-total\">");
	buf_html(&p->b, money_micros_text(p->r->a, member_int(money,
	    "total_micros"), cur));
	buf_puts(&p->b, "</td></tr></tfoot></table></div>\n</section>\n");
}

/* GET /usage: 200 with the meters of the period and the daily charts. */
void
h_page_usage(struct req *r)
{
	struct page		 p;
	struct json_object	*u = NULL, *per, *ms;
	struct json_object	*daily = NULL;
	const char		*start, *end;
	long			 first, last, today;
	int			 rc;

	if (!pg_get(r, &p, false))
		return;
	if ((rc = usage_core(r, r->who.user_id, &u)) != 0) {
		reply_db(r, rc == USAGE_GONE ? DB_FAIL : rc);
		return;
	}
	json_object_object_get_ex(u, "period", &per);
	json_object_object_get_ex(u, "meters", &ms);
	start = member_str(per, "start");
	end = member_str(per, "end");
	first = day_number(start);
	today = (long)(time(NULL) / 86400);
	last = end != NULL ? day_number(end) : first + 29;
	/* A period ending at midnight does not include that day. */
	if (end != NULL && strlen(end) >= 19 && strcmp(end + 11,
	    "00:00:00Z") == 0)
		last--;
	if (last < first)
		last = first;
	if ((rc = usage_daily_core(r, r->who.user_id, day_text(r->a, first),
	    day_text(r->a, last), &daily)) < 0) {
		json_object_put(u);
		reply_db(r, rc);
		return;
	}

	pg_nav(&p, "/usage");
	buf_puts(&p.b, "<section class=\"summary\">\n<dl><dt>Plan</dt><dd>");
	buf_html(&p.b, member_str(u, "plan") ? member_str(u, "plan") : "none");
	buf_puts(&p.b, "</dd><dt>Billing period</dt><dd>");
	buf_html(&p.b, day_text(r->a, first));
	buf_puts(&p.b, " to ");
	buf_html(&p.b, day_text(r->a, last));
	if (today >= first && today <= last)
		buf_printf(&p.b, " (day %ld of %ld)", today - first + 1,
		    last - first + 1);
	buf_puts(&p.b, "</dd><dt>Credits left</dt><dd id=\"credits-left\">");
	{
		struct json_object *c;

		json_object_object_get_ex(u, "credits", &c);
		buf_puts(&p.b, num(r->a, member_int(c, "remaining")));
	}
	buf_puts(&p.b, "</dd></dl>\n</section>\n<section>\n<h2>Meters</h2>\n");
	pg_table(&p, 1, NULL, "meters", (const char *[]){ "Meter", "Used",
	    "Limit", ".Share", NULL });
	if (json_object_object_length(ms) == 0)
		buf_puts(&p.b, "<tr><td colspan=\"4\">Nothing is metered on "
		    "your plan.</td></tr>\n");
	json_object_object_foreach(ms, name, m) {
		long long used = member_int(m, "used"), lim = member_int(m, "limit");
		bool has_lim = member_str(m, "limit") != NULL;

		bool level = member_str(m, "kind") != NULL &&
		    strcmp(member_str(m, "kind"), "level") == 0;

		buf_puts(&p.b, "<tr id=\"meter-");
		buf_html(&p.b, name);
		buf_puts(&p.b, "\"><th scope=\"row\">");
		buf_html(&p.b, meter_label(r->a, name));
		buf_printf(&p.b, "</th><td>%s%s</td><td>", num(r->a, used),
		    level ? " in use now" : "");
		if (has_lim)
			buf_printf(&p.b, "%s</td><td><meter min=\"0\" "
			    "max=\"%lld\" low=\"%lld\" high=\"%lld\" "
			    "optimum=\"0\" value=\"%lld\">%lld of %lld</meter>"
			    "</td></tr>\n", num(r->a, lim), lim > 0 ? lim : 1,
			    lim * 8 / 10, lim * 95 / 100, used, used, lim);
		else
			buf_puts(&p.b, "no limit</td><td></td></tr>\n");
	}
	pg_table_end(&p);
	buf_puts(&p.b, "</section>\n");
	usage_money(&p, u);
	buf_puts(&p.b, "<section>\n<h2>Daily use</h2>\n");
	json_object_object_foreach(ms, name2, m2) {
		if (member_str(m2, "kind") != NULL &&
		    strcmp(member_str(m2, "kind"), "level") == 0)
			continue;	/* a level has no daily sum */
		buf_puts(&p.b, "<h3>");
		buf_html(&p.b, meter_label(r->a, name2));
		buf_puts(&p.b, "</h3>\n");
		draw_chart(&p, name2, daily, first, last);
	}
	buf_puts(&p.b, "</section>\n");
	json_object_put(u);
	json_object_put(daily);
	pg_send(&p, 200, "Usage");
}

/* ------------------------------------------------------------------ */
/* /billing                                                            */
/* ------------------------------------------------------------------ */

/* GET /billing: 200 with the plans, the subscription and the payments. */
void
h_page_billing(struct req *r)
{
	struct page		 p;
	struct json_object	*plans = NULL, *bill = NULL, *pays = NULL, *pl,
				*lim;
	const char		*cur, *notice = pg_arg(r, "checkout");
	bool			 live;
	size_t			 i, n;
	int			 rc;

	if (!pg_get(r, &p, false))
		return;
	if ((rc = plans_core(r, &plans)) < 0 ||
	    (rc = billing_state_core(r, r->who.user_id, &bill)) != 0 ||
	    (rc = billing_payments_core(r, r->who.user_id, 100, &pays)) < 0) {
		if (rc == BILLING_GONE)
			rc = DB_FAIL;
		json_object_put(plans);
		json_object_put(bill);
		reply_db(r, rc);
		return;
	}
	cur = member_str(bill, "plan");
	live = member_str(bill, "status") != NULL && (strcmp(member_str(bill, "status"),
	    "active") == 0 || strcmp(member_str(bill, "status"), "trialing") == 0 ||
	    strcmp(member_str(bill, "status"), "past_due") == 0);
	pg_nav(&p, "/billing");
	if (notice != NULL && strcmp(notice, "success") == 0)
		pg_notice(&p, "notice", "Thank you! Your subscription starts "
		    "as soon as the payment is confirmed.");
	else if (notice != NULL && strcmp(notice, "cancelled") == 0)
		pg_notice(&p, "notice", "The checkout was cancelled; nothing "
		    "was charged.");
	buf_puts(&p.b, "<section class=\"summary\">\n<dl><dt>Current plan"
	    "</dt><dd id=\"current-plan\">");
	buf_html(&p.b, cur ? cur : "none");
	buf_puts(&p.b, "</dd>");
	if (member_str(bill, "status") != NULL) {
		buf_puts(&p.b, "<dt>Subscription</dt><dd>");
		buf_html(&p.b, member_str(bill, "status"));
		if (member_str(bill, "current_period_end") != NULL) {
			buf_puts(&p.b, json_object_get_boolean(
			    json_object_object_get(bill,
			    "cancel_at_period_end")) ? ", ends " :
			    ", renews ");
			pg_time(&p.b, member_str(bill, "current_period_end"));
		}
		buf_puts(&p.b, "</dd>");
	}
	buf_puts(&p.b, "</dl>\n");
	/* Without Stripe set up, no button that would fail. */
	if (!stripe_configured())
		buf_puts(&p.b, "<p id=\"billing-off\">Paid plans cannot be "
		    "bought on this site yet.</p>\n");
	else if (member_str(bill, "status") != NULL) {
		pg_form(&p, "/billing/portal", "inline");
		pg_submit(&p, "Manage billing", "secondary");
	}
	buf_puts(&p.b, "</section>\n<section>\n<h2>Plans</h2>\n"
	    "<div class=\"plans\">\n");
	n = json_object_array_length(plans);
	for (i = 0; i < n; i++) {
		const char *name;
		long long price;

		pl = json_object_array_get_idx(plans, i);
		name = member_str(pl, "name");
		price = member_int(pl, "price");
		if (strcmp(name, "trial") == 0 && (cur == NULL ||
		    strcmp(cur, "trial") != 0))
			continue;
		buf_printf(&p.b, "<article class=\"plan%s\" id=\"plan-",
		    cur && strcmp(cur, name) == 0 ? " current" : "");
		buf_html(&p.b, name);
		buf_puts(&p.b, "\"><h3>");
		buf_html(&p.b, member_str(pl, "display_name") ? member_str(pl,
		    "display_name") : name);
		buf_puts(&p.b, "</h3>\n<p class=\"price\">");
		if (price == 0)
			buf_puts(&p.b, "Free");
		else {
			buf_html(&p.b, money_text(r->a, price, member_str(pl, "currency")));
			buf_puts(&p.b, " <small>a month</small>");
		}
		buf_printf(&p.b, "</p>\n<ul><li>%s requests a minute</li>"
		    "<li>%s credits%s</li>", num(r->a, member_int(pl,
		    "rate_per_minute")), num(r->a, member_int(pl, "credits")),
		    strcmp(name, "trial") == 0 ? " in all" : " a month");
		json_object_object_get_ex(pl, "limits", &lim);
		if (member_str(lim, "compute_minutes") != NULL)
			buf_printf(&p.b, "<li>%s compute minutes a month</li>",
			    num(r->a, member_int(lim, "compute_minutes")));
		if (member_str(lim, "api_calls") != NULL)
			buf_printf(&p.b, "<li>%s API calls a month</li>",
			    num(r->a, member_int(lim, "api_calls")));
		buf_printf(&p.b, "<li>%s API keys</li></ul>\n",
		    num(r->a, member_int(pl, "api_keys")));
		if (cur != NULL && strcmp(cur, name) == 0)
			buf_puts(&p.b, "<p class=\"tag ok\">Your plan</p>\n");
		else if (!stripe_configured())
			;	/* nothing to buy it with */
		else if (price > 0 && live) {
			pg_form(&p, "/billing/portal", "inline");
			pg_submit(&p, arena_printf(r->a, "Switch to %s in the "
			    "portal", member_str(pl, "display_name") ? member_str(pl,
			    "display_name") : name), "secondary");
		} else if (price > 0) {
			pg_form(&p, "/billing/checkout", "inline");
			pg_hidden(&p, "plan", name);
			pg_submit(&p, arena_printf(r->a, "Upgrade to %s",
			    member_str(pl, "display_name") ? member_str(pl, "display_name") :
			    name), NULL);
		}
		buf_puts(&p.b, "</article>\n");
	}
	buf_puts(&p.b, "</div>\n</section>\n<section>\n<h2>Payments</h2>\n");
	n = json_object_array_length(pays);
	if (pg_table(&p, n, "No payments yet.", NULL, (const char *[]){
	    "Date", "Amount", "Status", "Invoice", NULL })) {
		for (i = 0; i < n; i++) {
			struct json_object *py = json_object_array_get_idx(pays,
			    i);
			const char *url = member_str(py, "invoice_url");

			buf_puts(&p.b, "<tr><td>");
			pg_time(&p.b, member_str(py, "created_at"));
			buf_puts(&p.b, "</td><td>");
			buf_html(&p.b, money_text(r->a, member_int(py, "amount"),
			    member_str(py, "currency")));
			buf_puts(&p.b, "</td><td>");
			buf_html(&p.b, member_str(py, "status"));
			buf_puts(&p.b, "</td><td>");
			if (url != NULL && strncmp(url, "https://", 8) == 0) {
				buf_puts(&p.b, "<a href=\"");
				buf_html(&p.b, url);
				buf_puts(&p.b, "\" rel=\"noopener\">Invoice</a>");
			}
			buf_puts(&p.b, "</td></tr>\n");
		}
		pg_table_end(&p);
	}
	buf_puts(&p.b, "</section>\n");
	json_object_put(plans);
	json_object_put(bill);
	json_object_put(pays);
	pg_send(&p, 200, "Billing");
}

/*
 * Answers 200 with a link to a Stripe page.  Not a 303: the pages'
 * Content-Security-Policy (form-action 'self') makes a browser refuse a
 * form submission that redirects to another origin, while a link the
 * person follows is not a form submission.
 */
static void
continue_page(struct page *p, const char *url, const char *title,
    const char *text, const char *button)
{
	pg_nav(p, "/billing");
	buf_puts(&p->b, "<section>\n<p>");
	buf_html(&p->b, text);
	buf_puts(&p->b, "</p>\n<p><a class=\"button\" id=\"continue\" "
	    "rel=\"noopener\" href=\"");
	buf_html(&p->b, url);
	buf_puts(&p->b, "\">");
	buf_html(&p->b, button);
	buf_puts(&p->b, "</a></p>\n<p><a href=\"/billing\">Back to billing"
	    "</a></p>\n</section>\n");
	pg_send(p, 200, title);
}

/*
 * POST /billing/checkout {plan}: 200 with the link to Stripe Checkout;
 * 422 for a plan that cannot be bought; 409 when a subscription is live
 * (the portal changes it); 404 when billing is not set up; 503 when
 * Stripe cannot be reached.
 */
void
h_page_checkout(struct req *r)
{
	struct page	 p;
	const char	*url = NULL;
	int		 rc;

	if (!profile_post(r, &p))
		return;
	if (!stripe_configured()) {
		reply_error(r, 404, "not_found", "Billing is not set up on "
		    "this site.");
		return;
	}
	if (!pg_take(&p)) {
		json_object_put(p.errs);
		reply_error(r, 422, "validation_failed", "Choose a plan.");
		return;
	}
	rc = billing_checkout_core(r, r->who.user_id, in_str(r, "plan"),
	    " via=page", &url);
	if (rc < 0) {
		reply_billing_failed(r, rc);
		return;
	}
	if (rc == BILLING_NOT_BUYABLE) {
		reply_error(r, 422, "validation_failed", "This plan cannot be "
		    "bought.");
		return;
	}
	if (rc == BILLING_SUB_EXISTS) {
		reply_error(r, 409, "subscription_exists", "You already have a "
		    "subscription; change it through the billing portal.");
		return;
	}
	continue_page(&p, url, "Continue to payment", "Payment happens on "
	    "Stripe's secure page; you come back here afterwards.",
	    "Continue to Stripe Checkout");
}

/*
 * POST /billing/portal: 200 with the link to Stripe's portal; 404 when
 * billing is not set up; 503.
 */
void
h_page_portal(struct req *r)
{
	struct page	 p;
	const char	*url = NULL;
	int		 rc;

	if (!profile_post(r, &p))
		return;
	if (!stripe_configured()) {
		reply_error(r, 404, "not_found", "Billing is not set up on "
		    "this site.");
		return;
	}
	if ((rc = billing_portal_core(r, r->who.user_id, " via=page", &url)) < 0) {
		reply_billing_failed(r, rc);
		return;
	}
	continue_page(&p, url, "Manage billing", "Your invoices, payment "
	    "method and subscription are on Stripe's customer portal.",
	    "Continue to the billing portal");
}
