/*
 * Access tokens: HS256 JWTs made and checked with libjwt.  The header's
 * kid names the signing secret (a hash of it, never the secret), so
 * tokens signed with [jwt] previous_secret still verify during a
 * rotation.  Only HS256 is accepted; "none" and every other algorithm
 * are refused before libjwt sees the token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <sodium.h>

#include "core/core.h"

#ifndef TG_LIBJWT_VERSION
#define TG_LIBJWT_VERSION	"unknown"
#endif

#define ACCESS_TTL	900	/* 15 minutes */

/* The kid of a secret: 16 hex digits of its BLAKE2b hash. */
static void
kid_of(const char *secret, char out[17])
{
	unsigned char	 h[8];

	crypto_generichash(h, sizeof(h), (const unsigned char *)secret,
	    strlen(secret), NULL, 0);
	sodium_bin2hex(out, 17, h, sizeof(h));
}

int
jwt_ttl(void)
{
	return ACCESS_TTL;
}

/*
 * Makes an access token for user uid in session sid.  Returns it in the
 * arena, or NULL when libjwt fails.
 */
char *
jwt_issue(struct arena *a, const char *uid, const char *sid)
{
	jwt_t		*jwt = NULL;
	char		 kid[17], *s = NULL, *out = NULL;
	long		 now = (long)time(NULL);

	kid_of(cfg.jwt_secret, kid);
	if (jwt_new(&jwt) != 0 ||
	    jwt_add_header(jwt, "kid", kid) != 0 ||
	    jwt_add_grant(jwt, "sub", uid) != 0 ||
	    jwt_add_grant(jwt, "sid", sid) != 0 ||
	    jwt_add_grant(jwt, "typ", "access") != 0 ||
	    jwt_add_grant_int(jwt, "iat", now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", now + ACCESS_TTL) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_HS256,
	    (const unsigned char *)cfg.jwt_secret,
	    (int)strlen(cfg.jwt_secret)) != 0 ||
	    (s = jwt_encode_str(jwt)) == NULL)
		log_err("jwt_issue", " msg=\"libjwt failed\"");
	else
		out = arena_strdup(a, s);
	free(s);
	jwt_free(jwt);
	return out;
}

/*
 * Reads the header of a token (the first dot-separated part) and picks
 * the secret its kid names.  Returns the secret, or NULL when the header
 * is malformed, names another algorithm, or an unknown key.
 */
