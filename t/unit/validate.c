/* Unit tests of the validators in src/core/validate.c: tables of good and bad. */
#include <stdio.h>
#include <string.h>

#include "server/server.h"
#include "tap.h"

struct vcase {
	const char	*in;
	size_t		 len;	/* 0: strlen */
	int		 good;
};

static void
run(const char *what, const char *(*fn)(const char *, size_t),
    const struct vcase *c, size_t n)
{
	char	 name[256];
	size_t	 i;

	for (i = 0; i < n; i++) {
		size_t len = c[i].len ? c[i].len : strlen(c[i].in);
		const char *err = fn(c[i].in, len);

		snprintf(name, sizeof(name), "%s %s '%.40s'", what,
		    c[i].good ? "accepts" : "refuses", c[i].in);
		ok((err == NULL) == c[i].good, name);
	}
}

#define RUN(what, fn, cases) run(what, fn, cases, sizeof(cases) / sizeof(cases[0]))

static const struct vcase emails[] = {
	{ "a@example.com", 0, 1 },
	{ "First.Last+tag@sub.example.co.uk", 0, 1 },
	{ "José@exämple.com", 0, 1 },
	{ "", 0, 0 },
	{ "plain", 0, 0 },
	{ "a@b", 0, 0 },
	{ "a@@b.com", 0, 0 },
	{ "a@b@c.com", 0, 0 },
	{ "@b.com", 0, 0 },
	{ "a@.com", 0, 0 },
	{ "a@b..com", 0, 0 },
	{ "a@b.com.", 0, 0 },
	{ "a b@c.com", 0, 0 },
	{ ".a@b.com", 0, 0 },
	{ "a.@b.com", 0, 0 },
	{ "a@-b.com", 0, 0 },
	{ "a@b-.com", 0, 0 },
	{ "a'; DROP TABLE users;--@x.com", 0, 0 },
	{ "a@b\0.com", 8, 0 },
	{ "a@\xff\xfe.com", 0, 0 },
	{ "a\n@b.com", 0, 0 },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@b.com", 0, 0 },
};

static const struct vcase passwords[] = {
	{ "correct horse", 0, 1 },
	{ "0123456789", 0, 1 },
	{ "ünïcødé-pässwörd", 0, 1 },
	{ "short", 0, 0 },
	{ "ääääääääää", 0, 1 },		/* 10 characters, 20 bytes */
	{ "äääääääää", 0, 0 },		/* 9 characters */
	{ "0123456789\0abc", 14, 0 },
	{ "0123456789\xc3\x28", 0, 0 },	/* invalid UTF-8 */
	{ "0123456789\xed\xa0\x80", 0, 0 }, /* a surrogate */
	{ "0123456789\xc0\xaf", 0, 0 },	/* an overlong */
};

static const struct vcase names[] = {
	{ "Ada Lovelace", 0, 1 },
	{ "李小龍", 0, 1 },
	{ "Robert'); DROP TABLE users;--", 0, 1 },	/* harmless text */
	{ "", 0, 0 },
	{ "   ", 0, 0 },
	{ "a\0b", 3, 0 },
	{ "bell\a", 0, 0 },
	{ "\xff", 0, 0 },
};

static const struct vcase tokens[] = {
	{ "abcdefghijklmnop", 0, 1 },
	{ "AZaz09-_AZaz09-_AZ", 0, 1 },
	{ "short", 0, 0 },
	{ "abcdefghijklmnop=", 0, 0 },
	{ "abcdefghijklmnop/", 0, 0 },
	{ "abcdefgh ijklmnop", 0, 0 },
	{ "abcdefgh\0ijklmnop", 17, 0 },
	{ "abcdefghijklmnopé", 0, 0 },
};

static const struct vcase ids[] = {
	{ "AAAAAAAAAAAAAAAAAAAAAA", 0, 1 },
	{ "AAAAAAAAAAAAAAAAAAAAA", 0, 0 },
	{ "AAAAAAAAAAAAAAAAAAAAA.", 0, 0 },
	{ "1", 0, 0 },
};

static const struct vcase slugs[] = {
	{ "pro", 0, 1 },
	{ "compute_minutes", 0, 1 },
	{ "Pro", 0, 0 },
	{ "", 0, 0 },
	{ "a-b", 0, 0 },
	{ "a\0b", 3, 0 },
	{ "café", 0, 0 },
};

static const struct vcase key_names[] = {
	{ "video-export", 0, 1 },
	{ "Video_Export-2", 0, 1 },
	{ "a", 0, 1 },
	{ "0123456789012345678901234567890123456789012345678901234567890123", 0, 1 },
	{ "01234567890123456789012345678901234567890123456789012345678901234", 0, 0 },
	{ "", 0, 0 },
	{ "video export", 0, 0 },
	{ "video.export", 0, 0 },
	{ "video\0export", 12, 0 },
	{ "vidéo", 0, 0 },
	{ "vid\xc3\xa9o", 0, 0 },
};

static const char *
text100(const char *s, size_t len)
{
	return valid_utf8_text(s, len, 100);
}

static const struct vcase texts[] = {
	{ "plain text", 0, 1 },
	{ "tab\there", 0, 1 },
	{ "emoji \xf0\x9f\x98\x80", 0, 1 },
	{ "\xf4\x90\x80\x80", 0, 0 },	/* past U+10FFFF */
	{ "\xe0\x80\x80", 0, 0 },	/* overlong */
	{ "cut \xe2\x82", 0, 0 },	/* truncated */
	{ "del\x7f", 0, 0 },
};

int
main(void)
{
	struct arena	*a = arena_new();

	RUN("email", valid_email, emails);
	RUN("password", valid_password, passwords);
	RUN("name", valid_name, names);
	RUN("token", valid_token, tokens);
	RUN("id", valid_id, ids);
	RUN("slug", valid_slug, slugs);
	RUN("key name", valid_key_name, key_names);
	RUN("text", text100, texts);
	is_str(ascii_lower(a, "JoSÉ@Example.COM"), "josÉ@example.com",
	    "ascii_lower lowers A-Z only");
	{
		char big[300];
		memset(big, 'a', sizeof(big));
		ok(valid_password(big, 257) != NULL, "password of 257 bytes refused");
		ok(valid_password(big, 256) == NULL, "password of 256 bytes accepted");
		ok(valid_name(big, 101) != NULL, "name of 101 bytes refused");
	}
	arena_free(a);
	return done_testing();
}
