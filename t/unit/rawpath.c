/*
 * Unit tests of raw_path_agrees (src/core/rawpath.c): a raw request
 * target the gate lets through reaches the upstream as the very path
 * nginx decided on; the tricks that route elsewhere are refused.
 */
#include "core/core.h"
#include "tap.h"

struct pcase {
	const char	*raw, *uri;
	int		 good;
	const char	*name;
};

static const struct pcase cases[] = {
	{ "/demo/echo", "/demo/echo", 1, "the plain path" },
	{ "/demo/echo?a=1&b=%2F", "/demo/echo", 1, "a query (even %2F in it)" },
	{ "/demo/%65cho", "/demo/echo", 1, "an encoded letter" },
	{ "/a%20b", "/a b", 1, "an encoded space" },
	{ "/a%25b", "/a%b", 1, "an encoded percent" },
	{ "", "/x", 1, "no raw path passed" },
	{ "/demo/spend/../echo", "/demo/echo", 0, "a dot-dot segment" },
	{ "/demo/./echo", "/demo/echo", 0, "a dot segment" },
	{ "/demo//echo", "/demo/echo", 0, "a doubled slash" },
	{ "/demo/spend/..%2Fecho", "/demo/echo", 0, "..%2F" },
	{ "/demo/spend/..%2fecho", "/demo/echo", 0, "..%2f" },
	{ "/demo/spend%2F..%2Fecho", "/demo/echo", 0, "encoded slashes" },
	{ "/demo/spend/%2e%2e/echo", "/demo/echo", 0, "%2e%2e" },
	{ "/demo/spend/.%2E/echo", "/demo/echo", 0, ".%2E" },
	{ "/demo/echo;/../spend", "/demo/spend", 0, "a path parameter" },
	{ "/demo/spend/..;/echo", "/demo/spend/..;/echo", 0, "..;" },
	{ "/demo/a%3Bb", "/demo/a;b", 0, "an encoded semicolon" },
	{ "/demo/a\\b", "/demo/a\\b", 0, "a backslash" },
	{ "/demo/a%5Cb", "/demo/a\\b", 0, "an encoded backslash" },
	{ "/demo/a%00b", "/demo/a", 0, "an encoded NUL" },
	{ "/demo/a%2", "/demo/a%2", 0, "a cut escape" },
	{ "/demo/a%zz", "/demo/a%zz", 0, "a bad escape" },
	{ "/demo/echo", "/demo/echoes", 0, "a shorter path" },
	{ "/demo/echoes", "/demo/echo", 0, "a longer path" },
};

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(raw_path_agrees(cases[i].raw, cases[i].uri) == cases[i].good,
		    cases[i].name);
	ok(!raw_path_agrees("/x", NULL), "a raw path without a URI");
	return done_testing();
}
