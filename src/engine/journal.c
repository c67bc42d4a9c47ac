/*
 * The journal: a ring of records in the shared file.  A gate worker
 * appends under the journal's robust mutex and publishes the record by
 * moving jhead last, so a worker killed half-way leaves nothing the
 * flusher would read (the next writer takes the same slot).  The flusher
 * commits records jflushed+1..jhead in one CALL of tg_flush, which also
 * records the last sequence number in gate_hosts: a batch is applied
 * exactly once, whether the flusher, the master or the whole tollgate
 * dies before or after the COMMIT.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "engine/engine.h"

#define BATCH_MAX	4096	/* records per transaction */

static struct sql q_flush = SQL("CALL tg_flush(?, ?, ?, ?, ?)");

/*
 * Appends r; returns its sequence number, or 0 when the ring is full of
 * records not yet committed (the database is down: answer 503).
 */
uint64_t
eng_journal_add(const struct eng_rec *r)
{
	struct eng_rec	*slot;
	uint64_t	 seq;

	eng_lock(&eng->h.jlock);
	seq = eng->h.jhead + 1;
	if (seq - __atomic_load_n(&eng->h.jflushed, __ATOMIC_ACQUIRE) >=
	    ENG_JOURNAL) {
		eng_unlock(&eng->h.jlock);
		return 0;
	}
	slot = &eng->journal[seq & (ENG_JOURNAL - 1)];
	memcpy(slot, r, sizeof(*slot));
	slot->seq = seq;
	__atomic_store_n(&eng->h.jhead, seq, __ATOMIC_RELEASE);
	eng_unlock(&eng->h.jlock);
	eng_wake_flusher();
	return seq;
}

/*
 * Waits, at most max seconds, until the journal's record seq is
 * committed, waking the flusher.  False when it was not in time (the
 * database is away).
 */
bool
eng_journal_wait(uint64_t seq, double max)
{
	struct timespec	 ts = { 0, 200000 };
	double		 until;

	if (eng == NULL)
		return true;
	until = eng_now() + max;
	while (__atomic_load_n(&eng->h.jflushed, __ATOMIC_ACQUIRE) < seq) {
		if (eng_now() > until)
			return false;
		eng_wake_flusher();
		nanosleep(&ts, NULL);
	}
	return true;
}

/*
 * Waits, at most max seconds, until every record published before the
 * call is committed.  Checks are answered once their records are in the
 * journal ([server] gate_wait_commit = no), so a request that reads what
 * checks counted (usage, credits, the ledger) calls this first and sees
 * every check this host answered before it.  False: the flusher did not
 * get there in time; the caller reads anyway.
 */
bool
eng_journal_settle(double max)
{
	if (eng == NULL)
		return true;
	return eng_journal_wait(__atomic_load_n(&eng->h.jhead,
	    __ATOMIC_ACQUIRE), max);
}

/* Adds one record to the batch's JSON array. */
static void
rec_json(struct json_object *arr, const struct eng_rec *r)
{
	struct json_object	*o = json_object_new_object();
	static const char	*types = "?urt";

	json_object_object_add(o, "s", json_object_new_uint64(r->seq));
	json_object_object_add(o, "t", json_object_new_string_len(
	    &types[r->type < 4 ? r->type : 0], 1));
	json_object_object_add(o, "u", json_object_new_string(r->uid));
	if (r->id[0] != '\0')
		json_object_object_add(o, "i", json_object_new_string(r->id));
	if (r->type == REC_TOUCH) {
		json_object_object_add(o, "k", json_object_new_string_len(
		    &r->kind, 1));
		json_object_array_add(arr, o);
		return;
	}
	json_object_object_add(o, "m", json_object_new_string(r->meter));
	if (r->period_start[0] != '\0')
		json_object_object_add(o, "ps",
		    json_object_new_string(r->period_start));
	if (r->period_end[0] != '\0')
		json_object_object_add(o, "pe",
		    json_object_new_string(r->period_end));
	json_object_object_add(o, "d", json_object_new_string(r->day));
	json_object_object_add(o, "c", json_object_new_int64(r->cost));
	json_object_object_add(o, "b", json_object_new_int64(r->balance_after));
	json_object_object_add(o, "l", json_object_new_int(r->leased));
	json_object_object_add(o, "p", json_object_new_int(r->paying));
	json_object_array_add(arr, o);
}

/*
 * Commits what the journal holds beyond jflushed when it is called, in
 * batches of at most BATCH_MAX; records published meanwhile wait for the
 * next call (else, under load, it would go on committing a few records
 * at a time and the flusher's pacing would never apply).  Returns the
 * number of records committed, or a DB_* code (nothing moved; the
 * records stay for the next try).
 */
int
eng_flush(struct arena *a)
{
	struct json_object	*arr;
	struct dbrows		 row;
	uint64_t		 from, to, s, head;
	int			 rc, total = 0;

	head = __atomic_load_n(&eng->h.jhead, __ATOMIC_ACQUIRE);
	for (;;) {
		from = __atomic_load_n(&eng->h.jflushed, __ATOMIC_ACQUIRE) + 1;
		if (head < from)
			return total;
		to = head - from + 1 > BATCH_MAX ? from + BATCH_MAX - 1 : head;
		arr = json_object_new_array();
		for (s = from; s <= to; s++) {
			const struct eng_rec *r =
			    &eng->journal[s & (ENG_JOURNAL - 1)];

			if (r->seq == s)
				rec_json(arr, r);
		}
		rc = db_select(a, &q_flush, &row, "siiis", eng->h.host,
		    (long long)from, (long long)to,
		    (long long)cfg.stripe_report_interval,
		    json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
		json_object_put(arr);
		if (rc != 1) {
			__atomic_fetch_add(&eng->h.n_flush_fail, 1,
			    __ATOMIC_RELAXED);
			log_warn("flush_failed", " from=%llu to=%llu rc=%d",
			    (unsigned long long)from, (unsigned long long)to,
			    rc);
			return rc < 0 ? rc : DB_FAIL;
		}
		/* The database's word wins: it may be ahead after a restart. */
		s = (uint64_t)dbi(&row, 0, 0);
		if (s < to)
			s = to;
		__atomic_store_n(&eng->h.jflushed, s, __ATOMIC_RELEASE);
		__atomic_fetch_add(&eng->h.n_flush, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&eng->h.n_flushed_recs, to - from + 1,
		    __ATOMIC_RELAXED);
		total += (int)(to - from + 1);
	}
}
