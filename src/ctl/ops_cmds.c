/*
 * tollgatectl's day-to-day commands for an operator: accounts (user
 * enable, verify, set-password, list) and the mail outbox (outbox list,
 * retry).  Changes are audited with the operator as the actor; lists
 * print in the one output style of app/ctlout.c (--json for scripts).
 * Each returns the exit status: 0 done, 1 failed or nothing matched, 2
 * bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

/*
 * Runs action what on the account of email in one transaction.  Returns
 * the exit status; *changed says whether anything changed.
 */
static int
on_user(const char *email, enum op_action what, const char *hash,
    const char *doing, int *changed)
{
	struct arena	*a = arena_new();
	struct op_user	 u;
	struct req	 r;
	int		 rc, status = 1;

	if ((rc = op_user_find(a, email, &u)) < 0) {
		status = ctl_db_fail("looking up the user", rc);
		goto out;
	}
	if (rc == 0) {
		fprintf(stderr, "tollgatectl: no account has the email %s\n",
		    email);
		goto out;
	}
	status = 0;
	if (what == OP_VERIFY && u.verified) {
		*changed = 0;	/* Nothing to do, nothing to audit. */
		goto out;
	}
	ctl_local_req(&r, a);
	if ((rc = op_user_act(&r, what, &u, NULL, hash)) < 0) {
		status = ctl_db_fail(doing, rc);
		goto out;
	}
	*changed = rc;
out:
	db_close();
	arena_free(a);
	return status;
}

/*
 * user enable EMAIL: lifts a disable; the account's keys work again, its
 * sessions from before the disable do not (the user signs in anew).
 */
int
ctl_user_enable(int argc, char *argv[])
{
	int	 changed = 0, status;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl user enable EMAIL\n");
		return 2;
	}
	if ((status = on_user(argv[0], OP_ENABLE, NULL, "enabling the user",
	    &changed)) == 0)
		printf("%s %s\n", argv[0], changed ? "is enabled" :
		    "was not disabled");
	return status;
}

/*
 * user verify EMAIL: marks the address verified as its link would (the
 * trial starts, the welcome mail is queued).  Only for an address you
 * know belongs to the person holding the account.
 */
int
ctl_user_verify(int argc, char *argv[])
{
	int	 changed = 0, status;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl user verify EMAIL\n");
		return 2;
	}
	if ((status = on_user(argv[0], OP_VERIFY, NULL, "verifying the "
	    "email", &changed)) == 0)
		printf("%s %s\n", argv[0], changed ? "is verified" :
		    "was verified already");
	return status;
}

/*
 * user set-password EMAIL: sets the password read from standard input;
 * every session of the account is signed out and every open one-time
 * link spent, as a reset does.
 */
int
ctl_user_set_password(int argc, char *argv[])
{
	struct arena	*a;
	const char	*pw, *err, *hash;
	int		 changed = 0, status;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl user set-password EMAIL "
		    "(the password on standard input)\n");
		return 2;
	}
	a = arena_new();
	if ((pw = ctl_read_line(a)) == NULL) {
		fprintf(stderr, "tollgatectl: give the password on standard "
		    "input, e.g. printf '%%s\\n' \"$pw\" | tollgatectl user "
		    "set-password EMAIL\n");
		arena_free(a);
		return 2;
	}
	if ((err = valid_password(pw, strlen(pw))) != NULL) {
		fprintf(stderr, "tollgatectl: the password %s\n", err);
		arena_free(a);
		return 1;
	}
	if ((hash = password_hash(a, pw)) == NULL) {
		fprintf(stderr, "tollgatectl: cannot hash the password\n");
		arena_free(a);
		return 1;
	}
	status = on_user(argv[0], OP_SET_PASSWORD, hash, "setting the password",
	    &changed);
	if (status == 0)
		printf("%s has a new password; its sessions are signed out\n",
		    argv[0]);
	arena_free(a);
	return status;
}

