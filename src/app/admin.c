/*
 * Administration (contract section 10): the admin API and the actions
 * behind it.  Each action is a function taking explicit arguments, used
 * both by the JSON handlers here and by the /admin pages (pages_admin.c),
 * so there is one implementation of each.  Every change writes the audit
 * log in the same transaction.  The admin rows are locked (FOR UPDATE)
 * before a change that could leave no admin, so two admins demoting each
 * other at once cannot both succeed.
 */
#include <string.h>

#include "app/app.h"

#define PER_PAGE	50

/* Users, newest first, optionally matching an email or name pattern. */
static struct sql q_users = SQL(
    "SELECT " USER_COLUMNS ", u.disabled_at IS NOT NULL FROM users u "
    "WHERE ? IS NULL OR u.email_lc LIKE ? OR u.name LIKE ? "
    "ORDER BY u.created_at DESC, u.id LIMIT ? OFFSET ?");
static struct sql q_users_count = SQL(
    "SELECT COUNT(*) FROM users u "
    "WHERE ? IS NULL OR u.email_lc LIKE ? OR u.name LIKE ?");
static struct sql q_user_full = SQL(
    "SELECT " USER_COLUMNS ", u.disabled_at IS NOT NULL, "
    "(SELECT t.enabled_at IS NOT NULL FROM totp_secrets t "
    "WHERE t.user_id = u.id), "
    "DATE_FORMAT(u.trial_started_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "DATE_FORMAT(u.trial_ends_at, '%Y-%m-%dT%H:%i:%sZ'), u.plan_override, "
    "u.github_login FROM users u WHERE u.id = ?");
static struct sql q_subscription = SQL(
    "SELECT plan, status, DATE_FORMAT(current_period_end, "
    "'%Y-%m-%dT%H:%i:%sZ'), cancel_at_period_end, id FROM subscriptions "
    "WHERE user_id = ? AND deleted_at IS NULL "
    "ORDER BY stripe_updated DESC LIMIT 1");
static struct sql q_credits = SQL(
    "SELECT tg_credits(user_id, ?) - granted, granted, allowance_plan, "
    "DATE_FORMAT(allowance_period_end, '%Y-%m-%dT%H:%i:%sZ') "
    "FROM credit_balances WHERE user_id = ?");
/* The live admins, locked; and the target row, locked. */
static struct sql q_lock_admins = SQL(
    "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL "
    "ORDER BY id FOR UPDATE");
static struct sql q_lock_user = SQL(
    "SELECT role, disabled_at IS NOT NULL, plan_override, "
    "(SELECT COUNT(*) FROM totp_secrets t WHERE t.user_id = users.id), "
    "email FROM users WHERE id = ? FOR UPDATE");
static struct sql q_plan_exists = SQL(
    "SELECT name FROM plans WHERE name = ?");
