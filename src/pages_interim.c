/*
 * Interim cores for the pages: the actions whose JSON handlers (in
 * accounts.c, me.c, and the gate and billing branches) answer inside
 * the handler, so a page cannot call them.  Each mirrors its handler's
 * statements and mail (the mail texts are accounts.c's); when the owner
 * factors the core into a function taking explicit arguments, the page
 * calls that and the copy here goes.  The lead has the list.
 */
#include <string.h>

#include "tollgate.h"

static struct sql q_user_by_email = SQL(
    "SELECT id, email FROM users WHERE email_lc = ?");
static struct sql q_use_token = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) WHERE token_hash = ? "
    "AND kind = ? AND used_at IS NULL AND expires_at > UTC_TIMESTAMP(6)");
static struct sql q_token_user = SQL(
    "SELECT t.user_id, u.email FROM tokens t JOIN users u ON u.id = "
    "t.user_id WHERE t.token_hash = ?");
static struct sql q_tokens_kill = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND "
    "kind IN ('reset', 'magic') AND used_at IS NULL");
static struct sql q_set_password = SQL(
    "UPDATE users SET password_hash = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_set_name = SQL(
    "UPDATE users SET name = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_password_of = SQL(
    "SELECT password_hash, email, email_lc FROM users WHERE id = ?");
static struct sql q_email_taken = SQL(
    "SELECT 1 FROM users WHERE email_lc = ? AND id <> ?");
static struct sql q_keys = SQL(
    "SELECT id, name, preview, DATE_FORMAT(created_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(last_used_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(expires_at, '%Y-%m-%dT%H:%i:%sZ') "
    "FROM api_keys WHERE user_id = ? ORDER BY created_at, id");
static struct sql q_lock_user = SQL(
    "SELECT id FROM users WHERE id = ? FOR UPDATE");
static struct sql q_key_count = SQL(
    "SELECT COUNT(*), (SELECT p.api_keys FROM plans p WHERE p.name = ?) "
    "FROM api_keys WHERE user_id = ?");
static struct sql q_plan_of = SQL(
    "SELECT " PLAN_EXPR("u") " FROM users u WHERE u.id = ?");
static struct sql q_key_owner = SQL(
    "SELECT user_id, name FROM api_keys WHERE id = ?");
static struct sql q_key_regen = SQL(
    "UPDATE api_keys SET key_hash = ?, preview = ? WHERE id = ?");
static struct sql q_key_delete = SQL(
    "DELETE FROM api_keys WHERE id = ?");
static struct sql q_plans = SQL(
    "SELECT name, display_name, price_cents, currency, rate_per_minute, "
    "credits, api_keys FROM plans ORDER BY sort_order, name");
static struct sql q_plan_limits = SQL(
    "SELECT plan, meter, period_limit FROM plan_limits ORDER BY meter");
static struct sql q_billing = SQL(
    "SELECT s.plan, s.status, DATE_FORMAT(s.current_period_end, "
    "'%Y-%m-%dT%H:%i:%sZ'), s.cancel_at_period_end FROM subscriptions s "
    "WHERE s.user_id = ? AND s.deleted_at IS NULL "
    "ORDER BY s.stripe_updated DESC LIMIT 1");
static struct sql q_payments = SQL(
    "SELECT id, amount, currency, status, DATE_FORMAT(created_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), invoice_url FROM payments WHERE user_id = ? "
    "ORDER BY created_at DESC, id LIMIT 100");
/*
 * The current billing period of a user: the subscription's, else the
 * trial's while it runs (it starts at verification: before that, from
 * the account's creation), else the calendar month (UTC).
 */
static struct sql q_period = SQL(
    "SELECT " PLAN_EXPR("u") ", "
    "COALESCE(s.current_period_start, IF(u.trial_ends_at IS NULL OR "
    "u.trial_ends_at > UTC_TIMESTAMP(6), COALESCE(u.trial_started_at, "
    "u.created_at), NULL), DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-01')), "
    "COALESCE(s.current_period_end, IF(u.trial_ends_at IS NULL OR "
    "u.trial_ends_at > UTC_TIMESTAMP(6), u.trial_ends_at, NULL), "
    "DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-01') + INTERVAL 1 MONTH) "
    "FROM users u LEFT JOIN subscriptions s ON s.id = (SELECT s2.id FROM "
    "subscriptions s2 WHERE s2.user_id = u.id AND s2.deleted_at IS NULL "
    "AND s2.status IN ('active', 'trialing', 'past_due') ORDER BY "
    "s2.stripe_updated DESC LIMIT 1) WHERE u.id = ?");
