/*
 * Decisions for services (contract section 7a): POST /api/v1/check asks,
 * with a service key, the gate's own decision for a credential the user
 * gave the service (a JWT or an API key) or for a bare user id, on any
 * meter at any cost.
 *
 * The decision is the gate's: eng_decide (src/engine/decide.c), in the
 * same order and from the same shared state, after the same barrier (an
 * engine epoch that began after this request arrived, so every change
 * committed before it is seen), and an allowed check is answered only
 * once what it counted is committed.  A denial is 200 with allowed:
 * false and the code and message the gate would have answered; only a
 * bad service key is 401 (auth.c).
 *
 * Idempotency: a request with an idempotency_key first claims its row in
 * check_requests (sql/070-check.sql), decides, then stores its answer;
 * the same key from the same service key within 24 hours gets that
 * answer again and counts nothing, and a concurrent duplicate waits for
 * the claimer's answer.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app/app.h"

#define DUP_WAIT	10.0	/* seconds a duplicate waits for the first */

/* A claim's row made 24 h ago, or left unanswered for a minute, is void. */
static struct sql q_idem_void = SQL(
    "DELETE FROM check_requests WHERE service_key_id = ? AND "
    "idempotency_key = ? AND (created_at < UTC_TIMESTAMP(6) - "
    CHECK_ANSWER_LIFE " OR (answer IS NULL AND created_at < "
    "UTC_TIMESTAMP(6) - INTERVAL 60 SECOND))");
static struct sql q_idem_claim = SQL(
    "INSERT IGNORE INTO check_requests (service_key_id, idempotency_key) "
    "VALUES (?, ?)");
static struct sql q_idem_get = SQL(
    "SELECT answer FROM check_requests WHERE service_key_id = ? AND "
    "idempotency_key = ?");
static struct sql q_idem_put = SQL(
    "UPDATE check_requests SET answer = ? WHERE service_key_id = ? AND "
    "idempotency_key = ?");
static struct sql q_idem_drop = SQL(
    "DELETE FROM check_requests WHERE service_key_id = ? AND "
    "idempotency_key = ? AND answer IS NULL");
/*
 * The meter's use (committed; a level meter: its level now) and the
 * plan's limit on it, for the answer's meter object.
 */
static struct sql q_meter = SQL(
    "SELECT IF(EXISTS (SELECT 1 FROM meters m WHERE m.name = ? AND "
    "m.kind = 'level'), COALESCE((SELECT v.level FROM usage_levels v "
    "WHERE v.user_id = x.id AND v.meter = ?), 0), "
    "COALESCE((SELECT c.used FROM usage_counters c WHERE "
    "c.user_id = x.id AND c.meter = ? AND c.period_start = "
    "tg_period_start(x.id, x.plan)), 0)), "
    "(SELECT l.period_limit FROM plan_limits l WHERE l.plan = x.plan AND "
    "l.meter = ?) "
    "FROM (SELECT u.id, tg_plan(u.id) plan FROM users u WHERE u.id = ?) x");

/* Sleeps a fifth of a millisecond. */
static void
nap(void)
{
	struct timespec	 ts = { 0, 200000 };

	nanosleep(&ts, NULL);
}

/*
 * Decides chk as a gate check would: the gate's barrier (blocking here,
 * where the gate workers park the connection), the decision, a new try
 * after a recall, then the COMMIT of what it counted.  Fills v (status
 * 503 when the engine or the database cannot answer).
 */
static void
decide(struct req *r, struct eng_check *chk, struct eng_verdict *v)
{
	struct eng_barrier	 bar = { 0, 0, 0 };
	int			 rc;

	do {
		eng_barrier_set(&bar);
		while ((rc = eng_barrier_state(&bar)) == 0) {
			eng_wake_engine();
			nap();
		}
		if (rc < 0) {
			memset(v, 0, sizeof(*v));
			v->status = 503, v->code = "unavailable";
			return;
		}
		eng_decide(r->a, chk, v);
	} while (v->retry);
	if (eng_lost(chk, v)) {
		/* The journal is full: the database is away. */
		v->status = 503, v->code = "unavailable";
		return;
	}
	/*
	 * A service acts on the answer at once (and may read the usage
	 * back): it is given only after its records are committed, whatever
	 * [server] gate_wait_commit says.
	 */
	if (v->wait_seq != 0 && !eng_journal_wait(v->wait_seq,
	    ENG_COMMIT_WAIT))
		v->status = 503, v->code = "unavailable";
}

