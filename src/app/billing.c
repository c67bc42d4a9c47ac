/*
 * Stripe billing seen from the user's side: the billing state, Checkout
 * and the Customer Portal, the payments list; and the two queues the
 * sender drains toward Stripe: the usage sums reported as meter events
 * (exactly once each: identifier and Idempotency-Key come from the sum's
 * id, and a sum is frozen once first claimed) and the cancellations of
 * deleted accounts' subscriptions.  Webhooks are in stripe.c.
 *
 * The secret key goes only into the Authorization header of the calls
 * (stripe_call); nothing here logs it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"

#define STRIPE_DOWN	BILLING_STRIPE_DOWN
#define LEASE_SECONDS	"60"	/* a claimed row's lease */
#define MAX_TRIES	200	/* then a row stays failed, for the operator */

static struct sql q_price_plan = SQL(
    "SELECT name FROM plans WHERE stripe_price_id = ?");
static struct sql q_plan = SQL(
    "SELECT stripe_price_id, is_trial FROM plans WHERE name = ?");
static struct sql q_billing = SQL(
    "SELECT tg_plan(u.id), s.status, "
    "DATE_FORMAT(s.current_period_end, '%Y-%m-%dT%H:%i:%sZ'), "
    "s.cancel_at_period_end, s.deleted_at IS NOT NULL "
    "FROM users u LEFT JOIN subscriptions s ON s.id = "
    "(SELECT s2.id FROM subscriptions s2 WHERE s2.user_id = u.id "
    "ORDER BY s2.deleted_at IS NULL DESC, s2.stripe_updated DESC, "
    "s2.created_at DESC LIMIT 1) WHERE u.id = ?");
static struct sql q_live_sub = SQL(
    "SELECT tg_live_sub(?) FROM DUAL WHERE tg_live_sub(?) IS NOT NULL");
static struct sql q_customer = SQL(
    "SELECT stripe_customer_id, email FROM users WHERE id = ?");
static struct sql q_set_customer = SQL(
    "UPDATE users SET stripe_customer_id = ?, updated_at = "
    "UTC_TIMESTAMP(6) WHERE id = ? AND stripe_customer_id IS NULL");
static struct sql q_payments = SQL(
    "SELECT id, amount, currency, status, "
    "DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ'), invoice_url "
    "FROM payments WHERE user_id = ? ORDER BY created_at DESC, id "
    "LIMIT 200");
static struct sql q_meter_add = SQL("CALL tg_meter_report_add(?, ?, ?, ?)");
static struct sql q_cancel_queue = SQL(
    "INSERT IGNORE INTO stripe_cancellations (subscription_id, user_id) "
    "SELECT id, user_id FROM subscriptions WHERE user_id = ? AND "
    "deleted_at IS NULL AND status NOT IN ('canceled', "
    "'incomplete_expired')");

const char *
plan_for_price(struct arena *a, const char *price, int *rc)
{
	struct dbrows	 row;
	int		 n;

	*rc = 0;
	if (price == NULL || *price == '\0')
		return NULL;
	if (cfg.stripe_price_pro[0] != '\0' &&
	    strcmp(price, cfg.stripe_price_pro) == 0)
		return "pro";
	if (cfg.stripe_price_team[0] != '\0' &&
	    strcmp(price, cfg.stripe_price_team) == 0)
		return "team";
	if ((n = db_select(a, &q_price_plan, &row, "s", price)) < 0) {
		*rc = n;
		return NULL;
	}
	return n == 1 ? dbv(&row, 0, 0) : NULL;
}

/*
 * The Stripe price of plan: [stripe] price_pro or price_team for those
 * two when set, else the plan's stripe_price_id.  NULL (with *rc = 0)
 * for an unknown plan, the trial, or a plan without a price.
 */
