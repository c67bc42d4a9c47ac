/*
 * Sessions: every login is a session.  API clients hold a token pair (a
 * 15-minute access JWT naming the session, and an opaque single-use
 * refresh token); browsers hold a session cookie.  Refresh tokens rotate
 * in families: a retry within 10 seconds of a rotation gets the same new
 * pair back, and a later reuse revokes the whole session.
 */
#include <string.h>

#include "app/app.h"

#define REFRESH_DAYS	30
#define GRACE_SECONDS	10

static struct sql q_insert_session = SQL(
    "INSERT INTO sessions (id, user_id, kind, cookie_hash, user_agent, "
    "client_name, address, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
    "UTC_TIMESTAMP(6) + INTERVAL 30 DAY)");
static struct sql q_insert_refresh = SQL(
    "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) "
    "VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL 30 DAY)");
static struct sql q_find_refresh = SQL(
    "SELECT rt.session_id, s.user_id, rt.used_at IS NOT NULL, "
    "rt.expires_at <= UTC_TIMESTAMP(6), "
    "rt.used_at IS NOT NULL AND "
    "rt.used_at > UTC_TIMESTAMP(6) - INTERVAL 10 SECOND, "
    "rt.successor_enc, NOT tg_session_live(s.revoked_at, s.expires_at), "
    "u.disabled_at IS NOT NULL "
    "FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id "
    "JOIN users u ON u.id = s.user_id WHERE rt.token_hash = ? FOR UPDATE");
static struct sql q_use_refresh = SQL(
    "UPDATE refresh_tokens SET used_at = UTC_TIMESTAMP(6), "
    "replaced_by_hash = ?, successor_enc = ? "
    "WHERE token_hash = ? AND used_at IS NULL");
static struct sql q_revoke_session = SQL(
    "UPDATE sessions SET revoked_at = UTC_TIMESTAMP(6), revoked_reason = ? "
    "WHERE id = ? AND revoked_at IS NULL");
static struct sql q_refresh_successor = SQL(
    "SELECT replaced_by_hash FROM refresh_tokens WHERE token_hash = ?");
static struct sql q_session_of_refresh = SQL(
    "SELECT session_id FROM refresh_tokens WHERE token_hash = ?");
static struct sql q_list_sessions = SQL(
    "SELECT id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "DATE_FORMAT(last_used_at, '%Y-%m-%dT%H:%i:%sZ'), user_agent, "
    "client_name, kind, address FROM sessions WHERE user_id = ? AND "
    "tg_session_live(revoked_at, expires_at) "
    "ORDER BY created_at DESC LIMIT 200");
static struct sql q_session_owner = SQL(
    "SELECT user_id, revoked_at IS NOT NULL FROM sessions WHERE id = ?");
static struct sql q_revoke_all = SQL(
    "UPDATE sessions SET revoked_at = UTC_TIMESTAMP(6), revoked_reason = ? "
    "WHERE user_id = ? AND revoked_at IS NULL AND id <> ?");

/*
 * Creates a session of kind for uid (client_name for device sign-ins).
 * With want_cookie it also makes a cookie token and sets the cookie.
 * Returns 0 with the new id in *sid, or a DB_* code.
 */
int
session_create(struct req *r, const char *uid, const char *kind,
    const char *client_name, bool want_cookie, const char **sid)
{
	const char	*cookie = NULL, *ua = r->user_agent;
	int		 rc;

	*sid = new_id(r->a);
	if (want_cookie)
		cookie = new_token(r->a, "", 32);
	if (ua != NULL && strlen(ua) > 512)
		ua = arena_strndup(r->a, ua, 512);
	if (ua != NULL && valid_utf8_text(ua, strlen(ua), 512) != NULL)
		ua = NULL;
	rc = db_exec(&q_insert_session, "sssssss", *sid, uid, kind,
	    cookie ? token_hash(r->a, cookie) : NULL, ua, client_name,
	    r->remote_addr);
	if (rc < 0)
		return rc;
	if (cookie != NULL)
		reply_header(r, "Set-Cookie", arena_printf(r->a,
		    "%s=%s; Path=/; Max-Age=%d; HttpOnly; Secure; "
		    "SameSite=Lax", SESSION_COOKIE, cookie,
		    REFRESH_DAYS * 86400));
	return 0;
}

/* Expires the session cookie in the browser. */
void
session_clear_cookie(struct req *r)
{
	reply_header(r, "Set-Cookie", SESSION_COOKIE "=; Path=/; Max-Age=0; "
	    "HttpOnly; Secure; SameSite=Lax");
}

