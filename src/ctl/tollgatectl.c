/*
 * tollgatectl: the operator's control tool.
 *
 *	tollgatectl [-c CONF] COMMAND [ARGS...]
 *
 * Commands live in one table (cmds[] below); each is a function that
 * gets the arguments after its own words and returns the exit status:
 * 0 on success, 1 on an error (reported on stderr), 2 on bad usage.
 * The configuration is loaded into cfg before any command runs.
 *
 * `migrate` applies the numbered files of the sql directory
 * (NNN-name.sql) that the database has not seen, in numeric order, each
 * as one multi-statement query on a connection of its own, and records
 * each step in schema_migrations.  Two runs at once cannot interleave:
 * they take turns through a lease row in schema_lock (not GET_LOCK,
 * which Galera does not replicate, and not a row lock, which the
 * implicit commit of the first DDL statement would release).
 *
 * The stored functions, procedures and triggers are not numbered steps:
 * they live in the sql directory's routines/ folder, one copy each, and
 * migrate creates them all (CREATE OR REPLACE) after the numbered steps
 * whenever a step was applied or the files' SHA-256 differs from the one
 * recorded in schema_routines.  tollgated compares that record with the
 * digest it was built with (ops.c, schema_check).
 */

#include <sys/stat.h>
#include <sys/random.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <sodium.h>

#include "ctl/ctl.h"

#ifndef TOLLGATE_SQLDIR
#define TOLLGATE_SQLDIR "/usr/share/tollgate/sql"
#endif

/* How long a migration lease lasts before another run may take it. */
#define LEASE_SECONDS	600
/* How long migrate waits for a lease held by another run. */
#define LEASE_WAIT	60
/* The largest migration file read. */
#define MAX_SQL_FILE	(16 * 1024 * 1024)

/* One migration file of the sql directory. */
struct migration {
	long	 version;	/* the NNN of NNN-name.sql */
	char	*file;		/* "NNN-name.sql", owned by the array */
	char	*path;		/* dir + "/" + file, owned by the array */
};

/* The migration files of a directory, sorted by version (then name). */
struct migrations {
	struct migration *v;
	size_t		  n;
};

/* A command: its words, its function and its usage line. */
struct cmd {
	const char	*name;
	const char	*sub;	/* second word, or NULL */
	int		(*fn)(int, char *[]);
	const char	*usage;
};

static int	 cmd_migrate(int, char *[]);
static int	 cmd_version(int, char *[]);

static const struct cmd cmds[] = {
	{ "migrate", NULL, cmd_migrate, "migrate [--sql-dir DIR]" },
	{ "version", NULL, cmd_version, "version [--sql-dir DIR]" },
	{ "plans", "list", ctl_plans_list, "plans list [--json]" },
	{ "plans", "set", ctl_plans_set, "plans set NAME [KEY=VALUE]..." },
	{ "plans", "delete", ctl_plans_delete, "plans delete NAME" },
	{ "meters", "list", ctl_meters_list, "meters list" },
	{ "meters", "set", ctl_meters_set, "meters set NAME kind=sum|level" },
	{ "service-key", "create", ctl_service_key_create,
	    "service-key create NAME" },
	{ "service-key", "list", ctl_service_key_list,
	    "service-key list [--json]" },
	{ "service-key", "revoke", ctl_service_key_revoke,
	    "service-key revoke NAME|ID" },
	{ "admin", "create", ctl_admin_create,
	    "admin create EMAIL    (password on stdin, or generated)" },
	{ "user", "show", ctl_user_show, "user show EMAIL" },
	{ "user", "disable", ctl_user_disable, "user disable EMAIL" },
	{ "user", "enable", ctl_user_enable, "user enable EMAIL" },
	{ "user", "verify", ctl_user_verify, "user verify EMAIL" },
	{ "user", "set-password", ctl_user_set_password,
	    "user set-password EMAIL    (password on stdin)" },
	{ "user", "list", ctl_user_list,
	    "user list [--json] [--disabled] [--limit N] [QUERY]" },
	{ "outbox", "list", ctl_outbox_list,
	    "outbox list [--json] [--failed|--pending|--sent] [--limit N]" },
	{ "outbox", "retry", ctl_outbox_retry,
	    "outbox retry ID...|--all-failed" },
	{ "rekey", NULL, ctl_rekey, "rekey [--json]" },
	{ "gc", NULL, ctl_gc, "gc                    (purge expired rows)" },
};

#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

static const char *progname = "tollgatectl";

/*
 * Prints the usage text to stderr and returns the exit status for bad
 * usage (2).
 */
