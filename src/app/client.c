/*
 * GET /api/v1/client-config (contract section 7a): what a client (an
 * editor extension, a CLI) asks once after it signs in: the operator's
 * own JSON for clients ([client] config_file: an endpoint URL, feature
 * flags; never a secret), who the user is, the plan, and what is left on
 * each meter.
 */
#include <string.h>

#include "app/app.h"

/*
 * Adds remaining to each meter of usage (limit - used, never below 0;
 * null without a limit).  For the meter credits it is every credit the
 * user can spend now (credits.remaining, as /api/v1/me reports it), since
 * granted credits go beyond the plan's allowance.
 */
static struct json_object *
meters_left(struct json_object *usage)
{
	struct json_object	*ms, *out = json_object_new_object(), *m, *v,
				*c;
	long long		 used, lim, credits = 0;
	bool			 have_credits;

	have_credits = json_object_object_get_ex(usage, "credits", &c) &&
	    json_object_object_get_ex(c, "remaining", &v);
	if (have_credits)
		credits = json_object_get_int64(v);
	if (!json_object_object_get_ex(usage, "meters", &ms))
		return out;
	json_object_object_foreach(ms, name, mv) {
		m = json_object_new_object();
		used = json_object_object_get_ex(mv, "used", &v) ?
		    json_object_get_int64(v) : 0;
		json_object_object_add(m, "used", json_object_new_int64(used));
		if (json_object_object_get_ex(mv, "limit", &v) && v != NULL) {
			lim = json_object_get_int64(v);
			json_object_object_add(m, "limit",
			    json_object_new_int64(lim));
			json_object_object_add(m, "remaining",
			    json_object_new_int64(strcmp(name, "credits") ==
			    0 && have_credits ? credits : lim > used ?
			    lim - used : 0));
		} else {
			json_object_object_add(m, "limit", NULL);
			json_object_object_add(m, "remaining",
			    strcmp(name, "credits") == 0 && have_credits ?
			    json_object_new_int64(credits) : NULL);
		}
		if (json_object_object_get_ex(mv, "kind", &v))
			json_object_object_add(m, "kind", json_object_get(v));
		json_object_object_add(out, name, m);
	}
	return out;
}

/*
 * GET /api/v1/client-config (any user credential: a JWT, an API key or
 * the session cookie): 200 {config, user, plan, meters: {<meter>: {used,
 * limit, remaining}}, credits: {remaining}}, where plan is the user's
 * plan as GET /api/v1/plans lists it (null when there is none); 401 for
 * an account gone meanwhile; 503.
 */
void
h_client_config(struct req *r)
{
	struct json_object	*o = NULL, *user = NULL, *usage = NULL,
				*plans = NULL, *plan = NULL, *conf, *v;
	const char		*pname = NULL;
	size_t			 i;
	int			 rc;

	if ((rc = user_json(r, r->who.user_id, &user)) == 0 ||
	    (rc > 0 && (rc = usage_core(r, r->who.user_id, &usage)) ==
	    USAGE_GONE)) {
		reply_gone(r);
		goto out;
	}
	if (rc < 0 || (rc = plans_core(r, &plans)) < 0) {
		reply_db(r, rc);
		goto out;
	}
	if (json_object_object_get_ex(user, "plan", &v) && v != NULL)
		pname = json_object_get_string(v);
	for (i = 0; pname != NULL && i < json_object_array_length(plans);
	    i++) {
		struct json_object *p = json_object_array_get_idx(plans, i);

		if (json_object_object_get_ex(p, "name", &v) &&
		    strcmp(json_object_get_string(v), pname) == 0) {
			plan = json_object_get(p);
			break;
		}
	}
	if ((conf = parse_json_object(cfg.client_config,
	    strlen(cfg.client_config))) == NULL)
		conf = json_object_new_object();
	o = json_object_new_object();
	json_object_object_add(o, "config", conf);
	json_object_object_add(o, "user", user);
	user = NULL;
	json_object_object_add(o, "plan", plan);
	json_object_object_add(o, "meters", meters_left(usage));
	if (json_object_object_get_ex(usage, "credits", &v))
		json_object_object_add(o, "credits", json_object_get(v));
	reply_json(r, 200, o);
out:
	json_object_put(user);
	json_object_put(usage);
	json_object_put(plans);
}
