/*
 * OpenID Connect sign-in with any provider of the configuration
 * ([oidc NAME]: issuer, client_id, client_secret; contract section 3,
 * "More ways in").
 *
 * The provider's endpoints come from its discovery document
 * (<issuer>/.well-known/openid-configuration, whose issuer must be the
 * configured one), kept per process for an hour.  GET
 * /api/v1/auth/oidc/NAME sends the browser to the provider with the
 * authorization code flow: PKCE (S256), a random state and a random
 * nonce.  The state, the verifier, the nonce, the provider, the expiry
 * and the guest that started the sign-in (when a guest's access token
 * came with it) travel in a short-lived cookie sealed with the crypto
 * key, limited to these routes.  The callback accepts only the state of
 * that cookie, trades the code (with the verifier and the client's
 * secret) for tokens, and checks the ID token: its signature by a key of
 * the provider's JWKS (RS256 or ES256, pinned per key; never "none" or
 * an HMAC), issuer, audience (the client id; "azp" too when there is
 * one), expiry, and the nonce of this browser's cookie, used once.  Its
 * subject then signs in, links (by a verified address), takes over a
 * never-verified account, claims the guest, or makes an account, with
 * GitHub's rules and in GitHub's one transaction (ext_signin, with the
 * nonce spent in it).  Every failure ends on a page that says what
 * happened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "app/app.h"

#define OIDC_COOKIE	"tg_oidc"
#define OIDC_PATH	"/api/v1/auth/oidc"
#define OIDC_TTL	600	/* seconds to come back from the provider */
#define OIDC_SCOPE	"openid email profile"
#define DISCOVERY_TTL	3600

static struct sql q_nonce_purge = SQL(
    "DELETE FROM oidc_replay WHERE expires_at < UTC_TIMESTAMP(6) LIMIT 100");

/* A provider's discovery document, per process. */
struct discovery {
	char	*authorize;
	char	*token;
	char	*userinfo;	/* NULL when it has none */
	char	*jwks;
	double	 fetched;
};
static struct discovery	 disc[CONFIG_MAX_OIDC];

/* Outcomes of the calls to the provider. */
enum ores { O_OK, O_DOWN, O_BADCODE, O_REFUSED, O_BADTOKEN };

/* The configured provider of this name, with its index in *i, or NULL. */
static const struct config_oidc *
provider_of(const char *name, size_t *i)
{
	for (*i = 0; name != NULL && *i < cfg.n_oidc; (*i)++)
		if (strcmp(cfg.oidc[*i].name, name) == 0)
			return &cfg.oidc[*i];
	return NULL;
}

/*
 * Ends the flow on a page (ext_page), with a link to start again at
 * provider pname (none when it is NULL).
 */
static void
oidc_page(struct req *r, int status, const char *pname, const char *title,
    const char *message)
{
	if (pname == NULL)
		ext_page(r, status, title, message, NULL, NULL);
	else
		ext_page(r, status, title, message, arena_printf(r->a,
		    OIDC_PATH "/%s", pname), arena_printf(r->a,
		    "Sign in with %s again", pname));
}

static void
oidc_clear_cookie(struct req *r)
{
	reply_header(r, "Set-Cookie", OIDC_COOKIE "=; Path=" OIDC_PATH
	    "; Max-Age=0; HttpOnly; Secure; SameSite=Lax");
}

/* Copies a discovery member that must be an http(s) URL; NULL if not. */
static char *
disc_url(struct json_object *d, const char *member)
{
	const char	*s = json_str_at(d, member);

	if (s == NULL || strlen(s) > 2048 || (strncmp(s, "https://", 8) != 0 &&
	    strncmp(s, "http://", 7) != 0))
		return NULL;
	return strdup(s);
}

/*
 * The discovery document of provider i (fetched when not held or older
 * than an hour).  Returns it, or NULL when it cannot be had (the reason
 * logged; an old one is kept over a failed refresh).
 */
