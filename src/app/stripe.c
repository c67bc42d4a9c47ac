/*
 * Stripe webhooks: the signature check and the events that change state.
 *
 * An event is accepted only with a Stripe-Signature whose v1 is the
 * HMAC-SHA256 of "<t>.<raw body>" under [stripe] webhook_secret, and
 * whose t is within 300 seconds of the database's clock.  Its id goes
 * into stripe_events in the same transaction as its effect, so a replay,
 * or twenty copies at once, take effect once (the copies wait on the
 * unique key, then find it taken).  Subscriptions change only through
 * events at least as new as the newest applied (stripe_updated, the
 * event's `created`), and never once deleted, so events arriving out of
 * order cannot revive a cancelled subscription or undo a newer state.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "app/app.h"

#define TOLERANCE	300	/* seconds between t and now, either way */

static struct sql q_event = SQL(
    "INSERT INTO stripe_events (id, type, created) VALUES (?, ?, ?)");
static struct sql q_event_seen = SQL(
    "SELECT 1 FROM stripe_events WHERE id = ?");
static struct sql q_user_exists = SQL(
    "SELECT id FROM users WHERE id = ? FOR UPDATE");
static struct sql q_user_by_customer = SQL(
    "SELECT id FROM users WHERE stripe_customer_id = ?");
/* checkout.session.completed: remember whose subscription it is. */
static struct sql q_sub_stub = SQL(
    "INSERT INTO subscriptions (id, user_id, stripe_customer_id, status, "
    "stripe_updated) VALUES (?, ?, ?, 'incomplete', 0) "
    "ON DUPLICATE KEY UPDATE user_id = COALESCE(user_id, "
    "VALUES(user_id)), stripe_customer_id = COALESCE(stripe_customer_id, "
    "VALUES(stripe_customer_id)), updated_at = UTC_TIMESTAMP(6)");
static struct sql q_sub_insert = SQL(
    "INSERT INTO subscriptions (id, user_id, stripe_customer_id, plan, "
    "price_id, status, current_period_start, current_period_end, "
    "cancel_at_period_end, stripe_updated, deleted_at) VALUES "
    "(?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?), FROM_UNIXTIME(?), ?, ?, "
    "IF(?, UTC_TIMESTAMP(6), NULL))");
/* Only an event at least as new as the row's, and never once deleted. */
static struct sql q_sub_update = SQL(
    "UPDATE subscriptions SET user_id = COALESCE(user_id, ?), "
    "stripe_customer_id = COALESCE(?, stripe_customer_id), plan = ?, "
    "price_id = ?, status = ?, current_period_start = "
    "COALESCE(FROM_UNIXTIME(?), current_period_start), "
    "current_period_end = COALESCE(FROM_UNIXTIME(?), current_period_end), "
    "cancel_at_period_end = ?, stripe_updated = ?, "
    "deleted_at = IF(?, UTC_TIMESTAMP(6), NULL), "
    "updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ? AND deleted_at IS NULL AND stripe_updated <= ?");
