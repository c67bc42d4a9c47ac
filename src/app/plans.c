/*
 * Plans (contract section 5): the public list, the words of a quota
 * message, and `tollgatectl plans list|set|delete`.  Plans live in the
 * database (sql/001-plans.sql); the operator edits them with tollgatectl,
 * and every decision reads them fresh, so an edit holds at once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"

static struct sql q_plans = SQL(
    "SELECT p.name, p.price_cents, p.currency, p.rate_per_minute, "
    "p.credits, p.api_keys, p.display_name, p.stripe_price_id, "
    "p.sort_order, p.is_trial FROM plans p ORDER BY p.sort_order, p.name");
static struct sql q_limits = SQL(
    "SELECT plan, meter, period_limit FROM plan_limits ORDER BY plan, meter");
static struct sql q_rates = SQL(
    "SELECT plan, bucket, per_minute FROM plan_rates ORDER BY plan, bucket");

/*
 * The words for a meter in a message: "Compute" for compute_minutes,
 * "API call" for api_calls, "Credit" for credits, "API key" for
 * api_keys, else the meter's name with its first letter in capitals and
 * spaces for underscores.  In the arena.
 */
static const char *
meter_words(struct arena *a, const char *meter)
{
	static const struct { const char *meter, *words; } known[] = {
		{ "compute_minutes", "Compute" },
		{ "api_calls", "API call" },
		{ "credits", "Credit" },
		{ "api_keys", "API key" },
	};
	char	*w;
	size_t	 i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(meter, known[i].meter) == 0)
			return known[i].words;
	w = arena_strdup(a, meter);
	for (i = 0; w[i] != '\0'; i++)
		if (w[i] == '_')
			w[i] = ' ';
	w[0] = (char)toupper((unsigned char)w[0]);
	return w;
}

/*
 * The message of 403 quota_exceeded: "Compute quota exceeded, upgrade to
 * Pro", or without the upgrade when next (the next plan's display name)
 * is NULL.  In the arena.
 */
const char *
quota_message(struct arena *a, const char *meter, const char *next)
{
	if (next == NULL)
		return arena_printf(a, "%s quota exceeded", meter_words(a,
		    meter));
	return arena_printf(a, "%s quota exceeded, upgrade to %s",
	    meter_words(a, meter), next);
}

/*
 * Builds the plans' public objects into a new array (owned by the
 * caller), or returns NULL with *rc set.
 */
static struct json_object *
plans_json(struct arena *a, int *rc)
{
	struct json_object	*arr, *o, *lim, *rates;
	struct dbrows		 p, l, rt;
	size_t			 i, j;

	if ((*rc = db_select(a, &q_plans, &p, "")) < 0 ||
	    (*rc = db_select(a, &q_limits, &l, "")) < 0 ||
	    (*rc = db_select(a, &q_rates, &rt, "")) < 0)
		return NULL;
	arr = json_object_new_array();
	for (i = 0; i < p.n; i++) {
		o = json_object_new_object();
		lim = json_object_new_object();
		json_object_object_add(o, "name",
		    json_object_new_string(dbv(&p, i, 0)));
		json_object_object_add(o, "display_name",
		    json_object_new_string(dbv(&p, i, 6)));
		json_object_object_add(o, "price",
		    json_object_new_int64(dbi(&p, i, 1)));
		json_object_object_add(o, "currency",
		    json_object_new_string(dbv(&p, i, 2)));
		json_object_object_add(o, "rate_per_minute",
		    json_object_new_int64(dbi(&p, i, 3)));
		json_object_object_add(o, "credits",
		    json_object_new_int64(dbi(&p, i, 4)));
		for (j = 0; j < l.n; j++)
			if (strcmp(dbv(&l, j, 0), dbv(&p, i, 0)) == 0)
				json_object_object_add(lim, dbv(&l, j, 1),
				    json_object_new_int64(dbi(&l, j, 2)));
		json_object_object_add(o, "limits", lim);
		/* Rate buckets of their own ($tollgate_bucket). */
		rates = json_object_new_object();
		for (j = 0; j < rt.n; j++)
			if (strcmp(dbv(&rt, j, 0), dbv(&p, i, 0)) == 0)
				json_object_object_add(rates, dbv(&rt, j, 1),
				    json_object_new_int64(dbi(&rt, j, 2)));
		json_object_object_add(o, "rates", rates);
		json_object_object_add(o, "api_keys",
		    json_object_new_int64(dbi(&p, i, 5)));
		json_object_object_add(o, "trial",
		    json_object_new_boolean(dbi(&p, i, 9) != 0));
		json_object_array_add(arr, o);
	}
	return arr;
}

