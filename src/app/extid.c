/*
 * Accounts of people who prove who they are to another identity service:
 * an OpenID Connect provider ([oidc NAME]) or a trusted token issuer
 * ([trust NAME]) (contract section 3, "More ways in").
 *
 * A (provider, subject) pair names one account (external_ids).  The
 * first time a subject is seen: the account already linked to it signs
 * in; else the account with the same address, when the provider vouches
 * for it (a verified email claim), is linked (taking over one whose
 * address was never verified, as GitHub does: whatever was made for it
 * goes first, account_takeover); else the guest that started the sign-in
 * is claimed (guest_claim); else an account is made, verified, with its
 * trial.  One account holds at most one subject per provider.
 */
#include <string.h>

#include "app/app.h"

static struct sql q_by_subject = SQL(
    "SELECT u.id, u.disabled_at IS NOT NULL, (SELECT t.enabled_at IS NOT "
    "NULL FROM totp_secrets t WHERE t.user_id = u.id) FROM external_ids e "
    "JOIN users u ON u.id = e.user_id WHERE e.provider = ? AND "
    "e.subject = ? FOR UPDATE");
static struct sql q_by_email = SQL(
    "SELECT u.id, u.disabled_at IS NOT NULL, (SELECT t.enabled_at IS NOT "
    "NULL FROM totp_secrets t WHERE t.user_id = u.id), "
    "u.email_verified_at IS NOT NULL, (SELECT e.subject FROM external_ids "
    "e WHERE e.user_id = u.id AND e.provider = ?) FROM users u "
    "WHERE u.email_lc = ? FOR UPDATE");
static struct sql q_link = SQL(
    "INSERT INTO external_ids (provider, subject, user_id) VALUES (?, ?, ?)");
static struct sql q_create = SQL(
    "INSERT INTO users (id, email, email_lc, name) VALUES (?, ?, ?, ?)");
/* An account without an address: nothing to prove; its trial starts. */
static struct sql q_verified_no_email = SQL(
    "UPDATE users SET email_verified_at = UTC_TIMESTAMP(6), "
    "trial_started_at = COALESCE(trial_started_at, UTC_TIMESTAMP(6)), "
    "trial_ends_at = COALESCE(trial_ends_at, UTC_TIMESTAMP(6) + "
    "INTERVAL ? DAY) WHERE id = ? AND email_verified_at IS NULL");

/*
 * Counts uid as verified: with an address, account_verified (the trial,
 * once per address, and the welcome mail); without one, the trial
 * starts.  Inside the caller's transaction; 0 or a DB_* code.
 */
static int
ext_verified(struct req *r, const char *uid, const char *email)
{
	int	 rc;

	if (email != NULL)
		return account_verified(r, uid);
	rc = db_exec(&q_verified_no_email, "is", (long long)cfg.trial_days,
	    uid);
	return rc < 0 ? rc : 0;
}

/*
 * Inside a transaction: finds, links, takes over, claims (x->guest) or
 * makes the account of x.  Returns 0 with the account in *uid and what
 * to do in *what (EXT_SESSION, EXT_TOTP: the second factor first,
 * EXT_DISABLED, EXT_OTHER: the address's account is linked to another
 * subject of this provider), or a DB_* code.
 */
