/*
 * The audit trail: who did what to whom, when and from where.  Rows name
 * users by id and email as plain values, so they outlive the users.
 * Callers write the row in the same transaction as the change.
 */
#include "tollgate.h"

static struct sql q_audit = SQL(
    "INSERT INTO audit_log (id, actor_id, actor_email, action, target_id, "
    "target_email, detail, address) VALUES (?, ?, ?, ?, ?, "
    "(SELECT email FROM users WHERE id = ?), ?, ?)");

/*
 * Records action by the caller on target_id with detail (a JSON text or
 * NULL).  Returns 0 or a DB_* code.
 */
int
audit(struct req *r, const char *action, const char *target_id,
    const char *detail)
{
	struct json_object	*d = NULL;
	const char		*json = NULL;
	int			 rc;

	if (detail != NULL) {
		d = json_object_new_object();
		json_object_object_add(d, "detail",
		    json_object_new_string(detail));
		json = arena_strdup(r->a, json_object_to_json_string(d));
		json_object_put(d);
	}
	rc = db_exec(&q_audit, "ssssssss", new_id(r->a), r->who.user_id,
	    r->who.email, action, target_id, target_id, json, r->remote_addr);
	return rc < 0 ? rc : 0;
}
