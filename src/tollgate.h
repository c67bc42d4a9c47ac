/*
 * tollgate: accounts, API keys, trials, credits, quotas and Stripe
 * subscriptions for a SaaS backend, as preforked FastCGI workers.
 *
 * This header holds the declarations the source files share.  Requests
 * flow downward: worker -> routes -> handlers -> (auth, limits, db,
 * crypto, reply); nothing below calls back up.
 */
#ifndef TOLLGATE_H
#define TOLLGATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#define TG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ------------------------------------------------------------------ */
/* arena.c: the per-request arena and a growable buffer inside it.     */
/* ------------------------------------------------------------------ */

struct arena;

/* Returns a new arena, owned by the caller (arena_free), or NULL. */
struct arena	*arena_new(void);
/* Memory from these belongs to the arena and lives until arena_reset. */
void		*arena_alloc(struct arena *, size_t);
char		*arena_strdup(struct arena *, const char *);
char		*arena_strndup(struct arena *, const char *, size_t);
char		*arena_printf(struct arena *, const char *, ...) TG_PRINTF(2, 3);
char		*arena_vprintf(struct arena *, const char *, va_list);
/* Wipes (sodium_memzero) and releases everything but the first chunk. */
void		 arena_reset(struct arena *);
void		 arena_free(struct arena *);

/* A byte buffer that grows inside an arena; p is always NUL-terminated. */
struct buf {
	struct arena	*a;
	char		*p;
	size_t		 len;
	size_t		 cap;
};
void	 buf_init(struct buf *, struct arena *);
void	 buf_add(struct buf *, const void *, size_t);
void	 buf_puts(struct buf *, const char *);
void	 buf_printf(struct buf *, const char *, ...) TG_PRINTF(2, 3);
/* Appends the string HTML-escaped (& < > " '). */
void	 buf_html(struct buf *, const char *);

/* ------------------------------------------------------------------ */
/* log.c: structured one-line logs (logfmt) to stderr.                 */
/* ------------------------------------------------------------------ */

enum loglevel { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
/* The format yields " key=value" pairs; the time, level and pid lead. */
void	 tg_log(enum loglevel, const char *event, const char *fmt, ...)
	    TG_PRINTF(3, 4);
#define log_info(ev, ...)	tg_log(LOG_LVL_INFO, (ev), __VA_ARGS__)
#define log_warn(ev, ...)	tg_log(LOG_LVL_WARN, (ev), __VA_ARGS__)
#define log_err(ev, ...)	tg_log(LOG_LVL_ERROR, (ev), __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* config.c: tollgate.conf and TOLLGATE_<SECTION>_<KEY> overrides.     */
/* ------------------------------------------------------------------ */

struct config {
	char		*path;

	/* [server] */
	char		*base_url;	/* without a trailing slash */
	char		*origin;	/* scheme://host[:port] of base_url */
	int		 workers;
	char		*cors_origins;	/* space or comma separated, or "" */
	char		*socket;	/* FastCGI unix socket path */
	char		*socket_group;	/* group that may connect, or "" */

	/* [database] */
	char		*db_host;	/* comma-separated list, tried in order */
	int		 db_port;
	char		*db_socket;
	char		*db_user;
	char		*db_password;
	char		*db_name;

	/* [jwt] */
	char		*jwt_secret;
	char		*jwt_previous_secret;	/* "" when none */

	/* [crypto] */
	unsigned char	 crypto_key[32];
	unsigned long long argon2_ops;		/* crypto_pwhash opslimit */
	size_t		 argon2_memory;		/* bytes (key is in KiB) */

	/* [trial] */
	int		 trial_days;
	long long	 trial_credits;
	char		*trial_fallback_plan;	/* "" when none */

	/* [limits] */
	int		 api_per_minute;
	int		 login_failures;
	int		 mail_per_hour;

	/* [github] */
	char		*github_client_id;
	char		*github_client_secret;
	char		*github_authorize_url;
	char		*github_token_url;
	char		*github_api_url;

	/* [stripe] */
	char		*stripe_api_base;
	char		*stripe_secret_key;
	char		*stripe_webhook_secret;
	char		*stripe_price_pro;
	char		*stripe_price_team;
	int		 stripe_report_interval;

