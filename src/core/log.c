/*
 * Structured logs: one line per event on stderr, in logfmt, for journald
 * (or a file).  Each line starts with a syslog priority prefix ("<3>"
 * error, "<4>" warning, "<6>" info, "<7>" debug), which journald strips
 * and keeps as the entry's priority, so `journalctl -p warning` works.
 *
 * Values are escaped as they are written: the callers' format strings
 * are logfmt ("key=%s", "key=\"%s\""), and every %s argument is written
 * with backslash escapes for '"', '\\' and control bytes ("\n", "\r",
 * "\t", "\xNN"); a bare value (key=%s) that holds a space, a quote, an
 * '=' or nothing at all is quoted.  (A %s that follows neither '=' nor
 * '"' is a fragment of pairs the caller built: escaped, never quoted.)  No value can end a line or start a
 * key of its own, so a "%0A" in a request path cannot forge a log line.
 *
 * While a worker handles a request, every line carries request_id=,
 * nginx's $request_id (FastCGI parameter REQUEST_ID).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char level_prio[] = { '7', '6', '4', '3' };

static char	 request_id[65];

/*
 * Sets the request id that every line carries until it is cleared (NULL
 * or ""); anything but 1 to 64 letters, digits, '-' and '_' is dropped.
 */
void
log_set_request_id(const char *id)
{
	size_t	 n;

	request_id[0] = '\0';
	if (id == NULL || (n = strlen(id)) == 0 || n >= sizeof(request_id) ||
	    strspn(id, "0123456789abcdefABCDEFghijklmnopqrstuvwxyz"
	    "GHIJKLMNOPQRSTUVWXYZ-_") != n)
		return;
	memcpy(request_id, id, n + 1);
}

/* The current request id, "" outside a request. */
const char *
log_request_id(void)
{
	return request_id;
}

/* A line under construction: never overflows, keeps room for "\n". */
struct line {
	char	 buf[2048];
	size_t	 n;
};

static void
put(struct line *l, const char *s, size_t n)
{
	size_t	 room = sizeof(l->buf) - 1 - l->n;

	if (n > room)
		n = room;
	memcpy(l->buf + l->n, s, n);
	l->n += n;
}

static void
putc_(struct line *l, char c)
{
	put(l, &c, 1);
}

/* True when a bare value must be quoted to stay one value. */
static bool
needs_quotes(const char *s, size_t n)
{
	size_t	 i;

	if (n == 0)
		return true;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

/* Writes n bytes of s escaped (see the top of this file). */
static void
put_escaped(struct line *l, const char *s, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	size_t	 i;
	char	 e[4];

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':  put(l, "\\\"", 2); break;
		case '\\': put(l, "\\\\", 2); break;
		case '\n': put(l, "\\n", 2); break;
		case '\r': put(l, "\\r", 2); break;
		case '\t': put(l, "\\t", 2); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				e[0] = '\\';
				e[1] = 'x';
				e[2] = hexd[c >> 4];
				e[3] = hexd[c & 15];
				put(l, e, 4);
			} else
				putc_(l, (char)c);
		}
	}
}