static struct sql q_set_plan = SQL(
    "UPDATE users SET plan_override = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_set_role = SQL(
    "UPDATE users SET role = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_set_disabled = SQL(
    "UPDATE users SET disabled_at = IF(?, COALESCE(disabled_at, "
    "UTC_TIMESTAMP(6)), NULL), updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
/* A trial not started yet starts now, for the configured length. */
static struct sql q_extend_trial = SQL(
    "UPDATE users SET trial_started_at = COALESCE(trial_started_at, "
    "UTC_TIMESTAMP(6)), trial_ends_at = COALESCE(trial_ends_at, "
    "UTC_TIMESTAMP(6) + INTERVAL ? DAY) + INTERVAL ? DAY, "
    "updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_trial_end = SQL(
    "SELECT DATE_FORMAT(trial_ends_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "trial_ends_at <= UTC_TIMESTAMP(6), trial_ends_at FROM users WHERE id = ?");
static struct sql q_move_allowance = SQL(
    "UPDATE credit_balances SET allowance_period_end = ?, "
    "updated_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND "
    "allowance_plan = 'trial'");
static struct sql q_clear_notices = SQL(
    "DELETE FROM trial_notices WHERE user_id = ?");
/* After credit_refresh: the balance, locked. */
static struct sql q_lock_balance = SQL(
    "SELECT granted, allowance FROM credit_balances WHERE user_id = ? "
    "FOR UPDATE");
static struct sql q_set_balance = SQL(
    "UPDATE credit_balances SET granted = ?, allowance = ?, "
    "updated_at = UTC_TIMESTAMP(6) WHERE user_id = ?");
static struct sql q_ledger = SQL(
    "INSERT INTO credit_ledger (id, user_id, kind, delta, balance_after, "
    "reason, actor_id, request_key) VALUES (?, ?, 'grant', ?, ?, ?, ?, ?)");
static struct sql q_ledger_seen = SQL(
    "SELECT delta, balance_after FROM credit_ledger WHERE request_key = ?");
static struct sql q_key_of = SQL(
    "SELECT user_id, name FROM api_keys WHERE id = ? FOR UPDATE");
static struct sql q_session_of = SQL(
    "SELECT user_id FROM sessions WHERE id = ? AND revoked_at IS NULL "
    "FOR UPDATE");
static struct sql q_payments = SQL(
    "SELECT p.id, p.user_id, COALESCE(u.email, ''), p.amount, p.currency, "
    "p.status, DATE_FORMAT(p.created_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "p.invoice_url FROM payments p LEFT JOIN users u ON u.id = p.user_id "
    "WHERE ? IS NULL OR p.user_id = ? "
    "ORDER BY p.created_at DESC, p.id LIMIT 500");

/* Appends s to b with the LIKE wildcards and the escape escaped. */
static const char *
like_pattern(struct arena *a, const char *s)
{
	struct buf	 b;

	buf_init(&b, a);
	buf_puts(&b, "%");
	for (; *s != '\0'; s++) {
		if (*s == '%' || *s == '_' || *s == '\\')
			buf_puts(&b, "\\");
		buf_add(&b, s, 1);
	}
	buf_puts(&b, "%");
	return b.p;
}

/*
 * Lists users matching q (email or name, NULL for all) on page (from 1).
 * Returns 0 with {users, total, page, per_page} in *out (owned by the
 * caller), or a DB_* code.
 */
int
admin_users_list(struct req *r, const char *q, long long page,
    struct json_object **out)
{
	struct dbrows		 rows, cnt;
	struct json_object	*o, *arr, *u;
	const char		*lq = NULL, *nq = NULL;
	size_t			 i;
	int			 rc;

	if (q != NULL && *q == '\0')
		q = NULL;
	if (q != NULL) {
		lq = like_pattern(r->a, ascii_lower(r->a, q));
		nq = like_pattern(r->a, q);
	}
	if (page < 1)
		page = 1;
	if ((rc = db_select(r->a, &q_users_count, &cnt, "sss", q, lq, nq)) < 0)
		return rc;
	if ((rc = db_select(r->a, &q_users, &rows, "sssii", q, lq, nq,
	    (long long)PER_PAGE, (page - 1) * PER_PAGE)) < 0)
		return rc;
	arr = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		u = user_json_row(&rows, i, 0);
		json_object_object_add(u, "disabled",
		    json_object_new_boolean(dbi(&rows, i, 7) != 0));
		json_object_array_add(arr, u);
	}
	o = json_object_new_object();
	json_object_object_add(o, "users", arr);
	json_object_object_add(o, "total",
	    json_object_new_int64(dbi(&cnt, 0, 0)));
	json_object_object_add(o, "page", json_object_new_int64(page));
	json_object_object_add(o, "per_page", json_object_new_int(PER_PAGE));
	*out = o;
	return 0;
}

/*
 * Loads a user as an admin sees it: the user object with disabled, totp,
 * trial and plan_override.  Returns 1 with *out (owned by the caller), 0
 * when there is no such user, or a DB_* code.
 */
static int
admin_user_object(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 row;
	struct json_object	*u, *t;
	int			 rc;

	if ((rc = db_select(r->a, &q_user_full, &row, "s", uid)) <= 0)
		return rc;
	u = user_json_row(&row, 0, 0);
	json_object_object_add(u, "disabled",
	    json_object_new_boolean(dbi(&row, 0, 7) != 0));
	json_object_object_add(u, "totp",
	    json_object_new_boolean(dbi(&row, 0, 8) != 0));
	t = json_object_new_object();
	json_object_object_add(t, "started_at", jstr_or_null(dbv(&row, 0, 9)));
	json_object_object_add(t, "ends_at", jstr_or_null(dbv(&row, 0, 10)));
	json_object_object_add(u, "trial", t);
	json_object_object_add(u, "plan_override",
	    jstr_or_null(dbv(&row, 0, 11)));
	json_object_object_add(u, "github_login",
	    jstr_or_null(dbv(&row, 0, 12)));
	*out = u;
	return 1;
}

/*
 * Builds {user, usage, subscription, credits} for user uid.  Returns 1
 * with *out (owned by the caller), 0 when there is no such user, or a
 * DB_* code.
 */
int
admin_user_detail(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*o, *u = NULL, *usage = NULL, *sub, *cr;
	int			 rc;

	if ((rc = admin_user_object(r, uid, &u)) <= 0)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, "user", u);

	/* Usage: as GET /api/v1/usage shows it to the user. */
	if ((rc = usage_core(r, uid, &usage)) < 0)
		goto fail;
	json_object_object_add(o, "usage", rc == 0 ? usage : NULL);

	if ((rc = db_select(r->a, &q_subscription, &rows, "s", uid)) < 0)
		goto fail;
	if (rows.n == 1) {
		sub = json_object_new_object();
		json_object_object_add(sub, "id",
		    jstr_or_null(dbv(&rows, 0, 4)));
		json_object_object_add(sub, "plan",
		    jstr_or_null(dbv(&rows, 0, 0)));
		json_object_object_add(sub, "status",
		    jstr_or_null(dbv(&rows, 0, 1)));
		json_object_object_add(sub, "current_period_end",
		    jstr_or_null(dbv(&rows, 0, 2)));
		json_object_object_add(sub, "cancel_at_period_end",
		    json_object_new_boolean(dbi(&rows, 0, 3) != 0));
	} else
		sub = NULL;
	json_object_object_add(o, "subscription", sub);

	if ((rc = db_select(r->a, &q_credits, &rows, "is", cfg.trial_credits,
	    uid)) < 0)
		goto fail;
	cr = json_object_new_object();
	json_object_object_add(cr, "remaining",
	    json_object_new_int64(dbi(&rows, 0, 0) + dbi(&rows, 0, 1)));
	json_object_object_add(cr, "allowance",
	    json_object_new_int64(dbi(&rows, 0, 0)));
	json_object_object_add(cr, "granted",
	    json_object_new_int64(dbi(&rows, 0, 1)));
	json_object_object_add(cr, "allowance_plan",
	    jstr_or_null(dbv(&rows, 0, 2)));
	json_object_object_add(cr, "allowance_period_end",
	    jstr_or_null(dbv(&rows, 0, 3)));
	json_object_object_add(o, "credits", cr);
	*out = o;
	return 1;
fail:
	json_object_put(o);
	return rc;
}

