/*
 * The gate: /_tollgate/check, the target of nginx's auth_request for the
 * upstreams the operator protects (contract section 7).
 *
 * The credential is read here without the database: a JWT's signature
 * and times are checked in process, an API key or session cookie is
 * hashed.  Everything else (the session not revoked, the account there
 * and not disabled, the plan, the rate window, the meter's quota and the
 * credits) is decided by one CALL of the stored procedure tg_gate
 * (sql/020-gate.sql), one database round trip.
 *
 * nginx's auth_request passes only 401 and 403 from here to the client,
 * so a denial answers nginx 401 or 403 and carries the real status and
 * the contract's JSON body in X-Tollgate-Status and X-Tollgate-Error;
 * nginx/tollgate-gate.conf picks them up with auth_request_set and its
 * error_page renders them, with the X-RateLimit-* headers, without
 * asking tollgate again.  An allowed check answers 204 with
 * X-Tollgate-User-Id, X-Tollgate-Plan and X-Tollgate-Credits-Remaining
 * for the upstream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"

#define MAX_COST	1000000000LL
#define TRIES		3

static struct sql q_gate = SQL("CALL tg_gate(?, ?, ?, ?, ?, ?)");

/* The result columns of tg_gate. */
enum {
	G_STATUS, G_CODE, G_UID, G_PLAN, G_CREDITS, G_RATE, G_REMAINING,
	G_RESET, G_NEXT, G_NOTICE, G_PERIOD, G_USED, G_LIMIT
};

/*
 * The message a client is told with a denial's code, for the gate
 * workers, h_gate and POST /api/v1/check alike.  Static or in a.
 */
const char *
deny_message(struct arena *a, const char *code, const char *meter,
    const char *next, const char *role)
{
	if (strcmp(code, "unauthenticated") == 0)
		return "The credential is missing or not valid.";
	if (strcmp(code, "token_expired") == 0)
		return "The credential has expired.";
	if (strcmp(code, "account_disabled") == 0)
		return "This account has been disabled.";
	if (strcmp(code, "rate_limited") == 0)
		return "Too many requests. Please slow down and try again "
		    "later.";
	if (strcmp(code, "email_not_verified") == 0)
		return "Verify your email address first.";
	if (strcmp(code, "subscription_required") == 0)
		return "Your trial has ended. Please subscribe to continue.";
	if (strcmp(code, "trial_credits_exhausted") == 0)
		return "Trial credits exhausted. Please upgrade to continue.";
	if (strcmp(code, "quota_exceeded") == 0)
		return quota_message(a, meter != NULL ? meter : "api_calls",
		    next);
	if (strcmp(code, "forbidden") == 0 && role != NULL)
		return arena_printf(a, "Only an %s may use this.", role);
	if (strcmp(code, "forbidden") == 0)
		return "A session cookie counts only on same-origin requests.";
	if (strcmp(code, "bad_request") == 0)
		return "The path is not in its plain form (an encoded slash or "
		    "dot, a dot segment, a doubled slash or a \";\"): send it "
		    "as the service should act on it.";
	return "The service is briefly unavailable. Please try again in a "
	    "few seconds.";
}

/* Adds the X-RateLimit-* headers; a NULL limit (no plan) gives zeros. */
static void
gate_rl(struct req *r, const char *limit, const char *remaining,
    const char *reset)
{
	reply_header(r, "X-RateLimit-Limit", limit ? limit : "0");
	reply_header(r, "X-RateLimit-Remaining", remaining ? remaining : "0");
	reply_header(r, "X-RateLimit-Reset", reset ? reset : "0");
}

/*
 * Denies: the real status, code and body travel in headers, and nginx
 * hears 401 (for a 401) or 403 (for everything else).
 */
