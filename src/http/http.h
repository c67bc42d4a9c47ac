/*
 * The HTTP layer: the request with its declared fields, the shape of a
 * route, the one way to answer, CSRF, the stylesheet.  It knows the core
 * and database layers (reply_db answers their failure codes).
 */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include "core/core.h"
#include "db/db.h"

/* ------------------------------------------------------------------ */
/* request.c: parsing with bounds.                                     */
/* ------------------------------------------------------------------ */

#define MAX_BODY	(64 * 1024)	/* JSON and form bodies */
#define MAX_PAIRS	64		/* fields in a form, query or cookie */

enum method {
	M_GET = 1, M_POST = 2, M_PUT = 4, M_PATCH = 8, M_DELETE = 16,
	M_HEAD = 32, M_OPTIONS = 64, M_OTHER = 128
};

struct kv {
	const char	*key;
	const char	*val;
	size_t		 vlen;
};

struct kvlist {
	struct kv	*v;
	size_t		 n;
};

/*
 * Decodes application/x-www-form-urlencoded text (also query strings).
 * Returns 0, or -1 when it is malformed (bad escape, too many pairs).
 * Keys and values live in the arena; values may hold NULs (see vlen).
 */
int		 parse_urlencoded(struct arena *, const char *, size_t,
		    struct kvlist *);
/* Parses a Cookie header.  Returns 0, or -1 when malformed. */
int		 parse_cookies(struct arena *, const char *, struct kvlist *);
/* Returns the first value for key, or NULL. */
const struct kv	*kv_find(const struct kvlist *, const char *);
const char	*kv_get(const struct kvlist *, const char *);
enum method	 method_parse(const char *);

/* What a declared field holds. */
enum ftype {
	F_TEXT,		/* UTF-8 text without NUL, max bytes in max */
	F_EMAIL,
	F_PASSWORD,
	F_NAME,
	F_TOKEN,	/* opaque URL-safe token */
	F_ID,		/* an object id */
	F_SLUG,		/* [a-z0-9_]{1,64}: plan and meter names */
	F_INT,		/* integer in [min, max] */
	F_BOOL,
	F_OBJECT	/* a JSON object, max bytes as compact text (0: 1024) */
};

#define FIELD_REQUIRED	0x01
#define FIELD_NULLABLE	0x02
#define FIELD_BLANK_ABSENT 0x04	/* a form's empty value counts as left out */

struct field {
	const char	*name;
	enum ftype	 type;
	unsigned	 flags;
	long long	 min;
	long long	 max;	/* F_INT range; F_TEXT byte bound (0: 1024) */
};

/* A declared field's value after validation. */
struct input {
	const struct field *f;
	bool		 present;
	bool		 is_null;
	const char	*s;	/* text fields (F_OBJECT: its compact JSON);
				   NUL-terminated in the arena */
	size_t		 len;
	long long	 i;	/* F_INT */
	bool		 b;	/* F_BOOL */
};

/* ------------------------------------------------------------------ */
/* The request.                                                        */
/* ------------------------------------------------------------------ */

struct route;

/* Who is asking; filled in by auth.c. */
/* The browser's session cookie (auth.c reads it, csrf.c binds to it). */
#define SESSION_COOKIE	"__Host-tg_session"

enum who_kind { WHO_NONE, WHO_JWT, WHO_APIKEY, WHO_COOKIE, WHO_SERVICE };

struct principal {
	enum who_kind	 kind;
	const char	*user_id;
	const char	*session_id;	/* JWT and cookie logins */
	const char	*key_id;	/* API and service keys */
	const char	*role;		/* "user" or "admin", from the database */
	const char	*email;
	const char	*name;
};

struct req {
	struct arena	*a;
	void		*fcgi;		/* FCGX_Request * */
	char		**env;		/* its parameters, "NAME=value", NULL last */

	enum method	 method;
	const char	*method_str;
	const char	*path;		/* nginx's normalised URI ($uri) */
	const char	*query;		/* raw query string, "" when none */
	const char	*remote_addr;
	const char	*user_agent;
	const char	*content_type;	/* media type, lower case, no params */
	char		*body;		/* NUL-terminated */
	size_t		 body_len;

	struct kvlist	 queryv;
	struct kvlist	 cookies;
	struct kvlist	 form;		/* an urlencoded body */
	struct json_object *json;	/* a JSON body; put after the request */

	const struct route *route;
	int		 route_index;	/* -1 when no route matched */
	const char	*params[4];	/* {id} segments of the path */
	int		 nparams;
	struct input	*in;		/* one per declared field */
	struct json_object *bad;	/* ROUTE_FORM_ERRORS: the bad fields */
	size_t		 nin;

	struct principal who;

	int		 status;
	bool		 replied;
	struct kvlist	 headers_out;	/* extra response headers */
	size_t		 headers_cap;
	double		 t0;
};

/*
 * Fills r->in from the declared fields, taken from r->json or r->form.
 * Returns NULL when all are good, else an object naming each bad field
 * (owned by the caller).
 */
struct json_object *request_take_fields(struct req *, const struct field *);
/* A FastCGI parameter (e.g. "HTTP_ORIGIN"), or NULL. */
const char	*req_env(struct req *, const char *);
/* A declared field's input, or NULL when the route does not declare it. */
const struct input *req_in(struct req *, const char *name);
/* A declared text field's value, or NULL when absent or null. */
const char	*in_str(struct req *, const char *name);
long long	 in_int(struct req *, const char *name, long long dflt);
bool		 in_bool(struct req *, const char *name, bool dflt);
bool		 in_present(struct req *, const char *name);
/* next when it is a relative path on this site, else dflt. */
const char	*safe_next(const char *next, const char *dflt);

