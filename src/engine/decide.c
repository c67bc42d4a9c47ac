/*
 * One gate decision, in the contract's order (section 7): the credential
 * (401), a disabled account (403), the rate limit (429), email verified
 * (403), a plan (402), the meter's quota (403), credits (403).
 *
 * Everything comes from the cache when it can: the credential's user,
 * the user's state, and this host's slices of the rate window, the
 * meter's quota and the balance.  When something is missing or a slice
 * is too small, one CALL of tg_lease (sql/routines/engine.sql) looks it
 * up and reserves a new slice in one transaction; the decision is taken
 * here, within the slices.  What the check counts and spends goes to the
 * journal, and the caller answers once the flusher has committed it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"

#define TRIES		6	/* a lease that lost a lock race (or, on
				   Galera, certification) is asked again */
#define NO_RECHECK	1.0	/* an empty slice is asked again after 1 s */
#define STATE_TTL	3600.0	/* the state is dropped by the change log */
#define SLICE_TTL	25.0	/* a slice is used for 25 of its 30 seconds */

static struct sql q_lease = SQL(
    "CALL tg_lease(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
static struct sql q_bucket = SQL(
    "CALL tg_bucket(?, ?, ?, ?)");
/* A level meter (tg_level_raise, routines/meters.sql): raised, or seen. */
static struct sql q_level_raise = SQL(
    "CALL tg_level_raise(?, ?, ?)");
static struct sql q_level_peek = SQL(
    "SELECT COALESCE((SELECT v.level FROM usage_levels v WHERE "
    "v.user_id = ? AND v.meter = ?), 0), (SELECT l.period_limit FROM "
    "plan_limits l WHERE l.plan = tg_plan(?) AND l.meter = ?)");

/* The columns of tg_lease's row. */
enum {
	L_STATUS, L_CODE, L_UID, L_OBJ, L_DISABLED, L_VERIFIED, L_PLAN,
	L_TRIAL, L_RATE, L_COUNT, L_G_RATE, L_RESET_US, L_LIMIT, L_USED,
	L_G_METER, L_CREDITS, L_G_CRED, L_PS, L_VALID_S, L_PAYING, L_NEXT,
	L_RECALL, L_WS, L_PE, L_ROLE, L_LEVEL
};

/* What u still lacks for the check; all zero when it can decide. */
struct needs {
	long long	 rate, meter, credits;
	bool		 any;
};

/* Copies at most n - 1 bytes of s (NULL: "") into d. */
static void
put(char *d, size_t n, const char *s)
{
	snprintf(d, n, "%s", s != NULL ? s : "");
}

/* Today (UTC) as YYYY-MM-DD. */
static void
today(char d[11])
{
	time_t		 t = time(NULL);
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(d, 11, "%Y-%m-%d", &tm);
}

/*
 * Takes tg_lease's row into u (locked): the user's state is replaced by
 * the fresher one, and the granted slices are added to what this host
 * holds (a slice of a window or period that ended is forgotten).
 */
static void
take_lease(struct eng_user *u, const struct dbrows *row, const char *meter,
    const struct needs *n)
{
	double		 now = eng_now(), valid = (double)dbi(row, 0, L_VALID_S);
	bool		 recall = dbi(row, 0, L_RECALL) != 0;
	struct eng_meter *m;
	const char	*ws = dbv(row, 0, L_WS), *ps = dbv(row, 0, L_PS);

	if (valid > STATE_TTL)
		valid = STATE_TTL;
	if (valid < 0)
		valid = 0;
	u->loaded = true;
	u->valid_until = now + valid;
	u->disabled = dbi(row, 0, L_DISABLED) != 0;
	u->verified = dbi(row, 0, L_VERIFIED) != 0;
	u->has_plan = dbv(row, 0, L_PLAN) != NULL;
	u->is_trial = dbi(row, 0, L_TRIAL) != 0;
	u->paying = dbi(row, 0, L_PAYING) != 0;
	put(u->plan, sizeof(u->plan), dbv(row, 0, L_PLAN));
	put(u->next, sizeof(u->next), dbv(row, 0, L_NEXT));
	put(u->role, sizeof(u->role), dbv(row, 0, L_ROLE));
	if (ps == NULL || strcmp(ps, u->period_start) != 0) {
		/* A new period: meter slices of the old one are void. */
		memset(u->m, 0, sizeof(u->m));
	}
	put(u->period_start, sizeof(u->period_start), ps);
	put(u->period_end, sizeof(u->period_end), dbv(row, 0, L_PE));
	if (!u->has_plan || u->disabled)
		return;

	u->rate = dbi(row, 0, L_RATE);
	if (ws == NULL || strcmp(ws, u->window_start) != 0 ||
	    u->window_end <= now)
		u->rate_avail = 0;
	put(u->window_start, sizeof(u->window_start), ws);
	u->window_end = now + (double)dbi(row, 0, L_RESET_US) / 1e6;
	u->rate_avail += dbi(row, 0, L_G_RATE);
	u->rate_base = u->rate - dbi(row, 0, L_COUNT);
	/*
	 * Nothing left, and no other host to give any back: refuse here
	 * (no database trip per refused check) until the window ends.
	 */
	if (n->rate > 0 && dbi(row, 0, L_G_RATE) == 0 && !recall)
		u->rate_no_until = u->window_end;

	if (u->cred_until <= now)
		u->cred_avail = 0;
	u->cred_avail += dbi(row, 0, L_G_CRED);
	if (dbi(row, 0, L_G_CRED) > 0)
		u->cred_until = now + (valid < SLICE_TTL ? valid : SLICE_TTL);
	u->cred_base = dbi(row, 0, L_CREDITS);
	u->cred_loaded = true;
	/*
	 * Refused here for a second: needs at least as large as the one
	 * that did not fit (a smaller one may still fit: ask for it).
	 */
	if (n->credits > 0 && dbi(row, 0, L_G_CRED) == 0 && !recall) {
		u->cred_no_until = now + NO_RECHECK;
		u->cred_no_need = n->credits;
	}

	if ((m = eng_meter_get(u, meter, true)) == NULL)
		return;
	m->level = dbi(row, 0, L_LEVEL) != 0;
	m->limited = dbv(row, 0, L_LIMIT) != NULL;
	if (!m->limited) {
		m->avail = 0;
		return;
	}
	if (m->until <= now)
		m->avail = 0;
	m->limit = dbi(row, 0, L_LIMIT);
	m->avail += dbi(row, 0, L_G_METER);
	if (dbi(row, 0, L_G_METER) > 0)
		m->until = now + (valid < SLICE_TTL ? valid : SLICE_TTL);
	m->base = m->limit - dbi(row, 0, L_USED);
	if (dbi(row, 0, L_G_METER) == 0 && !recall && (n->meter > 0 ||
	    m->base + m->avail <= 0)) {
		m->no_until = now + NO_RECHECK;
		m->no_need = m->base + m->avail <= 0 ? 0 : n->meter;
	}
}

/* Fills the verdict's rate figures from u. */
static void
rate_figures(const struct eng_user *u, struct eng_verdict *v)
{
	double	 left = u->window_end - eng_now();

	if (!u->has_plan) {
		v->rate = v->remaining = 0;
		v->reset = 60;
		return;
	}
	v->rate = u->rate;
	v->remaining = u->rate_base + u->rate_avail;
	if (v->remaining < 0)
		v->remaining = 0;
	v->reset = left <= 0 ? 60 : (long long)left + (left > (long long)left);
	if (v->reset < 1)
		v->reset = 1;
}


static void
needs_of(struct eng_user *u, const struct eng_check *chk, struct needs *n)
{
	double			 now = eng_now();
	struct eng_meter	*m;
	bool			 credits = strcmp(chk->meter, "credits") == 0;

	memset(n, 0, sizeof(*n));
	if (!u->loaded || u->valid_until <= now) {
		n->any = true;
		n->rate = chk->bucket == NULL;
		n->meter = chk->cost;
		n->credits = credits ? chk->cost : 0;
		return;
	}
	if (u->disabled || !u->has_plan)
		return;
	if (u->window_end <= now)
		u->rate_avail = 0;
	if (chk->bucket == NULL && u->rate_avail < 1 &&
	    u->rate_no_until <= now)
		n->rate = 1;
	if (!u->verified && cfg.require_verified_email)
		goto out;	/* refused after the rate check */
	if (!credits) {
		m = eng_meter_get(u, chk->meter, false);
		if (m == NULL)
			n->meter = chk->cost, n->any = true;
		else if (m->limited) {
			if (m->until <= now)
				m->avail = 0;
			if (m->no_until > now && chk->cost - m->avail >=
			    m->no_need)
				;	/* refused here for now */
			else if (m->avail < chk->cost)
				n->meter = chk->cost - m->avail;
			else if (chk->cost == 0 && m->base + m->avail <= 0)
				n->any = true;	/* ask how much is left */
		}
	} else if (chk->cost > 0) {
		if (u->cred_until <= now)
			u->cred_avail = 0;
		if (u->cred_avail < chk->cost && (u->cred_no_until <= now ||
		    chk->cost - u->cred_avail < u->cred_no_need))
			n->credits = chk->cost - u->cred_avail;
	}
out:
	n->any = n->any || n->rate > 0 || n->meter > 0 || n->credits > 0;
}

/* Appends a record; returns its sequence number (0: the journal is full). */
static uint64_t
journal(uint8_t type, const struct eng_user *u, const char *meter,
    long long cost, long long balance, bool leased, const char *id)
{
	struct eng_rec	 r;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.leased = leased;
	r.paying = u->paying;
	put(r.uid, sizeof(r.uid), u->uid);
	put(r.id, sizeof(r.id), id);
	put(r.meter, sizeof(r.meter), meter);
	put(r.period_start, sizeof(r.period_start), u->period_start);
	put(r.period_end, sizeof(r.period_end), u->period_end);
	today(r.day);
	r.cost = cost;
	r.balance_after = balance;
	return eng_journal_add(&r);
}

/*
 * After an allowed check took from m: whether the meter's use just
 * reached 80 or 100 % of its limit, by what this host can see (what all
 * hosts hold counts as used).  Each is told once per period and host
 * here; the notice itself is recorded once per period in the database
 * (usage_notices), whatever the hosts say.
 */
static void
threshold(struct arena *a, struct eng_user *u, struct eng_meter *m,
    struct eng_verdict *v)
{
	long long	 used = m->limit - (m->base + m->avail);

	if (m->limit <= 0)
		return;
	if (used >= m->limit && !(m->noticed & 2)) {
		m->noticed |= 3;
		v->notice = 100;
	} else if (used * 10 >= m->limit * 8 && !(m->noticed & 1)) {
		m->noticed |= 1;
		v->notice = 80;
	} else
		return;
	v->used = used < m->limit ? used : m->limit;
	v->limit = m->limit;
	v->period_start = arena_strdup(a, u->period_start);
}

/*
 * Decides a level meter's part of a check in the database: raises the
 * level by the cost when level + cost stays within the limit (a dry
 * check only looks).  Returns 1 (passes), 0 (refused) or a DB_* code;
 * fills the verdict's meter figures.
 */
static int
level_check(struct arena *a, const struct eng_user *u,
    const struct eng_check *chk, struct eng_verdict *v)
{
	struct dbrows	 row;
	long long	 level, limit;
	bool		 ok;
	int		 rc = DB_FAIL, i;

	for (i = 0; i < TRIES; i++) {
		if (chk->dry)
			rc = db_select(a, &q_level_peek, &row, "ssss", u->uid,
			    chk->meter, u->uid, chk->meter);
		else
			rc = db_select(a, &q_level_raise, &row, "ssi", u->uid,
			    chk->meter, chk->cost);
		if (rc != DB_RETRY)
			break;
		eng_pace(eng_now(), 0.001 * (1 + (i & 3)));
	}
	if (rc != 1)
		return rc < 0 ? rc : DB_FAIL;
	if (chk->dry) {
		level = dbi(&row, 0, 0);
		limit = dbi(&row, 0, 1);
		ok = dbv(&row, 0, 1) == NULL || level + (chk->cost > 0 ?
		    chk->cost : 1) <= limit;
		v->m_limited = dbv(&row, 0, 1) != NULL;
	} else {
		ok = dbi(&row, 0, 0) != 0;
		level = dbi(&row, 0, 1);
		limit = dbi(&row, 0, 2);
		v->m_limited = dbv(&row, 0, 2) != NULL;
	}
	if (v->m_limited) {
		v->m_limit = limit;
		v->m_remaining = limit > level ? limit - level : 0;
	}
	return ok ? 1 : 0;
}

/*
 * Decides with u (locked and loaded) and what it holds; consumes the
 * slices of an allowed check and journals it.  lacking says a lease was
 * asked for and did not cover the need: the check is refused there.
 */
static void
decide_local(struct arena *a, struct eng_user *u, const struct eng_check *chk,
    bool recall, struct eng_verdict *v)
{
	struct eng_meter	*m = NULL;
	bool			 credits = strcmp(chk->meter, "credits") == 0;
	long long		 bal;
	int			 rc;

	v->uid = arena_strdup(a, u->uid);
	v->plan = u->has_plan ? arena_strdup(a, u->plan) : NULL;
	v->next = u->next[0] ? arena_strdup(a, u->next) : NULL;
	v->role = u->role[0] ? arena_strdup(a, u->role) : NULL;
	v->credits = u->has_plan && u->cred_loaded ?
	    u->cred_base + u->cred_avail : 0;
	if (!credits && u->has_plan &&
	    (m = eng_meter_get(u, chk->meter, false)) != NULL && m->limited) {
		v->m_limited = true;
		v->m_limit = m->limit;
		v->m_remaining = m->base + m->avail < 0 ? 0 :
		    m->base + m->avail;
	}
	rate_figures(u, v);
	if (u->disabled) {
		v->status = 403, v->code = "account_disabled";
		return;
	}
	if (chk->role != NULL && strcmp(u->role, chk->role) != 0) {
		v->status = 403, v->code = "forbidden";
		return;
	}
	/* A named bucket is counted in the database (decide_bucket). */
	if (u->has_plan && chk->bucket == NULL && u->rate_avail < 1) {
		v->status = 429, v->code = "rate_limited";
		return;
	}
	/* [trial] require_verified_email = no: keys work at once. */
	if (!u->verified && cfg.require_verified_email) {
		v->status = 403, v->code = "email_not_verified";
		return;
	}
	if (!u->has_plan) {
		v->status = 402, v->code = "subscription_required";
		return;
	}
	if (m != NULL && m->limited && (m->avail < chk->cost ||
	    (chk->cost == 0 && m->base + m->avail <= 0))) {
		v->status = 403, v->code = "quota_exceeded";
		return;
	}
	/* A level meter: the last test, since passing raises the level. */
	if (!credits && (m = eng_meter_get(u, chk->meter, false)) != NULL &&
	    m->level) {
		if ((rc = level_check(a, u, chk, v)) < 0) {
			v->status = 503, v->code = "unavailable";
			return;
		}
		if (rc == 0) {
			v->status = 403, v->code = "quota_exceeded";
			return;
		}
		v->in_db = !chk->dry;
		m = NULL;	/* no slice to take from */
	}
	if (credits && chk->cost > 0 && u->cred_avail < chk->cost) {
		bal = u->cred_base + u->cred_avail;
		v->status = 403;
		v->code = u->is_trial ? "trial_credits_exhausted" :
		    "quota_exceeded";
		if (recall && chk->tries < ENG_RETRIES) {
			/* Other hosts give slices back: ask again first. */
			v->retry = true;
			return;
		}
		if (chk->dry)
			return;
		v->wait_seq = journal(REC_REFUSE, u, chk->meter, chk->cost,
		    bal < 0 ? 0 : bal, false, new_id(a));
		metrics_count(CTR_SPEND_REFUSED, 1);
		return;
	}
	v->status = 204;
	if (chk->dry)
		return;		/* what would happen; nothing is taken */

	/* Allowed: take from the slices, then journal what it counts. */
	if (chk->bucket == NULL) {
		u->rate_avail--;
		v->remaining = u->rate_base + u->rate_avail;
		if (v->remaining < 0)
			v->remaining = 0;
	}
	if (m != NULL && m->limited) {
		m->avail -= chk->cost;
		v->m_remaining = m->base + m->avail < 0 ? 0 :
		    m->base + m->avail;
	}
	if (credits && chk->cost > 0) {
		u->cred_avail -= chk->cost;
		v->credits = u->cred_base + u->cred_avail;
		metrics_count(CTR_SPEND_OK, 1);
	}
	if (m != NULL && m->limited && chk->cost > 0)
		threshold(a, u, m, v);
	if (chk->cost > 0 && !v->in_db)
		v->wait_seq = journal(REC_USE, u, chk->meter, chk->cost,
		    v->credits, credits || (m != NULL && m->limited),
		    credits ? new_id(a) : NULL);
}

/* Calls tg_bucket; returns the row count (1) or a DB_* code. */
static int
bucket(struct arena *a, const char *uid, const char *name, int mode,
    const char *ws, struct dbrows *row)
{
	int	 rc = DB_FAIL, i;

	for (i = 0; i < TRIES; i++) {
		if ((rc = db_select(a, &q_bucket, row, "ssis", uid, name,
		    (long long)mode, ws)) != DB_RETRY)
			break;
		eng_pace(eng_now(), 0.001 * (1 + (i & 3)));
	}
	return rc;
}

/* The rate figures of a named bucket, from tg_bucket's row. */
static void
bucket_figures(const struct dbrows *row, struct eng_verdict *v)
{
	long long	 us = dbi(row, 0, 3);

	v->rate = dbi(row, 0, 1);
	v->remaining = v->rate - dbi(row, 0, 2);
	if (v->remaining < 0)
		v->remaining = 0;
	v->reset = us <= 0 ? 1 : (us + 999999) / 1000000;
}

/*
 * Decides a check whose location names a rate bucket (u locked): the
 * bucket is counted in the database (tg_bucket), in the rate's place in
 * the order.  A check refused before the rate (401, disabled, the role)
 * takes nothing; one refused after it gives its slot back, since the
 * rate counts allowed checks only.  u stays locked throughout, so the
 * look ahead and the decision see the same state.
 */
static void
decide_bucket(struct arena *a, struct eng_user *u,
    const struct eng_check *chk, bool recall, struct eng_verdict *v)
{
	struct eng_check	 look = *chk;
	struct dbrows		 row, back;
	const char		*ws;
	int			 rc;

	look.dry = true;
	decide_local(a, u, &look, recall, v);
	if (v->retry || !u->has_plan || (v->status != 204 &&
	    (strcmp(v->code, "account_disabled") == 0 ||
	    strcmp(v->code, "forbidden") == 0)))
		return;
	if ((rc = bucket(a, u->uid, chk->bucket, chk->dry ? 0 : 1, NULL,
	    &row)) != 1) {
		if (rc >= 0)
			log_err("bucket_result", " rows=%d", rc);
		v->status = 503, v->code = "unavailable";
		return;
	}
	if (dbi(&row, 0, 0) == 0) {
		v->status = 429, v->code = "rate_limited";
		bucket_figures(&row, v);
		return;
	}
	if (!chk->dry) {
		memset(v, 0, sizeof(*v));
		decide_local(a, u, chk, recall, v);
		ws = dbv(&row, 0, 4);
		if (v->status != 204 && bucket(a, u->uid, chk->bucket, -1, ws,
		    &back) == 1)
			row = back;
	}
	bucket_figures(&row, v);
}

/* Asks tg_lease; returns the row count (1) or a DB_* code. */
static int
lease(struct arena *a, const struct eng_check *chk, const struct needs *n,
    struct dbrows *row)
{
	char	 kind[2] = { chk->kind, '\0' };
	int	 rc = DB_FAIL, i;

	/*
	 * A lease whose answer was lost (the link died: DB_DOWN) may have
	 * been granted; asking again is still safe, since the database
	 * counts that slice as held until it expires: it is never granted
	 * twice, only not used.  So DB_DOWN is asked again too (on a fresh
	 * connection: a node that restarted leaves stale links behind).
	 */
	for (i = 0; i < TRIES; i++) {
		if ((rc = db_select(a, &q_lease, row, "sssssiiiii", eng->h.host,
		    kind, chk->a, chk->b, chk->meter, chk->cost,
		    (long long)cfg.trial_credits, n->rate, n->meter,
		    n->credits)) != DB_RETRY && (rc != DB_DOWN || i >= 2))
			break;
		/* The other party is another host: let it finish. */
		eng_pace(eng_now(), 0.001 * (1 + (i & 3)));
	}
	__atomic_fetch_add(&eng->h.n_lease, 1, __ATOMIC_RELAXED);
	return rc;
}

/* Journals a last_used_at touch at most once a minute per credential. */
static void
touch(const char *key, char kind, const char *obj, const char *uid)
{
	struct eng_cred	*c;
	struct eng_rec	 r;
	double		 now = eng_now();

	if ((c = eng_cred_get(key, false)) == NULL)
		return;
	if (c->touched + 60 > now) {
		eng_unlock(&c->lock);
		return;
	}
	c->touched = now;
	eng_unlock(&c->lock);
	memset(&r, 0, sizeof(r));
	r.type = REC_TOUCH;
	r.kind = kind == 'k' ? 'k' : 's';
	put(r.uid, sizeof(r.uid), uid);
	put(r.id, sizeof(r.id), obj);
	eng_journal_add(&r);
}

/*
 * Whether check chk, allowed with verdict v, was lost: it counts, but its
 * record found no room in the journal (the database has been away long
 * enough to fill it).  The caller answers 503.
 */
bool
eng_lost(const struct eng_check *chk, const struct eng_verdict *v)
{
	return v->status == 204 && v->wait_seq == 0 && chk->cost > 0 &&
	    !chk->dry && !v->in_db;
}

/*
 * Decides one check.  v->status is 204 or the denial's status (503 when
 * the database cannot be asked); v->wait_seq, when not 0, is the journal
 * record to wait for before answering; v->retry asks the caller to try
 * again after the next engine epoch (slices were recalled from other
 * hosts; at most ENG_RETRIES times: chk->tries counts the decisions).
 */
void
eng_decide(struct arena *a, struct eng_check *chk, struct eng_verdict *v)
{
	struct eng_cred		*c;
	struct eng_user		*u = NULL;
	struct dbrows		 row;
	struct needs		 n;
	char			 key[72], uid[ENG_ID] = "", obj[ENG_ID] = "";
	uint32_t		 uslot = 0;
	uint64_t		 ugen = 0;
	double			 now = eng_now();
	int			 rc, lockrc;
	bool			 known = false, recall = false;

	memset(v, 0, sizeof(*v));
	v->reset = 60;
	if (chk->kind == 'j')
		snprintf(key, sizeof(key), "j:%s:%s", chk->a, chk->b);
	else
		snprintf(key, sizeof(key), "%c:%s", chk->kind, chk->a);

	/* The credential: whose, and was that user's state current then. */
	if ((c = eng_cred_get(key, false)) != NULL) {
		if (c->uid[0] != '\0' && c->valid_until > now) {
			put(uid, sizeof(uid), c->uid);
			put(obj, sizeof(obj), c->obj);
			uslot = c->uslot;
			ugen = c->ugen;
			known = true;
		}
		c->last_use = now;
		eng_unlock(&c->lock);
	}
	if (known) {
		u = &eng->users[uslot];
		if (eng_lock(&u->lock) == 1)
			eng_user_drop(u, false);
		if (!u->taken || strcmp(u->uid, uid) != 0 || u->gen != ugen ||
		    !u->loaded) {
			eng_unlock(&u->lock);
			u = NULL;
			known = false;
		}
	}

	if (u != NULL) {
		needs_of(u, chk, &n);
		if (!n.any) {
			u->last_use = now;
			__atomic_fetch_add(&eng->h.n_local, 1, __ATOMIC_RELAXED);
			goto decide;
		}
	} else {
		n.any = true;
		n.rate = chk->bucket == NULL;
		n.meter = chk->cost;
		n.credits = strcmp(chk->meter, "credits") == 0 ? chk->cost : 0;
	}

	/* Ask the database (holding u's lock, if known, so one asks). */
	if ((rc = lease(a, chk, &n, &row)) != 1) {
		if (rc >= 0)
			log_err("lease_result", " rows=%d", rc);
		if (u != NULL)
			eng_unlock(&u->lock);
		v->status = 503, v->code = "unavailable";
		return;
	}
	if (dbi(&row, 0, L_STATUS) != 0) {
		if (u != NULL) {
			/* The credential went away under a cached user. */
			eng_unlock(&u->lock);
		}
		v->status = (int)dbi(&row, 0, L_STATUS);
		v->code = arena_strdup(a, dbv(&row, 0, L_CODE));
		return;
	}
	if ((recall = dbi(&row, 0, L_RECALL) != 0))
		__atomic_fetch_add(&eng->h.n_recall, 1, __ATOMIC_RELAXED);
	if (u == NULL) {
		put(uid, sizeof(uid), dbv(&row, 0, L_UID));
		put(obj, sizeof(obj), dbv(&row, 0, L_OBJ));
		if ((u = eng_user_get(uid, true, &lockrc)) == NULL) {
			log_warn("engine_full", " user=%s", uid);
			v->status = 503, v->code = "unavailable";
			return;
		}
	}
	take_lease(u, &row, chk->meter, &n);
	u->last_use = now;
	if ((c = eng_cred_get(key, true)) != NULL) {
		put(c->uid, sizeof(c->uid), uid);
		put(c->obj, sizeof(c->obj), obj);
		c->uslot = (uint32_t)(u - eng->users);
		c->ugen = u->gen;
		c->valid_until = u->valid_until;
		c->last_use = now;
		eng_unlock(&c->lock);
	}

decide:
	if (chk->bucket != NULL)
		decide_bucket(a, u, chk, recall, v);
	else
		decide_local(a, u, chk, recall, v);
	if (v->status != 204 && recall && chk->tries < ENG_RETRIES)
		v->retry = true;
	chk->tries++;
	eng_unlock(&u->lock);
	/* A bare user id (kind u) has no session or key to touch. */
	if (chk->kind != 'u' && !chk->dry && (v->status == 204 ||
	    (v->status != 401 && strcmp(v->code, "account_disabled") != 0)))
		touch(key, chk->kind, obj, uid);
}