	/* [smtp] */
	char		*smtp_url;
	char		*smtp_user;
	char		*smtp_password;
	char		*smtp_from;
};

/* The configuration in force in this process. */
extern struct config cfg;

/*
 * Loads path (and the environment's overrides) into *out.  Returns 0, or
 * -1 with a sentence for the operator in err.  The strings in *out are
 * owned by it: config_free releases them.
 */
int	 config_load(const char *path, struct config *out, char *err, size_t);
void	 config_free(struct config *);
/* The default configuration path: $TOLLGATE_CONF or SYSCONFDIR's. */
const char *config_default_path(void);

/* ------------------------------------------------------------------ */
/* validate.c: small pure validators.                                  */
/* Each returns NULL when the value is good, else what is wrong.       */
/* ------------------------------------------------------------------ */

const char	*valid_utf8_text(const char *, size_t, size_t maxbytes);
const char	*valid_email(const char *, size_t);
const char	*valid_password(const char *, size_t);
const char	*valid_name(const char *, size_t);
const char	*valid_token(const char *, size_t);
const char	*valid_id(const char *, size_t);
const char	*valid_slug(const char *, size_t);
/* Lower-cases ASCII letters only (emails compare ignoring ASCII case). */
char		*ascii_lower(struct arena *, const char *);

/* ------------------------------------------------------------------ */
/* request.c: parsing with bounds.                                     */
/* ------------------------------------------------------------------ */

#define MAX_BODY	(64 * 1024)	/* JSON and form bodies */
#define MAX_RAW_BODY	(512 * 1024)	/* webhook bodies */
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
/* One JSON object, strictly, else NULL; the caller puts the result. */
struct json_object *parse_json_object(const char *, size_t);
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
	F_BOOL
};

#define FIELD_REQUIRED	0x01
#define FIELD_NULLABLE	0x02

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
	const char	*s;	/* text fields; NUL-terminated in the arena */
	size_t		 len;
	long long	 i;	/* F_INT */
	bool		 b;	/* F_BOOL */
};

/* ------------------------------------------------------------------ */
/* The request.                                                        */
/* ------------------------------------------------------------------ */

struct route;

/* Who is asking; filled in by auth.c. */
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

struct route {
	unsigned	 methods;	/* enum method bits */
	const char	*pattern;	/* "/api/v1/api-keys/{id}" */
	handler_fn	*fn;
	unsigned	 flags;
	const struct field *fields;	/* terminated by a NULL name */
};

extern const struct route routes[];
extern const size_t nroutes;

/*
 * Finds the route for path and method.  Returns its index and fills
 * r->params, -1 when no pattern matches the path, or -2 when a pattern
 * matches but not the method (then *allow holds the allowed methods).
 */
int	 route_match(struct req *, const char *path, enum method,
	    unsigned *allow);
/* The metrics label of a route index. */
const char *route_label(int);

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
/* An HTML page: title is escaped here, body_html must be escaped. */
void	 reply_html(struct req *, int status, const char *title,
	    const char *body_html);
/* A redirect; a relative location is made absolute on base_url. */
void	 reply_redirect(struct req *, int status, const char *location);
void	 reply_raw(struct req *, int status, const char *content_type,
	    const char *body, size_t len);
/* The message the contract gives a status when none is more specific. */
const char *status_text(int);

/* ------------------------------------------------------------------ */
/* db.c: MariaDB through prepared statements.                          */
/* ------------------------------------------------------------------ */

/* A statement: its SQL and a slot filled when first prepared. */
struct sql {
	const char	*text;
	int		 slot;
};
#define SQL(text)	{ (text), 0 }

/* Failure codes of the db_* calls (success is >= 0). */
#define DB_DOWN		-1	/* unreachable: answer 503 */
#define DB_DUP		-2	/* duplicate key */
#define DB_RETRY	-3	/* deadlock or lock wait timeout */
#define DB_FAIL		-4	/* anything else: a bug, answer 500 */

/* Result rows: every cell as text (NULL for SQL NULL), in the arena. */
struct dbrows {
	size_t		 n;
	size_t		 ncol;
	char		**cell;		/* cell[row * ncol + col] */
	size_t		*len;
};

/*
 * Parameter types for db_exec and db_select, one letter each:
 *   s  const char *        text, NULL binds SQL NULL
 *   b  const void *, size_t  bytes
 *   i  long long
 *   n  (no argument)       SQL NULL
 */

/* Runs a statement.  Returns the affected rows or a DB_* code. */
int		 db_exec(struct sql *, const char *types, ...);
/* Runs a query into *out.  Returns the row count or a DB_* code. */
int		 db_select(struct arena *, struct sql *, struct dbrows *,
		    const char *types, ...);
const char	*dbv(const struct dbrows *, size_t row, size_t col);
long long	 dbi(const struct dbrows *, size_t row, size_t col);
int		 db_begin(void);
int		 db_commit(void);
void		 db_rollback(void);
/* Connects if not connected.  Returns 0 or DB_DOWN. */
int		 db_ensure(void);
/* Returns 0 when the database answers, else DB_DOWN. */
int		 db_ping(void);
void		 db_close(void);
/* The raw handle for tollgatectl migrate; NULL when down. */
void		*db_handle(void);

/* ------------------------------------------------------------------ */
/* crypto.c: libsodium helpers.                                        */
/* ------------------------------------------------------------------ */

