/*
 * The engine process, one per host: in a loop it polls the change log
 * (dropping what the cache holds for the users named there, and giving
 * back their slices), then moves the epoch and wakes the gate workers.
 * A gate check waits for an epoch that began after it arrived, so it
 * sees every change committed before it.  Now and then it deletes leases
 * that ran out (a dead host's slices come back that way) and old
 * change-log rows.  It sleeps when no check waits.  The journal is
 * committed by the flusher process (flusher.c), beside it, so a slow
 * COMMIT never holds the barrier up.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

#define SEEN_MAX	16384	/* change ids remembered above the floor */
#define GAP_WAIT	5.0	/* seconds an id gap may stay open */
/*
 * Polls begin at most this often: every check that comes meanwhile
 * passes on the next one, so under load a poll serves many checks, and
 * the database answers at most 1,000 polls a second however many checks
 * come (without it, each check woke the engine for a poll of its own).
 * A check waits half of it on average.
 */
#define POLL_GAP	0.001

static struct sql q_changes = SQL(
    "SELECT id, user_id FROM gate_changes WHERE id > ? ORDER BY id "
    "LIMIT 5000");
static struct sql q_max_change = SQL(
    "SELECT COALESCE(MAX(id), 0) FROM gate_changes");
static struct sql q_sweep_leases = SQL(
    "DELETE FROM gate_leases WHERE expires_at < UTC_TIMESTAMP(6) - "
    "INTERVAL 60 SECOND LIMIT 1000");
static struct sql q_sweep_changes = SQL(
    "DELETE FROM gate_changes WHERE at < UTC_TIMESTAMP(6) - INTERVAL 1 HOUR "
    "LIMIT 10000");

static volatile sig_atomic_t	 stopping;

/* Change ids above the floor that were applied, and when ids were seen. */
static uint64_t	 seen[SEEN_MAX];
static size_t	 nseen;
static uint64_t	 floor_id;
static struct { double at; uint64_t max; } marks[64];
static size_t	 nmarks;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static bool
was_seen(uint64_t id)
{
	size_t	 i;

	for (i = 0; i < nseen; i++)
		if (seen[i] == id)
			return true;
	return false;
}

/* Drops (with give-back) every slot of uid; NULL: every user. */
static void
drop_user(const char *uid)
{
	uint64_t	 h;
	size_t		 i;
	struct eng_user	*u;

	if (uid == NULL) {
		for (i = 0; i < ENG_USERS; i++) {
			u = &eng->users[i];
			if (!__atomic_load_n(&u->taken, __ATOMIC_ACQUIRE))
				continue;
			eng_lock(&u->lock);
			eng_user_drop(u, true);
			eng_unlock(&u->lock);
		}
		return;
	}
	h = eng_hash(uid);
	for (i = 0; i < ENG_PROBE; i++) {
		u = &eng->users[(h + i) & (ENG_USERS - 1)];
		if (!__atomic_load_n(&u->taken, __ATOMIC_ACQUIRE) ||
		    strcmp(u->uid, uid) != 0)
			continue;
		eng_lock(&u->lock);
		if (u->taken && strcmp(u->uid, uid) == 0)
			eng_user_drop(u, true);
		eng_unlock(&u->lock);
	}
}

/*
 * Reads the change log past the floor and drops the users it names.
 * Ids may commit out of order (and Galera leaves gaps), so ids above the
 * floor are remembered, and the floor moves only past ids seen GAP_WAIT
 * seconds ago.  Returns 0 or a DB_* code.
 */
static int
poll_changes(struct arena *a)
{
	struct dbrows	 rows;
	double		 now = eng_now();
	uint64_t	 id, max = floor_id;
	size_t		 i, k;
	int		 rc;

	if ((rc = db_select(a, &q_changes, &rows, "i", (long long)floor_id)) < 0)
		return rc;
	for (i = 0; i < rows.n; i++) {
		id = (uint64_t)dbi(&rows, i, 0);
		if (id > max)
			max = id;
		if (was_seen(id))
			continue;
		drop_user(dbv(&rows, i, 1));
		__atomic_fetch_add(&eng->h.n_changes, 1, __ATOMIC_RELAXED);
		if (nseen < SEEN_MAX)
			seen[nseen++] = id;
		else
			floor_id = id;	/* overflow: move on, never stall */
	}
	/* Remember the highest id of this poll, and move the floor. */
	if (nmarks == 0 || marks[nmarks - 1].at + 0.5 < now) {
		if (nmarks == sizeof(marks) / sizeof(marks[0])) {
			memmove(marks, marks + 1, sizeof(marks[0]) * (nmarks - 1));
			nmarks--;
		}
		marks[nmarks].at = now;
		marks[nmarks].max = max;
		nmarks++;
	}
	while (nmarks > 0 && marks[0].at + GAP_WAIT < now) {
		if (marks[0].max > floor_id)
			floor_id = marks[0].max;
		memmove(marks, marks + 1, sizeof(marks[0]) * (nmarks - 1));
		nmarks--;
	}
	for (i = k = 0; i < nseen; i++)
		if (seen[i] > floor_id)
			seen[k++] = seen[i];
	nseen = k;
	return 0;
}

