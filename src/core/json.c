/*
 * JSON in: the strict reader of request bodies and tokens, and the
 * readers of values at a path inside the answers of GitHub and Stripe.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"

/*
 * Returns true when s has a single quote outside a double-quoted string:
 * never valid JSON, but json-c 0.16 takes such strings even when strict.
 */
static bool
has_bare_quote(const char *s, size_t len)
{
	bool	 in_string = false;
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = false;
		} else if (s[i] == '"')
			in_string = true;
		else if (s[i] == '\'')
			return true;
	}
	return false;
}

/*
 * Parses s[0..len) as one JSON object in strict mode, with nothing but
 * white space after it.  Returns the object (owned by the caller, to be
 * put), or NULL when the text is anything else.
 */
struct json_object *
parse_json_object(const char *s, size_t len)
{
	struct json_tokener	*tok;
	struct json_object	*o;
	size_t			 end;

	if (len > MAX_RAW_BODY || memchr(s, '\0', len) != NULL ||
	    has_bare_quote(s, len))
		return NULL;
	if ((tok = json_tokener_new_ex(32)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		json_tokener_free(tok);
		return NULL;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++)
		if (s[end] != ' ' && s[end] != '\t' && s[end] != '\r' &&
		    s[end] != '\n') {
			json_object_put(o);
			o = NULL;
			break;
		}
	json_tokener_free(tok);
	return o;
}

struct json_object *
json_at(struct json_object *o, const char *path)
{
	const char	*p = path;
	char		 seg[64];
	size_t		 n;

	while (o != NULL && *p != '\0') {
		n = strcspn(p, ".");
		if (n == 0 || n >= sizeof(seg))
			return NULL;
		memcpy(seg, p, n);
		seg[n] = '\0';
		p += n;
		if (*p == '.')
			p++;
		if (json_object_is_type(o, json_type_array)) {
			char	*end;
			long	 i = strtol(seg, &end, 10);

			if (*end != '\0' || i < 0 ||
			    (size_t)i >= json_object_array_length(o))
				return NULL;
			o = json_object_array_get_idx(o, (size_t)i);
		} else if (json_object_is_type(o, json_type_object)) {
			if (!json_object_object_get_ex(o, seg, &o))
				return NULL;
		} else
			return NULL;
	}
	return o;
}

const char *
json_str_at(struct json_object *o, const char *path)
{
	o = json_at(o, path);
	return o != NULL && json_object_is_type(o, json_type_string) ?
	    json_object_get_string(o) : NULL;
}

long long
json_int_at(struct json_object *o, const char *path, long long dflt)
{
	o = json_at(o, path);
	return o != NULL && json_object_is_type(o, json_type_int) ?
	    (long long)json_object_get_int64(o) : dflt;
}

bool
json_bool_at(struct json_object *o, const char *path, bool dflt)
{
	o = json_at(o, path);
	return o != NULL && json_object_is_type(o, json_type_boolean) ?
	    json_object_get_boolean(o) != 0 : dflt;
}

struct json_object *
json_parse_any(const char *s, size_t len)
{
	struct json_tokener	*tok;
	struct json_object	*o;

	if (len > 1024 * 1024 || memchr(s, '\0', len) != NULL ||
	    (tok = json_tokener_new_ex(32)) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/*
 * Overwrites every string inside o (members and array items, at any
 * depth) with zeros, before o is put: a JSON body may hold a password or
 * a token, which must not stay in freed heap memory.
 */
void
json_wipe(struct json_object *o)
{
	size_t	 i, n;

	switch (json_object_get_type(o)) {
	case json_type_string:
		/* json-c keeps the string in the object; it is ours to clear. */
		sodium_memzero((char *)(uintptr_t)json_object_get_string(o),
		    (size_t)json_object_get_string_len(o));
		break;
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			(void)k;
			json_wipe(v);
		}
		break;
	}
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++)
			json_wipe(json_object_array_get_idx(o, i));
		break;
	default:
		break;
	}
}

/* A JSON string of s, or null (NULL) when s is NULL; the caller's. */
struct json_object *
jstr_or_null(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}
