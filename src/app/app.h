/*
 * The application layer: accounts, sessions, keys, plans, limits, the
 * gate, usage, billing, mail, admin; each service's core (explicit
 * arguments, no reply) and its JSON handlers.  All SQL lives here.
 */
#ifndef TG_APP_H
#define TG_APP_H

#include "core/core.h"
#include "db/db.h"
#include "engine/engine.h"
#include "http/http.h"

/* ------------------------------------------------------------------ */
/* auth.c: who is asking                                              */
/* ------------------------------------------------------------------ */

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
/* users.c: the user object and the effective plan                    */
/* ------------------------------------------------------------------ */

/*
 * The columns user_json_row reads, from users aliased as u.  The plan,
 * the live subscription, the billing period and the credits left are
 * the stored functions of sql/routines/rules.sql (tg_plan, tg_live_sub,
 * tg_period_start and _end, tg_credits): one copy of each rule.
 */
#define USER_COLUMNS							\
	"u.id, u.email, u.name, u.role, tg_plan(u.id), "		\
	"u.email_verified_at IS NOT NULL AND u.email IS NOT NULL, "	\
	"DATE_FORMAT(u.created_at, '%Y-%m-%dT%H:%i:%sZ')"
struct json_object *user_json_row(const struct dbrows *, size_t row,
	    size_t col);
int	 user_json(struct req *, const char *uid, struct json_object **);
int	 credit_balance_open(const char *uid);
int	 credit_balance_ensure(const char *uid);
int	 credit_refresh(const char *uid);
int	 trial_mail_skip(const char *uid);
int	 meter_kind(struct req *, const char *name, const char **kind);
int	 user_email(struct req *, const char *uid, const char **email);
int	 user_delete(const char *uid);
int	 user_profile(struct req *, const char *uid, struct dbrows *);
void	 reply_gone(struct req *);
void	 reply_own(struct req *, int rc, int gone, struct json_object *);

/* ------------------------------------------------------------------ */
/* throttle.c: the login throttle                                     */
/* ------------------------------------------------------------------ */

int	 login_throttled(struct req *, const char *email_lc, long *retry);
int	 login_failed(struct req *, const char *email_lc);
void	 outcome_throttled(struct outcome *, long retry);
void	 reply_throttled(struct req *, long retry);
void	 login_succeeded(struct req *, const char *email_lc);
int	 account_throttled(struct req *, const char *kind, const char *id,
	    long long limit, long *retry);
int	 account_counted(struct req *, const char *kind, const char *id);
/* Right passwords for one account in 15 minutes before 429. */
#define LOGIN_OK_LIMIT	(10LL * cfg.login_failures)

/* ------------------------------------------------------------------ */
/* passwords.c: a login's password check and the current password's   */
/* ------------------------------------------------------------------ */

/* What login_check came to (DB_* codes are negative). */
#define LOGIN_OK	0
#define LOGIN_THROTTLED	1	/* 429: *retry says how long */
#define LOGIN_WRONG	2	/* 401: the email or password is wrong */
#define LOGIN_DISABLED	3	/* 403 account_disabled */
int	 login_check(struct req *, const char *email, const char *password,
	    const char **uid, bool *totp, long *retry);
int	 me_password_check(struct req *, const char *uid, const char *email,
	    const char *password, long *retry);
int	 password_set(const char *uid, const char *hash);
int	 password_of(struct req *, const char *uid, const char **hash);
int	 password_is(struct req *, const char *uid, const char *hash);

/* ------------------------------------------------------------------ */
/* accounts.c: sign-up, login, one-time links, the trial              */
/* ------------------------------------------------------------------ */

const char *onetime_token(struct req *, const char *kind, const char *uid,
	    const char *new_email, int minutes, int *rc);
/* A sign-up: what signup_core takes and, for the JSON API, makes. */
struct signup {
	const char		*email, *name, *password;
	bool			 cookie;	/* a page: a session cookie */
	const char		*guest;		/* a guest to claim, or NULL */
	const char		*uid;		/* the new account's id */
	struct json_object	*user, *tokens, *key;	/* the caller's */
	/* signup_core's own. */
	struct req		*r;
	const char		*hash;
	size_t			 headers;
};
#define SIGNUP_TAKEN	1	/* 409: the email has an account */
int	 signup_core(struct req *, struct signup *);

