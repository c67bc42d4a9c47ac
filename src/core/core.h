/*
 * The core layer: what every other layer stands on and that knows nothing
 * of HTTP or the database.  The per-request arena, logs, the
 * configuration, validators, libsodium and libjwt, libcurl, the shared
 * counters and the clock.  Ordered by file.
 */
#ifndef TG_CORE_H
#define TG_CORE_H

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
/*
 * The format yields " key=value" pairs (key=%s or key="%s"); every %s is
 * escaped as it is written, so no value can break the line or forge a
 * key.  The priority prefix (<N>), time, level and pid lead.
 */
void	 tg_log(enum loglevel, const char *event, const char *fmt, ...)
	    TG_PRINTF(3, 4);
/*
 * The request id every line carries (request_id=) until cleared with
 * NULL: nginx's $request_id; anything but 1 to 64 of [0-9A-Za-z_-] is
 * dropped.  log_request_id() is "" outside a request.
 */
void	 log_set_request_id(const char *);
const char *log_request_id(void);
#define log_info(ev, ...)	tg_log(LOG_LVL_INFO, (ev), __VA_ARGS__)
#define log_warn(ev, ...)	tg_log(LOG_LVL_WARN, (ev), __VA_ARGS__)
#define log_err(ev, ...)	tg_log(LOG_LVL_ERROR, (ev), __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* config.c: tollgate.conf and TOLLGATE_<SECTION>_<KEY> overrides.     */
/* ------------------------------------------------------------------ */

#define CONFIG_MAX_OIDC		8
#define CONFIG_MAX_TRUST	8

struct config {
	char		*path;

	/* [server] */
	char		*base_url;	/* without a trailing slash */
	char		*origin;	/* scheme://host[:port] of base_url */
	int		 workers;
	char		*cors_origins;	/* space or comma separated, or "" */
	char		*socket;	/* FastCGI unix socket path */
	char		*socket_group;	/* group that may connect, or "" */
	char		*gate_socket;	/* the gate workers' unix socket (HTTP) */
	int		 gate_workers;	/* gate worker processes */
	char		*engine_file;	/* the engine's shared file, or "" */
	int		 gate_wait_commit; /* 1: answer after the COMMIT */
	char		*product_name;	/* [server] name: what users see */
	char		*support_url;	/* "" when none */
	char		*mail_texts;	/* the operator's mail texts, or "" */

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
	unsigned char	 crypto_previous_key[32];	/* when has_previous_key */
	bool		 has_previous_key;
	unsigned long long argon2_ops;		/* crypto_pwhash opslimit */
	size_t		 argon2_memory;		/* bytes (key is in KiB) */

	/* [trial] */
	int		 trial_days;
	long long	 trial_credits;
	char		*trial_fallback_plan;	/* "" when none */
	int		 require_verified_email; /* 0: keys work at once */

	/* [limits] */
	int		 api_per_minute;
	int		 login_failures;
	int		 mail_per_hour;
	int		 password_hashes;	/* Argon2id hashes at once, per host */

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
	char		*stripe_meter_prices;	/* "meter:price,..." or "" */
	/* meter_prices parsed: the meters billed through metered prices. */
	struct meter_price {
		char	*meter;
		char	*price;
	}		*meter_prices;
	size_t		 nmeter_prices;

	/* [client] */
	char		*client_config_file;	/* "" when none */
	char		*client_config;	/* the file's JSON object, or "{}" */

	char		*smtp_url;
	char		*smtp_user;
	char		*smtp_password;
	char		*smtp_from;
	char		*smtp_from_name;	/* display name of From:, or "" */

	/* [guest] */
	int		 guest_days;	/* unclaimed guests deleted after */
	int		 guest_per_hour; /* guests made per client address */

	/* [accounts] */
	int		 magic_link_signup;	/* 1: a magic link also signs up */

	/* [oidc NAME]: OpenID Connect providers, in file order. */
	struct config_oidc {
		char	*name;
		char	*issuer;
		char	*client_id;
		char	*client_secret;
	}		 oidc[CONFIG_MAX_OIDC];
	size_t		 n_oidc;

