/*
 * The database layer: one MariaDB connection per process, statements
 * prepared once per connection (lazily, on first use) and prepared again
 * after a reconnect.  Every failure is classified so that handlers can
 * fail closed: an unreachable database answers 503, never a guess.
 *
 * Several servers ([database] host = "a,b:3307,[::1]:3308") are used the
 * way a MariaDB Galera cluster is run in production: all writes go to
 * one node at a time, the first of the list that answers and is synced;
 * the others are hot standbys.  A lost link makes the next statement
 * walk the list again from the start, and a connection that had to
 * settle for a later host moves back to an earlier one once that one
 * is synced again (checked every FAILBACK_EVERY seconds, between
 * transactions), so the writers converge on one node.  On a Galera node
 * every session runs with wsrep_sync_wait = 1: reads (and the snapshot
 * a transaction starts from) wait until the node has applied every
 * write set the cluster committed before them, so a decision read on
 * any node (a revoked session, a balance) sees the latest commit.
 * Conflicting writes on two nodes are caught by Galera's certification
 * and surface as deadlocks (DB_RETRY).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <sodium.h>

#include "db/db.h"

#define MAX_PARAMS	48
#define SMALL_CELL	64
#define IDLE_PING	5.0	/* seconds idle before a ping checks the link */
#define RETRY_AFTER_DOWN 0.5	/* seconds between connection attempts */
#define FAILBACK_EVERY	15.0	/* seconds between tries of earlier hosts */
#define PROBE_TIMEOUT	1	/* connect timeout of such a try, seconds */
#define MAX_HOSTS	16

static MYSQL		*conn;
static MYSQL_STMT	**stmts;	/* by struct sql slot */
static int		 stmts_cap;
static int		 slots_used;
static double		 last_used;
static double		 last_failed_connect;
static double		 last_failback;
static bool		 broken;	/* close before the next use */
static bool		 in_tx;		/* between db_begin and commit/rollback */
static int		 conn_host;	/* index of conn's host in the list */

/* Returns true when err means the link to the server is gone. */
static bool
is_link_error(unsigned err)
{
	switch (err) {
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_UNKNOWN_HOST:
	case CR_SERVER_LOST_EXTENDED:
	case CR_COMMANDS_OUT_OF_SYNC:
	case ER_SERVER_SHUTDOWN:
	case ER_CON_COUNT_ERROR:
	case ER_UNKNOWN_COM_ERROR:	/* Galera: node not ready */
	case 1927:			/* ER_CONNECTION_KILLED */
	case ER_QUERY_INTERRUPTED:
	case ER_OPTION_PREVENTS_STATEMENT: /* read-only node */
		return true;
	default:
		return err >= 2000 && err < 3000;
	}
}

/*
 * Logs and classifies the last error of the connection or statement.  A
 * lost link is closed at the next db_ensure, not here, so callers may
 * still free the statement they hold.
 */
static int
classify(unsigned err, const char *msg, const char *sql)
{
	switch (err) {
	case ER_DUP_ENTRY:
	case ER_DUP_ENTRY_WITH_KEY_NAME:
	case ER_DUP_KEY:
		return DB_DUP;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
		return DB_RETRY;
	}
	if (is_link_error(err)) {
		log_warn("db_down", " errno=%u msg=\"%s\"", err, msg);
		broken = true;
		return DB_DOWN;
	}
	log_err("db_error", " errno=%u msg=\"%s\" sql=\"%.80s\"", err, msg,
	    sql != NULL ? sql : "");
	return DB_FAIL;
}

void
db_close(void)
{
	int	 i;

	for (i = 0; i < stmts_cap; i++) {
		if (stmts[i] != NULL)
			mysql_stmt_close(stmts[i]);
		stmts[i] = NULL;
	}
	if (conn != NULL)
		mysql_close(conn);
	conn = NULL;
	broken = false;
	in_tx = false;
}

