/* Unit tests of the parsers in src/http/request.c: forms, cookies, JSON, fields. */
#include <stdio.h>
#include <string.h>

#include "server/server.h"
#include "tap.h"

static const struct field fields[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ "days", F_INT, 0, -3650, 3650 },
	{ "disabled", F_BOOL, 0, 0, 0 },
	{ "note", F_TEXT, FIELD_NULLABLE, 0, 10 },
	{ "meta", F_OBJECT, FIELD_NULLABLE, 0, 20 },
	{ NULL, 0, 0, 0, 0 },
};

/* Runs request_take_fields over a JSON text; returns the bad-field object. */
static struct json_object *
take_json(struct arena *a, struct req *r, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->a = a;
	r->json = parse_json_object(text, strlen(text));
	if (r->json == NULL)
		return json_object_new_string("unparsed");
	return request_take_fields(r, fields);
}

static int
bad_has(struct json_object *bad, const char *field)
{
	struct json_object *v;

	return bad != NULL && json_object_object_get_ex(bad, field, &v);
}

int
main(void)
{
	struct arena	*a = arena_new();
	struct kvlist	 l;
	struct req	 r;
	struct json_object *bad;
	static const char *bad_json[] = {
		"", "{", "[1,2]", "\"s\"", "{\"a\":1} x", "{'a':1}",
		"{\"a\":1,}", "{a:1}", "null", "{\"a\":01}",
	};
	size_t		 i;
	char		 name[128];

	ok(parse_urlencoded(a, "a=1&b=two+words&c=%41%42", 24, &l) == 0,
	    "form parses");
	is_int(l.n, 3, "three pairs");
	is_str(kv_get(&l, "b"), "two words", "plus is a space");
	is_str(kv_get(&l, "c"), "AB", "percent escapes decode");
	ok(parse_urlencoded(a, "a=%4", 4, &l) < 0, "truncated escape refused");
	ok(parse_urlencoded(a, "a=%zz", 5, &l) < 0, "bad hex refused");
	ok(parse_urlencoded(a, "k%00=v", 6, &l) < 0, "NUL in a key refused");
	ok(parse_urlencoded(a, "a=%00b", 6, &l) == 0 && l.v[0].vlen == 2,
	    "NUL in a value kept with its length");
	ok(parse_urlencoded(a, "&&a=1&&", 7, &l) == 0 && l.n == 1,
	    "empty pairs skipped");
	ok(parse_urlencoded(a, "flag", 4, &l) == 0 &&
	    strcmp(kv_get(&l, "flag"), "") == 0, "key without value");
	{
		char many[1024] = "";
		for (i = 0; i < MAX_PAIRS + 1; i++)
			strcat(many, "a=1&");
		ok(parse_urlencoded(a, many, strlen(many), &l) < 0,
		    "too many pairs refused");
	}

	ok(parse_cookies(a, "tg_session=abc; theme=dark", &l) == 0,
	    "cookies parse");
	is_str(kv_get(&l, "tg_session"), "abc", "first cookie");
	is_str(kv_get(&l, "theme"), "dark", "second cookie");
	ok(parse_cookies(a, " a = \"quoted\" ;;", &l) == 0 &&
	    strcmp(kv_get(&l, "a"), "quoted") == 0, "spaces and quotes trimmed");
	ok(parse_cookies(a, "novalue", &l) < 0, "cookie without = refused");
	ok(parse_cookies(a, NULL, &l) == 0 && l.n == 0, "no cookie header");

	for (i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
		struct json_object *o = parse_json_object(bad_json[i],
		    strlen(bad_json[i]));
		snprintf(name, sizeof(name), "JSON '%s' refused", bad_json[i]);
		ok(o == NULL, name);
		json_object_put(o);
	}
	{
		struct json_object *o = parse_json_object("{\"a\":1}\n", 8);
		ok(o != NULL, "JSON object with trailing newline accepted");
		json_object_put(o);
		ok(parse_json_object("{\"a\":\"\0\"}", 9) == NULL,
		    "raw NUL in a JSON body refused");
	}

	bad = take_json(a, &r, "{\"email\":\"A@b.com\",\"days\":-5,"
	    "\"disabled\":true,\"note\":null,\"extra\":1}");
	ok(bad == NULL, "good fields pass");
	is_str(in_str(&r, "email"), "A@b.com", "email taken");
	is_int(in_int(&r, "days", 0), -5, "negative int taken");
	ok(in_bool(&r, "disabled", false), "bool taken");
	ok(in_present(&r, "note") && in_str(&r, "note") == NULL,
	    "nullable null is present and null");
	ok(req_in(&r, "extra") == NULL, "undeclared field not visible");
	json_object_put(r.json);

	bad = take_json(a, &r, "{\"days\":99999,\"disabled\":\"yes\","
	    "\"note\":\"far too long text\"}");
	ok(bad_has(bad, "email"), "missing required field named");
	ok(bad_has(bad, "days"), "out-of-range int named");
	ok(bad_has(bad, "disabled"), "non-boolean named");
	ok(bad_has(bad, "note"), "overlong text named");
	json_object_put(bad);
	json_object_put(r.json);

	bad = take_json(a, &r, "{\"email\":\"a\\u0000@b.com\"}");
	ok(bad_has(bad, "email"), "escaped NUL in a value refused");
	json_object_put(bad);
	json_object_put(r.json);

	bad = take_json(a, &r, "{\"email\":12}");
	ok(bad_has(bad, "email"), "number for a string refused");
	json_object_put(bad);
	json_object_put(r.json);

	/* Form input goes through the same declarations. */
	memset(&r, 0, sizeof(r));
	r.a = a;
	parse_urlencoded(a, "email=x%40y.org&days=3&disabled=on", 34, &r.form);
	bad = request_take_fields(&r, fields);
	ok(bad == NULL, "form fields pass");
	is_int(in_int(&r, "days", 0), 3, "form int taken");
	ok(in_bool(&r, "disabled", false), "form checkbox taken");
	parse_urlencoded(a, "email=x%40y.org&days=3x", 23, &r.form);
	bad = request_take_fields(&r, fields);
	ok(bad_has(bad, "days"), "form int with junk refused");
	json_object_put(bad);

	/* F_OBJECT: a JSON object, bounded as compact text. */
	bad = take_json(a, &r, "{\"email\":\"x@y.org\",\"meta\":{ \"m\" : [1, true] }}");
	ok(bad == NULL, "an object is taken");
	is_str(in_str(&r, "meta"), "{\"m\":[1,true]}", "as compact JSON");
	json_object_put(r.json);
	bad = take_json(a, &r, "{\"email\":\"x@y.org\",\"meta\":{\"m\":\"0123456789ab\"}}");
	ok(bad == NULL, "an object of exactly its bound (20 bytes) is taken");
	json_object_put(r.json);
	bad = take_json(a, &r, "{\"email\":\"x@y.org\",\"meta\":{\"m\":\"0123456789abc\"}}");
	ok(bad_has(bad, "meta"), "an object over its bound refused");
	json_object_put(bad);
	json_object_put(r.json);
	bad = take_json(a, &r, "{\"email\":\"x@y.org\",\"meta\":[1]}");
	ok(bad_has(bad, "meta"), "an array for an object refused");
	json_object_put(bad);
	json_object_put(r.json);
	bad = take_json(a, &r, "{\"email\":\"x@y.org\",\"meta\":null}");
	ok(bad == NULL && in_present(&r, "meta") && in_str(&r, "meta") == NULL,
	    "a nullable object may be null");
	json_object_put(r.json);
	memset(&r, 0, sizeof(r));
	r.a = a;
	parse_urlencoded(a, "email=x%40y.org&meta=x", 22, &r.form);
	bad = request_take_fields(&r, fields);
	ok(bad_has(bad, "meta"), "a form cannot carry an object");
	json_object_put(bad);

	is_int(method_parse("PATCH"), M_PATCH, "PATCH parsed");
	is_int(method_parse("BREW"), M_OTHER, "unknown method");
	arena_free(a);
	return done_testing();
}
