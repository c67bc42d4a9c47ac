/*
 * API keys: "tgk_" and 32 random bytes in base64url.  The first 12
 * characters are the public preview; the key itself is shown once and
 * stored only as a keyed hash, so a lookup stays one indexed read.
 * Regenerating replaces the hash in place and deleting removes the row:
 * no worker caches keys, so either stops the old key at once everywhere.
 * Also the operator's service keys ("tgs_", tollgatectl service-key).
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"

static struct sql q_insert_key = SQL(
    "INSERT INTO api_keys (id, user_id, name, preview, key_hash, "
    "expires_at) VALUES (?, ?, ?, ?, ?, IF(? > 0, UTC_TIMESTAMP(6) + "
    "INTERVAL ? DAY, NULL))");

/* A key as shown this once: {id, name, preview, key}, the caller's. */
static struct json_object *
key_json(const char *id, const char *name, const char *preview,
    const char *key)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "preview", json_object_new_string(preview));
	json_object_object_add(o, "key", json_object_new_string(key));
	return o;
}

/*
 * Makes a key named name for uid, expiring after days (0: never).
 * Returns 0 with the new key's object {id, name, preview, key} in *out
 * (owned by the caller), or a DB_* code.
 */
int
apikey_create(struct req *r, const char *uid, const char *name,
    long long days, struct json_object **out)
{
	const char	*key = new_token(r->a, "tgk_", 32);
	const char	*id = new_id(r->a);
	const char	*preview = arena_strndup(r->a, key, 12);
	int		 rc;

	if ((rc = db_exec(&q_insert_key, "sssssii", id, uid, name, preview,
	    token_hash(r->a, key), days, days)) < 0)
		return rc;
	*out = key_json(id, name, preview, key);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The API (contract section 4).                                       */
/* ------------------------------------------------------------------ */

static struct sql q_list = SQL(
    "SELECT id, name, preview, DATE_FORMAT(created_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(last_used_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(expires_at, '%Y-%m-%dT%H:%i:%sZ') "
    "FROM api_keys WHERE user_id = ? ORDER BY created_at, id");
/* Holds the user's row so that concurrent creations count in turn. */
static struct sql q_lock_user = SQL(
    "SELECT email FROM users WHERE id = ? FOR UPDATE");
static struct sql q_key_exists = SQL(
    "SELECT 1 FROM api_keys WHERE id = ?");
/* The user's keys, the plan's limit, and the next plan up. */
static struct sql q_key_quota = SQL(
    "SELECT (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = x.id), "
    "COALESCE(p.api_keys, (SELECT t.api_keys FROM plans t WHERE "
    "t.is_trial = 1 ORDER BY t.name LIMIT 1), 0), "
    "(SELECT n.display_name FROM plans n WHERE n.sort_order > "
    "COALESCE(p.sort_order, 0) AND n.price_cents > 0 AND n.is_trial = 0 "
    "ORDER BY n.sort_order, n.name LIMIT 1) "
    "FROM (SELECT u.id, tg_plan(u.id) plan FROM users u WHERE u.id = ?) x "
    "LEFT JOIN plans p ON p.name = x.plan");
static struct sql q_owner = SQL(
    "SELECT user_id, name FROM api_keys WHERE id = ?");
static struct sql q_regenerate = SQL(
    "UPDATE api_keys SET key_hash = ?, preview = ?, last_used_at = NULL "
    "WHERE id = ? AND user_id = ?");
static struct sql q_delete = SQL(
    "DELETE FROM api_keys WHERE id = ?");

/*
 * The core of GET /api/v1/api-keys: uid's keys [{id, name, preview,
 * created_at, last_used_at, expires_at}], never the key.  Returns 0 with
 * the array in *out (owned by the caller), or a DB_* code.
 */
int
apikeys_list_core(struct req *r, const char *uid, struct json_object **out)
{
	struct json_object	*arr, *o;
	struct dbrows		 rows;
	size_t			 i;
	int			 rc, c;
	static const char *const cols[] = { "id", "name", "preview",
	    "created_at", "last_used_at", "expires_at" };

	if ((rc = db_select(r->a, &q_list, &rows, "s", uid)) < 0)
		return rc;
	arr = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		o = json_object_new_object();
		for (c = 0; c < 6; c++)
			json_object_object_add(o, cols[c],
			    jstr_or_null(dbv(&rows, i, c)));
		json_object_array_add(arr, o);
	}
	*out = arr;
	return 0;
}

/* GET /api/v1/api-keys (login): 200 [{id, name, preview, created_at,
 * last_used_at, expires_at}], never the key; 503. */
