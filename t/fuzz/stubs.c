/*
 * t/fuzz/stubs.c: link stubs for the one harness (fuzz_bearer) whose
 * real objects reach into FastCGI.  src/auth.c calls req_env (worker.c,
 * FastCGI) and the reply functions (reply.c, FastCGI); src/db.c counts
 * reconnects in metrics.c, which pulls in the route table and with it
 * every handler.  The harness never calls auth_resolve, so the reply and
 * metrics stubs are never reached: they abort to prove it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/tollgate.h"
#include "stubs.h"

/* Like worker.c's: a FastCGI parameter, here from struct fuzz_env. */
const char *
req_env(struct req *r, const char *name)
{
	const struct fuzz_env	*env = r->fcgi;

	if (strcmp(name, "HTTP_AUTHORIZATION") == 0)
		return env->authorization;
	if (strcmp(name, "HTTP_ORIGIN") == 0)
		return env->origin;
	return NULL;
}

double
now_seconds(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn))
unreached(const char *what)
{
	fprintf(stderr, "fuzz: stub %s reached\n", what);
	abort();
}

void
reply_unauth(struct req *r, const char *code, const char *message)
{
	unreached("reply_unauth");
}

void
reply_error(struct req *r, int status, const char *code, const char *message)
{
	unreached("reply_error");
}

void
reply_db(struct req *r, int rc)
{
	unreached("reply_db");
}

void
metrics_count(enum counter c, unsigned long long n)
{
	unreached("metrics_count");
}
