/*
 * Accounts: sign-up and login, mailed one-time tokens, verification and
 * the trial, password reset and the magic link.
 */
#include <string.h>

#include "app/app.h"

static int	 second_factor(struct req *, const char *, long *);

/* The seconds left of the last TOKEN_LIMITED (reply_token_error). */
static long	 limited_retry;

static struct sql q_insert_user = SQL(
    "INSERT INTO users (id, email, email_lc, name, password_hash) "
    "VALUES (?, ?, ?, ?, ?)");
static struct sql q_guest_signup = SQL(
    "UPDATE users SET password_hash = ?, name = IF(? = '', name, ?), "
    "updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_signup_link = SQL(
    "INSERT INTO signup_links (token_hash, email, email_lc, guest_id, "
    "expires_at) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MINUTE)");
static struct sql q_signup_link_find = SQL(
    "SELECT email, email_lc, guest_id FROM signup_links WHERE "
    "token_hash = ? AND used_at IS NULL AND expires_at > UTC_TIMESTAMP(6) "
    "FOR UPDATE");
static struct sql q_signup_link_use = SQL(
    "UPDATE signup_links SET used_at = UTC_TIMESTAMP(6) WHERE "
    "token_hash = ? AND used_at IS NULL");
static struct sql q_email_taken = SQL(
    "SELECT 1 FROM users WHERE email_lc = ?");
static struct sql q_insert_token = SQL(
    "INSERT INTO tokens (token_hash, kind, user_id, new_email, "
    "new_email_lc, expires_at) VALUES (?, ?, ?, ?, ?, "
    "UTC_TIMESTAMP(6) + INTERVAL ? MINUTE)");

/*
 * Makes a one-time token of kind for uid, living minutes; new_email is
 * the address the link is mailed to (for an email change, the new
 * address; a verification link then counts only while that is still the
 * account's address).  Returns the token (in the arena; only its hash is
 * stored) or NULL with *rc set.
 */
const char *
onetime_token(struct req *r, const char *kind, const char *uid,
    const char *new_email, int minutes, int *rc)
{
	const char	*t = new_token(r->a, "", 32);

	*rc = db_exec(&q_insert_token, "sssssi", token_hash(r->a, t), kind,
	    uid, new_email, new_email ? ascii_lower(r->a, new_email) : NULL,
	    (long long)minutes);
	return *rc < 0 ? NULL : t;
}

/*
 * Whether an account uses email (compared ignoring ASCII case): 1, 0,
 * or a DB_* code.  Sign-ups ask it before they hash a password.
 */
int
email_taken(struct req *r, const char *email)
{
	struct dbrows	 row;

	return db_select(r->a, &q_email_taken, &row, "s",
	    ascii_lower(r->a, email));
}

/* A sign-up's transaction, run by db_tx_run (maybe more than once). */
static int
signup_body(void *v)
{
	struct signup	*s = v;
	struct req	*r = s->r;
	const char	*sid, *vt;
	int		 rc;

	/* What an earlier try made is dropped: no cookie, no objects. */
	r->headers_out.n = s->headers;
	json_object_put(s->user);
	json_object_put(s->tokens);
	json_object_put(s->key);
	s->user = s->tokens = s->key = NULL;
	rc = 0;
	if (s->guest != NULL) {
		/* A guest signing up keeps its id, usage and credits. */
		s->uid = s->guest;
		if ((rc = guest_claim(r, s->uid, s->email, "signup")) < 0 ||
		    (rc == 1 && (rc = db_exec(&q_guest_signup, "ssss",
		    s->hash, s->name, s->name, s->uid)) < 0))
			return rc;
	}
	if (rc == 0) {
		s->uid = new_id(r->a);
		if ((rc = db_exec(&q_insert_user, "sssss", s->uid, s->email,
		    ascii_lower(r->a, s->email), s->name, s->hash)) < 0 ||
		    (rc = credit_balance_open(s->uid)) < 0)
			return rc;
	}
	if ((vt = onetime_token(r, "verify", s->uid, s->email, 48 * 60,
	    &rc)) == NULL ||
	    (rc = mail_verify(r, s->uid, s->email, vt)) < 0 ||
	    (rc = session_create(r, s->uid, "signup", NULL, s->cookie,
	    &sid)) < 0)
		return rc;
	if (s->cookie)
		return 0;
	if ((rc = tokens_issue(r, s->uid, sid, &s->tokens, NULL)) < 0 ||
	    (rc = apikey_create(r, s->uid, "default", 0, &s->key)) < 0 ||
	    (rc = user_json(r, s->uid, &s->user)) < 0)
		return rc;
	return 0;
}

/*
 * The one sign-up, for the JSON API and the /signup page: the account,
 * its first session (a cookie when s->cookie, else tokens, a first API
 * key and the user object in s), the credit balance and the verification
 * mail, in one transaction.  Returns 0 with s->uid, SIGNUP_TAKEN when the
 * email has an account, or a DB_* code.  The caller puts s's objects.
 */
