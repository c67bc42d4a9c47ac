/*
 * The path an upstream acts on (contract section 7).  nginx decides and
 * the gate charges on the normalised URI ($uri: percent-decoded, dot
 * segments resolved, slashes merged), but proxy_pass without a URI
 * forwards the client's raw path, which an upstream may route elsewhere:
 * "..%2F" is a dot segment once the upstream decodes the slash, "..;/"
 * one once a Java container drops the path parameter.  The gate refuses
 * (400) a raw path that does not decode to exactly the URI it decided
 * on, or that holds what upstreams read in different ways.
 */
#include <string.h>

#include "core/core.h"

/*
 * True when raw (the request target as the client sent it, query and
 * all, as in nginx's $request_uri) reaches an upstream as the same path
 * as uri (nginx's $uri): its path, percent-decoded, is uri byte for byte,
 * and it holds no ";", no "\", and no encoded "/", "\", ";" or NUL.  An
 * empty or NULL raw (the location did not pass it) agrees with anything.
 */
bool
raw_path_agrees(const char *raw, const char *uri)
{
	size_t	 n, i, j;
	int	 hi, lo, c;

	if (raw == NULL || *raw == '\0')
		return true;
	if (uri == NULL)
		return false;
	n = strcspn(raw, "?#");
	for (i = 0, j = 0; i < n; i++, j++) {
		c = (unsigned char)raw[i];
		if (c == ';' || c == '\\')
			return false;
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			if ((hi = hex_digit(raw[i + 1])) < 0 ||
			    (lo = hex_digit(raw[i + 2])) < 0)
				return false;
			c = hi * 16 + lo;
			if (c == '/' || c == '\\' || c == ';' || c == '\0')
				return false;
			i += 2;
		}
		if (uri[j] == '\0' || (unsigned char)uri[j] != c)
			return false;
	}
	return uri[j] == '\0';
}
