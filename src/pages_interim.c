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

/*
 * A transaction of these cores, run by db_tx_run (so possibly more than
 * once: each body starts from its arguments).  A body returns what it
 * decided (>= 0; the transaction commits) or a DB_* code.
 */
struct itx {
	struct req		*r;
	const char		*uid, *email, *name, *token, *hash, *old;
	long long		 days;
	struct json_object	*out;	/* an object made inside, or NULL */
	int			(*body)(struct itx *);
};

static int
itx_body(void *v)
{
	struct itx	*t = v;

	json_object_put(t->out);
	t->out = NULL;
	return t->body(t);
}

/* Runs t->body; returns its result or a DB_* code (t->out then NULL). */
static int
itx_run(struct itx *t)
{
	int	 rc = db_tx_run(itx_body, NULL, t, DB_TX_TRIES);

	if (rc < 0) {
		json_object_put(t->out);
		t->out = NULL;
	}
	return rc;
}

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
static struct sql q_plan_of = SQL(
    "SELECT " PLAN_EXPR("u") " FROM users u WHERE u.id = ?");
static struct sql q_billing = SQL(
    "SELECT s.plan, IF(s.deleted_at IS NULL, s.status, 'canceled'), "
    "DATE_FORMAT(s.current_period_end, '%Y-%m-%dT%H:%i:%sZ'), "
    "s.cancel_at_period_end AND s.deleted_at IS NULL FROM subscriptions s "
    "WHERE s.user_id = ? ORDER BY s.deleted_at IS NULL DESC, "
    "s.stripe_updated DESC LIMIT 1");
static struct sql q_payments = SQL(
    "SELECT id, amount, currency, status, DATE_FORMAT(created_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), invoice_url FROM payments WHERE user_id = ? "
    "ORDER BY created_at DESC, id LIMIT 100");
/*
 * The core of POST /api/v1/auth/password/forgot (accounts.c answers
 * inside its handler; asked the lead to factor it): a reset link to the
 * account of email, if any and under the hourly mail limit.  Returns 0
 * or a DB_* code.
 */
static int
forgot_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, t->email), *tok;
	int		 rc, allowed;

	if ((allowed = mail_allowed(r, email_lc)) < 0)
		return allowed;
	if ((rc = db_select(r->a, &q_user_by_email, &row, "s", email_lc)) < 0)
		return rc;
	if (rc == 1 && allowed &&
	    ((tok = onetime_token(r, "reset", dbv(&row, 0, 0),
	    dbv(&row, 0, 1), 60, &rc)) == NULL ||
	    (rc = mail_reset(r, dbv(&row, 0, 0), dbv(&row, 0, 1), tok)) < 0))
		return rc;
	return 0;
}

int
interim_password_forgot(struct req *r, const char *email)
{
	struct itx	 t = { .r = r, .email = email, .body = forgot_body };

	return itx_run(&t);
}

/*
 * The core of POST /api/v1/auth/password/reset: the new password set,
 * the other mailed tokens spent, every session revoked, the address
 * verified (which starts the trial), a notice mailed.  Returns 1, 0 for
 * a token unknown, used or expired, or a DB_* code.
 */
static int
reset_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*h = token_hash(r->a, t->token), *uid;
	int		 rc;

	if ((rc = db_exec(&q_use_token, "ss", h, "reset")) <= 0 ||
	    (rc = db_select(r->a, &q_token_user, &row, "s", h)) <= 0)
		return rc;
	uid = dbv(&row, 0, 0);
	if ((rc = db_exec(&q_set_password, "ss", t->hash, uid)) < 0 ||
	    (rc = db_exec(&q_tokens_kill, "s", uid)) < 0 ||
	    (rc = sessions_revoke_all(uid, NULL, "password_reset")) < 0 ||
	    (rc = account_verified(r, uid)) < 0 ||
	    (rc = mail_security_notice(r, uid, dbv(&row, 0, 1), "The "
	    "password of your tollgate account was reset, and every session "
	    "of it was signed out.")) < 0)
		return rc;
	t->uid = uid;
	return 1;
}

int
interim_password_reset(struct req *r, const char *token, const char *pw)
{
	struct itx	 t = { .r = r, .token = token, .body = reset_body };
	int		 rc;

	if ((t.hash = password_hash(r->a, pw)) == NULL)
		return DB_FAIL;
	if ((rc = itx_run(&t)) == 1)
		log_info("password_reset", " user=%s via=page", t.uid);
	return rc;
}

static struct sql q_verify_state = SQL(
    "SELECT email, email_lc, email_verified_at IS NOT NULL FROM users "
    "WHERE id = ?");

