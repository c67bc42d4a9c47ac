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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"

#define SUBJ_MEMO	1024	/* subjects remembered per process */
#define SUBJ_TTL	60	/* seconds a remembered mapping is used */

static struct sql q_mapped = SQL(
    "SELECT user_id FROM external_ids WHERE provider = ? AND subject = ?");

/*
 * Subjects mapped lately, per process: "provider|sub" -> user id, so
 * that the next token of a subject (issuers hand out a new one every few
 * minutes) costs no database read.  Kept a minute: a mapping that goes
 * away (the user deleted) is followed within that time, and the gate
 * answers a deleted user 401 in the meantime.
 */
struct subj_memo {
	char	*key;
	char	 uid[23];
	time_t	 until;
};
static struct subj_memo	 subj[SUBJ_MEMO];

static uint64_t
fnv1a(const char *s)
{
	uint64_t	 h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static const char *
subj_get(struct req *r, const char *key)
{
	struct subj_memo *m = &subj[fnv1a(key) & (SUBJ_MEMO - 1)];

	if (m->key != NULL && strcmp(m->key, key) == 0 &&
	    m->until > time(NULL))
		return arena_strdup(r->a, m->uid);
	return NULL;
}

static void
subj_put(const char *key, const char *uid)
{
	struct subj_memo *m = &subj[fnv1a(key) & (SUBJ_MEMO - 1)];

	if (strlen(uid) >= sizeof(m->uid))
		return;
	free(m->key);
	if ((m->key = strdup(key)) == NULL)
		return;
	snprintf(m->uid, sizeof(m->uid), "%s", uid);
	m->until = time(NULL) + SUBJ_TTL;
}

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
 * Forgets the mappings to uid (its account went away): the next token of
 * that subject is mapped afresh.
 */
void
trust_forget(const char *uid)
{
	size_t	 i;

	for (i = 0; i < SUBJ_MEMO; i++)
		if (subj[i].key != NULL && strcmp(subj[i].uid, uid) == 0) {
			free(subj[i].key);
			subj[i].key = NULL;
		}
}

/*
 * The tollgate user of a trusted token: the one function the gate, the
 * JSON API's authentication and /api/v1/check call.  Returns TRUST_USER
 * with the user's id in *uid (in the arena), TRUST_NONE when token is no
 * token of a [trust] issuer (let other checks have it), TRUST_BAD (an
 * issuer's token that fails: signature, key, alg, audience, subject),
 * TRUST_EXPIRED, TRUST_DISABLED (the user is disabled), TRUST_DOWN (the
 * issuer's JWKS could not be fetched), or a DB_* code.  With TRUST_USER,
 * *exp (when exp is not NULL) is the token's expiry (unix seconds): the
 * gate remembers the mapping until then.  The account of a subject seen
 * for the first time is made or linked in a transaction of its own, so
 * it must not be called inside one.  A mapped subject's disabled account
 * is TRUST_USER: the caller's own check of the user refuses it.
 */
int
trust_user(struct req *r, const char *token, const char **uid,
    long long *exp)
{
	const struct config_trust *t;
	struct ext_identity	 x;
	struct json_object	*claims = NULL;
	struct dbrows		 row;
	const char		*key;
	long long		 until;
	int			 rc, what = EXT_SESSION;

	*uid = NULL;
	if (exp != NULL)
		*exp = 0;
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
	until = json_int_at(claims, "exp", 0);
	json_object_put(claims);
	if (x.subject == NULL)
		return TRUST_BAD;
	if (exp != NULL)
		*exp = until;
	key = arena_printf(r->a, "%s|%s", x.provider, x.subject);
	if ((*uid = subj_get(r, key)) != NULL)
		return TRUST_USER;
	if ((rc = db_select(r->a, &q_mapped, &row, "ss", x.provider,
	    x.subject)) < 0)
		return rc;
	if (rc == 1) {
		*uid = dbv(&row, 0, 0);
		subj_put(key, *uid);
		return TRUST_USER;
	}
	/* The first sight: made or linked, in a transaction of its own. */
	if ((rc = ext_signin(r, &x, NULL, NULL, uid, NULL, &what)) < 0)
		return rc;
	if (what == EXT_DISABLED)
		return TRUST_DISABLED;
	if (what == EXT_OTHER) {
		log_info("trust_refused", " issuer=%s msg=\"the address's "
		    "account has another subject\"", t->name);
		return TRUST_BAD;
	}
	subj_put(key, *uid);
	return TRUST_USER;
}

/*
 * For a decision on a credential (/api/v1/check): whether cred is a
 * trusted issuer's token, and if so what to decide.  Returns false when
 * it is not one (cred is then no credential at all); true with *uid set
 * (decide for that user) or with the denial in *status and *code (401
 * unauthenticated or token_expired, 403 account_disabled, 503
 * unavailable).  Must not be called inside a transaction.
 */
bool
trust_verdict(struct req *r, const char *cred, const char **uid,
    int *status, const char **code)
{
	int	 rc;

	*uid = NULL;
	if (cfg.n_trust == 0)
		return false;
	switch ((rc = trust_user(r, cred, uid, NULL))) {
	case TRUST_NONE:
		return false;
	case TRUST_USER:
		return true;
	case TRUST_EXPIRED:
		*status = 401, *code = "token_expired";
		break;
	case TRUST_BAD:
		*status = 401, *code = "unauthenticated";
		break;
	case TRUST_DISABLED:
		*status = 403, *code = "account_disabled";
		break;
	default:	/* TRUST_DOWN, a DB_* code */
		*status = 503, *code = "unavailable";
		break;
	}
	*uid = NULL;
	return true;
}
