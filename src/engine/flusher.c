/*
 * The flusher process, one per host: it commits the journal (journal.c)
 * whenever it holds records, and wakes the gate workers whose checks
 * wait for their records.  A kill -9 loses nothing: the journal is in the
 * shared file, and the next flusher commits it (once: tg_flush knows the
 * host's last committed sequence number).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

/*
 * With [server] gate_wait_commit = no nobody waits for a COMMIT, so
 * transactions begin at most this often: under load each carries every
 * record of the last 10 ms (a few hundred checks) instead of the few
 * that came during the last COMMIT.  (Waiting checks flush at once.)
 */
#define FLUSH_GAP	0.010

static volatile sig_atomic_t	 stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static bool
journal_pending(void)
{
	return __atomic_load_n(&eng->h.jhead, __ATOMIC_ACQUIRE) >
	    __atomic_load_n(&eng->h.jflushed, __ATOMIC_ACQUIRE);
}

void
eng_flusher_run(void)
{
	struct arena		*a;
	double			 stop_at = 0, started = 0;
	int			 rc;

	eng_signals(on_term);
	if ((a = arena_new()) == NULL)
		_exit(1);
	log_info("flusher_start", " host=%s journal=%llu/%llu", eng->h.host,
	    (unsigned long long)eng->h.jflushed,
	    (unsigned long long)eng->h.jhead);
	for (;;) {
		if (!cfg.gate_wait_commit && !stopping)
			eng_pace(started, FLUSH_GAP);
		started = eng_now();
		rc = eng_flush(a);
		arena_reset(a);
		eng_wake_gates(ENG_WAIT_FLUSH);
		if (stopping) {
			if (stop_at == 0)
				stop_at = eng_now() + 10;
			if (!journal_pending() || eng_now() > stop_at)
				break;
		}
		if (rc < 0)
			eng_doze(eng_flusher_fd, &eng->h.flusher_idle, 100, NULL);
		else if (!journal_pending()) {
			eng_doze(eng_flusher_fd, &eng->h.flusher_idle, 1000,
			    journal_pending);
			db_idle();
		}
	}
	db_close();
	log_info("flusher_stop", " journal=%llu/%llu",
	    (unsigned long long)eng->h.jflushed,
	    (unsigned long long)eng->h.jhead);
	exit(0);
}
