/*
 * Unit tests of the host's cap on concurrent password hashes
 * (src/core/hashcap.c): with every slot held a take waits its time and
 * is refused; a holder killed with SIGKILL gives its slot back to the
 * next taker; a slot given back is taken again at once.
 */
#include <sys/wait.h>

#include <signal.h>
#include <unistd.h>

#include "core/core.h"
#include "tap.h"

/* A child that takes a slot, says so on fd, and waits to be killed. */
static pid_t
holder(int fd)
{
	pid_t	 pid = fork();

	if (pid == 0) {
		char c = hashcap_take() ? 'y' : 'n';

		if (write(fd, &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	return pid;
}

int
main(void)
{
	int	 p[2];
	pid_t	 a, b;
	char	 c1 = 0, c2 = 0;
	double	 t0, waited;

	ok(hashcap_take(), "without the mapping every take succeeds");
	hashcap_give();
	ok(hashcap_init(2) == 0, "two slots mapped");
	if (pipe(p) < 0)
		return 1;
	a = holder(p[1]);
	b = holder(p[1]);
	ok(read(p[0], &c1, 1) == 1 && read(p[0], &c2, 1) == 1 &&
	    c1 == 'y' && c2 == 'y', "two holders take both slots");
	t0 = now_seconds();
	ok(!hashcap_take(), "a third take is refused");
	waited = now_seconds() - t0;
	ok(waited >= HASHCAP_WAIT_MS / 1000.0 - 0.05 &&
	    waited < HASHCAP_WAIT_MS / 1000.0 + 1.0,
	    "after waiting its time for a slot");
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	t0 = now_seconds();
	ok(hashcap_take(), "a holder killed with SIGKILL: its slot comes back");
	ok(now_seconds() - t0 < 0.5, "at once");
	hashcap_give();
	ok(hashcap_take(), "a slot given back is taken again");
	hashcap_give();
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
	return done_testing();
}