int
signup_core(struct req *r, struct signup *s)
{
	int	 rc;

	s->r = r;
	s->headers = r->headers_out.n;
	s->user = s->tokens = s->key = NULL;
	if (s->name == NULL)
		s->name = "";
	/* A taken address answers before any hashing is spent on it. */
	if ((rc = email_taken(r, s->email)) < 0)
		return rc;
	if (rc > 0)
		return SIGNUP_TAKEN;
	if ((s->hash = password_hash(r->a, s->password)) == NULL)
		return password_busy() ? TG_BUSY : DB_FAIL;
	if ((rc = db_tx_run(signup_body, NULL, s, DB_TX_TRIES)) < 0) {
		r->headers_out.n = s->headers;
		json_object_put(s->user);
		json_object_put(s->tokens);
		json_object_put(s->key);
		s->user = s->tokens = s->key = NULL;
		return rc == DB_DUP ? SIGNUP_TAKEN : rc;
	}
	log_info("signup", " user=%s via=%s", s->uid, s->cookie ? "page" :
	    "api");
	return 0;
}

/*
 * POST /api/v1/auth/signup: 201 {user, tokens, api_key}; 409
 * email_taken; 422 for bad fields; 503 when the database is down.
 */
void
h_signup(struct req *r)
{
	struct signup		 s;
	struct json_object	*o;
	int			 rc;

	memset(&s, 0, sizeof(s));
	s.email = in_str(r, "email");
	s.name = in_str(r, "name");
	s.password = in_str(r, "password");
	/* A guest's own access token: the guest becomes this account. */
	if ((rc = guest_of_request(r, &s.guest)) < 0) {
		reply_db(r, rc);
		return;
	}
	if ((rc = signup_core(r, &s)) == SIGNUP_TAKEN) {
		reply_error(r, 409, "email_taken", "An account with this "
		    "email already exists.");
		return;
	}
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", s.user);
	json_object_object_add(o, "tokens", s.tokens);
	json_object_object_add(o, "api_key", s.key);
	reply_json(r, 201, o);
}

/*
 * POST /api/v1/auth/login (JSON {email, password} or the form
 * username=&password=): 200 {user, tokens}; 401 invalid_credentials or
 * totp_required; 403 account_disabled; 422; 429 while throttled; 503.
 */
void
h_login(struct req *r)
{
	struct outcome		 out = OUTCOME_INIT;
	struct json_object	*user = NULL, *tokens = NULL;
	const char		*email = in_str(r, "email");
	const char		*uid = NULL;
	bool			 totp = false;
	long			 retry = 0;
	int			 rc;

	if (email == NULL)
		email = in_str(r, "username");
	if (email == NULL) {
		outcome_invalid(&out, r->json ? "email" : "username",
		    "is required");
		goto out;
	}
	switch ((rc = login_check(r, email, in_str(r, "password"), &uid, &totp,
	    &retry))) {
	case LOGIN_OK:
		break;
	case LOGIN_THROTTLED:
		outcome_throttled(&out, retry);
		goto out;
	case LOGIN_WRONG:
		outcome_refuse(&out, 401, "invalid_credentials", "The email or "
		    "password is wrong.");
		goto out;
	case LOGIN_DISABLED:
		outcome_refuse(&out, 403, "account_disabled", "This account "
		    "has been disabled.");
		goto out;
	default:
		out.rc = rc;
		goto out;
	}
	if (totp && in_str(r, "totp_code") == NULL &&
	    in_str(r, "recovery_code") == NULL) {
		outcome_refuse(&out, 401, "totp_required", "This account needs "
		    "its second factor: send totp_code or recovery_code.");
		goto out;
	}
	if (totp) {
		if ((rc = second_factor(r, uid, &retry)) == TOTP_LIMITED) {
			outcome_throttled(&out, retry);
			goto out;
		}
		if (rc == 0 && (rc = totp_failed(r, uid, ascii_lower(r->a,
		    email))) == 0) {
			outcome_refuse(&out, 401, "invalid_credentials", "The "
			    "email, password or second factor is wrong.");
			goto out;
		}
		if (rc <= 0) {
			out.rc = rc;
			goto out;
		}
		login_succeeded(r, ascii_lower(r->a, email));
	}
	if ((rc = session_login(r, uid, "password", NULL, &tokens,
	    NULL)) < 0 || (rc = user_json(r, uid, &user)) <= 0) {
		json_object_put(tokens);
		json_object_put(user);
		out.rc = rc == 0 ? DB_FAIL : rc;
		goto out;
	}
	out.status = 200;
	out.body = json_object_new_object();
	json_object_object_add(out.body, "user", user);
	json_object_object_add(out.body, "tokens", tokens);
out:
	reply_outcome(r, &out);
}

/* ------------------------------------------------------------------ */
/* One-time tokens, verification and the trial.                        */
/* ------------------------------------------------------------------ */

/*
 * Finds a usable one-time token (unused, unexpired, of one of kinds, a
 * comma-separated list) with its user, and locks both rows until the
 * end of the transaction, so a concurrent use of the same token waits
 * and then finds it used.
 */