/* Builds the contract's tokens object. */
static struct json_object *
tokens_json(const char *access, const char *refresh)
{
	struct json_object	*t = json_object_new_object();

	json_object_object_add(t, "access_token", json_object_new_string(access));
	json_object_object_add(t, "refresh_token",
	    json_object_new_string(refresh));
	json_object_object_add(t, "token_type", json_object_new_string("Bearer"));
	json_object_object_add(t, "expires_in", json_object_new_int(jwt_ttl()));
	return t;
}

/*
 * Makes a new token pair in session sid.  Returns 0 with the tokens
 * object in *out (owned by the caller) and, when refresh_out is given,
 * the refresh token; or a DB_* code.
 */
int
tokens_issue(struct req *r, const char *uid, const char *sid,
    struct json_object **out, const char **refresh_out)
{
	const char	*access, *refresh;
	int		 rc;

	refresh = new_token(r->a, "tgr_", 32);
	if ((access = jwt_issue(r->a, uid, sid)) == NULL)
		return DB_FAIL;
	if ((rc = db_exec(&q_insert_refresh, "ss", token_hash(r->a, refresh),
	    sid)) < 0)
		return rc;
	*out = tokens_json(access, refresh);
	if (refresh_out != NULL)
		*refresh_out = refresh;
	return 0;
}

/* Revokes one session.  Returns the rows changed or a DB_* code. */
int
session_revoke(const char *sid, const char *reason)
{
	return db_exec(&q_revoke_session, "ss", reason, sid);
}

/* Revokes every session of uid but keep (which may be NULL). */
int
sessions_revoke_all(const char *uid, const char *keep, const char *reason)
{
	return db_exec(&q_revoke_all, "sss", reason, uid, keep ? keep : "");
}

/*
 * Whether session sid exists (a committed callback's look: ids are new
 * for every try, so a session found was made by that try).  Returns 1,
 * 0, or a DB_* code.
 */
int
session_exists(struct req *r, const char *sid)
{
	struct dbrows	 row;

	if (sid == NULL)
		return -1;
	return db_select(r->a, &q_session_owner, &row, "s", sid);
}

/* A sign-in's session, made by db_tx_run (maybe more than once). */
struct login_tx {
	struct req		*r;
	const char		*uid, *kind, *replace;
	size_t			 headers;
	bool			 pair;
	const char		*sid;
	struct json_object	*tokens;
};

static int
login_body(void *v)
{
	struct login_tx	*t = v;
	int		 rc;

	t->r->headers_out.n = t->headers;	/* no cookie of a try before */
	json_object_put(t->tokens);
	t->tokens = NULL;
	t->sid = NULL;
	if (t->replace != NULL &&
	    (rc = session_revoke(t->replace, "replaced")) < 0)
		return rc;
	if ((rc = session_create(t->r, t->uid, t->kind, NULL, !t->pair,
	    &t->sid)) < 0)
		return rc;
	return t->pair ? tokens_issue(t->r, t->uid, t->sid, &t->tokens,
	    NULL) : 0;
}

/* After a lost COMMIT answer: is this try's session there? */
static int
login_committed(void *v)
{
	struct login_tx	*t = v;

	return session_exists(t->r, t->sid);
}

/*
 * Signs uid in (kind: "password", "magic"...) in one transaction, the
 * session replace (may be NULL) revoked first: with tokens, a token
 * pair in *tokens (the caller's); without, a session cookie.  Returns 0
 * with the new session's id in *sid (when sid is given), or a DB_* code
 * (no cookie is then set).
 */
int
session_login(struct req *r, const char *uid, const char *kind,
    const char *replace, struct json_object **tokens, const char **sid)
{
	struct login_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	t.kind = kind;
	t.replace = replace;
	t.headers = r->headers_out.n;
	t.pair = tokens != NULL;
	if ((rc = db_tx_run(login_body, login_committed, &t,
	    DB_TX_TRIES)) < 0) {
		r->headers_out.n = t.headers;
		json_object_put(t.tokens);
		return rc;
	}
	if (tokens != NULL)
		*tokens = t.tokens;
	if (sid != NULL)
		*sid = t.sid;
	return 0;
}

/* What a refresh came to. */
enum refresh_outcome {
	REFRESH_OK,		/* a new pair */
	REFRESH_GRACE,		/* used a moment ago: the same new pair again */
	REFRESH_INVALID,	/* unknown, revoked, or the account disabled */
	REFRESH_EXPIRED,
	REFRESH_REUSED		/* used before the grace window: revoked */
};

