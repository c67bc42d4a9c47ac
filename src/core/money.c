/*
 * The one money formatter: amounts as Stripe gives them (in the
 * currency's smallest unit) for people to read, in mails and pages.
 */
#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

/* Stripe's zero-decimal currencies: the amount is in whole units. */
static const char *const zero_decimal[] = {
	"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG",
	"RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
};

/*
 * What the formatters share: currency's code in upper case into cur
 * ("" for NULL or ""), amount's absolute value into *abs_amount (negated
 * as unsigned, so LLONG_MIN is no overflow).  Returns whether the
 * currency has no minor unit (a zero-decimal one).
 */
static bool
money_parts(long long amount, const char *currency, char cur[4],
    unsigned long long *abs_amount)
{
	size_t	 i;

	for (i = 0; currency != NULL && i < 3 && currency[i] != '\0'; i++)
		cur[i] = (char)toupper((unsigned char)currency[i]);
	cur[i] = '\0';
	*abs_amount = amount < 0 ? 0ULL - (unsigned long long)amount :
	    (unsigned long long)amount;
	for (i = 0; i < sizeof(zero_decimal) / sizeof(zero_decimal[0]); i++)
		if (strcmp(cur, zero_decimal[i]) == 0)
			return true;
	return false;
}

/*
 * "29.00 USD", "-1.50 EUR", "1000 JPY": amount in the smallest unit of
 * currency (an ISO 4217 code in any case; NULL or "" prints none).  The
 * result is in the arena.
 */
char *
money_text(struct arena *a, long long amount, const char *currency)
{
	char			 cur[4];
	unsigned long long	 abs_amount;
	const char		*sign = amount < 0 ? "-" : "";

	if (money_parts(amount, currency, cur, &abs_amount))
		return arena_printf(a, "%s%llu %s", sign, abs_amount, cur);
	return arena_printf(a, "%s%llu.%02llu%s%s", sign, abs_amount / 100,
	    abs_amount % 100, cur[0] != '\0' ? " " : "", cur);
}

/*
 * "0.42 USD", "0.0042 USD", "3 JPY": micros in millionths of currency's
 * major unit (of its whole unit for zero-decimal currencies), with the
 * currency's usual decimals and more, up to six, when the amount has
 * them.  The result is in the arena.
 */
char *
money_micros_text(struct arena *a, long long micros, const char *currency)
{
	char			 cur[4], frac[8];
	size_t			 i, keep;
	unsigned long long	 abs_amount;
	const char		*sign = micros < 0 ? "-" : "";

	keep = money_parts(micros, currency, cur, &abs_amount) ? 0 : 2;
	snprintf(frac, sizeof(frac), "%06llu", abs_amount % 1000000);
	for (i = 6; i > keep && frac[i - 1] == '0'; i--)
		continue;
	frac[i] = '\0';
	return arena_printf(a, "%s%llu%s%s%s%s", sign, abs_amount / 1000000,
	    i > 0 ? "." : "", frac, cur[0] != '\0' ? " " : "", cur);
}
