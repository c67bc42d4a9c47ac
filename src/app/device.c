/*
 * Sign-in for CLIs and editor extensions: the OAuth 2.0 Device
 * Authorization Grant (RFC 8628).  The client asks for a device code and
 * a short user code, shows the user code and /device to its user, and
 * polls for its tokens; the user, signed in in a browser (so past the
 * second factor, when it is on), approves or denies it on /device.  The
 * approved client gets a session of its own (kind 'device', named after
 * the client), listed and revocable like any other.
 *
 * The device code is a secret stored as a keyed hash; the user code is
 * eight letters from an alphabet without vowels or look-alikes, stored
 * without its hyphen.  Polling faster than the interval answers
 * slow_down and adds 5 seconds to the interval; the tokens are handed
 * out once, after which the device code is spent.
 */
#include <string.h>

#include <sodium.h>

#include "app/app.h"

#define DEVICE_TTL	600	/* seconds a device code lives */
#define DEVICE_INTERVAL	5	/* seconds between polls, at first */
#define DEVICE_SLOWER	5	/* seconds added by each slow_down */
#define USER_CODE_LEN	8

/* RFC 8628 section 6.1: no vowels, nothing that reads as a digit. */
static const char user_alphabet[] = "BCDFGHJKLMNPQRSTVWXZ";

static struct sql q_device_purge = SQL(
    "DELETE FROM device_codes WHERE expires_at < UTC_TIMESTAMP(6) - "
    "INTERVAL 1 DAY LIMIT 100");
static struct sql q_device_insert = SQL(
    "INSERT INTO device_codes (device_code_hash, user_code, client_name, "
    "address, interval_s, expires_at) VALUES (?, ?, ?, ?, ?, "
    "UTC_TIMESTAMP(6) + INTERVAL ? SECOND)");
/* The poll: state, whether it came too soon, the user's state. */
static struct sql q_device_poll = SQL(
    "SELECT d.status, d.user_id, d.client_name, "
    "d.expires_at <= UTC_TIMESTAMP(6), "
    "d.last_poll_at IS NOT NULL AND d.last_poll_at > UTC_TIMESTAMP(6) - "
    "INTERVAL d.interval_s SECOND, "
    "u.disabled_at IS NOT NULL "
    "FROM device_codes d LEFT JOIN users u ON u.id = d.user_id "
    "WHERE d.device_code_hash = ? FOR UPDATE");
static struct sql q_device_polled = SQL(
    "UPDATE device_codes SET last_poll_at = UTC_TIMESTAMP(6), "
    "interval_s = interval_s + ? WHERE device_code_hash = ?");
static struct sql q_device_spend = SQL(
    "UPDATE device_codes SET status = 'used', session_id = ?, "
    "last_poll_at = UTC_TIMESTAMP(6) WHERE device_code_hash = ? AND "
    "status = 'approved'");
static struct sql q_device_session = SQL(
    "SELECT session_id, status FROM device_codes WHERE device_code_hash = ?");
static struct sql q_device_by_user_code = SQL(
    "SELECT client_name, status = 'pending' AND "
    "expires_at > UTC_TIMESTAMP(6), address, "
    "DATE_FORMAT(created_at, '%Y-%m-%d %H:%i UTC') "
    "FROM device_codes WHERE user_code = ? FOR UPDATE");
static struct sql q_device_decide = SQL(
    "UPDATE device_codes SET status = ?, user_id = ?, "
    "decided_at = UTC_TIMESTAMP(6) WHERE user_code = ? AND "
    "status = 'pending' AND expires_at > UTC_TIMESTAMP(6)");

/*
 * Normalises a user code as people type it: case, hyphens and spaces do
 * not matter.  Returns the eight letters (in the arena), or NULL when s
 * cannot be a user code.
 */