static void
gate_deny(struct req *r, int status, const char *code, const char *message,
    const char *meter)
{
	struct json_object	*o = json_object_new_object(),
				*e = json_object_new_object();
	char			 st[8];

	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	if (meter != NULL)
		json_object_object_add(e, "meter",
		    json_object_new_string(meter));
	json_object_object_add(o, "error", e);
	snprintf(st, sizeof(st), "%d", status);
	reply_header(r, "X-Tollgate-Status", st);
	reply_header(r, "X-Tollgate-Error", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	if (status == 401)
		reply_header(r, "WWW-Authenticate", "Bearer");
	metrics_gate(code);
	reply_empty(r, status == 401 ? 401 : 403);
}

/* Denies before any database work (no rate window is known). */
static void
gate_deny_early(struct req *r, int status, const char *code)
{
	gate_rl(r, NULL, NULL, NULL);
	gate_deny(r, status, code, deny_message(r->a, code, NULL, NULL,
	    NULL), NULL);
}

/* Answers a database failure: 503 unavailable with Retry-After. */
static void
gate_db_down(struct req *r)
{
	gate_rl(r, NULL, NULL, NULL);
	reply_header(r, "Retry-After", "5");
	gate_deny(r, 503, "unavailable", deny_message(r->a,
	    "unavailable", NULL, NULL, NULL), NULL);
}

/*
 * The location's meter and cost (TOLLGATE_METER, TOLLGATE_COST); by
 * default api_calls at 1.  Returns false when either is malformed.
 */
static bool
gate_meter(struct req *r, const char **meter, long long *cost)
{
	const char	*m = req_env(r, "TOLLGATE_METER");
	const char	*c = req_env(r, "TOLLGATE_COST");
	char		*end;

	*meter = m != NULL && *m != '\0' ? m : "api_calls";
	*cost = 1;
	if (valid_slug(*meter, strlen(*meter)) != NULL)
		return false;
	if (c != NULL && *c != '\0') {
		*cost = strtoll(c, &end, 10);
		if (*end != '\0' || *cost < 0 || *cost > MAX_COST)
			return false;
	}
	return true;
}

/*
 * True when nginx's normalised URI holds no dot segment or "//" (the
 * gate's location passes $uri; nothing passed counts as normal).
 */
bool
gate_uri_normal(const char *u)
{
	size_t	 n;

	if (u == NULL || *u == '\0')
		return true;	/* the location did not pass it */
	if (*u != '/' || strstr(u, "//") != NULL)
		return false;
	for (; *u != '\0'; u += n) {
		u++;
		n = strcspn(u, "/");
		if ((n == 1 && u[0] == '.') || (n == 2 && u[0] == '.' &&
		    u[1] == '.'))
			return false;
	}
	return true;
}

/*
 * /_tollgate/check (any method; only through the internal location,
 * which sets TOLLGATE_GATE): 204 allowed with the X-Tollgate-* headers;
 * otherwise nginx hears 401 or 403 and the client gets 401 unauthenticated
 * or token_expired, 402 subscription_required, 403 forbidden,
 * account_disabled, email_not_verified, quota_exceeded or
 * trial_credits_exhausted, 429 rate_limited, or 503 unavailable.
 */
void
h_gate(struct req *r)
{
	struct dbrows	 row;
	const char	*cred, *meter, *cookie, *a = NULL, *b = "", *code;
	const char	*uid, *sid, *kind, *uri;
	long long	 cost;
	bool		 present;
	int		 rc = DB_FAIL, status, i;

	if (req_env(r, "TOLLGATE_GATE") == NULL) {
		reply_error(r, 404, "not_found", "There is nothing here.");
		return;
	}
	uri = req_env(r, "TOLLGATE_URI");
	if (!gate_meter(r, &meter, &cost) || !gate_uri_normal(uri)) {
		log_err("gate_config", " meter=\"%s\" uri=\"%s\"", meter,
		    uri != NULL ? uri : "");
		gate_rl(r, NULL, NULL, NULL);
		gate_deny(r, 403, "forbidden", "This location is not set up "
		    "for the gate.", NULL);
		return;
	}
	cred = bearer_of(r, &present);
	if (present && cred == NULL) {
		gate_deny_early(r, 401, "unauthenticated");
		return;
	}
	if (cred != NULL && strncmp(cred, "tgk_", 4) == 0) {
		kind = "k";
		hash_rekey(r, HASHED_API_KEY, cred);
		a = token_hash(r->a, cred);
	} else if (cred != NULL && strncmp(cred, "tgs_", 4) == 0) {
		gate_deny_early(r, 401, "unauthenticated");
		return;
	} else if (cred != NULL) {
		rc = jwt_check(r->a, cred, &uid, &sid);
		if (rc != JWT_OK) {
			gate_deny_early(r, 401, rc == JWT_EXPIRED ?
			    "token_expired" : "unauthenticated");
			return;
		}
		kind = "j";
		a = sid;
		b = uid;
	} else {
		cookie = kv_get(&r->cookies, SESSION_COOKIE);
		if (cookie == NULL || valid_token(cookie, strlen(cookie))) {
			gate_deny_early(r, 401, "unauthenticated");
			return;
		}
		if (!same_origin(r)) {
			gate_deny_early(r, 403, "forbidden");
			return;
		}
		kind = "c";
		hash_rekey(r, HASHED_COOKIE, cookie);
		a = token_hash(r->a, cookie);
	}

	/*
	 * The upstream gets the raw path: it must be the one decided on
	 * here (no ..%2F, ..;, // or encoded dots), else 400 (section 7).
	 * Checked before anything is counted or spent, after the checks
	 * that need no database (a request without a credential is 401).
	 */
	if (!raw_path_agrees(req_env(r, "TOLLGATE_RAW_URI"), uri)) {
		gate_rl(r, NULL, NULL, NULL);
		gate_deny(r, 400, "bad_request", deny_message(r->a,
		    "bad_request", NULL, NULL, NULL), NULL);
		return;
	}
	for (i = 0; i < TRIES; i++)
		if ((rc = db_select(r->a, &q_gate, &row, "ssssii", kind, a, b,
		    meter, cost, (long long)cfg.trial_credits)) != DB_RETRY)
			break;
	if (rc != 1) {
		if (rc >= 0)
			log_err("gate_result", " rows=%d", rc);
		gate_db_down(r);
		return;
	}
	status = (int)dbi(&row, 0, G_STATUS);
	code = dbv(&row, 0, G_CODE);
	uid = dbv(&row, 0, G_UID);
	r->who.user_id = uid;
	gate_rl(r, dbv(&row, 0, G_RATE), dbv(&row, 0, G_REMAINING),
	    dbv(&row, 0, G_RESET));
	if (status != 204) {
		if (strcmp(meter, "credits") == 0 && cost > 0 &&
		    (strcmp(code, "quota_exceeded") == 0 ||
		    strcmp(code, "trial_credits_exhausted") == 0))
			metrics_count(CTR_SPEND_REFUSED, 1);
		if (status == 429)
			reply_header(r, "Retry-After", dbv(&row, 0, G_RESET));
		gate_deny(r, status, code, deny_message(r->a, code, meter,
		    dbv(&row, 0, G_NEXT), NULL), strcmp(code, "quota_exceeded") == 0 ?
		    meter : NULL);
		return;
	}
	if (dbv(&row, 0, G_NOTICE) != NULL)
		usage_notice(r, uid, meter, dbv(&row, 0, G_PERIOD),
		    (int)dbi(&row, 0, G_NOTICE), dbi(&row, 0, G_USED),
		    dbi(&row, 0, G_LIMIT));
	reply_header(r, "X-Tollgate-User-Id", uid);
	reply_header(r, "X-Tollgate-Plan", dbv(&row, 0, G_PLAN));
	reply_header(r, "X-Tollgate-Credits-Remaining",
	    dbv(&row, 0, G_CREDITS) ? dbv(&row, 0, G_CREDITS) : "0");
	/*
	 * A paying user's usage also goes to Stripe's meter queue (the
	 * procedure ignores users without a live subscription).  This is a
	 * second round trip for plans other than the trial; moving it into
	 * tg_gate's transaction would save it.
	 */
	if (cost > 0 && strcmp(dbv(&row, 0, G_PLAN), "trial") != 0 &&
	    (rc = meter_report_add(r, uid, meter, cost)) < 0)
		log_warn("meter_report_add", " user=%s rc=%d", uid, rc);
	metrics_gate(NULL);
	if (strcmp(meter, "credits") == 0 && cost > 0)
		metrics_count(CTR_SPEND_OK, 1);
	reply_empty(r, 204);
}