int
ext_account(struct req *r, const struct ext_identity *x, const char **uid,
    int *what)
{
	struct dbrows	 row;
	const char	*email_lc;
	int		 rc;

	*what = EXT_SESSION;
	if ((rc = db_select(r->a, &q_by_subject, &row, "ss", x->provider,
	    x->subject)) < 0)
		return rc;
	if (rc == 1) {
		*uid = dbv(&row, 0, 0);
		if (dbi(&row, 0, 1))
			*what = EXT_DISABLED;
		else if (dbi(&row, 0, 2))
			*what = EXT_TOTP;
		return 0;
	}
	if (x->email != NULL) {
		email_lc = ascii_lower(r->a, x->email);
		if ((rc = db_select(r->a, &q_by_email, &row, "ss", x->provider,
		    email_lc)) < 0)
			return rc;
		if (rc == 1) {
			*uid = dbv(&row, 0, 0);
			if (dbv(&row, 0, 4) != NULL) {
				*what = EXT_OTHER;
				return 0;
			}
			if (dbi(&row, 0, 1)) {
				*what = EXT_DISABLED;
				return 0;
			}
			if (dbi(&row, 0, 3)) {
				/* A verified address: the same person. */
				if ((rc = db_exec(&q_link, "sss", x->provider,
				    x->subject, *uid)) < 0 ||
				    (rc = audit(r, "extid.link", *uid,
				    x->provider)) < 0)
					return rc;
				if (dbi(&row, 0, 2))
					*what = EXT_TOTP;
				log_info("extid_link", " user=%s provider=%s",
				    *uid, x->provider);
				return 0;
			}
			/* Never verified: the squatter's everything goes. */
			if ((rc = account_takeover(r, *uid, x->provider)) < 0 ||
			    (rc = db_exec(&q_link, "sss", x->provider,
			    x->subject, *uid)) < 0 ||
			    (rc = credit_balance_ensure(*uid)) < 0 ||
			    (rc = ext_verified(r, *uid, x->email)) < 0 ||
			    (rc = audit(r, "extid.takeover", *uid,
			    x->provider)) < 0)
				return rc;
			log_info("extid_takeover", " user=%s provider=%s",
			    *uid, x->provider);
			return 0;
		}
	}
	if (x->guest != NULL) {
		if ((rc = guest_claim(r, x->guest, x->email, x->provider)) < 0)
			return rc;
		if (rc == 1) {
			*uid = x->guest;
			if ((rc = db_exec(&q_link, "sss", x->provider,
			    x->subject, *uid)) < 0 ||
			    (rc = ext_verified(r, *uid, x->email)) < 0)
				return rc;
			log_info("extid_signup", " user=%s provider=%s guest=1",
			    *uid, x->provider);
			return 0;
		}
	}
	*uid = new_id(r->a);
	if ((rc = db_exec(&q_create, "ssss", *uid, x->email,
	    x->email != NULL ? ascii_lower(r->a, x->email) : NULL,
	    x->name != NULL ? x->name : "")) < 0 ||
	    (rc = credit_balance_ensure(*uid)) < 0 ||
	    (rc = db_exec(&q_link, "sss", x->provider, x->subject, *uid)) < 0 ||
	    (rc = ext_verified(r, *uid, x->email)) < 0 ||
	    (rc = audit(r, "user.signup", *uid, x->provider)) < 0)
		return rc;
	log_info("extid_signup", " user=%s provider=%s", *uid, x->provider);
	return 0;
}

/*
 * The verified address of an ID token's or access token's claims: its
 * "email" when "email_verified" is true (a boolean, or the string
 * "true" some providers send) and it is a valid address; else NULL.  In
 * the arena.
 */
const char *
ext_verified_email(struct req *r, struct json_object *claims)
{
	struct json_object	*v;
	const char		*e = json_str_at(claims, "email");
	bool			 ok = false;

	if (e == NULL || valid_email(e, strlen(e)) != NULL)
		return NULL;
	if (json_object_object_get_ex(claims, "email_verified", &v) &&
	    v != NULL)
		ok = json_object_is_type(v, json_type_boolean) ?
		    json_object_get_boolean(v) :
		    json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), "true") == 0;
	return ok ? arena_strdup(r->a, e) : NULL;
}

/* A subject fit to store (1 to 255 bytes of UTF-8 text), or NULL. */
const char *
ext_subject(struct req *r, struct json_object *claims)
{
	const char	*s = json_str_at(claims, "sub");

	if (s == NULL || *s == '\0' || strlen(s) > 255 ||
	    valid_utf8_text(s, strlen(s), 255) != NULL)
		return NULL;
	return arena_strdup(r->a, s);
}

/* The claims' "name" when it is a valid name, else NULL; in the arena. */
const char *
ext_name(struct req *r, struct json_object *claims)
{
	const char	*s = json_str_at(claims, "name");

	return s != NULL && valid_name(s, strlen(s)) == NULL ?
	    arena_strdup(r->a, s) : NULL;
}
