/*
 * t/fuzz/stubs.c: link stubs for the one harness (fuzz_bearer) whose
 * real objects reach into FastCGI.  src/app/auth.c calls the reply
 * functions (src/http/reply.c, FastCGI) and hash_rekey (src/app/rekey.c,
 * which reaches into tollgatectl's output); src/db/db.c counts reconnects in
 * src/core/metrics.c.  The harness never calls auth_resolve, so the reply and
 * metrics stubs are never reached: they abort to prove it (trust_user
 * and trust_forget, of src/app/trust.c, likewise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"

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

/* src/app/rekey.c (the crypto key rotation), reached only by lookups. */
void
hash_rekey(struct req *r, enum hashed h, const char *input)
{
	unreached("hash_rekey");
}

/* src/app/trust.c (and the accounts it makes) is not linked: no issuer is
 * configured in the harness, and auth_resolve is never called. */
int
trust_user(struct req *r, const char *token, const char **uid,
    long long *exp)
{
	unreached("trust_user");
}

void
trust_forget(const char *uid)
{
	unreached("trust_forget");
}
