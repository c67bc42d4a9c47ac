/*
 * Tests of src/db/db.c against a real MariaDB Galera cluster: the host list,
 * wsrep_sync_wait, and db_tx_run with its failure codes, through a small
 * TCP proxy that injects faults where a test asks for them.
 *
 * It needs the cluster of contrib/cluster: t/91-db-tx.t runs it with
 * TG_DBTX_CONF (a tollgate.conf), TG_DBTX_NODES (the nodes' host:port
 * list), TG_DBTX_ROOT (node 1's socket, for root) and TG_DBTX_LOG (where
 * tollgate's log lines go; else stderr).  Without them, as under make
 * check, it skips.
 *
 * The proxy forwards one client's connection to node 1 and reads the
 * client's commands.  A query holding one of these markers arms it for
 * that connection:
 *   tg-fault:drop-now            close at once (a link lost mid-transaction)
 *   tg-fault:drop-before-commit  on COMMIT, close without sending it on
 *   tg-fault:drop-after-commit   on COMMIT, send it on, wait for the
 *                                server's answer, then close without
 *                                passing it back (the answer is lost)
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "server/server.h"
#include "tap.h"

#define COM_QUERY		0x03
#define COM_STMT_PREPARE	0x16

enum fault { F_NONE, F_NOW, F_BEFORE, F_AFTER };

static char	 node[3][64];		/* "127.0.0.1:port" of nodes 1..3 */
static int	 node_port[3];
static char	 keyp[32];		/* this run's key prefix */

/* ------------------------------------------------------------------ */
/* The proxy.                                                          */
/* ------------------------------------------------------------------ */

static int
connect_port(int port)
{
	struct sockaddr_in	 sa;
	int			 fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	ssize_t	 w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Relays one connection.  Client packets are parsed (3-byte length,
 * sequence number, payload); a packet with sequence 0 after the
 * handshake is a command.
 */
static void
relay(int cfd, int upstream_port)
{
	unsigned char	 cbuf[1 << 16], sbuf[1 << 16];
	size_t		 clen = 0;
	struct pollfd	 pf[2];
	enum fault	 armed = F_NONE;
	int		 sfd, authed = 0;
	ssize_t		 n;

	if ((sfd = connect_port(upstream_port)) < 0)
		_exit(1);
	pf[0].fd = cfd;
	pf[1].fd = sfd;
	pf[0].events = pf[1].events = POLLIN;
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			if ((n = read(sfd, sbuf, sizeof(sbuf))) <= 0)
				break;
			if (write_all(cfd, sbuf, (size_t)n) < 0)
				break;
			authed = 1;	/* crude, but the client speaks second */
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if ((n = read(cfd, cbuf + clen, sizeof(cbuf) - clen)) <= 0)
			break;
		clen += (size_t)n;
		/* Pass on every whole packet, looking at commands. */
		while (clen >= 4) {
			size_t	 plen = cbuf[0] | cbuf[1] << 8 | cbuf[2] << 16;
			size_t	 total = plen + 4;
			int	 seq = cbuf[3];

			if (clen < total) {
				if (total > sizeof(cbuf))
					_exit(1);
				break;
			}
			if (authed && seq == 0 && plen >= 1 &&
			    (cbuf[4] == COM_QUERY || cbuf[4] == COM_STMT_PREPARE)) {
				const char	*q = (const char *)cbuf + 5;
				size_t		 ql = plen - 1;

				if (memmem(q, ql, "tg-fault:drop-now", 17))
					goto out;
				if (memmem(q, ql, "tg-fault:drop-before-commit", 27))
					armed = F_BEFORE;
				if (memmem(q, ql, "tg-fault:drop-after-commit", 26))
					armed = F_AFTER;
				if (cbuf[4] == COM_QUERY && ql == 6 &&
				    strncasecmp(q, "COMMIT", 6) == 0) {
					if (armed == F_BEFORE)
						goto out;
					if (armed == F_AFTER) {
						/* The server commits and answers;
						 * the answer goes nowhere. */
						(void)write_all(sfd, cbuf, total);
						(void)read(sfd, sbuf, sizeof(sbuf));
						goto out;
					}
				}
			}
			if (write_all(sfd, cbuf, total) < 0)
				goto out;
			memmove(cbuf, cbuf + total, clen - total);
			clen -= total;
		}
	}
out:
	close(sfd);
	close(cfd);
	_exit(0);
}