static struct sql q_token_find = SQL(
    "SELECT t.user_id, t.kind, t.new_email, t.new_email_lc, u.email, "
    "u.email_lc, u.disabled_at IS NOT NULL, "
    "(SELECT enabled_at IS NOT NULL FROM totp_secrets ts "
    "WHERE ts.user_id = u.id), u.email_verified_at IS NOT NULL "
    "FROM tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = ? AND FIND_IN_SET(t.kind, ?) AND "
    "t.used_at IS NULL AND t.expires_at > UTC_TIMESTAMP(6) FOR UPDATE");
/* The same, without locking: is a token worth hashing a password for? */
static struct sql q_token_peek = SQL(
    "SELECT 1 FROM tokens WHERE token_hash = ? AND kind = ? AND "
    "used_at IS NULL AND expires_at > UTC_TIMESTAMP(6)");
static struct sql q_token_use = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) "
    "WHERE token_hash = ? AND used_at IS NULL");
static struct sql q_tokens_kill = SQL(
    "UPDATE tokens SET used_at = UTC_TIMESTAMP(6) "
    "WHERE user_id = ? AND FIND_IN_SET(kind, ?) AND used_at IS NULL");
static struct sql q_mark_verified = SQL(
    "UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) "
    "WHERE id = ? AND email_verified_at IS NULL");
static struct sql q_trial_state = SQL(
    "SELECT email, email_lc, trial_started_at IS NULL FROM users "
    "WHERE id = ?");
static struct sql q_trial_history = SQL(
    "INSERT IGNORE INTO trial_history (kind, subject, user_id) "
    "VALUES ('email', ?, ?)");
static struct sql q_trial_owner = SQL(
    "SELECT user_id = ? FROM trial_history WHERE kind = 'email' AND "
    "subject = ?");
/* After an email change: the new address has had this account's trial. */
static struct sql q_trial_history_moved = SQL(
    "INSERT IGNORE INTO trial_history (kind, subject, user_id) "
    "SELECT 'email', email_lc, id FROM users WHERE id = ? AND "
    "trial_started_at IS NOT NULL");
static struct sql q_trial_start = SQL(
    "UPDATE users SET trial_started_at = UTC_TIMESTAMP(6), "
    "trial_ends_at = IF(? > 0, UTC_TIMESTAMP(6) + INTERVAL ? DAY, "
    "UTC_TIMESTAMP(6)) WHERE id = ? AND trial_started_at IS NULL");
/*
 * A trial had before (by this address or subject) ends as it starts: its
 * balance says the trial was had, with no credits, so the allowance rule
 * never grants the trial's credits to this account later.
 */
static struct sql q_trial_had = SQL(
    "INSERT INTO credit_balances (user_id, allowance, allowance_plan, "
    "allowance_period_start, allowance_period_end) "
    "SELECT id, 0, 'trial', trial_started_at, trial_ends_at FROM users "
    "WHERE id = ? ON DUPLICATE KEY UPDATE allowance = 0, "
    "allowance_plan = 'trial', "
    "allowance_period_start = VALUES(allowance_period_start), "
    "allowance_period_end = VALUES(allowance_period_end), "
    "updated_at = UTC_TIMESTAMP(6)");
static struct sql q_trial_ends = SQL(
    "SELECT DATE_FORMAT(trial_ends_at, '%Y-%m-%d %H:%i UTC') FROM users "
    "WHERE id = ?");
static struct sql q_change_email = SQL(
    "UPDATE users SET email = ?, email_lc = ?, "
    "updated_at = UTC_TIMESTAMP(6) WHERE id = ?");
static struct sql q_user_by_email = SQL(
    "SELECT id, email FROM users WHERE email_lc = ? AND "
    "disabled_at IS NULL");
static struct sql q_token_spent = SQL(
    "SELECT used_at IS NOT NULL FROM tokens WHERE token_hash = ?");
static struct sql q_verify_state = SQL(
    "SELECT email, email_lc, email_verified_at IS NOT NULL FROM users "
    "WHERE id = ?");

/* A one-time token found by onetime_find, with its user. */
struct onetime {
	const char	*hash;
	const char	*user_id;
	const char	*kind;
	const char	*new_email;	/* email_change, verify: the address */
	const char	*new_email_lc;
	const char	*email;		/* the user's address now */
	const char	*email_lc;
	bool		 disabled;
	bool		 totp;
	bool		 verified;	/* the account's address is verified */
};

/*
 * Inside a transaction, finds and locks the token tok if it is usable
 * and of one of kinds.  Returns 1 with *o filled (in the arena), 0 when
 * it is unknown, used, expired or malformed, or a DB_* code.
 */
static int
onetime_find(struct req *r, const char *tok, const char *kinds,
    struct onetime *o)
{
	struct dbrows	 row;
	int		 rc;

	memset(o, 0, sizeof(*o));
	if (tok == NULL || valid_token(tok, strlen(tok)) != NULL)
		return 0;
	hash_rekey(r, HASHED_TOKEN, tok);
	o->hash = token_hash(r->a, tok);
	if ((rc = db_select(r->a, &q_token_find, &row, "ss", o->hash,
	    kinds)) <= 0)
		return rc;
	o->user_id = dbv(&row, 0, 0);
	o->kind = dbv(&row, 0, 1);
	o->new_email = dbv(&row, 0, 2);
	o->new_email_lc = dbv(&row, 0, 3);
	o->email = dbv(&row, 0, 4);
	o->email_lc = dbv(&row, 0, 5);
	o->disabled = dbi(&row, 0, 6) != 0;
	o->totp = dbi(&row, 0, 7) != 0;
	o->verified = dbi(&row, 0, 8) != 0;
	return 1;
}