static int
usage(void)
{
	size_t	 i;

	fprintf(stderr, "usage: %s [-c CONF] COMMAND [ARGS...]\n", progname);
	fprintf(stderr, "commands:\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(stderr, "  %s\n", cmds[i].usage);
	return 2;
}

/*
 * Prints an error about the connection m, prefixed by what was being
 * done.  The server's message names users and objects, never passwords.
 */
static void
db_warn(MYSQL *m, const char *what)
{

	fprintf(stderr, "%s: %s: error %u: %s\n", progname, what,
	    mysql_errno(m), mysql_error(m));
}

/*
 * Runs one statement that returns no rows.  Returns the number of rows
 * it matched (the connection uses CLIENT_FOUND_ROWS), or -1 after
 * printing the error.
 */
static long long
db_run(MYSQL *m, const char *sql, const char *what)
{
	my_ulonglong	 n;

	if (mysql_real_query(m, sql, strlen(sql)) != 0) {
		db_warn(m, what);
		return -1;
	}
	n = mysql_affected_rows(m);
	if (n == (my_ulonglong)-1) {
		db_warn(m, what);
		return -1;
	}
	return (long long)n;
}

/*
 * Runs a query whose first row's first column is an integer or NULL,
 * and stores it in *out (0 for NULL or no row).  Returns 0, or -1 after
 * printing the error; *err, when given, receives the error number.
 */
static int
db_int(MYSQL *m, const char *sql, const char *what, long long *out,
    unsigned *err)
{
	MYSQL_RES	*res = NULL;
	MYSQL_ROW	 row;
	int		 rc = -1;

	*out = 0;
	if (err != NULL)
		*err = 0;
	if (mysql_real_query(m, sql, strlen(sql)) != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		if (err != NULL)
			*err = mysql_errno(m);
		else
			db_warn(m, what);
		goto out;
	}
	if ((row = mysql_fetch_row(res)) != NULL && row[0] != NULL)
		*out = strtoll(row[0], NULL, 10);
	rc = 0;
out:
	if (res != NULL)
		mysql_free_result(res);
	return rc;
}

/*
 * Connects to one server of [database] (db_hosts).  Returns a new handle
 * owned by the caller (mysql_close), or NULL with the reason in err.
 */
static MYSQL *
db_connect_one(const struct db_host *h, char *err, size_t errsz)
{
	MYSQL		*m;
	unsigned long	 flags = CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS;

	if ((m = db_new_handle(5)) == NULL) {
		snprintf(err, errsz, "cannot set connection options");
		return NULL;
	}
	if (mysql_real_connect(m, h->socket ? NULL : h->name, cfg.db_user,
	    cfg.db_password, NULL, h->socket ? 0 : (unsigned int)h->port,
	    h->socket ? h->name : NULL, flags) == NULL) {
		snprintf(err, errsz, "%.255s: error %u: %.200s", h->name,
		    mysql_errno(m), mysql_error(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}
/*
 * Selects the configured database on m; when it does not exist yet,
 * creates it if create is set.  Returns 0, or -1 after printing the
 * error.
 */
static int
db_use(MYSQL *m, bool create)
{
	char		 sql[128];
	const char	*p;
	long long	 n;

	if (cfg.db_name == NULL || cfg.db_name[0] == '\0' ||
	    strlen(cfg.db_name) > 64) {
		fprintf(stderr, "%s: [database] name is empty or too long\n",
		    progname);
		return -1;
	}
	for (p = cfg.db_name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '$' &&
		    *p != '-') {
			fprintf(stderr, "%s: [database] name may hold only "
			    "letters, digits, '_', '$' and '-'\n", progname);
			return -1;
		}
	if (mysql_select_db(m, cfg.db_name) == 0)
		return 0;
	if (mysql_errno(m) == ER_BAD_DB_ERROR && !create) {
		fprintf(stderr, "%s: database %s does not exist yet "
		    "(%s migrate makes it)\n", progname, cfg.db_name,
		    progname);
		return -1;
	}
	if (mysql_errno(m) != ER_BAD_DB_ERROR) {
		db_warn(m, "selecting the database");
		return -1;
	}
	snprintf(sql, sizeof(sql), "CREATE DATABASE IF NOT EXISTS `%s` "
	    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", cfg.db_name);
	/* One row when this run made it, none when another run did. */
	if ((n = db_run(m, sql, "creating the database")) < 0)
		return -1;
	if (mysql_select_db(m, cfg.db_name) != 0) {
		db_warn(m, "selecting the database");
		return -1;
	}
	if (n > 0)
		printf("created database %s\n", cfg.db_name);
	return 0;
}

/*
 * Opens tollgatectl's own connection: through [database] socket when it
 * is set, else to each host of the comma-separated [database] host in
 * turn, and selects the configured database (made first when create is
 * set and it does not exist).  The session runs in UTC with strict SQL
 * modes and can send several statements in one query.  Returns a handle
 * owned by the caller (mysql_close), or NULL after printing why.
 */
static MYSQL *
db_open(bool create)
{
	struct db_host	 hosts[16];
	MYSQL		*m = NULL;
	char		 err[512];
	size_t		 n, i;
	int		 tried = 0;

	n = db_hosts(hosts, sizeof(hosts) / sizeof(hosts[0]));
	for (i = 0; m == NULL && i < n; i++) {
		tried++;
		if ((m = db_connect_one(&hosts[i], err, sizeof(err))) == NULL)
			fprintf(stderr, "%s: cannot connect to %s\n", progname,
			    err);
	}
	if (m == NULL) {
		if (tried == 0)
			fprintf(stderr, "%s: neither [database] socket nor "
			    "host is set\n", progname);
		else
			fprintf(stderr, "%s: no database server answered\n",
			    progname);
		return NULL;
	}
	if (db_run(m, "SET time_zone = '+00:00', sql_mode = "
	    "'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
	    "NO_ENGINE_SUBSTITUTION'", "setting up the session") < 0 ||
	    db_use(m, create) < 0) {
		mysql_close(m);
		return NULL;
	}
	return m;
}

/*
 * Makes the tables migrate itself needs (the record of applied steps,
 * the lease row, the record of the routines) and the lease row itself.  Every statement
 * is safe to repeat.  Returns 0, or -1 after printing the error.
 */
static int
schema_bootstrap(MYSQL *m)
{
	static const char *const sql[] = {
		"CREATE TABLE IF NOT EXISTS schema_migrations ("
		" version INT NOT NULL,"
		" name VARCHAR(255) NOT NULL,"
		" applied_at DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),"
		" PRIMARY KEY (version)"
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
		" COLLATE=utf8mb4_unicode_ci",
		"CREATE TABLE IF NOT EXISTS schema_lock ("
		" id TINYINT NOT NULL,"
		" holder VARCHAR(128) CHARACTER SET ascii"
		"  COLLATE ascii_bin NULL,"
		" expires_at DATETIME(6) NULL,"
		" PRIMARY KEY (id)"
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
		" COLLATE=utf8mb4_unicode_ci",
		"INSERT IGNORE INTO schema_lock (id, holder, expires_at)"
		" VALUES (1, NULL, NULL)",
		"CREATE TABLE IF NOT EXISTS schema_routines ("
		" id TINYINT NOT NULL,"
		" digest CHAR(64) CHARACTER SET ascii COLLATE ascii_bin"
		"  NOT NULL,"
		" applied_at DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),"
		" PRIMARY KEY (id)"
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
		" COLLATE=utf8mb4_unicode_ci",
	};
	size_t	 i;

	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (db_run(m, sql[i], "making the migration tables") < 0)
			return -1;
	return 0;
}

/*
 * Fills me with this run's lease holder name, "HOST:PID:RANDOM", where
 * the host name keeps only characters that need no quoting in SQL.
 * Returns 0, or -1 when no random bytes could be had.
 */
static int
lease_name(char *me, size_t sz)
{
	char		 host[64];
	unsigned char	 rnd[6];
	size_t		 i;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i] != '\0'; i++)
		if (!isalnum((unsigned char)host[i]) && host[i] != '.' &&
		    host[i] != '-')
			host[i] = '_';
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		fprintf(stderr, "%s: getrandom: %s\n", progname,
		    strerror(errno));
		return -1;
	}
	snprintf(me, sz, "%s:%ld:%02x%02x%02x%02x%02x%02x", host,
	    (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	return 0;
}

/*
 * Reads the current lease holder and its expiry (RFC 3339) into the
 * buffers ("" when free).  Returns 0, or -1 after printing the error.
 */
static int
lease_read(MYSQL *m, char *holder, size_t hsz, char *until, size_t usz)
{
	MYSQL_RES	*res = NULL;
	MYSQL_ROW	 row;
	const char	*sql = "SELECT holder, DATE_FORMAT(expires_at, "
	    "'%Y-%m-%dT%H:%i:%sZ') FROM schema_lock WHERE id = 1";
	int		 rc = -1;

	holder[0] = until[0] = '\0';
	if (mysql_real_query(m, sql, strlen(sql)) != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		db_warn(m, "reading schema_lock");
		goto out;
	}
	if ((row = mysql_fetch_row(res)) != NULL) {
		snprintf(holder, hsz, "%s", row[0] != NULL ? row[0] : "");
		snprintf(until, usz, "%s", row[1] != NULL ? row[1] : "");
	}
	rc = 0;
out:
	if (res != NULL)
		mysql_free_result(res);
	return rc;
}

/*
 * Returns whether the lease holder names a process of this host that no
 * longer exists, so that its lease may be taken before it runs out.
 */
static bool
lease_holder_dead(const char *holder)
{
	char		 host[64], mine[64];
	const char	*c1, *c2;
	char		*end;
	long		 pid;
	size_t		 i;

	if ((c1 = strchr(holder, ':')) == NULL ||
	    (c2 = strchr(c1 + 1, ':')) == NULL ||
	    (size_t)(c1 - holder) >= sizeof(host))
		return false;
	memcpy(host, holder, (size_t)(c1 - holder));
	host[c1 - holder] = '\0';
	if (gethostname(mine, sizeof(mine)) != 0)
		return false;
	mine[sizeof(mine) - 1] = '\0';
	for (i = 0; mine[i] != '\0'; i++)
		if (!isalnum((unsigned char)mine[i]) && mine[i] != '.' &&
		    mine[i] != '-')
			mine[i] = '_';
	if (strcmp(host, mine) != 0)
		return false;
	errno = 0;
	pid = strtol(c1 + 1, &end, 10);
	if (errno != 0 || end != c2 || pid <= 0 || pid == (long)getpid())
		return false;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/*
 * Tries once to take the lease for me: when it is free or expired, or
 * when stale names a dead holder that still has it.  Returns 1 when the
 * lease is ours, 0 when someone else has it, -1 after printing an error.
 */
static int
lease_try(MYSQL *m, const char *me, const char *stale)
{
	char		 sql[768], esc[2 * 128 + 1];
	long long	 n;

	if (stale == NULL) {
		snprintf(sql, sizeof(sql), "UPDATE schema_lock SET "
		    "holder = '%s', expires_at = UTC_TIMESTAMP(6) + "
		    "INTERVAL %d SECOND WHERE id = 1 AND (holder IS NULL OR "
		    "expires_at IS NULL OR expires_at < UTC_TIMESTAMP(6))",
		    me, LEASE_SECONDS);
	} else {
		if (strlen(stale) > 128)
			return 0;
		mysql_real_escape_string(m, esc, stale, strlen(stale));
		snprintf(sql, sizeof(sql), "UPDATE schema_lock SET "
		    "holder = '%s', expires_at = UTC_TIMESTAMP(6) + "
		    "INTERVAL %d SECOND WHERE id = 1 AND holder = '%s'",
		    me, LEASE_SECONDS, esc);
	}
	if ((n = db_run(m, sql, "taking the schema lock")) < 0)
		return -1;
	return n == 1;
}

/*
 * Takes the migration lease for me, waiting up to LEASE_WAIT seconds
 * while another run holds it.  A lease left by a dead process of this
 * host is taken at once.  Returns 0 when the lease is ours, else -1
 * after printing why.
 */
static int
lease_take(MYSQL *m, const char *me)
{
	char	 holder[256], until[64];
	time_t	 start = time(NULL);
	bool	 told = false;
	int	 rc;

	for (;;) {
		if ((rc = lease_try(m, me, NULL)) != 0)
			return rc == 1 ? 0 : -1;
		if (lease_read(m, holder, sizeof(holder),
		    until, sizeof(until)) < 0)
			return -1;
		if (holder[0] != '\0' && lease_holder_dead(holder)) {
			if ((rc = lease_try(m, me, holder)) != 0) {
				if (rc == 1)
					fprintf(stderr, "%s: took over the "
					    "schema lock of %s, which is no "
					    "longer running\n", progname,
					    holder);
				return rc == 1 ? 0 : -1;
			}
			continue;
		}
		if (time(NULL) - start >= LEASE_WAIT) {
			fprintf(stderr, "%s: another migration holds the "
			    "schema lock (holder %s, until %s); gave up "
			    "after %d seconds.  If no migration is running, "
			    "clear it with: UPDATE schema_lock SET holder = "
			    "NULL WHERE id = 1\n", progname, holder, until,
			    LEASE_WAIT);
			return -1;
		}
		if (!told) {
			fprintf(stderr, "%s: waiting for the schema lock "
			    "held by %s until %s\n", progname, holder, until);
			told = true;
		}
		sleep(1);
	}
}

/*
 * Extends our lease by LEASE_SECONDS.  Returns 0, or -1 after printing
 * why (an error, or the lease is no longer ours).
 */
static int
lease_renew(MYSQL *m, const char *me)
{
	char		 sql[512];
	long long	 n;

	snprintf(sql, sizeof(sql), "UPDATE schema_lock SET expires_at = "
	    "UTC_TIMESTAMP(6) + INTERVAL %d SECOND WHERE id = 1 AND "
	    "holder = '%s'", LEASE_SECONDS, me);
	if ((n = db_run(m, sql, "renewing the schema lock")) < 0)
		return -1;
	if (n != 1) {
		fprintf(stderr, "%s: lost the schema lock to another run; "
		    "stopping\n", progname);
		return -1;
	}
	return 0;
}

/* Gives our lease back, if it is still ours.  Errors are printed only. */
static void
lease_release(MYSQL *m, const char *me)
{
	char	 sql[512];

	snprintf(sql, sizeof(sql), "UPDATE schema_lock SET holder = NULL, "
	    "expires_at = NULL WHERE id = 1 AND holder = '%s'", me);
	(void)db_run(m, sql, "releasing the schema lock");
}

/* Frees the migration list and its strings. */
static void
migrations_free(struct migrations *ms)
{
	size_t	 i;

	for (i = 0; i < ms->n; i++) {
		free(ms->v[i].file);
		free(ms->v[i].path);
	}
	free(ms->v);
	ms->v = NULL;
	ms->n = 0;
}

/* Orders migrations by version, for qsort. */
static int
migration_cmp(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	if (x->version != y->version)
		return (x->version > y->version) - (x->version < y->version);
	return strcmp(x->file, y->file);
}

/*
 * Parses a migration file name, "NNN-name.sql" with NNN of one to nine
 * digits and not zero.  Returns the version, or -1 when the name is not
 * a migration's.
 */
static long
migration_version(const char *name)
{
	size_t	 digits, len = strlen(name);
	long	 v;

	digits = 0;
	while (isdigit((unsigned char)name[digits]))
		digits++;
	if (digits == 0 || digits > 9 || name[digits] != '-' ||
	    len < digits + 6 || strcmp(name + len - 4, ".sql") != 0)
		return -1;
	v = strtol(name, NULL, 10);
	return v > 0 ? v : -1;
}

/*
 * Returns 0 when name is a routines file's ("name.sql", not hidden), -1
 * otherwise: the version of every routines file, for sqlfiles_load.
 */
static long
routine_version(const char *name)
{
	size_t	 len = strlen(name);

	return name[0] != '.' && len > 4 &&
	    strcmp(name + len - 4, ".sql") == 0 ? 0 : -1;
}

/*
 * Reads the .sql files of dir that version() accepts (it returns their
 * number, or -1 for a file to ignore) into *ms, sorted by number, then
 * name.  Two numbered files with the same number are an error.  Returns
 * 0, or -1 after printing the error.  *ms is the caller's to free with
 * migrations_free, also on error.
 */
static int
sqlfiles_load(const char *dir, long (*version)(const char *),
    struct migrations *ms)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	struct migration *nv;
	size_t		 cap = 0, i;
	long		 v;
	char		*path;
	int		 rc = -1;

	ms->v = NULL;
	ms->n = 0;
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "%s: %s: %s\n", progname, dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if ((v = version(de->d_name)) < 0)
			continue;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			fprintf(stderr, "%s: out of memory\n", progname);
			goto out;
		}
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (ms->n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			nv = reallocarray(ms->v, cap, sizeof(*nv));
			if (nv == NULL) {
				free(path);
				fprintf(stderr, "%s: out of memory\n",
				    progname);
				goto out;
			}
			ms->v = nv;
		}
		ms->v[ms->n].version = v;
		ms->v[ms->n].path = path;
		if ((ms->v[ms->n].file = strdup(de->d_name)) == NULL) {
			free(path);
			fprintf(stderr, "%s: out of memory\n", progname);
			goto out;
		}
		ms->n++;
	}
	if (ms->n > 0)
		qsort(ms->v, ms->n, sizeof(ms->v[0]), migration_cmp);
	for (i = 1; i < ms->n; i++)
		if (ms->v[i].version > 0 &&
		    ms->v[i].version == ms->v[i - 1].version) {
			fprintf(stderr, "%s: %s and %s have the same "
			    "number\n", progname, ms->v[i - 1].path,
			    ms->v[i].path);
			goto out;
		}
	rc = 0;
out:
	closedir(d);
	return rc;
}

/*
 * Reads a whole file.  Returns a NUL-terminated buffer owned by the
 * caller (free) with its length in *len, or NULL after printing why.
 */
static char *
file_read(const char *path, size_t *len)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", progname, path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		fprintf(stderr, "%s: %s: %s\n", progname, path,
		    strerror(errno));
		goto err;
	}
	if (st.st_size > MAX_SQL_FILE) {
		fprintf(stderr, "%s: %s: larger than %d bytes\n", progname,
		    path, MAX_SQL_FILE);
		goto err;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(stderr, "%s: out of memory\n", progname);
		goto err;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "%s: %s: %s\n", progname, path,
			    n == 0 ? "file shrank while read" :
			    strerror(errno));
			goto err;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	*len = off;
	close(fd);
	return buf;