const char *
user_code_norm(struct arena *a, const char *s)
{
	char	*out;
	size_t	 n = 0;

	if (s == NULL || strlen(s) > 64)
		return NULL;
	out = arena_alloc(a, USER_CODE_LEN + 1);
	for (; *s != '\0'; s++) {
		char c = *s;

		if (c == '-' || c == ' ')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (strchr(user_alphabet, c) == NULL || n == USER_CODE_LEN)
			return NULL;
		out[n++] = c;
	}
	out[n] = '\0';
	return n == USER_CODE_LEN ? out : NULL;
}

/* A normalised user code as shown: "WDJB-MJHT", in the arena. */
const char *
user_code_show(struct arena *a, const char *norm)
{
	return arena_printf(a, "%.4s-%.4s", norm, norm + 4);
}

/* A new random user code (normalised), in the arena. */
static char *
user_code_new(struct arena *a)
{
	char	*c = arena_alloc(a, USER_CODE_LEN + 1);
	size_t	 i;

	for (i = 0; i < USER_CODE_LEN; i++)
		c[i] = user_alphabet[randombytes_uniform(
		    sizeof(user_alphabet) - 1)];
	c[USER_CODE_LEN] = '\0';
	return c;
}

/*
 * POST /api/v1/auth/device {client_name}: 200 {device_code, user_code,
 * verification_uri, verification_uri_complete, expires_in, interval};
 * 422 for a bad client_name; 503.
 */
void
h_device_start(struct req *r)
{
	struct json_object	*o;
	const char		*device, *user, *shown;
	int			 rc = DB_FAIL, attempt;

	db_exec(&q_device_purge, "");
	for (attempt = 0; attempt < 5; attempt++) {
		device = new_token(r->a, "tgd_", 32);
		user = user_code_new(r->a);
		rc = db_exec(&q_device_insert, "ssssii",
		    token_hash(r->a, device), user, in_str(r, "client_name"),
		    r->remote_addr, (long long)DEVICE_INTERVAL,
		    (long long)DEVICE_TTL);
		if (rc == DB_DUP || rc == DB_RETRY)
			continue;	/* a user code taken: draw again */
		break;
	}
	if (rc < 0) {
		reply_db(r, rc == DB_DUP ? DB_FAIL : rc);
		return;
	}
	shown = user_code_show(r->a, user);
	log_info("device_start", " user_code=%s", shown);
	o = json_object_new_object();
	json_object_object_add(o, "device_code", json_object_new_string(device));
	json_object_object_add(o, "user_code", json_object_new_string(shown));
	json_object_object_add(o, "verification_uri", json_object_new_string(
	    arena_printf(r->a, "%s/device", cfg.base_url)));
	json_object_object_add(o, "verification_uri_complete",
	    json_object_new_string(arena_printf(r->a, "%s/device?user_code=%s",
	    cfg.base_url, shown)));
	json_object_object_add(o, "expires_in", json_object_new_int(DEVICE_TTL));
	json_object_object_add(o, "interval",
	    json_object_new_int(DEVICE_INTERVAL));
	reply_json(r, 200, o);
}

/* The RFC's error answers, in the contract's error body. */
static void
device_error(struct req *r, const char *code)
{
	const char	*msg;

	if (strcmp(code, "authorization_pending") == 0)
		msg = "The user has not approved this sign-in yet; keep polling.";
	else if (strcmp(code, "slow_down") == 0)
		msg = "Polling too fast: wait 5 seconds longer between polls.";
	else if (strcmp(code, "access_denied") == 0)
		msg = "The user denied this sign-in.";
	else
		msg = "This device code is unknown, used or expired; start "
		    "again.";
	reply_error(r, 400, code, msg);
}

/*
 * POST /api/v1/auth/device/token {device_code}: 200 {tokens, user} once
 * approved (once only: the code is spent); 400 authorization_pending,
 * slow_down (polled sooner than the interval, which grows by 5 s),
 * access_denied, expired_token (also unknown or used); 403
 * account_disabled; 503.
 */
