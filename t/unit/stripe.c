/*
 * Unit tests of the Stripe webhook signature check (src/app/stripe.c) and
 * the form encoding of the Stripe and GitHub calls (src/core/outside.c).
 * The signatures were computed independently (Python's hmac module).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "server/server.h"
#include "tap.h"

#define BODY	"{\"id\":\"evt_1\"}"
#define GOOD	"c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
/* The same body and time signed with another secret. */
#define OTHER	"d8d091c76b586cff4dbd317fc47ebddff4b86de3ce18d3c03753c3c1901d475a"
#define NOW	1700000000LL

struct sigcase {
	const char	*header;
	const char	*body;
	const char	*secret;
	long long	 now;
	int		 want;
	const char	*name;
};

static const struct sigcase cases[] = {
	{ "t=1700000000,v1=" GOOD, BODY, "whsec_test", NOW, 0,
	    "a good signature" },
	{ "t=1700000000, v1=" GOOD, BODY, "whsec_test", NOW, 0,
	    "a space after the comma" },
	{ "t=1700000000,v1=" OTHER ",v1=" GOOD, BODY, "whsec_test", NOW, 0,
	    "the good one of several v1" },
	{ "t=1700000000,v0=" OTHER ",v1=" GOOD, BODY, "whsec_test", NOW, 0,
	    "a v0 is ignored" },
	{ "v1=" GOOD ",t=1700000000", BODY, "whsec_test", NOW, 0,
	    "t after v1" },
	{ "t=1700000000,v1=" GOOD, BODY, "whsec_test", NOW + 300, 0,
	    "300 s old is still in time" },
	{ "t=1700000000,v1=" GOOD, BODY, "whsec_test", NOW + 301, -2,
	    "301 s old is stale" },
	{ "t=1700000000,v1=" GOOD, BODY, "whsec_test", NOW - 301, -2,
	    "301 s in the future is refused" },
	{ "t=1700000000,v1=" OTHER, BODY, "whsec_test", NOW, -1,
	    "another secret's signature" },
	{ "t=1700000000,v1=" GOOD, "{\"id\":\"evt_2\"}", "whsec_test", NOW, -1,
	    "another body" },
	{ "t=1700000001,v1=" GOOD, BODY, "whsec_test", NOW, -1,
	    "another time" },
	{ "t=1700000000,v1=" GOOD, BODY "\n", "whsec_test", NOW, -1,
	    "one more byte of body" },
	{ "t=1700000000", BODY, "whsec_test", NOW, -1, "no v1" },
	{ "v1=" GOOD, BODY, "whsec_test", NOW, -1, "no t" },
	{ "t=,v1=" GOOD, BODY, "whsec_test", NOW, -1, "an empty t" },
	{ "t=17000x0000,v1=" GOOD, BODY, "whsec_test", NOW, -1,
	    "a t that is not a number" },
	{ "t=1700000000,v1=" "C89214B5B5DA833DAED6F0B8C5BB6BD58CEA9022BD80CCC7"
	    "8230F3942D632925", BODY, "whsec_test", NOW, -1,
	    "upper-case hex is not what Stripe sends" },
	{ "t=1700000000,v1=c89214", BODY, "whsec_test", NOW, -1,
	    "a short v1" },
	{ "", BODY, "whsec_test", NOW, -1, "an empty header" },
	{ "t=1700000000,v1=" GOOD, BODY, "", NOW, -1, "no secret" },
};

int
main(void)
{
	struct arena	*a;
	struct buf	 b;
	size_t		 i;

	if (sodium_init() < 0 || (a = arena_new()) == NULL)
		return 1;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(stripe_signature_check(cases[i].header, cases[i].body,
		    strlen(cases[i].body), cases[i].secret, cases[i].now, 300),
		    cases[i].want, cases[i].name);
	is_int(stripe_signature_check(NULL, BODY, strlen(BODY), "whsec_test",
	    NOW, 300), -1, "no header");

	buf_init(&b, a);
	form_add(&b, "line_items[0][price]", "price_1");
	form_add(&b, "scope", "read:user user:email");
	form_add(&b, "email", "a+b@example.com");
	form_add(&b, "empty", NULL);
	is_str(b.p, "line_items%5B0%5D%5Bprice%5D=price_1&scope=read%3Auser%20"
	    "user%3Aemail&email=a%2Bb%40example.com&empty=",
	    "form_add escapes keys and values");

	{
		const char *text = "{\"items\":{\"data\":[{\"price\":"
		    "{\"id\":\"price_9\"}}]},\"n\":7,\"b\":true}";
		struct json_object *o = json_parse_any(text, strlen(text));

		ok(o != NULL, "json_parse_any takes an object");
		is_str(json_str_at(o, "items.data.0.price.id"), "price_9",
		    "json_str_at walks objects and arrays");
		ok(json_str_at(o, "items.data.1.price.id") == NULL,
		    "json_str_at: past the array's end is NULL");
		is_int(json_int_at(o, "n", -1), 7, "json_int_at");
		is_int(json_int_at(o, "b", -1), -1, "json_int_at: not a number");
		ok(json_bool_at(o, "b", false), "json_bool_at");
		json_object_put(o);
		o = json_parse_any("[1, 2]", 6);
		ok(o != NULL && json_object_is_type(o, json_type_array),
		    "json_parse_any takes an array");
		json_object_put(o);
		ok(json_parse_any("{\"a\":", 5) == NULL,
		    "json_parse_any refuses a cut-off text");
	}
	arena_free(a);
	return done_testing();
}