err:
	free(buf);
	close(fd);
	return NULL;
}

/*
 * Sends one migration file as a single multi-statement query and drains
 * every result, stopping at the first failing statement, which is
 * reported with the file, its position, and the server's error.  A file
 * holding no statement at all is accepted.  Returns 0 or -1.
 */
static int
migration_apply(MYSQL *m, const struct migration *mg)
{
	MYSQL_RES	*res;
	char		*sql;
	size_t		 len;
	int		 stmt = 1, next, rc = -1;

	if ((sql = file_read(mg->path, &len)) == NULL)
		return -1;
	if (mysql_real_query(m, sql, len) != 0) {
		if (mysql_errno(m) == ER_EMPTY_QUERY)
			rc = 0;
		else
			fprintf(stderr, "%s: %s: statement %d: error %u: "
			    "%s\n", progname, mg->path, stmt,
			    mysql_errno(m), mysql_error(m));
		goto out;
	}
	for (;;) {
		res = mysql_store_result(m);
		if (res != NULL)
			mysql_free_result(res);
		else if (mysql_field_count(m) != 0) {
			fprintf(stderr, "%s: %s: statement %d: error %u: "
			    "%s\n", progname, mg->path, stmt,
			    mysql_errno(m), mysql_error(m));
			goto out;
		}
		if ((next = mysql_next_result(m)) == -1)
			break;
		stmt++;
		if (next > 0) {
			fprintf(stderr, "%s: %s: statement %d: error %u: "
			    "%s\n", progname, mg->path, stmt,
			    mysql_errno(m), mysql_error(m));
			goto out;
		}
	}
	rc = 0;
out:
	free(sql);
	return rc;
}

