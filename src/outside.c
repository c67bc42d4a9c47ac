/*
 * Calls to the outside world through libcurl: SMTP relays, and HTTP(S)
 * to GitHub and Stripe.  Secrets passed in (passwords, API keys) are
 * never logged; errors come back as short sentences for the log.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "tollgate.h"

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
	curl_easy_setopt(c, CURLOPT_URL, cfg.smtp_url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, addr);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_upload);
	curl_easy_setopt(c, CURLOPT_READDATA, &u);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (cfg.smtp_user[0] != '\0') {
		curl_easy_setopt(c, CURLOPT_USERNAME, cfg.smtp_user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, cfg.smtp_password);
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	}
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
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tollgate/" PACKAGE_VERSION);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form ? form : "");
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? (int)status : -1;
}
