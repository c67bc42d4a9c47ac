/*
 * Calls to the outside world through libcurl: SMTP relays, and HTTP(S)
 * to GitHub and Stripe.  Secrets passed in (passwords, API keys) are
 * never logged; errors come back as short sentences for the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/core.h"

/* Sets a libcurl option while rc is still CURLE_OK, keeping the failure. */
#define SETOPT(rc, c, opt, val) do {					\
	if ((rc) == CURLE_OK)						\
		(rc) = curl_easy_setopt((c), (opt), (val));		\
} while (0)

struct upload {
	const char	*p;
	size_t		 left;
};

static size_t
read_upload(char *dst, size_t size, size_t n, void *arg)
{
	struct upload	*u = arg;
	size_t		 want = size * n;

	if (want > u->left)
		want = u->left;
	memcpy(dst, u->p, want);
	u->p += want;
	u->left -= want;
	return want;
}

static size_t
write_buf(char *src, size_t size, size_t n, void *arg)
{
	struct buf	*b = arg;

	if (b->len + size * n > 1024 * 1024)
		return 0;	/* answers past 1 MiB are refused */
	buf_add(b, src, size * n);
	return size * n;
}

int
outside_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/*
 * Hands one message to the SMTP relay.  Returns 0 when the relay
 * accepted it, -1 (with err) when it did not.
 */