/* Starts the proxy to upstream_port; returns its port (pid in *pid). */
static int
proxy_start(int upstream_port, pid_t *pid)
{
	struct sockaddr_in	 sa;
	socklen_t		 sl = sizeof(sa);
	int			 lfd, cfd, one = 1;

	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	if ((*pid = fork()) < 0)
		return -1;
	if (*pid == 0) {
		signal(SIGCHLD, SIG_IGN);
		for (;;) {
			if ((cfd = accept(lfd, NULL, NULL)) < 0) {
				if (errno == EINTR)
					continue;
				_exit(1);
			}
			if (fork() == 0) {
				close(lfd);
				relay(cfd, upstream_port);
			}
			close(cfd);
		}
	}
	close(lfd);
	return ntohs(sa.sin_port);
}

/* ------------------------------------------------------------------ */
/* Helpers.                                                            */
/* ------------------------------------------------------------------ */

/* Runs a statement outside the prepared-statement cache. */
static int
raw(const char *sql)
{
	MYSQL	*m = db_handle();

	if (m == NULL)
		return -1;
	return mysql_real_query(m, sql, strlen(sql)) == 0 ? 0 : -1;
}

static struct sql q_insert = SQL(
    "INSERT INTO t91_tx (k, n) VALUES (?, 1)");
static struct sql q_bump = SQL(
    "UPDATE t91_tx SET n = n + 1 WHERE k = ?");
static struct sql q_get = SQL(
    "SELECT n FROM t91_tx WHERE k = ?");
static struct sql q_get_locked = SQL(
    "SELECT n FROM t91_tx WHERE k = ? FOR UPDATE");
static struct sql q_set = SQL(
    "UPDATE t91_tx SET n = ? WHERE k = ?");
static struct sql q_count = SQL(
    "SELECT COUNT(*) FROM t91_tx WHERE k = ?");
static struct sql q_sync_wait = SQL(
    "SELECT @@session.wsrep_sync_wait, @@port");

/* n of key k (-1 when there is no row), read on a fresh connection. */
static long long
value_of(const char *k)
{
	struct arena	*a = arena_new();
	struct dbrows	 row;
	long long	 v = -1;

	if (db_select(a, &q_get, &row, "s", k) == 1)
		v = dbi(&row, 0, 0);
	arena_free(a);
	return v;
}

static int
port_of_connection(long long *sync_wait)
{
	struct arena	*a = arena_new();
	struct dbrows	 row;
	int		 port = -1;

	if (db_select(a, &q_sync_wait, &row, "") == 1) {
		*sync_wait = dbi(&row, 0, 0);
		port = (int)dbi(&row, 0, 1);
	}
	arena_free(a);
	return port;
}

/* Waits up to 30 s until the node of m says it is synced again. */
static bool
synced_again(MYSQL *m)
{
	MYSQL_RES	*res;
	MYSQL_ROW	 row;
	bool		 yes = false;
	int		 i;

	for (i = 0; i < 300 && !yes; i++) {
		if (mysql_query(m, "SHOW GLOBAL STATUS LIKE "
		    "'wsrep_local_state'") == 0 &&
		    (res = mysql_store_result(m)) != NULL) {
			yes = (row = mysql_fetch_row(res)) != NULL &&
			    row[1] != NULL && strcmp(row[1], "4") == 0;
			mysql_free_result(res);
		}
		if (!yes)
			usleep(100000);
	}
	return yes;
}