/* A refresh, run by db_tx_run (maybe more than once). */
struct refresh_tx {
	struct req		*r;
	const char		*hash;		/* of the token presented */
	enum refresh_outcome	 outcome;
	const char		*session;
	const char		*refresh;	/* the new refresh token */
	struct json_object	*tokens;	/* the answer's pair */
};

static int
refresh_body(void *v)
{
	struct refresh_tx	*t = v;
	struct req		*r = t->r;
	struct dbrows		 row;
	unsigned char		*sealed;
	size_t			 sealed_len;
	char			*plain;
	int			 rc;

	json_object_put(t->tokens);
	t->tokens = NULL;
	if ((rc = db_select(r->a, &q_find_refresh, &row, "s", t->hash)) < 0)
		return rc;
	if (rc == 0 || dbi(&row, 0, 6) || dbi(&row, 0, 7)) {
		t->outcome = REFRESH_INVALID;
		return DB_ABORT;
	}
	if (dbi(&row, 0, 3)) {
		t->outcome = REFRESH_EXPIRED;
		return DB_ABORT;
	}
	t->session = dbv(&row, 0, 0);
	if (dbi(&row, 0, 2)) {
		/* Used before: within the grace window, the same pair. */
		if (dbi(&row, 0, 4) && dbv(&row, 0, 5) != NULL &&
		    (plain = unseal(r->a, dbv(&row, 0, 5), row.len[5],
		    NULL)) != NULL && (t->tokens = parse_json_object(plain,
		    strlen(plain))) != NULL) {
			t->outcome = REFRESH_GRACE;
			return DB_ABORT;
		}
		t->outcome = REFRESH_REUSED;
		return session_revoke(t->session, "reuse");
	}
	if ((rc = tokens_issue(r, dbv(&row, 0, 1), t->session, &t->tokens,
	    &t->refresh)) < 0)
		return rc;
	plain = arena_strdup(r->a, json_object_to_json_string(t->tokens));
	sealed = seal(r->a, plain, strlen(plain), &sealed_len);
	t->outcome = REFRESH_OK;
	return db_exec(&q_use_refresh, "sbs", token_hash(r->a, t->refresh),
	    sealed, sealed_len, t->hash);
}

/*
 * After a lost COMMIT answer: did the refresh happen?  It did when the
 * token presented now points at the new one this try made (1); when it
 * is still unused, it did not (0).
 */
static int
refresh_committed(void *v)
{
	struct refresh_tx	*t = v;
	struct dbrows		 row;
	int			 rc;

	if (t->outcome != REFRESH_OK)
		return -1;
	if ((rc = db_select(t->r->a, &q_refresh_successor, &row, "s",
	    t->hash)) < 0)
		return rc;
	if (rc == 0 || dbv(&row, 0, 0) == NULL)
		return 0;
	return strcmp(dbv(&row, 0, 0), token_hash(t->r->a, t->refresh)) == 0 ?
	    1 : -1;
}

/*
 * POST /api/v1/auth/refresh: 200 with a new pair; 401 unauthenticated
 * (unknown, revoked), token_expired, or token_reused (after the grace
 * window: the family is revoked); 503 when the database is down.
 */
void
h_refresh(struct req *r)
{
	struct refresh_tx	 t;
	struct json_object	*o;
	int			 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	hash_rekey(r, HASHED_REFRESH, in_str(r, "refresh_token"));
	t.hash = token_hash(r->a, in_str(r, "refresh_token"));
	rc = db_tx_run(refresh_body, refresh_committed, &t, DB_TX_TRIES);
	if (rc < 0 && rc != DB_ABORT) {
		json_object_put(t.tokens);
		reply_db(r, rc);
		return;
	}
	switch (t.outcome) {
	case REFRESH_OK:
	case REFRESH_GRACE:
		o = json_object_new_object();
		json_object_object_add(o, "tokens", t.tokens);
		reply_json(r, 200, o);
		return;
	case REFRESH_INVALID:
		reply_unauth(r, "unauthenticated", "The refresh token is not "
		    "valid.");
		break;
	case REFRESH_EXPIRED:
		reply_unauth(r, "token_expired", "The refresh token has "
		    "expired; log in again.");
		break;
	case REFRESH_REUSED:
		log_warn("refresh_reuse", " session=%s", t.session);
		reply_unauth(r, "token_reused", "This refresh token was used "
		    "already; the session has been revoked.");
		break;
	}
	json_object_put(t.tokens);
}

