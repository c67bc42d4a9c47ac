/*
 * The pages layer: HTML rendering of the account, billing, usage and
 * admin pages.  It holds no SQL: it calls the application's cores.
 */
#ifndef TG_PAGES_H
#define TG_PAGES_H

#include "core/core.h"
#include "db/db.h"
#include "http/http.h"
#include "app/app.h"

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
bool	 pg_login(struct req *);
bool	 pg_admin(struct req *);
bool	 pg_get(struct req *, struct page *, bool admin);
bool	 pg_post(struct req *, struct page *, bool admin);
bool	 pg_csrf(struct req *);
bool	 pg_csrf_signin(struct req *);
bool	 pg_reauth(struct req *, const char *action);
/* False (the messages recorded) when the route's fields were bad. */
bool	 pg_take(struct page *);
void	 pg_error(struct page *, const char *field, const char *message);
const char *pg_err_text(struct page *, const char *field);
void	 pg_notice(struct page *, const char *cls, const char *text);
/* A ?notice= code and the message it stands for (pg_notice_of). */
struct pg_notice_text {
	const char	*code;
	const char	*text;
};
void	 pg_notice_of(struct page *, const struct pg_notice_text *, size_t);
bool	 pg_table(struct page *, size_t rows, const char *empty,
	    const char *cls, const char *const *heads);
void	 pg_table_end(struct page *);
void	 pg_form(struct page *, const char *action, const char *cls);
void	 pg_hidden(struct page *, const char *name, const char *value);
void	 pg_input(struct page *, const char *label, const char *name,
	    const char *type, const char *value, const char *autocomplete,
	    bool required);
void	 pg_submit(struct page *, const char *label, const char *cls);
void	 pg_button_form(struct page *, const char *action,
	    const char *label, const char *cls);
void	 pg_key_cells(struct page *, struct json_object *);
void	 pg_used_cells(struct page *, struct json_object *);
void	 pg_revoke_cell(struct page *, const char *action, const char *label);
void	 pg_nav(struct page *, const char *current);
void	 pg_send(struct page *, int status, const char *title);
void	 pg_time(struct buf *, const char *rfc3339);
const char *pg_arg(struct req *, const char *name);

/* Handlers of issue 7. */

handler_fn	 h_page_signup;
handler_fn	 h_page_signup_post;
handler_fn	 h_page_login;
handler_fn	 h_page_login_post;
handler_fn	 h_page_logout;
handler_fn	 h_page_forgot;
handler_fn	 h_page_forgot_post;
handler_fn	 h_page_magic_request;
handler_fn	 h_page_magic_request_post;
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
handler_fn	 h_page_keys_revoke_all;
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
/* links.c */
handler_fn	 h_page_verify_email;
handler_fn	 h_page_verify_email_post;
handler_fn	 h_page_magic;
handler_fn	 h_page_magic_post;

/* twofactor.c */
void	 totp_profile_section(struct req *, struct buf *, bool on);
handler_fn	 h_page_login_totp;
handler_fn	 h_page_login_totp_post;
handler_fn	 h_page_totp_start;
handler_fn	 h_page_totp_confirm;
handler_fn	 h_page_totp_off;

#endif /* TG_PAGES_H */