int	 email_taken(struct req *, const char *email);
handler_fn	 h_signup;
handler_fn	 h_login;
/* What using a mailed token came to (DB_* codes are negative). */
#define TOKEN_OK	1
#define TOKEN_INVALID	2	/* unknown, used or expired: 400 */
#define TOKEN_TAKEN	3	/* an email change to a taken address: 409 */
#define TOKEN_TOTP	4	/* the second factor is needed: 401 */
#define TOKEN_BADCODE	5	/* the second factor is wrong: 401 */
#define TOKEN_DISABLED	6	/* 403 account_disabled */
#define TOKEN_LIMITED	7	/* the account's second factor: 429 */
int	 account_verified(struct req *, const char *uid);
int	 email_token_apply(struct req *, const char *token, const char **uid);
int	 email_token_usable(struct req *, const char *token);
int	 magic_token_apply(struct req *, const char *token, bool want_cookie,
	    struct json_object **tokens, struct json_object **user);
/* Answers a TOKEN_* failure (or a DB_* code) as JSON or as a page. */
void	 reply_token_error(struct req *, int rc);
handler_fn	 h_verify_email;
handler_fn	 h_resend_verification;
handler_fn	 h_password_forgot;
handler_fn	 h_password_reset;
handler_fn	 h_magic_link;
/* guest.c: guest accounts. */
handler_fn	 h_guest;
int	 guest_gc(struct arena *);
handler_fn	 h_magic_verify;
int	 resend_verification_core(struct req *, const char *uid);
int	 mail_link_core(struct req *, const char *email, const char *kind,
	    int minutes, const char *guest);
int	 password_reset_core(struct req *, const char *token,
	    const char *password);

/* ------------------------------------------------------------------ */
/* claim.c: takeover of a never-verified account, links spent          */
/* ------------------------------------------------------------------ */

int	 account_takeover(struct req *, const char *uid, const char *how);
int	 account_links_spend(struct req *, const char *uid);

/* extid.c: accounts of another identity service's subjects. */
struct ext_identity {
	const char	*provider;	/* "github", "oidc:NAME", "trust:NAME" */
	const char	*subject;	/* its "sub" (GitHub: the id) */
	const char	*email;		/* a verified address, or NULL */
	const char	*name;		/* or NULL */
	const char	*guest;		/* a guest to claim, or NULL */
	long long	 github_id;	/* GitHub only: the id, */
	const char	*login;		/* and the login */
};
#define EXT_SESSION	0
#define EXT_TOTP	1
#define EXT_DISABLED	2
#define EXT_OTHER	3
#define EXT_REPLAY	4
int	 ext_account(struct req *, const struct ext_identity *,
	    const char **uid, int *what);
int	 ext_signin(struct req *, const struct ext_identity *,
	    const char *session_kind, const char *once, const char **uid,
	    const char **sid, int *what);
const char *ext_verified_email(struct req *, struct json_object *claims);
const char *ext_subject(struct req *, struct json_object *claims);
const char *ext_name(struct req *, struct json_object *claims);
int	 ext_state_check(struct req *, bool opened, const char *state,
	    const char *cookie_state, long long expires,
	    void (*clear)(struct req *), const char **why);
void	 ext_page(struct req *, int status, const char *title,
	    const char *message, const char *again, const char *again_label);

/* trust.c: tokens of a [trust NAME] issuer -> a tollgate user. */
#define TRUST_NONE	0
#define TRUST_USER	1
#define TRUST_BAD	2
#define TRUST_EXPIRED	3
#define TRUST_DISABLED	4
#define TRUST_DOWN	5
int	 trust_user(struct req *, const char *token, const char **uid,
	    long long *exp);
void	 trust_forget(const char *uid);
bool	 trust_verdict(struct req *, const char *cred, const char **uid,
	    int *status, const char **code);

/* oidc.c: OpenID Connect sign-in, [oidc NAME]. */
handler_fn	 h_oidc_start;
handler_fn	 h_oidc_callback;
int	 guest_of_request(struct req *, const char **uid);
int	 guest_claim(struct req *, const char *uid, const char *email,
	    const char *how);