/* Adds a "from"/"to" pair of strings (or nulls) to a detail object. */
static struct json_object *
change_detail(const char *what, const char *from, const char *to)
{
	struct json_object	*d = json_object_new_object();

	json_object_object_add(d, "field", json_object_new_string(what));
	json_object_object_add(d, "from", jstr_or_null(from));
	json_object_object_add(d, "to", jstr_or_null(to));
	return d;
}

/*
 * Whether the caller is still among the locked live admins (another
 * admin may have demoted it since its request was authenticated).
 */
static bool
actor_is_admin(struct req *r, const struct dbrows *admins)
{
	size_t	 i;

	for (i = 0; i < admins->n; i++)
		if (r->who.user_id != NULL &&
		    strcmp(dbv(admins, i, 0), r->who.user_id) == 0)
			return true;
	return false;
}

/*
 * Whether removing uid from the live admins would leave none: uid is a
 * live admin and the only one.  The admin rows must be locked already.
 */
static bool
is_last_admin(const struct dbrows *admins, const char *uid)
{
	return admins->n == 1 && strcmp(dbv(admins, 0, 0), uid) == 0;
}

/*
 * The body of admin_update, in a transaction the caller opened.  Returns
 * ADM_OK, ADM_NOT_FOUND, ADM_LAST_ADMIN, ADM_NO_PLAN or a DB_* code.
 */