/*
 * user list [--json] [--disabled] [--limit N] [QUERY]: accounts, oldest
 * first; QUERY matches the email or the name (SQL LIKE, % added).
 */
int
ctl_user_list(int argc, char *argv[])
{
	static const char *const cols[] = { "id", "email", "name", "role",
	    "plan", "verified", "disabled", "created_at" };
	struct arena	*a;
	struct dbrows	 rows;
	const char	*q = "";
	long long	 limit = 1000;
	bool		 json = ctl_take_json(&argc, argv), disabled = false;
	int		 i, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--disabled") == 0)
			disabled = true;
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
		    (limit = atoll(argv[i + 1])) > 0)
			i++;
		else if (argv[i][0] != '-' && *q == '\0')
			q = argv[i];
		else {
			fprintf(stderr, "usage: tollgatectl user list [--json] "
			    "[--disabled] [--limit N] [QUERY]\n");
			return 2;
		}
	}
	a = arena_new();
	rc = op_user_list(a, q, disabled, limit, &rows);
	if (rc < 0) {
		arena_free(a);
		return ctl_db_fail("user list", rc);
	}
	ctl_print_rows(&rows, cols, sizeof(cols) / sizeof(cols[0]), NULL, json);
	db_close();
	arena_free(a);
	return 0;
}

/*
 * outbox list [--json] [--failed|--pending|--sent] [--limit N]: the
 * mail not yet sent (or of the state named), oldest first.
 */
int
ctl_outbox_list(int argc, char *argv[])
{
	static const char *const cols[] = { "id", "kind", "to", "status",
	    "attempts", "created_at", "next_attempt_at", "last_error" };
	struct arena	*a;
	struct dbrows	 rows;
	const char	*state = "";
	long long	 limit = 1000;
	bool		 json = ctl_take_json(&argc, argv);
	int		 i, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--failed") == 0)
			state = "failed";
		else if (strcmp(argv[i], "--pending") == 0)
			state = "pending";
		else if (strcmp(argv[i], "--sent") == 0)
			state = "sent";
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
		    (limit = atoll(argv[i + 1])) > 0)
			i++;
		else {
			fprintf(stderr, "usage: tollgatectl outbox list "
			    "[--json] [--failed|--pending|--sent] "
			    "[--limit N]\n");
			return 2;
		}
	}
	a = arena_new();
	if ((rc = op_outbox_list(a, state, limit, &rows)) < 0) {
		arena_free(a);
		return ctl_db_fail("outbox list", rc);
	}
	ctl_print_rows(&rows, cols, sizeof(cols) / sizeof(cols[0]),
	    "----n---", json);
	db_close();
	arena_free(a);
	return 0;
}

/*
 * outbox retry ID...|--all-failed: sends failed mail again (attempts
 * start over at once).  Exits 1 when an ID named is not a failed mail.
 */
int
ctl_outbox_retry(int argc, char *argv[])
{
	struct arena	*a;
	struct req	 r;
	int		 i, rc, n = 0, status = 0;

	if (argc < 1 || (strcmp(argv[0], "--all-failed") == 0 && argc != 1)) {
		fprintf(stderr, "usage: tollgatectl outbox retry "
		    "ID...|--all-failed\n");
		return 2;
	}
	a = arena_new();
	ctl_local_req(&r, a);
	if (strcmp(argv[0], "--all-failed") == 0) {
		if ((n = op_outbox_retry(&r, NULL)) < 0) {
			arena_free(a);
			return ctl_db_fail("outbox retry", n);
		}
	} else
		for (i = 0; i < argc; i++) {
			if ((rc = op_outbox_retry(&r, argv[i])) < 0) {
				arena_free(a);
				return ctl_db_fail("outbox retry", rc);
			}
			if (rc == 0) {
				fprintf(stderr, "tollgatectl: %s is not a "
				    "failed mail\n", argv[i]);
				status = 1;
				continue;
			}
			n++;
		}
	printf("%d mail%s queued again\n", n, n == 1 ? "" : "s");
	db_close();
	arena_free(a);
	return status;
}