static struct sql q_used = SQL(
    "SELECT meter, SUM(used) FROM usage_daily WHERE user_id = ? AND "
    "day >= DATE(?) AND (? IS NULL OR day < DATE(?) + INTERVAL "
    "IF(TIME(?) > 0, 1, 0) DAY) GROUP BY meter ORDER BY meter");
static struct sql q_counters = SQL(
    "SELECT meter, used FROM usage_counters WHERE user_id = ? AND "
    "period_start = ?");
static struct sql q_credits = SQL(
    "SELECT IF(allowance_period_end > UTC_TIMESTAMP(6), allowance, 0) + "
    "granted FROM credit_balances WHERE user_id = ?");

/*
 * The core of POST /api/v1/auth/password/forgot (accounts.c answers
 * inside its handler; asked the lead to factor it): a reset link to the
 * account of email, if any and under the hourly mail limit.  Returns 0
 * or a DB_* code.
 */
int
interim_password_forgot(struct req *r, const char *email)
{
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, email), *t;
	int		 rc, allowed;

	if ((rc = db_begin()) < 0)
		return rc;
	if ((allowed = mail_allowed(r, email_lc)) < 0) {
		rc = allowed;
		goto fail;
	}
	if ((rc = db_select(r->a, &q_user_by_email, &row, "s", email_lc)) < 0)
		goto fail;
	if (rc == 1 && allowed &&
	    ((t = onetime_token(r, "reset", dbv(&row, 0, 0), dbv(&row, 0, 1),
	    60, &rc)) == NULL ||
	    (rc = mail_reset(r, dbv(&row, 0, 0), dbv(&row, 0, 1), t)) < 0))
		goto fail;
	if ((rc = db_commit()) < 0)
		goto fail;
	return 0;
fail:
	db_rollback();
	return rc;
}

/*
 * The core of POST /api/v1/auth/password/reset: the new password set,
 * the other mailed tokens spent, every session revoked, the address
 * verified (which starts the trial), a notice mailed.  Returns 1, 0 for
 * a token unknown, used or expired, or a DB_* code.
 */
int
interim_password_reset(struct req *r, const char *token, const char *pw)
{
	struct dbrows	 row;
	const char	*h = token_hash(r->a, token), *hash, *uid;
	int		 rc;

	if ((hash = password_hash(r->a, pw)) == NULL)
		return DB_FAIL;
	if ((rc = db_begin()) < 0)
		return rc;
	if ((rc = db_exec(&q_use_token, "ss", h, "reset")) <= 0 ||
	    (rc = db_select(r->a, &q_token_user, &row, "s", h)) <= 0)
		goto out;
	uid = dbv(&row, 0, 0);
	if ((rc = db_exec(&q_set_password, "ss", hash, uid)) < 0 ||
	    (rc = db_exec(&q_tokens_kill, "s", uid)) < 0 ||
	    (rc = sessions_revoke_all(uid, NULL, "password_reset")) < 0 ||
	    (rc = account_verified(r, uid)) < 0 ||
	    (rc = mail_security_notice(r, uid, dbv(&row, 0, 1), "The "
	    "password of your tollgate account was reset, and every session "
	    "of it was signed out.")) < 0)
		goto out;
	if ((rc = db_commit()) < 0)
		goto out;
	log_info("password_reset", " user=%s via=page", uid);
	return 1;
out:
	db_rollback();
	return rc;
}

/* The core of PATCH /api/v1/me. */
int
interim_name_set(struct req *r, const char *uid, const char *name)
{
	int	 rc = db_exec(&q_set_name, "ss", name, uid);

	return rc < 0 ? rc : 0;
}

/*
 * Checks the caller's current password, counting a wrong one toward
 * the login throttle.  Returns 1 when right, 0 when wrong (or
 * throttled), or a DB_* code.
 */
static int
current_password_ok(struct req *r, const char *uid, const char *pw,
    const char **email)
{
	struct dbrows	 row;
	long		 retry;
	int		 rc;

	if ((rc = db_select(r->a, &q_password_of, &row, "s", uid)) <= 0)
		return rc;
	*email = dbv(&row, 0, 1);
	if ((rc = login_throttled(r, dbv(&row, 0, 2), &retry)) != 0)
		return rc < 0 ? rc : 0;
	if (!password_verify(dbv(&row, 0, 0), pw)) {
		if ((rc = login_failed(r, dbv(&row, 0, 2))) < 0)
			return rc;
		return 0;
	}
	return 1;
}