static int
update_tx(struct req *r, const char *uid, const struct admin_change *c)
{
	struct dbrows	 admins, row, pl;
	const char	*role, *old_plan;
	bool		 disabled, live_admin;
	int		 rc;

	if ((rc = db_select(r->a, &q_lock_admins, &admins, "")) < 0 ||
	    (rc = db_select(r->a, &q_lock_user, &row, "s", uid)) < 0)
		return rc;
	if (!actor_is_admin(r, &admins))
		return ADM_FORBIDDEN;
	if (rc == 0)
		return ADM_NOT_FOUND;
	role = dbv(&row, 0, 0);
	disabled = dbi(&row, 0, 1) != 0;
	old_plan = dbv(&row, 0, 2);
	live_admin = strcmp(role, "admin") == 0 && !disabled;
	if (live_admin && is_last_admin(&admins, uid) &&
	    ((c->role != NULL && strcmp(c->role, "admin") != 0) ||
	    c->disabled == 1))
		return ADM_LAST_ADMIN;
	if (c->plan_set && c->plan != NULL) {
		if ((rc = db_select(r->a, &q_plan_exists, &pl, "s",
		    c->plan)) < 0)
			return rc;
		if (rc == 0)
			return ADM_NO_PLAN;
	}
	if (c->plan_set && !(old_plan == NULL && c->plan == NULL) &&
	    !(old_plan != NULL && c->plan != NULL &&
	    strcmp(old_plan, c->plan) == 0)) {
		if ((rc = db_exec(&q_set_plan, "ss", c->plan, uid)) < 0 ||
		    (rc = audit_obj(r, "user.plan", uid, change_detail("plan",
		    old_plan, c->plan))) < 0)
			return rc;
	}
	if (c->role != NULL && strcmp(c->role, role) != 0) {
		if ((rc = db_exec(&q_set_role, "ss", c->role, uid)) < 0 ||
		    (rc = audit_obj(r, "user.role", uid, change_detail("role",
		    role, c->role))) < 0)
			return rc;
	}
	if (c->disabled >= 0 && (c->disabled == 1) != disabled) {
		/*
		 * While disabled every credential answers 403; an enable
		 * ends every session from before, so no token issued before
		 * the disable works again (the user signs in anew).
		 */
		if ((rc = db_exec(&q_set_disabled, "is",
		    (long long)c->disabled, uid)) < 0 ||
		    (c->disabled == 0 && (rc = sessions_revoke_all(uid, NULL,
		    "reenabled")) < 0) ||
		    (rc = audit_obj(r, c->disabled ? "user.disable" :
		    "user.enable", uid, NULL)) < 0)
			return rc;
	}
	if (c->totp_off && dbi(&row, 0, 3) > 0) {
		if ((rc = totp_remove(r, uid, NULL, false)) < 0 ||
		    (rc = audit_obj(r, "user.totp_off", uid, NULL)) < 0 ||
		    (rc = mail_text(r, uid, "totp_off", "totp_off",
		    dbv(&row, 0, 4), NULL, NULL)) < 0)
			return rc;
	}
	return ADM_OK;
}

/*
 * One admin action run by db_tx_run: fn is the body (returns ADM_OK,
 * another ADM_* code that rolls back, or a DB_* code), and the
 * arguments it needs.  Each body starts from scratch, since it may run
 * more than once.
 */
struct adm_tx {
	struct req		*r;
	const char		*uid;
	const char		*id;		/* a key or session id */
	const struct admin_change *chg;
	long long		 n;		/* days, or a credit delta */
	const char		*reason;
	const char		*request_key;	/* of a credit grant */
	const char		*ends_at;
	long long		 applied, remaining;
	int			 adm;		/* the ADM_* of a rollback */
	int			 (*body)(struct adm_tx *);
};

static int
adm_body(void *v)
{
	struct adm_tx	*t = v;
	int		 rc;

	t->adm = ADM_OK;
	if ((rc = t->body(t)) > 0) {
		t->adm = rc;
		return DB_ABORT;
	}
	return rc;
}

/* Runs t->body in a transaction; returns ADM_* or a DB_* code. */
static int
adm_run(struct adm_tx *t, int (*committed)(void *))
{
	int	 rc;

	rc = db_tx_run(adm_body, committed, t, DB_TX_TRIES);
	if (rc == DB_ABORT)
		return t->adm;
	return rc < 0 ? rc : ADM_OK;
}

/*
 * Applies an admin's change to user uid (see struct admin_change).
 * Returns ADM_OK, ADM_NOT_FOUND, ADM_LAST_ADMIN (the last live admin
 * would be demoted or disabled), ADM_NO_PLAN, or a DB_* code.
 */
static int
update_body(struct adm_tx *t)
{
	return update_tx(t->r, t->uid, t->chg);
}

int
admin_update(struct req *r, const char *uid, const struct admin_change *c)
{
	struct adm_tx	 t = { .r = r, .uid = uid, .chg = c,
			    .body = update_body };

	return adm_run(&t, NULL);
}

