/*
 * t/fuzz/fuzz.h: what the libFuzzer harnesses share.  Each harness is one
 * file, fuzz_<name>.c, linked by t/fuzz/build against the real src/ files
 * it needs (never main.c or worker.c).  A harness aborts when a
 * property of the code under test does not hold, so libFuzzer reports it
 * as a crash with the input that broke it.
 */
#ifndef TOLLGATE_FUZZ_H
#define TOLLGATE_FUZZ_H

#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "app/app.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	 LLVMFuzzerInitialize(int *, char ***);

/* Aborts with a message when a property of the code under test fails. */
#define FUZZ_CHECK(cond, what) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz: property failed: %s (%s:%d)\n",	\
		    (what), __FILE__, __LINE__);			\
		abort();						\
	}								\
} while (0)

/*
 * The process's arena, made once and reset before every input, as a
 * worker resets it after every request.
 */
static inline struct arena *
fuzz_arena(void)
{
	static struct arena	*a;

	if (a == NULL && (a = arena_new()) == NULL)
		abort();
	arena_reset(a);
	return a;
}

/*
 * A malloc'd copy of d[0..n) of exactly n bytes (no terminator), so that
 * AddressSanitizer sees any read past the end.  The caller frees it.
 */
static inline char *
fuzz_copy(const uint8_t *d, size_t n)
{
	char	*p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	memcpy(p, d, n);
	return p;
}

/* A malloc'd NUL-terminated copy, cut at the first NUL as C strings are. */
static inline char *
fuzz_cstr(const uint8_t *d, size_t n)
{
	const uint8_t	*nul = memchr(d, '\0', n);
	char		*p;

	if (nul != NULL)
		n = (size_t)(nul - d);
	if ((p = malloc(n + 1)) == NULL)
		abort();
	memcpy(p, d, n);
	p[n] = '\0';
	return p;
}

/* Removes every TOLLGATE_* variable, so only the file counts. */
static inline void
fuzz_clean_env(void)
{
	extern char	**environ;
	char		 name[256];
	size_t		 i, n;

	for (i = 0; environ[i] != NULL;) {
		if (strncmp(environ[i], "TOLLGATE_", 9) != 0) {
			i++;
			continue;
		}
		n = strcspn(environ[i], "=");
		if (n >= sizeof(name))
			abort();
		memcpy(name, environ[i], n);
		name[n] = '\0';
		unsetenv(name);
		i = 0;
	}
}

/* The fixed configuration of the JWT and Authorization harnesses. */
#define FUZZ_JWT_SECRET		"fuzz-jwt-secret-0123456789abcdef0123456789"
#define FUZZ_JWT_PREVIOUS	"fuzz-previous-secret-fedcba9876543210fedcba"

/*
 * Loads a fixed configuration into cfg through config_load itself (a
 * temporary 0600 file), with a current and a previous JWT secret.
 */
static inline void
fuzz_fixed_config(void)
{
	char		 path[] = "/tmp/tollgate-fuzz-conf-XXXXXX", err[512];
	FILE		*f;
	int		 fd;

	fuzz_clean_env();
	if (sodium_init() < 0)
		abort();
	if ((fd = mkstemp(path)) < 0 || fchmod(fd, 0600) < 0 ||
	    (f = fdopen(fd, "w")) == NULL)
		abort();
	fprintf(f, "[server]\nbase_url = https://accounts.example.com\n"
	    "[jwt]\nsecret = %s\nprevious_secret = %s\n"
	    "[crypto]\nkey = 00112233445566778899aabbccddeeff"
	    "00112233445566778899aabbccddeeff\n",
	    FUZZ_JWT_SECRET, FUZZ_JWT_PREVIOUS);
	fclose(f);
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz: the fixed configuration: %s\n", err);
		abort();
	}
	unlink(path);
}

#endif /* TOLLGATE_FUZZ_H */