/*
 * The core of POST /api/v1/me/email (me.c answers inside its handler).
 * Returns 1 (the link is sent, unless the new address has had its
 * hourly mail), 0 for a wrong password (or the login throttle), 2 when
 * the address is taken, 3 when it is already the account's, or a DB_*
 * code.
 */
int
interim_email_change(struct req *r, const char *uid, const char *email,
    const char *pw)
{
	struct dbrows	 row;
	const char	*old, *t, *email_lc = ascii_lower(r->a, email);
	int		 rc, allowed;

	if ((rc = current_password_ok(r, uid, pw, &old)) <= 0)
		return rc;
	if (strcmp(email, old) == 0)
		return 3;
	if ((rc = db_begin()) < 0)
		return rc;
	if ((rc = db_select(r->a, &q_email_taken, &row, "ss", email_lc,
	    uid)) < 0)
		goto fail;
	if (rc > 0) {
		db_rollback();
		return 2;
	}
	if ((allowed = mail_allowed(r, email_lc)) < 0) {
		rc = allowed;
		goto fail;
	}
	if (allowed && ((t = onetime_token(r, "email_change", uid, email,
	    24 * 60, &rc)) == NULL ||
	    (rc = mail_email_change(r, uid, email, t)) < 0 ||
	    (rc = mail_email_change_notice(r, uid, old, email)) < 0))
		goto fail;
	if ((rc = db_commit()) < 0)
		goto fail;
	return 1;
fail:
	db_rollback();
	return rc;
}

/*
 * The core of POST /api/v1/me/password.  Returns 1, 0 for a wrong
 * current password (or the login throttle), or a DB_* code.
 */
int
interim_password_change(struct req *r, const char *uid, const char *cur,
    const char *pw)
{
	const char	*email, *hash;
	int		 rc;

	if ((rc = current_password_ok(r, uid, cur, &email)) <= 0)
		return rc;
	if ((hash = password_hash(r->a, pw)) == NULL)
		return DB_FAIL;
	if ((rc = db_begin()) < 0)
		return rc;
	if ((rc = db_exec(&q_set_password, "ss", hash, uid)) < 0 ||
	    (rc = sessions_revoke_all(uid, r->who.session_id,
	    "password_change")) < 0 ||
	    (rc = db_exec(&q_tokens_kill, "s", uid)) < 0 ||
	    (rc = mail_security_notice(r, uid, email, "The password of your "
	    "tollgate account was changed, and every other session of it "
	    "was signed out.")) < 0 || (rc = db_commit()) < 0) {
		db_rollback();
		return rc;
	}
	return 1;
}

/* Replaced by the gate branch's GET /api-keys core. */
int
interim_apikeys_list(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*a, *k;
	size_t			 i, c;
	static const char *const cols[] = { "id", "name", "preview",
	    "created_at", "last_used_at", "expires_at" };
	int			 rc;

	if ((rc = db_select(r->a, &q_keys, &rows, "s", uid)) < 0)
		return rc;
	a = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		k = json_object_new_object();
		for (c = 0; c < 6; c++)
			json_object_object_add(k, cols[c], dbv(&rows, i, c) ?
			    json_object_new_string(dbv(&rows, i, c)) : NULL);
		json_object_array_add(a, k);
	}
	*out = a;
	return 0;
}

/*
 * Replaced by the gate branch's POST /api-keys core.  Returns 1 with the
 * key's object in *out, 0 when the plan's key limit is reached, or a
 * DB_* code.
 */
int
interim_apikey_create(struct req *r, const char *uid, const char *name,
    long long days, struct json_object **out)
{
	struct dbrows	 row, plan;
	int		 rc;

	if ((rc = db_begin()) < 0)
		return rc;
	if ((rc = db_select(r->a, &q_lock_user, &row, "s", uid)) < 0 ||
	    (rc = db_select(r->a, &q_plan_of, &plan, "s", uid)) < 0 ||
	    (rc = db_select(r->a, &q_key_count, &row, "ss", dbv(&plan, 0, 0),
	    uid)) < 0)
		goto fail;
	if (dbv(&row, 0, 1) != NULL && dbi(&row, 0, 0) >= dbi(&row, 0, 1)) {
		db_rollback();
		return 0;
	}
	if ((rc = apikey_create(r, uid, name, days, out)) < 0)
		goto fail;
	if ((rc = db_commit()) < 0) {
		json_object_put(*out);
		goto fail;
	}
	return 1;
fail:
	db_rollback();
	return rc;
}