static int
delete_tx(struct req *r, const char *uid)
{
	struct dbrows	 admins, row;
	int		 rc;

	if ((rc = db_select(r->a, &q_lock_admins, &admins, "")) < 0 ||
	    (rc = db_select(r->a, &q_lock_user, &row, "s", uid)) < 0)
		return rc;
	if (!actor_is_admin(r, &admins))
		return ADM_FORBIDDEN;
	if (rc == 0)
		return ADM_NOT_FOUND;
	if (strcmp(dbv(&row, 0, 0), "admin") == 0 && !dbi(&row, 0, 1) &&
	    is_last_admin(&admins, uid))
		return ADM_LAST_ADMIN;
	/*
	 * The audit row names the target's email while it still exists;
	 * its live Stripe subscriptions are queued for cancellation.
	 */
	if ((rc = audit_obj(r, "user.delete", uid, NULL)) < 0 ||
	    (rc = billing_cancel_for_user(r, uid)) < 0 ||
	    (rc = user_delete(uid)) < 0)
		return rc;
	return ADM_OK;
}

/*
 * Deletes user uid with everything it owns (the audit log, ledger and
 * payments keep their rows).  Returns ADM_OK, ADM_NOT_FOUND,
 * ADM_LAST_ADMIN or a DB_* code.
 */
static int
delete_body(struct adm_tx *t)
{
	return delete_tx(t->r, t->uid);
}

int
admin_delete(struct req *r, const char *uid)
{
	struct adm_tx	 t = { .r = r, .uid = uid, .body = delete_body };

	return adm_run(&t, NULL);
}

static int
extend_tx(struct req *r, const char *uid, long long days, const char **ends)
{
	struct dbrows		 row;
	struct json_object	*d;
	int			 rc;

	if ((rc = db_select(r->a, &q_lock_user, &row, "s", uid)) < 0)
		return rc;
	if (rc == 0)
		return ADM_NOT_FOUND;
	if ((rc = db_exec(&q_extend_trial, "iis", (long long)cfg.trial_days,
	    days, uid)) < 0 ||
	    (rc = db_select(r->a, &q_trial_end, &row, "s", uid)) < 0)
		return rc;
	*ends = dbv(&row, 0, 0);
	d = json_object_new_object();
	json_object_object_add(d, "days", json_object_new_int64(days));
	json_object_object_add(d, "ends_at", jstr_or_null(*ends));
	if ((rc = db_exec(&q_move_allowance, "ss", dbv(&row, 0, 2), uid)) < 0 ||
	    (rc = db_exec(&q_clear_notices, "s", uid)) < 0 ||
	    (rc = audit_obj(r, "user.extend_trial", uid, d)) < 0)
		return rc;
	return ADM_OK;
}

/*
 * Moves user uid's trial end by days (negative: earlier; an end in the
 * past ends the trial), the trial allowance's period end with it, and
 * forgets the trial mails sent so they go again for the new end.
 * Returns ADM_OK with the new end in *ends_at, ADM_NOT_FOUND or a DB_*
 * code.
 */
static int
extend_body(struct adm_tx *t)
{
	return extend_tx(t->r, t->uid, t->n, &t->ends_at);
}

int
admin_extend_trial(struct req *r, const char *uid, long long days,
    const char **ends_at)
{
	struct adm_tx	 t = { .r = r, .uid = uid, .n = days,
			    .body = extend_body };
	int		 rc;

	if ((rc = adm_run(&t, NULL)) == ADM_OK)
		*ends_at = t.ends_at;
	return rc;
}

