/*
 * Fuzzes parse_urlencoded (src/http/request.c): urlencoded bodies (login's
 * form) and query strings (GET routes' declared fields).  The result is
 * checked against a plain reference decoder written here: the same pairs,
 * byte for byte, or a refusal exactly when the reference refuses.
 */
#include "fuzz.h"

static int
ref_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes s[0..n) into out; returns the length, or -1 on a bad escape. */
static long
ref_decode(const char *s, size_t n, char *out)
{
	size_t	 i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (n - i < 3 || ref_hex((unsigned char)s[i + 1]) < 0 ||
			    ref_hex((unsigned char)s[i + 2]) < 0)
				return -1;
			out[o++] = (char)(ref_hex((unsigned char)s[i + 1]) * 16 +
			    ref_hex((unsigned char)s[i + 2]));
			i += 2;
		} else
			out[o++] = s[i] == '+' ? ' ' : s[i];
	}
	return (long)o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena	*a = fuzz_arena();
	struct kvlist	 l;
	char		*s = fuzz_copy(data, size), *k, *v;
	const char	*p = s, *end = s + size, *amp, *eq;
	size_t		 n = 0, i;
	long		 kl, vl;
	int		 rc, ref_ok = 1;

	rc = parse_urlencoded(a, s, size, &l);
	FUZZ_CHECK(rc == 0 || rc == -1, "returns 0 or -1");

	/* The reference: split on '&', skip empty pairs, split on '='. */
	k = malloc(size + 1);
	v = malloc(size + 1);
	if (k == NULL || v == NULL)
		abort();
	while (p < end && ref_ok) {
		if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
			amp = end;
		if (amp == p) {
			p++;
			continue;
		}
		if (n == MAX_PAIRS) {
			ref_ok = 0;
			break;
		}
		if ((eq = memchr(p, '=', (size_t)(amp - p))) == NULL)
			eq = amp;
		kl = ref_decode(p, (size_t)(eq - p), k);
		vl = eq < amp ? ref_decode(eq + 1, (size_t)(amp - eq - 1), v) : 0;
		if (kl < 0 || vl < 0 || memchr(k, '\0', (size_t)kl) != NULL) {
			ref_ok = 0;
			break;
		}
		if (rc == 0) {
			FUZZ_CHECK(n < l.n, "as many pairs as the reference");
			FUZZ_CHECK(strlen(l.v[n].key) == (size_t)kl &&
			    memcmp(l.v[n].key, k, (size_t)kl) == 0,
			    "keys decode as the reference's");
			FUZZ_CHECK(l.v[n].vlen == (size_t)vl &&
			    memcmp(l.v[n].val, v, (size_t)vl) == 0 &&
			    l.v[n].val[vl] == '\0',
			    "values decode as the reference's, NUL-terminated");
		}
		n++;
		p = amp + 1;
	}
	FUZZ_CHECK((rc == 0) == ref_ok, "refuses exactly what the reference refuses");
	if (rc == 0) {
		FUZZ_CHECK(l.n == n && l.n <= MAX_PAIRS, "pair count");
		for (i = 0; i < l.n; i++)
			FUZZ_CHECK(kv_find(&l, l.v[i].key) <= &l.v[i],
			    "kv_find returns the first pair of a key");
	}
	free(k);
	free(v);
	free(s);
	return 0;
}
