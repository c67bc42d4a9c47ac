/*
 * JWTs signed by somebody else: an OpenID provider's ID tokens and the
 * access tokens of a trusted identity service ([oidc NAME], [trust NAME];
 * contract section 3, "More ways in").
 *
 * The keys come from the issuer's JWKS (fetched with libcurl, kept per
 * process by URL and kid, fetched again when a token names a kid not
 * seen, at most once a second (once in 10 seconds after a failed fetch,
 * while keys are held), and at least once an hour; a fetch is given up
 * after 3 seconds, since a gate worker waits for it).  Each key is
 * turned into a PEM public key with OpenSSL once, when it is fetched,
 * and carries the one algorithm it may verify: its own "alg" when the
 * JWK names one, else RS256 for an RSA key and ES256 for a P-256 key.  A
 * token is verified (by libjwt, given that PEM) only when its header's
 * alg is exactly its key's: "none", HS256 with a public key as the
 * secret, or any algorithm but RS256 and ES256 never get that far.  Its
 * claims must then hold the issuer, the audience (a string or an array
 * holding it) and an "exp" in the future (30 seconds of clock skew
 * either way, also for "nbf").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "core/core.h"

#define JWKS_MAX_KEYS	16
#define JWKS_MAX_SETS	16
#define JWKS_TTL	3600	/* seconds a fetched set is kept at most */
#define JWKS_RETRY	1	/* seconds between fetches for unknown kids */
#define JWKS_FAIL_RETRY	10	/* seconds after a failed fetch */
#define JWKS_LIMIT_MS	3000	/* a fetch is given up after this */
#define JWT_MAX_LEN	8192
#define CLOCK_SKEW	30

struct jwk {
	char		*kid;		/* "" when the JWK has none */
	jwt_alg_t	 alg;		/* the one algorithm it verifies */
	char		*pem;
};

struct jwkset {
	char		*url;
	struct jwk	 keys[JWKS_MAX_KEYS];
	size_t		 n;
	double		 fetched;	/* last good fetch, 0: never */
	double		 tried;		/* last attempt */
	bool		 failed;	/* the last attempt failed */
};

static struct jwkset	 sets[JWKS_MAX_SETS];