const char *account_keys_text(struct req *, const char *uid, int *rc);
/* A session younger than this makes keys and second factors freely. */
#define REAUTH_SECONDS	900
#define REAUTH_NEEDED	10	/* reauth_check: the password is needed */
int	 reauth_check(struct req *, const char *password, long *retry);
void	 reply_reauth(struct req *, int rc, long retry);
int	 apikeys_revoke_all_core(struct req *, const char *uid);
handler_fn	 h_apikeys_delete_all;

/* gc.c: purging expired rows (tollgatectl gc). */
/*
 * How long POST /api/v1/check remembers its answer to an idempotency key,
 * as an SQL interval: older claims are void (check.c), and tollgatectl gc
 * purges them (gc.c).
 */
#define CHECK_ANSWER_LIFE	"INTERVAL 1 DAY"
#define GC_KINDS	10
extern const char *const gc_names[GC_KINDS];
int	 gc_core(long long counts[GC_KINDS]);

/* ------------------------------------------------------------------ */
/* pending.c: a sign-in waiting for its second factor                 */
/* ------------------------------------------------------------------ */

/* A sign-in waiting for its code, from the tg_2fa cookie. */
struct pending {
	const char	*uid;
	const char	*kind;
	const char	*next;
	/* From pending_user: */
	const char	*email_lc;
	bool		 disabled;
	bool		 totp;
};
void	 pending_ask(struct req *, const char *uid, const char *kind,
	    const char *next);
/* 1 with *p filled, 0 when none (or expired, or forged), or a DB_* code. */
int	 pending_read(struct req *, struct pending *);
int	 pending_user(struct req *, struct pending *);
void	 pending_clear(struct req *);
/* The form of the code step (message_html may be NULL), as a page. */
void	 pending_code_page(struct req *, int status, const char *message_html);

/* ------------------------------------------------------------------ */
/* totp.c: the second factor                                          */
/* ------------------------------------------------------------------ */

/* What confirming an enrolment came to (DB_* codes are negative). */
#define TOTP_OK			0
#define TOTP_WRONG		1	/* the code is wrong */
#define TOTP_NOT_PENDING	2	/* no enrolment started */
#define TOTP_ACTIVE		3	/* the second factor is on already */
#define TOTP_THROTTLED		4	/* the login throttle holds */
/* totp_second_factor: the account's second-factor step is throttled. */
#define TOTP_LIMITED		2
int	 totp_second_factor(struct req *, const char *uid,
	    const char *totp_code, const char *recovery_code, long *retry);
int	 totp_failed(struct req *, const char *uid, const char *email_lc);
/* Whether uid's second factor is on: 1, 0, or a DB_* code. */
int	 totp_is_on(struct req *, const char *uid);
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
/* A QR code of text as inline SVG markup, in the arena; NULL on error. */
char	*qr_svg(struct arena *, const char *text);
handler_fn	 h_totp_start;
handler_fn	 h_totp_confirm;
handler_fn	 h_totp_delete;

/* ------------------------------------------------------------------ */
/* device.c: the device flow (RFC 8628)                               */
/* ------------------------------------------------------------------ */

const char *user_code_norm(struct arena *, const char *);
const char *user_code_show(struct arena *, const char *norm);
handler_fn	 h_device_start;
handler_fn	 h_device_token;
/* The device flow's approval page (/device). */
handler_fn	 h_page_device;
handler_fn	 h_page_device_post;

/* ------------------------------------------------------------------ */
/* sessions.c: refresh-token families and sessions                    */
/* ------------------------------------------------------------------ */

int	 session_create(struct req *, const char *uid, const char *kind,
	    const char *client_name, bool want_cookie, const char **sid);
void	 session_clear_cookie(struct req *);
int	 tokens_issue(struct req *, const char *uid, const char *sid,
	    struct json_object **out, const char **refresh_out);
int	 session_revoke(const char *sid, const char *reason);
int	 session_exists(struct req *, const char *sid);
int	 session_login(struct req *, const char *uid, const char *kind,
	    const char *replace, struct json_object **tokens,
	    const char **sid);
int	 sessions_revoke_all(const char *uid, const char *keep,
	    const char *reason);
#define SESSION_NOT_FOUND	1
#define SESSION_FORBIDDEN	2	/* another user's */
int	 sessions_list_core(struct req *, const char *uid,
	    struct json_object **out);
int	 session_delete_core(struct req *, const char *uid, const char *sid,
	    bool admin_ok);
