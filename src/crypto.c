/*
 * libsodium helpers: random ids and tokens, keyed hashes of tokens and
 * keys (so the database never holds a usable secret), constant-time
 * comparison and base64url.
 */
#include <string.h>

#include <sodium.h>

#include "tollgate.h"

int
crypto_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

/* Returns the base64url text (no padding) of n bytes, in the arena. */
char *
b64url(struct arena *a, const void *bin, size_t n)
{
	size_t	 len = sodium_base64_ENCODED_LEN(n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	*out = arena_alloc(a, len);

	sodium_bin2base64(out, len, bin, n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

/* A new opaque id: 16 random bytes as 22 base64url characters. */
char *
new_id(struct arena *a)
{
	unsigned char	 raw[16];
	char		*id;

	randombytes_buf(raw, sizeof(raw));
	id = b64url(a, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	return id;
}

/* A new secret token: prefix and nbytes random bytes in base64url. */
char *
new_token(struct arena *a, const char *prefix, size_t nbytes)
{
	unsigned char	 raw[64];
	char		*tok;

	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	randombytes_buf(raw, nbytes);
	tok = arena_printf(a, "%s%s", prefix, b64url(a, raw, nbytes));
	sodium_memzero(raw, sizeof(raw));
	return tok;
}

/*
 * The keyed BLAKE2b-256 of s under the configured crypto key, as 64 hex
 * characters in the arena.  Tokens and keys are high-entropy secrets, so
 * a fast keyed hash is enough and keeps lookups cheap.
 */
char *
token_hash(struct arena *a, const char *s)
{
	unsigned char	 h[32];
	char		*hex = arena_alloc(a, 65);

	crypto_generichash(h, sizeof(h), (const unsigned char *)s, strlen(s),
	    cfg.crypto_key, sizeof(cfg.crypto_key));
	sodium_bin2hex(hex, 65, h, sizeof(h));
	return hex;
}

/* Compares two strings in time that depends only on their lengths. */
bool
ct_streq(const char *x, const char *y)
{
	size_t	 lx, ly;

	if (x == NULL || y == NULL)
		return false;
	lx = strlen(x);
	ly = strlen(y);
	if (lx != ly)
		return false;
	return sodium_memcmp(x, y, lx) == 0;
}
