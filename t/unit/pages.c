/*
 * Unit tests of the pure helpers the pages use: which `next` values a
 * login follows (safe_next, src/http/request.c: relative paths on this
 * site only), and the percent-encoding of a query value (uri_escape,
 * src/core/outside.c).
 */
#include <stdio.h>
#include <string.h>

#include "server/server.h"
#include "tap.h"

struct ncase {
	const char	*next;
	int		 followed;
};

static const struct ncase nexts[] = {
	{ "/profile", 1 },
	{ "/usage?x=1&y=2", 1 },
	{ "/admin/users/abc#audit", 1 },
	{ "/", 1 },
	{ "//evil.example/", 0 },
	{ "/\\evil.example", 0 },
	{ "/ok\\path", 0 },
	{ "https://evil.example/", 0 },
	{ "http:/evil", 0 },
	{ "javascript:alert(1)", 0 },
	{ "profile", 0 },
	{ "", 0 },
	{ "/a\r\nSet-Cookie: x=1", 0 },
	{ "/tab\there", 0 },
	{ "/del\x7f", 0 },
	{ "/a|b", 0 },
};

int
main(void)
{
	struct arena	*a = arena_new();
	char		 name[256], big[600];
	size_t		 i;

	for (i = 0; i < sizeof(nexts) / sizeof(nexts[0]); i++) {
		const char *got = safe_next(nexts[i].next, "/dflt");

		snprintf(name, sizeof(name), "next '%.40s' is %s",
		    nexts[i].next, nexts[i].followed ? "followed" : "refused");
		ok(strcmp(got, nexts[i].followed ? nexts[i].next : "/dflt")
		    == 0, name);
	}
	ok(safe_next(NULL, "/dflt")[1] == 'd', "no next: the default");
	memset(big, 'a', sizeof(big));
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	ok(strcmp(safe_next(big, "/dflt"), "/dflt") == 0,
	    "a next over 512 bytes is refused");

	is_str(uri_escape(a, "/usage?x=1&y=a b", "/"), "/usage%3Fx%3D1%26y%3Da%20b",
	    "urlenc: query characters and spaces escaped, slashes kept");
	is_str(uri_escape(a, "AZaz09-_.~", "/"), "AZaz09-_.~",
	    "urlenc: unreserved characters kept");
	is_str(uri_escape(a, "\xc3\xa9\"<", "/"), "%C3%A9%22%3C",
	    "urlenc: UTF-8 and markup escaped");
	arena_free(a);
	return done_testing();
}
