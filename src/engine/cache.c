/*
 * The cache in the shared file: users (their state and this host's
 * leases) and credentials (whose they are), in open-addressed tables of
 * fixed size.  Each slot has its own robust mutex; a lookup returns the
 * slot locked.  A slot whose owner died while holding it is dropped
 * (its leases are left to expire in the database: never used twice).
 */
#include <string.h>

#include "engine/engine.h"

static struct sql q_return = SQL("CALL tg_lease_return(?, ?, ?, ?, ?, ?, ?)");

/*
 * Gives back what this host holds of u's leases and did not use, then
 * forgets u's state.  u is locked.  A failed give-back leaves the slices
 * to expire in the database (they are never used again here).
 */
void
eng_user_drop(struct eng_user *u, bool give_back)
{
	int64_t	 rate = u->rate_avail > 0 && u->window_end > eng_now() ?
		    u->rate_avail : 0;
	size_t	 i;
	int	 rc;
	bool	 first = true;

	if (give_back && u->taken) {
		for (i = 0; i < ENG_METERS; i++) {
			struct eng_meter *m = &u->m[i];

			if (m->name[0] == '\0' || (m->avail <= 0 && !first))
				continue;
			if (m->avail <= 0 && rate <= 0 && u->cred_avail <= 0)
				continue;
			rc = db_exec(&q_return, "sssisii", eng->h.host, u->uid,
			    rate > 0 ? u->window_start : "1970-01-01", rate,
			    m->name, m->limited ? m->avail : 0,
			    first ? u->cred_avail : 0);
			if (rc < 0)
				log_warn("lease_return", " user=%s rc=%d",
				    u->uid, rc);
			else
				__atomic_fetch_add(&eng->h.n_return, 1,
				    __ATOMIC_RELAXED);
			rate = 0;
			first = false;
		}
		if (first && (rate > 0 || u->cred_avail > 0)) {
			rc = db_exec(&q_return, "sssisii", eng->h.host, u->uid,
			    rate > 0 ? u->window_start : "1970-01-01", rate,
			    "credits", 0, u->cred_avail);
			if (rc < 0)
				log_warn("lease_return", " user=%s rc=%d",
				    u->uid, rc);
		}
	}
	u->loaded = false;
	u->cred_loaded = false;
	u->rate_avail = 0;
	u->cred_avail = 0;
	u->window_end = 0;
	u->rate_no_until = 0;
	u->cred_no_until = 0;
	for (i = 0; i < ENG_METERS; i++)
		memset(&u->m[i], 0, sizeof(u->m[i]));
	u->gen++;
}

/* True when u holds nothing that must go back to the database. */
static bool
user_idle(const struct eng_user *u)
{
	size_t	 i;

	if (u->rate_avail > 0 || u->cred_avail > 0)
		return false;
	for (i = 0; i < ENG_METERS; i++)
		if (u->m[i].avail > 0)
			return false;
	return true;
}

/*
 * The slot of user uid, locked, or NULL (not there and !create, or the
 * table's neighbourhood is full of users holding leases).  *lockrc is 1
 * when the slot's last owner died holding its lock: its state was
 * dropped.  The caller unlocks.
 */
struct eng_user *
eng_user_get(const char *uid, bool create, int *lockrc)
{
	uint64_t	 h = eng_hash(uid);
	struct eng_user	*u, *freeslot = NULL, *lru = NULL, *victim;
	size_t		 i;

	*lockrc = 0;
	for (i = 0; i < ENG_PROBE; i++) {
		u = &eng->users[(h + i) & (ENG_USERS - 1)];
		if (!__atomic_load_n(&u->taken, __ATOMIC_ACQUIRE)) {
			if (freeslot == NULL)
				freeslot = u;
			continue;
		}
		if (strcmp(u->uid, uid) == 0) {
			if ((*lockrc = eng_lock(&u->lock)) == 1)
				eng_user_drop(u, false);
			if (u->taken && strcmp(u->uid, uid) == 0)
				return u;
			eng_unlock(&u->lock);
			continue;
		}
		if (lru == NULL || u->last_use < lru->last_use)
			lru = u;
	}
	if (!create || (victim = freeslot ? freeslot : lru) == NULL)
		return NULL;
	if ((*lockrc = eng_lock(&victim->lock)) == 1)
		eng_user_drop(victim, false);
	if (victim->taken && !user_idle(victim)) {
		/* Slices still in use stay; the check goes without a cache. */
		if (victim->window_end > eng_now() || victim->cred_avail > 0) {
			eng_unlock(&victim->lock);
			return NULL;
		}
		eng_user_drop(victim, true);
	}
	/*
	 * Two processes may make the same user in two slots at once; both
	 * lease under this host's id, and the database adds their slices
	 * up, so that costs a slot, never exactness.
	 */
	eng_user_drop(victim, false);
	memset(victim->uid, 0, sizeof(victim->uid));
	strncpy(victim->uid, uid, sizeof(victim->uid) - 1);
	__atomic_store_n(&victim->taken, true, __ATOMIC_RELEASE);
	return victim;
}

/*
 * The slot of credential key, locked, or NULL (absent and !create).  A
 * slot taken over from another credential comes back with taken set and
 * uid empty.  The caller unlocks.
 */
struct eng_cred *
eng_cred_get(const char *key, bool create)
{
	uint64_t	 h = eng_hash(key);
	struct eng_cred	*c, *victim = NULL;
	size_t		 i;

	for (i = 0; i < ENG_PROBE; i++) {
		c = &eng->creds[(h + i) & (ENG_CREDS - 1)];
		if (__atomic_load_n(&c->taken, __ATOMIC_ACQUIRE) &&
		    strcmp(c->key, key) == 0) {
			if (eng_lock(&c->lock) == 1)
				c->uid[0] = '\0';
			if (c->taken && strcmp(c->key, key) == 0)
				return c;
			eng_unlock(&c->lock);
			continue;
		}
		if (victim == NULL || (victim->taken && (!c->taken ||
		    c->last_use < victim->last_use)))
			victim = c;
	}
	if (!create || victim == NULL)
		return NULL;
	eng_lock(&victim->lock);
	memset(victim->key, 0, sizeof(victim->key));
	strncpy(victim->key, key, sizeof(victim->key) - 1);
	victim->uid[0] = '\0';
	victim->obj[0] = '\0';
	victim->touched = 0;
	__atomic_store_n(&victim->taken, true, __ATOMIC_RELEASE);
	return victim;
}

/* The meter's slot in u (locked), made when create; NULL when full. */
struct eng_meter *
eng_meter_get(struct eng_user *u, const char *meter, bool create)
{
	size_t	 i;

	for (i = 0; i < ENG_METERS; i++)
		if (strcmp(u->m[i].name, meter) == 0)
			return &u->m[i];
	if (!create)
		return NULL;
	for (i = 0; i < ENG_METERS; i++)
		if (u->m[i].name[0] == '\0' || (u->m[i].avail == 0 &&
		    !u->m[i].limited)) {
			memset(&u->m[i], 0, sizeof(u->m[i]));
			strncpy(u->m[i].name, meter, sizeof(u->m[i].name) - 1);
			return &u->m[i];
		}
	return NULL;
}
