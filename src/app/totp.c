/*
 * The second factor: TOTP (RFC 6238: HMAC-SHA1, six digits, 30-second
 * steps) through liboath, with ten single-use recovery codes.
 *
 * Enrolment stores a new secret (sealed with the crypto key) that is not
 * yet in force; a correct code confirms it, turns the second factor on
 * and hands out the recovery codes once (stored as keyed hashes).  A
 * code is accepted for the current step and one step either way, and
 * each step only once: the step of an accepted code is written to
 * last_step by an UPDATE that requires the old value to be smaller, so
 * of two uses of the same code (or an older one) only the first wins.
 * Wrong codes count toward the login throttle like wrong passwords.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liboath/oath.h>
#include <qrencode.h>
#include <sodium.h>

#include "app/app.h"

#define TOTP_STEP	30
#define TOTP_DIGITS	6
#define TOTP_WINDOW	1	/* steps of clock drift accepted either way */
#define SECRET_BYTES	20	/* 160 bits, as RFC 4226 recommends */
#define RECOVERY_COUNT	10
#define RECOVERY_LEN	10	/* characters, shown as two groups of five */

/* Recovery codes: lower-case letters and digits that are not mistaken. */
static const char recovery_alphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";

static struct sql q_totp_row = SQL(
    "SELECT secret_enc, enabled_at IS NOT NULL, last_step, "
    "UNIX_TIMESTAMP() FROM totp_secrets WHERE user_id = ?");
/*
 * A new enrolment replaces a pending one but never an active one: then
 * every value stays as it is and no row changes (0 affected rows).
 */
static struct sql q_totp_enrol = SQL(
    "INSERT INTO totp_secrets (user_id, secret_enc) VALUES (?, ?) "
    "ON DUPLICATE KEY UPDATE "
    "secret_enc = IF(enabled_at IS NULL, VALUES(secret_enc), secret_enc), "
    "last_step = IF(enabled_at IS NULL, NULL, last_step), "
    "created_at = IF(enabled_at IS NULL, UTC_TIMESTAMP(6), created_at)");
/* Confirms the very secret the code was checked against. */
static struct sql q_totp_enable = SQL(
    "UPDATE totp_secrets SET enabled_at = UTC_TIMESTAMP(6), last_step = ? "
    "WHERE user_id = ? AND enabled_at IS NULL AND secret_enc = ?");
static struct sql q_totp_step = SQL(
    "UPDATE totp_secrets SET last_step = ? WHERE user_id = ? AND "
    "enabled_at IS NOT NULL AND (last_step IS NULL OR last_step < ?)");
static struct sql q_recovery_add = SQL(
    "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)");
static struct sql q_recovery_is = SQL(
    "SELECT 1 FROM recovery_codes WHERE user_id = ? AND code_hash = ?");
static struct sql q_recovery_use = SQL(
    "UPDATE recovery_codes SET used_at = UTC_TIMESTAMP(6) "
    "WHERE user_id = ? AND code_hash = ? AND used_at IS NULL");
static struct sql q_user_secrets = SQL(
    "SELECT email, email_lc, password_hash FROM users WHERE id = ?");

/* A user's TOTP row, unsealed. */
struct totp_row {
	const unsigned char *sealed;	/* as stored */
	size_t		 sealed_len;
	const char	*secret;	/* raw bytes */
	size_t		 secret_len;
	bool		 enabled;
	long long	 now;		/* the database's clock, unix seconds */
};

/* liboath wants oath_init once per process. */
static int
oath_ready(void)
{
	static bool	 done;

	if (!done) {
		if (oath_init() != OATH_OK) {
			log_err("oath_init", "%s", " msg=\"liboath failed\"");
			return -1;
		}
		done = true;
	}
	return 0;
}

/* Whether uid's second factor is on (enrolled and confirmed). */
int
totp_is_on(struct req *r, const char *uid)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_totp_row, &row, "s", uid)) <= 0)
		return rc;
	return dbi(&row, 0, 1) != 0;
}

/*
 * Loads uid's TOTP row.  Returns 1 with *t filled (in the arena; secret
 * NULL when it cannot be opened: the crypto key changed or the row was
 * tampered with), 0 when there is none, or a DB_* code.
 */