/* Decodes base64url (no padding) into a malloc'd buffer; NULL on error. */
static unsigned char *
b64url_dec(const char *s, size_t *len)
{
	size_t		 n = strlen(s);
	unsigned char	*out;

	if (n == 0 || n > 16384 || (out = malloc(n)) == NULL)
		return NULL;
	if (sodium_base642bin(out, n, s, n, NULL, len, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* A big number from a base64url JWK member, or NULL. */
static BIGNUM *
jwk_bn(struct json_object *jwk, const char *member)
{
	const char	*s = json_str_at(jwk, member);
	unsigned char	*bin;
	size_t		 len;
	BIGNUM		*bn;

	if (s == NULL || (bin = b64url_dec(s, &len)) == NULL)
		return NULL;
	bn = BN_bin2bn(bin, (int)len, NULL);
	free(bin);
	return bn;
}

/* The PEM of an EVP_PKEY's public key, malloc'd, or NULL. */
static char *
pkey_pem(EVP_PKEY *pkey)
{
	BIO	*bio;
	char	*data, *pem = NULL;
	long	 len;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio_PUBKEY(bio, pkey) == 1 &&
	    (len = BIO_get_mem_data(bio, &data)) > 0 &&
	    (pem = malloc((size_t)len + 1)) != NULL) {
		memcpy(pem, data, (size_t)len);
		pem[len] = '\0';
	}
	BIO_free(bio);
	return pem;
}

/*
 * The PEM public key of one JWK (RSA of 2048 bits or more, or EC P-256),
 * malloc'd, with the algorithm it may verify in *alg; NULL for a key that
 * is not usable for signatures here.
 */
static char *
jwk_pem(struct json_object *jwk, jwt_alg_t *alg)
{
	const char	*kty = json_str_at(jwk, "kty");
	const char	*use = json_str_at(jwk, "use");
	const char	*jalg = json_str_at(jwk, "alg");
	OSSL_PARAM_BLD	*bld = NULL;
	OSSL_PARAM	*params = NULL;
	EVP_PKEY_CTX	*ctx = NULL;
	EVP_PKEY	*pkey = NULL;
	BIGNUM		*n = NULL, *e = NULL;
	unsigned char	*x = NULL, *y = NULL, point[65];
	size_t		 xl, yl;
	char		*pem = NULL;
	bool		 rsa;

	if (kty == NULL || (use != NULL && strcmp(use, "sig") != 0))
		return NULL;
	if (strcmp(kty, "RSA") == 0)
		rsa = true;
	else if (strcmp(kty, "EC") == 0)
		rsa = false;
	else
		return NULL;
	if (jalg != NULL && strcmp(jalg, rsa ? "RS256" : "ES256") != 0)
		return NULL;	/* an algorithm this key is not used for here */
	*alg = rsa ? JWT_ALG_RS256 : JWT_ALG_ES256;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		goto out;
	if (rsa) {
		if ((n = jwk_bn(jwk, "n")) == NULL ||
		    (e = jwk_bn(jwk, "e")) == NULL || BN_num_bits(n) < 2048 ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
			goto out;
	} else {
		const char *crv = json_str_at(jwk, "crv");

		if (crv == NULL || strcmp(crv, "P-256") != 0 ||
		    json_str_at(jwk, "x") == NULL ||
		    json_str_at(jwk, "y") == NULL ||
		    (x = b64url_dec(json_str_at(jwk, "x"), &xl)) == NULL ||
		    (y = b64url_dec(json_str_at(jwk, "y"), &yl)) == NULL ||
		    xl != 32 || yl != 32)
			goto out;
		point[0] = 0x04;
		memcpy(point + 1, x, 32);
		memcpy(point + 33, y, 32);
		if (!OSSL_PARAM_BLD_push_utf8_string(bld,
		    OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld,
		    OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
			goto out;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC",
	    NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	pem = pkey_pem(pkey);
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(x);
	free(y);
	return pem;
}

static void
set_clear(struct jwkset *s)
{
	size_t	 i;

	for (i = 0; i < s->n; i++) {
		free(s->keys[i].kid);
		free(s->keys[i].pem);
	}
	s->n = 0;
}

/*
 * Fetches the JWKS at s->url into s (replacing what it held: a key the
 * issuer no longer publishes stops verifying).  Returns 0, or -1 (the
 * old keys are kept then).
 */
static int
set_fetch(struct arena *a, struct jwkset *s)
{
	static const char *const headers[] = { "Accept: application/json",
	    NULL };
	struct json_object	*doc, *keys, *k;
	struct jwk		 got[JWKS_MAX_KEYS];
	struct buf		 answer;
	const char		*kid;
	char			 err[256];
	size_t			 i, n, m = 0;
	int			 status;

	s->tried = now_seconds();
	s->failed = true;
	/*
	 * Briefly: a gate worker waits for this fetch (on a token's new
	 * kid), and so does every check it holds.
	 */
	status = http_call_within(a, "GET", s->url, headers, NULL, &answer,
	    err, sizeof(err), JWKS_LIMIT_MS);
	if (status != 200) {
		log_warn("jwks_fetch_failed", " url=\"%s\" status=%d err=\"%s\"",
		    s->url, status, status < 0 ? err : "-");
		return -1;
	}
	if ((doc = json_parse_any(answer.p, answer.len)) == NULL ||
	    !json_object_object_get_ex(doc, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array)) {
		json_object_put(doc);
		log_warn("jwks_fetch_failed", " url=\"%s\" msg=\"not a JWKS\"",
		    s->url);
		return -1;
	}
	n = json_object_array_length(keys);
	for (i = 0; i < n && m < JWKS_MAX_KEYS; i++) {
		k = json_object_array_get_idx(keys, i);
		if ((got[m].pem = jwk_pem(k, &got[m].alg)) == NULL)
			continue;
		kid = json_str_at(k, "kid");
		if ((got[m].kid = strdup(kid != NULL ? kid : "")) == NULL) {
			free(got[m].pem);
			continue;
		}
		m++;
	}
	json_object_put(doc);
	set_clear(s);
	memcpy(s->keys, got, m * sizeof(got[0]));
	s->n = m;
	s->fetched = s->tried;
	s->failed = false;
	log_info("jwks_fetched", " url=\"%s\" keys=%zu", s->url, m);
	return 0;
}

/* The set of url, made (empty) on first use; NULL when all are taken. */
static struct jwkset *
set_of(const char *url)
{
	size_t	 i;

	for (i = 0; i < JWKS_MAX_SETS; i++)
		if (sets[i].url != NULL && strcmp(sets[i].url, url) == 0)
			return &sets[i];
	for (i = 0; i < JWKS_MAX_SETS; i++)
		if (sets[i].url == NULL)
			return (sets[i].url = strdup(url)) != NULL ?
			    &sets[i] : NULL;
	return NULL;
}

static const struct jwk *
set_find(const struct jwkset *s, const char *kid)
{
	size_t	 i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->keys[i].kid, kid) == 0)
			return &s->keys[i];
	return NULL;
}

/*
 * One part (0 header, 1 payload) of a compact JWT, decoded and parsed as
 * a JSON object, without any check of its signature.  The caller puts
 * the result; NULL when it is not one.
 */
struct json_object *
jwt_part_unverified(const char *token, int part)
{
	const char		*p = token, *dot;
	char			*seg;
	unsigned char		*bin;
	size_t			 len;
	struct json_object	*o = NULL;

	if (token == NULL || strlen(token) > JWT_MAX_LEN)
		return NULL;
	while (part-- > 0) {
		if ((p = strchr(p, '.')) == NULL)
			return NULL;
		p++;
	}
	if ((dot = strchr(p, '.')) == NULL || dot == p ||
	    (seg = strndup(p, (size_t)(dot - p))) == NULL)
		return NULL;
	if ((bin = b64url_dec(seg, &len)) != NULL) {
		o = parse_json_object((const char *)bin, len);
		free(bin);
	}
	free(seg);
	return o;
}

/* Whether the aud claim (a string or an array of them) holds aud. */
static bool
aud_holds(struct json_object *claims, const char *aud)
{
	struct json_object	*v, *e;
	size_t			 i, n;

	if (!json_object_object_get_ex(claims, "aud", &v) || v == NULL)
		return false;
	if (json_object_is_type(v, json_type_string))
		return strcmp(json_object_get_string(v), aud) == 0;
	if (!json_object_is_type(v, json_type_array))
		return false;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(v, i);
		if (json_object_is_type(e, json_type_string) &&
		    strcmp(json_object_get_string(e), aud) == 0)
			return true;
	}
	return false;
}

/*
 * Verifies token against the JWKS at jwks_url, for issuer and audience.
 * Returns JWKS_OK with the claims in *claims (the caller puts them),
 * JWKS_EXPIRED (good but expired), JWKS_BAD (anything else wrong: its
 * form, its alg, an unknown kid, its signature, issuer or audience), or
 * JWKS_DOWN (no key could be fetched).  Per process; not thread-safe.
 */
int
jwks_verify(struct arena *a, const char *jwks_url, const char *token,
    const char *issuer, const char *audience, struct json_object **claims)
{
	struct json_object	*hdr, *c = NULL;
	struct jwkset		*s;
	const struct jwk	*k;
	const char		*alg, *kid, *iss;
	char			*grants;
	jwt_t			*jwt = NULL;
	double			 now = now_seconds();
	long long		 exp, nbf;
	int			 rc = JWKS_BAD;

	*claims = NULL;
	if ((hdr = jwt_part_unverified(token, 0)) == NULL)
		return JWKS_BAD;
	alg = json_str_at(hdr, "alg");
	kid = json_str_at(hdr, "kid");
	if (kid == NULL)
		kid = "";
	/* Only the two asymmetric algorithms, never "none" or an HMAC. */
	if (alg == NULL || (strcmp(alg, "RS256") != 0 &&
	    strcmp(alg, "ES256") != 0))
		goto out;
	if ((s = set_of(jwks_url)) == NULL)
		goto out;
	/*
	 * Fetched when never held, when older than JWKS_TTL, or for a kid
	 * not seen; never more than once per JWKS_RETRY, so neither a
	 * stream of made-up kids nor an issuer that is down costs a fetch
	 * per request.
	 */
	if ((s->fetched == 0 || now - s->fetched > JWKS_TTL ||
	    set_find(s, kid) == NULL) &&
	    (s->tried == 0 || now - s->tried >= (s->failed && s->fetched != 0 ?
	    JWKS_FAIL_RETRY : JWKS_RETRY)))
		set_fetch(a, s);
	if (s->fetched == 0) {
		rc = JWKS_DOWN;
		goto out;
	}
	if ((k = set_find(s, kid)) == NULL) {
		log_info("jwks_unknown_kid", " url=\"%s\" kid=\"%.64s\"",
		    jwks_url, kid);
		goto out;
	}
	/* The key's own algorithm, and that one only. */
	if (strcmp(alg, k->alg == JWT_ALG_RS256 ? "RS256" : "ES256") != 0)
		goto out;
	if (jwt_decode(&jwt, token, (const unsigned char *)k->pem,
	    (int)strlen(k->pem)) != 0 || jwt == NULL ||
	    jwt_get_alg(jwt) != k->alg)
		goto out;
	if ((grants = jwt_get_grants_json(jwt, NULL)) == NULL)
		goto out;
	c = parse_json_object(grants, strlen(grants));
	free(grants);
	if (c == NULL)
		goto out;
	iss = json_str_at(c, "iss");
	if (iss == NULL || strcmp(iss, issuer) != 0 ||
	    !aud_holds(c, audience))
		goto out;
	exp = json_int_at(c, "exp", 0);
	nbf = json_int_at(c, "nbf", 0);
	if (exp <= 0 || nbf > (long long)now + CLOCK_SKEW)
		goto out;
	if (exp + CLOCK_SKEW < (long long)now) {
		rc = JWKS_EXPIRED;
		goto out;
	}
	*claims = c;
	c = NULL;
	rc = JWKS_OK;
out:
	if (jwt != NULL)
		jwt_free(jwt);
	json_object_put(c);
	json_object_put(hdr);
	return rc;
}
