/*
 * The host's cap on concurrent password hashes: at most [limits]
 * password_hashes Argon2id computations run at once across all the
 * workers (every core but one by default), so sign-ups, logins and
 * resets can never keep every core busy and the gate always has one.
 *
 * The slots live in an anonymous shared mapping the master makes before
 * it forks.  A slot holds the pid of the worker hashing in it; a worker
 * killed while it held one (kill -9) leaves its pid there, and the next
 * worker that finds the slot full checks that pid and takes the slot
 * back.  A hash waits for a slot up to HASHCAP_WAIT_MS and is refused
 * after that (TG_BUSY: 503 with Retry-After).  Without the mapping
 * (tollgatectl, the sender, unit tests) every take succeeds.
 */
#include <sys/mman.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

#define MAX_SLOTS	64

struct hashcap {
	int		 n;
	volatile pid_t	 slot[MAX_SLOTS];
};

static struct hashcap	*cap;
static int		 held = -1;	/* this process's slot, or -1 */

int
hashcap_init(int slots)
{
	void	*p;

	if (slots < 1)
		slots = 1;
	if (slots > MAX_SLOTS)
		slots = MAX_SLOTS;
	p = mmap(NULL, sizeof(struct hashcap), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	memset(p, 0, sizeof(struct hashcap));
	cap = p;
	cap->n = slots;
	return 0;
}

/* True when pid is no process any more (its slot may be taken back). */
static bool
gone(pid_t pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* One pass over the slots.  True with a slot held. */
static bool
try_once(pid_t me)
{
	pid_t	 cur;
	int	 i;

	for (i = 0; i < cap->n; i++) {
		cur = cap->slot[i];
		if (cur == 0 && __sync_bool_compare_and_swap(&cap->slot[i], 0,
		    me)) {
			held = i;
			return true;
		}
		/*
		 * A dead holder's slot, or one left by an earlier process
		 * that had this very pid (this one holds none: held < 0).
		 */
		if (cur != 0 && (cur == me || gone(cur)) &&
		    __sync_bool_compare_and_swap(&cap->slot[i], cur, me)) {
			log_warn("hashcap_reclaim", " pid=%d", (int)cur);
			held = i;
			return true;
		}
	}
	return false;
}

bool
hashcap_take(void)
{
	struct timespec	 nap = { 0, 2 * 1000 * 1000 };
	double		 end;
	pid_t		 me;

	if (cap == NULL)
		return true;
	if (held >= 0)
		return true;	/* nested: already counted */
	me = getpid();
	end = now_seconds() + HASHCAP_WAIT_MS / 1000.0;
	for (;;) {
		if (try_once(me))
			return true;
		if (now_seconds() >= end)
			return false;
		nanosleep(&nap, NULL);
	}
}

void
hashcap_give(void)
{
	if (cap == NULL || held < 0)
		return;
	__sync_bool_compare_and_swap(&cap->slot[held], getpid(), 0);
	held = -1;
}
