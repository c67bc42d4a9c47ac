/*
 * Request parsing with bounds: urlencoded forms and query strings,
 * cookies, and the declared fields of a route taken from a JSON or form
 * body.  Nothing here touches the network; the worker hands in the bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/*
 * Percent-decodes s[0..len) ('+' is a space) into the arena.  Returns the
 * decoded string (its length in *outlen), or NULL on a bad escape.
 */
static char *
url_decode(struct arena *a, const char *s, size_t len, size_t *outlen)
{
	char	*out = arena_alloc(a, len + 1), *o = out;
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (s[i] == '+')
			*o++ = ' ';
		else if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return NULL;
			if ((hi = hex_digit((unsigned char)s[i + 1])) < 0 ||
			    (lo = hex_digit((unsigned char)s[i + 2])) < 0)
				return NULL;
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else
			*o++ = s[i];
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

int
parse_urlencoded(struct arena *a, const char *s, size_t len, struct kvlist *out)
{
	const char	*p = s, *end = s + len, *amp, *eq;
	size_t		 klen, vlen;

	out->n = 0;
	out->v = arena_alloc(a, sizeof(struct kv) * MAX_PAIRS);
	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		if (amp == p) {		/* "a=1&&b=2": skip empty pairs */
			p++;
			continue;
		}
		if (out->n == MAX_PAIRS)
			return -1;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (eq == NULL)
			eq = amp;
		out->v[out->n].key = url_decode(a, p, (size_t)(eq - p), &klen);
		if (out->v[out->n].key == NULL ||
		    strlen(out->v[out->n].key) != klen)
			return -1;
		if (eq < amp)
			out->v[out->n].val = url_decode(a, eq + 1,
			    (size_t)(amp - eq - 1), &vlen);
		else {
			out->v[out->n].val = "";
			vlen = 0;
		}
		if (out->v[out->n].val == NULL)
			return -1;
		out->v[out->n].vlen = vlen;
		out->n++;
		p = amp + 1;
	}
	return 0;
}

int
parse_cookies(struct arena *a, const char *hdr, struct kvlist *out)
{
	const char	*p = hdr, *semi, *eq, *k, *kend, *v, *vend;

	out->n = 0;
	out->v = arena_alloc(a, sizeof(struct kv) * MAX_PAIRS);
	if (hdr == NULL)
		return 0;
	while (*p != '\0') {
		semi = strchr(p, ';');
		if (semi == NULL)
			semi = p + strlen(p);
		for (k = p; k < semi && (*k == ' ' || *k == '\t'); k++)
			continue;
		if (k == semi) {
			p = *semi == '\0' ? semi : semi + 1;
			continue;
		}
		if ((eq = memchr(k, '=', (size_t)(semi - k))) == NULL || eq == k)
			return -1;
		for (kend = eq; kend > k && (kend[-1] == ' ' || kend[-1] == '\t');)
			kend--;
		for (v = eq + 1; v < semi && (*v == ' ' || *v == '\t'); v++)
			continue;
		for (vend = semi; vend > v && (vend[-1] == ' ' || vend[-1] == '\t');)
			vend--;
		if (vend - v >= 2 && *v == '"' && vend[-1] == '"') {
			v++;
			vend--;
		}
		if (out->n == MAX_PAIRS)
			return -1;
		out->v[out->n].key = arena_strndup(a, k, (size_t)(kend - k));
		out->v[out->n].val = arena_strndup(a, v, (size_t)(vend - v));
		out->v[out->n].vlen = (size_t)(vend - v);
		out->n++;
		p = *semi == '\0' ? semi : semi + 1;
	}
	return 0;
}

const struct kv *
kv_find(const struct kvlist *l, const char *key)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return &l->v[i];
	return NULL;
}

const char *
kv_get(const struct kvlist *l, const char *key)
{
	const struct kv	*kv = kv_find(l, key);

	return kv == NULL ? NULL : kv->val;
}