/*
 * POST /api/v1/auth/logout: 204.  With a refresh token its session is
 * revoked; without, the session of the calling token or cookie (401
 * when there is none).
 */
void
h_logout(struct req *r)
{
	struct dbrows	 row;
	const char	*refresh = in_str(r, "refresh_token");
	int		 rc;

	if (refresh != NULL) {
		if ((rc = db_select(r->a, &q_session_of_refresh, &row, "s",
		    token_hash(r->a, refresh))) < 0)
			goto dberr;
		if (rc == 1 && (rc = session_revoke(dbv(&row, 0, 0),
		    "logout")) < 0)
			goto dberr;
	} else if (r->who.session_id != NULL) {
		if ((rc = session_revoke(r->who.session_id, "logout")) < 0)
			goto dberr;
	} else if (r->who.kind == WHO_NONE) {
		reply_unauth(r, "unauthenticated", "Send the refresh token, "
		    "or log in first.");
		return;
	}
	if (r->who.kind == WHO_COOKIE)
		session_clear_cookie(r);
	reply_empty(r, 204);
	return;
dberr:
	reply_db(r, rc);
}

/*
 * The live sessions of uid, newest first, as an array (the caller's) of
 * {id, created_at, last_used_at, user_agent, client_name, kind, address,
 * current}; current is the caller's own session.  Returns 0 or a DB_*
 * code.  The API, /profile and the admin console list them from here.
 */
int
sessions_list_core(struct req *r, const char *uid, struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*a, *s;
	size_t			 i;
	int			 rc;

	*out = NULL;
	if ((rc = db_select(r->a, &q_list_sessions, &rows, "s", uid)) < 0)
		return rc;
	a = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		s = json_object_new_object();
		json_object_object_add(s, "id", jstr_or_null(dbv(&rows, i, 0)));
		json_object_object_add(s, "created_at",
		    jstr_or_null(dbv(&rows, i, 1)));
		json_object_object_add(s, "last_used_at",
		    jstr_or_null(dbv(&rows, i, 2)));
		json_object_object_add(s, "user_agent",
		    jstr_or_null(dbv(&rows, i, 3)));
		json_object_object_add(s, "client_name",
		    jstr_or_null(dbv(&rows, i, 4)));
		json_object_object_add(s, "kind", jstr_or_null(dbv(&rows, i, 5)));
		json_object_object_add(s, "address",
		    jstr_or_null(dbv(&rows, i, 6)));
		json_object_object_add(s, "current", json_object_new_boolean(
		    r->who.session_id != NULL &&
		    strcmp(r->who.session_id, dbv(&rows, i, 0)) == 0));
		json_object_array_add(a, s);
	}
	*out = a;
	return 0;
}

/* GET /api/v1/sessions: 200 with the caller's live sessions. */
void
h_sessions_list(struct req *r)
{
	struct json_object	*a;
	int			 rc;

	if ((rc = sessions_list_core(r, r->who.user_id, &a)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, a);
}

/*
 * Revokes session sid of uid (any user's when admin_ok, with an audit
 * row).  Returns 0, SESSION_NOT_FOUND, SESSION_FORBIDDEN (another user's),
 * or a DB_* code.  The API and /profile revoke through it.
 */
int
session_delete_core(struct req *r, const char *uid, const char *sid,
    bool admin_ok)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_session_owner, &row, "s", sid)) < 0)
		return rc;
	if (rc == 0)
		return SESSION_NOT_FOUND;
	if (strcmp(dbv(&row, 0, 0), uid) != 0 && !admin_ok)
		return SESSION_FORBIDDEN;
	if ((rc = session_revoke(sid, "revoked")) < 0)
		return rc;
	if (strcmp(dbv(&row, 0, 0), uid) != 0)
		audit(r, "session.revoke", dbv(&row, 0, 0), sid);
	return 0;
}

/*
 * DELETE /api/v1/sessions/{id}: 204; 403 for another user's session
 * (admins may revoke any); 404 when there is no such session.
 */
void
h_session_delete(struct req *r)
{
	int	 rc;

	rc = session_delete_core(r, r->who.user_id, r->params[0],
	    strcmp(r->who.role, "admin") == 0);
	if (rc == SESSION_NOT_FOUND)
		reply_error(r, 404, "not_found", "There is no such session.");
	else if (rc == SESSION_FORBIDDEN)
		reply_error(r, 403, "forbidden", "This session is not yours.");
	else if (rc < 0)
		reply_db(r, rc);
	else
		reply_empty(r, 204);
}
