/*
 * Who is asking.  The credential is the Authorization header when there
 * is one (a JWT access token, an API key "tgk_...", or a service key
 * "tgs_..."), else the session cookie.  Credentials in a query string are
 * never looked at.  Roles and account state come from the database on
 * every request, never from a token.
 */
#include <string.h>
#include <strings.h>

#include "app/app.h"

/* A JWT's session and user, in one lookup. */
static struct sql q_by_session = SQL(
    "SELECT u.id, u.role, u.email, u.name, u.disabled_at IS NOT NULL, "
    "NOT tg_session_live(s.revoked_at, s.expires_at) "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id = ? AND s.user_id = ?");
/* A session cookie's session and user. */
static struct sql q_by_cookie = SQL(
    "SELECT u.id, u.role, u.email, u.name, u.disabled_at IS NOT NULL, "
    "NOT tg_session_live(s.revoked_at, s.expires_at), s.id "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.cookie_hash = ?");
/* An API key and its owner. */
static struct sql q_by_key = SQL(
    "SELECT u.id, u.role, u.email, u.name, u.disabled_at IS NOT NULL, "
    "NOT tg_key_live(k.expires_at), k.id, "
    "k.last_used_at IS NULL OR "
    "k.last_used_at < UTC_TIMESTAMP(6) - INTERVAL 60 SECOND "
    "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?");
/* last_used_at moves at most once a minute, not on every request. */
static struct sql q_key_used = SQL(
    "UPDATE api_keys SET last_used_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_session_used = SQL(
    "UPDATE sessions SET last_used_at = UTC_TIMESTAMP(6) WHERE id = ? AND "
    "last_used_at < UTC_TIMESTAMP(6) - INTERVAL 60 SECOND");
/* The user of a trusted token (trust.c). */
static struct sql q_by_user = SQL(
    "SELECT u.id, u.role, u.email, u.name, u.disabled_at IS NOT NULL, "
    "EXISTS (SELECT 1 FROM totp_secrets t WHERE t.user_id = u.id AND "
    "t.enabled_at IS NOT NULL) FROM users u WHERE u.id = ?");
static struct sql q_by_service_key = SQL(
    "SELECT id, name FROM service_keys WHERE key_hash = ? AND "
    "revoked_at IS NULL");

const char *
bearer_of(struct req *r, bool *present)
{
	const char	*h = req_env(r, "HTTP_AUTHORIZATION");

	*present = h != NULL;
	if (h == NULL)
		return NULL;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h != '\0' && strlen(h) <= 4096 ? h : NULL;
}

bool
same_origin(struct req *r)
{
	const char	*origin = req_env(r, "HTTP_ORIGIN");
	const char	*site = req_env(r, "HTTP_SEC_FETCH_SITE");

	if (origin != NULL && strcmp(origin, cfg.origin) == 0)
		return true;
	return site != NULL && strcmp(site, "same-origin") == 0;
}

/* Fills r->who from one row of the lookups above. */
static void
take_user(struct req *r, const struct dbrows *row)
{
	r->who.user_id = dbv(row, 0, 0);
	r->who.role = dbv(row, 0, 1);
	/* A guest (or a trusted subject without one) has no address. */
	r->who.email = dbv(row, 0, 2) != NULL ? dbv(row, 0, 2) : "";
	r->who.name = dbv(row, 0, 3);
}

/*
 * A token of a [trust NAME] issuer (trust.c) as a login of its user,
 * with no session of ours.  Returns AUTH_NONE when it is no such token,
 * AUTH_OK with r->who filled in, or AUTH_ANSWERED (401, 403, 503).
 *
 * The second factor: a trusted token proves a login at the other
 * service, never tollgate's second factor.  For an account with TOTP
 * on, it therefore counts here as an API key does (WHO_APIKEY, with no
 * key: the reads of section 4 only, 403 forbidden for anything that
 * changes the account), while at the gate and /api/v1/check it counts in
 * full, as an API key does there (docs/identity.md).
 */
static int
trusted(struct req *r, const char *token)
{
	struct dbrows	 row;
	const char	*uid;
	int		 rc, tries = 0;

again:
	switch ((rc = trust_user(r, token, &uid, NULL))) {
	case TRUST_NONE:
		return AUTH_NONE;
	case TRUST_USER:
		break;
	case TRUST_EXPIRED:
		reply_unauth(r, "token_expired", "The access token has "
		    "expired.");
		return AUTH_ANSWERED;
	case TRUST_DISABLED:
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
		return AUTH_ANSWERED;
	case TRUST_DOWN:
		reply_db(r, DB_DOWN);
		return AUTH_ANSWERED;
	case TRUST_BAD:
		reply_unauth(r, "unauthenticated", "The credential is not "
		    "valid.");
		return AUTH_ANSWERED;
	default:
		reply_db(r, rc);
		return AUTH_ANSWERED;
	}
	if ((rc = db_select(r->a, &q_by_user, &row, "s", uid)) < 0) {
		reply_db(r, rc);
		return AUTH_ANSWERED;
	}
	if (rc == 0 && tries++ == 0) {
		/* A remembered mapping to a deleted account: map afresh. */
		trust_forget(uid);
		goto again;
	}
	if (rc == 0) {
		reply_unauth(r, "unauthenticated", "The credential is not "
		    "valid.");
		return AUTH_ANSWERED;
	}
	if (dbi(&row, 0, 4)) {
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
		return AUTH_ANSWERED;
	}
	take_user(r, &row);
	r->who.session_id = NULL;
	r->who.key_id = NULL;
	r->who.kind = dbi(&row, 0, 5) ? WHO_APIKEY : WHO_JWT;
	return AUTH_OK;
}

/*
 * Resolves the request's credential.  Returns AUTH_OK with r->who
 * filled in, AUTH_NONE when there is no credential at all, or
 * AUTH_ANSWERED when the request has been answered (401, 403, 503).
 */
int
auth_resolve(struct req *r)
{
	struct dbrows	 row;
	const char	*cred, *uid = NULL, *sid = NULL, *cookie;
	bool		 present;
	int		 rc;

	cred = bearer_of(r, &present);
	if (present && cred == NULL) {
		reply_unauth(r, "unauthenticated", "The Authorization header "
		    "must be \"Bearer <credential>\".");
		return AUTH_ANSWERED;
	}
	if (cred != NULL && strncmp(cred, "tgs_", 4) == 0) {
		hash_rekey(r, HASHED_SERVICE_KEY, cred);
		rc = db_select(r->a, &q_by_service_key, &row, "s",
		    token_hash(r->a, cred));
		if (rc < 0)
			goto dberr;
		if (rc == 0)
			goto unknown;
		r->who.kind = WHO_SERVICE;
		r->who.key_id = dbv(&row, 0, 0);
		r->who.name = dbv(&row, 0, 1);
		return AUTH_OK;
	}
	if (cred != NULL && strncmp(cred, "tgk_", 4) == 0) {
		hash_rekey(r, HASHED_API_KEY, cred);
		rc = db_select(r->a, &q_by_key, &row, "s",
		    token_hash(r->a, cred));
		if (rc < 0)
			goto dberr;
		if (rc == 0)
			goto unknown;
		if (dbi(&row, 0, 5)) {
			reply_unauth(r, "token_expired", "This API key has "
			    "expired.");
			return AUTH_ANSWERED;
		}
		r->who.kind = WHO_APIKEY;
		r->who.key_id = dbv(&row, 0, 6);
		if (dbi(&row, 0, 7))
			db_exec(&q_key_used, "s", r->who.key_id);
	} else if (cred != NULL) {
		rc = jwt_check(r->a, cred, &uid, &sid);
		if (rc == JWT_BAD && cfg.n_trust > 0)
			switch ((rc = trusted(r, cred))) {
			case AUTH_NONE:
				rc = JWT_BAD;	/* no trusted issuer's */
				break;
			case AUTH_OK:
				return AUTH_OK;
			default:
				return AUTH_ANSWERED;
			}
		if (rc == JWT_EXPIRED) {
			reply_unauth(r, "token_expired", "The access token "
			    "has expired; refresh it.");
			return AUTH_ANSWERED;
		}
		if (rc != JWT_OK)
			goto unknown;
		if ((rc = db_select(r->a, &q_by_session, &row, "ss", sid,
		    uid)) < 0)
			goto dberr;
		if (rc == 0 || dbi(&row, 0, 5))
			goto unknown;
		r->who.kind = WHO_JWT;
		r->who.session_id = sid;
	} else {
		cookie = kv_get(&r->cookies, SESSION_COOKIE);
		if (cookie == NULL || valid_token(cookie, strlen(cookie)))
			return AUTH_NONE;
		hash_rekey(r, HASHED_COOKIE, cookie);
		if ((rc = db_select(r->a, &q_by_cookie, &row, "s",
		    token_hash(r->a, cookie))) < 0)
			goto dberr;
		if (rc == 0 || dbi(&row, 0, 5))
			return AUTH_NONE;	/* a stale cookie is no login */
		r->who.kind = WHO_COOKIE;
		r->who.session_id = dbv(&row, 0, 6);
	}
	take_user(r, &row);
	if (dbi(&row, 0, 4)) {
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
		return AUTH_ANSWERED;
	}
	if (r->who.session_id != NULL)
		db_exec(&q_session_used, "s", r->who.session_id);
	return AUTH_OK;
unknown:
	memset(&r->who, 0, sizeof(r->who));
	reply_unauth(r, "unauthenticated", "The credential is not valid.");
	return AUTH_ANSWERED;
dberr:
	memset(&r->who, 0, sizeof(r->who));
	reply_db(r, rc);
	return AUTH_ANSWERED;
}

/*
 * Applies a route's needs: a login (JWT or cookie), or also an API key,
 * a service key, or the admin role.  Returns true when the handler may
 * run; otherwise the request has been answered.
 */
bool
auth_route(struct req *r)
{
	unsigned	 f = r->route->flags;
	int		 rc;

	if (!(f & (ROUTE_AUTH | ROUTE_SERVICE | ROUTE_OPTAUTH)))
		return true;
	if ((rc = auth_resolve(r)) == AUTH_ANSWERED)
		return false;
	if (rc == AUTH_NONE) {
		if (f & ROUTE_OPTAUTH)
			return true;
		reply_unauth(r, "unauthenticated", "Log in first: send "
		    "\"Authorization: Bearer <token>\".");
		return false;
	}
	if (f & ROUTE_SERVICE) {
		if (r->who.kind != WHO_SERVICE) {
			reply_error(r, 403, "forbidden", "Only a service key "
			    "may call this.");
			return false;
		}
		return true;
	}
	if (r->who.kind == WHO_SERVICE ||
	    (r->who.kind == WHO_APIKEY && !(f & ROUTE_KEY))) {
		reply_error(r, 403, "forbidden", "An API key cannot do this; "
		    "log in instead.");
		return false;
	}
	if (r->who.kind == WHO_COOKIE && r->method != M_GET &&
	    r->method != M_HEAD && !same_origin(r)) {
		reply_error(r, 403, "forbidden", "A session cookie counts "
		    "only on same-origin requests.");
		return false;
	}
	if ((f & ROUTE_ADMIN) && strcmp(r->who.role, "admin") != 0) {
		reply_error(r, 403, "forbidden", "Only an admin may do this.");
		return false;
	}
	return true;
}
