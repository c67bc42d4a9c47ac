/*
 * Level meters (contract section 7a): a meter declared `level` holds how
 * much is in use now (running workspaces, stored bytes) rather than a sum
 * per period; its plan limit is "at most N at a time".  Here: the
 * services' PUT /api/v1/usage/levels/{meter}, and `tollgatectl meters
 * list|set`.  The tables are in sql/050-services.sql.
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"

static struct sql q_kind = SQL(
    "SELECT kind FROM meters WHERE name = ?");
static struct sql q_user_limit = SQL(
    "SELECT x.plan, l.period_limit FROM (SELECT u.id, tg_plan(u.id) plan "
    "FROM users u WHERE u.id = ?) x LEFT JOIN plan_limits l ON "
    "l.plan = x.plan AND l.meter = ?");
/* One statement: concurrent sets never interleave; the last stands. */
static struct sql q_level_set = SQL(
    "INSERT INTO usage_levels (user_id, meter, level) VALUES (?, ?, ?) "
    "ON DUPLICATE KEY UPDATE level = VALUES(level), "
    "updated_at = UTC_TIMESTAMP(6)");

/*
 * The kind of meter name ("counter", "level"...) into *kind (in the
 * arena).  Returns 1, 0 for a meter not declared, or a DB_* code.
 */
int
meter_kind(struct req *r, const char *name, const char **kind)
{
	struct dbrows	 row;
	int		 rc;

	*kind = NULL;
	if ((rc = db_select(r->a, &q_kind, &row, "s", name)) <= 0)
		return rc;
	*kind = dbv(&row, 0, 0);
	return 1;
}

/*
 * PUT /api/v1/usage/levels/{meter} {user_id, level} (service keys only):
 * 200 {meter, level, limit} once the user's level of that meter is
 * level (limit: the user's plan's, null when none); 422 for a meter that
 * is not declared a level (tollgatectl meters set NAME kind=level) or an
 * unknown user; 503.  Like a usage event, it records what is: no limit
 * refuses it.
 */
void
h_usage_level_put(struct req *r)
{
	struct outcome		 out = OUTCOME_INIT;
	struct dbrows		 lim;
	const char		*meter = r->params[0], *kind,
				*uid = in_str(r, "user_id");
	long long		 level = in_int(r, "level", 0);
	int			 rc, i;

	if (meter == NULL || valid_slug(meter, strlen(meter)) != NULL) {
		outcome_invalid(&out, "meter", "must be a meter name (a-z, 0-9, "
		    "_)");
		goto out;
	}
	if ((out.rc = rc = meter_kind(r, meter, &kind)) < 0)
		goto out;
	if (rc == 0 || strcmp(kind, "level") != 0) {
		outcome_invalid(&out, "meter", "is not a level meter (tollgatectl "
		    "meters set NAME kind=level)");
		goto out;
	}
	if ((out.rc = rc = db_select(r->a, &q_user_limit, &lim, "ss", uid,
	    meter)) < 0)
		goto out;
	if (rc == 0) {
		outcome_invalid(&out, "user_id", "no such user");
		goto out;
	}
	/* A single statement: retried alone on a deadlock. */
	for (i = 0; i < DB_TX_TRIES; i++)
		if ((rc = db_exec(&q_level_set, "ssi", uid, meter, level)) !=
		    DB_RETRY)
			break;
	if (rc == DB_FAIL) {
		/* The user went between the two statements. */
		outcome_invalid(&out, "user_id", "no such user");
		goto out;
	}
	if ((out.rc = rc) < 0)
		goto out;
	out.status = 200;
	out.body = json_object_new_object();
	json_object_object_add(out.body, "meter",
	    json_object_new_string(meter));
	json_object_object_add(out.body, "level",
	    json_object_new_int64(level));
	json_object_object_add(out.body, "limit", dbv(&lim, 0, 1) ?
	    json_object_new_int64(dbi(&lim, 0, 1)) : NULL);
out:
	reply_outcome(r, &out);
}

/* ------------------------------------------------------------------ */
/* tollgatectl meters list | set                                       */
/* ------------------------------------------------------------------ */

static struct sql q_meters_all = SQL(
    "SELECT name, kind FROM meters ORDER BY name");
static struct sql q_meter_set = SQL(
    "INSERT INTO meters (name, kind) VALUES (?, ?) ON DUPLICATE KEY "
    "UPDATE kind = VALUES(kind), updated_at = UTC_TIMESTAMP(6)");

/* tollgatectl meters list: the declared meters and their kinds. */
int
ctl_meters_list(int argc, char *argv[])
{
	struct arena	*a;
	struct dbrows	 rows;
	size_t		 i;
	int		 rc;

	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: tollgatectl meters list\n");
		return 2;
	}
	a = arena_new();
	if ((rc = db_select(a, &q_meters_all, &rows, "")) < 0) {
		arena_free(a);
		return ctl_db_fail("meters list", rc);
	}
	printf("%-32s %s\n", "NAME", "KIND");
	for (i = 0; i < rows.n; i++)
		printf("%-32s %s\n", dbv(&rows, i, 0), dbv(&rows, i, 1));
	printf("(a meter not listed is a sum per billing period)\n");
	arena_free(a);
	return 0;
}

/*
 * tollgatectl meters set NAME kind=sum|level: declares what a meter
 * holds.  A level's plan limits are set with `plans set PLAN
 * limit.NAME=N`.  The meter credits is always a sum.
 */
int
ctl_meters_set(int argc, char *argv[])
{
	const char	*kind;
	int		 rc;

	if (argc != 2 || valid_slug(argv[0], strlen(argv[0])) != NULL ||
	    strncmp(argv[1], "kind=", 5) != 0 ||
	    (strcmp(argv[1] + 5, "sum") != 0 &&
	    strcmp(argv[1] + 5, "level") != 0)) {
		fprintf(stderr, "usage: tollgatectl meters set NAME "
		    "kind=sum|level\n");
		return 2;
	}
	kind = argv[1] + 5;
	if (strcmp(argv[0], "credits") == 0 && strcmp(kind, "sum") != 0) {
		fprintf(stderr, "tollgatectl: the meter credits is the credit "
		    "balance's and stays a sum\n");
		return 1;
	}
	if ((rc = db_exec(&q_meter_set, "ss", argv[0], kind)) < 0)
		return ctl_db_fail("meters set", rc);
	printf("meter %s: %s\n", argv[0], kind);
	return 0;
}