static int
credits_tx(struct req *r, const char *uid, long long delta,
    const char *reason, const char *request_key, long long *applied,
    long long *remaining)
{
	struct dbrows		 row;
	struct json_object	*d;
	long long		 granted, allowance, take, from_allowance,
				 from_granted;
	int			 rc;

	if ((rc = db_select(r->a, &q_lock_user, &row, "s", uid)) < 0)
		return rc;
	if (rc == 0)
		return ADM_NOT_FOUND;
	if ((rc = credit_refresh(uid)) < 0 ||
	    (rc = db_select(r->a, &q_lock_balance, &row, "s", uid)) < 0)
		return rc;
	if (rc == 0)
		return ADM_NOT_FOUND;
	granted = dbi(&row, 0, 0);
	allowance = dbi(&row, 0, 1);
	if (delta >= 0) {
		granted += delta;
		*applied = delta;
	} else {
		/* The allowance first, then granted credits; never below 0. */
		take = -delta;
		from_allowance = take < allowance ? take : allowance;
		take -= from_allowance;
		from_granted = take < granted ? take : granted;
		allowance -= from_allowance;
		granted -= from_granted;
		*applied = -(from_allowance + from_granted);
	}
	*remaining = allowance + granted;	/* the ledger's balance */
	d = json_object_new_object();
	json_object_object_add(d, "delta", json_object_new_int64(delta));
	json_object_object_add(d, "applied", json_object_new_int64(*applied));
	json_object_object_add(d, "reason", json_object_new_string(reason));
	json_object_object_add(d, "balance_after",
	    json_object_new_int64(*remaining));
	if ((rc = db_exec(&q_set_balance, "iis", granted, allowance, uid)) < 0 ||
	    (rc = db_exec(&q_ledger, "ssiisss", new_id(r->a), uid, *applied,
	    *remaining, reason, r->who.user_id, request_key)) < 0 ||
	    (rc = audit_obj(r, "user.credits", uid, d)) < 0)
		return rc;
	/*
	 * The answer's figure is the one /api/v1/usage shows (it counts a
	 * trial's credits before verification grants them).
	 */
	if ((rc = credits_now(r, uid, remaining)) < 0)
		return rc;
	return ADM_OK;
}

/*
 * Grants delta credits to user uid through the credit ledger; a
 * negative delta takes credits away, from the period's allowance first
 * (brought up to date first, as the gate would), then from granted
 * credits, never below zero (contract section 10).  Returns
 * ADM_OK with the change made in *applied and the balance after it in
 * *remaining, ADM_NOT_FOUND, or a DB_* code.
 */
static int
credits_body(struct adm_tx *t)
{
	return credits_tx(t->r, t->uid, t->n, t->reason, t->request_key,
	    &t->applied, &t->remaining);
}

/* Whether a grant whose COMMIT answer was lost went through. */
static int
credits_committed(void *v)
{
	struct adm_tx	*t = v;
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(t->r->a, &q_ledger_seen, &row, "s",
	    t->request_key)) <= 0)
		return rc;
	t->applied = dbi(&row, 0, 0);
	t->remaining = dbi(&row, 0, 1);
	/* The answer's figure, as credits_tx gives it. */
	if ((rc = credits_now(t->r, t->uid, &t->remaining)) < 0)
		return rc;
	return 1;
}

int
admin_credits(struct req *r, const char *uid, long long delta,
    const char *reason, long long *applied, long long *remaining)
{
	struct adm_tx	 t = { .r = r, .uid = uid, .n = delta,
			    .reason = reason, .body = credits_body };
	int		 rc;

	/* The grant's idempotency key, written with it. */
	t.request_key = arena_printf(r->a, "admin-grant-%s", new_id(r->a));
	if ((rc = adm_run(&t, credits_committed)) == ADM_OK) {
		*applied = t.applied;
		*remaining = t.remaining;
	}
	return rc;
}

/*
 * The row q reads for t->id (its owner's id first) into *row, when it
 * belongs to user t->uid.  Returns ADM_OK, ADM_NOT_FOUND (no such row
 * of that user) or a DB_* code.
 */
static int
owned_row(struct adm_tx *t, struct sql *q, struct dbrows *row)
{
	int	 rc;

	if ((rc = db_select(t->r->a, q, row, "s", t->id)) < 0)
		return rc;
	if (rc == 0 || strcmp(dbv(row, 0, 0), t->uid) != 0)
		return ADM_NOT_FOUND;
	return ADM_OK;
}

/*
 * Revokes API key t->id of user t->uid (it stops working at once).
 * Returns ADM_OK, ADM_NOT_FOUND (no such key of that user) or a DB_*
 * code.
 */
static int
revoke_key_body(struct adm_tx *t)
{
	struct dbrows		 row;
	struct json_object	*d;
	int			 rc;

	if ((rc = owned_row(t, &q_key_of, &row)) != ADM_OK ||
	    (rc = apikey_delete(t->id)) < 0)
		return rc;
	d = json_object_new_object();
	json_object_object_add(d, "key_id", json_object_new_string(t->id));
	json_object_object_add(d, "name", jstr_or_null(dbv(&row, 0, 1)));
	return audit_obj(t->r, "api_key.delete", t->uid, d);
}