/* A JSON integer, or null when known is false. */
static struct json_object *
int_or_null(bool known, long long n)
{
	return known ? json_object_new_int64(n) : NULL;
}

/*
 * Builds the answer for verdict v on meter (owned by the caller).
 * Returns NULL with *rc set when the meter's figures cannot be read.
 */
static struct json_object *
answer(struct req *r, const struct eng_verdict *v, const char *meter,
    int *rc)
{
	struct json_object	*o, *m, *rt;
	struct dbrows		 row;
	bool			 known = v->uid != NULL, allowed;
	bool			 has_used = false, has_limit = false;
	long long		 used = 0, limit = 0, remaining = 0;

	allowed = v->status == 204;
	if (known) {
		if ((*rc = db_select(r->a, &q_meter, &row, "sssss", meter,
		    meter, meter, meter, v->uid)) < 0)
			return NULL;
		if (*rc == 1) {
			has_used = true;
			used = dbi(&row, 0, 0);
			if (dbv(&row, 0, 1) != NULL &&
			    strcmp(meter, "credits") != 0) {
				has_limit = true;
				limit = dbi(&row, 0, 1);
				remaining = limit > used ? limit - used : 0;
			}
		}
		if (v->m_limited) {
			/* The engine's figures count every host's use. */
			has_limit = true;
			limit = v->m_limit;
			remaining = v->m_remaining;
		}
	}
	o = json_object_new_object();
	json_object_object_add(o, "allowed", json_object_new_boolean(allowed));
	json_object_object_add(o, "code", allowed ? NULL :
	    json_object_new_string(v->code));
	json_object_object_add(o, "message", allowed ? NULL :
	    json_object_new_string(deny_message(r->a, v->code, meter, v->next,
	    NULL)));
	json_object_object_add(o, "user_id", known ?
	    json_object_new_string(v->uid) : NULL);
	json_object_object_add(o, "plan", jstr_or_null(v->plan));
	json_object_object_add(o, "role", known && v->role != NULL ?
	    json_object_new_string(v->role) : NULL);
	json_object_object_add(o, "credits_remaining",
	    int_or_null(known && v->plan != NULL, v->credits));
	m = json_object_new_object();
	json_object_object_add(m, "name", json_object_new_string(meter));
	json_object_object_add(m, "used", int_or_null(has_used, used));
	json_object_object_add(m, "limit", int_or_null(has_limit, limit));
	if (strcmp(meter, "credits") == 0)
		json_object_object_add(m, "remaining",
		    int_or_null(known && v->plan != NULL, v->credits));
	else
		json_object_object_add(m, "remaining",
		    int_or_null(has_limit, remaining));
	json_object_object_add(o, "meter", m);
	rt = json_object_new_object();
	json_object_object_add(rt, "limit", json_object_new_int64(v->rate));
	json_object_object_add(rt, "remaining",
	    json_object_new_int64(v->remaining));
	json_object_object_add(rt, "reset", json_object_new_int64(v->reset));
	json_object_object_add(o, "rate", rt);
	return o;
}

/*
 * Claims the idempotency key for this service key.  Returns 1 when this
 * request decides, 0 when an answer was given before (*out: its JSON
 * text, in the arena), or a DB_* code (DB_DOWN also when a duplicate's
 * first request did not answer in time).
 */
static int
claim(struct req *r, const char *key, const char **out)
{
	struct timespec	 ts = { 0, 5000000 };
	struct dbrows	 row;
	double		 t0 = eng_now();
	int		 rc;

	if ((rc = db_exec(&q_idem_void, "ss", r->who.key_id, key)) < 0)
		return rc;
	for (;;) {
		if ((rc = db_exec(&q_idem_claim, "ss", r->who.key_id,
		    key)) < 0)
			return rc;
		if (rc == 1)
			return 1;
		/* Another request has it: wait for its answer. */
		if ((rc = db_select(r->a, &q_idem_get, &row, "ss",
		    r->who.key_id, key)) < 0)
			return rc;
		if (rc == 1 && dbv(&row, 0, 0) != NULL) {
			*out = dbv(&row, 0, 0);
			return 0;
		}
		/* rc == 0: its decision failed; claim it again. */
		if (eng_now() - t0 > DUP_WAIT)
			return DB_DOWN;
		if (rc == 1)
			nanosleep(&ts, NULL);
	}
}