static const struct discovery *
discover(struct req *r, size_t i)
{
	static const char *const headers[] = { "Accept: application/json",
	    NULL };
	const struct config_oidc *p = &cfg.oidc[i];
	struct discovery	*d = &disc[i], n;
	struct json_object	*j;
	struct buf		 answer;
	const char		*iss;
	char			 err[256];
	size_t			 len = strlen(p->issuer);
	int			 status;

	if (d->fetched != 0 && now_seconds() - d->fetched < DISCOVERY_TTL)
		return d;
	while (len > 0 && p->issuer[len - 1] == '/')
		len--;
	status = http_call(r->a, "GET", arena_printf(r->a,
	    "%.*s/.well-known/openid-configuration", (int)len, p->issuer),
	    headers, NULL, &answer, err, sizeof(err));
	if (status != 200 || (j = json_parse_any(answer.p,
	    answer.len)) == NULL) {
		log_warn("oidc_discovery_failed", " provider=%s status=%d "
		    "err=\"%s\"", p->name, status, status < 0 ? err : "-");
		return d->fetched != 0 ? d : NULL;
	}
	memset(&n, 0, sizeof(n));
	iss = json_str_at(j, "issuer");
	if (iss == NULL || strcmp(iss, p->issuer) != 0 ||
	    (n.authorize = disc_url(j, "authorization_endpoint")) == NULL ||
	    (n.token = disc_url(j, "token_endpoint")) == NULL ||
	    (n.jwks = disc_url(j, "jwks_uri")) == NULL) {
		log_warn("oidc_discovery_failed", " provider=%s msg=\"issuer "
		    "differs or an endpoint is missing\"", p->name);
		free(n.authorize);
		free(n.token);
		free(n.jwks);
		json_object_put(j);
		return d->fetched != 0 ? d : NULL;
	}
	n.userinfo = disc_url(j, "userinfo_endpoint");
	json_object_put(j);
	free(d->authorize);
	free(d->token);
	free(d->userinfo);
	free(d->jwks);
	n.fetched = now_seconds();
	*d = n;
	return d;
}

/* base64url(SHA-256(s)), in the arena: the PKCE S256 challenge. */
static const char *
s256(struct arena *a, const char *s)
{
	unsigned char	 h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
	return b64url(a, h, sizeof(h));
}

static const char *
redirect_uri(struct req *r, const struct config_oidc *p)
{
	return arena_printf(r->a, "%s%s/%s/callback", cfg.base_url, OIDC_PATH,
	    p->name);
}

/*
 * GET /api/v1/auth/oidc/{provider}: 302 to the provider with the state
 * cookie; a 404 page for a provider not configured; 503 when its
 * discovery document or the database cannot be had.
 */
void
h_oidc_start(struct req *r)
{
	const struct config_oidc *p;
	const struct discovery	*d;
	struct buf		 q;
	const char		*state, *verifier, *nonce, *payload, *guest;
	size_t			 i;
	long long		 now;
	int			 rc;

	if ((p = provider_of(r->params[0], &i)) == NULL) {
		oidc_page(r, 404, NULL, "Sign-in", "There is no such way to "
		    "sign in on this site.");
		return;
	}
	if ((d = discover(r, i)) == NULL) {
		oidc_page(r, 503, p->name, "Sign-in unavailable", "The "
		    "sign-in provider could not be reached. Please try again "
		    "in a minute.");
		return;
	}
	if ((rc = db_unix_now(r->a, &now)) < 0 ||
	    (rc = guest_of_request(r, &guest)) < 0) {
		reply_db(r, rc);
		return;
	}
	state = new_token(r->a, "", 32);
	verifier = new_token(r->a, "", 32);
	nonce = new_token(r->a, "", 32);
	payload = arena_printf(r->a, "%s|%s|%s|%lld|%s|%s", state, verifier,
	    nonce, now + OIDC_TTL, p->name, guest != NULL ? guest : "");
	cookie_seal(r, OIDC_COOKIE, payload, OIDC_PATH, OIDC_TTL);

	buf_init(&q, r->a);
	form_add(&q, "response_type", "code");
	form_add(&q, "client_id", p->client_id);
	form_add(&q, "redirect_uri", redirect_uri(r, p));
	form_add(&q, "scope", OIDC_SCOPE);
	form_add(&q, "state", state);
	form_add(&q, "nonce", nonce);
	form_add(&q, "code_challenge", s256(r->a, verifier));
	form_add(&q, "code_challenge_method", "S256");
	reply_redirect(r, 302, arena_printf(r->a, "%s%c%s", d->authorize,
	    strchr(d->authorize, '?') ? '&' : '?', q.p));
}

