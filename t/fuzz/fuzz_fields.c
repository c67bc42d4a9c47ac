/*
 * Fuzzes JSON field extraction and the validators behind it: a body is
 * parsed as the dispatcher parses it (parse_json_object for JSON,
 * parse_urlencoded for forms; the first byte of the input chooses), then
 * request_take_fields takes a table of declared fields of every type.
 * Whatever request_take_fields lets through must hold what its field
 * declares: the handler code trusts it.
 */
#include "fuzz.h"

static const struct field fields[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ "password", F_PASSWORD, 0, 0, 0 },
	{ "name", F_NAME, FIELD_NULLABLE, 0, 0 },
	{ "token", F_TOKEN, 0, 0, 0 },
	{ "id", F_ID, 0, 0, 0 },
	{ "plan", F_SLUG, FIELD_NULLABLE, 0, 0 },
	{ "days", F_INT, 0, -3650, 3650 },
	{ "quantity", F_INT, FIELD_REQUIRED, 1, 1000000000 },
	{ "disabled", F_BOOL, FIELD_NULLABLE, 0, 0 },
	{ "note", F_TEXT, 0, 0, 16 },
	{ "reason", F_TEXT, FIELD_REQUIRED, 1, 200 },
	{ "detail", F_TEXT, 0, 0, 0 },		/* the 1024-byte default */
	{ NULL, 0, 0, 0, 0 },
};

/* The validator a text field's value must pass. */
static const char *
revalidate(const struct field *f, const char *s, size_t len)
{
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
		if (len < (size_t)f->min)
			return "too short";
		return valid_utf8_text(s, len, f->max > 0 ? (size_t)f->max :
		    1024);
	}
}

static void
check_inputs(struct req *r, struct json_object *bad)
{
	struct json_object	*v;
	const struct input	*in;
	size_t			 i;

	FUZZ_CHECK(r->nin == sizeof(fields) / sizeof(fields[0]) - 1,
	    "one input per declared field");
	for (i = 0; i < r->nin; i++) {
		in = &r->in[i];
		FUZZ_CHECK(in->f == &fields[i], "inputs in declaration order");
		FUZZ_CHECK(req_in(r, fields[i].name) == in, "req_in finds it");
		if (bad != NULL &&
		    json_object_object_get_ex(bad, fields[i].name, &v)) {
			FUZZ_CHECK(json_object_is_type(v, json_type_string) &&
			    json_object_get_string_len(v) > 0,
			    "a bad field says what is wrong");
			continue;
		}
		if ((fields[i].flags & FIELD_REQUIRED) &&
		    !(fields[i].flags & FIELD_NULLABLE))
			FUZZ_CHECK(in->present && !in->is_null,
			    "a required field that passed is there");
		if (in->is_null) {
			FUZZ_CHECK(fields[i].flags & FIELD_NULLABLE,
			    "null only where nullable");
			FUZZ_CHECK(in_str(r, fields[i].name) == NULL,
			    "in_str of a null is NULL");
			continue;
		}
		if (!in->present) {
			FUZZ_CHECK(!in_present(r, fields[i].name),
			    "in_present of an absent field");
			continue;
		}
		switch (fields[i].type) {
		case F_INT:
			FUZZ_CHECK(in->i >= fields[i].min &&
			    in->i <= fields[i].max, "an int within its range");
			FUZZ_CHECK(in_int(r, fields[i].name, -99999) == in->i,
			    "in_int");
			break;
		case F_BOOL:
			FUZZ_CHECK(in_bool(r, fields[i].name, !in->b) == in->b,
			    "in_bool");
			break;
		default:
			FUZZ_CHECK(in->s != NULL && strlen(in->s) == in->len,
			    "text is NUL-terminated and holds no NUL");
			FUZZ_CHECK(revalidate(&fields[i], in->s, in->len) ==
			    NULL, "text passes its field's validator");
			FUZZ_CHECK(in_str(r, fields[i].name) == in->s,
			    "in_str");
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena		*a = fuzz_arena();
	struct req		 r;
	struct json_object	*bad;
	char			*body;
	int			 as_form;

	if (size < 1)
		return 0;
	as_form = data[0] & 1;
	body = fuzz_copy(data + 1, size - 1);
	memset(&r, 0, sizeof(r));
	r.a = a;
	r.route_index = -1;
	if (as_form) {
		if (parse_urlencoded(a, body, size - 1, &r.form) == 0) {
			bad = request_take_fields(&r, fields);
			check_inputs(&r, bad);
			json_object_put(bad);
		}
	} else if ((r.json = parse_json_object(body, size - 1)) != NULL) {
		FUZZ_CHECK(json_object_is_type(r.json, json_type_object),
		    "parse_json_object gives objects only");
		bad = request_take_fields(&r, fields);
		check_inputs(&r, bad);
		json_object_put(bad);
		json_object_put(r.json);
	}
	free(body);
	return 0;
}
