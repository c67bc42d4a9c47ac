/*
 * Unit tests of src/core/log.c: the journald priority prefix, escaped
 * values (a newline in a value never starts a line of its own, a quote
 * never ends a quoted value early), quoting of bare values, and the
 * request id on every line of a request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "tap.h"

static char	 out[8192];

/* Runs one tg_log call with stderr sent to a file; returns what it wrote. */
#define CAPTURE(call) do {						\
	FILE	*f_ = tmpfile();					\
	int	 saved_ = dup(STDERR_FILENO);				\
	size_t	 n_;							\
	if (f_ == NULL || saved_ < 0)					\
		abort();						\
	fflush(stderr);							\
	dup2(fileno(f_), STDERR_FILENO);				\
	call;								\
	dup2(saved_, STDERR_FILENO);					\
	close(saved_);							\
	rewind(f_);							\
	n_ = fread(out, 1, sizeof(out) - 1, f_);			\
	out[n_] = '\0';							\
	fclose(f_);							\
} while (0)

/* The number of newlines in s. */
static int
lines(const char *s)
{
	int	 n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

int
main(void)
{
	CAPTURE(tg_log(LOG_LVL_ERROR, "boom", " n=%d", 3));
	ok(strncmp(out, "<3>ts=", 6) == 0, "an error starts with <3>");
	ok(strstr(out, " level=error ") != NULL, "and says level=error");
	ok(strstr(out, " event=boom n=3\n") != NULL, "the event and the pairs");
	CAPTURE(tg_log(LOG_LVL_WARN, "w", "%s", ""));
	ok(strncmp(out, "<4>", 3) == 0, "a warning starts with <4>");
	ok(strstr(out, "event=w\n") != NULL, "an empty fragment adds nothing");
	CAPTURE(log_info("i", "%s", ""));
	ok(strncmp(out, "<6>", 3) == 0, "info starts with <6>");

	/* A path with %0A decoded: "/x\nts=... level=error event=forged". */
	CAPTURE(log_info("request", " method=%s path=%s status=%d", "GET",
	    "/x\n<3>ts=2026-01-01T00:00:00.000Z level=error event=forged", 200));
	is_int(lines(out), 1, "a newline in a value: still one line");
	ok(strstr(out, " path=\"/x\\n<3>ts=2026-01-01T00:00:00.000Z "
	    "level=error event=forged\" status=200\n") != NULL,
	    "the value is quoted, its newline written \\n");
	CAPTURE(log_info("x", " a=%s b=%s c=%s", "plain", "", "k=v"));
	ok(strstr(out, " a=plain b=\"\" c=\"k=v\"\n") != NULL,
	    "bare values: plain ones as they are, empty and '=' quoted");
	CAPTURE(log_warn("x", " err=\"%s\"", "a \"quote\", a \\ and \r\x01"));
	ok(strstr(out, " err=\"a \\\"quote\\\", a \\\\ and \\r\\x01\"\n")
	    != NULL, "quoted values: quote, backslash, CR and control bytes "
	    "escaped");
	CAPTURE(log_info("x", " p=%.3s id=%zu big=%lld u=%u", "abcdef",
	    (size_t)7, -9000000000LL, 4u));
	ok(strstr(out, " p=abc id=7 big=-9000000000 u=4\n") != NULL,
	    "precision, %zu, %lld and %u");

	log_set_request_id("0123456789abcdef0123456789abcdef");
	is_str(log_request_id(), "0123456789abcdef0123456789abcdef",
	    "the request id is kept");
	CAPTURE(log_info("x", " a=%d", 1));
	ok(strstr(out, " a=1 request_id=0123456789abcdef0123456789abcdef\n")
	    != NULL, "every line of the request carries request_id=");
	log_set_request_id("evil\nid");
	is_str(log_request_id(), "", "an id with a newline is dropped");
	log_set_request_id("has space");
	is_str(log_request_id(), "", "an id with a space is dropped");
	log_set_request_id(NULL);
	CAPTURE(log_info("x", " a=%d", 1));
	ok(strstr(out, "request_id") == NULL, "no request id outside a request");
	return done_testing();
}