/* What the sealed cookie carries. */
struct oidc_cookie {
	const char	*state, *verifier, *nonce, *provider, *guest;
	long long	 expires;
};

/* Opens the state cookie.  Returns false when it is missing or not ours. */
static bool
cookie_open(struct req *r, struct oidc_cookie *k)
{
	size_t		 n;
	char		*plain, *f[6], *end;

	memset(k, 0, sizeof(*k));
	if ((plain = cookie_unseal(r, OIDC_COOKIE)) == NULL)
		return false;
	f[0] = plain;
	for (n = 1; n < 6; n++) {
		if ((f[n] = strchr(f[n - 1], '|')) == NULL)
			return false;
		*f[n]++ = '\0';
	}
	k->state = f[0];
	k->verifier = f[1];
	k->nonce = f[2];
	k->expires = strtoll(f[3], &end, 10);
	k->provider = f[4];
	k->guest = *f[5] != '\0' ? f[5] : NULL;
	return *end == '\0' && *k->state != '\0' && *k->verifier != '\0' &&
	    *k->nonce != '\0';
}

/*
 * Trades the code for tokens and checks the ID token.  Returns O_OK with
 * its claims in *claims (the caller puts them), O_BADCODE (the provider
 * refused the code), O_REFUSED, O_BADTOKEN (the ID token failed a check)
 * or O_DOWN.
 */
static enum ores
oidc_token(struct req *r, const struct config_oidc *p,
    const struct discovery *d, const struct oidc_cookie *k, const char *code,
    struct json_object **claims)
{
	static const char *const headers[] = { "Accept: application/json",
	    NULL };
	struct json_object	*j;
	struct buf		 form, answer;
	const char		*idt, *e, *nonce, *azp;
	char			 err[256];
	int			 status;

	*claims = NULL;
	buf_init(&form, r->a);
	form_add(&form, "grant_type", "authorization_code");
	form_add(&form, "code", code);
	form_add(&form, "redirect_uri", redirect_uri(r, p));
	form_add(&form, "code_verifier", k->verifier);
	form_add(&form, "client_id", p->client_id);
	form_add(&form, "client_secret", p->client_secret);
	status = http_call(r->a, "POST", d->token, headers, form.p, &answer,
	    err, sizeof(err));
	sodium_memzero(form.p, form.len);
	if (status < 0 || status >= 500) {
		log_warn("oidc_down", " provider=%s step=token status=%d "
		    "err=\"%s\"", p->name, status, status < 0 ? err : "-");
		return O_DOWN;
	}
	j = json_parse_any(answer.p, answer.len);
	if (status != 200 || (idt = json_str_at(j, "id_token")) == NULL) {
		e = json_str_at(j, "error");
		log_warn("oidc_token_refused", " provider=%s status=%d "
		    "error=\"%.64s\"", p->name, status, e != NULL ? e : "-");
		json_object_put(j);
		return e != NULL && strcmp(e, "invalid_grant") == 0 ?
		    O_BADCODE : O_REFUSED;
	}
	idt = arena_strdup(r->a, idt);
	json_object_put(j);
	switch (jwks_verify(r->a, d->jwks, idt, p->issuer, p->client_id,
	    claims)) {
	case JWKS_OK:
		break;
	case JWKS_DOWN:
		return O_DOWN;
	default:
		log_warn("oidc_id_token_refused", " provider=%s", p->name);
		return O_BADTOKEN;
	}
	nonce = json_str_at(*claims, "nonce");
	azp = json_str_at(*claims, "azp");
	if (nonce == NULL || !ct_streq(nonce, k->nonce) ||
	    (azp != NULL && strcmp(azp, p->client_id) != 0)) {
		log_warn("oidc_id_token_refused", " provider=%s msg=\"nonce "
		    "or azp\"", p->name);
		json_object_put(*claims);
		*claims = NULL;
		return O_BADTOKEN;
	}
	return O_OK;
}

/*
 * GET /api/v1/auth/oidc/{provider}/callback?code&state: 302 to /profile
 * with a session cookie.  Pages otherwise: 400 for a missing or wrong
 * state, a used or expired code, an ID token that fails a check; 403 for
 * denied consent or a disabled account; 404 for an unknown provider; 409
 * when the address belongs to an account linked to another subject of
 * this provider; 200 asking for the second factor; 503 when the provider
 * or the database cannot be reached.
 */
