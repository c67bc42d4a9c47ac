/*
 * The database layer: one MariaDB connection per process, statements
 * prepared once per connection (lazily, on first use) and prepared again
 * after a reconnect.  Every failure is classified so that handlers can
 * fail closed: an unreachable database answers 503, never a guess.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>

#include "tollgate.h"

#define MAX_PARAMS	48
#define SMALL_CELL	64
#define IDLE_PING	5.0	/* seconds idle before a ping checks the link */
#define RETRY_AFTER_DOWN 0.5	/* seconds between connection attempts */

static MYSQL		*conn;
static MYSQL_STMT	**stmts;	/* by struct sql slot */
static int		 stmts_cap;
static int		 slots_used;
static double		 last_used;
static double		 last_failed_connect;
static bool		 broken;	/* close before the next use */

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
}

/* Tries each host of the configuration in order.  Returns 0 or DB_DOWN. */
static int
db_connect(void)
{
	unsigned int	 timeout_connect = 2, timeout_rw = 10;
	my_bool		 no = 0;
	char		*hosts, *host, *save = NULL, init[160];
	MYSQL		*m;

	if (now_seconds() - last_failed_connect < RETRY_AFTER_DOWN)
		return DB_DOWN;
	if ((hosts = strdup(cfg.db_host)) == NULL)
		return DB_DOWN;
	/* The fallback plan is a validated slug, safe inside quotes. */
	snprintf(init, sizeof(init), "SET time_zone = '+00:00', "
	    "@tg_fallback = '%s'", cfg.trial_fallback_plan);
	for (host = strtok_r(hosts, ", ", &save); host != NULL;
	    host = strtok_r(NULL, ", ", &save)) {
		if ((m = mysql_init(NULL)) == NULL)
			break;
		mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_connect);
		mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout_rw);
		mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout_rw);
		mysql_options(m, MYSQL_OPT_RECONNECT, &no);
		mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
		mysql_options(m, MYSQL_INIT_COMMAND, init);
		if (mysql_real_connect(m, cfg.db_socket[0] ? NULL : host,
		    cfg.db_user, cfg.db_password, cfg.db_name,
		    (unsigned)cfg.db_port,
		    cfg.db_socket[0] ? cfg.db_socket : NULL, 0) != NULL) {
			conn = m;
			free(hosts);
			metrics_count(CTR_DB_RECONNECT, 1);
			last_used = now_seconds();
			return 0;
		}
		log_warn("db_connect_failed", " host=%s errno=%u msg=\"%s\"",
		    cfg.db_socket[0] ? cfg.db_socket : host, mysql_errno(m),
		    mysql_error(m));
		mysql_close(m);
		if (cfg.db_socket[0])
			break;
	}
	free(hosts);
	last_failed_connect = now_seconds();
	return DB_DOWN;
}

int
db_ensure(void)
{
	if (broken || (conn != NULL && now_seconds() - last_used > IDLE_PING &&
	    mysql_ping(conn) != 0))
		db_close();
	if (conn == NULL && db_connect() < 0)
		return DB_DOWN;
	last_used = now_seconds();
	return 0;
}

int
db_ping(void)
{
	if (db_ensure() < 0)
		return DB_DOWN;
	if (mysql_ping(conn) != 0) {
		db_close();
		return DB_DOWN;
	}
	return 0;
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
	if (rc < 0)
		return rc;
	rc = (int)mysql_stmt_affected_rows(st);
	drain(st);
	return rc < 0 ? 0 : rc;
}

int
db_select(struct arena *a, struct sql *q, struct dbrows *out,
    const char *types, ...)
{
	MYSQL_STMT	*st;
	MYSQL_RES	*meta;
	MYSQL_BIND	*rb;
	unsigned long	*lens;
	my_bool		*nulls;
	char		*small;
	va_list		 ap;
	size_t		 ncol, nrow, row, c;
	int		 rc, frc;

	memset(out, 0, sizeof(*out));
	if ((rc = prepare(q, &st)) < 0)
		return rc;
	va_start(ap, types);
	rc = bind_and_execute(q, st, types, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	if ((meta = mysql_stmt_result_metadata(st)) == NULL) {
		drain(st);
		return 0;
	}
	ncol = mysql_num_fields(meta);
	mysql_free_result(meta);
	if (mysql_stmt_store_result(st) != 0) {
		rc = classify(mysql_stmt_errno(st), mysql_stmt_error(st), q->text);
		drain(st);
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

int
db_begin(void)
{
	int	 rc;

	if ((rc = db_ensure()) < 0)
		return rc;
	if (mysql_real_query(conn, "START TRANSACTION", 17) != 0)
		return classify(mysql_errno(conn), mysql_error(conn), NULL);
	return 0;
}

int
db_commit(void)
{
	if (conn == NULL)
		return DB_DOWN;
	if (mysql_commit(conn) != 0)
		return classify(mysql_errno(conn), mysql_error(conn), NULL);
	return 0;
}

void
db_rollback(void)
{
	if (conn != NULL && mysql_rollback(conn) != 0)
		(void)classify(mysql_errno(conn), mysql_error(conn), NULL);
}