static int
resend_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*tok;
	int		 rc, allowed;

	if ((rc = db_select(r->a, &q_verify_state, &row, "s", t->uid)) < 0)
		return rc;
	if (rc == 0 || dbi(&row, 0, 2))
		return 0;
	if ((allowed = mail_allowed(r, dbv(&row, 0, 1))) < 0)
		return allowed;
	if (allowed && ((tok = onetime_token(r, "verify", t->uid,
	    dbv(&row, 0, 0), 48 * 60, &rc)) == NULL ||
	    (rc = mail_verify(r, t->uid, dbv(&row, 0, 0), tok)) < 0))
		return rc;
	return 0;
}

/*
 * The core of POST /api/v1/auth/resend-verification: a new link unless
 * the address is verified or has had its hourly mail.  Returns 0 or a
 * DB_* code.
 */
int
interim_resend_verification(struct req *r, const char *uid)
{
	struct itx	 t = { .r = r, .uid = uid, .body = resend_body };

	return itx_run(&t);
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
static int
email_body(struct itx *t)
{
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, t->email), *tok;
	int		 rc, allowed;

	if ((rc = db_select(r->a, &q_email_taken, &row, "ss", email_lc,
	    t->uid)) < 0)
		return rc;
	if (rc > 0)
		return 2;
	if ((allowed = mail_allowed(r, email_lc)) < 0)
		return allowed;
	if (allowed && ((tok = onetime_token(r, "email_change", t->uid,
	    t->email, 24 * 60, &rc)) == NULL ||
	    (rc = mail_email_change(r, t->uid, t->email, tok)) < 0 ||
	    (rc = mail_email_change_notice(r, t->uid, t->old, t->email)) < 0))
		return rc;
	return 1;
}

int
interim_email_change(struct req *r, const char *uid, const char *email,
    const char *pw)
{
	struct itx	 t = { .r = r, .uid = uid, .email = email,
			    .body = email_body };
	int		 rc;

	if ((rc = current_password_ok(r, uid, pw, &t.old)) <= 0)
		return rc;
	if (strcmp(email, t.old) == 0)
		return 3;
	return itx_run(&t);
}

/*
 * The core of POST /api/v1/me/password.  Returns 1, 0 for a wrong
 * current password (or the login throttle), or a DB_* code.
 */
static int
password_body(struct itx *t)
{
	struct req	*r = t->r;
	int		 rc;

	if ((rc = db_exec(&q_set_password, "ss", t->hash, t->uid)) < 0 ||
	    (rc = sessions_revoke_all(t->uid, r->who.session_id,
	    "password_change")) < 0 ||
	    (rc = db_exec(&q_tokens_kill, "s", t->uid)) < 0 ||
	    (rc = mail_security_notice(r, t->uid, t->old, "The password of "
	    "your tollgate account was changed, and every other session of "
	    "it was signed out.")) < 0)
		return rc;
	return 1;
}

int
interim_password_change(struct req *r, const char *uid, const char *cur,
    const char *pw)
{
	struct itx	 t = { .r = r, .uid = uid, .body = password_body };
	int		 rc;

	if ((rc = current_password_ok(r, uid, cur, &t.old)) <= 0)
		return rc;
	if ((t.hash = password_hash(r->a, pw)) == NULL)
		return DB_FAIL;
	return itx_run(&t);
}

/* The core of GET /api/v1/billing. */
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

/* The core of GET /api/v1/billing/payments. */
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

static struct sql q_plan_price = SQL(
    "SELECT stripe_price_id, is_trial FROM plans WHERE name = ?");
static struct sql q_live_sub = SQL(
    "SELECT id FROM subscriptions WHERE user_id = ? AND deleted_at IS NULL "
    "AND status IN ('active', 'trialing', 'past_due') LIMIT 1");
static struct sql q_customer = SQL(
    "SELECT stripe_customer_id, email FROM users WHERE id = ?");
static struct sql q_set_customer = SQL(
    "UPDATE users SET stripe_customer_id = ?, updated_at = "
    "UTC_TIMESTAMP(6) WHERE id = ? AND stripe_customer_id IS NULL");

/*
 * The caller's Stripe customer, made once, as billing.c's
 * ensure_customer does (the same Idempotency-Key, so the two can never
 * make two customers).  Returns 0 with *cus, INTERIM_STRIPE_DOWN, or a
 * DB_* code.
 */