void
h_oidc_callback(struct req *r)
{
	const struct config_oidc *p;
	const struct discovery	*d;
	struct oidc_cookie	 k;
	struct ext_identity	 x;
	struct json_object	*claims = NULL;
	enum ores		 res;
	const char		*state = in_str(r, "state");
	const char		*code = in_str(r, "code");
	const char		*error = in_str(r, "error");
	const char		*uid = NULL, *sid = NULL, *pn, *why;
	size_t			 i;
	bool			 opened;
	int			 rc = DB_FAIL, what = EXT_SESSION;

	if ((p = provider_of(r->params[0], &i)) == NULL) {
		oidc_page(r, 404, NULL, "Sign-in", "There is no such way to "
		    "sign in on this site.");
		return;
	}
	pn = p->name;
	opened = cookie_open(r, &k) && strcmp(k.provider, p->name) == 0;
	if ((rc = ext_state_check(r, opened, state, k.state, k.expires,
	    oidc_clear_cookie, &why)) != 0) {
		if (rc > 0)
			oidc_page(r, rc, pn, "Sign-in failed", why);
		else
			reply_db(r, rc);
		return;
	}
	if (error != NULL) {
		if (strcmp(error, "access_denied") == 0)
			oidc_page(r, 403, pn, "Sign-in cancelled", "You did "
			    "not allow this site to use your account there, so "
			    "you are not signed in.");
		else
			oidc_page(r, 400, pn, "Sign-in failed", "The provider "
			    "refused the sign-in. Please try again.");
		return;
	}
	if (code == NULL) {
		oidc_page(r, 400, pn, "Sign-in failed", "The provider sent no "
		    "authorization code. Please start again.");
		return;
	}
	/* Without its discovery document, the provider is down. */
	if ((d = discover(r, i)) == NULL)
		res = O_DOWN;
	else
		res = oidc_token(r, p, d, &k, code, &claims);
	switch (res) {
	case O_OK:
		break;
	case O_DOWN:
		oidc_page(r, 503, pn, "Sign-in unavailable", "The sign-in "
		    "provider could not be reached. Please try again in a "
		    "minute.");
		return;
	case O_BADCODE:
		oidc_page(r, 400, pn, "Sign-in failed", "This sign-in was "
		    "already used or has expired. Please start again.");
		return;
	case O_BADTOKEN:
		oidc_page(r, 400, pn, "Sign-in failed", "The provider's answer "
		    "did not pass our checks. Please start again.");
		return;
	case O_REFUSED:
		oidc_page(r, 400, pn, "Sign-in failed", "The provider refused "
		    "the sign-in. Please start again.");
		return;
	}
	memset(&x, 0, sizeof(x));
	x.provider = arena_printf(r->a, "oidc:%s", p->name);
	x.subject = ext_subject(r, claims);
	x.email = ext_verified_email(r, claims);
	x.name = ext_name(r, claims);
	x.guest = k.guest;
	json_object_put(claims);
	if (x.subject == NULL) {
		oidc_page(r, 400, pn, "Sign-in failed", "The provider did not "
		    "say who you are. Please start again.");
		return;
	}

	if ((rc = ext_signin(r, &x, "oidc", token_hash(r->a, k.nonce), &uid,
	    &sid, &what)) < 0) {
		reply_db(r, rc);
		return;
	}
	(void)db_exec(&q_nonce_purge, "");
	switch (what) {
	case EXT_REPLAY:
		oidc_page(r, 400, pn, "Sign-in failed", "This sign-in was "
		    "already used. Please start again.");
		return;
	case EXT_DISABLED:
		oidc_page(r, 403, pn, "Account disabled", "This account has "
		    "been disabled.");
		return;
	case EXT_OTHER:
		oidc_page(r, 409, pn, "Sign-in failed", "The account with "
		    "this email address is linked to a different account at "
		    "this provider. Log in with your email instead.");
		return;
	case EXT_TOTP:
		pending_ask(r, uid, "oidc", "/profile");
		return;
	default:
		break;
	}
	log_info("oidc_login", " user=%s provider=%s session=%s", uid, pn,
	    sid);
	reply_redirect(r, 302, "/profile");
}