/*
 * Revokes session t->id of user t->uid (its tokens stop at once).
 * Returns ADM_OK, ADM_NOT_FOUND (no such live session of that user) or
 * a DB_* code.
 */
static int
revoke_session_body(struct adm_tx *t)
{
	struct dbrows		 row;
	struct json_object	*d;
	int			 rc;

	if ((rc = owned_row(t, &q_session_of, &row)) != ADM_OK ||
	    (rc = session_revoke(t->id, "admin")) < 0)
		return rc;
	d = json_object_new_object();
	json_object_object_add(d, "session_id", json_object_new_string(t->id));
	return audit_obj(t->r, "session.revoke", t->uid, d);
}

/* Runs revocation body for id of user uid; its ADM_* or DB_* code. */
static int
revoke(struct req *r, const char *uid, const char *id,
    int (*body)(struct adm_tx *))
{
	struct adm_tx	 t = { .r = r, .uid = uid, .id = id, .body = body };

	return adm_run(&t, NULL);
}

int
admin_revoke_key(struct req *r, const char *uid, const char *kid)
{
	return revoke(r, uid, kid, revoke_key_body);
}

int
admin_revoke_session(struct req *r, const char *uid, const char *sid)
{
	return revoke(r, uid, sid, revoke_session_body);
}

/*
 * Lists payments, newest first, of one user (user_id) or of everyone
 * (NULL).  Returns 0 with the array in *out (owned by the caller), or a
 * DB_* code.
 */
int
admin_payments(struct req *r, const char *user_id, struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*arr, *p;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_payments, &rows, "ss", user_id,
	    user_id)) < 0)
		return rc;
	arr = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		p = json_object_new_object();
		json_object_object_add(p, "id", jstr_or_null(dbv(&rows, i, 0)));
		json_object_object_add(p, "user_id",
		    jstr_or_null(dbv(&rows, i, 1)));
		json_object_object_add(p, "email",
		    jstr_or_null(dbv(&rows, i, 2)));
		json_object_object_add(p, "amount",
		    json_object_new_int64(dbi(&rows, i, 3)));
		json_object_object_add(p, "currency",
		    jstr_or_null(dbv(&rows, i, 4)));
		json_object_object_add(p, "status",
		    jstr_or_null(dbv(&rows, i, 5)));
		json_object_object_add(p, "created_at",
		    jstr_or_null(dbv(&rows, i, 6)));
		json_object_object_add(p, "invoice_url",
		    jstr_or_null(dbv(&rows, i, 7)));
		json_object_array_add(arr, p);
	}
	*out = arr;
	return 0;
}

/* Answers the ADM_* or DB_* code of an admin action that failed. */
static void
reply_adm(struct req *r, int rc)
{
	switch (rc) {
	case ADM_NOT_FOUND:
		reply_error(r, 404, "not_found", "There is no such user.");
		break;
	case ADM_LAST_ADMIN:
		reply_error(r, 409, "last_admin", "This is the last admin: "
		    "make another admin first.");
		break;
	case ADM_NO_PLAN:
		reply_invalid1(r, "plan", "is not a plan");
		break;
	case ADM_FORBIDDEN:
		reply_error(r, 403, "forbidden", "Only an admin may do this.");
		break;
	default:
		reply_db(r, rc);
	}
}

/*
 * The answer {user} for uid after a change, owned by the caller; NULL
 * when it answered already (404 for a user gone, or the database's
 * error).
 */