enum method
method_parse(const char *s)
{
	static const struct { const char *name; enum method m; } names[] = {
		{ "GET", M_GET }, { "POST", M_POST }, { "PUT", M_PUT },
		{ "PATCH", M_PATCH }, { "DELETE", M_DELETE },
		{ "HEAD", M_HEAD }, { "OPTIONS", M_OPTIONS },
	};
	size_t	 i;

	for (i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].m;
	return M_OTHER;
}

/*
 * Checks one text value against its field's validator.  Returns NULL or
 * what is wrong.
 */
static const char *
check_text(const struct field *f, const char *s, size_t len)
{
	size_t	 max = f->max > 0 ? (size_t)f->max : 1024;

	if (memchr(s, '\0', len) != NULL)
		return "contains a NUL";
	switch (f->type) {
	case F_EMAIL:
		return valid_email(s, len);
	case F_PASSWORD:
		return valid_password(s, len);
	case F_NAME:
		return valid_name(s, len);
	case F_TOKEN:
		return valid_token(s, len);
	case F_ID:
		return valid_id(s, len);
	case F_SLUG:
		return valid_slug(s, len);
	default:
		if (len < (size_t)(f->min > 0 ? f->min : 0))
			return len == 0 ? "is required" : "is too short";
		return valid_utf8_text(s, len, max);
	}
}

/* Parses a decimal integer in [min, max].  Returns NULL or what is wrong. */
static const char *
check_int_text(const struct field *f, const char *s, long long *out)
{
	char		*end;
	long long	 v;

	if (*s == '\0')
		return "must be a whole number";
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return "must be a whole number";
	if (v < f->min || v > f->max)
		return "is out of range";
	*out = v;
	return NULL;
}

/*
 * Takes one declared field's value from a JSON body (v is NULL when the
 * field is absent).  Returns NULL or what is wrong.
 */
static const char *
take_json(struct arena *a, const struct field *f, struct json_object *v,
    struct input *in)
{
	const char	*err;

	if (v == NULL)
		return (f->flags & FIELD_REQUIRED) ? "is required" : NULL;
	in->present = true;
	switch (f->type) {
	case F_INT:
		if (!json_object_is_type(v, json_type_int))
			return "must be a whole number";
		errno = 0;
		in->i = json_object_get_int64(v);
		if (errno != 0 || in->i < f->min || in->i > f->max)
			return "is out of range";
		return NULL;
	case F_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return "must be true or false";
		in->b = json_object_get_boolean(v);
		return NULL;
	case F_OBJECT: {
		const char	*text;

		if (!json_object_is_type(v, json_type_object))
			return "must be a JSON object";
		text = json_object_to_json_string_ext(v,
		    JSON_C_TO_STRING_PLAIN);
		in->len = strlen(text);
		if (in->len > (f->max > 0 ? (size_t)f->max : 1024))
			return "is too large";
		in->s = arena_strndup(a, text, in->len);
		return NULL;
	}
	default:
		if (!json_object_is_type(v, json_type_string))
			return "must be a string";
		in->len = (size_t)json_object_get_string_len(v);
		if ((err = check_text(f, json_object_get_string(v), in->len)))
			return err;
		in->s = arena_strndup(a, json_object_get_string(v), in->len);
		return NULL;
	}
}

/* Takes one declared field's value from a form body. */
static const char *
take_form(const struct field *f, const struct kv *kv,
    struct input *in)
{
	const char	*err;

