/*
 * Fuzzes stripe_signature_check (src/core/stripe_sig.c): the first part of the
 * input up to a NUL is the Stripe-Signature header, the rest the raw body.
 * Beyond not crashing: the answer is 0, -1 or -2; a header signed for this
 * body with the right secret passes at its own time and is stale (-2)
 * outside the tolerance; the same header checked with another secret, or
 * against a body changed by one byte, never passes.
 */
#include <stdio.h>

#include <sodium.h>

#include "fuzz.h"

#define SECRET	"whsec_fuzz_0123456789abcdef"
#define NOW	1795000000LL

/* Writes "t=<ts>,v1=<hex mac>" for body into out. */
static void
sign(char *out, size_t outlen, long long ts, const char *secret,
    const char *body, size_t len)
{
	crypto_auth_hmacsha256_state	 st;
	unsigned char			 mac[crypto_auth_hmacsha256_BYTES];
	char				 hexmac[2 * sizeof(mac) + 1], tbuf[32];

	snprintf(tbuf, sizeof(tbuf), "%lld", ts);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
	    strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)tbuf,
	    strlen(tbuf));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hexmac, sizeof(hexmac), mac, sizeof(mac));
	snprintf(out, outlen, "t=%s,v1=%s", tbuf, hexmac);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*nul = memchr(data, '\0', size);
	size_t		 hlen = nul != NULL ? (size_t)(nul - data) : size;
	char		*hdr = fuzz_cstr(data, hlen);
	char		*body = fuzz_copy(nul != NULL ? nul + 1 : data + size,
			    nul != NULL ? size - hlen - 1 : 0);
	size_t		 blen = nul != NULL ? size - hlen - 1 : 0;
	char		 good[160];
	int		 rc;

	if (sodium_init() < 0)
		abort();
	rc = stripe_signature_check(hdr, body, blen, SECRET, NOW, 300);
	FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2, "answers 0, -1 or -2");
	FUZZ_CHECK(stripe_signature_check(hdr, body, blen, "", NOW, 300) == -1,
	    "an empty secret never passes");
	FUZZ_CHECK(stripe_signature_check(NULL, body, blen, SECRET, NOW, 300)
	    == -1, "no header never passes");

	sign(good, sizeof(good), NOW - 10, SECRET, body, blen);
	FUZZ_CHECK(stripe_signature_check(good, body, blen, SECRET, NOW, 300)
	    == 0, "a right signature within the tolerance passes");
	FUZZ_CHECK(stripe_signature_check(good, body, blen, SECRET,
	    NOW + 1000, 300) == -2, "a right but old signature is stale");
	FUZZ_CHECK(stripe_signature_check(good, body, blen, "whsec_other",
	    NOW, 300) == -1, "another secret never passes");
	if (blen > 0) {
		body[0] ^= 1;
		FUZZ_CHECK(stripe_signature_check(good, body, blen, SECRET,
		    NOW, 300) == -1, "a changed body never passes");
	}
	free(hdr);
	free(body);
	return 0;
}