static const char *
price_for_plan(struct req *r, const char *plan, int *rc)
{
	struct dbrows	 row;
	int		 n;

	*rc = 0;
	if ((n = db_select(r->a, &q_plan, &row, "s", plan)) < 0) {
		*rc = n;
		return NULL;
	}
	if (n == 0 || dbi(&row, 0, 1))
		return NULL;
	if (strcmp(plan, "pro") == 0 && cfg.stripe_price_pro[0] != '\0')
		return cfg.stripe_price_pro;
	if (strcmp(plan, "team") == 0 && cfg.stripe_price_team[0] != '\0')
		return cfg.stripe_price_team;
	return dbv(&row, 0, 0);
}

/* Answers 404 not_found: billing is not set up on this site. */
static void
reply_billing_off(struct req *r)
{
	reply_error(r, 404, "not_found", "Billing is not set up on this "
	    "site.");
}

/*
 * Answers a failed Stripe call (BILLING_STRIPE_DOWN: 503 with
 * Retry-After) or a DB_* code, for the API and the pages alike.
 */
void
reply_billing_failed(struct req *r, int rc)
{
	if (rc != STRIPE_DOWN) {
		reply_db(r, rc);
		return;
	}
	reply_header(r, "Retry-After", "30");
	reply_error(r, 503, "unavailable", "The payment provider could not "
	    "be reached. Please try again in a moment.");
}

/*
 * Records cus as uid's Stripe customer unless it has one.  Returns 1
 * when recorded, 0 when uid had one (or is gone), or a DB_* code
 * (DB_DUP: another account has that customer).
 */
int
customer_link(const char *uid, const char *cus)
{
	return db_exec(&q_set_customer, "ss", cus, uid);
}

/*
 * User uid's Stripe customer, made once: POST /v1/customers with an
 * Idempotency-Key derived from the user id, so two first checkouts at
 * once make one customer.  via is appended to the log lines.  Returns 0
 * with the id in *cus, STRIPE_DOWN, or a DB_* code.
 */
static int
ensure_customer(struct req *r, const char *uid, const char *via,
    const char **cus)
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
	    arena_printf(r->a, "tg-customer-%s", uid), &out, err,
	    sizeof(err));
	if (status < 200 || status > 299 ||
	    (id = json_str_at(out, "id")) == NULL) {
		log_warn("stripe_failed", " call=customers user=%s%s "
		    "err=\"%s\"", uid, via, status < 200 || status > 299 ?
		    err : "no id");
		json_object_put(out);
		return STRIPE_DOWN;
	}
	*cus = arena_strdup(r->a, id);
	json_object_put(out);
	if ((rc = customer_link(uid, *cus)) < 0)
		return rc;
	if (rc == 0) {
		/* Another request stored one first: use that. */
		if ((rc = db_select(r->a, &q_customer, &row, "s", uid)) < 0)
			return rc;
		if (rc == 0 || (*cus = dbv(&row, 0, 0)) == NULL)
			return DB_FAIL;
	}
	log_info("stripe_customer", " user=%s customer=%s%s", uid, *cus, via);
	return 0;
}

/*
 * Asks Stripe for a session at path with form (what names it in the
 * Idempotency-Key and the log).  Returns 0 with its url in *url,
 * STRIPE_DOWN, or a DB_* code.
 */
static int
session_url(struct req *r, const char *uid, const char *via,
    const char *path, struct buf *form, const char *what, const char **url)
{
	struct json_object	*out = NULL;
	const char		*u;
	char			 err[256];
	int			 status;

	status = stripe_call(r->a, "POST", path, form->p, arena_printf(r->a,
	    "tg-%s-%s", what, new_id(r->a)), &out, err, sizeof(err));
	if (status < 200 || status > 299 ||
	    (u = json_str_at(out, "url")) == NULL) {
		log_warn("stripe_failed", " call=%s user=%s%s err=\"%s\"",
		    what, uid, via, status < 200 || status > 299 ? err :
		    "no url");
		json_object_put(out);
		return STRIPE_DOWN;
	}
	*url = arena_strdup(r->a, u);
	json_object_put(out);
	return 0;
}

/* Answers {url} with 200. */
static void
reply_url(struct req *r, const char *url)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "url", json_object_new_string(url));
	reply_json(r, 200, o);
}