/*
 * Replaced by the gate branch's regenerate core.  Returns 1 with {id,
 * name, preview, key} in *out, 0 when the key is not uid's (or gone),
 * or a DB_* code.
 */
int
interim_apikey_regenerate(struct req *r, const char *uid, const char *id,
    struct json_object **out)
{
	struct dbrows	 row;
	const char	*key = new_token(r->a, "tgk_", 32);
	const char	*preview = arena_strndup(r->a, key, 12);
	int		 rc;

	if ((rc = db_select(r->a, &q_key_owner, &row, "s", id)) <= 0)
		return rc;
	if (strcmp(dbv(&row, 0, 0), uid) != 0)
		return 0;
	if ((rc = db_exec(&q_key_regen, "sss", token_hash(r->a, key),
	    preview, id)) < 0)
		return rc;
	*out = json_object_new_object();
	json_object_object_add(*out, "id", json_object_new_string(id));
	json_object_object_add(*out, "name",
	    json_object_new_string(dbv(&row, 0, 1)));
	json_object_object_add(*out, "preview",
	    json_object_new_string(preview));
	json_object_object_add(*out, "key", json_object_new_string(key));
	return 1;
}

/* Replaced by the gate branch's DELETE /api-keys core.  1, 0 or DB_*. */
int
interim_apikey_delete(struct req *r, const char *uid, const char *id)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_key_owner, &row, "s", id)) <= 0)
		return rc;
	if (strcmp(dbv(&row, 0, 0), uid) != 0)
		return 0;
	if ((rc = db_exec(&q_key_delete, "s", id)) < 0)
		return rc;
	return 1;
}

/*
 * Replaced by the gate branch's GET /plans core: [{name, display_name,
 * price, currency, rate_per_minute, credits, limits, api_keys}].
 */
int
interim_plans(struct req *r, struct json_object **out)
{
	struct dbrows		 rows, lim;
	struct json_object	*a, *p, *l;
	size_t			 i, j;
	int			 rc;

	if ((rc = db_select(r->a, &q_plans, &rows, "")) < 0 ||
	    (rc = db_select(r->a, &q_plan_limits, &lim, "")) < 0)
		return rc;
	a = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		p = json_object_new_object();
		json_object_object_add(p, "name",
		    json_object_new_string(dbv(&rows, i, 0)));
		json_object_object_add(p, "display_name",
		    json_object_new_string(dbv(&rows, i, 1)));
		json_object_object_add(p, "price",
		    json_object_new_int64(dbi(&rows, i, 2)));
		json_object_object_add(p, "currency",
		    json_object_new_string(dbv(&rows, i, 3)));
		json_object_object_add(p, "rate_per_minute",
		    json_object_new_int64(dbi(&rows, i, 4)));
		json_object_object_add(p, "credits",
		    json_object_new_int64(dbi(&rows, i, 5)));
		l = json_object_new_object();
		for (j = 0; j < lim.n; j++)
			if (strcmp(dbv(&lim, j, 0), dbv(&rows, i, 0)) == 0)
				json_object_object_add(l, dbv(&lim, j, 1),
				    json_object_new_int64(dbi(&lim, j, 2)));
		json_object_object_add(p, "limits", l);
		json_object_object_add(p, "api_keys",
		    json_object_new_int64(dbi(&rows, i, 6)));
		json_object_array_add(a, p);
	}
	*out = a;
	return 0;
}

/*
 * Replaced by the gate branch's GET /usage core: {plan, period: {start,
 * end}, meters: {m: {used, limit}}, credits: {remaining}}.  Returns 1,
 * 0 when there is no such user, or a DB_* code.
 */
