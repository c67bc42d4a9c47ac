/*
 * The operator's actions on accounts and the outbox, for tollgatectl
 * (ctl/user_cmds.c, ctl/ops_cmds.c): explicit arguments, a return code,
 * nothing printed.  Each change runs in one transaction through
 * db_tx_run and is audited with the operator (ctl_local_req) as the
 * actor.
 */
#include <string.h>

#include "app/app.h"

static struct sql q_find = SQL(
    "SELECT id, role, disabled_at IS NOT NULL, "
    "email_verified_at IS NOT NULL FROM users WHERE email_lc = ?");
static struct sql q_insert_admin = SQL(
    "INSERT INTO users (id, email, email_lc, name, password_hash, role, "
    "email_verified_at) VALUES (?, ?, ?, ?, ?, 'admin', UTC_TIMESTAMP(6))");
static struct sql q_promote = SQL(
    "UPDATE users SET role = 'admin', updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ?");
static struct sql q_show = SQL(
    "SELECT " USER_COLUMNS ", u.disabled_at IS NOT NULL, "
    "(SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id), "
    "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND "
    "tg_session_live(s.revoked_at, s.expires_at)) "
    "FROM users u WHERE u.email_lc = ?");
static struct sql q_disable = SQL(
    "UPDATE users SET disabled_at = UTC_TIMESTAMP(6), updated_at = "
    "UTC_TIMESTAMP(6) WHERE id = ? AND disabled_at IS NULL");
static struct sql q_enable = SQL(
    "UPDATE users SET disabled_at = NULL, updated_at = UTC_TIMESTAMP(6) "
    "WHERE id = ? AND disabled_at IS NOT NULL");
static struct sql q_live_admins = SQL(
    "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL "
    "AND id <> ? ORDER BY id FOR UPDATE");
static struct sql q_list = SQL(
    "SELECT u.id, u.email, u.name, u.role, tg_plan(u.id), "
    "IF(u.email_verified_at IS NULL, 'no', 'yes'), "
    "IF(u.disabled_at IS NULL, 'no', 'yes'), "
    "DATE_FORMAT(u.created_at, '%Y-%m-%dT%H:%i:%sZ') FROM users u "
    "WHERE (? = '' OR u.email_lc LIKE ? OR u.name LIKE ?) "
    "AND (? = 0 OR u.disabled_at IS NOT NULL) "
    "ORDER BY u.created_at, u.id LIMIT ?");
static struct sql q_outbox = SQL(
    "SELECT id, kind, to_addr, status, attempts, "
    "DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ'), "
    "DATE_FORMAT(next_attempt_at, '%Y-%m-%dT%H:%i:%sZ'), last_error "
    "FROM outbox WHERE (? = '' AND status <> 'sent' OR status = ?) "
    "ORDER BY created_at, id LIMIT ?");
/* One failed mail (id) or, with id NULL, every one, queued again. */
static struct sql q_retry_failed = SQL(
    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = "
    "UTC_TIMESTAMP(6), last_error = NULL WHERE (? IS NULL OR id = ?) AND "
    "status = 'failed'");

/*
 * The account of email (compared ignoring ASCII case): 1 with its id,
 * role, whether it is disabled and whether its address is verified in
 * *u (in the arena), 0 when there is none, or a DB_* code.
 */
int
op_user_find(struct arena *a, const char *email, struct op_user *u)
{
	struct dbrows	 row;
	int		 rc;

	memset(u, 0, sizeof(*u));
	if ((rc = db_select(a, &q_find, &row, "s", ascii_lower(a, email))) <= 0)
		return rc;
	u->id = dbv(&row, 0, 0);
	u->role = dbv(&row, 0, 1);
	u->disabled = dbi(&row, 0, 2) != 0;
	u->verified = dbi(&row, 0, 3) != 0;
	return 1;
}

/*
 * The account of email for `user show`, in *row: USER_COLUMNS, then
 * disabled, the number of API keys and of live sessions.  Returns 1, 0,
 * or a DB_* code.
 */
int
op_user_show(struct arena *a, const char *email, struct dbrows *row)
{
	return db_select(a, &q_show, row, "s", ascii_lower(a, email));
}

/* An operator's change, run by db_tx_run (maybe more than once). */
struct op_tx {
	struct req	*r;
	const char	*uid, *email, *hash;
	bool		 admin_row;	/* disable: a live admin's account */
	bool		 last_admin;
	int		 changed;
};

static int
promote_body(void *v)
{
	struct op_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_promote, "s", t->uid)) < 0)
		return rc;
	if (rc > 0 && (rc = audit_obj(t->r, "user.role", t->uid, NULL)) < 0)
		return rc;
	return 0;
}

/*
 * Takes the never-verified account t->uid over for the operator
 * (contract sections 3 and 10): whatever its first holder made
 * (password, tokens, keys, sessions, second factor, open links) goes,
 * the operator's password is set, the address counts as verified, and
 * then it is an admin.
 */
static int
claim_body(void *v)
{
	struct op_tx	*t = v;
	int		 rc;

	if ((rc = account_takeover(t->r, t->uid, "admin_create")) < 0 ||
	    (rc = password_set(t->uid, t->hash)) < 0 ||
	    (rc = account_verified(t->r, t->uid)) < 0)
		return rc;
	return promote_body(t);
}

