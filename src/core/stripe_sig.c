/*
 * Stripe's webhook signature: "Stripe-Signature: t=<unix time>,v1=<hex
 * HMAC-SHA256 of "<t>.<raw body>" with the webhook secret>", possibly with
 * several v1 values (during a secret's rotation).  A pure function, kept
 * apart from the webhook's database work so it can be fuzzed alone.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"

#define MAX_V1		8	/* signatures looked at in one header */

int
stripe_signature_check(const char *header, const char *body, size_t len,
    const char *secret, long long now, long tolerance)
{
	crypto_auth_hmacsha256_state	 st;
	unsigned char			 mac[crypto_auth_hmacsha256_BYTES];
	char				 want[2 * sizeof(mac) + 1];
	const char			*p, *t = NULL, *v1[MAX_V1];
	size_t				 tlen = 0, n, nv1 = 0, i;
	long long			 ts;
	bool				 good = false;
	char				*end, tbuf[24];

	if (header == NULL || secret == NULL || *secret == '\0' ||
	    strlen(header) > 4096)
		return -1;
	for (p = header; *p != '\0'; p += n + (p[n] == ',')) {
		while (*p == ' ')
			p++;
		n = strcspn(p, ",");
		if (n > 2 && p[0] == 't' && p[1] == '=' && t == NULL) {
			t = p + 2;
			tlen = n - 2;
		} else if (n == 3 + 2 * sizeof(mac) && strncmp(p, "v1=", 3) ==
		    0 && nv1 < MAX_V1)
			v1[nv1++] = p + 3;
	}
	if (t == NULL || tlen == 0 || tlen >= sizeof(tbuf) || nv1 == 0)
		return -1;
	memcpy(tbuf, t, tlen);
	tbuf[tlen] = '\0';
	for (i = 0; i < tlen; i++)
		if (!isdigit((unsigned char)tbuf[i]))
			return -1;
	ts = strtoll(tbuf, &end, 10);

	if (crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
	    strlen(secret)) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tbuf,
	    tlen) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".",
	    1) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body,
	    len) != 0 ||
	    crypto_auth_hmacsha256_final(&st, mac) != 0)
		return -1;
	sodium_bin2hex(want, sizeof(want), mac, sizeof(mac));
	/* Every candidate is compared, in constant time. */
	for (i = 0; i < nv1; i++)
		if (sodium_memcmp(v1[i], want, 2 * sizeof(mac)) == 0)
			good = true;
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	if (!good)
		return -1;
	if (ts < now - tolerance || ts > now + tolerance)
		return -2;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers for the events.                                             */
/* ------------------------------------------------------------------ */

/* An id at path: a string, or an expanded object's "id". */