int
interim_usage(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 per, used, cnt, lim, cr;
	struct json_object	*o, *p, *ms, *m;
	const char		*plan, *start, *end;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_period, &per, "s", uid)) <= 0)
		return rc;
	plan = dbv(&per, 0, 0);
	start = dbv(&per, 0, 1);
	end = dbv(&per, 0, 2);
	if ((rc = db_select(r->a, &q_used, &used, "sssss", uid, start, end,
	    end, end)) < 0 ||
	    (rc = db_select(r->a, &q_counters, &cnt, "ss", uid, start)) < 0 ||
	    (rc = db_select(r->a, &q_plan_limits, &lim, "")) < 0 ||
	    (rc = db_select(r->a, &q_credits, &cr, "s", uid)) < 0)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, "plan", plan ? json_object_new_string(plan) :
	    NULL);
	p = json_object_new_object();
	json_object_object_add(p, "start", json_object_new_string(
	    arena_printf(r->a, "%.10sT%.8sZ", start, strlen(start) > 11 ?
	    start + 11 : "00:00:00")));
	json_object_object_add(p, "end", end ? json_object_new_string(
	    arena_printf(r->a, "%.10sT%.8sZ", end, strlen(end) > 11 ?
	    end + 11 : "00:00:00")) : NULL);
	json_object_object_add(o, "period", p);
	ms = json_object_new_object();
	for (i = 0; i < lim.n; i++) {
		if (plan == NULL || strcmp(dbv(&lim, i, 0), plan) != 0)
			continue;
		m = json_object_new_object();
		json_object_object_add(m, "used", json_object_new_int64(0));
		json_object_object_add(m, "limit",
		    json_object_new_int64(dbi(&lim, i, 2)));
		json_object_object_add(ms, dbv(&lim, i, 1), m);
	}
	/* The counters are exact; the daily sums stand in for the others. */
	for (i = 0; i < used.n + cnt.n; i++) {
		const struct dbrows *src = i < used.n ? &used : &cnt;
		size_t k = i < used.n ? i : i - used.n;

		if (!json_object_object_get_ex(ms, dbv(src, k, 0), &m)) {
			m = json_object_new_object();
			json_object_object_add(m, "limit", NULL);
			json_object_object_add(ms, dbv(src, k, 0), m);
		}
		json_object_object_add(m, "used",
		    json_object_new_int64(dbi(src, k, 1)));
	}
	json_object_object_add(o, "meters", ms);
	m = json_object_new_object();
	json_object_object_add(m, "remaining",
	    json_object_new_int64(dbi(&cr, 0, 0)));
	json_object_object_add(o, "credits", m);
	*out = o;
	return 1;
}

/* Replaced by the billing branch's GET /billing core. */
int
interim_billing(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 row, plan;
	struct json_object	*o = json_object_new_object();
	int			 rc;

	if ((rc = db_select(r->a, &q_billing, &row, "s", uid)) < 0 ||
	    (rc = db_select(r->a, &q_plan_of, &plan, "s", uid)) < 0) {
		json_object_put(o);
		return rc;
	}
	json_object_object_add(o, "plan", dbv(&plan, 0, 0) ?
	    json_object_new_string(dbv(&plan, 0, 0)) : NULL);
	json_object_object_add(o, "status", dbv(&row, 0, 1) ?
	    json_object_new_string(dbv(&row, 0, 1)) : NULL);
	json_object_object_add(o, "current_period_end", dbv(&row, 0, 2) ?
	    json_object_new_string(dbv(&row, 0, 2)) : NULL);
	json_object_object_add(o, "cancel_at_period_end",
	    json_object_new_boolean(dbi(&row, 0, 3) != 0));
	*out = o;
	return 0;
}

/* Replaced by the billing branch's GET /billing/payments core. */
int
interim_payments(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*a, *p;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_payments, &rows, "s", uid)) < 0)
		return rc;
	a = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		p = json_object_new_object();
		json_object_object_add(p, "id",
		    json_object_new_string(dbv(&rows, i, 0)));
		json_object_object_add(p, "amount",
		    json_object_new_int64(dbi(&rows, i, 1)));
		json_object_object_add(p, "currency",
		    json_object_new_string(dbv(&rows, i, 2)));
		json_object_object_add(p, "status",
		    json_object_new_string(dbv(&rows, i, 3)));
		json_object_object_add(p, "created_at",
		    json_object_new_string(dbv(&rows, i, 4)));
		json_object_object_add(p, "invoice_url", dbv(&rows, i, 5) ?
		    json_object_new_string(dbv(&rows, i, 5)) : NULL);
		json_object_array_add(a, p);
	}
	*out = a;
	return 0;
}

/*
 * Replaced by the billing branch's checkout and portal cores, which ask
 * Stripe for a session URL.  Until then: 0 (not available).
 */
int
interim_checkout(struct req *r, const char *uid, const char *plan,
    const char **url)
{
	(void)r;
	(void)uid;
	(void)plan;
	*url = NULL;
	return 0;
}

int
interim_portal(struct req *r, const char *uid, const char **url)
{
	(void)r;
	(void)uid;
	*url = NULL;
	return 0;
}
