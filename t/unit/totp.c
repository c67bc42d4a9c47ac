/*
 * Unit tests of the pure parts of the second factor and device sign-in:
 * user codes and recovery codes as people type them, percent-encoding,
 * the otpauth:// URI, and the QR code's SVG (src/app/totp.c, src/app/device.c).
 */
#include <stdio.h>
#include <string.h>

#include "server/server.h"
#include "tap.h"

int
main(void)
{
	struct arena	*a = arena_new();
	const char	*svg;
	static const struct { const char *in, *want; } users[] = {
		{ "WDJB-MJHT", "WDJBMJHT" },
		{ "wdjb-mjht", "WDJBMJHT" },
		{ "wdjbmjht", "WDJBMJHT" },
		{ " WD-JB MJ-HT ", "WDJBMJHT" },
		{ "WDJB-MJH", NULL },		/* too short */
		{ "WDJB-MJHTB", NULL },		/* too long */
		{ "WDJA-MJHT", NULL },		/* a vowel */
		{ "WDJB-MJH1", NULL },		/* a digit */
		{ "WDJB_MJHT", NULL },
		{ "", NULL },
	};
	static const struct { const char *in, *want; } recs[] = {
		{ "abcde-fghjk", "abcdefghjk" },
		{ "ABCDE-FGHJK", "abcdefghjk" },
		{ " abcde fghjk ", "abcdefghjk" },
		{ "abcdefghjk", "abcdefghjk" },
		{ "abcde-fghj", NULL },
		{ "abcde-fghjkm", NULL },
		{ "abcde-fghjl", NULL },	/* l is not in the alphabet */
		{ "abcde-fghj0", NULL },	/* nor 0 */
		{ "", NULL },
	};
	size_t		 i;

	if (a == NULL)
		return 1;
	for (i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		is_str(user_code_norm(a, users[i].in), users[i].want,
		    arena_printf(a, "user code '%s'", users[i].in));
	ok(user_code_norm(a, NULL) == NULL, "no user code");
	is_str(user_code_show(a, "WDJBMJHT"), "WDJB-MJHT", "user code shown");
	for (i = 0; i < sizeof(recs) / sizeof(recs[0]); i++)
		is_str(recovery_code_norm(a, recs[i].in), recs[i].want,
		    arena_printf(a, "recovery code '%s'", recs[i].in));

	is_str(uri_escape(a, "a b+c@d/e?f=g", NULL),
	    "a%20b%2Bc%40d%2Fe%3Ff%3Dg", "uri_escape");
	is_str(uri_escape(a, "/device?x", "/"), "/device%3Fx",
	    "uri_escape keeping /");
	is_str(uri_escape(a, "Jos\xc3\xa9", NULL), "Jos%C3%A9",
	    "uri_escape of UTF-8");
	cfg.product_name = "tollgate";	/* [server] name's default */
	is_str(totp_uri(a, "j+x@example.com", "JBSWY3DPEHPK3PXP"),
	    "otpauth://totp/tollgate:j%2Bx@example.com?secret=JBSWY3DPEHPK3PXP"
	    "&issuer=tollgate&algorithm=SHA1&digits=6&period=30",
	    "the otpauth URI");
	cfg.product_name = "Acme Cloud: Ops";
	is_str(totp_uri(a, "j@example.com", "JBSWY3DPEHPK3PXP"),
	    "otpauth://totp/Acme%20Cloud%3A%20Ops:j@example.com?secret="
	    "JBSWY3DPEHPK3PXP&issuer=Acme%20Cloud%3A%20Ops&algorithm=SHA1"
	    "&digits=6&period=30", "the issuer is [server] name, escaped");
	cfg.product_name = NULL;

	svg = qr_svg(a, "otpauth://totp/tollgate:a@b?secret=JBSWY3DPEHPK3PXP");
	ok(svg != NULL, "a QR code");
	ok(svg != NULL && strncmp(svg, "<svg ", 5) == 0, "as SVG");
	ok(svg != NULL && strstr(svg, "style") == NULL,
	    "without style attributes (CSP)");
	ok(svg != NULL && strstr(svg, "<path fill=\"#000\" d=\"M") != NULL,
	    "dark modules as one path");
	ok(svg != NULL && strstr(svg, "</svg>") != NULL, "closed");

	arena_free(a);
	return done_testing();
}