/* ------------------------------------------------------------------ */
/* routes.c: the route table.                                          */
/* ------------------------------------------------------------------ */

typedef void	 handler_fn(struct req *);

#define ROUTE_JSON	0x0001	/* takes a JSON body */
#define ROUTE_FORM	0x0002	/* takes an urlencoded body */
#define ROUTE_RAW	0x0004	/* keeps the raw body, parses nothing */
#define ROUTE_HTML	0x0008	/* errors answer as an HTML page */
#define ROUTE_LOOPBACK	0x0010	/* only from 127.0.0.0/8 or ::1 */
#define ROUTE_API	0x0020	/* counts toward limits api_per_minute */
#define ROUTE_AUTH	0x0040	/* needs a login: a JWT or session cookie */
#define ROUTE_KEY	0x0080	/* with ROUTE_AUTH: an API key will do too */
#define ROUTE_ADMIN	0x0100	/* with ROUTE_AUTH: the admin role */
#define ROUTE_SERVICE	0x0200	/* needs a service key (tgs_) */
#define ROUTE_OPTAUTH	0x0400	/* a credential is read when present */
#define ROUTE_FORM_ERRORS 0x0800	/* bad fields go to the handler (pg_take) */

struct route {
	unsigned	 methods;	/* enum method bits */
	const char	*pattern;	/* "/api/v1/api-keys/{id}" */
	handler_fn	*fn;
	unsigned	 flags;
	const struct field *fields;	/* terminated by a NULL name */
};
/* ------------------------------------------------------------------ */
/* reply.c: the one way to answer.                                     */
/* ------------------------------------------------------------------ */

/* Queues a response header; name and value are copied. */
void	 reply_header(struct req *, const char *name, const char *value);
/* Sends body (consumed: it is put) with the given status. */
void	 reply_json(struct req *, int status, struct json_object *body);
void	 reply_empty(struct req *, int status);
/* The contract's error body; HTML routes get a page with the message. */
void	 reply_error(struct req *, int status, const char *code,
	    const char *message);
/* 422 validation_failed with fields (consumed). */
void	 reply_invalid(struct req *, struct json_object *fields);
/* 422 validation_failed naming one field. */
void	 reply_invalid1(struct req *, const char *field, const char *what);
/* Answers a database failure code: 503 unavailable, or 500. */
void	 reply_db(struct req *, int rc);
/* 401 with WWW-Authenticate: Bearer. */
void	 reply_unauth(struct req *, const char *code, const char *message);
/* 429 with Retry-After and the X-RateLimit-* headers. */
void	 reply_rate_limited(struct req *, long limit, long reset_seconds);
/* Retry-After: seconds, at least 1. */
void	 reply_retry_after(struct req *, long seconds);
/* An HTML page: title is escaped here, body_html must be escaped. */
void	 reply_html(struct req *, int status, const char *title,
	    const char *body_html);
/* A redirect; a relative location is made absolute on base_url. */
void	 reply_redirect(struct req *, int status, const char *location);
void	 reply_raw(struct req *, int status, const char *content_type,
	    const char *body, size_t len);
/* The message the contract gives a status when none is more specific. */
const char *status_text(int);

/*
 * A long handler's one answer (docs/hacking.md, "A handler's shape"): it
 * starts as OUTCOME_INIT (500), every failure fills it (outcome_refuse,
 * or rc for a database failure) and jumps to out, success sets status
 * and body, and reply_outcome at out: sends exactly one reply.
 */
struct outcome {
	int			 status;	/* 500 until success */
	int			 rc;		/* 500: the DB_* code (reply_db) */
	const char		*code;		/* an error's code and */
	const char		*message;	/* message (422: what is wrong) */
	const char		*field;		/* 422: the field */
	long			 limit;		/* 429: X-RateLimit-Limit */
	long			 retry;		/* 429: Retry-After, seconds */
	struct json_object	*body;		/* 2xx: sent (consumed) */
};
#define OUTCOME_INIT	{ 500, DB_FAIL, NULL, NULL, NULL, 0, 0, NULL }

/* Fills o with an error: status, code and message. */
void	 outcome_refuse(struct outcome *, int status, const char *code,
	    const char *message);
/* Fills o with 422 validation_failed naming field: what is wrong. */
void	 outcome_invalid(struct outcome *, const char *field,
	    const char *what);
/*
 * Sends o: a 2xx its body (none: 204), 401 with WWW-Authenticate, 422
 * naming its field, 429 with the rate-limit headers, 500 as reply_db
 * answers o->rc, any other status the contract's error body.
 */
void	 reply_outcome(struct req *, struct outcome *);

/*
 * sealed.c: cookies sealed under the crypto key.  cookie_seal sets name
 * to plain, sealed, for path and max_age seconds; cookie_unseal returns
 * name's plain text (in the arena), or NULL when it is missing, too long
 * or was not sealed here.
 */
void	 cookie_seal(struct req *, const char *name, const char *plain,
	    const char *path, int max_age);
char	*cookie_unseal(struct req *, const char *name);

/* csrf.c: the hidden "csrf" form field and its cookie. */
const char *csrf_token(struct req *);
bool	 csrf_ok(struct req *);
bool	 csrf_ok_signin(struct req *);
void	 csrf_field(struct req *, struct buf *);
void	 csrf_form(struct req *, struct buf *, const char *action);
void	 form_hidden(struct buf *, const char *name, const char *value);


handler_fn	 h_static_css;

#endif /* TG_HTTP_H */