/*
 * The core of GET /api/v1/plans: the plans' public objects.  Returns 0
 * with the array in *out (owned by the caller), or a DB_* code.
 */
int
plans_core(struct req *r, struct json_object **out)
{
	int	 rc;

	if ((*out = plans_json(r->a, &rc)) == NULL)
		return rc;
	return 0;
}

/* GET /api/v1/plans (public): 200 [{name, price, currency, ...}]; 503. */
void
h_plans(struct req *r)
{
	struct json_object	*arr;
	int			 rc;

	if ((rc = plans_core(r, &arr)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, arr);
}

/* ------------------------------------------------------------------ */
/* tollgatectl plans list | set | delete                               */
/* ------------------------------------------------------------------ */

/*
 * tollgatectl plans list [--json]: one line per plan with its meters'
 * limits; with --json an array of {name, display_name, price, currency,
 * rate_per_minute, credits, api_keys, sort_order, stripe_price_id, trial,
 * limits: {meter: n}}.
 */
int
ctl_plans_list(int argc, char *argv[])
{
	struct arena	*a = arena_new();
	struct dbrows	 p, l, rt;
	size_t		 i, j;
	bool		 json = ctl_take_json(&argc, argv);
	int		 rc;

	if (argc != 0) {
		fprintf(stderr, "usage: tollgatectl plans list [--json]\n");
		arena_free(a);
		return 2;
	}
	if ((rc = db_select(a, &q_plans, &p, "")) < 0 ||
	    (rc = db_select(a, &q_limits, &l, "")) < 0 ||
	    (rc = db_select(a, &q_rates, &rt, "")) < 0) {
		arena_free(a);
		return ctl_db_fail("plans list", rc);
	}
	if (json) {
		struct json_object *arr = json_object_new_array(), *o, *lim;
		static const int num[] = { 1, 3, 4, 5, 8 };
		static const char *const names[] = { "price",
		    "rate_per_minute", "credits", "api_keys", "sort_order" };

		for (i = 0; i < p.n; i++) {
			o = json_object_new_object();
			json_object_object_add(o, "name",
			    json_object_new_string(dbv(&p, i, 0)));
			json_object_object_add(o, "display_name",
			    json_object_new_string(dbv(&p, i, 6)));
			json_object_object_add(o, "currency",
			    json_object_new_string(dbv(&p, i, 2)));
			for (j = 0; j < sizeof(num) / sizeof(num[0]); j++)
				json_object_object_add(o, names[j],
				    dbv(&p, i, (size_t)num[j]) == NULL ? NULL :
				    json_object_new_int64(dbi(&p, i,
				    (size_t)num[j])));
			json_object_object_add(o, "stripe_price_id",
			    dbv(&p, i, 7) == NULL ? NULL :
			    json_object_new_string(dbv(&p, i, 7)));
			json_object_object_add(o, "trial",
			    json_object_new_boolean(dbi(&p, i, 9) != 0));
			lim = json_object_new_object();
			for (j = 0; j < l.n; j++)
				if (strcmp(dbv(&l, j, 0), dbv(&p, i, 0)) == 0)
					json_object_object_add(lim, dbv(&l, j,
					    1), dbv(&l, j, 2) == NULL ? NULL :
					    json_object_new_int64(dbi(&l, j, 2)));
			json_object_object_add(o, "limits", lim);
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
		arena_free(a);
		return 0;
	}
	printf("%-12s %-12s %8s %-4s %6s %8s %5s %5s  %s\n", "NAME", "DISPLAY",
	    "PRICE", "CUR", "RATE", "CREDITS", "KEYS", "ORDER", "LIMITS");
	for (i = 0; i < p.n; i++) {
		printf("%-12s %-12s %8s %-4s %6s %8s %5s %5s ", dbv(&p, i, 0),
		    dbv(&p, i, 6), dbv(&p, i, 1), dbv(&p, i, 2), dbv(&p, i, 3),
		    dbv(&p, i, 4), dbv(&p, i, 5), dbv(&p, i, 8));
		for (j = 0; j < l.n; j++)
			if (strcmp(dbv(&l, j, 0), dbv(&p, i, 0)) == 0)
				printf(" %s=%s", dbv(&l, j, 1), dbv(&l, j, 2));
		for (j = 0; j < rt.n; j++)
			if (strcmp(dbv(&rt, j, 0), dbv(&p, i, 0)) == 0)
				printf(" rate.%s=%s", dbv(&rt, j, 1),
				    dbv(&rt, j, 2));
		if (dbv(&p, i, 7) != NULL)
			printf(" stripe_price_id=%s", dbv(&p, i, 7));
		printf("%s\n", dbi(&p, i, 9) ? " (trial)" : "");
	}
	arena_free(a);
	return 0;
}

static struct sql q_plan_make = SQL(
    "INSERT IGNORE INTO plans (name, display_name, rate_per_minute, "
    "api_keys, sort_order) VALUES (?, ?, 0, 0, "
    "(SELECT COALESCE(MAX(sort_order), 0) + 10 FROM plans x))");
static struct sql q_plan_display = SQL(
    "UPDATE plans SET display_name = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_price = SQL(
    "UPDATE plans SET price_cents = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_currency = SQL(
    "UPDATE plans SET currency = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_rate = SQL(
    "UPDATE plans SET rate_per_minute = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_credits = SQL(
    "UPDATE plans SET credits = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_keys = SQL(
    "UPDATE plans SET api_keys = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_order = SQL(
    "UPDATE plans SET sort_order = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_plan_stripe = SQL(
    "UPDATE plans SET stripe_price_id = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE name = ?");
static struct sql q_limit_set = SQL(
    "INSERT INTO plan_limits (plan, meter, period_limit) VALUES (?, ?, ?) "
    "ON DUPLICATE KEY UPDATE period_limit = VALUES(period_limit)");
static struct sql q_limit_del = SQL(
    "DELETE FROM plan_limits WHERE plan = ? AND meter = ?");
static struct sql q_rate_set = SQL(
    "INSERT INTO plan_rates (plan, bucket, per_minute) VALUES (?, ?, ?) "
    "ON DUPLICATE KEY UPDATE per_minute = VALUES(per_minute)");
static struct sql q_rate_del = SQL(
    "DELETE FROM plan_rates WHERE plan = ? AND bucket = ?");
static struct sql q_plan_exists = SQL(
    "SELECT 1 FROM plans WHERE name = ?");
static struct sql q_plan_delete = SQL(
    "DELETE FROM plans WHERE name = ? AND is_trial = 0");

/* Parses a non-negative integer.  Returns false when it is not one. */
static bool
ctl_number(const char *s, long long *out)
{
	char	*end;

	if (*s == '\0' || !isdigit((unsigned char)*s))
		return false;
	*out = strtoll(s, &end, 10);
	return *end == '\0' && *out >= 0 && *out < (1LL << 53);
}

/*
 * Applies one KEY=VALUE of `plans set` to plan.  Returns 0, 2 for bad
 * usage, or a DB_* code.
 */
static int
ctl_plan_field(const char *plan, const char *kv)
{
	const char	*eq = strchr(kv, '='), *v;
	struct sql	*q = NULL;
	char		 key[80];
	long long	 n = 0;
	bool		 num = true;

	if (eq == NULL || (size_t)(eq - kv) >= sizeof(key))
		return 2;
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	v = eq + 1;
	if (strncmp(key, "limit.", 6) == 0) {
		if (valid_slug(key + 6, strlen(key + 6)) != NULL)
			return 2;
		if (strcmp(v, "-") == 0)
			return db_exec(&q_limit_del, "ss", plan, key + 6);
		if (!ctl_number(v, &n))
			return 2;
		return db_exec(&q_limit_set, "ssi", plan, key + 6, n);
	}
	if (strncmp(key, "rate.", 5) == 0) {
		/* A rate bucket of its own ($tollgate_bucket NAME). */
		if (valid_slug(key + 5, strlen(key + 5)) != NULL)
			return 2;
		if (strcmp(v, "-") == 0)
			return db_exec(&q_rate_del, "ss", plan, key + 5);
		if (!ctl_number(v, &n) || n > 2147483647LL)
			return 2;
		return db_exec(&q_rate_set, "ssi", plan, key + 5, n);
	}
	if (strcmp(key, "display_name") == 0) {
		q = &q_plan_display;
		num = false;
		if (valid_utf8_text(v, strlen(v), 128) != NULL || *v == '\0')
			return 2;
	} else if (strcmp(key, "currency") == 0) {
		q = &q_plan_currency;
		num = false;
		if (strlen(v) != 3)
			return 2;
	} else if (strcmp(key, "stripe_price_id") == 0) {
		q = &q_plan_stripe;
		num = false;
		if (strcmp(v, "-") == 0)
			v = NULL;
		else if (valid_utf8_text(v, strlen(v), 255) != NULL)
			return 2;
	} else if (strcmp(key, "price") == 0)
		q = &q_plan_price;
	else if (strcmp(key, "rate_per_minute") == 0)
		q = &q_plan_rate;
	else if (strcmp(key, "credits") == 0)
		q = &q_plan_credits;
	else if (strcmp(key, "api_keys") == 0)
		q = &q_plan_keys;
	else if (strcmp(key, "sort_order") == 0)
		q = &q_plan_order;
	else
		return 2;
	if (!num)
		return db_exec(q, "ss", v, plan);
	if (!ctl_number(v, &n) || ((q == &q_plan_rate || q == &q_plan_keys ||
	    q == &q_plan_order) && n > 2147483647LL))
		return 2;
	if (q == &q_plan_credits) {
		/* The credits meter's limit repeats plans.credits. */
		int rc = db_exec(&q_limit_set, "ssi", plan, "credits", n);

		if (rc < 0)
			return rc;
	}
	return db_exec(q, "is", n, plan);
}

/* A change of the plans, run by db_tx_run (maybe more than once). */
struct plans_tx {
	struct req	*r;
	int		 argc;
	char		**argv;
	const char	*bad;		/* set: the argument refused */
	bool		 created;
};

static int
plans_set_body(void *v)
{
	struct plans_tx	*t = v;
	struct arena	*a = t->r->a;
	const char	*what = "";
	int		 i, rc;

	for (i = 1; i < t->argc; i++)
		what = arena_printf(a, "%s%s%s", what, i > 1 ? " " : "",
		    t->argv[i]);
	if ((rc = db_exec(&q_plan_make, "ss", t->argv[0], t->argv[0])) < 0)
		return rc;
	t->created = rc == 1;
	for (i = 1; i < t->argc; i++) {
		if ((rc = ctl_plan_field(t->argv[0], t->argv[i])) == 2) {
			t->bad = t->argv[i];
			return DB_ABORT;
		}
		if (rc < 0)
			return rc;
	}
	/* The audit trail names the plan and what was set. */
	return audit(t->r, "plan.set", NULL, arena_printf(a, "%s %s",
	    t->argv[0], what));
}

static int
plans_delete_body(void *v)
{
	struct plans_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_plan_delete, "s", t->argv[0])) <= 0)
		return rc < 0 ? rc : DB_ABORT;
	return audit(t->r, "plan.delete", NULL, t->argv[0]);
}