/*
 * Whether tok is a verification or email-change token that could be used
 * now (it is not: only looked at, for the page that asks to confirm).
 * Returns 1, 0, or a DB_* code.
 */
int
email_token_usable(struct req *r, const char *tok)
{
	struct dbrows	 row;
	int		 rc;

	if (tok == NULL || valid_token(tok, strlen(tok)) != NULL)
		return 0;
	if ((rc = db_select(r->a, &q_token_peek, &row, "ss",
	    token_hash(r->a, tok), "verify")) != 0)
		return rc;
	return db_select(r->a, &q_token_peek, &row, "ss",
	    token_hash(r->a, tok), "email_change");
}

/* Marks a found token used.  Returns 1, 0 when it was used, or DB_*. */
static int
onetime_use(const struct onetime *o)
{
	return db_exec(&q_token_use, "s", o->hash);
}

/*
 * Counts uid's address as verified.  The first time, this starts the
 * trial ([trial] days and credits; over at once when the address had a
 * trial before, by trial_history) and queues the welcome mail; later
 * calls change nothing.  Runs inside the caller's transaction.  Returns
 * 0 or a DB_* code.
 */
int
account_verified(struct req *r, const char *uid)
{
	struct dbrows	 row;
	const char	*email, *email_lc, *ends = NULL;
	enum welcome	 kind = WELCOME_PLAIN;
	bool		 fresh;
	int		 rc;

	if ((rc = db_exec(&q_mark_verified, "s", uid)) <= 0)
		return rc;
	if ((rc = db_select(r->a, &q_trial_state, &row, "s", uid)) <= 0)
		return rc < 0 ? rc : DB_FAIL;
	email = dbv(&row, 0, 0);
	email_lc = dbv(&row, 0, 1);
	if (dbi(&row, 0, 2)) {
		/* The trial starts now, once per user and per address. */
		if ((rc = db_exec(&q_trial_history, "ss", email_lc, uid)) < 0)
			return rc;
		fresh = rc == 1;
		if (!fresh) {
			/* Recorded for this very user (by another way in)? */
			if ((rc = db_select(r->a, &q_trial_owner, &row, "ss",
			    uid, email_lc)) < 0)
				return rc;
			fresh = rc == 1 && dbi(&row, 0, 0) != 0;
		}
		/*
		 * A fresh trial's credits come by the allowance rule
		 * (credit_refresh), which grants them once: a key that spent
		 * from them before the address was verified ([trial]
		 * require_verified_email = no) keeps what is left.
		 */
		if ((rc = db_exec(&q_trial_start, "iis", (long long)fresh,
		    (long long)cfg.trial_days, uid)) < 0 ||
		    (rc = fresh ? credit_refresh(uid) :
		    db_exec(&q_trial_had, "s", uid)) < 0)
			return rc;
		if (fresh) {
			if ((rc = db_select(r->a, &q_trial_ends, &row, "s",
			    uid)) < 0)
				return rc;
			ends = dbv(&row, 0, 0);
			kind = WELCOME_TRIAL;
		} else {
			/* No "trial ended" mail for a trial never had. */
			if ((rc = trial_mail_skip(uid)) < 0)
				return rc;
			kind = WELCOME_HAD_TRIAL;
		}
		log_info("trial_start", " user=%s fresh=%d", uid, fresh);
	}
	return mail_welcome(r, uid, email, kind, ends, cfg.trial_credits);
}

/* A use of a mailed token, run by db_tx_run (maybe more than once). */
struct token_tx {
	struct req		*r;
	const char		*tok;
	const char		*hash;		/* of the token, once found */
	const char		*pw_hash;	/* a reset's new password */
	bool			 want_cookie;	/* a magic link's session */
	size_t			 headers;	/* before the first try */
	int			 outcome;	/* TOKEN_* */
	const char		*uid, *sid, *email_lc;
	bool			 totp;
	struct json_object	*tokens, *user;
};

/*
 * After a lost COMMIT answer: is the token spent, by this try (its
 * session, or its new password, is there) when it made one?  Returns 1,
 * 0, or a DB_* code.
 */
static int
token_committed(void *v)
{
	struct token_tx	*t = v;
	struct dbrows	 row;
	int		 rc;

	if (t->outcome != TOKEN_OK)
		return -1;
	if (t->sid != NULL)
		return session_exists(t->r, t->sid);
	if (t->pw_hash != NULL)
		return password_is(t->r, t->uid, t->pw_hash);
	if (t->hash == NULL)
		return -1;
	if ((rc = db_select(t->r->a, &q_token_spent, &row, "s",
	    t->hash)) < 0)
		return rc;
	return rc == 1 && dbi(&row, 0, 0) ? 1 : 0;
}