static void
use_hosts(const char *hosts)
{
	db_close();
	free(cfg.db_host);
	if ((cfg.db_host = strdup(hosts)) == NULL)
		abort();
}

/* ------------------------------------------------------------------ */
/* Transactions for db_tx_run.                                         */
/* ------------------------------------------------------------------ */

struct tx {
	char		 key[64];
	const char	*fault;		/* a marker query for the first run */
	int		 runs;		/* how often fn ran */
	int		 lookups;	/* how often committed ran */
	bool		 abort;		/* fn returns DB_ABORT */
	bool		 midway;	/* the fault comes between statements */
};

/* Inserts the key and bumps it: two statements, one transaction. */
static int
tx_insert(void *p)
{
	struct tx	*t = p;
	int		 rc;

	t->runs++;
	if ((rc = db_exec(&q_insert, "s", t->key)) < 0)
		return rc;
	if (t->fault != NULL && t->runs == 1)
		(void)raw(t->fault);
	if ((rc = db_exec(&q_bump, "s", t->key)) < 0)
		return rc;
	return t->abort ? DB_ABORT : 7;
}

/* The effect of tx_insert is there when its key is (an idempotency key). */
static int
tx_committed(void *p)
{
	struct tx	*t = p;
	struct arena	*a = arena_new();
	struct dbrows	 row;
	int		 rc;

	t->lookups++;
	rc = db_select(a, &q_count, &row, "s", t->key);
	if (rc == 1)
		rc = dbi(&row, 0, 0) > 0;
	else if (rc >= 0)
		rc = -1;
	arena_free(a);
	return rc;
}

static void
tx_init(struct tx *t, const char *name, const char *fault)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->key, sizeof(t->key), "%s-%s", keyp, name);
	t->fault = fault;
}

/* A read-modify-write increment: conflicts are what it is for. */
struct incr {
	const char	*key;
	int		 runs;
};

static int
tx_increment(void *p)
{
	struct incr	*c = p;
	struct arena	*a = arena_new();
	struct dbrows	 row;
	int		 rc;

	c->runs++;
	if ((rc = db_select(a, &q_get_locked, &row, "s", c->key)) == 1)
		rc = db_exec(&q_set, "is", dbi(&row, 0, 0) + 1, c->key);
	else if (rc >= 0)
		rc = DB_FAIL;
	arena_free(a);
	return rc < 0 ? rc : 0;
}

/*
 * Runs n increments of key in a child on hosts; the child writes
 * "done runs" to fd.
 */
static pid_t
incrementer(const char *hosts, const char *key, int n, int fd)
{
	struct incr	 c;
	char		 line[64];
	pid_t		 pid;
	int		 i, done = 0;

	if ((pid = fork()) != 0)
		return pid;
	use_hosts(hosts);
	c.key = key;
	c.runs = 0;
	for (i = 0; i < n; i++)
		if (db_tx_run(tx_increment, NULL, &c, 50) >= 0)
			done++;
	snprintf(line, sizeof(line), "%d %d\n", done, c.runs);
	(void)write_all(fd, (unsigned char *)line, strlen(line));
	db_close();
	_exit(0);
}

/* ------------------------------------------------------------------ */