/*
 * The core of GET /api/v1/billing: uid's {plan, status,
 * current_period_end, cancel_at_period_end} from the newest subscription
 * (nulls and false when there is none).  Returns 0 with the object in
 * *out (owned by the caller), BILLING_GONE when there is no such user,
 * or a DB_* code.
 */
int
billing_state_core(struct req *r, const char *uid, struct json_object **out)
{
	struct json_object	*o;
	struct dbrows		 row;
	const char		*plan, *status, *end;
	int			 rc;

	if ((rc = db_select(r->a, &q_billing, &row, "s", uid)) < 0)
		return rc;
	if (rc == 0)
		return BILLING_GONE;
	plan = dbv(&row, 0, 0);
	status = dbv(&row, 0, 1);
	end = dbv(&row, 0, 2);
	if (status != NULL && dbi(&row, 0, 4))
		status = "canceled";
	o = json_object_new_object();
	json_object_object_add(o, "plan",
	    jstr_or_null(plan));
	json_object_object_add(o, "status",
	    jstr_or_null(status));
	json_object_object_add(o, "current_period_end",
	    jstr_or_null(end));
	json_object_object_add(o, "cancel_at_period_end",
	    json_object_new_boolean(status != NULL && !dbi(&row, 0, 4) &&
	    dbi(&row, 0, 3) != 0));
	*out = o;
	return 0;
}

/*
 * GET /api/v1/billing: 200 {plan, status, current_period_end,
 * cancel_at_period_end} from the newest subscription (nulls and false
 * when there is none); 503 when the database is down.
 */
void
h_billing_get(struct req *r)
{
	struct json_object	*o = NULL;
	int			 rc;

	rc = billing_state_core(r, r->who.user_id, &o);
	reply_own(r, rc, BILLING_GONE, o);
}

/*
 * The core of POST /api/v1/billing/checkout: a Checkout Session for uid
 * to buy plan (via is appended to the log lines).  Returns 0 with the
 * session's url in *url, BILLING_NOT_BUYABLE for a plan that cannot be
 * bought, BILLING_SUB_EXISTS when a subscription is live already,
 * BILLING_STRIPE_DOWN, or a DB_* code.
 */
int
billing_checkout_core(struct req *r, const char *uid, const char *plan,
    const char *via, const char **url)
{
	struct dbrows		 row;
	struct buf		 form;
	const char		*price, *cus;
	size_t			 i;
	int			 rc;

	*url = NULL;
	if ((price = price_for_plan(r, plan, &rc)) == NULL)
		return rc < 0 ? rc : BILLING_NOT_BUYABLE;
	if ((rc = db_select(r->a, &q_live_sub, &row, "ss", uid, uid)) < 0)
		return rc;
	if (rc > 0)
		return BILLING_SUB_EXISTS;
	if ((rc = ensure_customer(r, uid, via, &cus)) < 0)
		return rc;
	buf_init(&form, r->a);
	form_add(&form, "mode", "subscription");
	form_add(&form, "customer", cus);
	form_add(&form, "client_reference_id", uid);
	form_add(&form, "line_items[0][price]", price);
	form_add(&form, "line_items[0][quantity]", "1");
	/* The metered prices ([stripe] meter_prices): no quantity. */
	for (i = 0; i < cfg.nmeter_prices; i++)
		form_add(&form, arena_printf(r->a, "line_items[%zu][price]",
		    i + 1), cfg.meter_prices[i].price);
	form_add(&form, "success_url", arena_printf(r->a,
	    "%s/billing?checkout=success", cfg.base_url));
	form_add(&form, "cancel_url", arena_printf(r->a,
	    "%s/billing?checkout=cancelled", cfg.base_url));
	if ((rc = session_url(r, uid, via, "/v1/checkout/sessions", &form,
	    "checkout", url)) < 0)
		return rc;
	log_info("stripe_checkout", " user=%s plan=%s%s", uid, plan, via);
	return 0;
}

/*
 * POST /api/v1/billing/checkout {plan}: 200 {url} of a new Checkout
 * Session; 422 for a plan that cannot be bought; 409 when a subscription
 * is already live (the portal changes it); 404 when billing is not set
 * up; 503 when Stripe or the database cannot be reached.
 */