static int
email_token_body(void *v)
{
	struct token_tx	*t = v;
	struct req	*r = t->r;
	struct onetime	 o;
	int		 rc;

	t->outcome = TOKEN_INVALID;
	if ((rc = onetime_find(r, t->tok, "verify,email_change", &o)) < 0)
		return rc;
	t->hash = o.hash;
	/* A verification link counts for the address it was sent to. */
	if (rc == 0 || (strcmp(o.kind, "verify") == 0 &&
	    o.new_email_lc != NULL && strcmp(o.new_email_lc, o.email_lc) != 0))
		return DB_ABORT;
	if ((rc = onetime_use(&o)) <= 0)
		return rc < 0 ? rc : DB_ABORT;
	if (strcmp(o.kind, "email_change") == 0) {
		rc = db_exec(&q_change_email, "sss", o.new_email,
		    o.new_email_lc, o.user_id);
		if (rc == DB_DUP) {
			t->outcome = TOKEN_TAKEN;
			return DB_ABORT;
		}
		/* Links sent to the old address die with it. */
		if (rc < 0 || (rc = db_exec(&q_tokens_kill, "ss", o.user_id,
		    "verify,reset,magic")) < 0 ||
		    (rc = db_exec(&q_trial_history_moved, "s",
		    o.user_id)) < 0 ||
		    (rc = audit(r, "user.email_change", o.user_id,
		    o.email)) < 0)
			return rc;
		log_info("email_changed", " user=%s", o.user_id);
	}
	if ((rc = account_verified(r, o.user_id)) < 0)
		return rc;
	t->uid = o.user_id;
	t->outcome = TOKEN_OK;
	return 0;
}

/*
 * Uses a verification or email-change token: the address is verified
 * (an email change takes effect first).  Runs its own transaction.
 * Returns TOKEN_OK with the user's id in *uid, TOKEN_INVALID,
 * TOKEN_TAKEN (the new address belongs to another account now), or a
 * DB_* code.
 */
int
email_token_apply(struct req *r, const char *tok, const char **uid)
{
	struct token_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.tok = tok;
	rc = db_tx_run(email_token_body, token_committed, &t, DB_TX_TRIES);
	if (rc < 0 && rc != DB_ABORT)
		return rc;
	if (t.outcome == TOKEN_OK)
		*uid = t.uid;
	return t.outcome;
}

/* Answers a token's failure as the JSON API or a page does. */
void
reply_token_error(struct req *r, int rc)
{
	if (rc == TOKEN_INVALID)
		reply_error(r, 400, "invalid_token", "This link or token is "
		    "not valid: it is unknown, was used already, or has "
		    "expired.");
	else if (rc == TOKEN_TAKEN)
		reply_error(r, 409, "email_taken", "Another account uses this "
		    "email address now.");
	else if (rc == TOKEN_TOTP)
		reply_unauth(r, "totp_required", "This account needs its "
		    "second factor: send totp_code or recovery_code.");
	else if (rc == TOKEN_BADCODE)
		reply_unauth(r, "invalid_credentials", "The second factor is "
		    "wrong.");
	else if (rc == TOKEN_DISABLED)
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
	else if (rc == TOKEN_LIMITED)
		reply_throttled(r, limited_retry);
	else
		reply_db(r, rc);
}

/*
 * The second factor of a login of uid (TOTP on).  Returns 1 when the
 * request's totp_code or recovery_code is good, 0 when it is wrong, or
 * a DB_* code.
 *
 * A TOTP code is good once (its step is spent), a recovery code too;
 * while the login throttle holds none is looked at (totp.c).
 */
static int
second_factor(struct req *r, const char *uid, long *retry)
{
	return totp_second_factor(r, uid, in_str(r, "totp_code"),
	    in_str(r, "recovery_code"), retry);
}

/*
 * Inside a transaction, uses tok if it is a magic link that signs up
 * (signup_links): the guest it names is claimed for the address, or a
 * new account without a password is made for it.  The address is then
 * verified by the caller (following the link proves it).  Returns 1 with
 * *o filled for that account, 0 when tok is no such usable link (or the
 * address got an account, or the guest was claimed, meanwhile), or a
 * DB_* code.
 */
static int
signup_link_use(struct req *r, const char *tok, struct onetime *o)
{
	struct dbrows	 row;
	const char	*hash, *email, *guest;
	int		 rc;

	memset(o, 0, sizeof(*o));
	if (tok == NULL || valid_token(tok, strlen(tok)) != NULL)
		return 0;
	hash = token_hash(r->a, tok);
	if ((rc = db_select(r->a, &q_signup_link_find, &row, "s", hash)) <= 0)
		return rc;
	email = dbv(&row, 0, 0);
	o->email = email;
	o->email_lc = dbv(&row, 0, 1);
	guest = dbv(&row, 0, 2);
	if ((rc = db_exec(&q_signup_link_use, "s", hash)) <= 0)
		return rc;
	if ((rc = email_taken(r, email)) != 0)
		return rc < 0 ? rc : 0;
	if (guest != NULL) {
		/*
		 * Whoever follows the link proves the mailbox, not that they
		 * are the guest that asked for it: as in a takeover, the
		 * guest's sessions and keys stop working (its id, usage and
		 * credits stay), and the follower gets the session.
		 */
		o->user_id = guest;
		if ((rc = guest_claim(r, guest, email, "magic")) <= 0)
			return rc;
		if ((rc = account_takeover(r, guest, "guest_magic")) < 0)
			return rc;
		return 1;
	}
	o->user_id = new_id(r->a);
	if ((rc = db_exec(&q_insert_user, "sssss", o->user_id, email,
	    o->email_lc, "", NULL)) < 0 ||
	    (rc = credit_balance_open(o->user_id)) < 0 ||
	    (rc = audit(r, "user.signup", o->user_id, "magic")) < 0)
		return rc;
	log_info("signup", " user=%s via=magic", o->user_id);
	return 1;
}

