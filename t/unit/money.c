/* Unit tests of money_text (src/core/money.c): the one money formatter. */
#include <limits.h>

#include "core/core.h"
#include "tap.h"

int
main(void)
{
	struct arena	*a = arena_new();

	is_str(money_text(a, 2900, "usd"), "29.00 USD", "cents, upper case");
	is_str(money_text(a, 5, "EUR"), "0.05 EUR", "under one unit");
	is_str(money_text(a, -150, "eur"), "-1.50 EUR", "negative");
	is_str(money_text(a, -5, "eur"), "-0.05 EUR", "negative under one");
	is_str(money_text(a, 1000, "jpy"), "1000 JPY", "zero-decimal JPY");
	is_str(money_text(a, -1000, "KRW"), "-1000 KRW", "zero-decimal negative");
	is_str(money_text(a, 1000, "py"), "10.00 PY", "no substring match");
	is_str(money_text(a, 1234, NULL), "12.34", "no currency");
	is_str(money_text(a, LLONG_MIN, "usd"), "-92233720368547758.08 USD",
	    "the smallest amount");
	arena_free(a);
	return done_testing();
}