handler_fn	 h_refresh;
handler_fn	 h_logout;
handler_fn	 h_sessions_list;
handler_fn	 h_session_delete;

/* ------------------------------------------------------------------ */
/* me.c: the account's own endpoints                                  */
/* ------------------------------------------------------------------ */

handler_fn	 h_me_get;
handler_fn	 h_me_patch;
handler_fn	 h_me_delete;
handler_fn	 h_me_email;
handler_fn	 h_me_password;
#define ME_WRONG		1	/* the current password is wrong */
#define ME_THROTTLED		2	/* the login throttle holds */
#define ME_SAME			3	/* the address is the account's already */
#define ME_TAKEN		4	/* another account has the address */
int	 me_rename_core(struct req *, const char *uid, const char *name);
int	 me_email_core(struct req *, const char *uid, const char *cur,
	    const char *email, const char *password, long *retry);
int	 me_password_core(struct req *, const char *uid, const char *email,
	    const char *keep_session, const char *current,
	    const char *password, long *retry);

/* ------------------------------------------------------------------ */
/* apikeys.c: API keys and service keys                               */
/* ------------------------------------------------------------------ */

int	 apikey_create(struct req *, const char *uid, const char *name,
	    long long days, struct json_object **out);
int	 apikey_delete(const char *id);
int	 customer_link(const char *uid, const char *cus);
int	 second_factor_drop(const char *uid, bool codes_only);
int	 ctl_service_key_create(int, char *[]);
int	 ctl_service_key_list(int, char *[]);
int	 ctl_service_key_revoke(int, char *[]);
handler_fn	 h_apikeys_list;
handler_fn	 h_apikey_create;
handler_fn	 h_apikey_regenerate;
handler_fn	 h_apikey_delete;
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

/* ------------------------------------------------------------------ */
/* plans.c: plans and their limits                                    */
/* ------------------------------------------------------------------ */

/* "Compute quota exceeded, upgrade to Pro" (next may be NULL); arena. */
const char *quota_message(struct arena *, const char *meter,
	    const char *next);
/* tollgatectl commands: exit status 0, 1 (error) or 2 (usage). */
int	 ctl_plans_list(int, char *[]);
int	 ctl_plans_set(int, char *[]);
int	 ctl_plans_delete(int, char *[]);
handler_fn	 h_plans;
int	 plans_core(struct req *, struct json_object **out);

/* ------------------------------------------------------------------ */
/* limits.c: the API rate limit                                       */
/* ------------------------------------------------------------------ */

void	 ratelimit_headers(struct req *, long limit, long remaining,
	    long reset);
bool	 api_limit(struct req *);

/* ------------------------------------------------------------------ */
/* gate.c: the gate                                                   */
/* ------------------------------------------------------------------ */

handler_fn	 h_gate;
/*
 * The message a client is told with a gate denial's code (the gate
 * workers and POST /api/v1/check use this one): meter and
 * next (the next plan up, may be NULL) word quota_exceeded; role (may
 * be NULL) says a forbidden came from a location's $tollgate_role.  A
 * static string or in the arena.
 */
const char	*deny_message(struct arena *, const char *code,
		    const char *meter, const char *next, const char *role);
bool		 gate_uri_normal(const char *uri);

/* ------------------------------------------------------------------ */
/* check.c: decisions for services (POST /api/v1/check)               */
/* ------------------------------------------------------------------ */

handler_fn	 h_check;

/* ------------------------------------------------------------------ */
/* usage.c: usage and usage events                                    */
/* ------------------------------------------------------------------ */

/* Queues the 80 or 100 % notice of a meter once per period. */
void	 usage_notice(struct req *, const char *uid, const char *meter,
	    const char *period_start, int threshold, long long used,
	    long long limit);
handler_fn	 h_usage;
handler_fn	 h_usage_event;
handler_fn	 h_usage_events;
handler_fn	 h_admin_usage_export;
#define USAGE_GONE		1	/* no such user */
int	 usage_core(struct req *, const char *uid, struct json_object **out);
int	 credits_now(struct req *, const char *uid, long long *remaining);
int	 usage_events_core(struct req *, const char *uid, const char *from,
	    const char *to, const char *meter, long long page,
	    struct json_object **out);

/* ------------------------------------------------------------------ */
/* levels.c: meter kinds, levels, plans' rate buckets                 */
/* ------------------------------------------------------------------ */

