/*
 * Small pure validators.  Each takes a value and its length in bytes
 * (values may hold NULs, which are always refused) and returns NULL when
 * the value is good, else a short phrase saying what is wrong, for the
 * "fields" object of a 422 answer.
 */
#include <string.h>

#include "core/core.h"

/* The value of hexadecimal digit c, or -1 when it is none. */
int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Checks that s is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF), has no NUL or other C0 control but tab, and is
 * at most maxbytes long.
 */
const char *
valid_utf8_text(const char *s, size_t len, size_t maxbytes)
{
	const unsigned char	*p = (const unsigned char *)s, *end = p + len;

	if (len > maxbytes)
		return "is too long";
	while (p < end) {
		unsigned c = *p;
		size_t n;
		unsigned cp, min;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return "contains a control character";
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3; cp = c & 0x07; min = 0x10000;
		} else
			return "is not valid UTF-8";
		if ((size_t)(end - p) <= n)
			return "is not valid UTF-8";
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return "is not valid UTF-8";
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return "is not valid UTF-8";
		p += n + 1;
	}
	return NULL;
}

/*
 * An email address as people type them: one @, a local part of 1 to 64
 * bytes without spaces or control characters, a domain of dot-separated
 * labels (letters, digits, hyphens, or UTF-8), at most 254 bytes in all.
 */
const char *
valid_email(const char *s, size_t len)
{
	const char	*at, *d, *err;
	size_t		 local, label = 0;

	if (len == 0)
		return "is required";
	if ((err = valid_utf8_text(s, len, 254)) != NULL)
		return err;
	if ((at = memchr(s, '@', len)) == NULL || memchr(at + 1, '@',
	    len - (size_t)(at - s) - 1) != NULL)
		return "is not an email address";
	local = (size_t)(at - s);
	if (local == 0 || local > 64)
		return "is not an email address";
	for (d = s; d < at; d++)
		if (*d == ' ' || *d == '\t' || *d == '"' || *d == '(' ||
		    *d == ')' || *d == ',' || *d == ':' || *d == ';' ||
		    *d == '<' || *d == '>' || *d == '[' || *d == ']' ||
		    *d == '\\')
			return "is not an email address";
	if (s[0] == '.' || at[-1] == '.')
		return "is not an email address";
	d = at + 1;
	if (d == s + len || strchr(".-", *d) != NULL)
		return "is not an email address";
	for (; d < s + len; d++) {
		unsigned char c = (unsigned char)*d;

		if (c == '.') {
			if (label == 0 || d[-1] == '-')
				return "is not an email address";
			label = 0;
			continue;
		}
		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return "is not an email address";
		if (++label > 63)
			return "is not an email address";
	}
	if (label == 0 || memchr(at + 1, '.', len - local - 1) == NULL)
		return "is not an email address";
	return NULL;
}

/* A password: 10 characters at least, 256 bytes at most, UTF-8. */
const char *
valid_password(const char *s, size_t len)
{
	const char	*err;
	size_t		 chars = 0, i;

	if (len > 256)
		return "must be at most 256 bytes";
	if (memchr(s, '\0', len) != NULL)
		return "contains a NUL";
	if ((err = valid_utf8_text(s, len, 256)) != NULL &&
	    strcmp(err, "contains a control character") != 0)
		return err;
	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			chars++;
	if (chars < 10)
		return "must be at least 10 characters";
	return NULL;
}

/* A display name: 1 to 100 bytes of UTF-8 text, not only spaces. */
const char *
valid_name(const char *s, size_t len)
{
	const char	*err;
	size_t		 i;

	if ((err = valid_utf8_text(s, len, 100)) != NULL)
		return err;
	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return NULL;
	return "is required";
}

#define LOWER_DIGITS	"abcdefghijklmnopqrstuvwxyz0123456789"
/* Letters, digits, - and _ (base64url's alphabet). */
#define URL_SAFE	"ABCDEFGHIJKLMNOPQRSTUVWXYZ" LOWER_DIGITS "-_"

/* Whether all len bytes of s are characters of set. */
static bool
only_of(const char *s, size_t len, const char *set)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (s[i] == '\0' || strchr(set, s[i]) == NULL)
			return false;
	return true;
}

/* An opaque URL-safe token of 16 to 512 characters. */
const char *
valid_token(const char *s, size_t len)
{
	if (len < 16 || len > 512 || !only_of(s, len, URL_SAFE))
		return "is not a valid token";
	return NULL;
}

/* An object id: 22 URL-safe characters. */
const char *
valid_id(const char *s, size_t len)
{
	if (len != 22 || valid_token(s, len) != NULL)
		return "is not a valid id";
	return NULL;
}

/* A plan or meter name: 1 to 64 of [a-z0-9_]. */
const char *
valid_slug(const char *s, size_t len)
{
	if (len == 0 || len > 64 || !only_of(s, len, LOWER_DIGITS "_"))
		return "must be 1 to 64 of a-z, 0-9 and _";
	return NULL;
}

/*
 * A service key's name (contract section 10): 1 to 64 of letters,
 * digits, - and _.  Returns NULL when good, else what is wrong.
 */
const char *
valid_key_name(const char *s, size_t len)
{
	if (len == 0 || len > 64 || !only_of(s, len, URL_SAFE))
		return "must be 1 to 64 of letters, digits, - and _";
	return NULL;
}

/* Returns a copy of s with A-Z lowered and nothing else changed. */
char *
ascii_lower(struct arena *a, const char *s)
{
	char	*p = arena_strdup(a, s), *q;

	for (q = p; *q != '\0'; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	return p;
}