int
smtp_send(const char *from, const char *to, const char *msg, size_t len,
    char *err, size_t errlen)
{
	CURL			*c;
	struct curl_slist	*rcpt = NULL;
	struct upload		 u = { msg, len };
	char			 addr[320];
	CURLcode		 rc;

	if ((c = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	snprintf(addr, sizeof(addr), "<%s>", to);
	rcpt = curl_slist_append(rcpt, addr);
	snprintf(addr, sizeof(addr), "<%s>", from);
	/* Every option must take; any that does not fails the send. */
	rc = CURLE_OK;
	SETOPT(rc, c, CURLOPT_URL, cfg.smtp_url);
	SETOPT(rc, c, CURLOPT_MAIL_FROM, addr);
	SETOPT(rc, c, CURLOPT_MAIL_RCPT, rcpt);
	SETOPT(rc, c, CURLOPT_READFUNCTION, read_upload);
	SETOPT(rc, c, CURLOPT_READDATA, &u);
	SETOPT(rc, c, CURLOPT_UPLOAD, 1L);
	SETOPT(rc, c, CURLOPT_CONNECTTIMEOUT, 10L);
	SETOPT(rc, c, CURLOPT_TIMEOUT, 60L);
	SETOPT(rc, c, CURLOPT_NOSIGNAL, 1L);
	if (cfg.smtp_user[0] != '\0') {
		SETOPT(rc, c, CURLOPT_USERNAME, cfg.smtp_user);
		SETOPT(rc, c, CURLOPT_PASSWORD, cfg.smtp_password);
		/*
		 * With credentials, TLS is required: an smtp:// relay must
		 * offer STARTTLS (a stripped STARTTLS fails the send instead
		 * of sending the password in the clear); smtps:// is TLS
		 * from the start.
		 */
		SETOPT(rc, c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	}
	if (rc == CURLE_OK)
		rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

/*
 * Makes one HTTP request.  method is "GET", "POST" or "DELETE"; form is
 * an urlencoded body or NULL; headers are "Name: value" lines, NULL
 * terminated.  Returns the HTTP status (the answer's body in *answer,
 * in the arena), or -1 when no answer came (with err).
 */
int
http_call(struct arena *a, const char *method, const char *url,
    const char *const *headers, const char *form, struct buf *answer,
    char *err, size_t errlen)
{
	return http_call_within(a, method, url, headers, form, answer, err,
	    errlen, 15000);
}

/* http_call, given up after limit_ms (connecting: half of it, at most 5 s). */
int
http_call_within(struct arena *a, const char *method, const char *url,
    const char *const *headers, const char *form, struct buf *answer,
    char *err, size_t errlen, long limit_ms)
{
	CURL			*c;
	struct curl_slist	*hl = NULL;
	long			 status = -1;
	CURLcode		 rc;
	size_t			 i;

	buf_init(answer, a);
	if ((c = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	rc = CURLE_OK;
	SETOPT(rc, c, CURLOPT_URL, url);
	SETOPT(rc, c, CURLOPT_HTTPHEADER, hl);
	SETOPT(rc, c, CURLOPT_WRITEFUNCTION, write_buf);
	SETOPT(rc, c, CURLOPT_WRITEDATA, answer);
	SETOPT(rc, c, CURLOPT_CONNECTTIMEOUT_MS, limit_ms / 2 < 5000 ?
	    limit_ms / 2 : 5000L);
	SETOPT(rc, c, CURLOPT_TIMEOUT_MS, limit_ms);
	SETOPT(rc, c, CURLOPT_NOSIGNAL, 1L);
	SETOPT(rc, c, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(rc, c, CURLOPT_USERAGENT, "tollgate/" PACKAGE_VERSION);
	if (strcmp(method, "POST") == 0)
		SETOPT(rc, c, CURLOPT_POSTFIELDS, form ? form : "");
	else if (strcmp(method, "GET") != 0)
		SETOPT(rc, c, CURLOPT_CUSTOMREQUEST, method);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? (int)status : -1;
}

/* ------------------------------------------------------------------ */
/* Forms, JSON answers and Stripe (used by github.c, billing.c,        */
/* stripe.c).                                                          */
/* ------------------------------------------------------------------ */

/*
 * Appends s percent-encoded as RFC 3986 wants it in a query or form:
 * everything but the unreserved characters is escaped (a space is %20).
 */
static void
buf_escape(struct buf *b, const char *s, const char *keep)
{
	static const char	 hx[] = "0123456789ABCDEF";
	const unsigned char	*p;
	char			 e[3];

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~' ||
		    (keep != NULL && strchr(keep, *p) != NULL)) {
			buf_add(b, p, 1);
			continue;
		}
		e[0] = '%';
		e[1] = hx[*p >> 4];
		e[2] = hx[*p & 15];
		buf_add(b, e, 3);
	}
}

/*
 * The one percent-encoder: s with every byte but the unreserved ones of
 * RFC 3986 (and those in keep, which may be NULL) escaped, in the arena.
 */
char *
uri_escape(struct arena *a, const char *s, const char *keep)
{
	struct buf	 b;

	buf_init(&b, a);
	buf_escape(&b, s != NULL ? s : "", keep);
	return b.p;
}

void
form_add(struct buf *b, const char *key, const char *val)
{
	if (b->len > 0)
		buf_add(b, "&", 1);
	buf_escape(b, key, NULL);
	buf_add(b, "=", 1);
	buf_escape(b, val != NULL ? val : "", NULL);
}

int
stripe_call(struct arena *a, const char *method, const char *path,
    const char *form, const char *idem, struct json_object **out, char *err,
    size_t errlen)
{
	const char	*headers[3];
	struct buf	 answer;
	size_t		 n = 0;
	int		 status;

	*out = NULL;
	if (cfg.stripe_secret_key[0] == '\0') {
		snprintf(err, errlen, "[stripe] secret_key is not configured");
		return -1;
	}
	headers[n++] = arena_printf(a, "Authorization: Bearer %s",
	    cfg.stripe_secret_key);
	if (idem != NULL)
		headers[n++] = arena_printf(a, "Idempotency-Key: %s", idem);
	headers[n] = NULL;
	status = http_call(a, method, arena_printf(a, "%s%s",
	    cfg.stripe_api_base, path), headers, form, &answer, err, errlen);
	if (status < 0)
		return -1;
	*out = json_parse_any(answer.p, answer.len);
	if (status < 200 || status > 299) {
		const char *msg = json_str_at(*out, "error.message");

		/* Stripe's message names the problem, never the key. */
		snprintf(err, errlen, "HTTP %d: %.200s", status,
		    msg != NULL ? msg : "no error message");
	}
	return status;
}