/*
 * Records that a migration was applied.  Returns 0, or -1 after
 * printing the error.
 */
static int
migration_record(MYSQL *m, const struct migration *mg)
{
	char	 esc[2 * 255 + 1], sql[1024];
	size_t	 len = strlen(mg->file);

	if (len > 255) {
		fprintf(stderr, "%s: %s: file name too long\n", progname,
		    mg->file);
		return -1;
	}
	mysql_real_escape_string(m, esc, mg->file, len);
	snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations "
	    "(version, name, applied_at) VALUES (%ld, '%s', "
	    "UTC_TIMESTAMP(6))", mg->version, esc);
	return db_run(m, sql, "recording the migration") < 0 ? -1 : 0;
}

/*
 * Returns whether the database already recorded version v, as 1 or 0,
 * or -1 after printing an error.
 */
static int
migration_done(MYSQL *m, long v)
{
	char		 sql[128];
	long long	 n;

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM schema_migrations "
	    "WHERE version = %ld", v);
	if (db_int(m, sql, "reading schema_migrations", &n, NULL) < 0)
		return -1;
	return n > 0;
}

/*
 * Reads the schema version: the highest applied step, 0 when none (or
 * when schema_migrations does not exist yet).  Returns 0, or -1 after
 * printing the error.
 */
