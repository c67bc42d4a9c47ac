/*
 * API keys: "tgk_" and 32 random bytes in base64url.  The first 12
 * characters are the public preview; the key itself is shown once and
 * stored only as a keyed hash, so a lookup stays one indexed read.
 */
#include <string.h>

#include "tollgate.h"

static struct sql q_insert_key = SQL(
    "INSERT INTO api_keys (id, user_id, name, preview, key_hash, "
    "expires_at) VALUES (?, ?, ?, ?, ?, IF(? > 0, UTC_TIMESTAMP(6) + "
    "INTERVAL ? DAY, NULL))");

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
	struct json_object *o;
	int		 rc;

	if ((rc = db_exec(&q_insert_key, "sssssii", id, uid, name, preview,
	    token_hash(r->a, key), days, days)) < 0)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "preview", json_object_new_string(preview));
	json_object_object_add(o, "key", json_object_new_string(key));
	*out = o;
	return 0;
}