static const char *
pick_secret(struct arena *a, const char *token)
{
	const char		*dot = strchr(token, '.');
	unsigned char		*raw;
	size_t			 rawlen, n;
	struct json_object	*h, *v;
	const char		*secret = NULL;
	char			 kid[17];

	if (dot == NULL || (n = (size_t)(dot - token)) == 0 || n > 512)
		return NULL;
	raw = arena_alloc(a, n);
	if (sodium_base642bin(raw, n, token, n, NULL, &rawlen, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return NULL;
	if ((h = parse_json_object((const char *)raw, rawlen)) == NULL)
		return NULL;
	if (!json_object_object_get_ex(h, "alg", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), "HS256") != 0)
		goto out;
	if (!json_object_object_get_ex(h, "kid", &v) ||
	    !json_object_is_type(v, json_type_string))
		goto out;
	kid_of(cfg.jwt_secret, kid);
	if (strcmp(json_object_get_string(v), kid) == 0) {
		secret = cfg.jwt_secret;
		goto out;
	}
	if (cfg.jwt_previous_secret[0] != '\0') {
		kid_of(cfg.jwt_previous_secret, kid);
		if (strcmp(json_object_get_string(v), kid) == 0)
			secret = cfg.jwt_previous_secret;
	}
out:
	json_object_put(h);
	return secret;
}

/*
 * Checks an access token's signature, algorithm, type and times.
 * Returns JWT_OK with the user and session ids (in the arena),
 * JWT_EXPIRED, or JWT_BAD.
 */
int
jwt_check(struct arena *a, const char *token, const char **uid,
    const char **sid)
{
	jwt_t		*jwt = NULL;
	const char	*secret, *typ, *sub, *s;
	long		 exp, iat, now = (long)time(NULL);
	int		 rc = JWT_BAD;

	if (strlen(token) > 4096 || (secret = pick_secret(a, token)) == NULL)
		return JWT_BAD;
	if (jwt_decode(&jwt, token, (const unsigned char *)secret,
	    (int)strlen(secret)) != 0 || jwt == NULL)
		goto out;
	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;
	typ = jwt_get_grant(jwt, "typ");
	sub = jwt_get_grant(jwt, "sub");
	s = jwt_get_grant(jwt, "sid");
	exp = jwt_get_grant_int(jwt, "exp");
	iat = jwt_get_grant_int(jwt, "iat");
	if (typ == NULL || strcmp(typ, "access") != 0 || sub == NULL ||
	    s == NULL || valid_id(sub, strlen(sub)) != NULL ||
	    valid_id(s, strlen(s)) != NULL || exp <= 0 || iat <= 0 ||
	    iat > now + 60)
		goto out;
	if (exp <= now) {
		rc = JWT_EXPIRED;
		goto out;
	}
	*uid = arena_strdup(a, sub);
	*sid = arena_strdup(a, s);
	rc = JWT_OK;
out:
	jwt_free(jwt);
	return rc;
}

/*
 * Whether token decodes under key with libjwt (and as HS256).
 */
static bool
decodes(const char *token, const char *key)
{
	jwt_t	*jwt = NULL;
	bool	 ok;

	ok = jwt_decode(&jwt, token, (const unsigned char *)key,
	    (int)strlen(key)) == 0 && jwt != NULL &&
	    jwt_get_alg(jwt) == JWT_ALG_HS256;
	jwt_free(jwt);
	return ok;
}

/*
 * The start-up check of the libjwt in use (tollgate was built against
 * TG_LIBJWT_VERSION): safe HS256 checking depends on it (the distribution
 * patches older releases), so before serving, known answers are checked
 * with a throwaway key: a token it made verifies, and one with a changed,
 * cut or missing signature, one under another key, and one claiming
 * "alg": "none" are all refused.  Returns 0, or -1 with a sentence for
 * the operator in err.
 */
int
jwt_selftest(char *err, size_t errlen)
{
	static const char key[] = "tollgate-selftest-key-0123456789abcdef";
	static const char other[] = "tollgate-selftest-key-fedcba9876543210";
	jwt_t		*jwt = NULL;
	char		*tok = NULL, *bad = NULL, *none = NULL, *dot;
	size_t		 n;
	const char	*why = NULL;

	if (jwt_new(&jwt) != 0 || jwt_add_grant(jwt, "sub", "selftest") != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)time(NULL) + 60) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key,
	    (int)strlen(key)) != 0 || (tok = jwt_encode_str(jwt)) == NULL) {
		why = "cannot make an HS256 token";
		goto out;
	}
	n = strlen(tok);
	if ((bad = malloc(n + 16)) == NULL || (none = malloc(n + 64)) ==
	    NULL || (dot = strrchr(tok, '.')) == NULL) {
		why = "out of memory";
		goto out;
	}
	if (!decodes(tok, key))
		why = "refuses a good HS256 token";
	else if (decodes(tok, other))
		why = "accepts a token signed with another key";
	if (why == NULL) {
		memcpy(bad, tok, n + 1);
		bad[n - 1] = bad[n - 1] == 'A' ? 'B' : 'A';
		if (decodes(bad, key))
			why = "accepts a changed signature";
	}
	if (why == NULL) {
		memcpy(bad, tok, (size_t)(dot - tok) + 1);
		bad[dot - tok + 1] = '\0';
		if (decodes(bad, key))
			why = "accepts a token without its signature";
	}
	if (why == NULL) {
		memcpy(bad, tok, (size_t)(dot - tok) + 11);
		bad[dot - tok + 11] = '\0';
		if (decodes(bad, key))
			why = "accepts a cut signature";
	}
	if (why == NULL) {
		/* {"alg":"none","typ":"JWT"} and the same claims, unsigned. */
		snprintf(none, n + 64, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.%.*s.",
		    (int)(dot - strchr(tok, '.') - 1), strchr(tok, '.') + 1);
		if (decodes(none, key))
			why = "accepts \"alg\": \"none\"";
	}
out:
	/* Silent when it passes (tollgated -t -q says nothing then). */
	if (why != NULL)
		snprintf(err, errlen, "libjwt (built against %s) %s: install "
		    "a libjwt with the security fixes", TG_LIBJWT_VERSION, why);
	free(none);
	free(bad);
	free(tok);
	jwt_free(jwt);
	return why != NULL ? -1 : 0;
}
