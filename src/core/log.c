/*
 * Structured logs: one line per event on stderr, in logfmt, so journald
 * or a file keeps them and a person or a program can read them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/*
 * Writes "ts=... level=... pid=... event=..." and the caller's pairs as
 * one write(2), so lines of concurrent processes do not interleave.
 */
void
tg_log(enum loglevel level, const char *event, const char *fmt, ...)
{
	char		 line[2048], ts[32];
	struct timespec	 now;
	struct tm	 tm;
	va_list		 ap;
	int		 n, m;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s pid=%d event=%s",
	    ts, now.tv_nsec / 1000000, level_names[level], (int)getpid(), event);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 2;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += (size_t)m < sizeof(line) - (size_t)n - 1 ?
		    m : (int)(sizeof(line) - (size_t)n - 2);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;	/* Nowhere left to report it. */
}