/* What a poll of the token endpoint came to. */
enum poll_outcome {
	POLL_TOKENS,		/* approved: a session and its tokens */
	POLL_EXPIRED,		/* unknown, used or expired */
	POLL_DENIED,
	POLL_PENDING,
	POLL_SLOW_DOWN,
	POLL_DISABLED
};

/* A poll, run by db_tx_run (maybe more than once). */
struct poll_tx {
	struct req		*r;
	const char		*hash;		/* of the device code */
	enum poll_outcome	 outcome;
	const char		*uid, *sid;
	struct json_object	*tokens, *user;
};

static int
poll_body(void *v)
{
	struct poll_tx	*t = v;
	struct req	*r = t->r;
	struct dbrows	 row;
	const char	*status;
	bool		 fast;
	int		 rc;

	json_object_put(t->tokens);
	json_object_put(t->user);
	t->tokens = t->user = NULL;
	t->sid = NULL;
	if ((rc = db_select(r->a, &q_device_poll, &row, "s", t->hash)) < 0)
		return rc;
	status = rc == 1 ? dbv(&row, 0, 0) : "used";
	if (strcmp(status, "used") == 0 || dbi(&row, 0, 3)) {
		t->outcome = POLL_EXPIRED;
		return DB_ABORT;
	}
	if (strcmp(status, "denied") == 0) {
		t->outcome = POLL_DENIED;
		return DB_ABORT;
	}
	if (strcmp(status, "pending") == 0) {
		fast = dbi(&row, 0, 4) != 0;
		t->outcome = fast ? POLL_SLOW_DOWN : POLL_PENDING;
		return db_exec(&q_device_polled, "is", fast ?
		    (long long)DEVICE_SLOWER : 0LL, t->hash);
	}
	t->uid = dbv(&row, 0, 1);
	if (dbi(&row, 0, 5)) {
		t->outcome = POLL_DISABLED;
		return DB_ABORT;
	}
	t->outcome = POLL_TOKENS;
	if ((rc = session_create(r, t->uid, "device", dbv(&row, 0, 2),
	    false, &t->sid)) < 0 ||
	    (rc = db_exec(&q_device_spend, "ss", t->sid, t->hash)) < 0 ||
	    (rc = tokens_issue(r, t->uid, t->sid, &t->tokens, NULL)) < 0 ||
	    (rc = user_json(r, t->uid, &t->user)) < 0)
		return rc;
	return 0;
}

/*
 * After a lost COMMIT answer: the code was spent by this try when it
 * names this try's session (1); when it is still approved, it was not
 * (0).  A pending poll's answer is not worth a look (-1: 503).
 */
static int
poll_committed(void *v)
{
	struct poll_tx	*t = v;
	struct dbrows	 row;
	int		 rc;

	if (t->outcome != POLL_TOKENS)
		return -1;
	if ((rc = db_select(t->r->a, &q_device_session, &row, "s",
	    t->hash)) < 0)
		return rc;
	if (rc == 0)
		return -1;
	if (dbv(&row, 0, 0) == NULL)
		return strcmp(dbv(&row, 0, 1), "approved") == 0 ? 0 : -1;
	return strcmp(dbv(&row, 0, 0), t->sid) == 0 ? 1 : -1;
}

void
h_device_token(struct req *r)
{
	struct poll_tx		 t;
	struct json_object	*o;
	int			 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.hash = token_hash(r->a, in_str(r, "device_code"));
	rc = db_tx_run(poll_body, poll_committed, &t, DB_TX_TRIES);
	if (rc < 0 && rc != DB_ABORT) {
		json_object_put(t.tokens);
		json_object_put(t.user);
		reply_db(r, rc);
		return;
	}
	switch (t.outcome) {
	case POLL_TOKENS:
		log_info("device_login", " user=%s session=%s", t.uid, t.sid);
		o = json_object_new_object();
		json_object_object_add(o, "tokens", t.tokens);
		json_object_object_add(o, "user", t.user);
		reply_json(r, 200, o);
		return;
	case POLL_EXPIRED:
		device_error(r, "expired_token");
		break;
	case POLL_DENIED:
		device_error(r, "access_denied");
		break;
	case POLL_PENDING:
		device_error(r, "authorization_pending");
		break;
	case POLL_SLOW_DOWN:
		device_error(r, "slow_down");
		break;
	case POLL_DISABLED:
		reply_error(r, 403, "account_disabled", "This account has "
		    "been disabled.");
		break;
	}
	json_object_put(t.tokens);
	json_object_put(t.user);
}

