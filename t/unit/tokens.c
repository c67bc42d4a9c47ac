/*
 * Unit tests of the token code: access JWTs (src/core/jwt.c: issue, check,
 * kid rotation, forged and expired tokens), random tokens and their keyed
 * hashes, constant-time comparison and sealing (src/core/crypto.c), and
 * passwords at a configured cost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <sodium.h>

#include "server/server.h"
#include "tap.h"

#define SECRET_A "secret-a-0123456789abcdef0123456789abcdef"
#define SECRET_B "secret-b-0123456789abcdef0123456789abcdef"
#define UID	"AAAAAAAAAAAAAAAAAAAAAA"
#define SID	"BBBBBBBBBBBBBBBBBBBBBB"

/* The kid header of a token made by jwt_issue, in the arena. */
static char *
kid_of_token(struct arena *a, const char *tok)
{
	jwt_t		*j = NULL;
	char		*kid = NULL;
	const char	*k;

	if (jwt_decode(&j, tok, NULL, 0) == 0 && j != NULL &&
	    (k = jwt_get_header(j, "kid")) != NULL)
		kid = arena_strdup(a, k);
	jwt_free(j);
	return kid;
}

/* A token made here: claims and algorithm as given, signed with secret. */
static char *
make(struct arena *a, jwt_alg_t alg, const char *secret, const char *kid,
    const char *typ, long iat, long exp)
{
	jwt_t	*j = NULL;
	char	*s, *out = NULL;

	if (jwt_new(&j) != 0)
		return NULL;
	if (kid != NULL)
		jwt_add_header(j, "kid", kid);
	jwt_add_grant(j, "sub", UID);
	jwt_add_grant(j, "sid", SID);
	if (typ != NULL)
		jwt_add_grant(j, "typ", typ);
	jwt_add_grant_int(j, "iat", iat);
	jwt_add_grant_int(j, "exp", exp);
	if (jwt_set_alg(j, alg, (const unsigned char *)secret,
	    secret ? (int)strlen(secret) : 0) == 0 &&
	    (s = jwt_encode_str(j)) != NULL) {
		out = arena_strdup(a, s);
		free(s);
	}
	jwt_free(j);
	return out;
}

