/*
 * The audit trail: who did what to whom, when and from where.  Rows name
 * users by id and email as plain values, so they outlive the users.
 * Callers write the row in the same transaction as the change.
 */
#include "app/app.h"

static struct sql q_audit = SQL(
    "INSERT INTO audit_log (id, actor_id, actor_email, action, target_id, "
    "target_email, detail, address) VALUES (?, ?, ?, ?, ?, "
    "(SELECT email FROM users WHERE id = ?), ?, ?)");
static struct sql q_audit_list = SQL(
    "SELECT DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%sZ'), actor_id, actor_email, "
    "action, target_id, target_email, detail, address FROM audit_log "
    "WHERE ? IS NULL OR target_id = ? OR actor_id = ? "
    "ORDER BY at DESC, id DESC LIMIT ?");

/*
 * Records action by the caller on target_id with detail (a JSON object,
 * consumed, or NULL).  Returns 0 or a DB_* code.
 */
int
audit_obj(struct req *r, const char *action, const char *target_id,
    struct json_object *detail)
{
	const char	*json = NULL;
	int		 rc;

	if (detail != NULL) {
		json = arena_strdup(r->a, json_object_to_json_string_ext(detail,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(detail);
	}
	rc = db_exec(&q_audit, "ssssssss", new_id(r->a), r->who.user_id,
	    r->who.email, action, target_id, target_id, json, r->remote_addr);
	return rc < 0 ? rc : 0;
}

/*
 * Records action by the caller on target_id with detail (a text or
 * NULL), stored as {"detail": text}.  Returns 0 or a DB_* code.
 */
int
audit(struct req *r, const char *action, const char *target_id,
    const char *detail)
{
	struct json_object	*d = NULL;

	if (detail != NULL) {
		d = json_object_new_object();
		json_object_object_add(d, "detail",
		    json_object_new_string(detail));
	}
	return audit_obj(r, action, target_id, d);
}

/*
 * Lists the newest limit audit rows, of everything or of those whose
 * actor or target is user_id, as [{at, actor, action, target, detail,
 * address}]: actor and target are user ids (contract section 10), with
 * the emails they had at the time beside them in actor_email and
 * target_email (tollgatectl's actor has no id: actor null, actor_email
 * "tollgatectl").  Returns 0 with the array in *out (owned by the
 * caller), or a DB_* code.
 */
int
audit_list(struct req *r, const char *user_id, long long limit,
    struct json_object **out)
{
	struct dbrows		 rows;
	struct json_object	*arr, *e, *d;
	const char		*dj;
	size_t			 i;
	int			 rc;

	if ((rc = db_select(r->a, &q_audit_list, &rows, "sssi", user_id,
	    user_id, user_id, limit)) < 0)
		return rc;
	arr = json_object_new_array();
	for (i = 0; i < rows.n; i++) {
		e = json_object_new_object();
		json_object_object_add(e, "at",
		    json_object_new_string(dbv(&rows, i, 0)));
		json_object_object_add(e, "actor",
		    jstr_or_null(dbv(&rows, i, 1)));
		json_object_object_add(e, "actor_email",
		    jstr_or_null(dbv(&rows, i, 2)));
		json_object_object_add(e, "action",
		    json_object_new_string(dbv(&rows, i, 3)));
		json_object_object_add(e, "target",
		    jstr_or_null(dbv(&rows, i, 4)));
		json_object_object_add(e, "target_email",
		    jstr_or_null(dbv(&rows, i, 5)));
		dj = dbv(&rows, i, 6);
		d = dj != NULL ? parse_json_object(dj, rows.len[i * rows.ncol
		    + 6]) : NULL;
		json_object_object_add(e, "detail", d);
		json_object_object_add(e, "address",
		    jstr_or_null(dbv(&rows, i, 7)));
		json_object_array_add(arr, e);
	}
	*out = arr;
	return 0;
}