static int
create_body(void *v)
{
	struct op_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_insert_admin, "sssss", t->uid, t->email,
	    ascii_lower(t->r->a, t->email), "Admin", t->hash)) < 0 ||
	    (rc = credit_balance_open(t->uid)) < 0 ||
	    (rc = audit_obj(t->r, "admin.create", t->uid, NULL)) < 0)
		return rc;
	return 0;
}

/*
 * Disables t->uid unless it is the last live admin (the admin rows are
 * locked, as the admin API locks them).
 */
static int
disable_body(void *v)
{
	struct op_tx	*t = v;
	struct dbrows	 admins;
	int		 rc;

	t->changed = 0;
	if ((rc = db_select(t->r->a, &q_live_admins, &admins, "s",
	    t->uid)) < 0)
		return rc;
	if (t->admin_row && admins.n == 0) {
		t->last_admin = true;
		return DB_ABORT;
	}
	if ((rc = db_exec(&q_disable, "s", t->uid)) < 0)
		return rc;
	t->changed = rc;
	if (rc > 0 && (rc = audit_obj(t->r, "user.disable", t->uid,
	    NULL)) < 0)
		return rc;
	return 0;
}

static int
enable_body(void *v)
{
	struct op_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_enable, "s", t->uid)) < 0)
		return rc;
	t->changed = rc;
	/* No token issued before the disable works again (issue 15). */
	if (rc > 0 && ((rc = sessions_revoke_all(t->uid, NULL,
	    "reenabled")) < 0 || (rc = audit(t->r, "user.enable", t->uid,
	    NULL)) < 0))
		return rc;
	return 0;
}

static int
verify_body(void *v)
{
	struct op_tx	*t = v;
	int		 rc;

	/* As verify-email does: the trial starts, the welcome mail goes. */
	if ((rc = account_verified(t->r, t->uid)) < 0 ||
	    (rc = audit(t->r, "user.verify", t->uid, NULL)) < 0)
		return rc;
	t->changed = 1;
	return 0;
}

static int
password_body(void *v)
{
	struct op_tx	*t = v;
	int		 rc;

	if ((rc = password_set(t->uid, t->hash)) < 0 ||
	    (rc = account_links_spend(t->r, t->uid)) < 0 ||
	    (rc = sessions_revoke_all(t->uid, NULL, "password_set")) < 0 ||
	    (rc = audit(t->r, "user.password", t->uid,
	    "set by tollgatectl")) < 0)
		return rc;
	t->changed = 1;
	return 0;
}

/*
 * Runs one of the actions on account u (for OP_CREATE_ADMIN, u->id is
 * the new account's id; email and hash as the action needs them).
 * Returns what changed (0 or 1), OP_LAST_ADMIN, or a DB_* code.
 */
int
op_user_act(struct req *r, enum op_action what, const struct op_user *u,
    const char *email, const char *hash)
{
	static int (*const bodies[])(void *) = {
		[OP_PROMOTE] = promote_body,
		[OP_CLAIM] = claim_body,
		[OP_CREATE_ADMIN] = create_body,
		[OP_DISABLE] = disable_body,
		[OP_ENABLE] = enable_body,
		[OP_VERIFY] = verify_body,
		[OP_SET_PASSWORD] = password_body,
	};
	struct op_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = u->id;
	t.email = email;
	t.hash = hash;
	t.admin_row = u->role != NULL && strcmp(u->role, "admin") == 0 &&
	    !u->disabled;
	if ((rc = db_tx_run(bodies[what], NULL, &t, DB_TX_TRIES)) < 0)
		return rc == DB_ABORT && t.last_admin ? OP_LAST_ADMIN : rc;
	return t.changed;
}

/*
 * Accounts for `user list`, oldest first, at most limit: those whose
 * email or name is like %q% (all when q is ""), only the disabled with
 * disabled.  Columns: id, email, name, role, plan, verified, disabled,
 * created_at.  Returns the row count or a DB_* code.
 */
int
op_user_list(struct arena *a, const char *q, bool disabled, long long limit,
    struct dbrows *rows)
{
	const char	*like = arena_printf(a, "%%%s%%", q);

	return db_select(a, &q_list, rows, "sssii", q, ascii_lower(a, like),
	    like, (long long)disabled, limit);
}

/*
 * Mail for `outbox list`: of state ("" for every one not sent), oldest
 * first, at most limit.  Columns: id, kind, to, status, attempts,
 * created_at, next_attempt_at, last_error.  Row count or DB_*.
 */
int
op_outbox_list(struct arena *a, const char *state, long long limit,
    struct dbrows *rows)
{
	return db_select(a, &q_outbox, rows, "ssi", state, state, limit);
}

/*
 * Queues failed mail id (NULL: every failed mail) again, audited.
 * Returns the number queued or a DB_* code.
 */
int
op_outbox_retry(struct req *r, const char *id)
{
	int	 n;

	if ((n = db_exec(&q_retry_failed, "ss", id, id)) > 0)
		audit(r, "outbox.retry", NULL, id != NULL ? id :
		    arena_printf(r->a, "%d failed mails", n));
	return n;
}
