/*
 * A gate worker: an epoll loop answering nginx's auth_request
 * subrequests over HTTP/1.1 on a unix socket, any number of kept-alive
 * connections at once.
 *
 * Why HTTP and not FastCGI: nginx finishes a header-only subrequest (an
 * auth_request) as soon as the response header is read, and only its
 * proxy module marks a bodiless response's connection reusable at that
 * point (ngx_http_proxy_process_header sets u->keepalive for a 204 or a
 * Content-Length of 0); its FastCGI module sets it only after reading
 * END_REQUEST, which a header-only subrequest never reads, so with
 * fastcgi_keep_conn every check would still cost a new connection.  With
 * proxy_pass, an upstream keepalive pool and Content-Length: 0 on every
 * answer, one connection carries check after check.
 *
 * A check waits (parked, the loop serving others) first for an engine
 * epoch that began after it arrived, so that every change committed
 * before it is in the cache, then, once decided, for the flusher to
 * commit what it counted.  The request carries only headers: nginx's
 * location (nginx/tollgate-app.conf) sends the credential headers, the
 * meter, the cost and the normalised URI, and no body.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "server/server.h"

#define MAX_CONNS	4096
#define IN_MAX		16384	/* a request's headers */
#define OUT_MAX		4096
#define MAX_COST	1000000000LL

enum cstate { C_READ, C_BARRIER, C_FLUSH, C_WRITE };

struct conn {
	int		 fd;
	enum cstate	 st;
	size_t		 inlen, outlen, outoff;
	struct eng_barrier bar;		/* its wait for the gate's barrier */
	uint64_t	 seq;		/* the journal record awaited */
	char		 rid[40];	/* nginx's $request_id, for the log */
	char		 addr[48];	/* the client's address, for the log */
	char		 uid[ENG_ID];	/* whose check it was, for the log */
	int		 status;
	double		 t0;
	struct eng_check chk;
	char		 cred[4096 + 8], a[72], b[ENG_ID], meter[ENG_NAME];
	char		 bucket[ENG_NAME], role[16];	/* the location's */
	char		 in[IN_MAX];
	char		 out[OUT_MAX];
	struct conn	*next_parked;
	bool		 parked;
};

/*
 * JWTs this worker checked: the same token comes again and again, and
 * its signature check (libjwt, OpenSSL's HMAC, a JSON parse) costs more
 * than the rest of a decision.  An exact copy of the token is the key; a
 * good one is trusted until its own exp, a bad or expired one for ever
 * (a reload replaces the workers, and with them this memo).
 */
#define JWT_MEMO	4096

struct jwt_memo {
	char		*tok;
	int		 rc;
	time_t		 exp;
	char		 uid[ENG_ID], sid[ENG_ID];
};

static struct jwt_memo	 memo[JWT_MEMO];

/*
 * Trusted tokens ([trust NAME], contract section 3) this worker mapped:
 * the token (an exact copy) -> its user, until the token's own exp, so a
 * token seen before costs neither a signature check nor a database read
 * (the engine's decision for the user is all).  A refusal is kept two
 * seconds only: a token that named a kid this worker could not fetch yet
 * is good once the issuer's new keys are fetched.
 */
#define TRUST_MEMO	4096
#define TRUST_BAD_TTL	2

struct trust_memo {
	char		*tok;
	int		 rc;		/* TRUST_USER, TRUST_BAD, TRUST_EXPIRED */
	time_t		 until;
	char		 uid[ENG_ID];
};

static struct trust_memo tmemo[TRUST_MEMO];

