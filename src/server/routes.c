/*
 * The route table: method, path pattern, handler, what the body may be,
 * and the declared fields.  Fields not declared here never reach a
 * handler.  Patterns are exact paths whose "{name}" segments match one
 * id-like segment.
 */
#include <string.h>

#include "server/server.h"

/* Field declarations, shared where routes take the same input. */
static const struct field f_signup[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ "password", F_PASSWORD, FIELD_REQUIRED, 0, 0 },
	{ "name", F_NAME, 0, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_login[] = {
	{ "email", F_TEXT, 0, 1, 254 },
	{ "username", F_TEXT, 0, 1, 254 },
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ "totp_code", F_TEXT, 0, 1, 16 },
	{ "recovery_code", F_TEXT, 0, 1, 64 },
	{ NULL, 0, 0, 0, 0 },
};
/*
 * Any text: a value that is no live refresh token (malformed, an access
 * token) answers 401 like an unknown one (contract section 3).
 */
static const struct field f_refresh[] = {
	{ "refresh_token", F_TEXT, FIELD_REQUIRED, 0, 4096 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_logout[] = {
	{ "refresh_token", F_TOKEN, 0, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};

/* Issue 7: the admin API's fields (the pages take theirs in pages*.c). */
static const struct field f_admin_users[] = {
	{ "q", F_TEXT, 0, 0, 254 },
	{ "page", F_INT, 0, 1, 1000000 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_admin_patch[] = {
	{ "plan", F_SLUG, FIELD_NULLABLE, 0, 0 },
	{ "role", F_TEXT, 0, 1, 16 },
	{ "disabled", F_BOOL, 0, 0, 0 },
	{ "totp", F_BOOL, 0, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_admin_trial[] = {
	{ "days", F_INT, FIELD_REQUIRED, -3650, 3650 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_admin_credits[] = {
	{ "delta", F_INT, FIELD_REQUIRED, -1000000000, 1000000000 },
	{ "reason", F_TEXT, FIELD_REQUIRED, 1, 255 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_admin_user_id[] = {
	{ "user_id", F_ID, 0, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
/*
 * Accounts (issue 4).  Mailed tokens are text here, so that one that is
 * malformed answers 400 invalid_token like one that is unknown.
 */
static const struct field f_token[] = {
	{ "token", F_TEXT, FIELD_REQUIRED, 1, 512 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_email[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_reset[] = {
	{ "token", F_TEXT, FIELD_REQUIRED, 1, 512 },
	{ "password", F_PASSWORD, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_magic_verify[] = {
	{ "token", F_TEXT, FIELD_REQUIRED, 1, 512 },
	{ "totp_code", F_TEXT, 0, 1, 16 },
	{ "recovery_code", F_TEXT, 0, 1, 64 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_token_page[] = {
	{ "token", F_TEXT, 0, 1, 512 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_verify_post[] = {
	{ "token", F_TEXT, FIELD_REQUIRED, 1, 512 },
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_magic_post[] = {
	{ "token", F_TEXT, FIELD_REQUIRED, 1, 512 },
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ "totp_code", F_TEXT, 0, 1, 16 },
	{ "recovery_code", F_TEXT, 0, 1, 64 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_me_patch[] = {
	{ "name", F_NAME, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_me_email[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_me_password[] = {
	{ "current_password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ "new_password", F_PASSWORD, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_me_delete[] = {
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ NULL, 0, 0, 0, 0 },
};

/* Second factor and device sign-in (issue 10). */
static const struct field f_totp_confirm[] = {
	{ "code", F_TEXT, FIELD_REQUIRED, 1, 16 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_totp_delete[] = {
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ "code", F_TEXT, FIELD_REQUIRED, 1, 64 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_device[] = {
	{ "client_name", F_TEXT, FIELD_REQUIRED, 1, 128 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_device_token[] = {
	{ "device_code", F_TEXT, FIELD_REQUIRED, 1, 128 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_device_page[] = {
	{ "user_code", F_TEXT, 0, 0, 64 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_device_post[] = {
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ "user_code", F_TEXT, FIELD_REQUIRED, 1, 64 },
	{ "action", F_TEXT, FIELD_REQUIRED, 1, 16 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_login_totp[] = {
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ "totp_code", F_TEXT, 0, 0, 16 },
	{ "recovery_code", F_TEXT, 0, 0, 64 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_csrf[] = {
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_totp_page_confirm[] = {
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ "code", F_TEXT, FIELD_REQUIRED, 1, 16 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_totp_page_off[] = {
	{ "csrf", F_TEXT, 0, 1, 128 },
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ "code", F_TEXT, FIELD_REQUIRED, 1, 64 },
	{ NULL, 0, 0, 0, 0 },
};
/* GitHub login and Stripe billing (contract sections 3 and 8). */
static const struct field f_github_callback[] = {
	{ "code", F_TEXT, 0, 1, 512 },
	{ "state", F_TEXT, 0, 1, 256 },
	{ "error", F_TEXT, 0, 1, 128 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_checkout[] = {
	{ "plan", F_SLUG, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};

/* API keys and usage events (issue 5). */
static const struct field f_apikey[] = {
	{ "name", F_TEXT, FIELD_REQUIRED, 1, 128 },
	{ "expires_in_days", F_INT, FIELD_NULLABLE, 1, 3650 },
	{ "password", F_TEXT, 0, 1, 256 },	/* from an old session */
	{ NULL, 0, 0, 0, 0 },
};
/* The current password, needed from a session that is not fresh. */
static const struct field f_reauth[] = {
	{ "password", F_TEXT, 0, 1, 256 },
	{ NULL, 0, 0, 0, 0 },
};
/* POST /api/v1/check (contract section 7a). */
static const struct field f_check[] = {
	{ "credential", F_TEXT, 0, 1, 4096 },
	{ "user_id", F_ID, 0, 0, 0 },
	{ "meter", F_SLUG, 0, 0, 0 },
	{ "cost", F_INT, 0, 0, 1000000000LL },
	{ "bucket", F_SLUG, 0, 0, 0 },
	{ "dry_run", F_BOOL, 0, 0, 0 },
	{ "idempotency_key", F_TEXT, 0, 1, 128 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_usage_event[] = {
	{ "user_id", F_ID, FIELD_REQUIRED, 0, 0 },
	{ "meter", F_SLUG, FIELD_REQUIRED, 0, 0 },
	{ "quantity", F_INT, FIELD_REQUIRED, 1, 1000000000000LL },
	{ "idempotency_key", F_TEXT, FIELD_REQUIRED, 1, 128 },
	{ "metadata", F_OBJECT, FIELD_NULLABLE, 0, 1024 },
	{ "cost_micros", F_INT, FIELD_NULLABLE, 0, 1000000000000000000LL },
	{ NULL, 0, 0, 0, 0 },
};
/* Services and their users (contract section 7a, issue 18). */
static const struct field f_usage_events[] = {
	{ "from", F_TEXT, 0, 1, 40 },
	{ "to", F_TEXT, 0, 1, 40 },
	{ "meter", F_SLUG, 0, 0, 0 },
	{ "page", F_INT, 0, 1, 1000000 },
	{ NULL, 0, 0, 0, 0 },
};
/* The admin page's export form sends its empty boxes: left out. */
static const struct field f_usage_export[] = {
	{ "from", F_TEXT, FIELD_BLANK_ABSENT, 1, 40 },
	{ "to", F_TEXT, FIELD_BLANK_ABSENT, 1, 40 },
	{ "meter", F_SLUG, FIELD_BLANK_ABSENT, 0, 0 },
	{ "user_id", F_ID, FIELD_BLANK_ABSENT, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_usage_level[] = {
	{ "user_id", F_ID, FIELD_REQUIRED, 0, 0 },
	{ "level", F_INT, FIELD_REQUIRED, 0, 1000000000000000LL },
	{ NULL, 0, 0, 0, 0 },
};

#define JSON		ROUTE_JSON
#define API		(ROUTE_JSON | ROUTE_API)
#define LOGIN		(ROUTE_JSON | ROUTE_API | ROUTE_AUTH)
#define ADMIN		(LOGIN | ROUTE_ADMIN)
#define PAGE		(ROUTE_HTML | ROUTE_FORM | ROUTE_OPTAUTH)
/* A page whose handler shows its form again with the bad fields. */
#define PAGE_FORM	(PAGE | ROUTE_FORM_ERRORS)

/* The fields of the HTML forms: a bad one shows the form again. */
static const struct field f_page_signup[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ "name", F_NAME, FIELD_BLANK_ABSENT, 0, 0 },
	{ "password", F_PASSWORD, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_login[] = {
	{ "username", F_TEXT, FIELD_REQUIRED, 1, 254 },
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ "totp_code", F_TEXT, 0, 0, 16 },
	{ "recovery_code", F_TEXT, 0, 0, 64 },
	{ "next", F_TEXT, 0, 0, 512 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_forgot[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_reset[] = {
	{ "token", F_TOKEN, FIELD_REQUIRED, 0, 0 },
	{ "password", F_PASSWORD, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_name[] = {
	{ "name", F_NAME, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_email[] = {
	{ "email", F_EMAIL, FIELD_REQUIRED, 0, 0 },
	{ "password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_password[] = {
	{ "current_password", F_TEXT, FIELD_REQUIRED, 1, 256 },
	{ "new_password", F_PASSWORD, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_key[] = {
	{ "key_name", F_TEXT, FIELD_REQUIRED, 1, 128 },
	{ "expires_in_days", F_INT, FIELD_BLANK_ABSENT, 1, 3650 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_checkout[] = {
	{ "plan", F_SLUG, FIELD_REQUIRED, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_admin_search[] = {
	{ "q", F_TEXT, 0, 0, 254 },
	{ "page", F_INT, 0, 1, 1000000 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_admin_update[] = {
	{ "plan", F_TEXT, 0, 0, 64 },
	{ "role", F_TEXT, 0, 0, 16 },
	{ "disabled", F_BOOL, 0, 0, 0 },
	{ "totp", F_BOOL, 0, 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_admin_credits[] = {
	{ "delta", F_INT, FIELD_REQUIRED, -1000000000, 1000000000 },
	{ "reason", F_TEXT, FIELD_REQUIRED, 1, 255 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_admin_trial[] = {
	{ "days", F_INT, FIELD_REQUIRED, -3650, 3650 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct field f_page_admin_delete[] = {
	{ "confirm", F_TEXT, FIELD_REQUIRED, 1, 254 },
	{ NULL, 0, 0, 0, 0 },
};

const struct route routes[] = {
	{ M_GET, "/", h_root, 0, NULL },
	{ M_GET, "/healthz", h_healthz, 0, NULL },
	{ M_GET, "/metrics", h_metrics, ROUTE_LOOPBACK, NULL },

	/* Accounts and sessions (contract section 3). */
	{ M_POST, "/api/v1/auth/signup", h_signup, JSON, f_signup },
	{ M_POST, "/api/v1/auth/login", h_login, JSON | ROUTE_FORM, f_login },
	{ M_POST, "/api/v1/auth/refresh", h_refresh, JSON, f_refresh },
	{ M_POST, "/api/v1/auth/logout", h_logout, JSON | ROUTE_OPTAUTH,
	    f_logout },
	{ M_GET, "/api/v1/sessions", h_sessions_list, LOGIN, NULL },
	{ M_DELETE, "/api/v1/sessions/{id}", h_session_delete, LOGIN, NULL },

	/* Issue 7: the HTML pages (section 11) and their stylesheet. */
	{ M_GET, "/static/tollgate.css", h_static_css, 0, NULL },
	{ M_GET, "/signup", h_page_signup, PAGE, NULL },
	{ M_POST, "/signup", h_page_signup_post, PAGE_FORM,
	    f_page_signup },
	{ M_GET, "/login", h_page_login, PAGE, NULL },
	{ M_POST, "/login", h_page_login_post, PAGE_FORM, f_page_login },
	{ M_POST, "/logout", h_page_logout, PAGE, NULL },
	{ M_GET, "/forgot-password", h_page_forgot, PAGE, NULL },
	{ M_POST, "/forgot-password", h_page_forgot_post, PAGE_FORM,
	    f_page_forgot },
	{ M_GET, "/login/magic", h_page_magic_request, PAGE, NULL },
	{ M_POST, "/login/magic", h_page_magic_request_post, PAGE_FORM,
	    f_page_forgot },
	{ M_GET, "/reset-password", h_page_reset, PAGE, NULL },
	{ M_POST, "/reset-password", h_page_reset_post, PAGE_FORM,
	    f_page_reset },
	{ M_GET, "/profile", h_page_profile, PAGE, NULL },
	{ M_POST, "/profile/name", h_page_profile_name, PAGE_FORM,
	    f_page_name },
	{ M_POST, "/profile/resend", h_page_profile_resend, PAGE, NULL },
	{ M_POST, "/profile/email", h_page_profile_email, PAGE_FORM,
	    f_page_email },
	{ M_POST, "/profile/password", h_page_profile_password, PAGE_FORM,
	    f_page_password },
	{ M_POST, "/profile/keys", h_page_key_create, PAGE_FORM, f_page_key },
	{ M_POST, "/profile/keys/{id}/regenerate", h_page_key_regenerate, PAGE,
	    NULL },
	{ M_POST, "/profile/keys/{id}/delete", h_page_key_delete, PAGE, NULL },
	{ M_POST, "/profile/keys/revoke-all", h_page_keys_revoke_all, PAGE,
	    NULL },
	{ M_POST, "/profile/sessions/{id}/delete", h_page_session_delete, PAGE,
	    NULL },
	{ M_GET, "/usage", h_page_usage, PAGE, NULL },
	{ M_GET, "/billing", h_page_billing, PAGE, NULL },
	{ M_POST, "/billing/checkout", h_page_checkout, PAGE_FORM,
	    f_page_checkout },
	{ M_POST, "/billing/portal", h_page_portal, PAGE, NULL },
	{ M_GET, "/admin", h_page_admin, PAGE_FORM, f_page_admin_search },
	{ M_GET, "/admin/users/{id}", h_page_admin_user, PAGE, NULL },
	{ M_POST, "/admin/users/{id}", h_page_admin_update, PAGE_FORM,
	    f_page_admin_update },
	{ M_POST, "/admin/users/{id}/credits", h_page_admin_credits,
	    PAGE_FORM, f_page_admin_credits },
	{ M_POST, "/admin/users/{id}/extend-trial", h_page_admin_trial,
	    PAGE_FORM, f_page_admin_trial },
	{ M_POST, "/admin/users/{id}/delete", h_page_admin_delete,
	    PAGE_FORM, f_page_admin_delete },
	{ M_POST, "/admin/users/{id}/keys/{kid}/delete",
	    h_page_admin_key_delete, PAGE, NULL },
	{ M_POST, "/admin/users/{id}/sessions/{sid}/delete",
	    h_page_admin_session_delete, PAGE, NULL },

	/* Issue 7: administration (section 10). */
	{ M_GET, "/api/v1/admin/users", h_admin_users, ADMIN, f_admin_users },
	{ M_GET, "/api/v1/admin/users/{id}", h_admin_user, ADMIN, NULL },
	{ M_PATCH, "/api/v1/admin/users/{id}", h_admin_user_patch, ADMIN,
	    f_admin_patch },
	{ M_DELETE, "/api/v1/admin/users/{id}", h_admin_user_delete, ADMIN,
	    NULL },
	{ M_POST, "/api/v1/admin/users/{id}/extend-trial",
	    h_admin_extend_trial, ADMIN, f_admin_trial },
	{ M_POST, "/api/v1/admin/users/{id}/credits", h_admin_credits, ADMIN,
	    f_admin_credits },
	{ M_GET, "/api/v1/admin/payments", h_admin_payments, ADMIN,
	    f_admin_user_id },
	{ M_GET, "/api/v1/admin/audit", h_admin_audit, ADMIN,
	    f_admin_user_id },

	/* Accounts (issue 4): mailed links, the account itself, pages. */
	{ M_POST, "/api/v1/auth/verify-email", h_verify_email, JSON, f_token },
	{ M_POST, "/api/v1/auth/resend-verification", h_resend_verification,
	    LOGIN, NULL },
	{ M_POST, "/api/v1/auth/password/forgot", h_password_forgot, JSON,
	    f_email },
	{ M_POST, "/api/v1/auth/password/reset", h_password_reset, JSON,
	    f_reset },
	{ M_POST, "/api/v1/auth/magic-link", h_magic_link, JSON, f_email },
	{ M_POST, "/api/v1/auth/guest", h_guest, JSON, NULL },
	{ M_POST, "/api/v1/auth/magic-link/verify", h_magic_verify, JSON,
	    f_magic_verify },
	{ M_GET, "/api/v1/me", h_me_get, LOGIN | ROUTE_KEY, NULL },
	{ M_PATCH, "/api/v1/me", h_me_patch, LOGIN, f_me_patch },
	{ M_DELETE, "/api/v1/me", h_me_delete, LOGIN, f_me_delete },
	{ M_POST, "/api/v1/me/email", h_me_email, LOGIN, f_me_email },
	{ M_POST, "/api/v1/me/password", h_me_password, LOGIN,
	    f_me_password },
	{ M_GET, "/verify-email", h_page_verify_email, ROUTE_HTML,
	    f_token_page },
	{ M_POST, "/verify-email", h_page_verify_email_post,
	    ROUTE_HTML | ROUTE_FORM, f_verify_post },
	{ M_GET, "/auth/magic", h_page_magic, ROUTE_HTML, f_token_page },
	{ M_POST, "/auth/magic", h_page_magic_post, ROUTE_HTML | ROUTE_FORM,
	    f_magic_post },

	/* Second factor and device sign-in (issue 10). */
	{ M_POST, "/api/v1/me/totp", h_totp_start, LOGIN, f_reauth },
	{ M_DELETE, "/api/v1/me/totp", h_totp_delete, LOGIN, f_totp_delete },
	{ M_POST, "/api/v1/me/totp/confirm", h_totp_confirm, LOGIN,
	    f_totp_confirm },
	{ M_POST, "/api/v1/auth/device", h_device_start, JSON, f_device },
	{ M_POST, "/api/v1/auth/device/token", h_device_token,
	    JSON | ROUTE_FORM, f_device_token },
	{ M_GET, "/device", h_page_device, ROUTE_HTML | ROUTE_OPTAUTH,
	    f_device_page },
	{ M_POST, "/device", h_page_device_post,
	    ROUTE_HTML | ROUTE_FORM | ROUTE_OPTAUTH, f_device_post },
	{ M_GET, "/login/totp", h_page_login_totp, ROUTE_HTML, NULL },
	{ M_POST, "/login/totp", h_page_login_totp_post,
	    ROUTE_HTML | ROUTE_FORM | ROUTE_OPTAUTH, f_login_totp },
	{ M_POST, "/profile/totp", h_page_totp_start,
	    ROUTE_HTML | ROUTE_FORM | ROUTE_OPTAUTH, f_csrf },
	{ M_POST, "/profile/totp/confirm", h_page_totp_confirm,
	    ROUTE_HTML | ROUTE_FORM | ROUTE_OPTAUTH, f_totp_page_confirm },
	{ M_POST, "/profile/totp/off", h_page_totp_off,
	    ROUTE_HTML | ROUTE_FORM | ROUTE_OPTAUTH, f_totp_page_off },

	/* GitHub login and Stripe billing (contract sections 3 and 8). */
	{ M_GET, "/api/v1/auth/github", h_github_start, ROUTE_HTML, NULL },
	{ M_GET, "/api/v1/auth/github/callback", h_github_callback, ROUTE_HTML,
	    f_github_callback },
	{ M_GET, "/api/v1/auth/oidc/{provider}", h_oidc_start, ROUTE_HTML,
	    NULL },
	{ M_GET, "/api/v1/auth/oidc/{provider}/callback", h_oidc_callback,
	    ROUTE_HTML, f_github_callback },
	{ M_GET, "/api/v1/billing", h_billing_get, LOGIN | ROUTE_KEY, NULL },
	{ M_POST, "/api/v1/billing/checkout", h_billing_checkout, LOGIN,
	    f_checkout },
	{ M_POST, "/api/v1/billing/portal", h_billing_portal, LOGIN, NULL },
	{ M_POST, "/api/v1/billing/webhook", h_billing_webhook, ROUTE_RAW,
	    NULL },
	{ M_GET, "/api/v1/billing/payments", h_billing_payments,
	    LOGIN | ROUTE_KEY, NULL },
	/* API keys, plans, usage and the gate (sections 4, 5 and 7). */
	{ M_GET, "/api/v1/api-keys", h_apikeys_list, LOGIN, NULL },
	{ M_DELETE, "/api/v1/api-keys", h_apikeys_delete_all, LOGIN, NULL },
	{ M_POST, "/api/v1/api-keys", h_apikey_create, LOGIN, f_apikey },
	{ M_POST, "/api/v1/api-keys/{id}/regenerate", h_apikey_regenerate,
	    LOGIN, f_reauth },
	{ M_DELETE, "/api/v1/api-keys/{id}", h_apikey_delete, LOGIN, NULL },
	{ M_GET, "/api/v1/plans", h_plans, 0, NULL },
	{ M_GET, "/api/v1/usage", h_usage, LOGIN | ROUTE_KEY, NULL },
	{ M_POST, "/api/v1/usage/events", h_usage_event,
	    ROUTE_JSON | ROUTE_SERVICE, f_usage_event },
	{ M_GET, "/api/v1/usage/events", h_usage_events, LOGIN,
	    f_usage_events },
	{ M_POST, "/api/v1/check", h_check, ROUTE_JSON | ROUTE_SERVICE,
	    f_check },
	{ M_PUT, "/api/v1/usage/levels/{meter}", h_usage_level_put,
	    ROUTE_JSON | ROUTE_SERVICE, f_usage_level },
	{ M_GET, "/api/v1/client-config", h_client_config, LOGIN | ROUTE_KEY,
	    NULL },
	{ M_GET, "/api/v1/admin/usage/export", h_admin_usage_export, ADMIN,
	    f_usage_export },
	{ M_GET | M_HEAD | M_POST | M_PUT | M_PATCH | M_DELETE | M_OPTIONS |
	    M_OTHER, "/_tollgate/check", h_gate, 0, NULL },
};

const size_t nroutes = sizeof(routes) / sizeof(routes[0]);

/* Returns true when seg[0..len) can fill a {name} segment. */
static bool
param_ok(const char *seg, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 64)
		return false;
	for (i = 0; i < len; i++)
		if (!((seg[i] >= 'a' && seg[i] <= 'z') ||
		    (seg[i] >= 'A' && seg[i] <= 'Z') ||
		    (seg[i] >= '0' && seg[i] <= '9') ||
		    seg[i] == '-' || seg[i] == '_'))
			return false;
	return true;
}

/*
 * Matches path against pattern, filling params.  Returns the number of
 * parameters taken, or -1 when it does not match.
 */
static int
pattern_match(struct req *r, const char *pattern, const char *path,
    const char **params)
{
	const char	*p = pattern, *s = path;
	int		 n = 0;

	while (*p != '\0' && *s != '\0') {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			size_t len = strcspn(s, "/");

			if (pe == NULL || !param_ok(s, len) || n == 4)
				return -1;
			params[n++] = arena_strndup(r->a, s, len);
			p = pe + 1;
			s += len;
			continue;
		}
		if (*p != *s)
			return -1;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0' ? n : -1;
}

int
route_match(struct req *r, const char *path, enum method m, unsigned *allow)
{
	const char	*params[4];
	size_t		 i;
	int		 n, found = -1;
	enum method	 want = m == M_HEAD ? M_GET : m;

	*allow = 0;
	for (i = 0; i < nroutes; i++) {
		if ((n = pattern_match(r, routes[i].pattern, path, params)) < 0)
			continue;
		*allow |= routes[i].methods;
		if (found < 0 && (routes[i].methods & want)) {
			found = (int)i;
			memcpy(r->params, params, sizeof(params));
			r->nparams = n;
		}
	}
	if (found >= 0)
		return found;
	return *allow ? -2 : -1;
}

const char *
route_label(int i)
{
	return i < 0 || (size_t)i >= nroutes ? "unmatched" : routes[i].pattern;
}
