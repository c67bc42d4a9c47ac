/*
 * libsodium helpers: random ids and tokens, keyed hashes of tokens and
 * keys (so the database never holds a usable secret), constant-time
 * comparison and base64url.
 */
#include <string.h>

#include <sodium.h>

#include "core/core.h"

/* Whether the last password_hash of this process found the cap full. */
static bool	 busy;

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
static char *
keyed_hash(struct arena *a, const char *s, const unsigned char key[32])
{
	unsigned char	 h[32];
	char		*hex = arena_alloc(a, 65);

	crypto_generichash(h, sizeof(h), (const unsigned char *)s, strlen(s),
	    key, 32);
	sodium_bin2hex(hex, 65, h, sizeof(h));
	return hex;
}

char *
token_hash(struct arena *a, const char *s)
{
	return keyed_hash(a, s, cfg.crypto_key);
}

/*
 * The same hash under [crypto] previous_key, or NULL when there is none:
 * what a row written before the key's rotation holds.
 */
char *
token_hash_previous(struct arena *a, const char *s)
{
	return cfg.has_previous_key ?
	    keyed_hash(a, s, cfg.crypto_previous_key) : NULL;
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

/*
 * Hashes a password with Argon2id at the configured cost, in one of the
 * host's hashing slots (hashcap.c).  Returns the encoded hash in the
 * arena, or NULL when it failed or no slot came free (password_busy()
 * then says so).
 */
char *
password_hash(struct arena *a, const char *pw)
{
	char	*out = arena_alloc(a, crypto_pwhash_STRBYTES);
	int	 rc;

	busy = false;
	if (!hashcap_take()) {
		busy = true;
		metrics_count(CTR_PW_BUSY, 1);
		return NULL;
	}
	rc = crypto_pwhash_str_alg(out, pw, strlen(pw), cfg.argon2_ops,
	    cfg.argon2_memory, crypto_pwhash_ALG_ARGON2ID13);
	hashcap_give();
	metrics_count(CTR_PW_HASH, 1);
	return rc == 0 ? out : NULL;
}

bool
password_busy(void)
{
	return busy;
}

/*
 * Checks pw against an encoded hash.  A NULL hash (an unknown email, or
 * an account without a password) is checked against a dummy hash made
 * once per process, so every answer costs one Argon2id.  Returns 1 when
 * it matches, 0 when not, or TG_BUSY when no hashing slot came free.
 */
int
password_check(const char *hash, const char *pw)
{
	static char	 dummy[crypto_pwhash_STRBYTES];
	bool		 real = hash != NULL;
	int		 rc;

	if (!hashcap_take()) {
		metrics_count(CTR_PW_BUSY, 1);
		return TG_BUSY;
	}
	if (!real) {
		if (dummy[0] == '\0') {
			char rnd[33];

			randombytes_buf(rnd, 32);
			rnd[32] = '\0';
			if (crypto_pwhash_str_alg(dummy, rnd, 32,
			    cfg.argon2_ops, cfg.argon2_memory,
			    crypto_pwhash_ALG_ARGON2ID13) != 0) {
				hashcap_give();
				return 0;
			}
		}
		hash = dummy;
	}
	rc = crypto_pwhash_str_verify(hash, pw, strlen(pw));
	hashcap_give();
	metrics_count(CTR_PW_HASH, 1);
	return rc == 0 && real ? 1 : 0;
}

/* True when a hash was made with other parameters than the configured. */
bool
password_needs_rehash(const char *hash)
{
	return crypto_pwhash_str_needs_rehash(hash, cfg.argon2_ops,
	    cfg.argon2_memory) != 0;
}

/* The subkey that seals stored secrets, derived from a crypto key. */
static void
seal_key_of(unsigned char key[crypto_secretbox_KEYBYTES],
    const unsigned char master[32])
{
	crypto_kdf_derive_from_key(key, crypto_secretbox_KEYBYTES, 1,
	    "tg-seal_", master);
}

static void
seal_key(unsigned char key[crypto_secretbox_KEYBYTES])
{
	seal_key_of(key, cfg.crypto_key);
}

/*
 * Encrypts and authenticates n bytes (nonce first).  Returns the sealed
 * bytes in the arena, their length in *outlen.
 */
unsigned char *
seal(struct arena *a, const void *plain, size_t n, size_t *outlen)
{
	unsigned char	 key[crypto_secretbox_KEYBYTES];
	unsigned char	*out;

	*outlen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
	out = arena_alloc(a, *outlen);
	randombytes_buf(out, crypto_secretbox_NONCEBYTES);
	seal_key(key);
	crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, plain, n,
	    out, key);
	sodium_memzero(key, sizeof(key));
	return out;
}

/* Opens sealed under master into out (plain bytes).  Returns 0 or -1. */
static int
open_with(unsigned char *out, const unsigned char *s, size_t n,
    const unsigned char master[32])
{
	unsigned char	 key[crypto_secretbox_KEYBYTES];
	int		 rc;

	seal_key_of(key, master);
	rc = crypto_secretbox_open_easy(out, s + crypto_secretbox_NONCEBYTES,
	    n - crypto_secretbox_NONCEBYTES, s, key);
	sodium_memzero(key, sizeof(key));
	return rc;
}

/*
 * Opens what seal made, under the crypto key or else [crypto]
 * previous_key (*old, when not NULL, says which).  Returns the plain
 * text (NUL-terminated, in the arena), or NULL when it was tampered with.
 */
char *
unseal_ex(struct arena *a, const void *sealed, size_t n, size_t *outlen,
    bool *old)
{
	const unsigned char *s = sealed;
	char		*out;
	size_t		 plain;

	if (old != NULL)
		*old = false;
	if (n < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return NULL;
	plain = n - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	out = arena_alloc(a, plain + 1);
	if (open_with((unsigned char *)out, s, n, cfg.crypto_key) != 0) {
		if (!cfg.has_previous_key || open_with((unsigned char *)out, s,
		    n, cfg.crypto_previous_key) != 0)
			return NULL;
		if (old != NULL)
			*old = true;
	}
	out[plain] = '\0';
	if (outlen != NULL)
		*outlen = plain;
	return out;
}

char *
unseal(struct arena *a, const void *sealed, size_t n, size_t *outlen)
{
	return unseal_ex(a, sealed, n, outlen, NULL);
}

/* Lower-case hex of n bytes, in the arena. */
char *
hex(struct arena *a, const void *bin, size_t n)
{
	char	*out = arena_alloc(a, n * 2 + 1);

	sodium_bin2hex(out, n * 2 + 1, bin, n);
	return out;
}