/* A new opaque id (22 URL-safe characters), in the arena. */
char	*new_id(struct arena *);
/* prefix + nbytes random bytes, base64url without padding, in the arena. */
char	*new_token(struct arena *, const char *prefix, size_t nbytes);
/* Keyed BLAKE2b of s with crypto key, as 64 hex characters, in the arena. */
char	*token_hash(struct arena *, const char *s);
/* Constant-time equality of two strings of any length. */
bool	 ct_streq(const char *, const char *);
/* base64url without padding of n bytes, in the arena. */
char	*b64url(struct arena *, const void *, size_t);
int	 crypto_init(void);

/* ------------------------------------------------------------------ */
/* outside.c: libcurl to SMTP, GitHub and Stripe.                      */
/* ------------------------------------------------------------------ */

int	 outside_init(void);
/* Returns 0 when the relay accepted the message, else -1 with err. */
int	 smtp_send(const char *from, const char *to, const char *msg,
	    size_t len, char *err, size_t errlen);
/*
 * One HTTP request; headers are "Name: value" strings, NULL terminated.
 * Returns the status (body in *answer, in the arena) or -1 with err.
 */
int	 http_call(struct arena *, const char *method, const char *url,
	    const char *const *headers, const char *form, struct buf *answer,
	    char *err, size_t errlen);

/* sender.c: tollgated --sender.  Returns the exit status. */
int	 sender_run(void);

/* ------------------------------------------------------------------ */
/* crypto.c (passwords, sealing) and jwt.c                             */
/* ------------------------------------------------------------------ */

/* Argon2id at the configured cost; the hash is in the arena, or NULL. */
char	*password_hash(struct arena *, const char *);
/* A NULL hash costs one Argon2id against a dummy and returns false. */
bool	 password_verify(const char *hash, const char *);
bool	 password_needs_rehash(const char *hash);
/* Authenticated encryption under the crypto key (nonce first). */
unsigned char *seal(struct arena *, const void *, size_t, size_t *outlen);
/* NULL when tampered with; the plain text is NUL-terminated. */
char	*unseal(struct arena *, const void *, size_t, size_t *outlen);
char	*hex(struct arena *, const void *, size_t);

#define JWT_OK		0
#define JWT_BAD		-1
#define JWT_EXPIRED	-2

/* An access token for uid in session sid, in the arena; NULL on error. */
char	*jwt_issue(struct arena *, const char *uid, const char *sid);
/* JWT_OK with *uid and *sid, JWT_EXPIRED or JWT_BAD. */
int	 jwt_check(struct arena *, const char *token, const char **uid,
	    const char **sid);
int	 jwt_ttl(void);

/* ------------------------------------------------------------------ */
/* auth.c: who is asking.                                              */
/* ------------------------------------------------------------------ */

#define SESSION_COOKIE	"tg_session"

#define AUTH_OK		0
#define AUTH_NONE	1	/* no credential at all */
#define AUTH_ANSWERED	2	/* answered: 401, 403 or 503 */

/* The Bearer credential, or NULL; *present says whether a header came. */
const char *bearer_of(struct req *, bool *present);
/* True when Origin is base_url's origin or Sec-Fetch-Site same-origin. */
bool	 same_origin(struct req *);
int	 auth_resolve(struct req *);
/* Applies the route's ROUTE_AUTH/KEY/ADMIN/SERVICE needs. */
bool	 auth_route(struct req *);

/* ------------------------------------------------------------------ */
/* sessions.c, accounts.c, apikeys.c, mail.c, audit.c                  */
/* ------------------------------------------------------------------ */

/*
 * The effective plan of user row u: an admin's choice, else an active
 * subscription's plan, else "trial" until the trial ends (or before it
 * starts), else the fallback plan (@tg_fallback, set per connection
 * from [trial] fallback_plan), else NULL.
 */
#define PLAN_EXPR(u)							\
	"COALESCE(" u ".plan_override, (SELECT s.plan FROM subscriptions s " \
	"WHERE s.user_id = " u ".id AND s.deleted_at IS NULL AND s.status " \
	"IN ('active', 'trialing', 'past_due') ORDER BY s.stripe_updated " \
	"DESC LIMIT 1), IF(" u ".trial_ends_at IS NULL OR " u		\
	".trial_ends_at > UTC_TIMESTAMP(6), 'trial', "			\
	"NULLIF(@tg_fallback, '')))"
/* The columns user_json_row reads, from users aliased as u. */
#define USER_COLUMNS							\
	"u.id, u.email, u.name, u.role, " PLAN_EXPR("u") ", "		\
	"u.email_verified_at IS NOT NULL, "				\
	"DATE_FORMAT(u.created_at, '%Y-%m-%dT%H:%i:%sZ')"

int	 session_create(struct req *, const char *uid, const char *kind,
	    const char *client_name, bool want_cookie, const char **sid);