int
main(void)
{
	struct arena	*a = arena_new();
	const char	*uid = NULL, *sid = NULL, *kid;
	char		*tok, *t2, *p;
	long		 now = (long)time(NULL);
	size_t		 n;
	unsigned char	*sealed;
	int		 i;

	if (crypto_init() < 0)
		return 1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.jwt_secret = SECRET_A;
	cfg.jwt_previous_secret = "";
	for (i = 0; i < 32; i++)
		cfg.crypto_key[i] = (unsigned char)i;
	cfg.argon2_ops = 1;
	cfg.argon2_memory = 8 * 1024 * 1024;

	/* Issue and check. */
	tok = jwt_issue(a, UID, SID);
	ok(tok != NULL, "jwt_issue makes a token");
	is_int(jwt_check(a, tok, &uid, &sid), JWT_OK, "it checks");
	is_str(uid, UID, "sub comes back");
	is_str(sid, SID, "sid comes back");
	is_int(jwt_ttl(), 900, "access tokens live 900 s");
	kid = kid_of_token(a, tok);
	ok(kid != NULL && strlen(kid) == 16, "a 16-digit kid header");
	ok(kid != NULL && strstr(SECRET_A, kid) == NULL,
	    "the kid does not show the secret");

	/* Rotation: the previous secret still verifies, by kid. */
	cfg.jwt_secret = SECRET_B;
	is_int(jwt_check(a, tok, &uid, &sid), JWT_BAD,
	    "after a rotation without previous_secret: refused");
	cfg.jwt_previous_secret = SECRET_A;
	is_int(jwt_check(a, tok, &uid, &sid), JWT_OK,
	    "with previous_secret: accepted");
	t2 = jwt_issue(a, UID, SID);
	ok(kid_of_token(a, t2) != NULL && strcmp(kid_of_token(a, t2), kid) != 0,
	    "new tokens name the new key");
	is_int(jwt_check(a, t2, &uid, &sid), JWT_OK, "and check");
	cfg.jwt_secret = SECRET_A;
	cfg.jwt_previous_secret = "";

	/* Forged, broken and expired tokens. */
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_A, kid, "access",
	    now, now + 60), &uid, &sid), JWT_OK, "a token made here checks");
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_B, kid, "access",
	    now, now + 60), &uid, &sid), JWT_BAD, "wrong key, right kid: bad");
	is_int(jwt_check(a, make(a, JWT_ALG_HS512, SECRET_A, kid, "access",
	    now, now + 60), &uid, &sid), JWT_BAD, "HS512: bad");
	is_int(jwt_check(a, make(a, JWT_ALG_NONE, NULL, kid, "access", now,
	    now + 60), &uid, &sid), JWT_BAD, "alg none: bad");
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_A, NULL, "access",
	    now, now + 60), &uid, &sid), JWT_BAD, "no kid: bad");
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_A, kid, "refresh",
	    now, now + 60), &uid, &sid), JWT_BAD, "typ refresh: bad");
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_A, kid, NULL, now,
	    now + 60), &uid, &sid), JWT_BAD, "no typ: bad");
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_A, kid, "access",
	    now - 1000, now - 10), &uid, &sid), JWT_EXPIRED, "expired");
	is_int(jwt_check(a, make(a, JWT_ALG_HS256, SECRET_A, kid, "access",
	    now + 3600, now + 7200), &uid, &sid), JWT_BAD,
	    "issued in the future: bad");
	t2 = arena_strdup(a, tok);
	p = strrchr(t2, '.');
	p[1] = p[1] == 'A' ? 'B' : 'A';
	is_int(jwt_check(a, t2, &uid, &sid), JWT_BAD, "a changed signature: bad");
	t2 = arena_strdup(a, tok);
	p = strchr(t2, '.') + 5;
	*p = *p == 'A' ? 'B' : 'A';
	is_int(jwt_check(a, t2, &uid, &sid), JWT_BAD, "a changed payload: bad");
	is_int(jwt_check(a, "", &uid, &sid), JWT_BAD, "empty: bad");
	is_int(jwt_check(a, "a.b", &uid, &sid), JWT_BAD, "two parts: bad");
	is_int(jwt_check(a, "tgr_abcdefghijklmnopqrstuvwxyz", &uid, &sid),
	    JWT_BAD, "a refresh token: bad");

	/* Random tokens and their hashes. */
	tok = new_token(a, "tgk_", 32);
	ok(strncmp(tok, "tgk_", 4) == 0, "new_token keeps the prefix");
	is_int(strlen(tok), 4 + 43, "32 bytes are 43 base64url characters");
	ok(valid_token(tok + 4, strlen(tok + 4)) == NULL, "URL-safe");
	ok(strcmp(tok, new_token(a, "tgk_", 32)) != 0, "two tokens differ");
	is_int(strlen(new_id(a)), 22, "ids are 22 characters");
	p = token_hash(a, "abc");
	is_int(strlen(p), 64, "token_hash: 64 hex digits");
	is_str(token_hash(a, "abc"), p, "token_hash is deterministic");
	ok(strcmp(token_hash(a, "abd"), p) != 0, "and depends on the text");
	cfg.crypto_key[0] ^= 1;
	ok(strcmp(token_hash(a, "abc"), p) != 0, "and on the crypto key");
	cfg.crypto_key[0] ^= 1;

	ok(ct_streq("same", "same"), "ct_streq: equal");
	ok(!ct_streq("same", "sama"), "ct_streq: different");
	ok(!ct_streq("same", "same!"), "ct_streq: different lengths");
	ok(!ct_streq(NULL, "x") && !ct_streq("x", NULL), "ct_streq: NULL");

	/* Sealing. */
	sealed = seal(a, "the pair", 8, &n);
	ok(sealed != NULL && n > 8, "seal");
	p = unseal(a, sealed, n, NULL);
	is_str(p, "the pair", "unseal gives it back");
	sealed[n - 1] ^= 1;
	ok(unseal(a, sealed, n, NULL) == NULL, "a tampered seal: NULL");
	ok(unseal(a, sealed, 5, NULL) == NULL, "a short seal: NULL");

	/* Passwords at the configured cost. */
	p = password_hash(a, "correct horse battery");
	ok(p != NULL && strncmp(p, "$argon2id$", 10) == 0, "Argon2id hash");
	ok(password_check(p, "correct horse battery") == 1, "the password verifies");
	ok(password_check(p, "correct horse batterx") == 0, "another does not");
	ok(password_check(NULL, "correct horse battery") == 0,
	    "no hash (unknown email): false");
	ok(!password_needs_rehash(p), "no rehash at the same cost");
	cfg.argon2_ops = 2;
	ok(password_needs_rehash(p), "a rehash when the cost changes");

	arena_free(a);
	{
		char	 jerr[256];

		ok(jwt_selftest(jerr, sizeof(jerr)) == 0,
		    "the libjwt in use passes the start-up known answers");
	}
	return done_testing();
}
