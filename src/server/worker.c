/*
 * A worker: the FastCGI accept loop and the dispatcher.  Each request
 * gets the per-request arena; checks run before any handler (method 405,
 * unknown path 404, loopback-only routes, body bounds and media types,
 * declared fields), and a handler answers exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "server/server.h"

volatile int	 worker_stopping;

static void
on_term(int sig)
{
	(void)sig;
	worker_stopping = 1;
}

/* True when the master's final stop made the listening socket non-blocking. */
static bool
draining(int fd)
{
	int	 fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* True for 127.0.0.0/8 and ::1 (also as an IPv4-mapped address). */
static bool
is_loopback(const char *addr)
{
	if (addr == NULL)
		return false;
	if (strncmp(addr, "::ffff:", 7) == 0)
		addr += 7;
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

/* Writes "GET, POST" for the method bits of allow, in the arena. */
static const char *
allow_text(struct arena *a, unsigned allow)
{
	static const struct { unsigned m; const char *name; } names[] = {
		{ M_GET, "GET" }, { M_HEAD, "HEAD" }, { M_POST, "POST" },
		{ M_PUT, "PUT" }, { M_PATCH, "PATCH" }, { M_DELETE, "DELETE" },
	};
	struct buf	 b;
	size_t		 i;

	if (allow & M_GET)
		allow |= M_HEAD;
	buf_init(&b, a);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (allow & names[i].m)
			buf_printf(&b, "%s%s", b.len ? ", " : "", names[i].name);
	return b.p;
}

/* Lower-cased media type of a Content-Type, without its parameters. */
static const char *
media_type(struct arena *a, const char *ct)
{
	size_t	 n;

	if (ct == NULL)
		return NULL;
	n = strcspn(ct, "; \t");
	return ascii_lower(a, arena_strndup(a, ct, n));
}

/* Adds the CORS headers when the request's Origin is configured. */
static bool
cors(struct req *r)
{
	const char	*origin = req_env(r, "HTTP_ORIGIN");
	const char	*p = cfg.cors_origins;
	size_t		 n;

	if (origin == NULL || *p == '\0')
		return false;
	while (*p != '\0') {
		p += strspn(p, " ,");
		n = strcspn(p, " ,");
		if (n > 0 && strlen(origin) == n && strncmp(p, origin, n) == 0) {
			reply_header(r, "Access-Control-Allow-Origin", origin);
			reply_header(r, "Access-Control-Allow-Credentials",
			    "true");
			reply_header(r, "Vary", "Origin");
			return true;
		}
		p += n;
	}
	return false;
}

/*
 * Reads the body (bounded) and parses it as the route allows.  Returns
 * true when the request may go on; otherwise it has been answered.
 */
static bool
read_body(struct req *r)
{
	FCGX_Request	*fx = r->fcgi;
	const char	*cl = req_env(r, "CONTENT_LENGTH");
	size_t		 max = (r->route->flags & ROUTE_RAW) ?
			    MAX_RAW_BODY : MAX_BODY;
	long long	 len = 0;
	int		 got;
	char		*end;

	if (cl != NULL && *cl != '\0') {
		len = strtoll(cl, &end, 10);
		if (*end != '\0' || len < 0) {
			reply_error(r, 400, "bad_request", "The request's "
			    "length is not valid.");
			return false;
		}
	}
	if ((unsigned long long)len > max) {
		reply_error(r, 413, "payload_too_large", "The request body "
		    "is too large.");
		return false;
	}
	r->body = arena_alloc(r->a, (size_t)len + 1);
	for (r->body_len = 0; r->body_len < (size_t)len; r->body_len += got)
		if ((got = FCGX_GetStr(r->body + r->body_len,
		    (int)(len - (long long)r->body_len), fx->in)) <= 0)
			break;
	r->body[r->body_len] = '\0';
	if (r->body_len != (size_t)len) {
		reply_error(r, 400, "bad_request", "The request body ended "
		    "early.");
		return false;
	}
	if (r->body_len == 0 || (r->route->flags & ROUTE_RAW))
		return true;
	if (r->content_type != NULL &&
	    strcmp(r->content_type, "application/json") == 0 &&
	    (r->route->flags & ROUTE_JSON)) {
		if ((r->json = parse_json_object(r->body, r->body_len)) == NULL) {
			reply_error(r, 400, "bad_request", "The body is not "
			    "a JSON object.");
			return false;
		}
		return true;
	}
	if (r->content_type != NULL && strcmp(r->content_type,
	    "application/x-www-form-urlencoded") == 0 &&
	    (r->route->flags & ROUTE_FORM)) {
		if (parse_urlencoded(r->a, r->body, r->body_len, &r->form) < 0) {
			reply_error(r, 400, "bad_request", "The form is not "
			    "well formed.");
			return false;
		}
		return true;
	}
	reply_error(r, 415, "unsupported_media_type", (r->route->flags &
	    ROUTE_FORM) && !(r->route->flags & ROUTE_JSON) ? "Send a form "
	    "(application/x-www-form-urlencoded)." : "Send JSON "
	    "(application/json).");
	return false;
}

/*
 * True for a route whose answer may show what gate checks counted: it
 * waits for the journal first (eng_journal_settle).  Not the health and
 * metrics routes, which must answer at once, nor the gate itself.
 */
static bool
reads_counts(const struct route *rt)
{
	return rt->fn != h_healthz && rt->fn != h_metrics && rt->fn != h_gate;
}

/* Runs the checks before dispatch, then the handler.  Answers once. */
static void
dispatch(struct req *r)
{
	struct json_object	*bad;
	unsigned		 allow;
	const char		*ct;

	if ((r->route_index = route_match(r, r->path, r->method, &allow)) < 0) {
		if (r->method == M_OPTIONS && r->route_index == -2 && cors(r)) {
			reply_header(r, "Access-Control-Allow-Methods",
			    allow_text(r->a, allow));
			reply_header(r, "Access-Control-Allow-Headers",
			    "Authorization, Content-Type");
			reply_header(r, "Access-Control-Max-Age", "600");
			reply_empty(r, 204);
		} else if (r->route_index == -2) {
			reply_header(r, "Allow", allow_text(r->a, allow));
			reply_error(r, 405, "method_not_allowed", "This "
			    "method is not allowed here.");
		} else
			reply_error(r, 404, "not_found", "There is nothing "
			    "here.");
		return;
	}
	r->route = &routes[r->route_index];
	if ((r->route->flags & ROUTE_LOOPBACK) && !is_loopback(r->remote_addr)) {
		reply_error(r, 404, "not_found", "There is nothing here.");
		return;
	}
	cors(r);
	if (parse_cookies(r->a, req_env(r, "HTTP_COOKIE"), &r->cookies) < 0)
		r->cookies.n = 0;	/* Other sites' odd cookies: ignore. */
	if (!auth_route(r) || !api_limit(r))
		return;
	if (parse_urlencoded(r->a, r->query, strlen(r->query), &r->queryv) < 0) {
		reply_error(r, 400, "bad_request", "The query string is not "
		    "well formed.");
		return;
	}
	ct = req_env(r, "CONTENT_TYPE");
	r->content_type = ct != NULL && *ct != '\0' ? media_type(r->a, ct) : NULL;
	if (!read_body(r))
		return;
	/*
	 * Only a GET or HEAD reads its fields from the query string; any
	 * other method takes them from its body alone (contract section 2),
	 * so a password or token put in a URL (which proxies and CDNs log)
	 * never counts.
	 */
	if (r->method == M_GET || r->method == M_HEAD)
		r->form = r->queryv;
	if ((bad = request_take_fields(r, r->route->fields)) != NULL) {
		/* A form's handler shows the form again with the messages. */
		if (r->route->flags & ROUTE_FORM_ERRORS)
			r->bad = bad;
		else {
			reply_invalid(r, bad);
			return;
		}
	}
	if (reads_counts(r->route) && !eng_journal_settle(1.0))
		log_warn("journal_settle", " route=%s", r->route->pattern);
	r->route->fn(r);
	if (!r->replied) {
		log_err("no_reply", " route=%s", r->route->pattern);
		reply_error(r, 500, "internal_error", "Something went wrong "
		    "on our side.");
	}
}

/* Handles one accepted request from start to log line. */
static void
handle(FCGX_Request *fx, struct arena *a)
{
	struct req	 r;
	const char	*path;
	double		 dur;

	memset(&r, 0, sizeof(r));
	r.a = a;
	r.fcgi = fx;
	r.env = fx->envp;
	r.t0 = now_seconds();
	r.route_index = -1;
	r.method_str = FCGX_GetParam("REQUEST_METHOD", fx->envp);
	r.method = method_parse(r.method_str);
	path = FCGX_GetParam("DOCUMENT_URI", fx->envp);
	if (path == NULL)
		path = FCGX_GetParam("SCRIPT_NAME", fx->envp);
	r.path = path != NULL ? path : "/";
	r.query = FCGX_GetParam("QUERY_STRING", fx->envp);
	if (r.query == NULL)
		r.query = "";
	r.remote_addr = FCGX_GetParam("REMOTE_ADDR", fx->envp);
	/* nginx's $request_id (the shipped snippets pass it): every log
	 * line of this request carries it. */
	log_set_request_id(FCGX_GetParam("REQUEST_ID", fx->envp));
	r.user_agent = FCGX_GetParam("HTTP_USER_AGENT", fx->envp);

	dispatch(&r);

	dur = now_seconds() - r.t0;
	metrics_request(r.route_index, r.method_str, r.status, dur);
	tg_log(r.status >= 500 ? LOG_LVL_WARN : LOG_LVL_INFO, "request",
	    " method=%s path=%s route=%s status=%d ms=%.2f addr=%s user=%s",
	    r.method_str ? r.method_str : "-", r.path,
	    route_label(r.route_index), r.status, dur * 1000,
	    r.remote_addr ? r.remote_addr : "-",
	    r.who.user_id ? r.who.user_id : "-");
	log_set_request_id(NULL);
	if (r.bad != NULL)
		json_object_put(r.bad);
	if (r.json != NULL) {
		json_wipe(r.json);	/* passwords, tokens: not left in the heap */
		json_object_put(r.json);
	}
}

void
worker_run(int fd)
{
	FCGX_Request		 fx;
	struct arena		*a;
	struct sigaction	 sa;
	struct timespec		 wait_term = { 0, 10 * 1000 * 1000 };
	sigset_t		 term, none;
	int			 rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: accept returns */
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (FCGX_Init() != 0 || (a = arena_new()) == NULL ||
	    FCGX_InitRequest(&fx, fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_err("worker_init", " msg=\"cannot initialise\"");
		_exit(1);
	}
	log_info("worker_start", "%s", "");
	for (;;) {
		/*
		 * A reload stops a worker at once: the new workers take the
		 * queue.  A final stop makes the socket non-blocking first,
		 * and then the connections nginx already queued are answered
		 * before the worker exits (accept says EAGAIN when none is left).
		 */
		if (worker_stopping && !draining(fd))
			break;
		if ((rc = FCGX_Accept_r(&fx)) < 0) {
			if (rc == -EINTR)
				continue;
			if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
				if (worker_stopping)
					break;
				nanosleep(&wait_term, NULL);	/* it's coming */
				continue;
			}
			log_err("accept", " errno=%d", -rc);
			_exit(1);
		}
		/* A stop request waits until this request is answered. */
		sigprocmask(SIG_BLOCK, &term, NULL);
		handle(&fx, a);
		FCGX_Finish_r(&fx);
		arena_reset(a);
		sigprocmask(SIG_UNBLOCK, &term, NULL);
	}
	db_close();
	arena_free(a);
	log_info("worker_stop", "%s", "");
	exit(0);
}
