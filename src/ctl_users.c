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

#include "tollgate.h"

static struct sql q_find = SQL(
    "SELECT id, role, disabled_at IS NOT NULL FROM users WHERE email_lc = ?");
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
 * account is promoted instead, its password left alone.
 */
int
ctl_admin_create(int argc, char *argv[])
{
	struct arena	*a = arena_new();
	struct dbrows	 row;
	struct req	 r;
	const char	*email, *err, *pw, *hash, *uid;
	bool		 generated = false;
	int		 rc, status = 1;

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
	if (rc == 1) {
		ctl_req(&r, a);
		if ((rc = db_begin()) < 0 ||
		    (rc = db_exec(&q_promote, "s", dbv(&row, 0, 0))) < 0 ||
		    (rc > 0 && (rc = audit_obj(&r, "user.role", dbv(&row, 0, 0),
		    NULL)) < 0) || (rc = db_commit()) < 0) {
			db_rollback();
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
	if ((rc = db_begin()) < 0 ||
	    (rc = db_exec(&q_insert_admin, "sssss", uid, email,
	    ascii_lower(a, email), "Admin", hash)) < 0 ||
	    (rc = db_exec(&q_insert_balance, "s", uid)) < 0 ||
	    (rc = audit_obj(&r, "admin.create", uid, NULL)) < 0 ||
	    (rc = db_commit()) < 0) {
		db_rollback();
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
	struct dbrows	 row, admins;
	struct req	 r;
	int		 rc, changed = 0, status = 1;

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
	/* The admin rows are locked, as the admin API locks them. */
	ctl_req(&r, a);
	if ((rc = db_begin()) < 0 ||
	    (rc = db_select(a, &q_live_admins, &admins, "s",
	    dbv(&row, 0, 0))) < 0) {
		db_rollback();
		status = db_fail("counting admins", rc);
		goto out;
	}
	if (strcmp(dbv(&row, 0, 1), "admin") == 0 && !dbi(&row, 0, 2) &&
	    admins.n == 0) {
		db_rollback();
		fprintf(stderr, "tollgatectl: %s is the last admin and "
		    "cannot be disabled\n", argv[0]);
		goto out;
	}
	if ((rc = db_exec(&q_disable, "s", dbv(&row, 0, 0))) < 0)
		goto txfail;
	changed = rc;
	if ((changed > 0 && (rc = audit_obj(&r, "user.disable",
	    dbv(&row, 0, 0), NULL)) < 0) || (rc = db_commit()) < 0)
		goto txfail;
	rc = changed;
	printf("%s %s\n", argv[0], rc == 0 ? "was already disabled" :
	    "is disabled");
	status = 0;
	goto out;
txfail:
	db_rollback();
	status = db_fail("disabling the user", rc);
out:
	db_close();
	arena_free(a);
	return status;
}
