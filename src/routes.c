/*
 * The route table: method, path pattern, handler, what the body may be,
 * and the declared fields.  Fields not declared here never reach a
 * handler.  Patterns are exact paths whose "{name}" segments match one
 * id-like segment.
 */
#include <string.h>

#include "tollgate.h"

const struct route routes[] = {
	{ M_GET, "/healthz", h_healthz, 0, NULL },
	{ M_GET, "/metrics", h_metrics, ROUTE_LOOPBACK, NULL },
};

const size_t nroutes = sizeof(routes) / sizeof(routes[0]);

/* Returns true when seg[0..len) can fill a {name} segment. */
static bool
param_ok(const char *seg, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 64)
		return false;
	for (i = 0; i < len; i++)
		if (!((seg[i] >= 'a' && seg[i] <= 'z') ||
		    (seg[i] >= 'A' && seg[i] <= 'Z') ||
		    (seg[i] >= '0' && seg[i] <= '9') ||
		    seg[i] == '-' || seg[i] == '_'))
			return false;
	return true;
}

/*
 * Matches path against pattern, filling params.  Returns the number of
 * parameters taken, or -1 when it does not match.
 */
static int
pattern_match(struct req *r, const char *pattern, const char *path,
    const char **params)
{
	const char	*p = pattern, *s = path;
	int		 n = 0;

	while (*p != '\0' && *s != '\0') {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			size_t len = strcspn(s, "/");

			if (pe == NULL || !param_ok(s, len) || n == 4)
				return -1;
			params[n++] = arena_strndup(r->a, s, len);
			p = pe + 1;
			s += len;
			continue;
		}
		if (*p != *s)
			return -1;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0' ? n : -1;
}

int
route_match(struct req *r, const char *path, enum method m, unsigned *allow)
{
	const char	*params[4];
	size_t		 i;
	int		 n, found = -1;
	enum method	 want = m == M_HEAD ? M_GET : m;

	*allow = 0;
	for (i = 0; i < nroutes; i++) {
		if ((n = pattern_match(r, routes[i].pattern, path, params)) < 0)
			continue;
		*allow |= routes[i].methods;
		if (found < 0 && (routes[i].methods & want)) {
			found = (int)i;
			memcpy(r->params, params, sizeof(params));
			r->nparams = n;
		}
	}
	if (found >= 0)
		return found;
	return *allow ? -2 : -1;
}

const char *
route_label(int i)
{
	return i < 0 || (size_t)i >= nroutes ? "unmatched" : routes[i].pattern;
}