void	 session_clear_cookie(struct req *);
int	 tokens_issue(struct req *, const char *uid, const char *sid,
	    struct json_object **out, const char **refresh_out);
int	 session_revoke(const char *sid, const char *reason);
int	 sessions_revoke_all(const char *uid, const char *keep,
	    const char *reason);
struct json_object *user_json_row(const struct dbrows *, size_t row,
	    size_t col);
int	 user_json(struct req *, const char *uid, struct json_object **);
const char *onetime_token(struct req *, const char *kind, const char *uid,
	    const char *new_email, int minutes, int *rc);
int	 login_throttled(struct req *, const char *email_lc, long *retry);
int	 login_failed(struct req *, const char *email_lc);
void	 reply_throttled(struct req *, long retry);
int	 login_check(struct req *, const char *email, const char *password,
	    const char **uid, bool *totp);
int	 apikey_create(struct req *, const char *uid, const char *name,
	    long long days, struct json_object **out);
int	 mail_allowed(struct req *, const char *email_lc);
int	 mail_queue(struct req *, const char *user_id, const char *kind,
	    const char *to, const char *subject, const char *text,
	    const char *link);
int	 mail_verify(struct req *, const char *uid, const char *to,
	    const char *token);
int	 audit(struct req *, const char *action, const char *target_id,
	    const char *detail);

/* csrf.c: the hidden "csrf" form field and its cookie. */
const char *csrf_token(struct req *);
bool	 csrf_ok(struct req *);
void	 csrf_field(struct req *, struct buf *);

/* limits.c */
void	 ratelimit_headers(struct req *, long limit, long remaining,
	    long reset);
bool	 api_limit(struct req *);

/* ------------------------------------------------------------------ */
/* metrics.c: counters shared by all workers (may be lost).            */
/* ------------------------------------------------------------------ */

enum counter {
	CTR_GATE_ALLOW, CTR_GATE_401, CTR_GATE_402, CTR_GATE_403,
	CTR_GATE_429, CTR_GATE_503, CTR_SPEND_OK, CTR_SPEND_REFUSED,
	CTR_DB_RECONNECT, CTR__MAX
};

/* Maps the shared counters; call once in the master before forking. */
int	 metrics_init(void);
void	 metrics_request(int route_index, int status, double seconds);
void	 metrics_count(enum counter, unsigned long long);
/* Appends the Prometheus text of every counter to b. */
void	 metrics_render(struct buf *);

/* ------------------------------------------------------------------ */
/* worker.c and main.c                                                 */
/* ------------------------------------------------------------------ */

/* Runs a worker's accept loop on the FastCGI socket fd; never returns. */
void	 worker_run(int fd) __attribute__((noreturn));
/* True when the worker was asked to stop. */
extern volatile int worker_stopping;
/* Seconds since the epoch as a double (CLOCK_REALTIME). */
double	 now_seconds(void);

/* ctl_users.c: tollgatectl's admin and user commands (exit statuses). */
int	 ctl_admin_create(int, char *[]);
int	 ctl_user_show(int, char *[]);
int	 ctl_user_disable(int, char *[]);

/* ------------------------------------------------------------------ */
/* Handlers, one file per resource.                                    */
/* ------------------------------------------------------------------ */

/* ops.c */
handler_fn	 h_healthz;
handler_fn	 h_metrics;
handler_fn	 h_root;
/* accounts.c */
handler_fn	 h_signup;
handler_fn	 h_login;
/* sessions.c */
handler_fn	 h_refresh;
handler_fn	 h_logout;
handler_fn	 h_sessions_list;
handler_fn	 h_session_delete;

/* ------------------------------------------------------------------ */
/* Pages, admin and audit (issue 7): pages.c, pages_account.c,         */
/* pages_admin.c, admin.c, audit.c, static.c.                         */
/* ------------------------------------------------------------------ */

/* audit.c: detail is consumed; audit_list's array is the caller's. */
int	 audit_obj(struct req *, const char *action, const char *target_id,
	    struct json_object *detail);
int	 audit_list(struct req *, const char *user_id, long long limit,
	    struct json_object **out);

/* admin.c: the admin actions, shared by the JSON API and /admin. */
#define ADM_OK		0
#define ADM_NOT_FOUND	1
#define ADM_LAST_ADMIN	2	/* the last live admin would go */
#define ADM_NO_PLAN	3
#define ADM_FORBIDDEN	4	/* the caller is no longer an admin */

/* What an admin changes; plan_set with plan NULL clears the override. */
struct admin_change {
	bool		 plan_set;
	const char	*plan;
	const char	*role;		/* "user", "admin" or NULL */
	int		 disabled;	/* -1 unchanged, 0 enable, 1 disable */
	bool		 totp_off;
};

int	 admin_users_list(struct req *, const char *q, long long page,
	    struct json_object **out);
int	 admin_user_detail(struct req *, const char *uid,
	    struct json_object **out);
