/*
 * The signed-in user's own account: read it, rename it, change its
 * email address or password, delete it.  Every change asks for the
 * current password, and a wrong one answers 422 naming the field and
 * counts toward the login throttle (per email and address, and per
 * address), so these endpoints cannot be used to guess a password.
 */
#include <string.h>

#include "tollgate.h"

static struct sql q_me = SQL(
    "SELECT " USER_COLUMNS ", "
    "DATE_FORMAT(u.trial_ends_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "u.trial_started_at IS NULL, "
    "(SELECT IF(cb.allowance_plan = 'trial' AND "
    "cb.allowance_period_end > UTC_TIMESTAMP(6), cb.allowance, 0) "
    "FROM credit_balances cb WHERE cb.user_id = u.id), "
    "s.plan, s.status, "
    "DATE_FORMAT(s.current_period_end, '%Y-%m-%dT%H:%i:%sZ'), s.id "
    "FROM users u LEFT JOIN subscriptions s ON s.id = (SELECT s2.id "
    "FROM subscriptions s2 WHERE s2.user_id = u.id AND "
    "s2.deleted_at IS NULL ORDER BY s2.stripe_updated DESC, "
    "s2.created_at DESC LIMIT 1) WHERE u.id = ?");
static struct sql q_rename = SQL(
    "UPDATE users SET name = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_password_of = SQL(
    "SELECT password_hash FROM users WHERE id = ?");
static struct sql q_email_used = SQL(
    "SELECT 1 FROM users WHERE email_lc = ? AND id <> ?");
static struct sql q_set_password = SQL(
    "UPDATE users SET password_hash = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_kill_resets = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND "
    "kind = 'reset' AND used_at IS NULL");
/* The other admins, locked, so two last admins cannot both leave. */
static struct sql q_other_admins = SQL(
    "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL "
    "AND id <> ? FOR UPDATE");
static struct sql q_role = SQL(
    "SELECT role FROM users WHERE id = ? FOR UPDATE");
static struct sql q_delete = SQL(
    "DELETE FROM users WHERE id = ?");

/*
 * Checks the caller's current password, given in field.  Returns 1 when
 * it is right; otherwise answers (422 naming field, 429 while the login
 * throttle holds, 503) and returns 0.  A wrong password counts as a
 * failed login of the caller's email from this address.
 */
static int
check_password(struct req *r, const char *field)
{
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, r->who.email);
	long		 retry = 0;
	int		 rc;

	if ((rc = login_throttled(r, email_lc, &retry)) < 0)
		goto dberr;
	if (rc == 1) {
		reply_throttled(r, retry);
		return 0;
	}
	if ((rc = db_select(r->a, &q_password_of, &row, "s",
	    r->who.user_id)) < 0)
		goto dberr;
	if (password_verify(rc == 1 ? dbv(&row, 0, 0) : NULL,
	    in_str(r, field)))
		return 1;
	if ((rc = login_failed(r, email_lc)) < 0)
		goto dberr;
	log_info("password_check_failed", " user=%s", r->who.user_id);
	reply_invalid1(r, field, "is wrong");
	return 0;
dberr:
	reply_db(r, rc);
	return 0;
}

/*
 * GET /api/v1/me (a login or an API key): 200 {user, trial: {ends_at,
 * credits_remaining}, subscription: {plan, status, current_period_end}
 * or null}; 503.  Before the trial starts (at verification) ends_at is
 * null and credits_remaining the credits it will bring.
 */