/* A magic link's use, run by db_tx_run (maybe more than once). */
static int
magic_body(void *v)
{
	struct token_tx	*t = v;
	struct req	*r = t->r;
	struct onetime	 o;
	bool		 signup = false;
	int		 rc;

	r->headers_out.n = t->headers;	/* no cookie of a try before */
	json_object_put(t->tokens);
	json_object_put(t->user);
	t->tokens = t->user = NULL;
	t->sid = t->hash = NULL;
	t->outcome = TOKEN_INVALID;
	if ((rc = onetime_find(r, t->tok, "magic", &o)) < 0)
		return rc;
	if (rc == 0) {
		/* A link that signs up (or claims a guest)? */
		if ((rc = signup_link_use(r, t->tok, &o)) <= 0)
			return rc < 0 ? rc : DB_ABORT;
		signup = true;
	}
	t->uid = o.user_id;
	t->email_lc = o.email_lc;
	if (o.disabled) {
		t->outcome = TOKEN_DISABLED;
		return DB_ABORT;
	}
	/*
	 * The first proof of a never-verified mailbox: whatever was made
	 * for the account before (a squatter's password, keys, sessions,
	 * second factor) goes, and asks for nothing.
	 */
	if (!o.verified && !signup) {
		if ((rc = onetime_use(&o)) <= 0)
			return rc < 0 ? rc : DB_ABORT;
		if ((rc = account_takeover(r, o.user_id, "magic")) < 0)
			return rc;
		o.totp = false;
	}
	t->totp = o.totp;
	if (o.totp) {
		if (in_str(r, "totp_code") == NULL &&
		    in_str(r, "recovery_code") == NULL) {
			t->outcome = TOKEN_TOTP;
			return DB_ABORT;
		}
		if ((rc = second_factor(r, o.user_id, &limited_retry)) < 0)
			return rc;
		if (rc == 0 || rc == TOTP_LIMITED) {
			t->outcome = rc == 0 ? TOKEN_BADCODE : TOKEN_LIMITED;
			return DB_ABORT;
		}
	}
	if (o.verified && (rc = onetime_use(&o)) <= 0)
		return rc < 0 ? rc : DB_ABORT;
	if ((rc = account_verified(r, o.user_id)) < 0 ||
	    (rc = session_create(r, o.user_id, "magic", NULL,
	    t->want_cookie, &t->sid)) < 0 ||
	    (!t->want_cookie && ((rc = tokens_issue(r, o.user_id, t->sid,
	    &t->tokens, NULL)) < 0 || (rc = user_json(r, o.user_id,
	    &t->user)) < 0)))
		return rc;
	t->hash = o.hash;
	t->outcome = TOKEN_OK;
	return 0;
}

/*
 * Uses a magic-link token: checks the account (disabled, second factor)
 * before the token is spent, so a login that needs its code can be
 * tried again with it.  The address counts as verified.  Makes a
 * session: a cookie when want_cookie, else a token pair in *tokens and
 * the user object in *user (both owned by the caller).  Returns TOKEN_OK,
 * TOKEN_INVALID, TOKEN_DISABLED, TOKEN_TOTP, TOKEN_BADCODE, or a DB_*
 * code.
 */
int
magic_token_apply(struct req *r, const char *tok, bool want_cookie,
    struct json_object **tokens, struct json_object **user)
{
	struct token_tx	 t;
	size_t		 headers = r->headers_out.n;
	int		 rc;

	*tokens = *user = NULL;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.tok = tok;
	t.want_cookie = want_cookie;
	t.headers = headers;
	rc = db_tx_run(magic_body, token_committed, &t, DB_TX_TRIES);
	if (rc < 0 && rc != DB_ABORT)
		goto fail;
	if (t.outcome == TOKEN_BADCODE && (rc = totp_failed(r, t.uid,
	    t.email_lc)) < 0)
		goto fail;
	if (t.outcome != TOKEN_OK) {
		r->headers_out.n = headers;
		json_object_put(t.tokens);
		json_object_put(t.user);
		return t.outcome;
	}
	if (t.totp)
		login_succeeded(r, t.email_lc);
	log_info("magic_login", " user=%s session=%s", t.uid, t.sid);
	*tokens = t.tokens;
	*user = t.user;
	return TOKEN_OK;
fail:
	r->headers_out.n = headers;
	json_object_put(t.tokens);
	json_object_put(t.user);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The handlers of verification, password reset and magic links.       */
/* ------------------------------------------------------------------ */

/* The answer of the endpoints that mail to whoever may be there. */
static void
reply_accepted(struct req *r, const char *message)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "message", json_object_new_string(message));
	reply_json(r, 202, o);
}