static int
totp_load(struct req *r, const char *uid, struct totp_row *t)
{
	struct dbrows	 row;
	int		 rc;

	memset(t, 0, sizeof(*t));
	if ((rc = db_select(r->a, &q_totp_row, &row, "s", uid)) <= 0)
		return rc;
	t->sealed = (const unsigned char *)dbv(&row, 0, 0);
	t->sealed_len = row.len[0];
	t->enabled = dbi(&row, 0, 1) != 0;
	t->now = dbi(&row, 0, 3);
	/* One that cannot be opened matches no code (recovery codes do). */
	if ((t->secret = unseal(r->a, t->sealed, t->sealed_len,
	    &t->secret_len)) == NULL) {
		log_err("totp_unseal", " user=%s", uid);
		t->secret_len = 0;
	}
	return 1;
}

/* liboath's comparison callback: constant time, 0 when equal. */
static int
otp_equal(void *want, const char *test)
{
	return ct_streq(want, test) ? 0 : 1;
}

/*
 * Checks code (six digits; spaces are ignored) against secret at unix
 * time now, one step of drift either way.  Returns true with the step
 * the code belongs to in *step.
 */
static bool
code_matches(struct arena *a, const char *secret, size_t len, long long now,
    const char *code, long long *step)
{
	char		*c;
	size_t		 i, n = 0;
	int		 pos = 0, rc;
	uint64_t	 counter = 0;

	if (secret == NULL || code == NULL || oath_ready() < 0)
		return false;
	c = arena_alloc(a, strlen(code) + 1);
	for (i = 0; code[i] != '\0'; i++) {
		if (code[i] == ' ' || code[i] == '-')
			continue;
		if (code[i] < '0' || code[i] > '9')
			return false;
		c[n++] = code[i];
	}
	c[n] = '\0';
	if (n != TOTP_DIGITS)
		return false;
	rc = oath_totp_validate3_callback(secret, len, (time_t)now, TOTP_STEP,
	    0, TOTP_DIGITS, TOTP_WINDOW, &pos, &counter, otp_equal, c);
	if (rc < 0)
		return false;
	*step = (long long)counter;
	return true;
}

/*
 * Normalises a recovery code as people type it: case, spaces and hyphens
 * do not matter.  Returns the RECOVERY_LEN characters (in the arena), or
 * NULL when it cannot be one.
 */
const char *
recovery_code_norm(struct arena *a, const char *s)
{
	char	*out;
	size_t	 n = 0;

	if (s == NULL || strlen(s) > 64)
		return NULL;
	out = arena_alloc(a, RECOVERY_LEN + 1);
	for (; *s != '\0'; s++) {
		char c = *s;

		if (c == ' ' || c == '-')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (strchr(recovery_alphabet, c) == NULL || n == RECOVERY_LEN)
			return NULL;
		out[n++] = c;
	}
	out[n] = '\0';
	return n == RECOVERY_LEN ? out : NULL;
}

/* The stored hash of one of uid's recovery codes (normalised). */
static const char *
recovery_hash(struct arena *a, const char *uid, const char *norm)
{
	return token_hash(a, arena_printf(a, "recovery|%s|%s", uid, norm));
}

/*
 * Uses one of uid's recovery codes.  Returns 1 when it was good and
 * unused (it is used now), 0 otherwise, or a DB_* code.
 */
static int
recovery_use(struct req *r, const char *uid, const char *code)
{
	const char	*norm = recovery_code_norm(r->a, code);
	int		 rc;

	if (norm == NULL)
		return 0;
	hash_rekey(r, HASHED_RECOVERY, arena_printf(r->a, "recovery|%s|%s",
	    uid, norm));
	if ((rc = db_exec(&q_recovery_use, "ss", uid,
	    recovery_hash(r->a, uid, norm))) < 0)
		return rc;
	if (rc == 1)
		log_info("recovery_code_used", " user=%s", uid);
	return rc == 1;
}

/*
 * Checks a TOTP code of uid's active second factor and spends its step.
 * Returns 1 when it is good and its step was not used before, 0 when it
 * is wrong, replayed or TOTP is off, or a DB_* code.
 */
static int
totp_use(struct req *r, const char *uid, const char *code)
{
	struct totp_row	 t;
	long long	 step;
	int		 rc;

	if ((rc = totp_load(r, uid, &t)) <= 0)
		return rc;
	if (!t.enabled || !code_matches(r->a, t.secret, t.secret_len, t.now,
	    code, &step))
		return 0;
	if ((rc = db_exec(&q_totp_step, "isi", step, uid, step)) < 0)
		return rc;
	if (rc == 0)
		log_info("totp_replay", " user=%s step=%lld", uid, step);
	return rc == 1;
}