int	 admin_update(struct req *, const char *uid,
	    const struct admin_change *);
int	 admin_delete(struct req *, const char *uid);
int	 admin_extend_trial(struct req *, const char *uid, long long days,
	    const char **ends_at);
int	 admin_credits(struct req *, const char *uid, long long delta,
	    const char *reason, long long *applied, long long *remaining);
int	 admin_payments(struct req *, const char *user_id,
	    struct json_object **out);
int	 admin_revoke_key(struct req *, const char *uid, const char *kid);
int	 admin_revoke_session(struct req *, const char *uid, const char *sid);

/* pages.c: members of the JSON objects the cores return, for pages. */
const char	*member_str(struct json_object *, const char *);
long long	 member_int(struct json_object *, const char *);
bool		 member_bool(struct json_object *, const char *);

/* pages.c: what the page files share.  A page is built in p->b. */
struct page {
	struct req		*r;
	struct buf		 b;
	struct json_object	*errs;	/* field -> message, or NULL */
};
void	 pg_init(struct page *, struct req *);
const char *pg_urlenc(struct arena *, const char *);
const char *pg_safe_next(const char *next, const char *dflt);
bool	 pg_login(struct req *);
bool	 pg_admin(struct req *);
bool	 pg_csrf(struct req *);
bool	 pg_take(struct page *, const struct field *);
void	 pg_error(struct page *, const char *field, const char *message);
const char *pg_err_text(struct page *, const char *field);
void	 pg_notice(struct page *, const char *cls, const char *text);
void	 pg_form(struct page *, const char *action, const char *cls);
void	 pg_hidden(struct page *, const char *name, const char *value);
void	 pg_input(struct page *, const char *label, const char *name,
	    const char *type, const char *value, const char *autocomplete,
	    bool required);
void	 pg_submit(struct page *, const char *label, const char *cls);
void	 pg_button_form(struct page *, const char *action,
	    const char *label, const char *cls);
void	 pg_nav(struct page *, const char *current);
void	 pg_send(struct page *, int status, const char *title);
const char *pg_arg(struct req *, const char *name);

/* Handlers of issue 7. */
handler_fn	 h_static_css;
handler_fn	 h_page_signup;
handler_fn	 h_page_signup_post;
handler_fn	 h_page_login;
handler_fn	 h_page_login_post;
handler_fn	 h_page_logout;
handler_fn	 h_page_forgot;
handler_fn	 h_page_forgot_post;
handler_fn	 h_page_reset;
handler_fn	 h_page_reset_post;
handler_fn	 h_page_profile;
handler_fn	 h_page_profile_name;
handler_fn	 h_page_profile_resend;
handler_fn	 h_page_profile_email;
handler_fn	 h_page_profile_password;
handler_fn	 h_page_key_create;
handler_fn	 h_page_key_regenerate;
handler_fn	 h_page_key_delete;
handler_fn	 h_page_session_delete;
handler_fn	 h_page_usage;
handler_fn	 h_page_billing;
handler_fn	 h_page_checkout;
handler_fn	 h_page_portal;
handler_fn	 h_page_admin;
handler_fn	 h_page_admin_user;
handler_fn	 h_page_admin_update;
handler_fn	 h_page_admin_credits;
handler_fn	 h_page_admin_trial;
handler_fn	 h_page_admin_delete;
handler_fn	 h_page_admin_key_delete;
handler_fn	 h_page_admin_session_delete;
handler_fn	 h_admin_users;
handler_fn	 h_admin_user;
handler_fn	 h_admin_user_patch;
handler_fn	 h_admin_user_delete;
handler_fn	 h_admin_extend_trial;
handler_fn	 h_admin_credits;
handler_fn	 h_admin_payments;
handler_fn	 h_admin_audit;

/* ------------------------------------------------------------------ */
/* Accounts (issue 4): mailed one-time tokens, verification and the    */
/* trial, the account's own endpoints, the mail of contract section 9. */
/* ------------------------------------------------------------------ */

/* What using a mailed token came to (DB_* codes are negative). */
#define TOKEN_OK	1
#define TOKEN_INVALID	2	/* unknown, used or expired: 400 */
#define TOKEN_TAKEN	3	/* an email change to a taken address: 409 */
#define TOKEN_TOTP	4	/* the second factor is needed: 401 */
#define TOKEN_BADCODE	5	/* the second factor is wrong: 401 */
#define TOKEN_DISABLED	6	/* 403 account_disabled */

/* accounts.c */
int	 account_verified(struct req *, const char *uid);
int	 email_token_apply(struct req *, const char *token, const char **uid);
int	 magic_token_apply(struct req *, const char *token, bool want_cookie,
	    struct json_object **tokens, struct json_object **user);
/* Answers a TOKEN_* failure (or a DB_* code) as JSON or as a page. */
void	 reply_token_error(struct req *, int rc);