handler_fn	 h_usage_level_put;
/* tollgatectl meters list | set NAME kind=sum|level (exit statuses). */
int	 ctl_meters_list(int, char *[]);
int	 ctl_meters_set(int, char *[]);

/* ------------------------------------------------------------------ */
/* client.c: GET /api/v1/client-config                                */
/* ------------------------------------------------------------------ */

handler_fn	 h_client_config;
int	 usage_daily_core(struct req *, const char *uid, const char *from,
	    const char *to, struct json_object **out);

/* ------------------------------------------------------------------ */
/* billing.c: Checkout, the portal, payments                          */
/* ------------------------------------------------------------------ */

/*
 * The plan whose Stripe price id is price ([stripe] price_pro and
 * price_team first, then plans.stripe_price_id), in the arena; NULL with
 * *rc = 0 when none has it, or NULL with a DB_* code in *rc.
 */
const char *plan_for_price(struct arena *, const char *price, int *rc);
/*
 * Adds qty of meter to the Stripe meter-report queue of uid, in the
 * current [stripe] report_interval; does nothing unless uid has a live
 * subscription, nor for a meter that [stripe] meter_prices (when set)
 * does not name.  Call it in the transaction that counts the usage.
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
handler_fn	 h_billing_get;
handler_fn	 h_billing_checkout;
handler_fn	 h_billing_portal;
handler_fn	 h_billing_payments;
#define BILLING_STRIPE_DOWN	-100	/* a Stripe call failed (beside DB_*) */
void	 reply_billing_failed(struct req *, int rc);
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

/* ------------------------------------------------------------------ */
/* stripe.c: the webhook, the sender's Stripe pass                    */
/* ------------------------------------------------------------------ */

handler_fn	 h_billing_webhook;

/* ------------------------------------------------------------------ */
/* github.c: GitHub sign-in                                           */
/* ------------------------------------------------------------------ */

handler_fn	 h_github_start;
handler_fn	 h_github_callback;

/* ------------------------------------------------------------------ */
/* mail.c: the outbox and the messages                                */
/* ------------------------------------------------------------------ */

int	 mail_allowed(struct req *, const char *email_lc);
int	 mail_queue(struct req *, const char *user_id, const char *kind,
	    const char *to, const char *subject, const char *text,
	    const char *link);
int	 mail_verify(struct req *, const char *uid, const char *to,
	    const char *token);
/* The messages; each queues in the caller's transaction. */
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
/*
 * mailtexts.c: the mail texts (share/mail-texts.txt and [server]
 * mail_texts).  mail_message is the text of message name (its subject
 * in *subject), mail_part a part's text, their {placeholders} filled
 * from vars (name, value, ..., NULL), in the arena; NULL (or "" for a
 * part) when there is no such text.  mail_texts_check reads a texts
 * file: the number of entries, or -1 with why in err.
 */
const char *mail_message(struct arena *, const char *name,
	    const char *const *vars, const char **subject);
const char *mail_part(struct arena *, const char *name,
	    const char *const *vars);
/*
 * mail.c: queues message name of the texts as kind, its placeholders
 * filled from vars.  Returns 0 or a DB_* code.
 */
int	 mail_text(struct req *, const char *uid, const char *name,
	    const char *kind, const char *to, const char *link,
	    const char *const *vars);
int	 mail_texts_check(const char *path, char *err, size_t errlen);
/* s with {product} replaced by [server] name, in the arena. */
char	*mail_brand(struct arena *, const char *s);
/* The From: header: [smtp] from_name <[smtp] from>, in the arena. */
const char *mail_from_header(struct arena *);
char	*mail_compose(struct arena *, const char *id, const char *from,
	    const char *to, const char *subject, const char *text,
	    const char *html, const char *date, size_t *len);
/* The sender's side of the outbox and the trial notices. */
int	 outbox_expire(void);
int	 outbox_due(struct arena *, struct dbrows *);
int	 outbox_claim(const char *id, const char *me);
int	 outbox_load(struct arena *, const char *id, struct dbrows *);
int	 outbox_sent(const char *id, const char *me);
int	 outbox_retry(const char *id, const char *me, const char *err,
	    int max);
int	 trial_ending_due(struct arena *, int days, const char *kinds,
	    struct dbrows *);
