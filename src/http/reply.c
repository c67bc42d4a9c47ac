/*
 * The one way to answer: every response, JSON or HTML, success or error,
 * leaves through send_response here, which adds the security headers and
 * makes sure a request is answered exactly once.  Internal error text
 * never reaches a client: it goes to the log.
 */
#include <stdio.h>
#include <string.h>

#include <fcgiapp.h>

#include "http/http.h"

/* The headers every response carries. */
static const char security_headers[] =
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n"
    "Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n"
    "Content-Security-Policy: default-src 'none'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'\r\n";

const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 302: return "Found";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

void
reply_header(struct req *r, const char *name, const char *value)
{
	struct kv	*nv;

	if (r->headers_out.n == r->headers_cap) {
		r->headers_cap = r->headers_cap ? r->headers_cap * 2 : 8;
		nv = arena_alloc(r->a, sizeof(*nv) * r->headers_cap);
		if (r->headers_out.n)
			memcpy(nv, r->headers_out.v,
			    sizeof(*nv) * r->headers_out.n);
		r->headers_out.v = nv;
	}
	/* Header values never carry a line break into the response. */
	r->headers_out.v[r->headers_out.n].key = arena_strdup(r->a, name);
	r->headers_out.v[r->headers_out.n].val = arena_strndup(r->a, value,
	    strcspn(value, "\r\n"));
	r->headers_out.n++;
}

/* Writes the status line, headers and body.  The single exit of a reply. */
static void
send_response(struct req *r, int status, const char *ctype,
    const char *body, size_t len)
{
	FCGX_Request	*fx = r->fcgi;
	struct buf	 h;
	size_t		 i;

	if (r->replied) {
		log_err("double_reply", " path=%s status=%d", r->path, status);
		return;
	}
	r->replied = true;
	r->status = status;
	buf_init(&h, r->a);
	buf_printf(&h, "Status: %d %s\r\n", status, status_text(status));
	if (ctype != NULL)
		buf_printf(&h, "Content-Type: %s\r\n", ctype);
	buf_printf(&h, "Content-Length: %zu\r\n", len);
	buf_puts(&h, security_headers);
	buf_puts(&h, "Cache-Control: no-store\r\n");
	for (i = 0; i < r->headers_out.n; i++)
		buf_printf(&h, "%s: %s\r\n", r->headers_out.v[i].key,
		    r->headers_out.v[i].val);
	buf_puts(&h, "\r\n");
	if (fx == NULL)
		return;		/* unit tests */
	FCGX_PutStr(h.p, (int)h.len, fx->out);
	if (len > 0 && r->method != M_HEAD)
		FCGX_PutStr(body, (int)len, fx->out);
}

void
reply_raw(struct req *r, int status, const char *content_type,
    const char *body, size_t len)
{
	send_response(r, status, content_type, body, len);
}