/* True when a gate worker has checks waiting for an epoch. */
static bool
gates_waiting(void)
{
	uint32_t	 i;

	for (i = 0; i < eng->h.ngates && i < ENG_MAX_GATES; i++)
		if (__atomic_load_n(&eng->h.gate_waiting[i], __ATOMIC_ACQUIRE) &
		    ENG_WAIT_EPOCH)
			return true;
	return false;
}


/* Starts or renews a check's wait for the barrier (engine.h). */
void
eng_barrier_set(struct eng_barrier *b)
{
	/* A check that came when started was s waits for epoch s + 1. */
	b->until = __atomic_load_n(&eng->h.started, __ATOMIC_SEQ_CST) + 1;
	if (b->t0 == 0) {
		b->t0 = eng_now();
		b->fails = __atomic_load_n(&eng->h.fails, __ATOMIC_ACQUIRE);
	}
}

/* 1: the barrier is passed; 0: not yet; -1: not in time (engine.h). */
int
eng_barrier_state(const struct eng_barrier *b)
{
	if (__atomic_load_n(&eng->h.epoch, __ATOMIC_ACQUIRE) >= b->until)
		return 1;
	if (__atomic_load_n(&eng->h.fails, __ATOMIC_ACQUIRE) > b->fails + 1 ||
	    eng_now() - b->t0 > ENG_BARRIER_WAIT)
		return -1;
	return 0;
}

void
eng_engine_run(void)
{
	struct arena		*a;
	struct dbrows		 row;
	double			 now, next_sweep = 0, stop_at = 0;
	int			 rc;
	bool			 ready = false;

	eng_signals(on_term);
	if ((a = arena_new()) == NULL)
		_exit(1);
	log_info("engine_start", " host=%s", eng->h.host);

	for (now = 0;;) {
		eng_pace(now, POLL_GAP);
		/*
		 * A check that came when started was s waits for epoch s + 1:
		 * an iteration whose poll began after it came (eng_barrier_set).
		 */
		uint64_t e = __atomic_add_fetch(&eng->h.started, 1,
		    __ATOMIC_SEQ_CST);

		now = eng_now();
		rc = 0;
		if (!ready) {
			/*
			 * Changes made while no engine polled are unknown:
			 * start from the log's end with an empty cache.
			 */
			if ((rc = db_select(a, &q_max_change, &row, "")) == 1) {
				floor_id = (uint64_t)dbi(&row, 0, 0);
				nseen = nmarks = 0;
				drop_user(NULL);
				ready = true;
			}
		} else
			rc = poll_changes(a);
		__atomic_fetch_add(&eng->h.n_iter, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&eng->h.iter_us, (uint64_t)((eng_now() -
		    now) * 1e6), __ATOMIC_RELAXED);
		if (now >= next_sweep && rc >= 0) {
			db_exec(&q_sweep_leases, "");
			db_exec(&q_sweep_changes, "");
			next_sweep = now + 1;
		}
		arena_reset(a);
		/*
		 * Only an epoch whose poll worked counts as one: a check
		 * must never pass a barrier on a cache nobody refreshed.
		 */
		if (rc >= 0 && ready)
			__atomic_store_n(&eng->h.epoch, e, __ATOMIC_RELEASE);
		else
			__atomic_fetch_add(&eng->h.fails, 1, __ATOMIC_RELEASE);
		eng_wake_gates(ENG_WAIT_EPOCH);
		if (stopping) {
			if (stop_at == 0)
				stop_at = now + 10;
			if (!gates_waiting() || now > stop_at)
				break;
		}
		if (rc < 0)
			eng_doze(eng_engine_fd, &eng->h.engine_idle, 100, NULL);
		else if (!gates_waiting()) {
			eng_doze(eng_engine_fd, &eng->h.engine_idle, 1000,
			    gates_waiting);
			db_idle();
		}
	}
	db_close();
	log_info("engine_stop", "%s", "");
	exit(0);
}