int
db_host_split(const char *item, char *host, size_t hostsz, int *port)
{
	const char	*h = item, *p = NULL, *e;
	size_t		 len;
	char		*end;
	long		 v;

	while (*h == ' ' || *h == '\t')
		h++;
	len = strlen(h);
	while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	if (len == 0)
		return -1;
	if (h[0] == '[') {
		/* [IPv6] or [IPv6]:port */
		if ((e = memchr(h, ']', len)) == NULL || e == h + 1)
			return -1;
		if (e + 1 < h + len) {
			if (e[1] != ':')
				return -1;
			p = e + 2;
		}
		h++;
		len = (size_t)(e - h);
	} else if ((e = memchr(h, ':', len)) != NULL &&
	    memchr(e + 1, ':', len - (size_t)(e + 1 - h)) == NULL) {
		/* host:port; two or more colons are a bare IPv6 address. */
		p = e + 1;
		len = (size_t)(e - h);
		if (len == 0)
			return -1;
	}
	if (len >= hostsz)
		return -1;
	if (p != NULL) {
		if (*p < '0' || *p > '9')
			return -1;
		v = strtol(p, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end != '\0' || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	memcpy(host, h, len);
	host[len] = '\0';
	return 0;
}

/*
 * Runs a statement that returns at most a few rows of (name, value) and
 * finds name's value in them.  Returns 1 and copies the value, 0 when
 * the name is not there, -1 on an error.
 */
static int
show_value(MYSQL *m, const char *sql, const char *name, char *val,
    size_t valsz)
{
	MYSQL_RES	*res;
	MYSQL_ROW	 row;
	int		 found = 0;

	if (mysql_real_query(m, sql, strlen(sql)) != 0 ||
	    (res = mysql_store_result(m)) == NULL)
		return -1;
	while ((row = mysql_fetch_row(res)) != NULL)
		if (row[0] != NULL && row[1] != NULL &&
		    strcasecmp(row[0], name) == 0) {
			snprintf(val, valsz, "%s", row[1]);
			found = 1;
		}
	mysql_free_result(res);
	return found;
}

/*
 * Sets up a new connection for use.  On a Galera node (wsrep_on) the
 * node must be synced (wsrep_local_state 4, a donor or joiner is
 * skipped) and ready, and the session gets wsrep_sync_wait = 1 (bit 1:
 * SELECT, SHOW and START TRANSACTION first wait for the node to catch
 * up with the cluster).  Writes need no wait: a write from a stale
 * snapshot conflicts with the newer write set at certification and
 * comes back as a deadlock.  Returns 0, or -1 when the server must not
 * be used (why in *why, a static string).
 */
static int
session_setup(MYSQL *m, bool *galera, const char **why)
{
	static const char sync_wait[] = "SET SESSION wsrep_sync_wait = 1";
	char	 v[32];
	int	 rc;

	*galera = false;
	if ((rc = show_value(m, "SHOW VARIABLES LIKE 'wsrep_on'", "wsrep_on",
	    v, sizeof(v))) < 0) {
		*why = "cannot read wsrep_on";
		return -1;
	}
	if (rc == 0 || strcasecmp(v, "ON") != 0)
		return 0;
	*galera = true;
	if (show_value(m, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'",
	    "wsrep_local_state", v, sizeof(v)) != 1 || strcmp(v, "4") != 0) {
		*why = "Galera node not synced";
		return -1;
	}
	if (show_value(m, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'",
	    "wsrep_ready", v, sizeof(v)) != 1 || strcasecmp(v, "ON") != 0) {
		*why = "Galera node not ready";
		return -1;
	}
	if (mysql_real_query(m, sync_wait, sizeof(sync_wait) - 1) != 0) {
		*why = "cannot set wsrep_sync_wait";
		return -1;
	}
	return 0;
}

/*
 * The servers of [database], in order: the socket alone when one is set,
 * else each item of the host list ("host", "host:port", "[v6]:port").
 * Fills up to max entries and returns how many; an item that does not
 * parse is logged and skipped.  tollgated and tollgatectl both walk it.
 */
size_t
db_hosts(struct db_host *out, size_t max)
{
	char	*hosts, *item, *save = NULL;
	size_t	 n = 0;

	if (max == 0)
		return 0;
	if (cfg.db_socket != NULL && cfg.db_socket[0] != '\0') {
		snprintf(out[0].name, sizeof(out[0].name), "%s", cfg.db_socket);
		out[0].port = 0;
		out[0].socket = true;
		return 1;
	}
	if (cfg.db_host == NULL || (hosts = strdup(cfg.db_host)) == NULL)
		return 0;
	for (item = strtok_r(hosts, ",", &save); item != NULL && n < max;
	    item = strtok_r(NULL, ",", &save)) {
		out[n].port = cfg.db_port;
		out[n].socket = false;
		if (db_host_split(item, out[n].name, sizeof(out[n].name),
		    &out[n].port) < 0) {
			if (strspn(item, " \t") != strlen(item))
				log_err("db_host_invalid", " host=\"%.80s\"",
				    item);
			continue;
		}
		n++;
	}
	free(hosts);
	return n;
}

/*
 * A new handle with the options every connection of tollgate takes:
 * connect timeout (seconds), read and write timeouts of 10 s, no
 * automatic reconnect (db.c reconnects itself), utf8mb4, and no LOAD
 * DATA LOCAL.  Returns it (the caller's, mysql_close) or NULL when an
 * option cannot be set.
 */
void *
db_new_handle(unsigned int timeout)
{
	unsigned int	 timeout_rw = 10;
	my_bool		 no = 0;
	MYSQL		*m;

	if ((m = mysql_init(NULL)) == NULL)
		return NULL;
	if (mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout) != 0 ||
	    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout_rw) != 0 ||
	    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout_rw) != 0 ||
	    mysql_options(m, MYSQL_OPT_RECONNECT, &no) != 0 ||
	    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &no) != 0 ||
	    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0) {
		log_err("db_options_failed", " errno=%u", mysql_errno(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

/*
 * Tries the hosts of the configuration in order, stopping before index
 * upto (all with -1), each with a connect timeout of timeout seconds.
 * Returns a connection set up for use (its host's index in *idx, whether
 * it is Galera in *galera), or NULL.  The caller owns the connection.
 */
static MYSQL *
connect_first(int upto, unsigned int timeout, int *idx, bool *galera)
{
	struct db_host	 hosts[MAX_HOSTS];
	char		 init[160];
	const char	*why;
	MYSQL		*m;
	size_t		 n;
	int		 i;

	n = db_hosts(hosts, MAX_HOSTS);
	/* The fallback plan is a validated slug, safe inside quotes. */
	snprintf(init, sizeof(init), "SET time_zone = '+00:00', "
	    "@tg_fallback = '%s'", cfg.trial_fallback_plan);
	for (i = 0; (size_t)i < n && (upto < 0 || i < upto); i++) {
		const struct db_host *h = &hosts[i];

		if ((m = db_new_handle(timeout)) == NULL)
			break;
		if (mysql_options(m, MYSQL_INIT_COMMAND, init) != 0) {
			mysql_close(m);
			break;
		}
		/* A failback probe (upto >= 0) fails quietly: it comes again. */
		if (mysql_real_connect(m, h->socket ? NULL : h->name,
		    cfg.db_user, cfg.db_password, cfg.db_name,
		    (unsigned)h->port, h->socket ? h->name : NULL, 0) == NULL) {
			if (upto < 0)
				log_warn("db_connect_failed", " host=%s port=%d "
				    "errno=%u msg=\"%s\"", h->name, h->port,
				    mysql_errno(m), mysql_error(m));
		} else if (session_setup(m, galera, &why) < 0) {
			if (upto < 0)
				log_warn("db_host_skipped", " host=%s port=%d "
				    "why=\"%s\" errno=%u", h->name, h->port,
				    why, mysql_errno(m));
		} else {
			if (i > 0 || upto >= 0)
				log_info("db_connected", " host=%s port=%d "
				    "index=%d galera=%d", h->name, h->port, i,
				    *galera);
			*idx = i;
			return m;
		}
		mysql_close(m);
	}
	return NULL;
}

/* Connects to the first host that answers.  Returns 0 or DB_DOWN. */
static int
db_connect(void)
{
	bool	 galera;

	if (now_seconds() - last_failed_connect < RETRY_AFTER_DOWN)
		return DB_DOWN;
	if ((conn = connect_first(-1, 2, &conn_host, &galera)) == NULL) {
		last_failed_connect = now_seconds();
		return DB_DOWN;
	}
	metrics_count(CTR_DB_RECONNECT, 1);
	last_used = last_failback = now_seconds();
	return 0;
}

/*
 * A connection on a later host of the list moves back to an earlier
 * one that answers and is synced again, so that after a failover and
 * the failed node's return the writers converge on one node.  Runs
 * between transactions only, at most every FAILBACK_EVERY seconds.
 */
static void
db_failback(void)
{
	MYSQL	*m;
	int	 idx;
	bool	 galera;

	if (conn_host == 0 || in_tx || cfg.db_socket[0] ||
	    now_seconds() - last_failback < FAILBACK_EVERY)
		return;
	last_failback = now_seconds();
	if ((m = connect_first(conn_host, PROBE_TIMEOUT, &idx, &galera)) ==
	    NULL)
		return;
	log_info("db_failback", " from=%d to=%d", conn_host, idx);
	db_close();
	conn = m;
	conn_host = idx;
	metrics_count(CTR_DB_RECONNECT, 1);
	last_used = last_failback = now_seconds();
}

int
db_ensure(void)
{
	/*
	 * Inside a transaction a lost link is never replaced: the next
	 * statement would run on a new connection outside the transaction.
	 */
	if (in_tx)
		return broken || conn == NULL ? DB_DOWN : 0;
	if (broken || (conn != NULL && now_seconds() - last_used > IDLE_PING &&
	    mysql_ping(conn) != 0))
		db_close();
	if (conn == NULL && db_connect() < 0)
		return DB_DOWN;
	db_failback();
	last_used = now_seconds();
	return 0;
}

/*
 * For a process that may sit idle (the gate engine's): an open
 * connection is kept fresh and moved back to an earlier host after a
 * failover, as the next statement would; without one, nothing happens.
 */
void
db_idle(void)
{
	if (conn != NULL && !in_tx)
		db_ensure();
}

/*
 * The health check: a link found dead is replaced once (walking the
 * host list), so a host whose node died answers 200 as long as another
 * node can take over.
 */
int
db_ping(void)
{
	int	 tries;

	for (tries = 0; tries < 2; tries++) {
		if (db_ensure() < 0)
			return DB_DOWN;
		if (mysql_ping(conn) == 0)
			return 0;
		db_close();
		last_failed_connect = 0;
	}
	return DB_DOWN;
}

void *
db_handle(void)
{
	return db_ensure() < 0 ? NULL : conn;
}

/* Returns the prepared statement of q on this connection, or a DB_* code. */
static int
prepare(struct sql *q, MYSQL_STMT **out)
{
	MYSQL_STMT	*st;
	int		 rc;

	if ((rc = db_ensure()) < 0)
		return rc;
	if (q->slot == 0)
		q->slot = ++slots_used;
	if (q->slot >= stmts_cap) {
		int	 ncap = stmts_cap ? stmts_cap * 2 : 128;
		void	*p;

		while (ncap <= q->slot)
			ncap *= 2;
		if ((p = realloc(stmts, sizeof(*stmts) * (size_t)ncap)) == NULL)
			return DB_FAIL;
		stmts = p;
		memset(stmts + stmts_cap, 0,
		    sizeof(*stmts) * (size_t)(ncap - stmts_cap));
		stmts_cap = ncap;
	}
	if (stmts[q->slot] != NULL) {
		*out = stmts[q->slot];
		return 0;
	}
	if ((st = mysql_stmt_init(conn)) == NULL)
		return classify(mysql_errno(conn), mysql_error(conn), q->text);
	if (mysql_stmt_prepare(st, q->text, strlen(q->text)) != 0) {
		unsigned err = mysql_stmt_errno(st);
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", mysql_stmt_error(st));
		mysql_stmt_close(st);
		return classify(err, msg, q->text);
	}
	stmts[q->slot] = st;
	*out = st;
	return 0;
}

/*
 * Forgets q's statement after it failed; it is prepared afresh on its
 * next use.  A statement cut short by an error (a deadlock, or Galera
 * aborting the transaction while the rows were on their way) can leave
 * the client library expecting more of its result, and the next
 * execution of the same handle would then wait for packets that never
 * come (seen: SELECT ... FOR UPDATE after a brute-force abort, hanging
 * until the read timeout).
 */
static void
forget(struct sql *q)
{
	if (q->slot > 0 && q->slot < stmts_cap && stmts[q->slot] != NULL) {
		mysql_stmt_close(stmts[q->slot]);
		stmts[q->slot] = NULL;
	}
}

/*
 * Binds the parameters described by types and runs the statement.
 * Returns 0 or a DB_* code.
 */
static int
bind_and_execute(struct sql *q, MYSQL_STMT *st, const char *types, va_list ap)
{
	MYSQL_BIND	 b[MAX_PARAMS];
	long long	 ints[MAX_PARAMS];
	size_t		 n = strlen(types), i;

	if (n > MAX_PARAMS || n != mysql_stmt_param_count(st)) {
		log_err("db_bind", " want=%lu have=%zu sql=\"%.80s\"",
		    mysql_stmt_param_count(st), n, q->text);
		return DB_FAIL;
	}
	memset(b, 0, sizeof(b));
	for (i = 0; i < n; i++) {
		switch (types[i]) {
		case 's': {
			const char *s = va_arg(ap, const char *);

			if (s == NULL)
				b[i].buffer_type = MYSQL_TYPE_NULL;
			else {
				b[i].buffer_type = MYSQL_TYPE_STRING;
				b[i].buffer = (void *)s;
				b[i].buffer_length = strlen(s);
			}
			break;
		}
		case 'b':
			b[i].buffer_type = MYSQL_TYPE_BLOB;
			b[i].buffer = (void *)va_arg(ap, const void *);
			b[i].buffer_length = va_arg(ap, size_t);
			break;
		case 'i':
			ints[i] = va_arg(ap, long long);
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = &ints[i];
			break;
		case 'n':
			b[i].buffer_type = MYSQL_TYPE_NULL;
			break;
		default:
			log_err("db_bind", " type=%c sql=\"%.80s\"", types[i],
			    q->text);
			return DB_FAIL;
		}
	}
	if ((n > 0 && mysql_stmt_bind_param(st, b) != 0) ||
	    mysql_stmt_execute(st) != 0)
		return classify(mysql_stmt_errno(st), mysql_stmt_error(st),
		    q->text);
	return 0;
}

/* Drops any further result sets (a CALL ends with a status result). */
static void
drain(MYSQL_STMT *st)
{
	mysql_stmt_free_result(st);
	while (mysql_stmt_more_results(st) && mysql_stmt_next_result(st) == 0)
		mysql_stmt_free_result(st);
}

int
db_exec(struct sql *q, const char *types, ...)
{
	MYSQL_STMT	*st;
	va_list		 ap;
	int		 rc;

	if ((rc = prepare(q, &st)) < 0)
		return rc;
	va_start(ap, types);
	rc = bind_and_execute(q, st, types, ap);
	va_end(ap);
	if (rc < 0) {
		forget(q);
		return rc;
	}
	rc = (int)mysql_stmt_affected_rows(st);
	drain(st);
	return rc < 0 ? 0 : rc;
}

/* Runs a query once into *out.  Returns the row count or a DB_* code. */
static int
select_once(struct arena *a, struct sql *q, struct dbrows *out,
    const char *types, va_list ap)
{
	MYSQL_STMT	*st;
	MYSQL_RES	*meta;
	MYSQL_BIND	*rb;
	unsigned long	*lens;
	my_bool		*nulls;
	char		*small;
	size_t		 ncol, nrow, row, c;
	int		 rc, frc;

	memset(out, 0, sizeof(*out));
	if ((rc = prepare(q, &st)) < 0)
		return rc;
	if ((rc = bind_and_execute(q, st, types, ap)) < 0) {
		forget(q);
		return rc;
	}
	if ((meta = mysql_stmt_result_metadata(st)) == NULL) {
		drain(st);
		return 0;
	}
	ncol = mysql_num_fields(meta);
	mysql_free_result(meta);
	if (mysql_stmt_store_result(st) != 0) {
		rc = classify(mysql_stmt_errno(st), mysql_stmt_error(st), q->text);
		drain(st);
		forget(q);
		return rc;
	}
	nrow = (size_t)mysql_stmt_num_rows(st);
	rb = arena_alloc(a, sizeof(*rb) * ncol);
	lens = arena_alloc(a, sizeof(*lens) * ncol);
	nulls = arena_alloc(a, sizeof(*nulls) * ncol);
	small = arena_alloc(a, SMALL_CELL * ncol);
	memset(rb, 0, sizeof(*rb) * ncol);
	for (c = 0; c < ncol; c++) {
		rb[c].buffer_type = MYSQL_TYPE_STRING;
		rb[c].buffer = small + c * SMALL_CELL;
		rb[c].buffer_length = SMALL_CELL;
		rb[c].length = &lens[c];
		rb[c].is_null = &nulls[c];
	}
	out->ncol = ncol;
	out->cell = arena_alloc(a, sizeof(char *) * (nrow * ncol + 1));
	out->len = arena_alloc(a, sizeof(size_t) * (nrow * ncol + 1));
	if (mysql_stmt_bind_result(st, rb) != 0) {
		rc = classify(mysql_stmt_errno(st), mysql_stmt_error(st), q->text);
		drain(st);
		forget(q);
		return rc;
	}
	for (row = 0; row < nrow; row++) {
		frc = mysql_stmt_fetch(st);
		if (frc == MYSQL_NO_DATA)
			break;
		if (frc == 1) {
			rc = classify(mysql_stmt_errno(st),
			    mysql_stmt_error(st), q->text);
			drain(st);
			forget(q);
			return rc;
		}
		for (c = 0; c < ncol; c++) {
			size_t	 k = row * ncol + c;
			char	*cell;

			if (nulls[c]) {
				out->cell[k] = NULL;
				out->len[k] = 0;
				continue;
			}
			cell = arena_alloc(a, lens[c] + 1);
			if (lens[c] < SMALL_CELL)
				memcpy(cell, small + c * SMALL_CELL, lens[c]);
			else {
				MYSQL_BIND	 one;
				unsigned long	 l2;

				memset(&one, 0, sizeof(one));
				one.buffer_type = MYSQL_TYPE_STRING;
				one.buffer = cell;
				one.buffer_length = lens[c] + 1;
				one.length = &l2;
				if (mysql_stmt_fetch_column(st, &one,
				    (unsigned)c, 0) != 0) {
					rc = classify(mysql_stmt_errno(st),
					    mysql_stmt_error(st), q->text);
					drain(st);
					forget(q);
					return rc;
				}
			}
			cell[lens[c]] = '\0';
			out->cell[k] = cell;
			out->len[k] = lens[c];
		}
	}
	out->n = row;
	drain(st);
	return (int)out->n;
}

/* True when q is a plain SELECT, which changes nothing when repeated. */
static bool
is_plain_read(const struct sql *q)
{
	const char	*p = q->text;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '(')
		p++;
	return strncasecmp(p, "SELECT", 6) == 0;
}

/*
 * A plain read outside a transaction whose link was lost (the node it
 * was on died or left the cluster while this process sat idle) is run
 * once more on a fresh connection, which walks the host list: a read can
 * be repeated, and a failover should not cost every worker one 503.
 * Anything that may write is never repeated here, a CALL included (the
 * gate's procedure spends and commits inside): whether a lost one took
 * effect is unknown, and only the caller can tell.
 */
int
db_select(struct arena *a, struct sql *q, struct dbrows *out,
    const char *types, ...)
{
	va_list		 ap;
	bool		 had = conn != NULL && !broken;
	int		 rc;

	va_start(ap, types);
	rc = select_once(a, q, out, types, ap);
	va_end(ap);
	if (rc == DB_DOWN && had && !in_tx && is_plain_read(q)) {
		log_info("db_read_again", " sql=\"%.60s\"", q->text);
		last_failed_connect = 0;
		va_start(ap, types);
		rc = select_once(a, q, out, types, ap);
		va_end(ap);
	}
	return rc;
}

const char *
dbv(const struct dbrows *r, size_t row, size_t col)
{
	if (row >= r->n || col >= r->ncol)
		return NULL;
	return r->cell[row * r->ncol + col];
}

long long
dbi(const struct dbrows *r, size_t row, size_t col)
{
	const char	*v = dbv(r, row, col);

	return v == NULL ? 0 : strtoll(v, NULL, 10);
}

/*
 * Starts a transaction.  Starting one on a link that turns out lost is
 * harmless, so that is tried once more on a fresh connection.
 */
int
db_begin(void)
{
	bool	 had;
	int	 rc, tries;

	if (in_tx) {
		log_warn("db_tx_leaked", "%s", "");
		db_rollback();
	}
	for (tries = 0; tries < 2; tries++) {
		had = conn != NULL && !broken;
		if ((rc = db_ensure()) < 0)
			return rc;
		if (mysql_real_query(conn, "START TRANSACTION", 17) == 0) {
			in_tx = true;
			return 0;
		}
		rc = classify(mysql_errno(conn), mysql_error(conn), NULL);
		if (rc != DB_DOWN || !had)
			break;
		last_failed_connect = 0;
	}
	return rc;
}

/*
 * Commits.  A deadlock or certification failure at COMMIT means the
 * transaction was rolled back (DB_RETRY); a link lost inside the
 * transaction before COMMIT means nothing was committed (DB_DOWN); but
 * when the answer to COMMIT itself is lost the transaction may or may
 * not have committed (on Galera, its write set may already be on the
 * other nodes): DB_UNKNOWN, and the caller must look the effect up
 * before doing anything again.
 */
int
db_commit(void)
{
	unsigned	 err;
	bool		 was = in_tx;

	in_tx = false;
	if (conn == NULL || broken)
		return DB_DOWN;
	if (mysql_commit(conn) == 0)
		return 0;
	err = mysql_errno(conn);
	if (was && is_link_error(err)) {
		log_warn("db_commit_unknown", " errno=%u msg=\"%s\"", err,
		    mysql_error(conn));
		broken = true;
		return DB_UNKNOWN;
	}
	return classify(err, mysql_error(conn), NULL);
}

void
db_rollback(void)
{
	in_tx = false;
	if (conn != NULL && !broken && mysql_rollback(conn) != 0)
		(void)classify(mysql_errno(conn), mysql_error(conn), NULL);
}

/* Sleeps a few random milliseconds, longer after each try. */
static void
backoff(int attempt)
{
	struct timespec	 ts;
	unsigned	 ms = 1 + randombytes_uniform(5U * (unsigned)attempt + 5U);

	ts.tv_sec = 0;
	ts.tv_nsec = (long)ms * 1000000L;
	nanosleep(&ts, NULL);
}

int
db_tx_run(int (*fn)(void *), int (*committed)(void *), void *ctx,
    int tries)
{
	int	 attempt, rc, out, seen;

	rc = DB_RETRY;
	for (attempt = 1; attempt <= tries; attempt++) {
		if (attempt > 1)
			backoff(attempt);
		if ((rc = db_begin()) < 0) {
			if (rc == DB_DOWN || rc == DB_RETRY)
				continue;
			return rc;
		}
		if ((out = fn(ctx)) < 0) {
			db_rollback();
			rc = out;
			if (rc == DB_RETRY || rc == DB_DOWN) {
				log_info("db_tx_again", " attempt=%d rc=%d",
				    attempt, rc);
				continue;
			}
			return rc;
		}
		if ((rc = db_commit()) == 0)
			return out;
		if (rc == DB_RETRY || rc == DB_DOWN) {
			log_info("db_tx_again", " attempt=%d rc=%d commit=1",
			    attempt, rc);
			continue;
		}
		if (rc != DB_UNKNOWN || committed == NULL)
			return rc;
		/* The answer was lost: look the effect up, never redo it. */
		last_failed_connect = 0;
		if ((seen = committed(ctx)) > 0)
			return out;
		if (seen < 0)
			return DB_UNKNOWN;
		log_info("db_tx_again", " attempt=%d lost_commit=1 "
		    "committed=0", attempt);
	}
	log_warn("db_tx_gave_up", " tries=%d rc=%d", tries, rc);
	return rc;
}

static struct sql q_unix_now = SQL("SELECT UNIX_TIMESTAMP()");

/*
 * The database's clock in unix seconds (every host shares it, unlike
 * their own clocks).  Returns 0 with *now, or a DB_* code.
 */
int
db_unix_now(struct arena *a, long long *now)
{
	struct dbrows	 row;
	int		 rc;

	if ((rc = db_select(a, &q_unix_now, &row, "")) < 0)
		return rc;
	if (rc != 1)
		return DB_FAIL;
	*now = dbi(&row, 0, 0);
	return 0;
}