	/* [trust NAME]: issuers whose tokens are trusted. */
	struct config_trust {
		char	*name;
		char	*issuer;
		char	*audience;
		char	*jwks_url;
	}		 trust[CONFIG_MAX_TRUST];
	size_t		 n_trust;
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
/*
 * The metered price of meter in [stripe] meter_prices, or NULL.
 * meter_billed says whether usage of meter goes to Stripe: every meter
 * when meter_prices is empty, else only the meters it names.
 */
const char *meter_price(const char *meter);
bool	 meter_billed(const char *meter);
bool	 github_configured(void);
bool	 stripe_configured(void);

/* ------------------------------------------------------------------ */
/* validate.c: small pure validators.                                  */
/* Each returns NULL when the value is good, else what is wrong.       */
/* ------------------------------------------------------------------ */

/* The value of hexadecimal digit c, or -1 (percent-decoding's). */
int		 hex_digit(int c);
const char	*valid_utf8_text(const char *, size_t, size_t maxbytes);
const char	*valid_email(const char *, size_t);
const char	*valid_password(const char *, size_t);
const char	*valid_name(const char *, size_t);
const char	*valid_token(const char *, size_t);
const char	*valid_id(const char *, size_t);
const char	*valid_slug(const char *, size_t);
const char	*valid_key_name(const char *, size_t);
/* Lower-cases ASCII letters only (emails compare ignoring ASCII case). */
char		*ascii_lower(struct arena *, const char *);

/* ------------------------------------------------------------------ */
/* crypto.c: libsodium helpers.                                        */
/* ------------------------------------------------------------------ */

/* A new opaque id (22 URL-safe characters), in the arena. */
char	*new_id(struct arena *);
/* prefix + nbytes random bytes, base64url without padding, in the arena. */
char	*new_token(struct arena *, const char *prefix, size_t nbytes);
/* Keyed BLAKE2b of s with crypto key, as 64 hex characters, in the arena. */
char	*token_hash(struct arena *, const char *s);
/* The same under [crypto] previous_key; NULL when none is set. */
char	*token_hash_previous(struct arena *, const char *s);
/* Constant-time equality of two strings of any length. */
bool	 ct_streq(const char *, const char *);
/* base64url without padding of n bytes, in the arena. */
char	*b64url(struct arena *, const void *, size_t);
int	 crypto_init(void);

/* ------------------------------------------------------------------ */
/* crypto.c (passwords, sealing) and jwt.c                             */
/* ------------------------------------------------------------------ */

/* Argon2id at the configured cost; the hash is in the arena, or NULL. */
char	*password_hash(struct arena *, const char *);
/* After password_hash returned NULL: true when the cap was full. */
bool	 password_busy(void);
/* A NULL hash costs one Argon2id against a dummy and returns false. */
/*
 * 1 when pw matches hash, 0 when not, TG_BUSY when the host's cap on
 * concurrent hashes (hashcap) stayed full: answer 503 (reply_db does).
 */
int	 password_check(const char *hash, const char *);
bool	 password_needs_rehash(const char *hash);
/* Authenticated encryption under the crypto key (nonce first). */
unsigned char *seal(struct arena *, const void *, size_t, size_t *outlen);
/* NULL when tampered with; the plain text is NUL-terminated. */
char	*unseal(struct arena *, const void *, size_t, size_t *outlen);
/* unseal, also under [crypto] previous_key; *old says it was needed. */
char	*unseal_ex(struct arena *, const void *, size_t, size_t *outlen,
	    bool *old);
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
/* Known answers of the libjwt in use, at start-up.  0, or -1 with err. */
int	 jwt_selftest(char *err, size_t errlen);

/* jwks.c: tokens signed by another issuer, checked against its JWKS. */
#define JWKS_OK		0
#define JWKS_BAD	1	/* form, alg, kid, signature, iss or aud */
#define JWKS_EXPIRED	2
#define JWKS_DOWN	3	/* the JWKS could not be fetched */
int	 jwks_verify(struct arena *, const char *jwks_url, const char *token,
	    const char *issuer, const char *audience,
	    struct json_object **claims);
/* Header (0) or payload (1) of a JWT, unchecked; the caller puts it. */
struct json_object *jwt_part_unverified(const char *token, int part);

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
int	 http_call_within(struct arena *, const char *method,
	    const char *url, const char *const *headers, const char *form,
	    struct buf *answer, char *err, size_t errlen, long limit_ms);

/* ------------------------------------------------------------------ */
/* json.c                                                              */
/* ------------------------------------------------------------------ */

#define MAX_RAW_BODY	(512 * 1024)	/* webhook bodies, the most JSON read */

/* One JSON object, strictly, else NULL; the caller puts the result. */
struct json_object *parse_json_object(const char *, size_t);
/* Zeroes every string inside a parsed body before it is put. */
void	 json_wipe(struct json_object *);
struct json_object *jstr_or_null(const char *);

/* Appends key=value to an urlencoded form or query, escaping both. */
void	 form_add(struct buf *, const char *key, const char *val);
/* Percent-encoding of a URI component; keep: characters left as they are. */
char	*uri_escape(struct arena *, const char *, const char *keep);
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
/*
 * Checks a Stripe-Signature header against the raw body: t=<unix time>
 * and one or more v1=<hex HMAC-SHA256 of "<t>.<body>" with secret>.
 * Returns 0 when a v1 matches and t is within tolerance seconds of now,
 * else -1 (bad header or signature) or -2 (t too old or too new).
 */
int	 stripe_signature_check(const char *header, const char *body,
	    size_t len, const char *secret, long long now, long tolerance);

/* ------------------------------------------------------------------ */
/* version.c: what this build is.                                      */
/* ------------------------------------------------------------------ */

/* The package version ("0.2.0"). */
const char *tg_version(void);
/* The schema version this build expects: its highest sql/NNN-*.sql. */
int	 tg_schema_version(void);
const char *tg_routines_digest(void);

/* ------------------------------------------------------------------ */
/* metrics.c: counters shared by all workers (may be lost).            */
/* ------------------------------------------------------------------ */

/*
 * The series of metrics.c's table (one line each there, with its labels
 * and help): counters, or gauges set with metrics_set.
 */
enum counter {
	CTR_GATE_ALLOW,
	CTR_GATE_UNAUTHENTICATED, CTR_GATE_TOKEN_EXPIRED,
	CTR_GATE_ACCOUNT_DISABLED, CTR_GATE_FORBIDDEN,
	CTR_GATE_EMAIL_NOT_VERIFIED, CTR_GATE_SUBSCRIPTION_REQUIRED,
	CTR_GATE_TRIAL_CREDITS_EXHAUSTED, CTR_GATE_QUOTA_EXCEEDED,
	CTR_GATE_RATE_LIMITED, CTR_GATE_UNAVAILABLE, CTR_GATE_BAD_REQUEST,
	CTR_GATE_OTHER,
	CTR_SPEND_OK, CTR_SPEND_REFUSED,
	CTR_DB_RECONNECT,
	CTR_PW_HASH, CTR_PW_BUSY,
	CTR__MAX
};

/* Maps the shared counters; call once in the master before forking. */
int	 metrics_init(void);
/* One request answered: its route index, method (as sent), status, time. */
void	 metrics_request(int route_index, const char *method, int status,
	    double seconds);
void	 metrics_count(enum counter, unsigned long long);
void	 metrics_set(enum counter, unsigned long long);
/* One gate decision: NULL when allowed, else the denial's error code. */
void	 metrics_gate(const char *code);
/* How metrics_render names a route index (the server's route table). */
void	 metrics_route_labels(const char *(*)(int));
/* Appends the Prometheus text of every counter to b. */
void	 metrics_render(struct buf *);


/* ------------------------------------------------------------------ */
/* money.c                                                             */
/* ------------------------------------------------------------------ */

/* "29.00 USD", "1000 JPY": an amount in the smallest unit, in the arena. */
char	*money_text(struct arena *, long long amount, const char *currency);
/* "0.0042 USD": millionths of the currency (usage events' cost_micros). */
char	*money_micros_text(struct arena *, long long micros,
	    const char *currency);

/* ------------------------------------------------------------------ */
/* clock.c                                                             */
/* ------------------------------------------------------------------ */

/* Seconds since the epoch as a double (CLOCK_REALTIME). */
double	 now_seconds(void);

/* ------------------------------------------------------------------ */
/* rawpath.c: the path the upstream acts on                            */
/* ------------------------------------------------------------------ */

/* True when the raw request target decodes to exactly nginx's $uri. */
bool	 raw_path_agrees(const char *raw, const char *uri);

/* ------------------------------------------------------------------ */
/* hashcap.c: at most [limits] password_hashes Argon2id at once        */
/* ------------------------------------------------------------------ */

/*
 * A failure code beside the DB_* ones (db.h: -1 to -6): the host is at
 * its cap of concurrent password hashes; answer 503 with Retry-After.
 */
#define TG_BUSY		-7
/* How long a hash waits for a slot before TG_BUSY, in milliseconds. */
#define HASHCAP_WAIT_MS	1500

/* Maps the slots; call once in the master before forking.  0 or -1. */
int	 hashcap_init(int slots);
/* Takes a slot (waiting up to HASHCAP_WAIT_MS); false when none came. */
bool	 hashcap_take(void);
void	 hashcap_give(void);

#endif /* TG_CORE_H */