int	 trial_ended_due(struct arena *, struct dbrows *);
int	 trial_notice(struct req *, const char *uid, const char *to,
	    const char *kind, int days, const char *ends,
	    const char *ends_raw);

/* ------------------------------------------------------------------ */
/* rekey.c: rotating [crypto] key                                     */
/* ------------------------------------------------------------------ */

/* The tables whose rows are found by a keyed hash of a secret. */
enum hashed {
	HASHED_API_KEY, HASHED_SERVICE_KEY, HASHED_COOKIE, HASHED_REFRESH,
	HASHED_TOKEN, HASHED_RECOVERY, HASHED__MAX
};
/*
 * Before a lookup by token_hash(input): while [crypto] previous_key is
 * set, moves a row holding input's old hash to the new one.
 */
void	 hash_rekey(struct req *, enum hashed, const char *input);
/* tollgatectl rekey [--json] (an exit status). */
int	 ctl_rekey(int, char *[]);

/* ------------------------------------------------------------------ */
/* ctlout.c: tollgatectl's one output style                           */
/* ------------------------------------------------------------------ */

/* A table (or with json a JSON array) of rows; numeric: 'n' per column. */
void	 ctl_print_rows(const struct dbrows *, const char *const *cols,
	    size_t ncols, const char *numeric, bool json);
/* The request audit() takes for tollgatectl's own changes. */
void	 ctl_local_req(struct req *, struct arena *);
/* Takes --json out of argv; true when it was there. */
bool	 ctl_take_json(int *argc, char *argv[]);
int	 ctl_db_fail(const char *what, int rc);
char	*ctl_read_line(struct arena *);

/* ------------------------------------------------------------------ */
/* audit.c: the audit trail                                           */
/* ------------------------------------------------------------------ */

int	 audit(struct req *, const char *action, const char *target_id,
	    const char *detail);
/* detail is consumed; audit_list's array is the caller's. */
int	 audit_obj(struct req *, const char *action, const char *target_id,
	    struct json_object *detail);
int	 audit_list(struct req *, const char *user_id, long long limit,
	    struct json_object **out);

/* ------------------------------------------------------------------ */
/* admin.c: the admin actions (JSON API and /admin)                   */
/* ------------------------------------------------------------------ */

/* What an admin action came to (DB_* codes are negative). */
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
handler_fn	 h_admin_users;
handler_fn	 h_admin_user;
handler_fn	 h_admin_user_patch;
handler_fn	 h_admin_user_delete;
handler_fn	 h_admin_extend_trial;
handler_fn	 h_admin_credits;
handler_fn	 h_admin_payments;
handler_fn	 h_admin_audit;

/* ------------------------------------------------------------------ */
/* ops.c: health and metrics                                          */
/* ------------------------------------------------------------------ */

handler_fn	 h_healthz;
handler_fn	 h_metrics;
/*
 * The database's schema version against this build's (tg_schema_version).
 * Returns 0 when equal, 1 when not (msg says what to do), DB_DOWN.
 */
int	 schema_check(char *msg, size_t len);
handler_fn	 h_root;

/* ------------------------------------------------------------------ */
/* operator.c: tollgatectl's actions on accounts and the outbox        */
/* ------------------------------------------------------------------ */

/* An account as tollgatectl finds it by its email (op_user_find). */
struct op_user {
	const char	*id;
	const char	*role;
	bool		 disabled;
	bool		 verified;
};
enum op_action {
	OP_PROMOTE,		/* to admin */
	OP_CLAIM,		/* a never-verified account taken, an admin */
	OP_CREATE_ADMIN,
	OP_DISABLE,
	OP_ENABLE,
	OP_VERIFY,
	OP_SET_PASSWORD
};
#define OP_LAST_ADMIN	2	/* op_user_act: the last admin stays */
int	 op_user_find(struct arena *, const char *email, struct op_user *);
int	 op_user_show(struct arena *, const char *email, struct dbrows *);
int	 op_user_act(struct req *, enum op_action, const struct op_user *,
	    const char *email, const char *hash);
int	 op_user_list(struct arena *, const char *q, bool disabled,
	    long long limit, struct dbrows *);
int	 op_outbox_list(struct arena *, const char *state, long long limit,
	    struct dbrows *);
int	 op_outbox_retry(struct req *, const char *id);

#endif /* TG_APP_H */