/* ------------------------------------------------------------------ */
/* The /device page.                                                   */
/* ------------------------------------------------------------------ */

/* True when a person is signed in in this browser (or with a token). */
static bool
device_signed_in(struct req *r)
{
	return r->who.kind == WHO_COOKIE || r->who.kind == WHO_JWT;
}

/* Sends a visitor who is not signed in to /login, then back here. */
static void
device_to_login(struct req *r, const char *raw_code)
{
	const char	*here = "/device";

	if (raw_code != NULL && *raw_code != '\0' && strlen(raw_code) <= 64)
		here = arena_printf(r->a, "/device?user_code=%s",
		    uri_escape(r->a, raw_code, NULL));
	reply_redirect(r, 303, arena_printf(r->a, "/login?next=%s",
	    uri_escape(r->a, here, "/")));
}

/* The form to type a user code in. */
static void
code_form(struct buf *b)
{
	buf_puts(b, "<form method=\"get\" action=\"/device\">\n<p><label>Code "
	    "shown by the application <input name=\"user_code\" "
	    "autocomplete=\"off\" autocapitalize=\"characters\" "
	    "spellcheck=\"false\" placeholder=\"XXXX-XXXX\" required>"
	    "</label></p>\n<p><button type=\"submit\">Continue</button></p>\n"
	    "</form>\n");
}

/* The page for a code that is unknown, used or expired. */
static void
bad_code_page(struct req *r)
{
	struct buf	 b;

	buf_init(&b, r->a);
	buf_puts(&b, "<p class=\"error\">This code is not valid: it is "
	    "unknown, was used already, or has expired. Start the sign-in in "
	    "the application again, then enter the new code.</p>\n");
	code_form(&b);
	reply_html(r, 404, "Sign in a device", b.p);
}

/*
 * GET /device ?user_code=: 200 with the client's name and the approve
 * and deny buttons (or, without a code, a form to type one); 404 page
 * for an unknown, used or expired code; 303 to /login when nobody is
 * signed in.
 */
void
h_page_device(struct req *r)
{
	struct dbrows	 row;
	struct buf	 b;
	const char	*raw = in_str(r, "user_code"), *code;
	int		 rc;

	if (!device_signed_in(r)) {
		device_to_login(r, raw);
		return;
	}
	buf_init(&b, r->a);
	if (raw == NULL || *raw == '\0') {
		buf_puts(&b, "<p>Enter the code that the application (your "
		    "command-line tool or editor) shows you.</p>\n");
		code_form(&b);
		reply_html(r, 200, "Sign in a device", b.p);
		return;
	}
	if ((code = user_code_norm(r->a, raw)) == NULL) {
		bad_code_page(r);
		return;
	}
	if ((rc = db_select(r->a, &q_device_by_user_code, &row, "s",
	    code)) < 0) {
		reply_db(r, rc);
		return;
	}
	if (rc == 0 || !dbi(&row, 0, 1)) {
		bad_code_page(r);
		return;
	}
	buf_puts(&b, "<p><strong>");
	buf_html(&b, dbv(&row, 0, 0));
	buf_puts(&b, "</strong> wants to sign in to your account <strong>");
	buf_html(&b, r->who.email);
	buf_puts(&b, "</strong>.</p>\n<p>Code <code>");
	buf_html(&b, user_code_show(r->a, code));
	buf_puts(&b, "</code>, asked for ");
	buf_html(&b, dbv(&row, 0, 3));
	if (dbv(&row, 0, 2) != NULL) {
		buf_puts(&b, " from ");
		buf_html(&b, dbv(&row, 0, 2));
	}
	buf_puts(&b, ".</p>\n<p>Approve only if you started this sign-in "
	    "yourself and the application shows this same code. It gets a "
	    "session of its own, which you can revoke on your profile.</p>\n");
	csrf_form(r, &b, "/device");
	form_hidden(&b, "user_code", code);
	buf_puts(&b, "<p><button type=\"submit\" name=\"action\" "
	    "value=\"approve\">Approve</button>\n<button type=\"submit\" "
	    "name=\"action\" value=\"deny\" class=\"secondary\">Deny</button>"
	    "</p>\n</form>\n");
	reply_html(r, 200, "Sign in a device", b.p);
}