static int
schema_version(MYSQL *m, long long *v)
{
	unsigned	 err;

	if (db_int(m, "SELECT MAX(version) FROM schema_migrations",
	    "reading schema_migrations", v, &err) == 0)
		return 0;
	if (err == ER_NO_SUCH_TABLE) {
		*v = 0;
		return 0;
	}
	db_warn(m, "reading schema_migrations");
	return -1;
}

/*
 * Reads the routines files of the sql directory dir (dir/routines, NAME.sql)
 * into *rs, in name order, and their SHA-256, as tollgated's build
 * computed it (Makefile.am), into hex.  Returns 0, or -1 after printing
 * the error.  *rs is the caller's to free with migrations_free.
 */
static int
routines_load(const char *dir, struct migrations *rs, char hex[65])
{
	crypto_hash_sha256_state st;
	unsigned char	 h[crypto_hash_sha256_BYTES];
	char		*path, *sql;
	size_t		 i, len;
	int		 rc;

	rs->v = NULL;
	rs->n = 0;
	if (asprintf(&path, "%s/routines", dir) < 0) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return -1;
	}
	rc = sqlfiles_load(path, routine_version, rs);
	if (rc == 0 && rs->n == 0) {
		fprintf(stderr, "%s: %s: no routines files (NAME.sql)\n",
		    progname, path);
		rc = -1;
	}
	free(path);
	if (rc < 0)
		return -1;
	crypto_hash_sha256_init(&st);
	for (i = 0; i < rs->n; i++) {
		if ((sql = file_read(rs->v[i].path, &len)) == NULL)
			return -1;
		crypto_hash_sha256_update(&st, (unsigned char *)sql, len);
		free(sql);
	}
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, 65, h, sizeof(h));
	return 0;
}

