/*
 * contrib/bench/pwhash.c: how many crypto_pwhash_str_verify calls a
 * second this machine does, at tollgate's Argon2id cost, on one core and
 * on every core at once.  Only for contrib/bench/login; not part of
 * tollgate.
 *
 *   pwhash [memory_kib [iterations [seconds [threads]]]]
 *
 * Defaults: 19456 KiB, 2 iterations (tollgate's defaults), 5 seconds,
 * the number of online cores.  Prints "single N" and "all N" (verifies a
 * second), and "cpu_ms N", the CPU time of one verify (which, unlike the
 * rates, holds on a machine busy with other work), one per line.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

static char		 hash[crypto_pwhash_STRBYTES];
static const char	 pw[] = "correct horse battery staple";
static double		 seconds = 5;

static double
clock_of(clockid_t id)
{
	struct timespec	 ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now(void)
{
	return clock_of(CLOCK_MONOTONIC);
}

/* Verifies for the given time; returns the count through arg. */
static void *
run(void *arg)
{
	long	*count = arg;
	double	 end = now() + seconds;

	*count = 0;
	while (now() < end) {
		if (crypto_pwhash_str_verify(hash, pw, strlen(pw)) != 0) {
			fprintf(stderr, "verify failed\n");
			exit(1);
		}
		(*count)++;
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	size_t		 kib = argc > 1 ? strtoul(argv[1], NULL, 10) : 19456;
	unsigned long	 ops = argc > 2 ? strtoul(argv[2], NULL, 10) : 2;
	long		 threads, i, total = 0, one;
	pthread_t	*t;
	long		*counts;
	double		 t0, c0;

	if (argc > 3)
		seconds = atof(argv[3]);
	threads = argc > 4 ? atol(argv[4]) : sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;
	if (sodium_init() < 0 ||
	    crypto_pwhash_str_alg(hash, pw, strlen(pw), ops, kib * 1024,
	    crypto_pwhash_ALG_ARGON2ID13) != 0) {
		fprintf(stderr, "cannot make the hash\n");
		return 1;
	}
	t0 = now();
	c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
	run(&one);
	printf("single %.1f\n", (double)one / (now() - t0));
	printf("cpu_ms %.2f\n", 1000 * (clock_of(CLOCK_PROCESS_CPUTIME_ID) -
	    c0) / (double)one);
	t = calloc((size_t)threads, sizeof(*t));
	counts = calloc((size_t)threads, sizeof(*counts));
	if (t == NULL || counts == NULL)
		return 1;
	t0 = now();
	for (i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, run, &counts[i]);
	for (i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += counts[i];
	}
	printf("all %.1f\n", (double)total / (now() - t0));
	printf("threads %ld\n", threads);
	return 0;
}