/*
 * POST /device (form: csrf, user_code, action approve or deny): 200 page
 * saying what was done; 403 page for a bad CSRF field; 404 page for an
 * unknown, used or expired code; 422 page for another action; 303 to
 * /login when nobody is signed in; 503.
 */
/* A decision on a device code, run by db_tx_run (maybe more than once). */
struct decide_tx {
	struct req	*r;
	const char	*code;		/* the user code, normalised */
	bool		 approve;
	const char	*client;	/* the device's name; NULL: no such code */
};

static int
decide_body(void *v)
{
	struct decide_tx	*t = v;
	struct req		*r = t->r;
	struct dbrows		 row;
	int			 rc;

	t->client = NULL;
	if ((rc = db_select(r->a, &q_device_by_user_code, &row, "s",
	    t->code)) < 0)
		return rc;
	if (rc == 0 || !dbi(&row, 0, 1))
		return DB_ABORT;
	if ((rc = db_exec(&q_device_decide, "sss", t->approve ? "approved" :
	    "denied", r->who.user_id, t->code)) < 0 ||
	    (rc = audit(r, t->approve ? "device.approve" : "device.deny",
	    r->who.user_id, dbv(&row, 0, 0))) < 0)
		return rc;
	t->client = dbv(&row, 0, 0);
	return 0;
}

void
h_page_device_post(struct req *r)
{
	struct decide_tx	 t;
	struct buf		 b;
	const char		*action = in_str(r, "action");
	int			 rc;

	if (!device_signed_in(r)) {
		device_to_login(r, in_str(r, "user_code"));
		return;
	}
	if (!csrf_ok(r)) {
		reply_error(r, 403, "forbidden", "This form has expired or did "
		    "not come from this site. Go back, reload the page and try "
		    "again.");
		return;
	}
	if (action == NULL || (strcmp(action, "approve") != 0 &&
	    strcmp(action, "deny") != 0)) {
		reply_invalid1(r, "action", "must be approve or deny");
		return;
	}
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.approve = strcmp(action, "approve") == 0;
	if ((t.code = user_code_norm(r->a, in_str(r, "user_code"))) == NULL) {
		bad_code_page(r);
		return;
	}
	if ((rc = db_tx_run(decide_body, NULL, &t, DB_TX_TRIES)) == DB_ABORT) {
		bad_code_page(r);
		return;
	}
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	log_info("device_decided", " user=%s action=%s", r->who.user_id,
	    action);
	buf_init(&b, r->a);
	buf_puts(&b, "<p><strong>");
	buf_html(&b, t.client);
	buf_puts(&b, t.approve ? "</strong> is signed in to your account. You "
	    "can close this window and go back to it.</p>\n<p>Its session "
	    "is listed on <a href=\"/profile\">your profile</a>, where you "
	    "can revoke it.</p>\n" :
	    "</strong> was denied: it is not signed in.</p>\n");
	reply_html(r, 200, t.approve ? "Device approved" : "Device denied",
	    b.p);
}
