/*
 * The database layer: MariaDB through prepared statements, host lists
 * walked in order, and transactions run again when they certainly did
 * not commit.  It knows the core layer and nothing above.
 */
#ifndef TG_DB_H
#define TG_DB_H

#include "core/core.h"

/* ------------------------------------------------------------------ */
/* db.c: MariaDB through prepared statements.                          */
/* ------------------------------------------------------------------ */

/* A statement: its SQL and a slot filled when first prepared. */
struct sql {
	const char	*text;
	int		 slot;
};
#define SQL(text)	{ (text), 0 }

/* Failure codes of the db_* calls (success is >= 0). */
#define DB_DOWN		-1	/* unreachable: answer 503 */
#define DB_DUP		-2	/* duplicate key */
#define DB_RETRY	-3	/* deadlock or lock wait timeout */
#define DB_FAIL		-4	/* anything else: a bug, answer 500 */

/* Result rows: every cell as text (NULL for SQL NULL), in the arena. */
struct dbrows {
	size_t		 n;
	size_t		 ncol;
	char		**cell;		/* cell[row * ncol + col] */
	size_t		*len;
};

/*
 * Parameter types for db_exec and db_select, one letter each:
 *   s  const char *        text, NULL binds SQL NULL
 *   b  const void *, size_t  bytes
 *   i  long long
 *   n  (no argument)       SQL NULL
 */

/* Runs a statement.  Returns the affected rows or a DB_* code. */
int		 db_exec(struct sql *, const char *types, ...);
/* Runs a query into *out.  Returns the row count or a DB_* code. */
int		 db_select(struct arena *, struct sql *, struct dbrows *,
		    const char *types, ...);
const char	*dbv(const struct dbrows *, size_t row, size_t col);
long long	 dbi(const struct dbrows *, size_t row, size_t col);
int		 db_begin(void);
int		 db_commit(void);
void		 db_rollback(void);
/* Connects if not connected.  Returns 0 or DB_DOWN. */
int		 db_ensure(void);
/* Returns 0 when the database answers, else DB_DOWN. */
int		 db_ping(void);
void		 db_close(void);
/* Keeps an open connection fresh (ping, failback); none: nothing. */
void		 db_idle(void);
/* The raw handle for tollgatectl migrate; NULL when down. */
void		*db_handle(void);
/* The database's clock in unix seconds: 0 with *now, or a DB_* code. */
int		 db_unix_now(struct arena *, long long *now);

/* db.c, scale-out (issue 9): host lists, Galera, transaction retries.  */
/* ------------------------------------------------------------------ */

/*
 * More failure codes of the db_* calls.  DB_UNKNOWN: the answer to a
 * COMMIT was lost, so the transaction may or may not have committed;
 * never run it again blindly (it could spend twice): look its effect up
 * first, by an idempotency key the transaction wrote.  reply_db answers
 * it with 503.  DB_ABORT: a db_tx_run body chose to roll back; not an
 * error, never retried.
 */
#define DB_UNKNOWN	-5
#define DB_ABORT	-6

/* How many times db_tx_run runs a transaction before giving up. */
#define DB_TX_TRIES	5

/*
 * Runs fn(ctx) between START TRANSACTION and COMMIT, and runs the whole
 * transaction again, up to tries times, when it certainly did not
 * commit: a deadlock, a lock wait timeout or a Galera certification
 * failure (DB_RETRY, also at COMMIT), or a link lost before COMMIT
 * (DB_DOWN; the next try walks the host list).  fn returns >= 0 to
 * commit, DB_ABORT to roll back, or the DB_* code of a failed call (it
 * never commits or rolls back itself, and keeps what it decided in
 * ctx, which it must reset at its start: it may run more than once).
 * When COMMIT's answer is lost: with committed == NULL, DB_UNKNOWN;
 * otherwise committed(ctx) looks the effect up on a fresh connection
 * and returns > 0 (it is there: success), 0 (it is not: run again) or
 * < 0 (cannot tell: DB_UNKNOWN).  Returns fn's result, DB_ABORT, or a
 * DB_* code (DB_RETRY or DB_DOWN when the tries ran out: answer 503).
 *
 * Handlers must use it (with DB_TX_TRIES) for every transaction of more
 * than one statement, and for every write that decides (a spend, a
 * rate-limit hit), since on Galera any of them can fail certification;
 * a transaction that spends or grants must write an idempotency key
 * (credit_ledger.request_key) and pass a committed callback that looks
 * it up.  A single autocommit statement may instead be retried on
 * DB_RETRY alone; a single read needs nothing (db_select repeats a read
 * whose link was lost by itself).
 */
int	 db_tx_run(int (*fn)(void *), int (*committed)(void *), void *ctx,
	    int tries);

/*
 * Splits one item of [database] host: "host", "host:port", "[v6]",
 * "[v6]:port" or a bare IPv6 address, surrounding blanks ignored.
 * Writes the host (NUL-terminated, at most hostsz - 1 bytes) and, when
 * the item names one, the port (1..65535) into *port, which otherwise
 * keeps its value.  Returns 0, or -1 for an empty or malformed item.
 */
int	 db_host_split(const char *item, char *host, size_t hostsz, int *port);

/* A server of [database]: a host and port, or a unix socket's path. */
struct db_host {
	char	 name[256];
	int	 port;
	bool	 socket;
};
size_t	 db_hosts(struct db_host *, size_t max);
/* A MYSQL * with tollgate's connection options, or NULL; the caller's. */
void	*db_new_handle(unsigned int connect_timeout);
/* API keys, plans, usage and the gate (issue 5): apikeys.c, plans.c,  */

#endif /* TG_DB_H */