void
h_billing_checkout(struct req *r)
{
	const char	*url;
	int		 rc;

	if (!stripe_configured()) {
		reply_billing_off(r);
		return;
	}
	rc = billing_checkout_core(r, r->who.user_id, in_str(r, "plan"), "",
	    &url);
	if (rc == BILLING_NOT_BUYABLE) {
		reply_invalid1(r, "plan", "is not a plan you can subscribe to");
		return;
	}
	if (rc == BILLING_SUB_EXISTS) {
		reply_error(r, 409, "subscription_exists", "You already have a "
		    "subscription; change it through the billing portal.");
		return;
	}
	if (rc < 0) {
		reply_billing_failed(r, rc);
		return;
	}
	reply_url(r, url);
}

/*
 * The core of POST /api/v1/billing/portal: a Customer Portal session
 * for uid (via is appended to the log lines).  Returns 0 with its url in
 * *url, BILLING_STRIPE_DOWN, or a DB_* code.
 */
int
billing_portal_core(struct req *r, const char *uid, const char *via,
    const char **url)
{
	struct buf	 form;
	const char	*cus;
	int		 rc;

	*url = NULL;
	if ((rc = ensure_customer(r, uid, via, &cus)) < 0)
		return rc;
	buf_init(&form, r->a);
	form_add(&form, "customer", cus);
	form_add(&form, "return_url", arena_printf(r->a, "%s/billing",
	    cfg.base_url));
	return session_url(r, uid, via, "/v1/billing_portal/sessions", &form,
	    "portal", url);
}

/*
 * POST /api/v1/billing/portal: 200 {url} of a Customer Portal session;
 * 404 when billing is not set up; 503 when Stripe or the database cannot
 * be reached.
 */
void
h_billing_portal(struct req *r)
{
	const char	*url;
	int		 rc;

	if (!stripe_configured()) {
		reply_billing_off(r);
		return;
	}
	if ((rc = billing_portal_core(r, r->who.user_id, "", &url)) < 0) {
		reply_billing_failed(r, rc);
		return;
	}
	reply_url(r, url);
}

/*
 * The core of GET /api/v1/billing/payments: uid's payments [{id, amount,
 * currency, status, created_at, invoice_url}], newest first, at most max
 * of them (of the statement's 200).  Returns 0 with the array in *out
 * (owned by the caller), or a DB_* code.
 */
int
billing_payments_core(struct req *r, const char *uid, size_t max,
    struct json_object **out)
{
	struct json_object	*a, *p;
	struct dbrows		 rows;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_payments, &rows, "s", uid)) < 0)
		return rc;
	a = json_object_new_array();
	for (i = 0; i < rows.n && i < max; i++) {
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
		json_object_object_add(p, "invoice_url",
		    jstr_or_null(dbv(&rows, i, 5)));
		json_object_array_add(a, p);
	}
	*out = a;
	return 0;
}

/*
 * GET /api/v1/billing/payments: 200 [{id, amount, currency, status,
 * created_at, invoice_url}], newest first; 503 when the database is down.
 */