void
h_me_get(struct req *r)
{
	struct dbrows		 row;
	struct json_object	*o, *t, *s;
	const size_t		 c = 7;	/* the columns after USER_COLUMNS */
	int			 rc;

	if ((rc = db_select(r->a, &q_me, &row, "s", r->who.user_id)) <= 0) {
		/* Deleted between the credential check and now. */
		if (rc == 0)
			reply_unauth(r, "unauthenticated", "The credential "
			    "is not valid.");
		else
			reply_db(r, rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user_json_row(&row, 0, 0));
	t = json_object_new_object();
	json_object_object_add(t, "ends_at", dbv(&row, 0, c) ?
	    json_object_new_string(dbv(&row, 0, c)) : NULL);
	json_object_object_add(t, "credits_remaining", json_object_new_int64(
	    dbi(&row, 0, c + 1) ? cfg.trial_credits : dbi(&row, 0, c + 2)));
	json_object_object_add(o, "trial", t);
	s = NULL;
	if (dbv(&row, 0, c + 6) != NULL) {
		s = json_object_new_object();
		json_object_object_add(s, "plan", dbv(&row, 0, c + 3) ?
		    json_object_new_string(dbv(&row, 0, c + 3)) : NULL);
		json_object_object_add(s, "status",
		    json_object_new_string(dbv(&row, 0, c + 4)));
		json_object_object_add(s, "current_period_end",
		    dbv(&row, 0, c + 5) ?
		    json_object_new_string(dbv(&row, 0, c + 5)) : NULL);
	}
	json_object_object_add(o, "subscription", s);
	reply_json(r, 200, o);
}

/* PATCH /api/v1/me {name}: 200 {user}; 422; 503. */
void
h_me_patch(struct req *r)
{
	struct json_object	*o, *user = NULL;
	int			 rc;

	if ((rc = db_exec(&q_rename, "ss", in_str(r, "name"),
	    r->who.user_id)) < 0 ||
	    (rc = user_json(r, r->who.user_id, &user)) <= 0) {
		reply_db(r, rc == 0 ? DB_FAIL : rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	reply_json(r, 200, o);
}

/*
 * POST /api/v1/me/email {email, password}: 202, a verification link
 * goes to the new address (the change takes effect when it is followed)
 * and a notice to the old one, both unless the new address has had its
 * [limits] mail_per_hour; 409 email_taken; 422 (password: wrong; email:
 * the current one); 429 while the login throttle holds; 503.
 */
void
h_me_email(struct req *r)
{
	struct dbrows		 row;
	struct json_object	*o;
	const char		*email = in_str(r, "email");
	const char		*email_lc = ascii_lower(r->a, email), *t;
	int			 rc, allowed;

	if (!check_password(r, "password"))
		return;
	if (strcmp(email, r->who.email) == 0) {
		reply_invalid1(r, "email", "is already your email address");
		return;
	}
	if ((rc = db_begin()) < 0 ||
	    (rc = db_select(r->a, &q_email_used, &row, "ss", email_lc,
	    r->who.user_id)) < 0)
		goto dberr;
	if (rc > 0) {
		db_rollback();
		reply_error(r, 409, "email_taken", "Another account uses this "
		    "email address.");
		return;
	}
	if ((allowed = mail_allowed(r, email_lc)) < 0) {
		rc = allowed;
		goto dberr;
	}
	if (allowed && ((t = onetime_token(r, "email_change", r->who.user_id,
	    email, 24 * 60, &rc)) == NULL ||
	    (rc = mail_email_change(r, r->who.user_id, email, t)) < 0 ||
	    (rc = mail_email_change_notice(r, r->who.user_id, r->who.email,
	    email)) < 0))
		goto dberr;
	if ((rc = db_commit()) < 0)
		goto dberr;
	log_info("email_change_asked", " user=%s sent=%d", r->who.user_id,
	    allowed);
	o = json_object_new_object();
	json_object_object_add(o, "message", json_object_new_string("A link "
	    "to confirm the new address is on its way to it; the change "
	    "takes effect when it is opened."));
	reply_json(r, 202, o);
	return;
dberr:
	db_rollback();
	reply_db(r, rc);
}

/*
 * POST /api/v1/me/password {current_password, new_password}: 204, the
 * other sessions revoked and a notice mailed; 422 (current_password:
 * wrong; new_password: too short or long); 429 while the login
 * throttle holds; 503.
 */
void
h_me_password(struct req *r)
{
	const char	*hash;
	int		 rc;

	if (!check_password(r, "current_password"))
		return;
	if ((hash = password_hash(r->a, in_str(r, "new_password"))) == NULL) {
		reply_db(r, DB_FAIL);
		return;
	}
	if ((rc = db_begin()) < 0 ||
	    (rc = db_exec(&q_set_password, "ss", hash, r->who.user_id)) < 0 ||
	    (rc = sessions_revoke_all(r->who.user_id, r->who.session_id,
	    "password_change")) < 0 ||
	    (rc = db_exec(&q_kill_resets, "s", r->who.user_id)) < 0 ||
	    (rc = mail_security_notice(r, r->who.user_id, r->who.email, "The "
	    "password of your tollgate account was changed, and every other "
	    "session of it was signed out.")) < 0 ||
	    (rc = db_commit()) < 0) {
		db_rollback();
		reply_db(r, rc);
		return;
	}
	log_info("password_changed", " user=%s", r->who.user_id);
	reply_empty(r, 204);
}

/*
 * DELETE /api/v1/me {password}: 204, the account and everything it owns
 * (keys, sessions, tokens, balances) deleted, a last mail sent; 409
 * last_admin; 422 (password: wrong); 429 while the login throttle
 * holds; 503.
 */
void
h_me_delete(struct req *r)
{
	struct dbrows	 row;
	int		 rc;

	if (!check_password(r, "password"))
		return;
	if ((rc = db_begin()) < 0 ||
	    (rc = db_select(r->a, &q_role, &row, "s", r->who.user_id)) < 0)
		goto dberr;
	if (rc == 1 && strcmp(dbv(&row, 0, 0), "admin") == 0) {
		if ((rc = db_select(r->a, &q_other_admins, &row, "s",
		    r->who.user_id)) < 0)
			goto dberr;
		if (rc == 0) {
			db_rollback();
			reply_error(r, 409, "last_admin", "The last admin "
			    "cannot delete their account.");
			return;
		}
	}
	/*
	 * The Stripe subscription's cancellation is queued in this
	 * transaction, so a Stripe outage cannot lose it.  The subscription
	 * rows stay, with user_id set to NULL by the foreign key.
	 */
	if ((rc = billing_cancel_for_user(r, r->who.user_id)) < 0 ||
	    (rc = audit(r, "user.delete", r->who.user_id, "self")) < 0 ||
	    (rc = mail_account_deleted(r, r->who.user_id, r->who.email)) < 0 ||
	    (rc = db_exec(&q_delete, "s", r->who.user_id)) < 0 ||
	    (rc = db_commit()) < 0)
		goto dberr;
	log_info("account_deleted", " user=%s", r->who.user_id);
	if (r->who.kind == WHO_COOKIE)
		session_clear_cookie(r);
	reply_empty(r, 204);
	return;
dberr:
	db_rollback();
	reply_db(r, rc);
}
