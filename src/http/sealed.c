/*
 * Sealed cookies: state a browser carries from one request to a later
 * one (an external sign-in's state and verifier, a sign-in waiting for
 * its second factor), encrypted and authenticated under the crypto key
 * (seal), so the browser can neither read nor change it.  HttpOnly,
 * Secure, SameSite=Lax.
 */
#include <string.h>

#include <sodium.h>

#include "http/http.h"

/* The longest sealed cookie value read. */
#define SEALED_MAX	2048

void
cookie_seal(struct req *r, const char *name, const char *plain,
    const char *path, int max_age)
{
	unsigned char	*sealed;
	size_t		 len;

	sealed = seal(r->a, plain, strlen(plain), &len);
	reply_header(r, "Set-Cookie", arena_printf(r->a, "%s=%s; Path=%s; "
	    "Max-Age=%d; HttpOnly; Secure; SameSite=Lax", name,
	    b64url(r->a, sealed, len), path, max_age));
}

char *
cookie_unseal(struct req *r, const char *name)
{
	const char	*c = kv_get(&r->cookies, name);
	unsigned char	*bin;
	size_t		 clen, binlen;

	if (c == NULL || (clen = strlen(c)) == 0 || clen > SEALED_MAX)
		return NULL;
	bin = arena_alloc(r->a, clen);
	if (sodium_base642bin(bin, clen, c, clen, NULL, &binlen, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return NULL;
	return unseal(r->a, bin, binlen, NULL);
}