static struct conn	*parked;
static int		 gate_route = -1;	/* its row in /metrics */
static int		 nconns;		/* open connections */
static int		 ep, me;
static volatile sig_atomic_t	 stopping;
static struct arena	*ar;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* A request header's value (name without the colon), or NULL. */
static const char *
header(struct conn *c, const char *name, size_t *len)
{
	size_t	 n = strlen(name);
	char	*p = c->in, *end = c->in + c->inlen, *eol, *v;

	/* Skip the request line. */
	if ((p = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
		return NULL;
	for (p += 2; p < end && !(p[0] == '\r' && p[1] == '\n'); p = eol + 2) {
		if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
			return NULL;
		if ((size_t)(eol - p) > n && p[n] == ':' &&
		    strncasecmp(p, name, n) == 0) {
			for (v = p + n + 1; v < eol && (*v == ' ' || *v == '\t');
			    v++)
				continue;
			*len = (size_t)(eol - v);
			return v;
		}
	}
	return NULL;
}

/* Copies a header's value into d (at most n - 1 bytes); false if absent. */
static bool
header_copy(struct conn *c, const char *name, char *d, size_t n)
{
	size_t		 len;
	const char	*v = header(c, name, &len);

	if (v == NULL || len >= n)
		return false;
	memcpy(d, v, len);
	d[len] = '\0';
	return true;
}

/* Appends to the connection's answer. */
static void
out(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out(struct conn *c, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(c->out + c->outlen, sizeof(c->out) - c->outlen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(c->out) - c->outlen)
		c->outlen += (size_t)n;
	else
		c->outlen = sizeof(c->out);	/* cut: the hop will fail */
}

/* Writes the answer for verdict v into c->out. */
static void
answer(struct conn *c, const struct eng_verdict *v)
{
	struct json_object	*o, *e;

	c->outlen = c->outoff = 0;
	c->status = v->status;
	snprintf(c->uid, sizeof(c->uid), "%s", v->uid != NULL ? v->uid : "-");
	if (v->status == 204) {
		out(c, "HTTP/1.1 204 No Content\r\nX-Tollgate-User-Id: %s\r\n"
		    "X-Tollgate-Plan: %s\r\nX-Tollgate-Credits-Remaining: %lld"
		    "\r\nX-Tollgate-Role: %s\r\n", v->uid, v->plan ? v->plan :
		    "", v->credits, v->role ? v->role : "");
		/* What is left of the location's meter; empty: no limit. */
		if (strcmp(c->chk.meter, "credits") == 0)
			out(c, "X-Tollgate-Meter-Remaining: %lld\r\n",
			    v->credits);
		else if (v->m_limited)
			out(c, "X-Tollgate-Meter-Remaining: %lld\r\n",
			    v->m_remaining);
		metrics_gate(NULL);
	} else {
		o = json_object_new_object();
		e = json_object_new_object();
		json_object_object_add(e, "code",
		    json_object_new_string(v->code));
		json_object_object_add(e, "message", json_object_new_string(
		    deny_message(ar, v->code, c->chk.meter, v->next,
		    v->uid != NULL ? c->chk.role : NULL)));
		if (strcmp(v->code, "quota_exceeded") == 0)
			json_object_object_add(e, "meter",
			    json_object_new_string(c->chk.meter));
		json_object_object_add(o, "error", e);
		out(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
		    "X-Tollgate-Status: %d\r\nX-Tollgate-Error: %s\r\n",
		    v->status == 401 ? "401 Unauthorized" : "403 Forbidden",
		    v->status, json_object_to_json_string_ext(o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		if (v->status == 401)
			out(c, "WWW-Authenticate: Bearer\r\n");
		if (v->status == 429)
			out(c, "Retry-After: %lld\r\n", v->reset);
		if (v->status == 503)
			out(c, "Retry-After: 5\r\n");
		metrics_gate(v->code);
	}
	out(c, "X-RateLimit-Limit: %lld\r\nX-RateLimit-Remaining: %lld\r\n"
	    "X-RateLimit-Reset: %lld\r\n", v->rate, v->remaining, v->reset);
	/* Stopping: nginx must not send this connection another check. */
	if (stopping)
		out(c, "Connection: close\r\n");
	if (v->status == 204)
		out(c, "Content-Length: 0\r\n");
	out(c, "\r\n");
}

/* Answers at once, before any state is looked at. */
static void
deny_now(struct conn *c, int status, const char *code)
{
	struct eng_verdict	 v;

	memset(&v, 0, sizeof(v));
	v.status = status;
	v.code = code;
	v.reset = 60;
	answer(c, &v);
	c->st = C_WRITE;
}

/* The exp claim of a JWT whose signature was checked, or 0. */
static time_t
jwt_exp(const char *tok)
{
	const char	*p = strchr(tok, '.'), *q;
	unsigned char	 raw[3072];
	size_t		 n;
	char		*e;

	if (p == NULL || (q = strchr(p + 1, '.')) == NULL ||
	    sodium_base642bin(raw, sizeof(raw) - 1, p + 1, (size_t)(q - p - 1),
	    NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return 0;
	raw[n] = '\0';
	if ((e = strstr((char *)raw, "\"exp\":")) == NULL)
		return 0;
	return (time_t)strtoll(e + 6, NULL, 10);
}

/* jwt_check through the memo: the same results, mostly without libjwt. */
static int
jwt_check_memo(const char *tok, const char **uid, const char **sid)
{
	struct jwt_memo	*m = &memo[eng_hash(tok) & (JWT_MEMO - 1)];
	time_t		 now = time(NULL);
	int		 rc;

	if (m->tok != NULL && strcmp(m->tok, tok) == 0) {
		if (m->rc != JWT_OK)
			return m->rc;
		if (m->exp > now) {
			*uid = m->uid;
			*sid = m->sid;
			return JWT_OK;
		}
		return JWT_EXPIRED;
	}
	rc = jwt_check(ar, tok, uid, sid);
	free(m->tok);
	if ((m->tok = strdup(tok)) == NULL)
		return rc;
	m->rc = rc;
	if (rc == JWT_OK) {
		if ((m->exp = jwt_exp(tok)) == 0) {
			free(m->tok);
			m->tok = NULL;
			return rc;
		}
		snprintf(m->uid, sizeof(m->uid), "%s", *uid);
		snprintf(m->sid, sizeof(m->sid), "%s", *sid);
	}
	return rc;
}

/*
 * A request for the app functions this worker calls (rekeying, a trusted
 * token's user, a usage notice): they read only its arena.
 */
static struct req *
bare_req(struct req *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->a = ar;
	return rq;
}

/*
 * The user of a trusted token, through the memo: TRUST_USER with the id
 * in *uid, or another TRUST_* (or DB_*) code of trust_user.  The first
 * sight of a token verifies it (fetching the issuer's keys when its kid
 * is new) and maps its subject (one indexed read, or on the subject's
 * first sight the transaction that makes or links its account): this
 * worker waits for it, as it waits for a lease.
 */
static int
trust_check_memo(const char *tok, const char **uid)
{
	struct trust_memo *m = &tmemo[eng_hash(tok) & (TRUST_MEMO - 1)];
	struct req	 rq;
	time_t		 now = time(NULL);
	long long	 exp = 0;
	int		 rc;

	if (m->tok != NULL && strcmp(m->tok, tok) == 0) {
		if (m->until > now) {
			*uid = m->uid;
			return m->rc;
		}
		if (m->rc == TRUST_USER)
			return TRUST_EXPIRED;
	}
	rc = trust_user(bare_req(&rq), tok, uid, &exp);
	if (rc != TRUST_USER && rc != TRUST_BAD && rc != TRUST_EXPIRED)
		return rc;	/* not a trusted issuer's, down, disabled */
	if (rc == TRUST_USER && strlen(*uid) >= sizeof(m->uid))
		return rc;
	free(m->tok);
	if ((m->tok = strdup(tok)) == NULL)
		return rc;
	m->rc = rc;
	m->until = rc == TRUST_USER ? (time_t)exp : now + TRUST_BAD_TTL;
	snprintf(m->uid, sizeof(m->uid), "%s", rc == TRUST_USER ? *uid : "");
	return rc;
}

/* Answers a trusted token that maps to no user it may use. */
static void
deny_trust(struct conn *c, int rc)
{
	switch (rc) {
	case TRUST_EXPIRED:
		deny_now(c, 401, "token_expired");
		break;
	case TRUST_DISABLED:
		deny_now(c, 403, "account_disabled");
		break;
	case TRUST_BAD:
		deny_now(c, 401, "unauthenticated");
		break;
	default:	/* TRUST_DOWN, a DB_* code */
		deny_now(c, 503, "unavailable");
		break;
	}
}

/* Forgets a trusted token's mapping (its user went away). */
static void
trust_memo_drop(const char *tok, const char *uid)
{
	struct trust_memo *m = &tmemo[eng_hash(tok) & (TRUST_MEMO - 1)];

	if (m->tok != NULL && strcmp(m->tok, tok) == 0) {
		free(m->tok);
		m->tok = NULL;
	}
	trust_forget(uid);
}

/*
 * While [crypto] previous_key is set, a key or cookie the engine has not
 * seen may still be hashed with the old key: its row moves to the new
 * hash first (app/rekey.c), as at every other lookup.
 */
static void
rekey_if_unknown(char kind, const char *a, const char *cred)
{
	struct eng_cred	*c;
	struct req	 rq;
	char		 key[72];
	bool		 known = false;

	if (!cfg.has_previous_key)
		return;
	snprintf(key, sizeof(key), "%c:%s", kind, a);
	if ((c = eng_cred_get(key, false)) != NULL) {
		known = c->uid[0] != '\0';
		eng_unlock(&c->lock);
	}
	if (known)
		return;
	hash_rekey(bare_req(&rq), kind == 'k' ? HASHED_API_KEY :
	    HASHED_COOKIE, cred);
}

/* The session cookie's value in a Cookie header, or NULL. */
static const char *
session_cookie(char *cookies)
{
	struct kvlist	 kv;

	memset(&kv, 0, sizeof(kv));
	if (parse_cookies(ar, cookies, &kv) < 0)
		return NULL;
	return kv_get(&kv, SESSION_COOKIE);
}

/*
 * Reads a complete request's headers into c->chk.  Answers (C_WRITE) what
 * needs no state: a bad location, a missing or malformed credential, a
 * bad JWT, a cookie from another origin.  Otherwise parks the check for
 * the next epoch.
 */
static void
take_request(struct conn *c)
{
	static char	 v[IN_MAX];
	char		 uri[2048], origin[512], site[64];
	const char	*cred, *uid, *sid, *ck;
	char		*end;
	size_t		 len;
	int		 rc, trc;

	memset(&c->chk, 0, sizeof(c->chk));
	memset(&c->bar, 0, sizeof(c->bar));
	c->t0 = eng_now();
	snprintf(c->uid, sizeof(c->uid), "-");
	if (!header_copy(c, "X-Request-Id", c->rid, sizeof(c->rid)))
		c->rid[0] = '\0';
	if (!header_copy(c, "X-Tollgate-Addr", c->addr, sizeof(c->addr)))
		c->addr[0] = '\0';
	if (!header_copy(c, "X-Tollgate-Meter", c->meter, sizeof(c->meter)) ||
	    c->meter[0] == '\0')
		snprintf(c->meter, sizeof(c->meter), "api_calls");
	c->chk.meter = c->meter;
	c->chk.cost = 1;
	if (header_copy(c, "X-Tollgate-Cost", v, sizeof(v)) && v[0] != '\0') {
		c->chk.cost = strtoll(v, &end, 10);
		if (*end != '\0' || c->chk.cost < 0 || c->chk.cost > MAX_COST)
			c->chk.cost = -1;
	}
	if (!header_copy(c, "X-Tollgate-Uri", uri, sizeof(uri)))
		uri[0] = '\0';
	/* $tollgate_bucket and $tollgate_role: empty is none. */
	if (header_copy(c, "X-Tollgate-Bucket", c->bucket, sizeof(c->bucket)) &&
	    c->bucket[0] != '\0')
		c->chk.bucket = c->bucket;
	if (header_copy(c, "X-Tollgate-Role", c->role, sizeof(c->role)) &&
	    c->role[0] != '\0')
		c->chk.role = c->role;
	if (!header_copy(c, "X-Tollgate-Gate", v, sizeof(v)) ||
	    valid_slug(c->meter, strlen(c->meter)) != NULL ||
	    (c->chk.bucket != NULL && valid_slug(c->bucket,
	    strlen(c->bucket)) != NULL) || (c->chk.role != NULL &&
	    strcmp(c->role, "admin") != 0) ||
	    c->chk.cost < 0 || !gate_uri_normal(uri)) {
		log_err("gate_config", " meter=\"%s\" uri=\"%s\"", c->meter, uri);
		deny_now(c, 403, "forbidden");
		return;
	}
	if ((cred = header(c, "Authorization", &len)) != NULL) {
		if (len < 7 || len > 4096 + 7 || strncasecmp(cred, "Bearer ", 7))
			goto unauth;
		cred += 7, len -= 7;
		while (len > 0 && *cred == ' ')
			cred++, len--;
		if (len == 0 || len > 4096)
			goto unauth;
		memcpy(c->cred, cred, len);
		c->cred[len] = '\0';
		if (strncmp(c->cred, "tgs_", 4) == 0)
			goto unauth;
		if (strncmp(c->cred, "tgk_", 4) == 0) {
			c->chk.kind = 'k';
			snprintf(c->a, sizeof(c->a), "%s",
			    token_hash(ar, c->cred));
			c->b[0] = '\0';
			rekey_if_unknown('k', c->a, c->cred);
		} else {
			rc = jwt_check_memo(c->cred, &uid, &sid);
			if (rc == JWT_BAD && cfg.n_trust > 0 &&
			    (trc = trust_check_memo(c->cred, &uid)) !=
			    TRUST_NONE) {
				/* A trusted issuer's token: its user's. */
				if (trc != TRUST_USER) {
					deny_trust(c, trc);
					return;
				}
				c->chk.kind = 'u';
				snprintf(c->a, sizeof(c->a), "%s", uid);
				c->b[0] = '\0';
			} else if (rc != JWT_OK) {
				deny_now(c, 401, rc == JWT_EXPIRED ?
				    "token_expired" : "unauthenticated");
				return;
			} else {
				c->chk.kind = 'j';
				snprintf(c->a, sizeof(c->a), "%s", sid);
				snprintf(c->b, sizeof(c->b), "%s", uid);
			}
		}
	} else {
		if (!header_copy(c, "Cookie", v, sizeof(v)) ||
		    (ck = session_cookie(v)) == NULL ||
		    valid_token(ck, strlen(ck)) != NULL)
			goto unauth;
		if (!((header_copy(c, "Origin", origin, sizeof(origin)) &&
		    strcmp(origin, cfg.origin) == 0) ||
		    (header_copy(c, "Sec-Fetch-Site", site, sizeof(site)) &&
		    strcmp(site, "same-origin") == 0))) {
			deny_now(c, 403, "forbidden");
			return;
		}
		c->chk.kind = 'c';
		snprintf(c->a, sizeof(c->a), "%s", token_hash(ar, ck));
		c->b[0] = '\0';
		rekey_if_unknown('c', c->a, ck);
	}
	/*
	 * The upstream gets the raw path: it must be the one decided on
	 * (section 7), checked before anything is counted, after the checks
	 * that need no state (a request without a credential is 401).
	 */
	if (!raw_path_agrees(header_copy(c, "X-Tollgate-Raw-Uri", v, sizeof(v))
	    ? v : NULL, uri)) {
		deny_now(c, 400, "bad_request");
		return;
	}
	c->chk.a = c->a;
	c->chk.b = c->b;
	c->st = C_BARRIER;
	eng_barrier_set(&c->bar);
	return;
unauth:
	deny_now(c, 401, "unauthenticated");
}

/*
 * Queues the mail that a meter reached 80 or 100 % of its limit (twice a
 * period per user and meter at most, so the database trip is rare).
 */
static void
send_notice(const struct eng_verdict *v, const char *meter)
{
	struct req	 rq;

	usage_notice(bare_req(&rq), v->uid, meter, v->period_start, v->notice,
	    v->used, v->limit);
}

/* Parks c until the engine's epoch or the flusher moves. */
static void
park(struct conn *c)
{
	uint32_t	 why = c->st == C_FLUSH ? ENG_WAIT_FLUSH : ENG_WAIT_EPOCH;

	if (!c->parked) {
		c->parked = true;
		c->next_parked = parked;
		parked = c;
	}
	__atomic_fetch_or(&eng->h.gate_waiting[me], why, __ATOMIC_SEQ_CST);
	if (why == ENG_WAIT_EPOCH)
		eng_wake_engine();
	else
		eng_wake_flusher();
}

static void
conn_close(struct conn *c)
{
	struct conn	**pp;

	for (pp = &parked; *pp != NULL; pp = &(*pp)->next_parked)
		if (*pp == c) {
			*pp = c->next_parked;
			break;
		}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
	nconns--;
}

/* Writes what is pending; returns false when the connection is gone. */
static bool
flush_out(struct conn *c)
{
	ssize_t	 n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct epoll_event ev = { EPOLLIN | EPOLLOUT, { .ptr = c } };

			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			return true;
		}
		if (n <= 0)
			return false;
		c->outoff += (size_t)n;
	}
	metrics_request(gate_route, "GET", c->status, eng_now() - c->t0);
	log_set_request_id(c->rid[0] != '\0' ? c->rid : NULL);
	tg_log(c->status >= 500 ? LOG_LVL_WARN : LOG_LVL_INFO, "request",
	    " method=GET path=/_tollgate/check route=/_tollgate/check "
	    "status=%d ms=%.2f addr=%s user=%s", c->status,
	    (eng_now() - c->t0) * 1000, c->addr[0] ? c->addr : "-", c->uid);
	log_set_request_id(NULL);
	c->st = C_READ;
	c->outlen = c->outoff = 0;
	return true;
}

/*
 * Moves a connection on as far as it can go now.  Returns false when it
 * must be closed.
 */
static bool
advance(struct conn *c)
{
	struct eng_verdict	 v;
	char			*end;
	size_t			 used;
	int			 rc;

	for (;;) {
		switch (c->st) {
		case C_READ:
			end = c->inlen >= 4 ? memmem(c->in, c->inlen,
			    "\r\n\r\n", 4) : NULL;
			if (end == NULL)
				return c->inlen < sizeof(c->in);
			used = (size_t)(end + 4 - c->in);
			take_request(c);
			/* Header-only requests: drop this one's bytes. */
			memmove(c->in, c->in + used, c->inlen - used);
			c->inlen -= used;
			arena_reset(ar);
			break;
		case C_BARRIER:
			if ((rc = eng_barrier_state(&c->bar)) == 0) {
				park(c);
				return true;
			}
			if (rc < 0) {
				/*
				 * The engine cannot reach the database: the
				 * cache cannot be shown current, so fail closed
				 * before deciding anything.
				 */
				deny_now(c, 503, "unavailable");
				break;
			}
			eng_decide(ar, &c->chk, &v);
			if (v.retry) {
				eng_barrier_set(&c->bar);
				arena_reset(ar);
				park(c);
				return true;
			}
			/* A trusted token's user is gone: map it afresh. */
			if (c->chk.kind == 'u' && v.status == 401)
				trust_memo_drop(c->cred, c->a);
			/* The journal is full: the database is away. */
			if (eng_lost(&c->chk, &v))
				v.status = 503, v.code = "unavailable";
			answer(c, &v);
			if (v.status == 204 && v.notice != 0)
				send_notice(&v, c->chk.meter);
			arena_reset(ar);
			/*
			 * The record is in the shared journal, which outlives
			 * every process; waiting for its COMMIT as well guards
			 * against a crash of the whole machine, at the price of
			 * a COMMIT per answer ([server] gate_wait_commit).
			 */
			c->seq = v.wait_seq;
			c->st = v.wait_seq != 0 && cfg.gate_wait_commit ?
			    C_FLUSH : C_WRITE;
			break;
		case C_FLUSH:
			if (__atomic_load_n(&eng->h.jflushed, __ATOMIC_ACQUIRE) <
			    c->seq) {
				/*
				 * Decided, but not committed in time (the
				 * database went away meanwhile): the client
				 * hears 503 before its own timeout; the record
				 * is committed when the database is back
				 * (docs/gate.md).
				 */
				if (eng_now() - c->t0 > ENG_COMMIT_WAIT) {
					deny_now(c, 503, "unavailable");
					break;
				}
				park(c);
				return true;
			}
			c->st = C_WRITE;
			break;
		case C_WRITE:
			if (!flush_out(c))
				return false;
			if (c->st == C_WRITE)
				return true;	/* EAGAIN: epoll says when */
			if (c->inlen == 0)
				return !stopping;
			break;
		}
	}
}

/* Runs every parked connection that may now go on. */
static void
run_parked(void)
{
	struct conn	*c, *next, *list = parked;

	parked = NULL;
	for (c = list; c != NULL; c = next) {
		next = c->next_parked;
		c->parked = false;
		c->next_parked = NULL;
		if (!advance(c))
			conn_close(c);
	}
}

/* Reads what the socket has; returns false when the peer is gone. */
static bool
read_in(struct conn *c)
{
	ssize_t	 n;

	for (;;) {
		if (c->inlen == sizeof(c->in))
			return false;	/* headers too large */
		n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (n > 0) {
			c->inlen += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		return false;
	}
}

static void
accept_all(int lfd)
{
	struct epoll_event	 ev;
	struct conn		*c;
	int			 fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) >= 0) {
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
		} else
			nconns++;
	}
}

/*
 * The worker's loop.  index is its slot (its event fd).  SIGTERM: stop
 * accepting, answer what is under way, exit.
 */
void
eng_gate_run(int lfd, int index)
{
	struct epoll_event	 ev, evs[256];
	uint64_t		 n;
	int			 i, k, efd;
	bool			 listening = true;
	double			 stop_at = 0, next_idle = 0, idle_at = 0;

	eng_signals(on_term);
	me = index;
	efd = eng_gate_fd[index];
	for (k = 0; k < (int)nroutes; k++)
		if (strcmp(routes[k].pattern, "/_tollgate/check") == 0)
			gate_route = k;
	if ((ar = arena_new()) == NULL || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		_exit(1);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;	/* the listening socket */
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.ptr = &efd;
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	log_info("gate_start", " index=%d", index);

	for (;;) {
		/*
		 * Stopping: no new connections; each answer now says
		 * Connection: close and its connection closes, so nginx moves
		 * to the new workers without a check cut off.  After a grace
		 * the connections nginx left idle are closed, then we exit.
		 */
		if (stopping && listening) {
			epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
			listening = false;
			stop_at = eng_now() + 10;
			idle_at = eng_now() + 1.5;
		}
		if (!listening && parked == NULL && (nconns == 0 ||
		    eng_now() > idle_at))
			break;
		if (!listening && eng_now() > stop_at)
			break;
		k = epoll_wait(ep, evs, 256, parked != NULL ? 5 : 1000);
		for (i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c == NULL) {
				if (listening)
					accept_all(lfd);
				continue;
			}
			if (evs[i].data.ptr == &efd) {
				if (read(efd, &n, sizeof(n)) < 0 &&
				    errno != EAGAIN)
					log_warn("gate_read", " errno=%d", errno);
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			/* Read even while parked: a peer gone must not spin. */
			if (!read_in(c)) {
				conn_close(c);
				continue;
			}
			if (!c->parked && !advance(c))
				conn_close(c);
		}
		if (parked != NULL)
			run_parked();
		/* An idle worker's database link follows a failback too. */
		if (eng_now() > next_idle) {
			db_idle();
			next_idle = eng_now() + 1;
		}
	}
	db_close();
	log_info("gate_stop", " index=%d", index);
	exit(0);
}