/*
 * Returns whether the database's routines are the ones whose digest is
 * hex, as 1 or 0 (0 also before migrate first made schema_routines), or
 * -1 after printing the error.
 */
static int
routines_current(MYSQL *m, const char *hex)
{
	char		 sql[192];
	long long	 n;
	unsigned	 err;

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM schema_routines "
	    "WHERE id = 1 AND digest = '%s'", hex);
	if (db_int(m, sql, "reading schema_routines", &n, &err) == 0)
		return n > 0;
	if (err == ER_NO_SUCH_TABLE)
		return 0;
	db_warn(m, "reading schema_routines");
	return -1;
}

/*
 * Creates every routine of rs (each file is CREATE OR REPLACE
 * statements), under the lease held as me, then records their digest.
 * Returns 0, or -1 after printing the error.
 */
static int
routines_apply(MYSQL *m, const struct migrations *rs, const char *hex,
    const char *me)
{
	char	 sql[256];
	size_t	 i;

	for (i = 0; i < rs->n; i++) {
		if (lease_renew(m, me) < 0 || migration_apply(m, &rs->v[i]) < 0)
			return -1;
		printf("applied routines/%s\n", rs->v[i].file);
		fflush(stdout);
	}
	snprintf(sql, sizeof(sql), "INSERT INTO schema_routines (id, digest, "
	    "applied_at) VALUES (1, '%s', UTC_TIMESTAMP(6)) ON DUPLICATE KEY "
	    "UPDATE digest = VALUES(digest), applied_at = VALUES(applied_at)",
	    hex);
	return db_run(m, sql, "recording the routines") < 0 ? -1 : 0;
}