/* mail.c: the messages; each queues in the caller's transaction. */
enum welcome { WELCOME_PLAIN, WELCOME_TRIAL, WELCOME_HAD_TRIAL };
int	 mail_welcome(struct req *, const char *uid, const char *to,
	    enum welcome, const char *trial_ends, long long credits);
int	 mail_reset(struct req *, const char *uid, const char *to,
	    const char *token);
int	 mail_magic(struct req *, const char *uid, const char *to,
	    const char *token);
int	 mail_email_change(struct req *, const char *uid, const char *to,
	    const char *token);
int	 mail_email_change_notice(struct req *, const char *uid,
	    const char *to, const char *new_email);
/* what: a sentence saying what happened ("Your password was changed."). */
int	 mail_security_notice(struct req *, const char *uid, const char *to,
	    const char *what);
int	 mail_trial_ending(struct req *, const char *uid, const char *to,
	    int days, const char *ends);
int	 mail_trial_ended(struct req *, const char *uid, const char *to);
int	 mail_account_deleted(struct req *, const char *uid, const char *to);
/* The RFC 5322 text of an outbox row, CRLF throughout, in the arena. */
char	*mail_compose(struct arena *, const char *id, const char *from,
	    const char *to, const char *subject, const char *text,
	    const char *html, const char *date, size_t *len);

/* Handlers: accounts.c */
handler_fn	 h_verify_email;
handler_fn	 h_resend_verification;
handler_fn	 h_password_forgot;
handler_fn	 h_password_reset;
handler_fn	 h_magic_link;
handler_fn	 h_magic_verify;
/* me.c */
handler_fn	 h_me_get;
handler_fn	 h_me_patch;
handler_fn	 h_me_delete;
handler_fn	 h_me_email;
handler_fn	 h_me_password;
/* pages_auth.c */
handler_fn	 h_page_verify_email;
handler_fn	 h_page_magic;
handler_fn	 h_page_magic_post;

/* ------------------------------------------------------------------ */
/* Second factor and device sign-in (issue 10): totp.c, device.c.      */
/* ------------------------------------------------------------------ */

/* What confirming an enrolment came to (DB_* codes are negative). */
#define TOTP_OK			0
#define TOTP_WRONG		1	/* the code is wrong */
#define TOTP_NOT_PENDING	2	/* no enrolment started */
#define TOTP_ACTIVE		3	/* the second factor is on already */
#define TOTP_THROTTLED		4	/* the login throttle holds */

/* totp.c */
int	 totp_second_factor(struct req *, const char *uid,
	    const char *totp_code, const char *recovery_code);
int	 totp_enrol(struct req *, const char *uid, const char **secret32);
int	 totp_confirm(struct req *, const char *uid, const char *email,
	    const char *code, struct json_object **codes);
int	 totp_remove(struct req *, const char *uid, const char *email,
	    bool notify);
int	 totp_disable(struct req *, const char *password, const char *code,
	    const char **field, long *retry);
int	 totp_pending_secret(struct req *, const char *uid,
	    const char **secret32);
char	*totp_uri(struct arena *, const char *email, const char *secret32);
/* Recovery codes and user codes as typed -> their stored form, or NULL. */
const char *recovery_code_norm(struct arena *, const char *);
/* Percent-encoding of a URI component; keep: characters left as they are. */
char	*uri_escape(struct arena *, const char *, const char *keep);
/* A QR code of text as inline SVG markup, in the arena; NULL on error. */
char	*qr_svg(struct arena *, const char *text);
/* accounts.c: the login throttle's failures are forgotten (a login). */
void	 login_succeeded(struct req *, const char *email_lc);
/* pages_totp.c */
void	 totp_pending_begin(struct req *, const char *uid, const char *kind,
	    const char *next);
void	 totp_profile_section(struct req *, struct buf *, bool on);
/* device.c */
const char *user_code_norm(struct arena *, const char *);
const char *user_code_show(struct arena *, const char *norm);

/* Handlers: totp.c, device.c */
handler_fn	 h_totp_start;
handler_fn	 h_totp_confirm;
handler_fn	 h_totp_delete;
handler_fn	 h_device_start;
handler_fn	 h_device_token;
handler_fn	 h_page_device;
handler_fn	 h_page_device_post;
handler_fn	 h_page_login_totp;
handler_fn	 h_page_login_totp_post;
handler_fn	 h_page_totp_start;
handler_fn	 h_page_totp_confirm;
handler_fn	 h_page_totp_off;

/* ------------------------------------------------------------------ */
/* GitHub login and Stripe billing (github.c, billing.c, stripe.c,     */
/* and their helpers in outside.c).                                    */
/* ------------------------------------------------------------------ */