	if (kv == NULL)
		return (f->flags & FIELD_REQUIRED) ? "is required" : NULL;
	/* A blank input of a form, where the route says so, is left out. */
	if (kv->vlen == 0 && (f->flags & FIELD_BLANK_ABSENT))
		return (f->flags & FIELD_REQUIRED) ? "is required" : NULL;
	in->present = true;
	switch (f->type) {
	case F_INT:
		if (memchr(kv->val, '\0', kv->vlen) != NULL)
			return "must be a whole number";
		return check_int_text(f, kv->val, &in->i);
	case F_BOOL:
		if (strcmp(kv->val, "true") == 0 || strcmp(kv->val, "on") == 0 ||
		    strcmp(kv->val, "1") == 0)
			in->b = true;
		else if (strcmp(kv->val, "false") == 0 ||
		    strcmp(kv->val, "off") == 0 || strcmp(kv->val, "0") == 0)
			in->b = false;
		else
			return "must be true or false";
		return NULL;
	case F_OBJECT:
		return "must be a JSON object (send JSON)";
	default:
		if ((err = check_text(f, kv->val, kv->vlen)) != NULL)
			return err;
		in->s = kv->val;
		in->len = kv->vlen;
		return NULL;
	}
}

/*
 * Fills r->in from the route's declared fields, taking them from the
 * JSON body, else the form body.  Returns NULL when every field is good,
 * else a JSON object naming each bad field (owned by the caller).
 */
struct json_object *
request_take_fields(struct req *r, const struct field *fields)
{
	struct json_object	*bad = NULL, *v;
	const char		*err;
	size_t			 n, i;

	for (n = 0; fields != NULL && fields[n].name != NULL; n++)
		continue;
	r->nin = n;
	r->in = arena_alloc(r->a, sizeof(struct input) * (n ? n : 1));
	memset(r->in, 0, sizeof(struct input) * (n ? n : 1));
	for (i = 0; i < n; i++) {
		r->in[i].f = &fields[i];
		if (r->json != NULL) {
			bool found = json_object_object_get_ex(r->json,
			    fields[i].name, &v);

			if (found && v == NULL) {	/* a JSON null */
				if (fields[i].flags & FIELD_NULLABLE) {
					r->in[i].present = true;
					r->in[i].is_null = true;
					err = NULL;
				} else if (fields[i].flags & FIELD_REQUIRED)
					err = "is required";
				else
					err = "must not be null";
			} else
				err = take_json(r->a, &fields[i],
				    found ? v : NULL, &r->in[i]);
		} else
			err = take_form(&fields[i],
			    kv_find(&r->form, fields[i].name), &r->in[i]);
		if (err != NULL) {
			if (bad == NULL)
				bad = json_object_new_object();
			json_object_object_add(bad, fields[i].name,
			    json_object_new_string(err));
		}
	}
	return bad;
}

const struct input *
req_in(struct req *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->nin; i++)
		if (strcmp(r->in[i].f->name, name) == 0)
			return &r->in[i];
	return NULL;
}

const char *
in_str(struct req *r, const char *name)
{
	const struct input *in = req_in(r, name);

	return in == NULL || !in->present || in->is_null ? NULL : in->s;
}

long long
in_int(struct req *r, const char *name, long long dflt)
{
	const struct input *in = req_in(r, name);

	return in == NULL || !in->present || in->is_null ? dflt : in->i;
}

bool
in_bool(struct req *r, const char *name, bool dflt)
{
	const struct input *in = req_in(r, name);

	return in == NULL || !in->present || in->is_null ? dflt : in->b;
}

bool
in_present(struct req *r, const char *name)
{
	const struct input *in = req_in(r, name);

	return in != NULL && in->present;
}

/*
 * The one check of a "next" location: returns next when it is a relative
 * path on this site ("/x", not "//x" nor "/\\x"; no control characters,
 * backslashes or "|", which the pending sign-in cookie uses as its
 * separator; at most 512 bytes), else dflt.
 */
const char *
safe_next(const char *next, const char *dflt)
{
	const char	*s;

	if (next == NULL || next[0] != '/' || next[1] == '/' ||
	    next[1] == '\\' || strlen(next) > 512)
		return dflt;
	for (s = next; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\' ||
		    *s == '|')
			return dflt;
	return next;
}

/* A FastCGI parameter of the request ("HTTP_ORIGIN"), or NULL. */
const char *
req_env(struct req *r, const char *name)
{
	size_t	 n = strlen(name);
	char	**e;

	for (e = r->env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}