/*
 * POST /api/v1/auth/verify-email {token}: 200 {user}, the address
 * verified and the trial started (an email-change token also changes
 * the address); 400 invalid_token; 409 email_taken; 503.
 */
void
h_verify_email(struct req *r)
{
	struct json_object	*o, *user = NULL;
	const char		*uid;
	int			 rc;

	if ((rc = email_token_apply(r, in_str(r, "token"), &uid)) !=
	    TOKEN_OK) {
		reply_token_error(r, rc);
		return;
	}
	if ((rc = user_json(r, uid, &user)) <= 0) {
		reply_db(r, rc == 0 ? DB_FAIL : rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	reply_json(r, 200, o);
}

/* A mailed link's transaction, run by db_tx_run (maybe more than once). */
struct link_tx {
	struct req	*r;
	const char	*uid;		/* resend: the account */
	const char	*email, *kind, *guest;
	int		 minutes;
};

static int
resend_body(void *v)
{
	struct link_tx	*t = v;
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*tok;
	int		 rc, allowed;

	if ((rc = db_select(r->a, &q_verify_state, &row, "s", t->uid)) < 0)
		return rc;
	if (rc == 0 || dbi(&row, 0, 2))
		return 0;
	if ((allowed = mail_allowed(r, dbv(&row, 0, 1))) <= 0)
		return allowed;
	if ((tok = onetime_token(r, "verify", t->uid, dbv(&row, 0, 0),
	    48 * 60, &rc)) == NULL)
		return rc;
	return mail_verify(r, t->uid, dbv(&row, 0, 0), tok);
}

/*
 * The core of POST /api/v1/auth/resend-verification: a new link to
 * user uid unless the address is verified already or has had its
 * [limits] mail_per_hour.  Returns 0 or a DB_* code.
 */
int
resend_verification_core(struct req *r, const char *uid)
{
	struct link_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	rc = db_tx_run(resend_body, NULL, &t, DB_TX_TRIES);
	return rc < 0 ? rc : 0;
}

/*
 * POST /api/v1/auth/resend-verification (logged in): 202; a new link
 * goes out unless the address is verified already or has had its
 * [limits] mail_per_hour; 503.
 */
void
h_resend_verification(struct req *r)
{
	int	 rc;

	if ((rc = resend_verification_core(r, r->who.user_id)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_accepted(r, "If the address still needs verifying, a new link "
	    "is on its way.");
}

static int
mail_link_body(void *v)
{
	struct link_tx	*t = v;
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*email_lc = ascii_lower(r->a, t->email);
	const char	*tok, *uid;
	int		 rc, allowed;

	if ((allowed = mail_allowed(r, email_lc)) < 0)
		return allowed;
	if ((rc = db_select(r->a, &q_user_by_email, &row, "s", email_lc)) < 0)
		return rc;
	if (rc == 1 && allowed) {
		uid = dbv(&row, 0, 0);
		if ((tok = onetime_token(r, t->kind, uid, dbv(&row, 0, 1),
		    t->minutes, &rc)) == NULL)
			return rc;
		rc = strcmp(t->kind, "reset") == 0 ?
		    mail_reset(r, uid, dbv(&row, 0, 1), tok) :
		    mail_magic(r, uid, dbv(&row, 0, 1), tok);
		if (rc < 0)
			return rc;
		log_info("mail_link", " kind=%s user=%s", t->kind, uid);
	} else if (rc == 1)
		log_info("mail_link_throttled", " kind=%s user=%s", t->kind,
		    dbv(&row, 0, 0));
	else if (allowed && strcmp(t->kind, "magic") == 0 &&
	    (t->guest != NULL || cfg.magic_link_signup)) {
		/*
		 * No account has this address: the link makes one (or
		 * claims the guest asking) when it is followed.
		 */
		tok = new_token(r->a, "", 32);
		if ((rc = db_exec(&q_signup_link, "ssssi", token_hash(r->a,
		    tok), t->email, email_lc, t->guest,
		    (long long)t->minutes)) < 0 ||
		    (rc = mail_magic(r, t->guest, t->email, tok)) < 0)
			return rc;
		log_info("mail_link", " kind=signup guest=%s",
		    t->guest != NULL ? t->guest : "-");
	}
	return 0;
}

/*
 * The core of the endpoints that mail a link of kind ("reset" or
 * "magic", valid for minutes) to the account of email, if there is one
 * and the recipient is under [limits] mail_per_hour.  Returns 0 either
 * way, so the caller's answer says nothing about which addresses have
 * accounts, or a DB_* code.
 */
int
mail_link_core(struct req *r, const char *email, const char *kind,
    int minutes, const char *guest)
{
	struct link_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.email = email;
	t.kind = kind;
	t.minutes = minutes;
	t.guest = guest;
	rc = db_tx_run(mail_link_body, NULL, &t, DB_TX_TRIES);
	return rc < 0 ? rc : 0;
}

/*
 * Mails a link of kind to the account of the request's email (see
 * mail_link_core).  Answers 202 either way (503 when the database is
 * down), so the answer says nothing about which addresses have accounts.
 */
static void
mail_link_request(struct req *r, const char *kind, int minutes,
    const char *message)
{
	int	 rc;

	const char	*guest = NULL;

	/* A guest asking for a link to a new address claims itself. */
	if (strcmp(kind, "magic") == 0 &&
	    (rc = guest_of_request(r, &guest)) < 0) {
		reply_db(r, rc);
		return;
	}
	if ((rc = mail_link_core(r, in_str(r, "email"), kind, minutes,
	    guest)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_accepted(r, message);
}

/* POST /api/v1/auth/password/forgot {email}: 202 always; 422; 503. */
void
h_password_forgot(struct req *r)
{
	mail_link_request(r, "reset", 60, "If an account uses this address, "
	    "a link to reset its password is on its way.");
}

/* POST /api/v1/auth/magic-link {email}: 202 always; 422; 503. */
void
h_magic_link(struct req *r)
{
	mail_link_request(r, "magic", 15, "If an account uses this address, "
	    "a sign-in link is on its way.");
}

/* A password reset, run by db_tx_run (maybe more than once). */
static int
reset_body(void *v)
{
	struct token_tx	*t = v;
	struct req	*r = t->r;
	struct onetime	 o;
	const char	*keys;
	int		 rc;

	t->outcome = TOKEN_INVALID;
	if ((rc = onetime_find(r, t->tok, "reset", &o)) <= 0 ||
	    (rc = onetime_use(&o)) <= 0)
		return rc < 0 ? rc : DB_ABORT;
	if (!o.verified) {
		/* A claim: the squatter's everything goes first. */
		if ((rc = account_takeover(r, o.user_id, "reset")) < 0)
			return rc;
		keys = "";
	} else if ((rc = account_links_spend(r, o.user_id)) < 0 ||
	    (rc = sessions_revoke_all(o.user_id, NULL,
	    "password_reset")) < 0 ||
	    (keys = account_keys_text(r, o.user_id, &rc)) == NULL)
		return rc;
	if ((rc = password_set(o.user_id, t->pw_hash)) < 0 ||
	    (rc = account_verified(r, o.user_id)) < 0 ||
	    (rc = mail_security_notice(r, o.user_id, o.email,
	    arena_printf(r->a, "The password of your {product} account "
	    "was reset, and every session of it was signed out.%s",
	    keys))) < 0)
		return rc;
	log_info("password_reset", " user=%s claim=%d", o.user_id,
	    !o.verified);
	t->uid = o.user_id;
	t->hash = o.hash;
	t->outcome = TOKEN_OK;
	return 0;
}

/*
 * The core of POST /api/v1/auth/password/reset: the reset token tok
 * used to set password pw, the other mailed links spent, every session
 * revoked, the address verified, a notice mailed.  Returns 0,
 * TOKEN_INVALID for a token unknown, used or expired, or a DB_* code.
 */
int
password_reset_core(struct req *r, const char *tok, const char *pw)
{
	struct dbrows	 row;
	struct token_tx	 t;
	int		 rc;

	/* An unknown, used or expired token costs no hashing. */
	if (tok == NULL || valid_token(tok, strlen(tok)) != NULL)
		return TOKEN_INVALID;
	if ((rc = db_select(r->a, &q_token_peek, &row, "ss",
	    token_hash(r->a, tok), "reset")) < 0)
		return rc;
	if (rc == 0)
		return TOKEN_INVALID;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.tok = tok;
	if ((t.pw_hash = password_hash(r->a, pw)) == NULL)
		return password_busy() ? TG_BUSY : DB_FAIL;
	rc = db_tx_run(reset_body, token_committed, &t, DB_TX_TRIES);
	if (rc < 0 && rc != DB_ABORT)
		return rc;
	return t.outcome == TOKEN_OK ? 0 : t.outcome;
}

/*
 * POST /api/v1/auth/password/reset {token, password}: 204, the new
 * password set, every session revoked, the address verified; 400
 * invalid_token; 422 for a bad password; 503.
 */
void
h_password_reset(struct req *r)
{
	int	 rc;

	if ((rc = password_reset_core(r, in_str(r, "token"),
	    in_str(r, "password"))) != 0) {
		reply_token_error(r, rc);
		return;
	}
	reply_empty(r, 204);
}

/*
 * POST /api/v1/auth/magic-link/verify {token, totp_code?,
 * recovery_code?}: 200 {user, tokens}; 400 invalid_token; 401
 * totp_required or invalid_credentials (second factor); 403
 * account_disabled; 503.
 */
void
h_magic_verify(struct req *r)
{
	struct json_object	*o, *tokens = NULL, *user = NULL;
	int			 rc;

	if ((rc = magic_token_apply(r, in_str(r, "token"), false, &tokens,
	    &user)) != TOKEN_OK) {
		reply_token_error(r, rc);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	json_object_object_add(o, "tokens", tokens);
	reply_json(r, 200, o);
}
