/*
 * tollgatectl's commands about people: "admin create EMAIL" makes the
 * first admin (or promotes an existing account), "user show EMAIL" and
 * "user disable EMAIL" look up and disable accounts.  They use the same
 * prepared statements and password hashing as the service.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "ctl/ctl.h"

static struct sql q_find = SQL(
    "SELECT id, role, disabled_at IS NOT NULL, "
    "email_verified_at IS NOT NULL FROM users WHERE email_lc = ?");
static struct sql q_set_password = SQL(
    "UPDATE users SET password_hash = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_insert_admin = SQL(
    "INSERT INTO users (id, email, email_lc, name, password_hash, role, "
    "email_verified_at) VALUES (?, ?, ?, ?, ?, 'admin', UTC_TIMESTAMP(6))");
static struct sql q_insert_balance = SQL(
    "INSERT INTO credit_balances (user_id) VALUES (?)");
static struct sql q_promote = SQL(
    "UPDATE users SET role = 'admin', updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_show = SQL(
    "SELECT " USER_COLUMNS ", u.disabled_at IS NOT NULL, "
    "(SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id), "
    "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND "
    "s.revoked_at IS NULL) FROM users u WHERE u.email_lc = ?");
static struct sql q_disable = SQL(
    "UPDATE users SET disabled_at = UTC_TIMESTAMP(6), updated_at = "
    "UTC_TIMESTAMP(6) WHERE id = ? AND disabled_at IS NULL");
static struct sql q_live_admins = SQL(
    "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL "
    "AND id <> ? ORDER BY id FOR UPDATE");

/*
 * A stand-in request for audit(): the actor is the operator at the
 * machine ("tollgatectl", no user id), the address "local".
 */
static void
ctl_req(struct req *r, struct arena *a)
{
	memset(r, 0, sizeof(*r));
	r->a = a;
	r->remote_addr = "local";
	r->who.email = "tollgatectl";
}

/* A transaction of these commands, run by db_tx_run. */
struct ctl_tx {
	struct req	*r;
	const char	*uid, *email, *hash;
	bool		 admin_row;	/* disable: the target is a live admin */
	int		 changed;
};

/* Promotes t->uid, audited when it changed.  Returns 0 or a DB_* code. */
static int
promote_body(void *v)
{
	struct ctl_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_promote, "s", t->uid)) < 0)
		return rc;
	if (rc > 0 && (rc = audit_obj(t->r, "user.role", t->uid, NULL)) < 0)
		return rc;
	return 0;
}

/*
 * Takes the never-verified account t->uid over for the operator (contract
 * sections 3 and 10): whatever its first holder made (password, tokens,
 * keys, sessions, second factor, open links) goes, the operator's
 * password is set, the address counts as verified, and then it is an
 * admin.  Returns 0 or a DB_* code.
 */
static int
claim_body(void *v)
{
	struct ctl_tx	*t = v;
	int		 rc;

	if ((rc = account_takeover(t->r, t->uid, "admin_create")) < 0 ||
	    (rc = db_exec(&q_set_password, "ss", t->hash, t->uid)) < 0 ||
	    (rc = account_verified(t->r, t->uid)) < 0)
		return rc;
	return promote_body(t);
}

/* Creates the admin t->uid.  Returns 0 or a DB_* code. */
static int
create_body(void *v)
{
	struct ctl_tx	*t = v;
	struct arena	*a = t->r->a;
	int		 rc;

	if ((rc = db_exec(&q_insert_admin, "sssss", t->uid, t->email,
	    ascii_lower(a, t->email), "Admin", t->hash)) < 0 ||
	    (rc = db_exec(&q_insert_balance, "s", t->uid)) < 0 ||
	    (rc = audit_obj(t->r, "admin.create", t->uid, NULL)) < 0)
		return rc;
	return 0;
}