/*
 * The second factor of a sign-in of uid, whose TOTP is on: totp_code
 * when given, else recovery_code.  While the login throttle holds for
 * the user's email from this address, or the account has had [limits]
 * login_failures wrong codes in 15 minutes from any addresses, no code
 * is even looked at.  Returns 1 when the factor is good (and now
 * spent), 0 when it is wrong, missing or throttled here (the caller
 * counts it with totp_failed, after any rollback), TOTP_LIMITED when the
 * account's second-factor step is throttled (429; the seconds left in
 * *retry), or a DB_* code.  Callers inside a transaction get the
 * spending undone by their rollback.
 */
int
totp_second_factor(struct req *r, const char *uid, const char *totp_code,
    const char *recovery_code, long *retry)
{
	struct dbrows	 row;
	int		 rc;

	*retry = 0;
	if ((rc = db_select(r->a, &q_user_secrets, &row, "s", uid)) <= 0)
		return rc;
	if ((rc = account_throttled(r, "2fa", dbv(&row, 0, 1),
	    cfg.login_failures, retry)) != 0)
		return rc < 0 ? rc : TOTP_LIMITED;
	if ((rc = login_throttled(r, dbv(&row, 0, 1), retry)) != 0)
		return rc < 0 ? rc : 0;
	if (totp_code != NULL)
		return totp_use(r, uid, totp_code);
	if (recovery_code != NULL)
		return recovery_use(r, uid, recovery_code);
	return 0;
}

/*
 * Counts a wrong second factor of uid (email_lc its address): toward the
 * login throttle of this address, and toward the account's own count
 * over all addresses.  Call it outside any transaction that may roll
 * back.  Returns 0 or a DB_* code.
 */