/*
 * Formats fmt with ap into l, escaping every %s argument.  Conversions
 * other than %s (d, i, u, x, c, f, g, p with flags, width, precision and
 * the h, l, ll, z modifiers) go through snprintf one at a time, with the
 * caller's format checked by the compiler (tg_log is TG_PRINTF).
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
format(struct line *l, const char *fmt, va_list ap)
{
	const char	*p = fmt, *spec;
	char		 one[32], tmp[64];
	int		 prec, k;

	while (*p != '\0') {
		if (*p != '%') {
			const char *q = strchr(p, '%');
			size_t len = q != NULL ? (size_t)(q - p) : strlen(p);

			/* The format's own text is trusted but still one line. */
			for (size_t i = 0; i < len; i++)
				putc_(l, p[i] == '\n' ? ' ' : p[i]);
			p += len;
			continue;
		}
		spec = p++;
		if (*p == '%') {
			putc_(l, '%');
			p++;
			continue;
		}
		while (*p != '\0' && strchr("-+ #0", *p) != NULL)
			p++;
		while (*p >= '0' && *p <= '9')
			p++;
		prec = -1;
		if (*p == '.') {
			p++;
			if (*p == '*') {
				prec = va_arg(ap, int);
				p++;
			} else
				for (prec = 0; *p >= '0' && *p <= '9'; p++)
					prec = prec * 10 + (*p - '0');
		}
		while (*p != '\0' && strchr("hlz", *p) != NULL)
			p++;
		if (*p == '\0')
			break;
		if ((size_t)(p - spec + 1) >= sizeof(one)) {
			p++;
			continue;	/* No such format in this program. */
		}
		memcpy(one, spec, (size_t)(p - spec + 1));
		one[p - spec + 1] = '\0';
		switch (*p++) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			size_t n;
			bool bare = spec > fmt && spec[-1] == '=';

			if (s == NULL)
				s = "-";
			n = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
			if (bare && needs_quotes(s, n)) {
				putc_(l, '"');
				put_escaped(l, s, n);
				putc_(l, '"');
			} else
				put_escaped(l, s, n);
			break;
		}
		case 'd': case 'i': case 'u': case 'x': case 'X': case 'o':
		case 'c':
			if (strstr(one, "ll") != NULL)
				k = snprintf(tmp, sizeof(tmp), one,
				    va_arg(ap, long long));
			else if (strchr(one, 'l') != NULL)
				k = snprintf(tmp, sizeof(tmp), one,
				    va_arg(ap, long));
			else if (strchr(one, 'z') != NULL)
				k = snprintf(tmp, sizeof(tmp), one,
				    va_arg(ap, size_t));
			else
				k = snprintf(tmp, sizeof(tmp), one,
				    va_arg(ap, int));
			if (k > 0)
				put_escaped(l, tmp, (size_t)k < sizeof(tmp) ?
				    (size_t)k : sizeof(tmp) - 1);
			break;
		case 'f': case 'g': case 'e': case 'F': case 'G': case 'E':
			k = snprintf(tmp, sizeof(tmp), one, va_arg(ap, double));
			if (k > 0)
				put(l, tmp, (size_t)k < sizeof(tmp) ?
				    (size_t)k : sizeof(tmp) - 1);
			break;
		case 'p':
			k = snprintf(tmp, sizeof(tmp), one, va_arg(ap, void *));
			if (k > 0)
				put(l, tmp, (size_t)k < sizeof(tmp) ?
				    (size_t)k : sizeof(tmp) - 1);
			break;
		default:
			break;	/* Unknown: dropped rather than misread. */
		}
	}
}
#pragma GCC diagnostic pop

/*
 * Writes "<N>ts=... level=... pid=... event=..." and the caller's pairs
 * (escaped), then request_id= inside a request, as one write(2), so the
 * lines of concurrent processes do not interleave.
 */
void
tg_log(enum loglevel level, const char *event, const char *fmt, ...)
{
	struct line	 l;
	char		 head[128], ts[32];
	struct timespec	 now;
	struct tm	 tm;
	va_list		 ap;
	int		 n;

	if ((int)level < 0 || (size_t)level >= sizeof(level_prio))
		level = LOG_LVL_ERROR;
	l.n = 0;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(head, sizeof(head), "<%c>ts=%s.%03ldZ level=%s pid=%d "
	    "event=", level_prio[level], ts, now.tv_nsec / 1000000,
	    level_names[level], (int)getpid());
	if (n > 0)
		put(&l, head, (size_t)n < sizeof(head) ? (size_t)n :
		    sizeof(head) - 1);
	put_escaped(&l, event, strlen(event));
	va_start(ap, fmt);
	format(&l, fmt, ap);
	va_end(ap);
	if (request_id[0] != '\0') {
		put(&l, " request_id=", 12);
		put(&l, request_id, strlen(request_id));
	}
	l.buf[l.n++] = '\n';
	if (write(STDERR_FILENO, l.buf, l.n) < 0)
		return;	/* Nowhere left to report it. */
}
