/*
 * The gate engine (issue 14): gate checks decided in memory on each host,
 * exact across hosts through leases, with every count and spend written
 * by a flusher in batches before the check is answered.
 *
 * Processes: the master makes the shared file (shm.c) and forks the gate
 * workers (hop.c: an epoll loop answering nginx's auth subrequests over
 * HTTP/1.1 keep-alive) and one engine process (flusher.c: polls the
 * change log, commits the journal, gives leases back).  Everything they
 * share lives in the file, so any of them may be killed and restarted.
 */
#ifndef TG_ENGINE_H
#define TG_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "db/db.h"

#define ENG_MAGIC	0x31454754u	/* "TGE1" */
#define ENG_VERSION	5
#define ENG_USERS	16384		/* user slots (a power of two) */
#define ENG_CREDS	32768		/* credential slots (a power of two) */
#define ENG_PROBE	32		/* slots tried before giving up */
#define ENG_METERS	4		/* meters cached per user */
#define ENG_JOURNAL	65536		/* journal records (a power of two) */
#define ENG_MAX_GATES	64
#define ENG_ID		23		/* an id of 22 characters, NUL */
#define ENG_NAME	65		/* a slug of 64 characters, NUL */
#define ENG_TIME	27		/* "YYYY-MM-DD hh:mm:ss.uuuuuu", NUL */

/* One meter's state for one user: its limit and this host's slice. */
struct eng_meter {
	char		 name[ENG_NAME];
	bool		 limited;
	int64_t		 limit;
	int64_t		 base;		/* limit - used - all reserved, at lease */
	int64_t		 avail;		/* this host's unused slice */
	double		 until;		/* the slice's end (monotonic) */
	double		 no_until;	/* none left: refuse here until then */
	int64_t		 no_need;	/* a need this large (or larger) */
	bool		 level;		/* a level meter: decided in the DB */
	uint8_t		 noticed;	/* 80 and 100 % notices queued (bits) */
};

/* A user's state and this host's leases, under its robust mutex. */
struct eng_user {
	pthread_mutex_t	 lock;
	bool		 taken;
	char		 uid[ENG_ID];
	uint64_t	 gen;		/* bumped when the state is dropped */
	bool		 loaded;
	double		 valid_until;	/* CLOCK_MONOTONIC seconds */
	double		 last_use;
	bool		 disabled, verified, has_plan, is_trial, paying;
	char		 plan[ENG_NAME];
	char		 next[128];	/* the next plan up, for messages */
	char		 role[16];	/* "user" or "admin" */
	char		 period_start[ENG_TIME];
	char		 period_end[ENG_TIME];
	int64_t		 rate;
	char		 window_start[ENG_TIME];
	double		 window_end;	/* CLOCK_MONOTONIC */
	int64_t		 rate_base;	/* rate - slots granted to all hosts */
	int64_t		 rate_avail;	/* this host's unused slots */
	double		 rate_no_until;	/* none left: refuse here until then */
	bool		 cred_loaded;
	int64_t		 cred_base;	/* balance - everything reserved */
	int64_t		 cred_avail;	/* this host's unused credits */
	double		 cred_until;	/* the slice's end (monotonic) */
	double		 cred_no_until;	/* none left: refuse here until then */
	int64_t		 cred_no_need;	/* a need this large (or larger) */
	struct eng_meter m[ENG_METERS];
};

/* A credential seen before: whose it is. */
struct eng_cred {
	pthread_mutex_t	 lock;
	bool		 taken;
	char		 key[72];	/* kind, then the hash or "sid uid" */
	char		 uid[ENG_ID];
	char		 obj[ENG_ID];	/* session or key id */
	uint32_t	 uslot;		/* its user's slot */
	uint64_t	 ugen;		/* that user's gen when it was checked */
	double		 valid_until;	/* CLOCK_MONOTONIC */
	double		 touched;	/* last_used_at written (monotonic) */
	double		 last_use;
};

/* A journal record: one count, spend or refusal, or a last_used touch. */
enum eng_rec_type { REC_USE = 1, REC_REFUSE, REC_TOUCH };

struct eng_rec {
	uint64_t	 seq;		/* published when equal to its number */
	uint8_t		 type;
	bool		 leased;	/* counted against a meter/credit lease */
	bool		 paying;	/* also goes to Stripe's meter queue */
	char		 kind;		/* REC_TOUCH: 's' session, 'k' key */
	char		 uid[ENG_ID];
	char		 id[ENG_ID];	/* ledger row id, or the touched id */
	char		 meter[ENG_NAME];
	char		 period_start[ENG_TIME];
	char		 period_end[ENG_TIME];
	char		 day[11];
	int64_t		 cost;
	int64_t		 balance_after;
};

/* The shared file's header. */
struct eng_hdr {
	uint32_t	 magic, version;
	uint64_t	 size;
	uint64_t	 layout;	/* eng_layout(): the structs' shapes */
	char		 host[ENG_ID];	/* this host's id in gate_hosts */
	pthread_mutex_t	 jlock;		/* journal appends */
	uint64_t	 jhead;		/* last record published */
	uint64_t	 jflushed;	/* last record committed */
	uint64_t	 started;	/* engine iterations begun */
	uint64_t	 epoch;		/* the last iteration completed */
	uint64_t	 fails;		/* iterations the database failed */
	uint32_t	 engine_idle;	/* the engine sleeps: wake it */
	uint32_t	 flusher_idle;	/* the flusher sleeps: wake it */
	uint32_t	 ngates;
	uint32_t	 gate_waiting[ENG_MAX_GATES];
	/* Figures for /metrics. */
	uint64_t	 n_local, n_lease, n_recall, n_return, n_flush,
			 n_flushed_recs, n_changes, n_flush_fail,
			 n_iter, iter_us;
};