static struct json_object *
user_answer(struct req *r, const char *uid)
{
	struct json_object	*o, *u = NULL;
	int			 rc;

	if ((rc = admin_user_object(r, uid, &u)) <= 0) {
		reply_adm(r, rc == 0 ? ADM_NOT_FOUND : rc);
		return NULL;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", u);
	return o;
}

/* Answers 200 {user} for uid after a change. */
static void
reply_user(struct req *r, const char *uid)
{
	struct json_object	*o;

	if ((o = user_answer(r, uid)) != NULL)
		reply_json(r, 200, o);
}

/* GET /api/v1/admin/users ?q=&page=: 200 {users, total, page, per_page}. */
void
h_admin_users(struct req *r)
{
	struct json_object	*o;
	int			 rc;

	if ((rc = admin_users_list(r, in_str(r, "q"), in_int(r, "page", 1),
	    &o)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, o);
}

/* GET /api/v1/admin/users/{id}: 200 {user, usage, subscription, credits}; 404. */
void
h_admin_user(struct req *r)
{
	struct json_object	*o = NULL;
	int			 rc;

	if ((rc = admin_user_detail(r, r->params[0], &o)) <= 0) {
		reply_adm(r, rc == 0 ? ADM_NOT_FOUND : rc);
		return;
	}
	reply_json(r, 200, o);
}

/*
 * PATCH /api/v1/admin/users/{id} {plan?, role?, disabled?, totp?}: 200
 * {user}; 404; 409 last_admin; 422 for an unknown plan, a role other than
 * user or admin, or totp: true (an admin can only turn it off).
 */
void
h_admin_user_patch(struct req *r)
{
	struct admin_change	 c;
	const char		*role = in_str(r, "role");
	int			 rc;

	memset(&c, 0, sizeof(c));
	c.disabled = -1;
	if (role != NULL && strcmp(role, "user") != 0 &&
	    strcmp(role, "admin") != 0) {
		reply_invalid1(r, "role", "must be user or admin");
		return;
	}
	if (in_present(r, "totp") && in_bool(r, "totp", false)) {
		reply_invalid1(r, "totp", "can only be turned off (false)");
		return;
	}
	c.role = role;
	c.plan_set = in_present(r, "plan");
	c.plan = in_str(r, "plan");
	if (in_present(r, "disabled"))
		c.disabled = in_bool(r, "disabled", false) ? 1 : 0;
	c.totp_off = in_present(r, "totp");
	if ((rc = admin_update(r, r->params[0], &c)) != ADM_OK) {
		reply_adm(r, rc);
		return;
	}
	log_info("admin_update", " admin=%s user=%s", r->who.user_id,
	    r->params[0]);
	reply_user(r, r->params[0]);
}

/* DELETE /api/v1/admin/users/{id}: 204; 404; 409 last_admin. */
void
h_admin_user_delete(struct req *r)
{
	int	 rc;

	if ((rc = admin_delete(r, r->params[0])) != ADM_OK) {
		reply_adm(r, rc);
		return;
	}
	log_info("admin_delete", " admin=%s user=%s", r->who.user_id,
	    r->params[0]);
	reply_empty(r, 204);
}

/*
 * POST /api/v1/admin/users/{id}/extend-trial {days}: 200 {user, trial:
 * {ends_at, ended}}; 404.
 */
void
h_admin_extend_trial(struct req *r)
{
	struct json_object	*o, *t;
	const char		*ends = NULL;
	int			 rc;

	if ((rc = admin_extend_trial(r, r->params[0], in_int(r, "days", 0),
	    &ends)) != ADM_OK) {
		reply_adm(r, rc);
		return;
	}
	if ((o = user_answer(r, r->params[0])) == NULL)
		return;
	t = json_object_new_object();
	json_object_object_add(t, "ends_at", jstr_or_null(ends));
	json_object_object_add(o, "trial", t);
	reply_json(r, 200, o);
}

/*
 * POST /api/v1/admin/users/{id}/credits {delta, reason}: 200 {delta,
 * applied, credits: {remaining}}; 404; 422.
 */
void
h_admin_credits(struct req *r)
{
	struct json_object	*o, *c;
	long long		 applied = 0, remaining = 0;
	int			 rc;

	if (in_int(r, "delta", 0) == 0) {
		reply_invalid1(r, "delta", "must not be zero");
		return;
	}
	if ((rc = admin_credits(r, r->params[0], in_int(r, "delta", 0),
	    in_str(r, "reason"), &applied, &remaining)) != ADM_OK) {
		reply_adm(r, rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "delta",
	    json_object_new_int64(in_int(r, "delta", 0)));
	json_object_object_add(o, "applied", json_object_new_int64(applied));
	c = json_object_new_object();
	json_object_object_add(c, "remaining", json_object_new_int64(remaining));
	json_object_object_add(o, "credits", c);
	reply_json(r, 200, o);
}

/* GET /api/v1/admin/payments ?user_id=: 200 [payments], newest first. */
void
h_admin_payments(struct req *r)
{
	struct json_object	*o;
	int			 rc;

	if ((rc = admin_payments(r, in_str(r, "user_id"), &o)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, o);
}

/* GET /api/v1/admin/audit ?user_id=: 200 [{at, actor, action, target, detail, address}]. */
void
h_admin_audit(struct req *r)
{
	struct json_object	*o;
	int			 rc;

	if ((rc = audit_list(r, in_str(r, "user_id"), 500, &o)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, o);
}