void
reply_json(struct req *r, int status, struct json_object *body)
{
	size_t		 len;
	const char	*s;

	s = json_object_to_json_string_length(body,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	s = arena_strndup(r->a, s, len);
	json_object_put(body);
	send_response(r, status, "application/json", s, len);
}

void
reply_empty(struct req *r, int status)
{
	send_response(r, status, NULL, "", 0);
}

/* The error page of an HTML route. */
static void
error_page(struct req *r, int status, const char *message)
{
	struct buf	 b;

	buf_init(&b, r->a);
	buf_puts(&b, "<p class=\"error\">");
	buf_html(&b, message);
	buf_puts(&b, "</p>\n<p><a href=\"/\">Home</a></p>\n");
	reply_html(r, status, status_text(status), b.p);
}

/* Builds {"error":{"code","message"[,"fields"]}}; fields is consumed. */
static struct json_object *
error_body(const char *code, const char *message, struct json_object *fields)
{
	struct json_object	*o = json_object_new_object(),
				*e = json_object_new_object();

	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	if (fields != NULL)
		json_object_object_add(e, "fields", fields);
	json_object_object_add(o, "error", e);
	return o;
}

void
reply_error(struct req *r, int status, const char *code, const char *message)
{
	if (message == NULL)
		message = status_text(status);
	if (r->route != NULL && (r->route->flags & ROUTE_HTML)) {
		error_page(r, status, message);
		return;
	}
	reply_json(r, status, error_body(code, message, NULL));
}

void
reply_invalid(struct req *r, struct json_object *fields)
{
	static const char msg[] = "Some fields are missing or not valid.";

	if (r->route != NULL && (r->route->flags & ROUTE_HTML)) {
		json_object_put(fields);
		error_page(r, 422, msg);
		return;
	}
	reply_json(r, 422, error_body("validation_failed", msg, fields));
}

void
reply_invalid1(struct req *r, const char *field, const char *what)
{
	struct json_object	*f = json_object_new_object();

	json_object_object_add(f, field, json_object_new_string(what));
	reply_invalid(r, f);
}

void
reply_db(struct req *r, int rc)
{
	if (rc == DB_DOWN || rc == DB_RETRY || rc == DB_UNKNOWN ||
	    rc == TG_BUSY) {
		reply_header(r, "Retry-After", "5");
		reply_error(r, 503, "unavailable", "The service is briefly "
		    "unavailable. Please try again in a few seconds.");
	} else
		reply_error(r, 500, "internal_error", "Something went wrong "
		    "on our side.");
}

void
reply_unauth(struct req *r, const char *code, const char *message)
{
	reply_header(r, "WWW-Authenticate", "Bearer");
	reply_error(r, 401, code, message);
}

void
reply_retry_after(struct req *r, long seconds)
{
	char	 v[32];

	snprintf(v, sizeof(v), "%ld", seconds < 1 ? 1 : seconds);
	reply_header(r, "Retry-After", v);
}

void
reply_rate_limited(struct req *r, long limit, long reset_seconds)
{
	char	 v[32];

	if (reset_seconds < 1)
		reset_seconds = 1;
	snprintf(v, sizeof(v), "%ld", reset_seconds);
	reply_header(r, "Retry-After", v);
	reply_header(r, "X-RateLimit-Reset", v);
	snprintf(v, sizeof(v), "%ld", limit);
	reply_header(r, "X-RateLimit-Limit", v);
	reply_header(r, "X-RateLimit-Remaining", "0");
	reply_error(r, 429, "rate_limited", "Too many requests. Please slow "
	    "down and try again later.");
}

void
reply_html(struct req *r, int status, const char *title, const char *body_html)
{
	struct buf	 b;

	buf_init(&b, r->a);
	buf_puts(&b, "<!doctype html>\n<html lang=\"en\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n<meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">\n<title>");
	buf_html(&b, title);
	/* The product's name ([server] name) brands every page. */
	buf_puts(&b, " · ");
	buf_html(&b, cfg.product_name);
	buf_puts(&b, "</title>\n<link rel=\"stylesheet\" "
	    "href=\"/static/tollgate.css\">\n</head>\n<body>\n<header><a "
	    "class=\"brand\" href=\"/profile\">");
	buf_html(&b, cfg.product_name);
	buf_puts(&b, "</a></header>\n<main>\n<h1>");
	buf_html(&b, title);
	buf_puts(&b, "</h1>\n");
	buf_puts(&b, body_html);
	buf_puts(&b, "</main>\n");
	if (cfg.support_url[0] != '\0') {
		buf_puts(&b, "<footer><a class=\"support\" href=\"");
		buf_html(&b, cfg.support_url);
		buf_puts(&b, "\">Help and support</a></footer>\n");
	}
	buf_puts(&b, "</body>\n</html>\n");
	send_response(r, status, "text/html; charset=utf-8", b.p, b.len);
}

void
reply_redirect(struct req *r, int status, const char *location)
{
	if (location[0] == '/')
		location = arena_printf(r->a, "%s%s", cfg.base_url, location);
	reply_header(r, "Location", location);
	send_response(r, status, NULL, "", 0);
}

void
outcome_refuse(struct outcome *o, int status, const char *code,
    const char *message)
{
	o->status = status;
	o->code = code;
	o->message = message;
}

void
outcome_invalid(struct outcome *o, const char *field, const char *what)
{
	o->status = 422;
	o->field = field;
	o->message = what;
}

void
reply_outcome(struct req *r, struct outcome *o)
{
	struct json_object	*body = o->body;

	o->body = NULL;
	if (o->status >= 200 && o->status < 300) {
		if (body != NULL)
			reply_json(r, o->status, body);
		else
			reply_empty(r, o->status);
		return;
	}
	json_object_put(body);
	switch (o->status) {
	case 401:
		reply_unauth(r, o->code, o->message);
		break;
	case 422:
		reply_invalid1(r, o->field, o->message);
		break;
	case 429:
		reply_rate_limited(r, o->limit, o->retry);
		break;
	case 500:
		reply_db(r, o->rc);
		break;
	default:
		reply_error(r, o->status, o->code, o->message);
		break;
	}
}