struct eng_region {
	struct eng_hdr	 h;
	struct eng_user	 users[ENG_USERS];
	struct eng_cred	 creds[ENG_CREDS];
	struct eng_rec	 journal[ENG_JOURNAL];
};

extern struct eng_region *eng;
/* Event fds (made by the master): one per gate worker, one for the engine. */
extern int	 eng_gate_fd[ENG_MAX_GATES];
extern int	 eng_engine_fd;
extern int	 eng_flusher_fd;

/* Why a gate worker waits (bits of gate_waiting). */
#define ENG_WAIT_EPOCH	1
#define ENG_WAIT_FLUSH	2

/* shm.c */
int		 eng_open(const char *path, int ngates);
double		 eng_now(void);
int		 eng_lock(pthread_mutex_t *);
void		 eng_unlock(pthread_mutex_t *);
int		 eng_mutex_init(pthread_mutex_t *);
uint64_t	 eng_hash(const char *);
void		 eng_wake_engine(void);
void		 eng_wake_flusher(void);
void		 eng_wake_gates(uint32_t why);
void		 eng_doze(int fd, uint32_t *idle, int ms, bool (*busy)(void));
void		 eng_pace(double started, double gap);
void		 eng_signals(void (*on_term)(int));
void		 eng_metrics_render(struct buf *);

/* cache.c */
struct eng_user	*eng_user_get(const char *uid, bool create, int *lockrc);
struct eng_cred	*eng_cred_get(const char *key, bool create);
void		 eng_user_drop(struct eng_user *, bool give_back);
struct eng_meter *eng_meter_get(struct eng_user *, const char *meter,
		    bool create);

/* journal.c */
uint64_t	 eng_journal_add(const struct eng_rec *);
bool		 eng_journal_wait(uint64_t seq, double max);
bool		 eng_journal_settle(double max);
int		 eng_flush(struct arena *);

/* decide.c: the outcome of one check. */
struct eng_verdict {
	int		 status;	/* 204, or the real status of a denial */
	const char	*code;
	const char	*uid, *plan;
	long long	 credits;
	long long	 rate, remaining, reset;
	const char	*next;		/* the next plan's name, for messages */
	const char	*role;		/* the user's role (NULL: unknown) */
	bool		 m_limited;	/* the plan limits the check's meter */
	long long	 m_limit;	/* that limit, */
	long long	 m_remaining;	/* and what is left of it (>= 0) */
	bool		 in_db;		/* counted in the database already
					   (a level meter): nothing to wait
					   for */
	uint64_t	 wait_seq;	/* answer once the journal has this */
	bool		 retry;		/* recalled: ask again after an epoch */
	int		 notice;	/* 80 or 100: the meter crossed it */
	long long	 used, limit;	/* the meter's, for the notice */
	const char	*period_start;	/* the meter's period, for the notice */
};

struct eng_check {
	char		 kind;		/* 'j' (a: sid, b: uid), 'k' (a: key
					   hash), 'c' (a: cookie hash), 'u'
					   (a: a bare user id) */
	const char	*a, *b;
	const char	*meter;
	long long	 cost;
	int		 tries;		/* decisions so far (eng_decide counts) */
	bool		 dry;		/* decide, but count nothing */
	const char	*bucket;	/* a named rate bucket, or NULL */
	const char	*role;		/* the role required, or NULL */
};

void		 eng_decide(struct arena *, struct eng_check *,
		    struct eng_verdict *);
bool		 eng_lost(const struct eng_check *, const struct eng_verdict *);

/*
 * The gate's barrier: a check is decided after an engine iteration that
 * began after it arrived, so it sees every change committed before it
 * (on every host).  eng_barrier_set starts (or, for a new try, renews)
 * the wait of a zeroed b; eng_barrier_state says 1 once it is passed, 0
 * while it is not, and -1 when it never will be in time: the engine
 * cannot reach the database, or ENG_BARRIER_WAIT seconds passed since
 * the first set (answer 503, fail closed).  A check counted in the
 * journal is answered within ENG_COMMIT_WAIT seconds of its decision
 * when its COMMIT is awaited, else 503.
 */
#define ENG_BARRIER_WAIT	5.0
#define ENG_COMMIT_WAIT		3.0
/* After a recall, a check is decided again at most this many times. */
#define ENG_RETRIES		2

struct eng_barrier {
	uint64_t	 until;		/* the epoch awaited */
	uint64_t	 fails;		/* the engine's failures at the start */
	double		 t0;		/* the first set */
};

void		 eng_barrier_set(struct eng_barrier *);
int		 eng_barrier_state(const struct eng_barrier *);

/* poller.c: the engine process; flusher.c: the flusher process. */
void		 eng_engine_run(void) __attribute__((noreturn));
void		 eng_flusher_run(void) __attribute__((noreturn));

#endif