/* A deletion is final, whatever its time. */
static struct sql q_sub_delete = SQL(
    "UPDATE subscriptions SET user_id = COALESCE(user_id, ?), "
    "status = ?, cancel_at_period_end = 0, "
    "stripe_updated = GREATEST(stripe_updated, ?), "
    "deleted_at = COALESCE(deleted_at, UTC_TIMESTAMP(6)), "
    "updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
/* Payments that came before their user was known. */
static struct sql q_payments_link = SQL(
    "UPDATE payments SET user_id = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE user_id IS NULL AND subscription_id = ?");
static struct sql q_sub_row = SQL(
    "SELECT user_id, plan FROM subscriptions WHERE id = ?");
static struct sql q_sub_status = SQL(
    "UPDATE subscriptions SET status = ?, stripe_updated = "
    "GREATEST(stripe_updated, ?), updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ? AND deleted_at IS NULL AND stripe_updated <= ? AND "
    "FIND_IN_SET(status, ?)");
static struct sql q_payment_status = SQL(
    "SELECT status FROM payments WHERE stripe_invoice_id = ? FOR UPDATE");
static struct sql q_payment = SQL(
    "INSERT INTO payments (id, user_id, stripe_invoice_id, "
    "subscription_id, amount, currency, status, invoice_url) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
    "user_id = COALESCE(user_id, VALUES(user_id)), "
    "subscription_id = COALESCE(subscription_id, VALUES(subscription_id)), "
    "amount = IF(status = 'paid' AND VALUES(status) <> 'paid', amount, "
    "VALUES(amount)), currency = IF(status = 'paid' AND VALUES(status) <> "
    "'paid', currency, VALUES(currency)), "
    "invoice_url = COALESCE(VALUES(invoice_url), invoice_url), "
    "status = IF(status = 'paid', 'paid', VALUES(status)), "
    "updated_at = UTC_TIMESTAMP(6)");
static struct sql q_plan_info = SQL(
    "SELECT credits, display_name FROM plans WHERE name = ?");
static const char *
id_at(struct json_object *o, const char *path)
{
	struct json_object	*v = json_at(o, path);

	if (v != NULL && json_object_is_type(v, json_type_object))
		return json_str_at(v, "id");
	return v != NULL && json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : NULL;
}

/* A unix time at path as text for FROM_UNIXTIME, or NULL. */
static const char *
time_at(struct arena *a, struct json_object *o, const char *path)
{
	long long	 v = json_int_at(o, path, -1);

	return v > 0 ? arena_printf(a, "%lld", v) : NULL;
}

/*
 * The user of a Stripe customer.  Returns 1 with *uid, 0 (none), or a
 * DB_* code.
 */
static int
user_of_customer(struct req *r, const char *cus, const char **uid)
{
	struct dbrows	 row;
	int		 rc;

	*uid = NULL;
	if (cus == NULL)
		return 0;
	if ((rc = db_select(r->a, &q_user_by_customer, &row, "s", cus)) == 1)
		*uid = dbv(&row, 0, 0);
	return rc;
}

/* Queues the "payment received" or "payment failed" mail. */
static int
mail_payment(struct req *r, const char *uid, bool paid, long long amount,
    const char *currency, const char *plan_name, const char *url)
{
	const char	*to;
	const char	*link = arena_printf(r->a, "%s/billing", cfg.base_url);
	const char	*what = money_text(r->a, amount, currency);
	const char	*invoice = "";
	int		 rc;

	if ((rc = user_email(r, uid, &to)) <= 0)
		return rc;
	if (plan_name == NULL)
		plan_name = "your";
	if (paid && url != NULL)
		invoice = arena_printf(r->a, "%s\n\n", mail_part(r->a,
		    "payment_received.invoice", (const char *[]){
		    "invoice_url", url, NULL }));
	return mail_text(r, uid, paid ? "payment_received" : "payment_failed",
	    paid ? "payment_received" : "payment_failed", to,
	    link, (const char *[]){ "amount", what, "plan", plan_name,
	    "invoice", invoice, "link", link, NULL });
}

/* ------------------------------------------------------------------ */
/* The events.                                                         */
/* ------------------------------------------------------------------ */

/* checkout.session.completed: links the customer and the subscription. */
static int
ev_checkout(struct req *r, struct json_object *o)
{
	struct dbrows	 row;
	const char	*ref = json_str_at(o, "client_reference_id");
	const char	*cus = id_at(o, "customer"), *sub = id_at(o,
			    "subscription"), *uid = NULL;
	int		 rc;

	if (ref != NULL && valid_id(ref, strlen(ref)) == NULL) {
		if ((rc = db_select(r->a, &q_user_exists, &row, "s", ref)) < 0)
			return rc;
		if (rc == 1)
			uid = ref;
	}
	if (uid == NULL && (rc = user_of_customer(r, cus, &uid)) < 0)
		return rc;
	if (uid != NULL && cus != NULL) {
		rc = customer_link(uid, cus);
		if (rc == DB_DUP)
			log_warn("stripe_customer_taken", " customer=%s "
			    "user=%s", cus, uid);
		else if (rc < 0)
			return rc;
	}
	if (sub != NULL && ((rc = db_exec(&q_sub_stub, "sss", sub, uid,
	    cus)) < 0 || (uid != NULL && (rc = db_exec(&q_payments_link, "ss",
	    uid, sub)) < 0)))
		return rc;
	log_info("stripe_checkout_completed", " user=%s subscription=%s",
	    uid ? uid : "-", sub ? sub : "-");
	return 0;
}

/*
 * The price that names the plan among the items (or invoice lines) at
 * list ("items.data" or "lines.data"; each item's price at field): the
 * first one, passing over the metered prices of [stripe] meter_prices,
 * which a Checkout adds after the plan's price and which name no plan.
 * NULL when there is none.
 */
static const char *
plan_price_of(struct req *r, struct json_object *o, const char *list,
    const char *field)
{
	const char	*price, *first = NULL;
	size_t		 i, j;
	bool		 metered;

	for (i = 0; i < 20; i++) {
		if ((price = id_at(o, arena_printf(r->a, "%s.%zu.%s", list, i,
		    field))) == NULL)
			break;
		if (first == NULL)
			first = price;
		for (metered = false, j = 0; j < cfg.nmeter_prices; j++)
			if (strcmp(cfg.meter_prices[j].price, price) == 0)
				metered = true;
		if (!metered)
			return price;
	}
	return first;
}

/* customer.subscription.created, .updated and .deleted. */
static int
ev_subscription(struct req *r, struct json_object *o, long long t,
    bool deleted)
{
	const char	*id = json_str_at(o, "id"), *cus = id_at(o, "customer");
	const char	*status = json_str_at(o, "status");
	const char	*price = plan_price_of(r, o, "items.data", "price");
	const char	*start = time_at(r->a, o, "current_period_start");
	const char	*end = time_at(r->a, o, "current_period_end");
	const char	*plan, *uid;
	bool		 cape = json_bool_at(o, "cancel_at_period_end", false);
	int		 rc;

	if (id == NULL || status == NULL)
		return 0;
	/* Newer API versions keep the period on the item. */
	if (start == NULL)
		start = time_at(r->a, o, "items.data.0.current_period_start");
	if (end == NULL)
		end = time_at(r->a, o, "items.data.0.current_period_end");
	if (strcmp(status, "canceled") == 0 ||
	    strcmp(status, "incomplete_expired") == 0)
		deleted = true;
	plan = plan_for_price(r->a, price, &rc);
	if (rc < 0 || (rc = user_of_customer(r, cus, &uid)) < 0)
		return rc;
	rc = db_exec(&q_sub_insert, "ssssssssiii", id, uid, cus, plan, price,
	    status, start, end, (long long)cape, t, (long long)deleted);
	if (rc == DB_DUP) {
		if (deleted)
			rc = db_exec(&q_sub_delete, "ssis", uid, status, t, id);
		else
			rc = db_exec(&q_sub_update, "sssssssiiisi", uid, cus,
			    plan, price, status, start, end, (long long)cape, t,
			    0LL, id, t);
		if (rc == 0)
			log_info("stripe_event_stale", " subscription=%s "
			    "created=%lld", id, t);
	}
	if (rc < 0 || (uid != NULL && (rc = db_exec(&q_payments_link, "ss",
	    uid, id)) < 0))
		return rc;
	/* The allowance follows the plan and period the row says now. */
	if (uid != NULL && (rc = credit_refresh(uid)) < 0)
		return rc;
	log_info("stripe_subscription", " id=%s status=%s plan=%s user=%s "
	    "deleted=%d", id, status, plan ? plan : "-", uid ? uid : "-",
	    deleted);
	return 0;
}

/* invoice.paid and invoice.payment_failed. */
static int
ev_invoice(struct req *r, struct json_object *o, long long t, bool paid)
{
	struct dbrows	 row;
	const char	*inv = json_str_at(o, "id"), *cus = id_at(o, "customer");
	const char	*sub = id_at(o, "subscription");
	const char	*cur = json_str_at(o, "currency");
	const char	*url = json_str_at(o, "hosted_invoice_url");
	const char	*price = plan_price_of(r, o, "lines.data", "price");
	const char	*uid = NULL, *plan = NULL, *plan_name = NULL;
	long long	 amount;
	bool		 changed;
	int		 rc;

	if (inv == NULL)
		return 0;
	if (sub == NULL)	/* newer API versions */
		sub = id_at(o, "parent.subscription_details.subscription");
	if (price == NULL)
		price = plan_price_of(r, o, "lines.data",
		    "pricing.price_details.price");
	if (cur == NULL || strlen(cur) != 3)
		cur = "usd";
	cur = ascii_lower(r->a, cur);
	if (url != NULL && (strlen(url) > 2048 ||
	    valid_utf8_text(url, strlen(url), 2048) != NULL))
		url = NULL;
	amount = paid ? json_int_at(o, "amount_paid", 0) :
	    json_int_at(o, "amount_due", 0);

	if (sub != NULL) {
		if ((rc = db_select(r->a, &q_sub_row, &row, "s", sub)) < 0)
			return rc;
		if (rc == 1) {
			uid = dbv(&row, 0, 0);
			plan = dbv(&row, 0, 1);
		}
	}
	if (uid == NULL && (rc = user_of_customer(r, cus, &uid)) < 0)
		return rc;
	if (price != NULL) {
		const char *p = plan_for_price(r->a, price, &rc);

		if (rc < 0)
			return rc;
		if (p != NULL)
			plan = p;
	}
	/* It changes when it is new, or newly paid or failed (not after paid). */
	if ((rc = db_select(r->a, &q_payment_status, &row, "s", inv)) < 0)
		return rc;
	changed = rc == 0 || (strcmp(dbv(&row, 0, 0), "paid") != 0 &&
	    strcmp(dbv(&row, 0, 0), paid ? "paid" : "failed") != 0);
	if ((rc = db_exec(&q_payment, "ssssisss", new_id(r->a), uid, inv,
	    sub, amount, cur, paid ? "paid" : "failed", url)) < 0)
		return rc;
	if (plan != NULL) {
		if ((rc = db_select(r->a, &q_plan_info, &row, "s", plan)) < 0)
			return rc;
		plan_name = rc == 1 ? dbv(&row, 0, 1) : plan;
	}
	if (paid) {
		if (sub != NULL && (rc = db_exec(&q_sub_status, "sisis",
		    "active", t, sub, t, "past_due")) < 0)
			return rc;
		/*
		 * The period's allowance, by the rule every other path uses:
		 * the plan and period are the subscription's, as its events
		 * set them (ev_subscription refreshes it too, so the order
		 * of the events does not matter).
		 */
		if (uid != NULL && (rc = credit_refresh(uid)) < 0)
			return rc;
	} else if (sub != NULL && (rc = db_exec(&q_sub_status, "sisis",
	    "past_due", t, sub, t, "active,trialing,past_due")) < 0)
		return rc;
	if (uid != NULL && changed && (rc = mail_payment(r, uid, paid,
	    amount, cur, plan_name, url)) < 0)
		return rc;
	log_info("stripe_invoice", " id=%s paid=%d user=%s amount=%lld", inv,
	    paid, uid ? uid : "-", amount);
	return 0;
}

/* Applies one event inside the transaction.  Returns 0 or a DB_* code. */
static int
apply(struct req *r, const char *type, struct json_object *o, long long t)
{
	if (strcmp(type, "checkout.session.completed") == 0)
		return ev_checkout(r, o);
	if (strcmp(type, "customer.subscription.created") == 0 ||
	    strcmp(type, "customer.subscription.updated") == 0)
		return ev_subscription(r, o, t, false);
	if (strcmp(type, "customer.subscription.deleted") == 0)
		return ev_subscription(r, o, t, true);
	if (strcmp(type, "invoice.paid") == 0)
		return ev_invoice(r, o, t, true);
	if (strcmp(type, "invoice.payment_failed") == 0)
		return ev_invoice(r, o, t, false);
	return 0;	/* not one that changes anything here */
}

/* A webhook that is not accepted: 400 with a reason. */
static void
webhook_refuse(struct outcome *o, const char *why)
{
	outcome_refuse(o, 400, "bad_request", why);
}

/* An event's effect, run by db_tx_run (maybe more than once). */
struct event_tx {
	struct req		*r;
	const char		*id, *type;
	struct json_object	*o;
	long long		 created;
	bool			 dup;		/* seen before: nothing done */
};

static int
event_body(void *v)
{
	struct event_tx	*t = v;
	int		 rc;

	t->dup = false;
	if ((rc = db_exec(&q_event, "ssi", t->id, t->type, t->created)) ==
	    DB_DUP) {
		t->dup = true;
		return DB_ABORT;
	}
	if (rc < 0 || (rc = apply(t->r, t->type, t->o, t->created)) < 0)
		return rc;
	return 0;
}

/*
 * After a lost COMMIT answer: is the event recorded (its effect came in
 * the same transaction)?
 */
static int
event_committed(void *v)
{
	struct event_tx	*t = v;
	struct dbrows	 row;

	return db_select(t->r->a, &q_event_seen, &row, "s", t->id);
}

/*
 * POST /api/v1/billing/webhook: 200 for a correctly signed event (also
 * one seen before, which changes nothing); 400 for a missing or wrong
 * signature, a timestamp off by more than 300 s, or a body that is not
 * an event; 503 when the database is down (Stripe sends it again).
 */
void
h_billing_webhook(struct req *r)
{
	struct outcome		 out = OUTCOME_INIT;
	struct json_object	*ev = NULL, *o;
	const char		*id, *type;
	long long		 now, created;
	struct event_tx		 t;
	int			 rc;

	if (cfg.stripe_webhook_secret[0] == '\0') {
		log_warn("stripe_webhook", " msg=\"[stripe] webhook_secret is "
		    "not configured\"");
		webhook_refuse(&out, "Webhooks are not configured.");
		goto out;
	}
	if ((rc = db_unix_now(r->a, &now)) < 0) {
		out.rc = rc;
		goto out;
	}
	switch (stripe_signature_check(req_env(r, "HTTP_STRIPE_SIGNATURE"),
	    r->body, r->body_len, cfg.stripe_webhook_secret, now, TOLERANCE)) {
	case 0:
		break;
	case -2:
		log_warn("stripe_webhook_stale", "%s", "");
		webhook_refuse(&out, "The Stripe-Signature timestamp is too "
		    "far from now.");
		goto out;
	default:
		log_warn("stripe_webhook_bad_signature", "%s", "");
		webhook_refuse(&out, "The Stripe-Signature is missing or "
		    "wrong.");
		goto out;
	}
	/* The raw body has been authenticated: now it may be parsed. */
	if ((ev = parse_json_object(r->body, r->body_len)) == NULL) {
		webhook_refuse(&out, "The body is not a JSON event.");
		goto out;
	}
	id = json_str_at(ev, "id");
	type = json_str_at(ev, "type");
	created = json_int_at(ev, "created", 0);
	o = json_at(ev, "data.object");
	if (id == NULL || *id == '\0' || strlen(id) > 255 || type == NULL ||
	    strlen(type) > 128 || o == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		webhook_refuse(&out, "The body is not a Stripe event.");
		goto out;
	}
	t.r = r;
	t.id = id;
	t.type = type;
	t.o = o;
	t.created = created;
	if ((rc = db_tx_run(event_body, event_committed, &t,
	    DB_TX_TRIES)) == DB_ABORT)
		rc = 0;
	if (rc < 0) {
		log_warn("stripe_webhook_failed", " event=%s type=%s rc=%d",
		    id, type, rc);
		out.rc = rc;
		goto out;
	}
	log_info("stripe_webhook", " event=%s type=%s duplicate=%d", id, type,
	    t.dup);
	out.status = 200;
	out.body = json_object_new_object();
	json_object_object_add(out.body, "received",
	    json_object_new_boolean(1));
out:
	json_object_put(ev);
	reply_outcome(r, &out);
}
