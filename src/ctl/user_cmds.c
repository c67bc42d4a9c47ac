/*
 * tollgatectl's commands about people: "admin create EMAIL" makes the
 * first admin (or promotes an existing account), "user show EMAIL" and
 * "user disable EMAIL" look up and disable accounts, through the app's
 * operator functions (app/operator.c) and password hashing.
 */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

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
	struct op_user	 u;
	struct req	 r;
	const char	*email, *err, *pw, *hash;
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
	if ((rc = op_user_find(a, email, &u)) < 0) {
		status = ctl_db_fail("looking up the email", rc);
		goto out;
	}
	ctl_local_req(&r, a);
	if (rc == 1 && u.verified) {
		if ((rc = op_user_act(&r, OP_PROMOTE, &u, NULL, NULL)) < 0) {
			status = ctl_db_fail("promoting the account", rc);
			goto out;
		}
		printf("%s exists; it is an admin now (password unchanged)\n",
		    email);
		status = 0;
		goto out;
	}
	if ((pw = ctl_read_line(a)) == NULL) {
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
	if (rc == 1) {
		if ((rc = op_user_act(&r, OP_CLAIM, &u, NULL, hash)) < 0) {
			status = ctl_db_fail("taking the account over", rc);
			goto out;
		}
		printf("%s existed with an email never verified: taken over "
		    "(its password, sessions and keys are gone), verified, "
		    "and an admin now (id %s)\n", email, u.id);
	} else {
		u.id = new_id(a);
		if ((rc = op_user_act(&r, OP_CREATE_ADMIN, &u, email,
		    hash)) < 0) {
			status = ctl_db_fail("creating the admin", rc);
			goto out;
		}
		printf("admin %s created (id %s)\n", email, u.id);
	}
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
	if ((rc = op_user_show(a, argv[0], &row)) < 0)
		status = ctl_db_fail("looking up the user", rc);
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
	struct op_user	 u;
	struct req	 r;
	int		 rc, status = 1;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl user disable EMAIL\n");
		arena_free(a);
		return 2;
	}
	if ((rc = op_user_find(a, argv[0], &u)) < 0) {
		status = ctl_db_fail("looking up the user", rc);
		goto out;
	}
	if (rc == 0) {
		fprintf(stderr, "tollgatectl: no account has the email %s\n",
		    argv[0]);
		goto out;
	}
	ctl_local_req(&r, a);
	if ((rc = op_user_act(&r, OP_DISABLE, &u, NULL, NULL)) < 0) {
		status = ctl_db_fail("disabling the user", rc);
		goto out;
	}
	if (rc == OP_LAST_ADMIN) {
		fprintf(stderr, "tollgatectl: %s is the last admin and "
		    "cannot be disabled\n", argv[0]);
		goto out;
	}
	printf("%s %s\n", argv[0], rc == 0 ? "was already disabled" :
	    "is disabled");
	status = 0;
out:
	db_close();
	arena_free(a);
	return status;
}