void
h_billing_payments(struct req *r)
{
	struct json_object	*a;
	int			 rc;

	if ((rc = billing_payments_core(r, r->who.user_id, 200, &a)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, a);
}

int
meter_report_add(struct req *r, const char *uid, const char *meter,
    long long qty)
{
	int	 rc;

	/* With [stripe] meter_prices, only the meters it bills. */
	if (qty <= 0 || !meter_billed(meter))
		return 0;
	rc = db_exec(&q_meter_add, "ssii", uid, meter, qty,
	    (long long)cfg.stripe_report_interval);
	return rc < 0 ? rc : 0;
}

int
billing_cancel_for_user(struct req *r, const char *uid)
{
	int	 rc;

	if ((rc = db_exec(&q_cancel_queue, "s", uid)) > 0)
		log_info("stripe_cancel_queued", " user=%s n=%d", uid, rc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The sender's Stripe pass.                                           */
/* ------------------------------------------------------------------ */

static struct sql q_mr_due = SQL(
    "SELECT id FROM meter_reports WHERE status = 'pending' AND "
    "next_attempt_at <= UTC_TIMESTAMP(6) AND locked_by IS NULL "
    "ORDER BY next_attempt_at LIMIT 20");
static struct sql q_mr_claim = SQL(
    "UPDATE meter_reports SET locked_by = ?, locked_until = "
    "UTC_TIMESTAMP(6) + INTERVAL " LEASE_SECONDS " SECOND, "
    "attempts = attempts + 1 WHERE id = ? AND status = 'pending' AND "
    "locked_by IS NULL AND next_attempt_at <= UTC_TIMESTAMP(6)");
static struct sql q_mr_skip = SQL(
    "UPDATE meter_reports SET status = 'skipped', locked_by = NULL, "
    "locked_until = NULL, last_error = 'not in [stripe] meter_prices' "
    "WHERE id = ? AND locked_by = ?");
static struct sql q_mr_load = SQL(
    "SELECT meter, quantity, stripe_customer_id, "
    "TIMESTAMPDIFF(SECOND, TIMESTAMP('1970-01-01'), interval_start), "
    "attempts FROM meter_reports WHERE id = ?");
static struct sql q_mr_sent = SQL(
    "UPDATE meter_reports SET status = 'sent', sent_at = UTC_TIMESTAMP(6), "
    "locked_by = NULL, locked_until = NULL, last_error = NULL "
    "WHERE id = ? AND locked_by = ?");
/* Backoff: 2, 4, 8 ... seconds, at most 10 minutes. */
static struct sql q_mr_retry = SQL(
    "UPDATE meter_reports SET status = IF(? OR attempts >= ?, 'failed', "
    "'pending'), next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL "
    "LEAST(600, POW(2, LEAST(attempts, 10))) SECOND, locked_by = NULL, "
    "locked_until = NULL, last_error = ? WHERE id = ? AND locked_by = ?");
static struct sql q_mr_expire = SQL(
    "UPDATE meter_reports SET locked_by = NULL, locked_until = NULL "
    "WHERE status = 'pending' AND locked_until < UTC_TIMESTAMP(6)");
static struct sql q_mr_holders = SQL(
    "SELECT DISTINCT locked_by FROM meter_reports WHERE status = "
    "'pending' AND locked_by LIKE ? UNION SELECT DISTINCT locked_by FROM "
    "stripe_cancellations WHERE status = 'pending' AND locked_by LIKE ?");
static struct sql q_mr_release = SQL(
    "UPDATE meter_reports SET locked_by = NULL, locked_until = NULL "
    "WHERE status = 'pending' AND locked_by = ?");

static struct sql q_cx_due = SQL(
    "SELECT subscription_id FROM stripe_cancellations WHERE status = "
    "'pending' AND next_attempt_at <= UTC_TIMESTAMP(6) AND locked_by IS "
    "NULL ORDER BY next_attempt_at LIMIT 20");
static struct sql q_cx_claim = SQL(
    "UPDATE stripe_cancellations SET locked_by = ?, locked_until = "
    "UTC_TIMESTAMP(6) + INTERVAL " LEASE_SECONDS " SECOND, "
    "attempts = attempts + 1 WHERE subscription_id = ? AND status = "
    "'pending' AND locked_by IS NULL AND next_attempt_at <= "
    "UTC_TIMESTAMP(6)");
static struct sql q_cx_done = SQL(
    "UPDATE stripe_cancellations SET status = 'done', done_at = "
    "UTC_TIMESTAMP(6), locked_by = NULL, locked_until = NULL, "
    "last_error = NULL WHERE subscription_id = ? AND locked_by = ?");
static struct sql q_cx_retry = SQL(
    "UPDATE stripe_cancellations SET status = IF(? OR attempts >= ?, "
    "'failed', 'pending'), next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL "
    "LEAST(600, POW(2, LEAST(attempts, 10))) SECOND, locked_by = NULL, "
    "locked_until = NULL, last_error = ? WHERE subscription_id = ? AND "
    "locked_by = ?");
static struct sql q_cx_expire = SQL(
    "UPDATE stripe_cancellations SET locked_by = NULL, locked_until = NULL "
    "WHERE status = 'pending' AND locked_until < UTC_TIMESTAMP(6)");
static struct sql q_cx_release = SQL(
    "UPDATE stripe_cancellations SET locked_by = NULL, locked_until = NULL "
    "WHERE status = 'pending' AND locked_by = ?");

/*
 * True when pid is a running sender (tollgated --sender) on this host.
 * Where /proc says nothing, any live process counts, so a lease is
 * never taken from a sender that may still be working.
 */
static bool
sender_alive(struct arena *a, long pid)
{
	FILE	*f;
	char	 cmd[512];
	size_t	 n, i;

	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return false;
	if ((f = fopen(arena_printf(a, "/proc/%ld/cmdline", pid), "r")) ==
	    NULL)
		return access("/proc/self/cmdline", R_OK) != 0;
	n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	/* A zombie has no command line; a reused pid has another one. */
	for (i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	cmd[n] = '\0';
	return strstr(cmd, "--sender") != NULL;
}

/*
 * At the sender's start: leases held by senders of this host that are
 * no longer running ("host:pid", the pid gone) are released at once
 * rather than when they run out, so a restart after a crash resumes
 * without waiting.  Sending a row again is harmless: Stripe keeps the
 * first answer for its Idempotency-Key and identifier.
 */
static void
release_dead_leases(struct arena *a, const char *me)
{
	struct dbrows	 rows;
	const char	*colon = strrchr(me, ':');
	char		*like, *end;
	size_t		 i;
	long		 pid;

	if (colon == NULL)
		return;
	like = arena_printf(a, "%.*s:%%", (int)(colon - me), me);
	if (db_select(a, &q_mr_holders, &rows, "ss", like, like) <= 0)
		return;
	for (i = 0; i < rows.n; i++) {
		const char *holder = dbv(&rows, i, 0);

		if (holder == NULL || strcmp(holder, me) == 0)
			continue;
		pid = strtol(strrchr(holder, ':') + 1, &end, 10);
		if (*end != '\0' || pid <= 0 || sender_alive(a, pid))
			continue;
		log_info("stripe_lease_released", " holder=%s", holder);
		db_exec(&q_mr_release, "s", holder);
		db_exec(&q_cx_release, "s", holder);
	}
}

/*
 * True when a Stripe answer says the meter event exists already: a
 * retry after Stripe's idempotency window, which must count as sent.
 */
static bool
meter_event_exists(struct json_object *out)
{
	const char	*code = json_str_at(out, "error.code");
	const char	*msg = json_str_at(out, "error.message");

	return (code != NULL && strcmp(code, "resource_already_exists") ==
	    0) || (msg != NULL && strstr(msg, "identifier") != NULL &&
	    strstr(msg, "already") != NULL);
}

/*
 * Sends one claimed meter report and records the outcome.  Returns the
 * HTTP status, or -1 when Stripe could not be reached.
 */
static int
meter_send(struct arena *a, const char *id, const char *me)
{
	struct json_object	*out = NULL;
	struct dbrows		 row;
	struct buf		 form;
	char			 err[256];
	int			 status;
	bool			 permanent;

	if (db_select(a, &q_mr_load, &row, "s", id) != 1)
		return 0;
	if (!meter_billed(dbv(&row, 0, 0))) {
		/* Queued elsewhere (SQL) for a meter no price bills. */
		db_exec(&q_mr_skip, "ss", id, me);
		log_info("meter_skipped", " id=%s meter=%s", id,
		    dbv(&row, 0, 0));
		return 200;
	}
	if (dbi(&row, 0, 1) <= 0) {
		db_exec(&q_mr_sent, "ss", id, me);	/* nothing to report */
		return 200;
	}
	buf_init(&form, a);
	form_add(&form, "event_name", dbv(&row, 0, 0));
	form_add(&form, "payload[stripe_customer_id]", dbv(&row, 0, 2));
	form_add(&form, "payload[value]", dbv(&row, 0, 1));
	form_add(&form, "identifier", arena_printf(a, "tg-mr-%s", id));
	form_add(&form, "timestamp", dbv(&row, 0, 3));
	status = stripe_call(a, "POST", "/v1/billing/meter_events", form.p,
	    arena_printf(a, "tg-mr-%s", id), &out, err, sizeof(err));
	if ((status >= 200 && status <= 299) ||
	    ((status == 400 || status == 409) && meter_event_exists(out))) {
		json_object_put(out);
		if (db_exec(&q_mr_sent, "ss", id, me) < 0)
			log_err("meter_mark_failed", " id=%s", id);
		else
			log_info("meter_sent", " id=%s meter=%s value=%s", id,
			    dbv(&row, 0, 0), dbv(&row, 0, 1));
		return status;
	}
	json_object_put(out);
	/* A request Stripe will never take; the rest is tried again. */
	permanent = status == 400 || status == 404;
	log_warn("meter_deferred", " id=%s attempt=%lld permanent=%d "
	    "err=\"%s\"", id, dbi(&row, 0, 4), permanent, err);
	db_exec(&q_mr_retry, "iisss", (long long)permanent,
	    (long long)MAX_TRIES, err, id, me);
	return status;
}

/* True when s is a plausible Stripe id ([A-Za-z0-9_], 1 to 255). */
static bool
stripe_id_ok(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return i > 0 && i <= 255;
}

/*
 * Cancels one claimed subscription at Stripe and records the outcome.
 * Returns the HTTP status, or -1 when Stripe could not be reached.
 */
static int
cancel_send(struct arena *a, const char *sub, const char *me)
{
	struct json_object	*out = NULL;
	char			 err[256];
	int			 status;

	if (!stripe_id_ok(sub)) {
		db_exec(&q_cx_retry, "iisss", 1LL, (long long)MAX_TRIES,
		    "not a Stripe id", sub, me);
		return 0;
	}
	status = stripe_call(a, "DELETE", arena_printf(a,
	    "/v1/subscriptions/%s", sub), NULL, NULL, &out, err, sizeof(err));
	json_object_put(out);
	/* 404: Stripe has no such live subscription any more. */
	if ((status >= 200 && status <= 299) || status == 404) {
		db_exec(&q_cx_done, "ss", sub, me);
		log_info("stripe_cancelled", " subscription=%s status=%d", sub,
		    status);
		return status;
	}
	log_warn("stripe_cancel_deferred", " subscription=%s err=\"%s\"", sub,
	    err);
	db_exec(&q_cx_retry, "iisss", 0LL, (long long)MAX_TRIES, err, sub, me);
	return status;
}

/*
 * A pass stops at the first call that finds Stripe unreachable: the
 * rows left wait for the next pass, and a stop request is not held up
 * by a batch of timeouts.
 */
int
billing_pass(struct arena *a, const char *me)
{
	static bool	 started;
	struct dbrows	 due;
	size_t		 i;
	int		 tried = 0;

	if (cfg.stripe_secret_key[0] == '\0')
		return 0;
	if (!started) {
		release_dead_leases(a, me);
		started = true;
	}
	db_exec(&q_mr_expire, "");
	if (db_select(a, &q_mr_due, &due, "") > 0)
		for (i = 0; i < due.n; i++) {
			const char *id = dbv(&due, i, 0);

			if (db_exec(&q_mr_claim, "ss", me, id) != 1)
				continue;	/* another sender has it */
			tried++;
			if (meter_send(a, id, me) < 0)
				return tried;
		}
	db_exec(&q_cx_expire, "");
	if (db_select(a, &q_cx_due, &due, "") > 0)
		for (i = 0; i < due.n; i++) {
			const char *sub = dbv(&due, i, 0);

			if (db_exec(&q_cx_claim, "ss", me, sub) != 1)
				continue;
			tried++;
			if (cancel_send(a, sub, me) < 0)
				return tried;
		}
	return tried;
}
