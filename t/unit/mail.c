/*
 * Unit tests of mail_compose (src/app/mail.c): the RFC 5322 text of a
 * mail; and of the mail texts (src/app/mailtexts.c): the built-in
 * messages with their placeholders filled, and a texts file checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "tap.h"

/* True when every CR is followed by LF and every LF follows a CR. */
static int
crlf_only(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r' && (i + 1 == len || s[i + 1] != '\n'))
			return 0;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return 0;
	}
	return 1;
}

/* The number of times needle occurs in hay. */
static int
count(const char *hay, const char *needle)
{
	int	 n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

int
main(void)
{
	struct arena	*a = arena_new();
	const char	*date = "Sun, 22 Nov 2026 20:00:00 +0000";
	const char	*link = "https://t.example/verify-email?token=abc_DEF-123";
	char		*m, *body;
	size_t		 len;

	if (crypto_init() < 0)
		return 1;

	/* Plain text only. */
	m = mail_compose(a, "ID1", "from@example.com", "to@example.com",
	    "Hello", "line one\nline two\r\nthree\rfour\n.dot line\n", NULL,
	    date, &len);
	is_int(len, strlen(m), "length is the text's");
	ok(crlf_only(m, len), "plain: every line ends in CRLF");
	ok(strncmp(m, "Date: Sun, 22 Nov 2026", 22) == 0, "Date first");
	ok(strstr(m, "\r\nFrom: from@example.com\r\n") != NULL, "From");
	ok(strstr(m, "\r\nTo: <to@example.com>\r\n") != NULL, "To");
	ok(strstr(m, "\r\nSubject: Hello\r\n") != NULL, "ASCII subject as is");
	ok(strstr(m, "\r\nMessage-ID: <ID1@tollgate>\r\n") != NULL,
	    "Message-ID from the outbox id");
	ok(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n") != NULL,
	    "text/plain, UTF-8");
	ok(strstr(m, "multipart") == NULL, "no multipart without HTML");
	body = strstr(m, "\r\n\r\n");
	ok(body != NULL, "a blank line ends the headers");
	is_str(body ? body + 4 : NULL,
	    "line one\r\nline two\r\nthree\r\nfour\r\n.dot line\r\n\r\n",
	    "LF, CRLF and CR all become CRLF; dots are left to libcurl");

	/* Text and HTML. */
	m = mail_compose(a, "ID2", "f@example.com", "t@example.com", "Link",
	    arena_printf(a, "Open:\n\n%s\n", link),
	    arena_printf(a, "<p><a href=\"%s\">x</a></p>", link), date, &len);
	ok(crlf_only(m, len), "multipart: every line ends in CRLF");
	ok(strstr(m, "Content-Type: multipart/alternative; boundary=\"tg-ID2\""
	    "\r\n") != NULL, "multipart/alternative with the id's boundary");
	is_int(count(m, "\r\n--tg-ID2\r\n"), 2, "two parts open");
	ok(strstr(m, "\r\n--tg-ID2--\r\n") != NULL, "the closing boundary");
	ok(strstr(m, "text/plain") < strstr(m, "text/html"),
	    "plain text first, then HTML");
	is_int(count(m, link), 2, "the link in both parts");

	/* Header injection and non-ASCII subjects. */
	m = mail_compose(a, "ID3", "f@example.com", "t@example.com",
	    "Hi\r\nBcc: evil@example.com", "x", NULL, date, &len);
	ok(strstr(m, "\r\nBcc:") == NULL, "a line break in a subject cannot "
	    "add a header");
	ok(strstr(m, "Subject: =?UTF-8?B?") != NULL, "such a subject is encoded");
	m = mail_compose(a, "ID4", "f@example.com", "t@example.com",
	    "Gr\xc3\xbc\xc3\x9f" "e", "x", NULL, date, &len);
	ok(strstr(m, "\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n") != NULL,
	    "a UTF-8 subject is RFC 2047 base64");

	/* Empty text. */
	m = mail_compose(a, "ID5", "f@example.com", "t@example.com", "E", "",
	    NULL, date, &len);
	ok(crlf_only(m, len) && len > 0, "an empty text still makes a message");

	/* The built-in texts (share/mail-texts.txt), filled in. */
	{
		const char	*subject = NULL, *t, *vars[] = { "link", link,
				    NULL };
		char		 path[] = "/tmp/tgtexts-XXXXXX", err[256];
		FILE		*f;
		int		 fd;

		cfg.product_name = "Acme";
		cfg.base_url = "https://t.example";
		cfg.support_url = "";
		cfg.mail_texts = "";
		t = mail_message(a, "verification", vars, &subject);
		is_str(subject, "Verify your email address",
		    "texts: the verification subject");
		is_str(t, "Hello,\n\nPlease confirm your email address by "
		    "opening this link:\n\nhttps://t.example/verify-email?"
		    "token=abc_DEF-123\n\nThe link works once and expires in "
		    "48 hours. If you did not sign up, ignore this message.\n",
		    "texts: the verification text, its link on a line");
		t = mail_message(a, "account_deleted", NULL, &subject);
		is_str(subject, "Your Acme account was deleted",
		    "texts: {product} in a subject");
		ok(t != NULL && strstr(t, "Thank you for trying Acme.\n") != NULL,
		    "texts: {product} in a text");
		is_str(mail_part(a, "trial_ended.fallback", (const char *[]){
		    "plan", "free", NULL }), "Your account is now on the free "
		    "plan.", "texts: a part, filled");
		ok(mail_message(a, "no_such_mail", NULL, &subject) == NULL,
		    "texts: an unknown message is NULL");
		is_str(mail_part(a, "welcome.trial", NULL),
		    "Your free trial has started: it runs until {ends} and "
		    "comes with {credits} credits.", "texts: an unknown "
		    "placeholder stays as it is");

		if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL)
			return 1;
		fputs("# mine\n== welcome\nSubject: Hi\n\nYo {product}\n\n\n"
		    "== welcome.trial\nTrial!\n", f);
		fclose(f);
		is_int(mail_texts_check(path, err, sizeof(err)), 2,
		    "a texts file: two entries read");
		t = mail_message(a, "welcome", NULL, &subject);
		is_str(t, "Yo Acme\n", "its message replaces the built-in one, "
		    "trailing empty lines dropped");
		f = fopen(path, "w");
		fputs("stray text\n== x\n", f);
		fclose(f);
		is_int(mail_texts_check(path, err, sizeof(err)), -1,
		    "text before the first entry: refused");
		ok(strstr(err, "line 1") != NULL, "and the line is named");
		f = fopen(path, "w");
		fputs("== Bad Name\n", f);
		fclose(f);
		is_int(mail_texts_check(path, err, sizeof(err)), -1,
		    "a bad name: refused");
		unlink(path);
		cfg.product_name = cfg.base_url = cfg.support_url = NULL;
		cfg.mail_texts = NULL;
	}

	arena_free(a);
	return done_testing();
}