/* Appends key=value to an urlencoded form or query, escaping both. */
void	 form_add(struct buf *, const char *key, const char *val);
/*
 * The value at a dotted path ("items.data.0.price.id": numbers index
 * arrays) inside o, or NULL.  The result is borrowed from o.
 */
struct json_object *json_at(struct json_object *, const char *path);
/* A string, integer or boolean at a path; NULL or dflt when absent. */
const char *json_str_at(struct json_object *, const char *path);
long long json_int_at(struct json_object *, const char *path, long long);
bool	 json_bool_at(struct json_object *, const char *path, bool);
/* Any JSON value (object or array), else NULL; the caller puts it. */
struct json_object *json_parse_any(const char *, size_t);
/*
 * One Stripe API call: form-encoded, with the secret key and, when idem
 * is given, an Idempotency-Key.  Returns the HTTP status with the answer
 * in *out (owned by the caller; NULL when not JSON), or -1 when Stripe
 * could not be reached.  err says what went wrong for the log (a status
 * outside 2xx too); it never holds the key.
 */
int	 stripe_call(struct arena *, const char *method, const char *path,
	    const char *form, const char *idem, struct json_object **out,
	    char *err, size_t errlen);

/*
 * Checks a Stripe-Signature header against the raw body: t=<unix time>
 * and one or more v1=<hex HMAC-SHA256 of "<t>.<body>" with secret>.
 * Returns 0 when a v1 matches and t is within tolerance seconds of now,
 * else -1 (bad header or signature) or -2 (t too old or too new).
 */
int	 stripe_signature_check(const char *header, const char *body,
	    size_t len, const char *secret, long long now, long tolerance);
/*
 * The plan whose Stripe price id is price ([stripe] price_pro and
 * price_team first, then plans.stripe_price_id), in the arena; NULL with
 * *rc = 0 when none has it, or NULL with a DB_* code in *rc.
 */
const char *plan_for_price(struct arena *, const char *price, int *rc);
/*
 * Adds qty of meter to the Stripe meter-report queue of uid, in the
 * current [stripe] report_interval; does nothing unless uid has a live
 * subscription.  Call it in the transaction that counts the usage.
 * Returns 0 or a DB_* code.
 */
int	 meter_report_add(struct req *, const char *uid, const char *meter,
	    long long qty);
/*
 * Queues the cancellation at Stripe of every live subscription of uid.
 * Call it in the transaction that deletes the account, before the user
 * row goes; the sender sends DELETE /v1/subscriptions/{id}.  Returns the
 * number queued or a DB_* code.
 */
int	 billing_cancel_for_user(struct req *, const char *uid);
/*
 * The sender's Stripe pass: due meter reports and cancellations, each
 * claimed with a lease.  Returns the number of rows worked on.
 */
int	 billing_pass(struct arena *, const char *me);

/* github.c */
handler_fn	 h_github_start;
handler_fn	 h_github_callback;
/* billing.c */
handler_fn	 h_billing_get;
handler_fn	 h_billing_checkout;
handler_fn	 h_billing_portal;
handler_fn	 h_billing_payments;
/* stripe.c */
handler_fn	 h_billing_webhook;
/* db.c, scale-out (issue 9): host lists, Galera, transaction retries.  */
/* ------------------------------------------------------------------ */

/*
 * More failure codes of the db_* calls.  DB_UNKNOWN: the answer to a
 * COMMIT was lost, so the transaction may or may not have committed;
 * never run it again blindly (it could spend twice): look its effect up
 * first, by an idempotency key the transaction wrote.  reply_db answers
 * it with 503.  DB_ABORT: a db_tx_run body chose to roll back; not an
 * error, never retried.
 */
#define DB_UNKNOWN	-5
#define DB_ABORT	-6

/* How many times db_tx_run runs a transaction before giving up. */
#define DB_TX_TRIES	5

/*
 * Runs fn(ctx) between START TRANSACTION and COMMIT, and runs the whole
 * transaction again, up to tries times, when it certainly did not
 * commit: a deadlock, a lock wait timeout or a Galera certification
 * failure (DB_RETRY, also at COMMIT), or a link lost before COMMIT
 * (DB_DOWN; the next try walks the host list).  fn returns >= 0 to
 * commit, DB_ABORT to roll back, or the DB_* code of a failed call (it
 * never commits or rolls back itself, and keeps what it decided in
 * ctx, which it must reset at its start: it may run more than once).
 * When COMMIT's answer is lost: with committed == NULL, DB_UNKNOWN;
 * otherwise committed(ctx) looks the effect up on a fresh connection
 * and returns > 0 (it is there: success), 0 (it is not: run again) or
 * < 0 (cannot tell: DB_UNKNOWN).  Returns fn's result, DB_ABORT, or a
 * DB_* code (DB_RETRY or DB_DOWN when the tries ran out: answer 503).
 *
 * Handlers must use it (with DB_TX_TRIES) for every transaction of more
 * than one statement, and for every write that decides (a spend, a
 * rate-limit hit), since on Galera any of them can fail certification;
 * a transaction that spends or grants must write an idempotency key
 * (credit_ledger.request_key) and pass a committed callback that looks
 * it up.  A single autocommit statement may instead be retried on
 * DB_RETRY alone; a single read needs nothing (db_select repeats a read
 * whose link was lost by itself).
 */