int
main(void)
{
	const char	*conf = getenv("TG_DBTX_CONF");
	const char	*nodes = getenv("TG_DBTX_NODES");
	const char	*root = getenv("TG_DBTX_ROOT");
	char		 err[256], hosts[256], key[64], *s, *save = NULL;
	struct tx	 t;
	pid_t		 proxy, kids[4];
	long long	 sw = -1;
	int		 pport, rc, i, fds[2], done, runs, alldone, allruns;
	MYSQL		*rm;
	FILE		*f;

	if (conf == NULL || nodes == NULL || root == NULL) {
		printf("1..0 # SKIP needs the Galera cluster "
		    "(t/91-db-tx.t under contrib/devstack cluster test)\n");
		return 0;
	}
	/* tollgate's log lines (and any sanitizer report) go to a file. */
	if (getenv("TG_DBTX_LOG") != NULL &&
	    freopen(getenv("TG_DBTX_LOG"), "a", stderr) == NULL)
		return 1;
	if (config_load(conf, &cfg, err, sizeof(err)) != 0) {
		printf("Bail out! %s: %s\n", conf, err);
		return 1;
	}
	snprintf(hosts, sizeof(hosts), "%s", nodes);
	for (i = 0, s = strtok_r(hosts, ",", &save); s != NULL && i < 3;
	    i++, s = strtok_r(NULL, ",", &save)) {
		snprintf(node[i], sizeof(node[i]), "%s", s);
		node_port[i] = atoi(strrchr(s, ':') + 1);
	}
	if (i != 3) {
		printf("Bail out! TG_DBTX_NODES needs three host:port\n");
		return 1;
	}
	snprintf(keyp, sizeof(keyp), "k%ld-%d", (long)time(NULL),
	    (int)getpid());
	signal(SIGPIPE, SIG_IGN);

	/* The host list: walked in order, a dead host skipped. */
	use_hosts(nodes);
	ok(db_ensure() == 0, "connects to the cluster");
	ok(raw("CREATE TABLE IF NOT EXISTS t91_tx (k VARCHAR(64) NOT NULL, "
	    "n BIGINT NOT NULL, PRIMARY KEY (k)) ENGINE=InnoDB") == 0,
	    "a scratch table");
	is_int(port_of_connection(&sw), node_port[0],
	    "the first host of the list takes the connection");
	is_int(sw, 1, "a Galera session reads with wsrep_sync_wait = 1");
	snprintf(hosts, sizeof(hosts), "127.0.0.1:1,%s", node[2]);
	use_hosts(hosts);
	is_int(port_of_connection(&sw), node_port[2],
	    "a host that refuses is skipped for the next");

	/* A node that is not synced is skipped. */
	rm = mysql_init(NULL);
	if (mysql_real_connect(rm, NULL, "root", NULL, NULL, 0, root, 0) &&
	    mysql_query(rm, "SET GLOBAL wsrep_desync = ON") == 0) {
		snprintf(hosts, sizeof(hosts), "%s,%s", node[0], node[1]);
		use_hosts(hosts);
		is_int(port_of_connection(&sw), node_port[1],
		    "a desynced node (not Synced) is skipped for the next");
		(void)mysql_query(rm, "SET GLOBAL wsrep_desync = OFF");
		ok(synced_again(rm), "node 1 is synced again");
	} else
		ok(0, "root on node 1 can desync it");
	mysql_close(rm);

	/* Everything below goes through the proxy to node 1. */
	if ((pport = proxy_start(node_port[0], &proxy)) < 0) {
		printf("Bail out! no proxy\n");
		return 1;
	}
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", pport);
	use_hosts(hosts);

	tx_init(&t, "plain", NULL);
	rc = db_tx_run(tx_insert, tx_committed, &t, DB_TX_TRIES);
	is_int(rc, 7, "a transaction commits and returns its body's result");
	is_int(t.runs, 1, "... having run once");
	is_int(value_of(t.key), 2, "... with both its statements");

	tx_init(&t, "abort", NULL);
	t.abort = true;
	is_int(db_tx_run(tx_insert, tx_committed, &t, DB_TX_TRIES), DB_ABORT,
	    "a body that aborts gets DB_ABORT");
	is_int(t.runs, 1, "... not run again");
	is_int(value_of(t.key), -1, "... and nothing written");

	tx_init(&t, "midway", "DO 1 /* tg-fault:drop-now */");
	rc = db_tx_run(tx_insert, tx_committed, &t, DB_TX_TRIES);
	is_int(rc, 7, "the link lost between two statements: run again, "
	    "commits");
	is_int(t.runs, 2, "... the whole transaction ran twice");
	is_int(t.lookups, 0, "... with no lookup (nothing could have "
	    "committed)");
	is_int(value_of(t.key), 2, "... and the first run left nothing "
	    "half-written");

	tx_init(&t, "before", "DO 1 /* tg-fault:drop-before-commit */");
	rc = db_tx_run(tx_insert, tx_committed, &t, DB_TX_TRIES);
	is_int(rc, 7, "COMMIT lost on its way: looked up, absent, run again");
	is_int(t.lookups, 1, "... one lookup by the idempotency key");
	is_int(t.runs, 2, "... then the transaction ran once more");
	is_int(value_of(t.key), 2, "... and took effect once");

	tx_init(&t, "after", "DO 1 /* tg-fault:drop-after-commit */");
	rc = db_tx_run(tx_insert, tx_committed, &t, DB_TX_TRIES);
	is_int(rc, 7, "COMMIT's answer lost: looked up, found, success");
	is_int(t.lookups, 1, "... one lookup by the idempotency key");
	is_int(t.runs, 1, "... never run again (it would have written twice)");
	is_int(value_of(t.key), 2, "... and took effect once");

	tx_init(&t, "unknown", "DO 1 /* tg-fault:drop-after-commit */");
	rc = db_tx_run(tx_insert, NULL, &t, DB_TX_TRIES);
	is_int(rc, DB_UNKNOWN, "COMMIT's answer lost, no lookup: DB_UNKNOWN");
	is_int(t.runs, 1, "... never run again");
	is_int(value_of(t.key), 2, "... (it had committed)");

	tx_init(&t, "commit", "DO 1 /* tg-fault:drop-after-commit */");
	is_int(db_begin(), 0, "db_begin");
	(void)db_exec(&q_insert, "s", t.key);
	(void)raw(t.fault);
	is_int(db_commit(), DB_UNKNOWN, "db_commit whose answer is lost: "
	    "DB_UNKNOWN, not DB_DOWN");
	is_int(db_ensure(), 0, "... and the next use reconnects");

	kill(proxy, SIGTERM);
	waitpid(proxy, NULL, 0);

	/*
	 * Certification: two writers on node 1 and two on node 3 increment
	 * one row by read-modify-write.  Node-local locks do not stop the
	 * other node; Galera aborts the loser (error 1213, DB_RETRY) and
	 * db_tx_run runs it again, so no increment is lost.
	 */
	snprintf(key, sizeof(key), "%s-counter", keyp);
	use_hosts(nodes);
	{
		static struct sql q_zero = SQL(
		    "INSERT INTO t91_tx (k, n) VALUES (?, 0)");
		ok(db_exec(&q_zero, "s", key) == 1, "a counter at 0");
	}
	db_close();
	if (pipe(fds) < 0)
		abort();
	snprintf(hosts, sizeof(hosts), "%s,%s", node[0], node[1]);
	kids[0] = incrementer(hosts, key, 40, fds[1]);
	kids[1] = incrementer(hosts, key, 40, fds[1]);
	snprintf(hosts, sizeof(hosts), "%s,%s", node[2], node[1]);
	kids[2] = incrementer(hosts, key, 40, fds[1]);
	kids[3] = incrementer(hosts, key, 40, fds[1]);
	close(fds[1]);
	for (i = 0; i < 4; i++)
		waitpid(kids[i], NULL, 0);
	alldone = allruns = 0;
	if ((f = fdopen(fds[0], "r")) != NULL) {
		while (fscanf(f, "%d %d", &done, &runs) == 2) {
			alldone += done;
			allruns += runs;
		}
		fclose(f);
	}
	is_int(alldone, 160, "4 writers on 2 nodes: all 160 increments "
	    "committed");
	use_hosts(nodes);
	is_int(value_of(key), 160, "... and the counter says 160: none lost");
	ok(allruns > alldone, "... conflicts happened and were run again");
	printf("# %d runs for %d transactions\n", allruns, alldone);

	ok(raw("DROP TABLE t91_tx") == 0, "the scratch table is dropped");
	db_close();
	return done_testing();
}