static int
customer_of(struct req *r, const char *uid, const char **cus)
{
	struct json_object	*out = NULL;
	struct dbrows		 row;
	struct buf		 form;
	const char		*id;
	char			 err[256];
	int			 rc, status;

	if ((rc = db_select(r->a, &q_customer, &row, "s", uid)) < 0)
		return rc;
	if (rc == 0)
		return DB_FAIL;
	if ((*cus = dbv(&row, 0, 0)) != NULL)
		return 0;
	buf_init(&form, r->a);
	form_add(&form, "email", dbv(&row, 0, 1));
	form_add(&form, "metadata[user_id]", uid);
	status = stripe_call(r->a, "POST", "/v1/customers", form.p,
	    arena_printf(r->a, "tg-customer-%s", uid), &out, err, sizeof(err));
	if (status < 200 || status > 299 ||
	    (id = json_str_at(out, "id")) == NULL) {
		log_warn("stripe_failed", " call=customers user=%s via=page "
		    "err=\"%s\"", uid, status < 200 || status > 299 ? err :
		    "no id");
		json_object_put(out);
		return INTERIM_STRIPE_DOWN;
	}
	*cus = arena_strdup(r->a, id);
	json_object_put(out);
	if ((rc = db_exec(&q_set_customer, "ss", *cus, uid)) < 0)
		return rc;
	if (rc == 0) {
		if ((rc = db_select(r->a, &q_customer, &row, "s", uid)) < 0)
			return rc;
		if (rc == 0 || (*cus = dbv(&row, 0, 0)) == NULL)
			return DB_FAIL;
	}
	return 0;
}

/* Asks Stripe for a session at path with form; its url in *url. */
static int
session_url(struct req *r, const char *uid, const char *path,
    struct buf *form, const char *what, const char **url)
{
	struct json_object	*out = NULL;
	const char		*u;
	char			 err[256];
	int			 status;

	status = stripe_call(r->a, "POST", path, form->p, arena_printf(r->a,
	    "tg-%s-%s", what, new_id(r->a)), &out, err, sizeof(err));
	if (status < 200 || status > 299 ||
	    (u = json_str_at(out, "url")) == NULL) {
		log_warn("stripe_failed", " call=%s user=%s via=page "
		    "err=\"%s\"", what, uid, status < 200 || status > 299 ?
		    err : "no url");
		json_object_put(out);
		return INTERIM_STRIPE_DOWN;
	}
	*url = arena_strdup(r->a, u);
	json_object_put(out);
	return 1;
}

/*
 * The core of POST /api/v1/billing/checkout (billing.c answers inside
 * its handler).  Returns 1 with the Checkout Session's url, 0 for a plan
 * that cannot be bought, 2 when a subscription is live already,
 * INTERIM_STRIPE_DOWN, or a DB_* code.
 */
int
interim_checkout(struct req *r, const char *uid, const char *plan,
    const char **url)
{
	struct dbrows	 row;
	struct buf	 form;
	const char	*price, *cus;
	int		 rc;

	*url = NULL;
	if ((rc = db_select(r->a, &q_plan_price, &row, "s", plan)) < 0)
		return rc;
	if (rc == 0 || dbi(&row, 0, 1))
		return 0;
	if (strcmp(plan, "pro") == 0 && cfg.stripe_price_pro[0] != '\0')
		price = cfg.stripe_price_pro;
	else if (strcmp(plan, "team") == 0 && cfg.stripe_price_team[0] != '\0')
		price = cfg.stripe_price_team;
	else
		price = dbv(&row, 0, 0);
	if (price == NULL || *price == '\0')
		return 0;
	if ((rc = db_select(r->a, &q_live_sub, &row, "s", uid)) < 0)
		return rc;
	if (rc > 0)
		return 2;
	if ((rc = customer_of(r, uid, &cus)) < 0)
		return rc;
	buf_init(&form, r->a);
	form_add(&form, "mode", "subscription");
	form_add(&form, "customer", cus);
	form_add(&form, "client_reference_id", uid);
	form_add(&form, "line_items[0][price]", price);
	form_add(&form, "line_items[0][quantity]", "1");
	form_add(&form, "success_url", arena_printf(r->a,
	    "%s/billing?checkout=success", cfg.base_url));
	form_add(&form, "cancel_url", arena_printf(r->a,
	    "%s/billing?checkout=cancelled", cfg.base_url));
	if ((rc = session_url(r, uid, "/v1/checkout/sessions", &form,
	    "checkout", url)) == 1)
		log_info("stripe_checkout", " user=%s plan=%s via=page", uid,
		    plan);
	return rc;
}

/*
 * The core of POST /api/v1/billing/portal.  Returns 1 with the portal
 * session's url, INTERIM_STRIPE_DOWN, or a DB_* code.
 */
int
interim_portal(struct req *r, const char *uid, const char **url)
{
	struct buf	 form;
	const char	*cus;
	int		 rc;

	*url = NULL;
	if ((rc = customer_of(r, uid, &cus)) < 0)
		return rc;
	buf_init(&form, r->a);
	form_add(&form, "customer", cus);
	form_add(&form, "return_url", arena_printf(r->a, "%s/billing",
	    cfg.base_url));
	return session_url(r, uid, "/v1/billing_portal/sessions", &form,
	    "portal", url);
}