/*
 * Parses the arguments of migrate and version: an optional --sql-dir
 * DIR (or --sql-dir=DIR).  The directory is, in order: the argument,
 * $TOLLGATE_SQL_DIR, the compiled-in TOLLGATE_SQLDIR.  Returns 0, or 2
 * after printing the usage.
 */
static int
sqldir_args(int argc, char *argv[], const char **dir)
{
	const char	*env;
	int		 i;

	*dir = TOLLGATE_SQLDIR;
	if ((env = getenv("TOLLGATE_SQL_DIR")) != NULL && env[0] != '\0')
		*dir = env;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--sql-dir") == 0 && i + 1 < argc)
			*dir = argv[++i];
		else if (strncmp(argv[i], "--sql-dir=", 10) == 0 &&
		    argv[i][10] != '\0')
			*dir = argv[i] + 10;
		else
			return usage();
	}
	return 0;
}

/*
 * migrate [--sql-dir DIR]: applies the pending migrations in order and
 * prints one line per step and the schema version.  Returns 0, 1 on an
 * error, 2 on bad usage.
 */
static int
cmd_migrate(int argc, char *argv[])
{
	struct migrations ms = { NULL, 0 }, rs = { NULL, 0 };
	MYSQL		*m = NULL;
	const char	*dir;
	char		 me[128], hex[65];
	long long	 version;
	bool		 leased = false;
	size_t		 i, applied = 0;
	int		 done, rc = 1;

	if ((rc = sqldir_args(argc, argv, &dir)) != 0)
		return rc;
	rc = 1;
	if (sqlfiles_load(dir, migration_version, &ms) < 0)
		goto out;
	if (ms.n == 0) {
		fprintf(stderr, "%s: %s: no migration files (NNN-name.sql)\n",
		    progname, dir);
		goto out;
	}
	if (lease_name(me, sizeof(me)) < 0 ||
	    (m = db_open(true)) == NULL ||
	    schema_bootstrap(m) < 0 ||
	    lease_take(m, me) < 0)
		goto out;
	leased = true;
	for (i = 0; i < ms.n; i++) {
		if ((done = migration_done(m, ms.v[i].version)) < 0)
			goto out;
		if (done)
			continue;
		if (lease_renew(m, me) < 0 ||
		    migration_apply(m, &ms.v[i]) < 0 ||
		    migration_record(m, &ms.v[i]) < 0)
			goto out;
		printf("applied %s\n", ms.v[i].file);
		fflush(stdout);
		applied++;
	}
	/*
	 * The routines again after any step: a step that rebuilt a table
	 * took the table's triggers with it.
	 */
	if (routines_load(dir, &rs, hex) < 0 ||
	    (done = routines_current(m, hex)) < 0 ||
	    ((applied > 0 || !done) && routines_apply(m, &rs, hex, me) < 0))
		goto out;
	if (schema_version(m, &version) < 0)
		goto out;
	if (version > ms.v[ms.n - 1].version)
		fprintf(stderr, "%s: the database has version %lld, newer "
		    "than the newest file in %s (%ld)\n", progname, version,
		    dir, ms.v[ms.n - 1].version);
	printf("schema version %lld\n", version);
	rc = 0;
out:
	if (m != NULL) {
		if (leased)
			lease_release(m, me);
		mysql_close(m);
	}
	migrations_free(&ms);
	migrations_free(&rs);
	return rc;
}