void
h_apikeys_list(struct req *r)
{
	struct json_object	*arr;
	int			 rc;

	if ((rc = apikeys_list_core(r, r->who.user_id, &arr)) < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 200, arr);
}

/* A key's creation, run by db_tx_run (maybe more than once). */
struct key_tx {
	struct req		*r;
	const char		*uid, *name, *refusal;
	long long		 days;
	int			 outcome;
	struct json_object	*key;
};

static int
create_body(void *v)
{
	struct key_tx	*t = v;
	struct req	*r = t->r;
	struct dbrows	 u, q;
	int		 rc;

	json_object_put(t->key);
	t->key = NULL;
	if ((rc = db_select(r->a, &q_lock_user, &u, "s", t->uid)) < 0 ||
	    (rc = db_select(r->a, &q_key_quota, &q, "s", t->uid)) < 0)
		return rc;
	if (u.n == 0 || q.n == 0) {
		t->outcome = APIKEY_GONE;
		return DB_ABORT;
	}
	if (dbi(&q, 0, 0) >= dbi(&q, 0, 1)) {
		t->refusal = quota_message(r->a, "api_keys", dbv(&q, 0, 2));
		t->outcome = APIKEY_QUOTA;
		return DB_ABORT;
	}
	if ((rc = apikey_create(r, t->uid, t->name, t->days, &t->key)) < 0 ||
	    (rc = mail_text(r, t->uid, "api_key_created", "api_key_created",
	    dbv(&u, 0, 0), NULL, (const char *[]){ "name", t->name,
	    NULL })) < 0 ||
	    (rc = audit(r, "api_key.create", t->uid, t->name)) < 0)
		return rc;
	return 0;
}

/* After a lost COMMIT answer: is this try's key there? */
static int
create_committed(void *v)
{
	struct key_tx		*t = v;
	struct json_object	*id;
	struct dbrows		 row;

	if (t->key == NULL || !json_object_object_get_ex(t->key, "id", &id))
		return -1;
	return db_select(t->r->a, &q_key_exists, &row, "s",
	    json_object_get_string(id));
}

/*
 * The core of POST /api/v1/api-keys: a key named name for uid, expiring
 * after days (0: never), with a notice mailed and an audit row.  The
 * count runs under the user's row lock, so concurrent creations cannot
 * pass the limit together.  Returns 0 with {id, name, preview, key} in
 * *out (owned by the caller), APIKEY_GONE when the account is gone,
 * APIKEY_QUOTA past the plan's limit (the contract's message in
 * *refusal), or a DB_* code.
 */
int
apikey_create_core(struct req *r, const char *uid, const char *name,
    long long days, struct json_object **out, const char **refusal)
{
	struct key_tx	 t;
	int		 rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.uid = uid;
	t.name = name;
	t.days = days;
	if ((rc = db_tx_run(create_body, create_committed, &t,
	    DB_TX_TRIES)) < 0) {
		json_object_put(t.key);
		if (rc != DB_ABORT)
			return rc;
		if (t.refusal != NULL)
			*refusal = t.refusal;
		return t.outcome;
	}
	*out = t.key;
	return 0;
}

/*
 * POST /api/v1/api-keys {name, expires_in_days?} (login): 201 {id, name,
 * preview, key}; 403 quota_exceeded (meter api_keys) past the plan's
 * limit; 422; 503.
 */
void
h_apikey_create(struct req *r)
{
	struct json_object	*key = NULL, *err, *e;
	const char		*refusal = NULL;
	long			 retry;
	int			 rc;

	if ((rc = reauth_check(r, in_str(r, "password"), &retry)) != 0) {
		reply_reauth(r, rc, retry);
		return;
	}
	rc = apikey_create_core(r, r->who.user_id, in_str(r, "name"),
	    in_int(r, "expires_in_days", 0), &key, &refusal);
	if (rc == APIKEY_GONE) {
		reply_gone(r);
		return;
	}
	if (rc == APIKEY_QUOTA) {
		err = json_object_new_object();
		e = json_object_new_object();
		json_object_object_add(e, "code",
		    json_object_new_string("quota_exceeded"));
		json_object_object_add(e, "message",
		    json_object_new_string(refusal));
		json_object_object_add(e, "meter",
		    json_object_new_string("api_keys"));
		json_object_object_add(err, "error", e);
		reply_json(r, 403, err);
		return;
	}
	if (rc < 0) {
		reply_db(r, rc);
		return;
	}
	reply_json(r, 201, key);
}

/*
 * Finds key id's owner.  Returns 0 when uid may act on it (its owner, or
 * an admin when admin_ok and the caller is one), APIKEY_NOT_FOUND,
 * APIKEY_FORBIDDEN, or a DB_* code.  The owner and the key's name go to
 * *owner and *name.
 */
