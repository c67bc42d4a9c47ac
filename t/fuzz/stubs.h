/*
 * t/fuzz/stubs.h: the request environment that stubs.c's req_env reads
 * (in tollgated, req_env reads FastCGI parameters in worker.c).
 */
#ifndef TOLLGATE_FUZZ_STUBS_H
#define TOLLGATE_FUZZ_STUBS_H

/* What r->fcgi points at in a fuzzed request; NULL for an absent header. */
struct fuzz_env {
	const char	*authorization;	/* HTTP_AUTHORIZATION */
	const char	*origin;	/* HTTP_ORIGIN */
};

#endif
