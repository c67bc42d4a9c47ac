/*
 * Fuzzes JWT handling (src/core/jwt.c) with a fixed configuration (a current
 * and a previous secret, loaded by config_load).  The first byte of the
 * input chooses what the rest is:
 *
 *   0  a token as a client sends it, checked with jwt_check;
 *   1  "<header JSON>\n<payload JSON>", encoded and signed here (HS256)
 *      with the current secret, the previous one or a stranger's, so the
 *      fuzzer reaches the claim checks behind the signature;
 *   2  "<uid>\n<sid>": jwt_issue, then jwt_check of what it issued.
 */
#include "fuzz.h"

#define STRANGER	"not-a-secret-of-ours-0123456789abcdef0123"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fixed_config();
	return 0;
}

/* Appends base64url (no padding) of n bytes to b. */
static void
add_b64(struct buf *b, const void *p, size_t n)
{
	size_t	 len = sodium_base64_ENCODED_LEN(n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	*out = malloc(len);

	if (out == NULL)
		abort();
	sodium_bin2base64(out, len, p, n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	buf_puts(b, out);
	free(out);
}

/* Signs "<b64 header>.<b64 payload>" with key and returns the token. */
static char *
sign(struct arena *a, const char *hdr, size_t hlen, const char *pay,
    size_t plen, const char *key)
{
	crypto_auth_hmacsha256_state	 st;
	unsigned char			 mac[crypto_auth_hmacsha256_BYTES];
	struct buf			 b;

	buf_init(&b, a);
	add_b64(&b, hdr, hlen);
	buf_puts(&b, ".");
	add_b64(&b, pay, plen);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)key,
	    strlen(key));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)b.p, b.len);
	crypto_auth_hmacsha256_final(&st, mac);
	buf_puts(&b, ".");
	add_b64(&b, mac, sizeof(mac));
	return b.p;
}

static void
check_result(int rc, const char *uid, const char *sid)
{
	FUZZ_CHECK(rc == JWT_OK || rc == JWT_BAD || rc == JWT_EXPIRED,
	    "jwt_check returns OK, BAD or EXPIRED");
	if (rc == JWT_OK)
		FUZZ_CHECK(uid != NULL && sid != NULL &&
		    valid_id(uid, strlen(uid)) == NULL &&
		    valid_id(sid, strlen(sid)) == NULL,
		    "an accepted token names a valid user and session id");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena	*a = fuzz_arena();
	static const char *const keys[] = {
		FUZZ_JWT_SECRET, FUZZ_JWT_PREVIOUS, STRANGER
	};
	const char	*uid = NULL, *sid = NULL, *nl;
	char		*rest, *tok;
	size_t		 n, k;
	int		 rc, mode;

	if (size < 1)
		return 0;
	mode = data[0] % 3;
	rest = fuzz_cstr(data + 1, size - 1);
	n = strlen(rest);
	switch (mode) {
	case 0:
		rc = jwt_check(a, rest, &uid, &sid);
		check_result(rc, uid, sid);
		break;
	case 1:
		if ((nl = strchr(rest, '\n')) == NULL)
			break;
		k = (size_t)(data[0] / 3) % 3;
		tok = sign(a, rest, (size_t)(nl - rest), nl + 1,
		    n - (size_t)(nl - rest) - 1, keys[k]);
		rc = jwt_check(a, tok, &uid, &sid);
		check_result(rc, uid, sid);
		if (k == 2)
			FUZZ_CHECK(rc == JWT_BAD,
			    "a stranger's signature never passes");
		break;
	case 2:
		if ((nl = strchr(rest, '\n')) == NULL)
			break;
		rest[nl - rest] = '\0';
		if (valid_utf8_text(rest, strlen(rest), 1024) != NULL ||
		    valid_utf8_text(nl + 1, strlen(nl + 1), 1024) != NULL)
			break;
		tok = jwt_issue(a, rest, nl + 1);
		FUZZ_CHECK(tok != NULL, "jwt_issue takes any UTF-8 text");
		rc = jwt_check(a, tok, &uid, &sid);
		check_result(rc, uid, sid);
		if (valid_id(rest, strlen(rest)) == NULL &&
		    valid_id(nl + 1, strlen(nl + 1)) == NULL)
			FUZZ_CHECK(rc == JWT_OK && strcmp(uid, rest) == 0 &&
			    strcmp(sid, nl + 1) == 0,
			    "an issued token checks, with its ids");
		else
			FUZZ_CHECK(rc == JWT_BAD,
			    "a token for malformed ids is refused");
		break;
	}
	free(rest);
	return 0;
}
