/*
 * Fuzzes the validators of src/core/validate.c on raw bytes (NULs included)
 * and checks each verdict against what the validator promises:
 * valid_utf8_text against an independent decoder (the well-formed byte
 * sequences of Unicode's table 3-7), the others against their bounds and
 * alphabets.
 */
#include "fuzz.h"

/*
 * Returns 1 when s[0..n) is well-formed UTF-8 by table 3-7 of the
 * Unicode standard, with no C0 control but tab and no DEL.
 */
static int
ref_utf8_text(const unsigned char *s, size_t n)
{
	size_t	 i = 0;

	while (i < n) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t k, more;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		if (n - i <= more)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k <= more; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += more + 1;
	}
	return 1;
}

static int
url_safe(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena	*a = fuzz_arena();
	char		*s = fuzz_copy(data, size), *cs, *low;
	const char	*at;
	size_t		 i, max;
	int		 ref;

	ref = ref_utf8_text(data, size);
	max = size > 0 ? data[0] : 0;	/* a bound the input chooses */
	FUZZ_CHECK((valid_utf8_text(s, size, SIZE_MAX) == NULL) == ref,
	    "valid_utf8_text agrees with the reference decoder");
	FUZZ_CHECK((valid_utf8_text(s, size, max) == NULL) ==
	    (ref && size <= max), "valid_utf8_text honours its bound");

	if (valid_email(s, size) == NULL) {
		FUZZ_CHECK(ref && size <= 254, "an email is text of <= 254 bytes");
		at = memchr(s, '@', size);
		FUZZ_CHECK(at != NULL && at > s && at - s <= 64 &&
		    memchr(at + 1, '@', size - (size_t)(at - s) - 1) == NULL,
		    "an email has one @ after a local part of 1 to 64 bytes");
		FUZZ_CHECK(memchr(at, '.', size - (size_t)(at - s)) != NULL &&
		    s[size - 1] != '.' && memchr(s, ' ', size) == NULL,
		    "an email's domain has a dot, not at its end; no space");
	}
	if (valid_password(s, size) == NULL)
		FUZZ_CHECK(size >= 10 && size <= 256 &&
		    memchr(s, '\0', size) == NULL,
		    "a password is 10 to 256 bytes without NUL");
	if (valid_name(s, size) == NULL) {
		for (i = 0; i < size && (s[i] == ' ' || s[i] == '\t'); i++)
			continue;
		FUZZ_CHECK(ref && size >= 1 && size <= 100 && i < size,
		    "a name is 1 to 100 bytes of text, not only blanks");
	}
	FUZZ_CHECK((valid_token(s, size) == NULL) ==
	    (size >= 16 && size <= 512 && url_safe(s, size)),
	    "valid_token: 16 to 512 URL-safe characters");
	FUZZ_CHECK((valid_id(s, size) == NULL) ==
	    (size == 22 && url_safe(s, size)), "valid_id: 22 URL-safe");
	if (valid_slug(s, size) == NULL) {
		FUZZ_CHECK(size >= 1 && size <= 64, "a slug is 1 to 64 bytes");
		for (i = 0; i < size; i++)
			FUZZ_CHECK((s[i] >= 'a' && s[i] <= 'z') ||
			    (s[i] >= '0' && s[i] <= '9') || s[i] == '_',
			    "a slug is of a-z, 0-9 and _");
	}

	/* ascii_lower changes A-Z and nothing else. */
	cs = fuzz_cstr(data, size);
	low = ascii_lower(a, cs);
	FUZZ_CHECK(strlen(low) == strlen(cs), "ascii_lower keeps the length");
	for (i = 0; cs[i] != '\0'; i++)
		FUZZ_CHECK(low[i] == ((cs[i] >= 'A' && cs[i] <= 'Z') ?
		    cs[i] - 'A' + 'a' : cs[i]), "ascii_lower lowers A-Z only");
	free(cs);
	free(s);
	return 0;
}