/*
 * POST /api/v1/check (service keys only): 200 {allowed, code, message,
 * user_id, plan, role, credits_remaining, meter: {name, used, limit,
 * remaining}, rate: {limit, remaining, reset}}, a denial included;
 * 422 without exactly one of credential and user_id; 503 when the
 * engine or the database cannot decide (nothing was counted).
 */
void
h_check(struct req *r)
{
	struct outcome		 out = OUTCOME_INIT;
	struct eng_check	 chk;
	struct eng_verdict	 v;
	const char		*cred = in_str(r, "credential"),
				*uid = in_str(r, "user_id"),
				*meter = in_str(r, "meter"),
				*key = in_str(r, "idempotency_key"),
				*sid, *juid, *prior = NULL;
	bool			 claimed = false, counted = false;
	int			 rc = DB_FAIL;

	if ((cred == NULL) == (uid == NULL)) {
		outcome_invalid(&out, cred == NULL ? "credential" : "user_id",
		    "give either a credential or a user_id");
		goto out;
	}
	/* A credential as the user sent it: "Bearer " is not part of it. */
	if (cred != NULL && strncasecmp(cred, "Bearer ", 7) == 0)
		for (cred += 7; *cred == ' '; cred++)
			continue;
	if (meter == NULL)
		meter = "api_calls";
	memset(&chk, 0, sizeof(chk));
	memset(&v, 0, sizeof(v));
	chk.meter = meter;
	chk.cost = in_int(r, "cost", 1);
	chk.dry = in_bool(r, "dry_run", false);
	chk.bucket = in_str(r, "bucket");
	if (eng == NULL) {
		rc = DB_DOWN;
		goto dberr;
	}
	if (key != NULL && !chk.dry) {
		if ((rc = claim(r, key, &prior)) < 0)
			goto dberr;
		if (rc == 0) {
			/* The answer the first request with this key got. */
			if ((out.body = json_tokener_parse(prior)) == NULL) {
				rc = DB_FAIL;
				goto dberr;
			}
			out.status = 200;
			goto out;
		}
		claimed = true;
	}

	v.reset = 60;
	if (uid != NULL) {
		chk.kind = 'u';
		chk.a = uid;
		chk.b = "";
	} else if (strncmp(cred, "tgk_", 4) == 0) {
		hash_rekey(r, HASHED_API_KEY, cred);
		chk.kind = 'k';
		chk.a = token_hash(r->a, cred);
		chk.b = "";
	} else if (strncmp(cred, "tgs_", 4) == 0) {
		v.status = 401, v.code = "unauthenticated";
	} else if ((rc = jwt_check(r->a, cred, &juid, &sid)) == JWT_BAD &&
	    trust_verdict(r, cred, &juid, &v.status, &v.code)) {
		/* A [trust NAME] issuer's token (trust.c): its user's. */
		if (juid != NULL) {
			chk.kind = 'u';
			chk.a = juid;
			chk.b = "";
		}
	} else if (rc != JWT_OK) {
		v.status = 401;
		v.code = rc == JWT_EXPIRED ? "token_expired" :
		    "unauthenticated";
	} else {
		chk.kind = 'j';
		chk.a = sid;
		chk.b = juid;
	}
	if (chk.kind != 0)
		decide(r, &chk, &v);
	/* The mail that a meter reached 80 or 100 %, as the gate sends. */
	if (v.status == 204 && v.notice != 0)
		usage_notice(r, v.uid, meter, v.period_start, v.notice, v.used,
		    v.limit);
	/*
	 * Once something was counted (a journal record, a level raised),
	 * a failure keeps the claim: unanswered, it is void after a minute,
	 * and until then a retry cannot count twice.
	 */
	counted = v.wait_seq != 0 || v.in_db;
	if (v.status == 503) {
		rc = DB_DOWN;
		goto dberr;
	}
	if ((out.body = answer(r, &v, meter, &rc)) == NULL)
		goto dberr;
	if (claimed && (rc = db_exec(&q_idem_put, "sss",
	    json_object_to_json_string_ext(out.body, JSON_C_TO_STRING_PLAIN),
	    r->who.key_id, key)) < 0)
		goto dberr;
	out.status = 200;
	goto out;
dberr:
	/* Nothing was counted: the next try decides afresh. */
	if (claimed && !counted)
		db_exec(&q_idem_drop, "ss", r->who.key_id, key);
	out.rc = rc;
out:
	reply_outcome(r, &out);
}