/*
 * version [--sql-dir DIR]: prints the schema version, and on stderr how
 * many migrations of the sql directory are still to be applied (or that
 * its routines are not the database's).
 * Returns 0, 1 on an error, 2 on bad usage.
 */
static int
cmd_version(int argc, char *argv[])
{
	struct migrations ms = { NULL, 0 }, rs = { NULL, 0 };
	struct stat	 st;
	MYSQL		*m = NULL;
	const char	*dir;
	char		 hex[65];
	long long	 version;
	size_t		 i, pending = 0;
	int		 done, rc;

	if ((rc = sqldir_args(argc, argv, &dir)) != 0)
		return rc;
	rc = 1;
	if ((m = db_open(false)) == NULL || schema_version(m, &version) < 0)
		goto out;
	printf("schema version %lld\n", version);
	rc = 0;
	/* The pending count is advice: its failures do not fail. */
	if (version == 0 || stat(dir, &st) != 0 ||
	    sqlfiles_load(dir, migration_version, &ms) < 0) {
		migrations_free(&ms);
		goto out;
	}
	for (i = 0; i < ms.n; i++) {
		if ((done = migration_done(m, ms.v[i].version)) < 0)
			goto out;
		if (!done)
			pending++;
	}
	if (pending > 0)
		fprintf(stderr, "%s: %zu migration(s) in %s not applied; "
		    "run %s migrate\n", progname, pending, dir, progname);
	else if (routines_load(dir, &rs, hex) == 0 &&
	    routines_current(m, hex) == 0)
		fprintf(stderr, "%s: the routines in %s/routines are not the "
		    "database's; run %s migrate\n", progname, dir, progname);
out:
	if (m != NULL)
		mysql_close(m);
	migrations_free(&ms);
	migrations_free(&rs);
	return rc;
}

/*
 * Finds the command named by the first one or two words of argv.
 * Returns it with the number of words it used in *used, or NULL.
 */
static const struct cmd *
cmd_find(int argc, char *argv[], int *used)
{
	size_t	 i;

	for (i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].name, argv[0]) != 0)
			continue;
		if (cmds[i].sub == NULL) {
			*used = 1;
			return &cmds[i];
		}
		if (argc > 1 && strcmp(cmds[i].sub, argv[1]) == 0) {
			*used = 2;
			return &cmds[i];
		}
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	const struct cmd *c;
	const char	*conf = NULL;
	char		 err[512];
	int		 ch, used, rc;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		default:
			return usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || (c = cmd_find(argc, argv, &used)) == NULL)
		return usage();

	if (conf == NULL)
		conf = config_default_path();
	if (config_load(conf, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", progname, err);
		return 1;
	}
	if (crypto_init() < 0) {
		fprintf(stderr, "%s: libsodium failed to initialise\n",
		    progname);
		config_free(&cfg);
		return 1;
	}
	if (mysql_library_init(0, NULL, NULL) != 0) {
		fprintf(stderr, "%s: cannot initialise libmariadb\n",
		    progname);
		config_free(&cfg);
		return 1;
	}
	rc = c->fn(argc - used, argv + used);
	mysql_library_end();
	config_free(&cfg);
	return rc;
}