/*
 * Disables t->uid unless it is the last live admin (the admin rows are
 * locked, as the admin API locks them).  Returns 0 (t->changed says
 * whether it changed), 1 for the last admin, or a DB_* code.
 */
static int
disable_body(void *v)
{
	struct ctl_tx	*t = v;
	struct dbrows	 admins;
	int		 rc;

	t->changed = 0;
	if ((rc = db_select(t->r->a, &q_live_admins, &admins, "s",
	    t->uid)) < 0)
		return rc;
	if (t->admin_row && admins.n == 0)
		return 1;
	if ((rc = db_exec(&q_disable, "s", t->uid)) < 0)
		return rc;
	t->changed = rc;

	if (rc > 0 && (rc = audit_obj(t->r, "user.disable", t->uid,
	    NULL)) < 0)
		return rc;
	return 0;
}

/* Reads a password from standard input when it is not a terminal. */
static char *
read_password(struct arena *a)
{
	char	 line[512];
	size_t	 n;

	if (isatty(STDIN_FILENO) || fgets(line, sizeof(line), stdin) == NULL)
		return NULL;
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0)
		return NULL;
	return arena_strdup(a, line);
}

/* Prints a database failure and returns the exit status 1. */
static int
db_fail(const char *what, int rc)
{
	fprintf(stderr, "tollgatectl: %s: %s\n", what, rc == DB_DOWN ?
	    "the database is unreachable" : "database error (see above)");
	return 1;
}

/*
 * admin create EMAIL: makes an admin with the password from standard
 * input, or a generated one printed as the last line.  An existing
 * account whose email is verified is promoted instead, its password left
 * alone; a never-verified one is taken over first (claim_body), so a
 * squatter's password, tokens and keys never gain admin rights.
 */
int
ctl_admin_create(int argc, char *argv[])
{
	struct arena	*a = arena_new();
	struct dbrows	 row;
	struct req	 r;
	struct ctl_tx	 t;
	const char	*email, *err, *pw, *hash, *uid;
	bool		 generated = false;
	int		 rc, status = 1;

	memset(&t, 0, sizeof(t));
	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl admin create EMAIL "
		    "(password on standard input, or one is generated)\n");
		arena_free(a);
		return 2;
	}
	email = argv[0];
	if ((err = valid_email(email, strlen(email))) != NULL) {
		fprintf(stderr, "tollgatectl: the email %s\n", err);
		goto out;
	}
	if ((rc = db_select(a, &q_find, &row, "s", ascii_lower(a, email))) < 0) {
		status = db_fail("looking up the email", rc);
		goto out;
	}
	if (rc == 1 && !dbi(&row, 0, 3)) {
		if ((pw = read_password(a)) == NULL) {
			pw = new_token(a, "", 15);
			generated = true;
		}
		if ((err = valid_password(pw, strlen(pw))) != NULL) {
			fprintf(stderr, "tollgatectl: the password %s\n", err);
			goto out;
		}
		if ((hash = password_hash(a, pw)) == NULL) {
			fprintf(stderr, "tollgatectl: cannot hash the "
			    "password\n");
			goto out;
		}
		ctl_req(&r, a);
		t.r = &r;
		t.uid = dbv(&row, 0, 0);
		t.hash = hash;
		if ((rc = db_tx_run(claim_body, NULL, &t, DB_TX_TRIES)) < 0) {
			status = db_fail("taking the account over", rc);
			goto out;
		}
		printf("%s existed with an email never verified: taken over "
		    "(its password, sessions and keys are gone), verified, "
		    "and an admin now (id %s)\n", email, t.uid);
		if (generated)
			printf("password: %s\n", pw);
		status = 0;
		goto out;
	}
	if (rc == 1) {
		ctl_req(&r, a);
		t.r = &r;
		t.uid = dbv(&row, 0, 0);
		if ((rc = db_tx_run(promote_body, NULL, &t,
		    DB_TX_TRIES)) < 0) {
			status = db_fail("promoting the account", rc);
			goto out;
		}
		printf("%s exists; it is an admin now (password unchanged)\n",
		    email);
		status = 0;
		goto out;
	}
	if ((pw = read_password(a)) == NULL) {
		pw = new_token(a, "", 15);
		generated = true;
	}
	if ((err = valid_password(pw, strlen(pw))) != NULL) {
		fprintf(stderr, "tollgatectl: the password %s\n", err);
		goto out;
	}
	if ((hash = password_hash(a, pw)) == NULL) {
		fprintf(stderr, "tollgatectl: cannot hash the password\n");
		goto out;
	}
	uid = new_id(a);
	ctl_req(&r, a);
	t.r = &r;
	t.uid = uid;
	t.email = email;
	t.hash = hash;
	if ((rc = db_tx_run(create_body, NULL, &t, DB_TX_TRIES)) < 0) {
		status = db_fail("creating the admin", rc);
		goto out;
	}
	printf("admin %s created (id %s)\n", email, uid);
	if (generated)
		printf("password: %s\n", pw);
	status = 0;