/*
 * Runs body over argv (argv[0] the plan) in one transaction, audited as
 * the operator's.  Returns what db_tx_run returns; *t says the rest.
 */
static int
plans_run(int (*body)(void *), int argc, char *argv[], struct plans_tx *t)
{
	struct arena	*a = arena_new();
	struct req	 r;
	int		 rc;

	ctl_local_req(&r, a);
	memset(t, 0, sizeof(*t));
	t->r = &r;
	t->argc = argc;
	t->argv = argv;
	rc = db_tx_run(body, NULL, t, DB_TX_TRIES);
	t->r = NULL;
	arena_free(a);
	return rc;
}

/*
 * tollgatectl plans set NAME KEY=VALUE...: makes the plan when it does
 * not exist and sets each value, all in one transaction.  Keys:
 * display_name, price (smallest currency unit), currency,
 * rate_per_minute, credits, api_keys, sort_order, stripe_price_id ("-"
 * for none), limit.METER (a number, or "-" for no limit; for a level
 * meter, the most in use at a time), rate.BUCKET (checks per minute in
 * that rate bucket, or "-" for the plan's rate_per_minute).
 */
int
ctl_plans_set(int argc, char *argv[])
{
	struct plans_tx	 t;
	int		 rc;

	if (argc < 1 || valid_slug(argv[0], strlen(argv[0])) != NULL) {
		fprintf(stderr, "usage: tollgatectl plans set NAME "
		    "[display_name=S] [price=N] [currency=usd] "
		    "[rate_per_minute=N] [credits=N] [api_keys=N] "
		    "[sort_order=N] [stripe_price_id=S|-] "
		    "[limit.METER=N|-]... [rate.BUCKET=N|-]...\n");
		return 2;
	}
	if ((rc = plans_run(plans_set_body, argc, argv, &t)) == DB_ABORT) {
		fprintf(stderr, "tollgatectl: plans set: bad value %s\n",
		    t.bad);
		return 2;
	}
	if (rc < 0)
		return ctl_db_fail("plans set", rc);
	if (t.created)
		printf("created plan %s\n", argv[0]);
	printf("plan %s saved\n", argv[0]);
	return 0;
}

/*
 * tollgatectl plans delete NAME: removes a plan (never the trial); users
 * whose admin set it fall back to their other plan.
 */
int
ctl_plans_delete(int argc, char *argv[])
{
	struct plans_tx	 t;
	struct arena	*a;
	struct dbrows	 row;
	int		 rc;

	if (argc != 1 || valid_slug(argv[0], strlen(argv[0])) != NULL) {
		fprintf(stderr, "usage: tollgatectl plans delete NAME\n");
		return 2;
	}
	a = arena_new();
	rc = db_select(a, &q_plan_exists, &row, "s", argv[0]);
	arena_free(a);
	if (rc < 0)
		return ctl_db_fail("plans delete", rc);
	if (rc == 0) {
		fprintf(stderr, "tollgatectl: no plan %s\n", argv[0]);
		return 1;
	}
	if ((rc = plans_run(plans_delete_body, argc, argv, &t)) == DB_ABORT) {
		fprintf(stderr, "tollgatectl: the trial plan cannot be "
		    "deleted\n");
		return 1;
	}
	if (rc < 0)
		return ctl_db_fail("plans delete", rc);
	printf("plan %s deleted\n", argv[0]);
	return 0;
}
