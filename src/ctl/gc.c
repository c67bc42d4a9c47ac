/*
 * tollgatectl gc: purges expired rows (gc_core in src/app/gc.c) and the
 * guests never claimed ([guest] days idle; guest_gc), and says how many
 * of each kind went.  Run it from a timer (the Debian package's
 * tollgate-gc.timer, or cron), daily or more often.
 */
#include <stdio.h>

#include "ctl/ctl.h"

/* gc: exit 0 when the purge ran, 1 when the database failed, 2 on usage. */
int
ctl_gc(int argc, char *argv[])
{
	long long	 counts[GC_KINDS];
	struct arena	*a;
	int		 rc, k, guests;

	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: tollgatectl gc\n");
		return 2;
	}
	rc = gc_core(counts);
	for (k = 0; k < GC_KINDS; k++)
		printf("%s: %lld purged\n", gc_names[k], counts[k]);
	/* Guests never claimed, idle for [guest] days (the sender does it too). */
	if (rc == 0 && (a = arena_new()) != NULL) {
		if ((guests = guest_gc(a)) < 0)
			rc = guests;
		else
			printf("idle guests: %d deleted\n", guests);
		arena_free(a);
	}
	db_close();
	if (rc < 0)
		return ctl_db_fail("gc", rc);
	return 0;
}