int
totp_failed(struct req *r, const char *uid, const char *email_lc)
{
	int	 rc;

	if ((rc = login_failed(r, email_lc)) < 0 ||
	    (rc = account_counted(r, "2fa", email_lc)) < 0)
		return rc;
	log_info("totp_refused", " user=%s", uid);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Enrolment, confirmation and removal (contract section 3).           */
/* ------------------------------------------------------------------ */

/*
 * The otpauth:// URI of secret (base32) for an account's email; the
 * issuer, which authenticator apps show, is [server] name.
 */
char *
totp_uri(struct arena *a, const char *email, const char *secret32)
{
	const char	*issuer = uri_escape(a, cfg.product_name, "");

	return arena_printf(a, "otpauth://totp/%s:%s?secret=%s"
	    "&issuer=%s&algorithm=SHA1&digits=%d&period=%d", issuer,
	    uri_escape(a, email, "@"), secret32, issuer, TOTP_DIGITS,
	    TOTP_STEP);
}

/* base32 (RFC 4648, no padding) of n bytes, in the arena; NULL on error. */
static char *
base32(struct arena *a, const void *raw, size_t n)
{
	char	*out = NULL, *copy;
	size_t	 len = 0;

	if (oath_ready() < 0 || oath_base32_encode(raw, n, &out, &len) !=
	    OATH_OK)
		return NULL;
	while (len > 0 && out[len - 1] == '=')
		len--;
	copy = arena_strndup(a, out, len);
	sodium_memzero(out, len);
	free(out);
	return copy;
}

/*
 * Starts (or restarts) uid's enrolment with a new secret.  Returns 1 with
 * the secret in base32 in *secret32, 0 when TOTP is on already, or a
 * DB_* code.
 */
int
totp_enrol(struct req *r, const char *uid, const char **secret32)
{
	unsigned char	 raw[SECRET_BYTES], *sealed;
	size_t		 sealed_len;
	int		 rc;

	randombytes_buf(raw, sizeof(raw));
	*secret32 = base32(r->a, raw, sizeof(raw));
	sealed = seal(r->a, raw, sizeof(raw), &sealed_len);
	sodium_memzero(raw, sizeof(raw));
	if (*secret32 == NULL)
		return DB_FAIL;
	if ((rc = db_exec(&q_totp_enrol, "sb", uid, sealed, sealed_len)) < 0)
		return rc;
	if (rc == 0)
		return 0;
	log_info("totp_enrol", " user=%s", uid);
	return 1;
}

/* Makes one recovery code as shown: "xxxxx-xxxxx", in the arena. */
static char *
recovery_new(struct arena *a)
{
	char	*c = arena_alloc(a, RECOVERY_LEN + 2);
	size_t	 i, n = 0;

	for (i = 0; i < RECOVERY_LEN; i++) {
		if (i == RECOVERY_LEN / 2)
			c[n++] = '-';
		c[n++] = recovery_alphabet[randombytes_uniform(
		    sizeof(recovery_alphabet) - 1)];
	}
	c[n] = '\0';
	return c;
}

/* A confirmation, run by db_tx_run (maybe more than once). */
struct confirm_tx {
	struct req		*r;
	const char		*uid, *email, *code;
	int			 outcome;
	const char		*first;		/* this try's first code */
	struct json_object	*codes;
};

static int
confirm_body(void *v)
{
	struct confirm_tx	*t = v;
	struct req		*r = t->r;
	struct totp_row		 row;
	long long		 step;
	const char		*c;
	int			 rc, i;

	json_object_put(t->codes);
	t->codes = NULL;
	t->first = NULL;
	if ((rc = totp_load(r, t->uid, &row)) < 0)
		return rc;
	t->outcome = rc == 0 ? TOTP_NOT_PENDING : row.enabled ? TOTP_ACTIVE :
	    TOTP_WRONG;
	if (rc == 0 || row.enabled || !code_matches(r->a, row.secret,
	    row.secret_len, row.now, t->code, &step))
		return DB_ABORT;
	/* Enrolled again meanwhile: that secret is another. */
	if ((rc = db_exec(&q_totp_enable, "isb", step, t->uid, row.sealed,
	    row.sealed_len)) <= 0)
		return rc < 0 ? rc : DB_ABORT;
	if ((rc = second_factor_drop(t->uid, true)) < 0)
		return rc;
	t->codes = json_object_new_array();
	for (i = 0; i < RECOVERY_COUNT; i++) {
		c = recovery_new(r->a);
		if (t->first == NULL)
			t->first = recovery_hash(r->a, t->uid,
			    recovery_code_norm(r->a, c));
		if ((rc = db_exec(&q_recovery_add, "ss", t->uid,
		    recovery_hash(r->a, t->uid, recovery_code_norm(r->a,
		    c)))) < 0)
			return rc;
		json_object_array_add(t->codes, json_object_new_string(c));
	}
	if ((rc = audit(r, "totp.enable", t->uid, NULL)) < 0 ||
	    (rc = mail_security_notice(r, t->uid, t->email, "Two-factor "
	    "authentication (TOTP) was turned on for your {product} "
	    "account: logging in now also asks for a code from your "
	    "authenticator app.")) < 0)
		return rc;
	t->outcome = TOTP_OK;
	return 0;
}

/*
 * After a lost COMMIT answer: are this try's recovery codes there (else
 * the codes shown once would be lost while the factor is on)?
 */
static int
confirm_committed(void *v)
{
	struct confirm_tx	*t = v;
	struct dbrows		 row;

	if (t->outcome != TOTP_OK || t->first == NULL)
		return -1;
	return db_select(t->r->a, &q_recovery_is, &row, "ss", t->uid,
	    t->first);
}

/*
 * Confirms uid's pending enrolment with a code from the app: the second
 * factor is on, with ten new recovery codes (returned in *codes, a JSON
 * array owned by the caller; only their hashes are kept).  Returns
 * TOTP_OK, TOTP_WRONG (the code), TOTP_NOT_PENDING, TOTP_ACTIVE, or a
 * DB_* code.  Runs its own transaction.
 */
int
totp_confirm(struct req *r, const char *uid, const char *email,
    const char *code, struct json_object **codes)
{
	struct confirm_tx	 t;
	int			 rc;

	*codes = NULL;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	t.email = email;
	t.code = code;
	rc = db_tx_run(confirm_body, confirm_committed, &t, DB_TX_TRIES);
	if (rc < 0 && rc != DB_ABORT) {
		json_object_put(t.codes);
		return rc;
	}
	if (t.outcome != TOTP_OK) {
		json_object_put(t.codes);
		return t.outcome;
	}
	log_info("totp_enabled", " user=%s", uid);
	*codes = t.codes;
	return TOTP_OK;
}

/*
 * Turns uid's second factor off (also a pending enrolment): the secret
 * and the recovery codes go, and with notify a security notice is
 * mailed.  Runs inside the caller's transaction.  Returns 0 or a DB_*
 * code.
 */
int
totp_remove(struct req *r, const char *uid, const char *email, bool notify)
{
	int	 rc, removed;

	if ((removed = second_factor_drop(uid, false)) < 0)
		return removed;
	if (removed > 0 && notify && (rc = mail_security_notice(r, uid, email,
	    "Two-factor "
	    "authentication (TOTP) was turned off for your {product} account: "
	    "logging in no longer asks for a code.")) < 0)
		return rc;
	return 0;
}

/*
 * Checks the caller's own code while signed in (turning TOTP off): a
 * TOTP code, or one of the recovery codes.  Returns 1, 0 or a DB_* code.
 */
static int
own_code(struct req *r, const char *code)
{
	bool	 digits = true;
	size_t	 i, n = 0;

	for (i = 0; code[i] != '\0'; i++) {
		if (code[i] == ' ')
			continue;
		n++;
		if (code[i] < '0' || code[i] > '9')
			digits = false;
	}
	if (digits && n == TOTP_DIGITS)
		return totp_use(r, r->who.user_id, code);
	return recovery_use(r, r->who.user_id, code);
}

/*
 * The login throttle for the caller's own email: returns 1 when a try
 * is allowed, else answers (429, 503) and returns 0.
 */
static int
own_throttle(struct req *r, const char *email_lc)
{
	long	 retry = 0;
	int	 rc;

	if ((rc = login_throttled(r, email_lc, &retry)) == 0)
		return 1;
	if (rc == 1)
		reply_throttled(r, retry);
	else
		reply_db(r, rc);
	return 0;
}

/*
 * POST /api/v1/me/totp (a login): 200 {secret, otpauth_url}, a new
 * enrolment that is not in force until confirmed; 409 totp_enabled when
 * the second factor is on already; 503.
 */
void
h_totp_start(struct req *r)
{
	struct json_object	*o;
	const char		*secret;
	long			 retry;
	int			 rc;

	if ((rc = reauth_check(r, in_str(r, "password"), &retry)) != 0) {
		reply_reauth(r, rc, retry);
		return;
	}
	if ((rc = totp_enrol(r, r->who.user_id, &secret)) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == 0) {
		reply_error(r, 409, "totp_enabled", "Two-factor "
		    "authentication is on already; turn it off first.");
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "secret", json_object_new_string(secret));
	json_object_object_add(o, "otpauth_url", json_object_new_string(
	    totp_uri(r->a, r->who.email, secret)));
	reply_json(r, 200, o);
}

/*
 * POST /api/v1/me/totp/confirm {code} (a login): 200 {recovery_codes},
 * the second factor on; 409 totp_not_enrolled (no enrolment started) or
 * totp_enabled (on already); 422 code (wrong: counts toward the login
 * throttle); 429 while the throttle holds; 503.
 */
void
h_totp_confirm(struct req *r)
{
	struct json_object	*o, *codes = NULL;
	const char		*email_lc = ascii_lower(r->a, r->who.email);
	int			 rc;

	if (!own_throttle(r, email_lc))
		return;
	rc = totp_confirm(r, r->who.user_id, r->who.email, in_str(r, "code"),
	    &codes);
	switch (rc) {
	case TOTP_OK:
		o = json_object_new_object();
		json_object_object_add(o, "recovery_codes", codes);
		reply_json(r, 200, o);
		return;
	case TOTP_WRONG:
		if ((rc = login_failed(r, email_lc)) < 0)
			break;
		reply_invalid1(r, "code", "is wrong");
		return;
	case TOTP_NOT_PENDING:
		reply_error(r, 409, "totp_not_enrolled", "Start the enrolment "
		    "first (POST /api/v1/me/totp).");
		return;
	case TOTP_ACTIVE:
		reply_error(r, 409, "totp_enabled", "Two-factor "
		    "authentication is on already.");
		return;
	}
	reply_db(r, rc);
}

/* A second factor's removal, run by db_tx_run (maybe more than once). */
struct disable_tx {
	struct req	*r;
	bool		 enabled;
};

static int
disable_body(void *v)
{
	struct disable_tx	*t = v;
	struct req		*r = t->r;
	int			 rc;

	if ((rc = totp_remove(r, r->who.user_id, r->who.email,
	    t->enabled)) < 0 ||
	    (t->enabled && (rc = audit(r, "totp.disable", r->who.user_id,
	    NULL)) < 0))
		return rc;
	return 0;
}

/*
 * Turns the caller's second factor off, given their password and a code
 * (a current TOTP code or a recovery code); without an active second
 * factor only the password counts and a pending enrolment goes.  Returns
 * TOTP_OK; TOTP_WRONG with the wrong field's name in *field (counted as
 * a failed login); TOTP_THROTTLED with the seconds to wait in *retry;
 * or a DB_* code.
 */
int
totp_disable(struct req *r, const char *password, const char *code,
    const char **field, long *retry)
{
	struct disable_tx dt;
	struct totp_row	 t;
	const char	*email_lc = ascii_lower(r->a, r->who.email);
	int		 rc;

	/* The one current-password check, with the login throttle. */
	*field = "password";
	switch ((rc = me_password_check(r, r->who.user_id, r->who.email,
	    password, retry))) {
	case 0:
		break;
	case ME_THROTTLED:
		return TOTP_THROTTLED;
	case ME_WRONG:
		log_info("totp_disable_refused", " user=%s field=password",
		    r->who.user_id);
		return TOTP_WRONG;
	default:
		return rc;
	}
	if ((rc = totp_load(r, r->who.user_id, &t)) < 0)
		return rc;
	*field = "code";
	if (rc == 1 && t.enabled) {
		if (code == NULL || (rc = own_code(r, code)) == 0)
			goto wrong;
		if (rc < 0)
			return rc;
	}
	dt.r = r;
	dt.enabled = t.enabled;
	if ((rc = db_tx_run(disable_body, NULL, &dt, DB_TX_TRIES)) < 0)
		return rc;
	log_info("totp_disabled", " user=%s", r->who.user_id);
	return TOTP_OK;
wrong:
	if ((rc = login_failed(r, email_lc)) < 0)
		return rc;
	log_info("totp_disable_refused", " user=%s field=%s", r->who.user_id,
	    *field);
	return TOTP_WRONG;
}

/*
 * DELETE /api/v1/me/totp {password, code} (a login): 204, the second
 * factor off and a security notice mailed (code: a current TOTP code or
 * a recovery code); 422 password or code (wrong: counts toward the
 * login throttle); 429 while the throttle holds; 503.  Without an active
 * second factor it only drops a pending enrolment.
 */
void
h_totp_delete(struct req *r)
{
	const char	*field = NULL;
	long		 retry = 0;
	int		 rc;

	rc = totp_disable(r, in_str(r, "password"), in_str(r, "code"), &field,
	    &retry);
	if (rc == TOTP_OK)
		reply_empty(r, 204);
	else if (rc == TOTP_WRONG)
		reply_invalid1(r, field, "is wrong");
	else if (rc == TOTP_THROTTLED)
		reply_throttled(r, retry);
	else
		reply_db(r, rc);
}

/*
 * The secret of uid's pending enrolment, in base32 (in the arena), to
 * show it again.  Returns 1, 0 when there is no pending enrolment, or a
 * DB_* code.
 */
int
totp_pending_secret(struct req *r, const char *uid, const char **secret32)
{
	struct totp_row	 t;
	int		 rc;

	if ((rc = totp_load(r, uid, &t)) <= 0)
		return rc;
	if (t.enabled || t.secret == NULL)
		return 0;
	if ((*secret32 = base32(r->a, t.secret, t.secret_len)) == NULL)
		return DB_FAIL;
	return 1;
}

/* ------------------------------------------------------------------ */
/* The QR code of the otpauth:// URI, for the profile page.            */
/* ------------------------------------------------------------------ */

/*
 * Draws text as a QR code in inline SVG (dark modules as one path, a
 * quiet zone of four modules; attributes only, no style, for the page's
 * Content-Security-Policy).  Returns the markup in the arena, or NULL
 * when libqrencode fails.
 */
char *
qr_svg(struct arena *a, const char *text)
{
	QRcode		*q;
	struct buf	 b;
	int		 x, y, run, w, n;

	if ((q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1)) ==
	    NULL)
		return NULL;
	w = q->width;
	n = w + 8;
	buf_init(&b, a);
	buf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "class=\"qr\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
	    "shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code "
	    "for your authenticator app\"><rect width=\"%d\" height=\"%d\" "
	    "fill=\"#fff\"/><path fill=\"#000\" d=\"", n, n, n * 4, n * 4, n,
	    n);
	for (y = 0; y < w; y++)
		for (x = 0; x < w; x += run) {
			run = 1;
			if (!(q->data[y * w + x] & 1))
				continue;
			while (x + run < w && (q->data[y * w + x + run] & 1))
				run++;
			buf_printf(&b, "M%d %dh%dv1h-%dz", x + 4, y + 4, run,
			    run);
		}
	buf_puts(&b, "\"/></svg>");
	QRcode_free(q);
	return b.p;
}
