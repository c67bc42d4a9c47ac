/*
 * Trusted tokens (contract section 3, "More ways in"): the access tokens
 * of another identity service, named by a [trust NAME] section (issuer,
 * audience, JWKS URL), count as a tollgate login for the JSON API and,
 * through trust_user, at the gate and /api/v1/check.
 *
 * A token is trusted when its (unverified) "iss" names a configured
 * issuer and jwks_verify accepts it for that issuer's keys, issuer and
 * audience (RS256 or ES256, the algorithm pinned by the key; never
 * "none" or an HMAC).  Its "sub" maps to one tollgate user, made on first
 * sight or linked by a verified email claim (ext_account): that user's
 * plan, limits and credits apply.  Mapped subjects are found with one
 * indexed read; only the first sight of a subject writes.
 */
#include <string.h>

#include "app/app.h"

#define TX_TRIES	3

static struct sql q_mapped = SQL(
    "SELECT user_id FROM external_ids WHERE provider = ? AND subject = ?");

/* The [trust] section whose issuer the token claims, or NULL. */
static const struct config_trust *
trust_of(const char *token)
{
	struct json_object	*p;
	const char		*iss;
	const struct config_trust *t = NULL;
	size_t			 i;

	if (cfg.n_trust == 0 || (p = jwt_part_unverified(token, 1)) == NULL)
		return NULL;
	if ((iss = json_str_at(p, "iss")) != NULL)
		for (i = 0; i < cfg.n_trust && t == NULL; i++)
			if (strcmp(cfg.trust[i].issuer, iss) == 0)
				t = &cfg.trust[i];
	json_object_put(p);
	return t;
}

/*
 * The tollgate user of a trusted token: the one function the gate, the
 * JSON API's authentication and /api/v1/check call.  Returns TRUST_USER
 * with the user's id in *uid (in the arena), TRUST_NONE when token is no
 * token of a [trust] issuer (let other checks have it), TRUST_BAD (an
 * issuer's token that fails: signature, key, alg, audience, subject),
 * TRUST_EXPIRED, TRUST_DISABLED (the user is disabled), TRUST_DOWN (the
 * issuer's JWKS could not be fetched), or a DB_* code.  The account of a
 * subject seen for the first time is made or linked in a transaction of
 * its own, so it must not be called inside one.
 */
int
trust_user(struct req *r, const char *token, const char **uid)
{
	const struct config_trust *t;
	struct ext_identity	 x;
	struct json_object	*claims = NULL;
	struct dbrows		 row;
	int			 rc, what = EXT_SESSION, attempt;

	*uid = NULL;
	if ((t = trust_of(token)) == NULL)
		return TRUST_NONE;
	switch (jwks_verify(r->a, t->jwks_url, token, t->issuer, t->audience,
	    &claims)) {
	case JWKS_OK:
		break;
	case JWKS_EXPIRED:
		return TRUST_EXPIRED;
	case JWKS_DOWN:
		return TRUST_DOWN;
	default:
		log_info("trust_refused", " issuer=%s", t->name);
		return TRUST_BAD;
	}
	memset(&x, 0, sizeof(x));
	x.provider = arena_printf(r->a, "trust:%s", t->name);
	x.subject = ext_subject(r, claims);
	x.email = ext_verified_email(r, claims);
	x.name = ext_name(r, claims);
	json_object_put(claims);
	if (x.subject == NULL)
		return TRUST_BAD;
	if ((rc = db_select(r->a, &q_mapped, &row, "ss", x.provider,
	    x.subject)) < 0)
		return rc;
	if (rc == 1) {
		*uid = dbv(&row, 0, 0);
		return TRUST_USER;
	}
	for (attempt = 0; attempt < TX_TRIES; attempt++) {
		if ((rc = db_begin()) < 0)
			return rc;
		if ((rc = ext_account(r, &x, uid, &what)) < 0 ||
		    (rc = db_commit()) < 0) {
			db_rollback();
			if (rc == DB_RETRY || rc == DB_DUP)
				continue;	/* two first sights at once */
			return rc;
		}
		break;
	}
	if (rc < 0)
		return rc == DB_DUP ? DB_RETRY : rc;
	if (what == EXT_DISABLED)
		return TRUST_DISABLED;
	if (what == EXT_OTHER) {
		log_info("trust_refused", " issuer=%s msg=\"the address's "
		    "account has another subject\"", t->name);
		return TRUST_BAD;
	}
	return TRUST_USER;
}
