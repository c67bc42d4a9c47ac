/*
 * Fuzzes parse_cookies (src/http/request.c) on a Cookie header, then what the
 * credential code does with it: the session cookie's value goes through
 * valid_token before it is hashed and looked up.
 */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena	*a = fuzz_arena();
	struct kvlist	 l;
	char		*hdr = fuzz_cstr(data, size);
	const char	*sess;
	size_t		 i, len = strlen(hdr);
	int		 rc;

	rc = parse_cookies(a, hdr, &l);
	FUZZ_CHECK(rc == 0 || rc == -1, "returns 0 or -1");
	if (rc == 0) {
		FUZZ_CHECK(l.n <= MAX_PAIRS, "at most MAX_PAIRS cookies");
		for (i = 0; i < l.n; i++) {
			FUZZ_CHECK(l.v[i].key[0] != '\0', "no empty name");
			FUZZ_CHECK(strlen(l.v[i].key) <= len &&
			    strlen(l.v[i].val) == l.v[i].vlen &&
			    l.v[i].vlen <= len, "names and values bounded");
			FUZZ_CHECK(strchr(l.v[i].key, ';') == NULL &&
			    strchr(l.v[i].val, ';') == NULL,
			    "no ';' inside a name or value");
		}
		if ((sess = kv_get(&l, SESSION_COOKIE)) != NULL &&
		    valid_token(sess, strlen(sess)) == NULL)
			FUZZ_CHECK(strlen(sess) >= 16 && strlen(sess) <= 512,
			    "a session cookie that passes is 16 to 512 bytes");
	}
	/* Missing header: no cookies. */
	FUZZ_CHECK(parse_cookies(a, NULL, &l) == 0 && l.n == 0,
	    "no header, no cookies");
	free(hdr);
	return 0;
}