static int
key_owned(struct req *r, const char *uid, const char *id, bool admin_ok,
    const char **owner, const char **name)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(r->a, &q_owner, &row, "s", id)) < 0)
		return rc;
	if (rc == 0)
		return APIKEY_NOT_FOUND;
	*owner = dbv(&row, 0, 0);
	*name = dbv(&row, 0, 1);
	if (strcmp(*owner, uid) == 0 ||
	    (admin_ok && strcmp(r->who.role, "admin") == 0))
		return 0;
	return APIKEY_FORBIDDEN;
}

/* Answers a key's APIKEY_* refusal or a DB_* code. */
static void
key_refused(struct req *r, int rc)
{
	if (rc == APIKEY_NOT_FOUND)
		reply_error(r, 404, "not_found", "There is no such API key.");
	else if (rc == APIKEY_FORBIDDEN)
		reply_error(r, 403, "forbidden", "This API key is not yours.");
	else
		reply_db(r, rc);
}

/*
 * The core of POST /api/v1/api-keys/{id}/regenerate (uid's own key
 * only, never an admin's way).  Returns 0 with {id, name, preview, key}
 * in *out (owned by the caller), APIKEY_NOT_FOUND, APIKEY_FORBIDDEN, or
 * a DB_* code.
 */
int
apikey_regenerate_core(struct req *r, const char *uid, const char *id,
    struct json_object **out)
{
	const char		*owner, *name, *key, *preview;
	int			 rc;

	if ((rc = key_owned(r, uid, id, false, &owner, &name)) != 0)
		return rc;
	key = new_token(r->a, "tgk_", 32);
	preview = arena_strndup(r->a, key, 12);
	if ((rc = db_exec(&q_regenerate, "ssss", token_hash(r->a, key),
	    preview, id, owner)) < 0)
		return rc;
	if (rc == 0)
		return APIKEY_NOT_FOUND;
	*out = key_json(id, name, preview, key);
	return 0;
}

/*
 * POST /api/v1/api-keys/{id}/regenerate (login, the owner only, not an
 * admin): 200 {id, name, preview, key}, the old key stops at once; 403
 * another user's key; 404; 503.
 */
void
h_apikey_regenerate(struct req *r)
{
	struct json_object	*o;
	long			 retry;
	int			 rc;

	if ((rc = reauth_check(r, in_str(r, "password"), &retry)) != 0) {
		reply_reauth(r, rc, retry);
		return;
	}
	if ((rc = apikey_regenerate_core(r, r->who.user_id, r->params[0],
	    &o)) != 0) {
		key_refused(r, rc);
		return;
	}
	reply_json(r, 200, o);
}

/* Deletes API key id: it stops at once.  Rows deleted or DB_*. */
int
apikey_delete(const char *id)
{
	return db_exec(&q_delete, "s", id);
}

/* A key's deletion, run by db_tx_run (maybe more than once). */
struct delete_tx {
	struct req	*r;
	const char	*id, *owner, *name;
	bool		 audit;		/* an admin's: audited */
};

static int
delete_body(void *v)
{
	struct delete_tx	*t = v;
	int			 rc;

	if ((rc = apikey_delete(t->id)) < 0 ||
	    (t->audit && (rc = audit(t->r, "api_key.delete", t->owner,
	    t->name)) < 0))
		return rc;
	return 0;
}

/*
 * The core of DELETE /api/v1/api-keys/{id}: uid's key, or (admin_ok and
 * the caller an admin) anyone's, with an audit row then.  Returns 0,
 * APIKEY_NOT_FOUND, APIKEY_FORBIDDEN, or a DB_* code.
 */
