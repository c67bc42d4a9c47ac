/*
 * The engine's shared file: a MAP_SHARED mapping that the master makes
 * (or finds, after a restart) and every gate worker and the engine
 * process inherit.  It outlives any of them, so the journal it holds is
 * replayed after a kill -9 of any process.  Locks are robust
 * process-shared mutexes: a process that dies holding one leaves it to
 * the next locker, who is told so (EOWNERDEAD) and repairs what it
 * guards.
 */
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

struct eng_region	*eng;
int			 eng_gate_fd[ENG_MAX_GATES];
int			 eng_engine_fd = -1;
int			 eng_flusher_fd = -1;

double
eng_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
eng_mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t	 at;
	int			 rc;

	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(m, &at);
	pthread_mutexattr_destroy(&at);
	return rc;
}

/*
 * Locks m.  Returns 0, or 1 when its last owner died holding it: the
 * caller must repair (or drop) what it guards.  The mutex is usable
 * again either way.
 */
int
eng_lock(pthread_mutex_t *m)
{
	int	 rc = pthread_mutex_lock(m);

	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(m);
		return 1;
	}
	return 0;
}

void
eng_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

/* FNV-1a: the slots' hash.  Keys are hashes or random ids already. */
uint64_t
eng_hash(const char *s)
{
	uint64_t	 h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/*
 * The shapes of the shared structs: a file made by a build whose structs
 * differ (even at the same total size) is not read, but made afresh.
 */
static uint64_t
eng_layout(void)
{
	return (uint64_t)sizeof(struct eng_hdr) * 1000003u ^
	    (uint64_t)sizeof(struct eng_user) * 10007u ^
	    (uint64_t)sizeof(struct eng_cred) * 101u ^
	    (uint64_t)sizeof(struct eng_rec) ^
	    (uint64_t)offsetof(struct eng_user, taken) << 40 ^
	    (uint64_t)offsetof(struct eng_user, m) << 48 ^
	    (uint64_t)offsetof(struct eng_hdr, n_local) << 32;
}

/* Makes a fresh region: every lock initialised, a new host id. */
static int
eng_init_fresh(struct eng_region *r, int ngates)
{
	struct arena	*a;
	size_t		 i;

	memset(&r->h, 0, sizeof(r->h));
	if (eng_mutex_init(&r->h.jlock) != 0)
		return -1;
	for (i = 0; i < ENG_USERS; i++)
		if (eng_mutex_init(&r->users[i].lock) != 0)
			return -1;
	for (i = 0; i < ENG_CREDS; i++)
		if (eng_mutex_init(&r->creds[i].lock) != 0)
			return -1;
	if ((a = arena_new()) == NULL)
		return -1;
	snprintf(r->h.host, sizeof(r->h.host), "%s", new_id(a));
	arena_free(a);
	r->h.size = sizeof(*r);
	r->h.layout = eng_layout();
	r->h.version = ENG_VERSION;
	r->h.ngates = (uint32_t)ngates;
	__atomic_store_n(&r->h.magic, ENG_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/*
 * Opens (or makes) the shared file at path and maps it; makes the event
 * fds for ngates gate workers and the engine.  A file left by an earlier
 * run keeps its journal and host id: what was not committed is replayed
 * by the engine process.  Returns 0 or -1 (logged).
 */
int
eng_open(const char *path, int ngates)
{
	struct stat	 st;
	struct eng_hdr	 h;
	void		*p;
	int		 fd, i;
	bool		 fresh;

	if (ngates > ENG_MAX_GATES)
		ngates = ENG_MAX_GATES;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_err("engine_open", " path=%s errno=%d", path, errno);
		return -1;
	}
	/*
	 * A file of another size, version or layout is emptied first: none
	 * of what it holds may be read with this build's structs.
	 */
	memset(&h, 0, sizeof(h));
	fresh = fstat(fd, &st) < 0 || st.st_size != (off_t)sizeof(*eng) ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    h.magic != ENG_MAGIC || h.version != ENG_VERSION ||
	    h.size != sizeof(*eng) || h.layout != eng_layout();
	if (fresh && (ftruncate(fd, 0) < 0 ||
	    ftruncate(fd, (off_t)sizeof(*eng)) < 0)) {
		log_err("engine_size", " path=%s errno=%d", path, errno);
		close(fd);
		return -1;
	}
	p = mmap(NULL, sizeof(*eng), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		log_err("engine_map", " path=%s errno=%d", path, errno);
		return -1;
	}
	eng = p;
	if (fresh && eng_init_fresh(eng, ngates) < 0) {
		log_err("engine_init", " path=%s", path);
		return -1;
	}
	eng->h.ngates = (uint32_t)ngates;
	for (i = 0; i < ngates; i++)
		if ((eng_gate_fd[i] = eventfd(0, EFD_NONBLOCK)) < 0)
			return -1;
	if ((eng_engine_fd = eventfd(0, EFD_NONBLOCK)) < 0 ||
	    (eng_flusher_fd = eventfd(0, EFD_NONBLOCK)) < 0)
		return -1;
	log_info("engine_open", " path=%s fresh=%d host=%s journal=%llu/%llu",
	    path, fresh, eng->h.host,
	    (unsigned long long)eng->h.jflushed,
	    (unsigned long long)eng->h.jhead);
	return 0;
}

static void
poke(int fd)
{
	uint64_t	 one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("engine_poke", " errno=%d", errno);
}

/* Wakes the engine process when it sleeps (it has nothing to do). */
void
eng_wake_engine(void)
{
	if (__atomic_exchange_n(&eng->h.engine_idle, 0, __ATOMIC_ACQ_REL))
		poke(eng_engine_fd);
}

/* Wakes the flusher when it sleeps (the journal was empty). */
void
eng_wake_flusher(void)
{
	if (__atomic_exchange_n(&eng->h.flusher_idle, 0, __ATOMIC_ACQ_REL))
		poke(eng_flusher_fd);
}

/*
 * Wakes every gate worker with checks waiting for why (ENG_WAIT_EPOCH
 * or ENG_WAIT_FLUSH); a worker whose checks still wait sets its bit
 * again.
 */
void
eng_wake_gates(uint32_t why)
{
	uint32_t	 i;

	for (i = 0; i < eng->h.ngates && i < ENG_MAX_GATES; i++)
		if (__atomic_fetch_and(&eng->h.gate_waiting[i], ~why,
		    __ATOMIC_ACQ_REL) & why)
			poke(eng_gate_fd[i]);
}

/*
 * The signals of a process the master forked (a gate worker, the engine,
 * the flusher): SIGTERM calls on_term (stop when done), SIGPIPE, SIGHUP
 * and SIGINT are ignored, and nothing stays blocked from the master.
 */
void
eng_signals(void (*on_term)(int))
{
	struct sigaction	 sa;
	sigset_t		 none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Sleeps until gap seconds after started (now, when that is past). */
void
eng_pace(double started, double gap)
{
	struct timespec	 ts;
	double		 left = started + gap - eng_now();

	if (left <= 0)
		return;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(left * 1e9);
	nanosleep(&ts, NULL);
}

/*
 * Sleeps up to ms milliseconds on fd, unless busy() says there is work
 * already; *idle tells the processes that feed it to poke fd.
 */
void
eng_doze(int fd, uint32_t *idle, int ms, bool (*busy)(void))
{
	struct pollfd	 p = { fd, POLLIN, 0 };
	uint64_t	 n;

	__atomic_store_n(idle, 1, __ATOMIC_SEQ_CST);
	if (busy == NULL || !busy())
		poll(&p, 1, ms);
	__atomic_store_n(idle, 0, __ATOMIC_SEQ_CST);
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("engine_read", " errno=%d", errno);
}

/*
 * Appends the engine's figures to /metrics (Prometheus text): how checks
 * were decided (in memory or through a lease), lease traffic, the
 * journal's commits and what waits in it, and change-log drops.
 */
void
eng_metrics_render(struct buf *b)
{
	const struct eng_hdr	*h;

	if (eng == NULL)
		return;
	h = &eng->h;
#define LD(x) ((unsigned long long)__atomic_load_n(&(x), __ATOMIC_RELAXED))
	buf_printf(b, "# HELP tollgate_gate_engine_total The gate engine's "
	    "work, by kind.\n# TYPE tollgate_gate_engine_total counter\n"
	    "tollgate_gate_engine_total{kind=\"decided_in_memory\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"lease\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"lease_recalled\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"lease_returned\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"flush\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"flush_failed\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"journal_record\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"change\"} %llu\n"
	    "tollgate_gate_engine_total{kind=\"iteration\"} %llu\n"
	    "# HELP tollgate_gate_engine_iteration_seconds_total Time the "
	    "engine spent polling and committing.\n"
	    "# TYPE tollgate_gate_engine_iteration_seconds_total counter\n"
	    "tollgate_gate_engine_iteration_seconds_total %.6f\n"
	    "# HELP tollgate_gate_journal_pending Journal records not yet "
	    "committed.\n# TYPE tollgate_gate_journal_pending gauge\n"
	    "tollgate_gate_journal_pending %llu\n",
	    LD(h->n_local), LD(h->n_lease), LD(h->n_recall), LD(h->n_return),
	    LD(h->n_flush), LD(h->n_flush_fail), LD(h->n_flushed_recs),
	    LD(h->n_changes), LD(h->n_iter), (double)LD(h->iter_us) / 1e6,
	    LD(h->jhead) - LD(h->jflushed));
#undef LD
}