int	 db_tx_run(int (*fn)(void *), int (*committed)(void *), void *ctx,
	    int tries);

/*
 * Splits one item of [database] host: "host", "host:port", "[v6]",
 * "[v6]:port" or a bare IPv6 address, surrounding blanks ignored.
 * Writes the host (NUL-terminated, at most hostsz - 1 bytes) and, when
 * the item names one, the port (1..65535) into *port, which otherwise
 * keeps its value.  Returns 0, or -1 for an empty or malformed item.
 */
int	 db_host_split(const char *item, char *host, size_t hostsz, int *port);
/* API keys, plans, usage and the gate (issue 5): apikeys.c, plans.c,  */
/* usage.c, gate.c.                                                    */
/* ------------------------------------------------------------------ */

/* "Compute quota exceeded, upgrade to Pro" (next may be NULL); arena. */
const char *quota_message(struct arena *, const char *meter,
	    const char *next);
/* Queues the 80 or 100 % notice of a meter once per period. */
void	 usage_notice(struct req *, const char *uid, const char *meter,
	    const char *period_start, int threshold, long long used,
	    long long limit);
/* tollgatectl commands: exit status 0, 1 (error) or 2 (usage). */
int	 ctl_plans_list(int, char *[]);
int	 ctl_plans_set(int, char *[]);
int	 ctl_plans_delete(int, char *[]);
int	 ctl_service_key_create(int, char *[]);
int	 ctl_service_key_list(int, char *[]);
int	 ctl_service_key_revoke(int, char *[]);
handler_fn	 h_apikeys_list;
handler_fn	 h_apikey_create;
handler_fn	 h_apikey_regenerate;
handler_fn	 h_apikey_delete;
handler_fn	 h_plans;
handler_fn	 h_usage;
handler_fn	 h_usage_event;
handler_fn	 h_gate;

/*
 * Handler cores (one implementation of each action for the JSON API and
 * the pages): they take explicit arguments and reply nothing.
 */
#define APIKEY_NOT_FOUND	1	/* no such key */
#define APIKEY_FORBIDDEN	2	/* another user's key */
#define APIKEY_GONE		3	/* the account is gone */
#define APIKEY_QUOTA		4	/* the plan's key limit is reached */
int	 apikey_create_core(struct req *, const char *uid, const char *name,
	    long long days, struct json_object **out, const char **refusal);
int	 apikeys_list_core(struct req *, const char *uid,
	    struct json_object **out);
int	 apikey_regenerate_core(struct req *, const char *uid,
	    const char *id, struct json_object **out);
int	 apikey_delete_core(struct req *, const char *uid, const char *id,
	    bool admin_ok);
int	 plans_core(struct req *, struct json_object **out);
#define USAGE_GONE		1	/* no such user */
int	 usage_core(struct req *, const char *uid, struct json_object **out);
#define BILLING_STRIPE_DOWN	-100	/* a Stripe call failed (beside DB_*) */
#define BILLING_GONE		1	/* no such user */
#define BILLING_NOT_BUYABLE	2	/* a plan that cannot be bought */
#define BILLING_SUB_EXISTS	3	/* a subscription is live already */
int	 billing_state_core(struct req *, const char *uid,
	    struct json_object **out);
int	 billing_payments_core(struct req *, const char *uid, size_t max,
	    struct json_object **out);
int	 billing_checkout_core(struct req *, const char *uid,
	    const char *plan, const char *via, const char **url);
int	 billing_portal_core(struct req *, const char *uid, const char *via,
	    const char **url);
#define ME_WRONG		1	/* the current password is wrong */
#define ME_THROTTLED		2	/* the login throttle holds */
#define ME_SAME			3	/* the address is the account's already */
#define ME_TAKEN		4	/* another account has the address */
int	 me_password_check(struct req *, const char *uid, const char *email,
	    const char *password, long *retry);
int	 me_rename_core(struct req *, const char *uid, const char *name);
int	 me_email_core(struct req *, const char *uid, const char *cur,
	    const char *email, const char *password, long *retry);
int	 me_password_core(struct req *, const char *uid, const char *email,
	    const char *keep_session, const char *current,
	    const char *password, long *retry);
int	 resend_verification_core(struct req *, const char *uid);
int	 mail_link_core(struct req *, const char *email, const char *kind,
	    int minutes);
int	 password_reset_core(struct req *, const char *token,
	    const char *password);

#endif /* TOLLGATE_H */