int
apikey_delete_core(struct req *r, const char *uid, const char *id,
    bool admin_ok)
{
	struct delete_tx t;
	const char	*owner, *name;
	int		 rc;

	if ((rc = key_owned(r, uid, id, admin_ok, &owner, &name)) != 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.r = r;
	t.id = id;
	t.owner = owner;
	t.name = name;
	t.audit = strcmp(owner, uid) != 0;
	rc = db_tx_run(delete_body, NULL, &t, DB_TX_TRIES);
	return rc < 0 ? rc : 0;
}

/*
 * DELETE /api/v1/api-keys/{id} (login; the owner or an admin): 204, the
 * key stops at once; 403 another user's key; 404; 503.
 */
void
h_apikey_delete(struct req *r)
{
	int	 rc;

	if ((rc = apikey_delete_core(r, r->who.user_id, r->params[0],
	    true)) != 0) {
		key_refused(r, rc);
		return;
	}
	reply_empty(r, 204);
}

/* ------------------------------------------------------------------ */
/* tollgatectl service-key create | list | revoke                      */
/* ------------------------------------------------------------------ */

static struct sql q_sk_insert = SQL(
    "INSERT INTO service_keys (id, name, preview, key_hash) "
    "VALUES (?, ?, ?, ?)");
static struct sql q_sk_list = SQL(
    "SELECT id, name, preview, DATE_FORMAT(created_at, "
    "'%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(revoked_at, "
    "'%Y-%m-%dT%H:%i:%sZ') FROM service_keys ORDER BY created_at");
static struct sql q_sk_revoke = SQL(
    "UPDATE service_keys SET revoked_at = UTC_TIMESTAMP(6) "
    "WHERE (live_name = ? OR id = ?) AND revoked_at IS NULL");

/* A service key's change, run by db_tx_run (maybe more than once). */
struct sk_tx {
	struct req	*r;
	const char	*id, *name, *key;
};

static int
sk_create_body(void *v)
{
	struct sk_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_sk_insert, "ssss", t->id, t->name,
	    arena_strndup(t->r->a, t->key, 12), token_hash(t->r->a,
	    t->key))) < 0)
		return rc;
	return audit(t->r, "service_key.create", t->id, t->name);
}

static int
sk_revoke_body(void *v)
{
	struct sk_tx	*t = v;
	int		 rc;

	if ((rc = db_exec(&q_sk_revoke, "ss", t->name, t->name)) <= 0)
		return rc < 0 ? rc : DB_ABORT;
	return audit(t->r, "service_key.revoke", NULL, t->name);
}

/*
 * tollgatectl service-key create NAME: prints the new key (tgs_...) as
 * the last line; only its hash is kept.
 */
int
ctl_service_key_create(int argc, char *argv[])
{
	struct sk_tx	 t;
	struct arena	*a;
	struct req	 r;
	const char	*key, *id;
	int		 rc;

	if (argc != 1 || valid_key_name(argv[0], strlen(argv[0])) != NULL) {
		fprintf(stderr, "usage: tollgatectl service-key create NAME "
		    "(NAME: 1 to 64 of letters, digits, - and _)\n");
		return 2;
	}
	a = arena_new();
	key = new_token(a, "tgs_", 32);
	id = new_id(a);
	ctl_local_req(&r, a);
	memset(&t, 0, sizeof(t));
	t.r = &r;
	t.id = id;
	t.name = argv[0];
	t.key = key;
	if ((rc = db_tx_run(sk_create_body, NULL, &t, DB_TX_TRIES)) < 0) {
		fprintf(stderr, "tollgatectl: service-key create: %s\n",
		    rc == DB_DUP ? "a live key has that name (revoke it "
		    "first)" : "database error");
		arena_free(a);
		return 1;
	}
	printf("service key %s created; it is shown this once:\n%s\n",
	    argv[0], key);
	arena_free(a);
	return 0;
}

/*
 * tollgatectl service-key list [--json]: id, name, preview, created,
 * revoked.
 */
int
ctl_service_key_list(int argc, char *argv[])
{
	static const char *const cols[] = { "id", "name", "preview",
	    "created_at", "revoked_at" };
	struct arena	*a;
	struct dbrows	 rows;
	bool		 json = ctl_take_json(&argc, argv);
	int		 rc;

	if (argc != 0) {
		fprintf(stderr, "usage: tollgatectl service-key list [--json]\n");
		return 2;
	}
	a = arena_new();
	if ((rc = db_select(a, &q_sk_list, &rows, "")) < 0) {
		fprintf(stderr, "tollgatectl: service-key list: database "
		    "error\n");
		arena_free(a);
		return 1;
	}
	ctl_print_rows(&rows, cols, sizeof(cols) / sizeof(cols[0]), NULL, json);
	arena_free(a);
	return 0;
}

/* tollgatectl service-key revoke NAME|ID: the key stops at once. */
int
ctl_service_key_revoke(int argc, char *argv[])
{
	struct sk_tx	 t;
	struct arena	*a;
	struct req	 r;
	int		 rc;

	if (argc != 1) {
		fprintf(stderr, "usage: tollgatectl service-key revoke "
		    "NAME|ID\n");
		return 2;
	}
	a = arena_new();
	ctl_local_req(&r, a);
	memset(&t, 0, sizeof(t));
	t.r = &r;
	t.name = argv[0];
	rc = db_tx_run(sk_revoke_body, NULL, &t, DB_TX_TRIES);
	arena_free(a);
	if (rc == DB_ABORT) {
		fprintf(stderr, "tollgatectl: no live service key %s\n",
		    argv[0]);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "tollgatectl: service-key revoke: database "
		    "error\n");
		return 1;
	}
	printf("service key %s revoked\n", argv[0]);
	return 0;
}