out:
	db_close();
	arena_free(a);
	return status;
}

/* user show EMAIL: prints the account as JSON. */
int
ctl_user_show(int argc, char *argv[])
{
	struct arena		*a = arena_new();
	struct dbrows		 row;
	struct json_object	*u;
	int			 rc, status = 1;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl user show EMAIL\n");
		arena_free(a);
		return 2;
	}
	if ((rc = db_select(a, &q_show, &row, "s", ascii_lower(a, argv[0]))) < 0)
		status = db_fail("looking up the user", rc);
	else if (rc == 0)
		fprintf(stderr, "tollgatectl: no account has the email %s\n",
		    argv[0]);
	else {
		u = user_json_row(&row, 0, 0);
		json_object_object_add(u, "disabled",
		    json_object_new_boolean(dbi(&row, 0, 7) != 0));
		json_object_object_add(u, "api_keys",
		    json_object_new_int64(dbi(&row, 0, 8)));
		json_object_object_add(u, "sessions",
		    json_object_new_int64(dbi(&row, 0, 9)));
		printf("%s\n", json_object_to_json_string_ext(u,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(u);
		status = 0;
	}
	db_close();
	arena_free(a);
	return status;
}

/*
 * user disable EMAIL: disables the account (its tokens, keys and
 * sessions stop at once); the last admin cannot be disabled.
 */
int
ctl_user_disable(int argc, char *argv[])
{
	struct arena	*a = arena_new();
	struct dbrows	 row;
	struct req	 r;
	struct ctl_tx	 t;
	int		 rc, status = 1;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl user disable EMAIL\n");
		arena_free(a);
		return 2;
	}
	if ((rc = db_select(a, &q_find, &row, "s", ascii_lower(a, argv[0]))) < 0) {
		status = db_fail("looking up the user", rc);
		goto out;
	}
	if (rc == 0) {
		fprintf(stderr, "tollgatectl: no account has the email %s\n",
		    argv[0]);
		goto out;
	}
	ctl_req(&r, a);
	memset(&t, 0, sizeof(t));
	t.r = &r;
	t.uid = dbv(&row, 0, 0);
	t.admin_row = strcmp(dbv(&row, 0, 1), "admin") == 0 &&
	    !dbi(&row, 0, 2);
	if ((rc = db_tx_run(disable_body, NULL, &t, DB_TX_TRIES)) < 0) {
		status = db_fail("disabling the user", rc);
		goto out;
	}
	if (rc == 1) {
		fprintf(stderr, "tollgatectl: %s is the last admin and "
		    "cannot be disabled\n", argv[0]);
		goto out;
	}
	rc = t.changed;
	printf("%s %s\n", argv[0], rc == 0 ? "was already disabled" :
	    "is disabled");
	status = 0;
out:
	db_close();
	arena_free(a);
	return status;
}
