/*
 * tollgated: the master.  It reads the configuration, opens the FastCGI
 * socket and the gate socket, makes (or finds) the gate engine's shared
 * file, preforks the workers, the gate workers, the engine process and
 * the flusher, and keeps them running: a child that dies is replaced
 * (with backoff when they die young), SIGHUP reloads the configuration
 * by replacing every child, SIGTERM stops them gracefully (each finishes
 * what it holds; the engine and flusher last, committing the journal).
 * With --sender it runs the background sender instead (mail and Stripe
 * meter events).  Both refuse to start against a schema other than the
 * one this build expects; -t checks the configuration and the schema and
 * exits.  Under systemd the socket comes from tollgated.socket
 * (LISTEN_FDS) and outlives us.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "server/server.h"

#define MAX_WORKERS	256
#define STOP_GRACE	20.0	/* seconds before stragglers are killed */

struct slot {
	pid_t	 pid;		/* 0 when empty */
	double	 started;
	double	 respawn_at;	/* when an empty slot is due to be filled */
	int	 failures;	/* quick deaths in a row */
};

/*
 * Slots 0..nslots-1 are FastCGI workers, GATE0..GATE0+ngates-1 gate
 * workers, ENGINE the engine process, FLUSHER the flusher.
 */
#define GATE0		MAX_WORKERS
#define ENGINE		(MAX_WORKERS + ENG_MAX_GATES)
#define FLUSHER		(ENGINE + 1)
#define LAST		FLUSHER
static struct slot	 slots[LAST + 1];
static int		 nslots, ngates;
static int		 gate_fd = -1;
static pid_t		 draining[4 * MAX_WORKERS];	/* old workers */
static size_t		 ndraining;

/* True when systemd handed us the socket (tollgated.socket). */
static bool		 socket_inherited;

static void
usage(void)
{
	fprintf(stderr, "usage: tollgated [-c file] [--sender]\n"
	    "       tollgated -t [-q] [-c file]\n"
	    "       tollgated --version\n");
	exit(2);
}

/*
 * The socket systemd passed (socket activation: LISTEN_PID is us and
 * LISTEN_FDS is 1, the socket is fd 3), made blocking (a previous
 * tollgated may have left it non-blocking), or -1 when none was passed.
 */
static int
inherited_socket(void)
{
	const char	*pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int		 fl;

	if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (atoi(fds) != 1) {
		log_err("socket", " msg=\"expected one socket from systemd, "
		    "got %s\"", fds);
		return -1;
	}
	if ((fl = fcntl(3, F_GETFL)) < 0 ||
	    fcntl(3, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		log_err("socket", " msg=\"the socket from systemd is not "
		    "usable\" errno=%d", errno);
		return -1;
	}
	return 3;
}

/* Removes what a previous run left at path when it is a socket. */
static void
unlink_stale_socket(const char *path)
{
	struct stat	 st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
}

/*
 * Gives the unix socket at path, listening on fd, [server] socket_group
 * (when it is set); what names it in the log.  Returns fd, or -1 (fd
 * closed) when it cannot.
 */
static int
socket_group(int fd, const char *path, const char *what)
{
	struct group	*gr;

	if (cfg.socket_group[0] == '\0')
		return fd;
	if ((gr = getgrnam(cfg.socket_group)) == NULL ||
	    chown(path, (uid_t)-1, gr->gr_gid) < 0) {
		log_err(what, " path=%s group=%s msg=\"cannot set group\"",
		    path, cfg.socket_group);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The FastCGI socket: the one systemd passed, else a new one at
 * [server] socket with the configured group and mode 0660.
 */
static int
open_socket(void)
{
	mode_t		 old;
	int		 fd;

	if (getenv("LISTEN_FDS") != NULL) {
		if ((fd = inherited_socket()) < 0)
			return -1;
		socket_inherited = true;
		log_info("socket", " from=systemd msg=\"[server] socket and "
		    "socket_group are the socket unit's business\"");
		return fd;
	}
	unlink_stale_socket(cfg.socket);
	old = umask(0117);
	fd = FCGX_OpenSocket(cfg.socket, 1024);
	umask(old);
	if (fd < 0) {
		log_err("socket", " path=%s msg=\"cannot listen\"", cfg.socket);
		return -1;
	}
	return socket_group(fd, cfg.socket, "socket");
}

/*
 * Opens the gate workers' unix socket (HTTP/1.1 from nginx's
 * auth_request location), with the configured group and mode 0660, and
 * non-blocking: every gate worker accepts from it in its epoll loop.
 */
static int
open_gate_socket(void)
{
	struct sockaddr_un	 sun;
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(cfg.gate_socket) >= sizeof(sun.sun_path)) {
		log_err("gate_socket", " path=%s msg=\"too long\"",
		    cfg.gate_socket);
		return -1;
	}
	strncpy(sun.sun_path, cfg.gate_socket, sizeof(sun.sun_path) - 1);
	unlink_stale_socket(cfg.gate_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 1024) < 0) {
		umask(old);
		log_err("gate_socket", " path=%s errno=%d", cfg.gate_socket,
		    errno);
		close(fd);
		return -1;
	}
	umask(old);
	return socket_group(fd, cfg.gate_socket, "gate_socket");
}

/*
 * Opens the engine's shared file: [server] engine_file, else
 * tollgate-engine.map beside the gate socket (a run directory, so a
 * reboot starts afresh; nothing answered is lost, see docs/gate.md).
 */
static int
open_engine(void)
{
	char	*dir, path[4096];

	if (cfg.engine_file[0] != '\0')
		snprintf(path, sizeof(path), "%s", cfg.engine_file);
	else {
		if ((dir = strdup(cfg.gate_socket)) == NULL)
			return -1;
		snprintf(path, sizeof(path), "%s/tollgate-engine.map",
		    dirname(dir));
		free(dir);
	}
	return eng_open(path, ngates);
}

/* Forks a worker into slot i. */
static void
spawn(int i, int fd)
{
	pid_t		 pid;
	sigset_t	 none;

	if ((pid = fork()) < 0) {
		log_err("fork", " errno=%d", errno);
		slots[i].respawn_at = now_seconds() + 1;
		return;
	}
	if (pid == 0) {
		sigemptyset(&none);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGINT, SIG_IGN);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (i >= GATE0) {
			/*
			 * Named apart from the FastCGI workers, and stopped
			 * with the master: a master that dies leaves no gate
			 * answering from a stale cache (the journal stays in
			 * the file for the next engine).
			 */
			prctl(PR_SET_NAME, i == ENGINE ? "tollgate-engine" :
			    i == FLUSHER ? "tollgate-flush" : "tollgate-gate",
			    0, 0, 0);
			prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
			if (getppid() == 1)
				_exit(0);
			close(fd);
			if (i == ENGINE)
				eng_engine_run();
			if (i == FLUSHER)
				eng_flusher_run();
			eng_gate_run(gate_fd, i - GATE0);
		}
		close(gate_fd);
		worker_run(fd);
	}
	slots[i].pid = pid;
	slots[i].started = now_seconds();
	slots[i].respawn_at = 0;
}

/* Makes the listening socket non-blocking, for the workers' last drain. */
static void
drain_socket(int fd)
{
	int	 fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_warn("drain", " errno=%d", errno);
}

/* Sends sig to every worker, current and draining. */
static void
signal_all(int sig)
{
	size_t	 i;

	/* The engine stops last (stop_engine): it commits what they left. */
	for (i = 0; i <= LAST; i++)
		if (slots[i].pid > 0 && ((i != ENGINE && i != FLUSHER) ||
		    sig == SIGKILL))
			kill(slots[i].pid, sig);
	for (i = 0; i < ndraining; i++)
		kill(draining[i], sig);
}

static size_t
live_workers(void)
{
	size_t	 i, n = ndraining;

	for (i = 0; i <= LAST; i++)
		n += slots[i].pid > 0;
	return n;
}

/* Reaps dead children; schedules replacements unless stopping. */
static void
reap(bool stopping)
{
	pid_t	 pid;
	int	 status, i;
	size_t	 k;
	double	 now = now_seconds(), lived, delay;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (k = 0; k < ndraining; k++)
			if (draining[k] == pid) {
				draining[k] = draining[--ndraining];
				break;
			}
		for (i = 0; i <= LAST; i++) {
			if (slots[i].pid != pid)
				continue;
			slots[i].pid = 0;
			lived = now - slots[i].started;
			if (WIFSIGNALED(status))
				log_warn("worker_died", " worker=%d signal=%d "
				    "lived_s=%.1f", (int)pid,
				    WTERMSIG(status), lived);
			else
				tg_log(WEXITSTATUS(status) == 0 ? LOG_LVL_INFO :
				    LOG_LVL_WARN, "worker_exited", " worker=%d "
				    "status=%d lived_s=%.1f", (int)pid,
				    WEXITSTATUS(status), lived);
			if (stopping)
				break;
			/* Young deaths back off: 0.5 s doubling to 30 s. */
			slots[i].failures = lived < 2.0 ?
			    slots[i].failures + 1 : 0;
			delay = 0;
			if (slots[i].failures > 0) {
				delay = 0.5 * (double)(1 << (slots[i].failures
				    > 6 ? 6 : slots[i].failures - 1));
				if (delay > 30)
					delay = 30;
			}
			slots[i].respawn_at = now + delay;
			break;
		}
	}
}

/*
 * Reloads the configuration.  On success every worker is replaced: the
 * old ones finish what they hold and exit, new ones take new requests.
 */
static void
reload(int fd)
{
	struct config	 next;
	char		 err[512];
	int		 i;
	bool		 db_changed;

	if (config_load(cfg.path, &next, err, sizeof(err)) < 0) {
		log_err("reload_failed", " msg=\"%s\"", err);
		return;
	}
	if (strcmp(next.socket, cfg.socket) != 0)
		log_warn("reload", " msg=\"[server] socket changes need a "
		    "restart\"");
	if (next.workers > MAX_WORKERS)
		next.workers = MAX_WORKERS;
	if (strcmp(next.gate_socket, cfg.gate_socket) != 0 ||
	    next.gate_workers != cfg.gate_workers ||
	    strcmp(next.engine_file, cfg.engine_file) != 0)
		log_warn("reload", " msg=\"[server] gate_socket, gate_workers "
		    "and engine_file changes need a restart\"");
	next.gate_workers = cfg.gate_workers;
	/*
	 * Every worker and gate worker is replaced; the engine and the
	 * flusher only when [database] changed (they hold its links): for a
	 * moment two of each may then run, which costs nothing (a batch
	 * commits once, tg_flush; a poll is idempotent).
	 */
	db_changed = strcmp(next.db_host, cfg.db_host) != 0 ||
	    next.db_port != cfg.db_port ||
	    strcmp(next.db_socket, cfg.db_socket) != 0 ||
	    strcmp(next.db_user, cfg.db_user) != 0 ||
	    strcmp(next.db_password, cfg.db_password) != 0 ||
	    strcmp(next.db_name, cfg.db_name) != 0;
	for (i = 0; i <= LAST; i++)
		if (slots[i].pid > 0 && (db_changed ||
		    (i != ENGINE && i != FLUSHER)) &&
		    ndraining < sizeof(draining) / sizeof(draining[0])) {
			kill(slots[i].pid, SIGTERM);
			draining[ndraining++] = slots[i].pid;
			slots[i].pid = 0;
		}
	config_free(&cfg);
	cfg = next;
	nslots = cfg.workers;
	for (i = 0; i < nslots; i++) {
		slots[i].failures = 0;
		spawn(i, fd);
	}
	for (i = GATE0; i < GATE0 + ngates; i++) {
		slots[i].failures = 0;
		spawn(i, fd);
	}
	if (db_changed) {
		spawn(ENGINE, fd);
		spawn(FLUSHER, fd);
	}
	log_info("reloaded", " workers=%d gate_workers=%d", nslots, ngates);
}

/* The master's loop: signals are taken synchronously with sigtimedwait. */
static int
master(void)
{
	sigset_t	 set;
	siginfo_t	 info;
	struct timespec	 tick = { 0, 250 * 1000 * 1000 };
	double		 deadline = 0, now;
	bool		 stopping = false, engine_told = false;
	int		 fd, i, sig;

	metrics_route_labels(route_label);
	ngates = cfg.gate_workers > ENG_MAX_GATES ? ENG_MAX_GATES :
	    cfg.gate_workers;
	if (metrics_init() < 0 || hashcap_init(cfg.password_hashes) < 0 ||
	    (fd = open_socket()) < 0 ||
	    (gate_fd = open_gate_socket()) < 0 || open_engine() < 0)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	nslots = cfg.workers > MAX_WORKERS ? MAX_WORKERS : cfg.workers;
	for (i = 0; i < nslots; i++)
		spawn(i, fd);
	spawn(ENGINE, fd);
	spawn(FLUSHER, fd);
	for (i = GATE0; i < GATE0 + ngates; i++)
		spawn(i, fd);
	log_info("started", " workers=%d gate_workers=%d socket=%s "
	    "gate_socket=%s", nslots, ngates, cfg.socket, cfg.gate_socket);

	for (;;) {
		sig = sigtimedwait(&set, &info, &tick);
		now = now_seconds();
		if (sig == SIGTERM || sig == SIGINT) {
			if (!stopping) {
				log_info("stopping", "%s", "");
				stopping = true;
				deadline = now + STOP_GRACE;
				/*
				 * No new connections (nginx answers 503), and
				 * the queued ones are drained by the workers:
				 * a non-blocking socket tells them to.
				 */
				if (!socket_inherited) {
					unlink(cfg.socket);
					drain_socket(fd);
				}
				/*
				 * systemd's socket stays open: what is queued
				 * waits there for the next tollgated.
				 */
				unlink(cfg.gate_socket);
				signal_all(SIGTERM);
			}
		} else if (sig == SIGHUP && !stopping)
			reload(fd);
		reap(stopping);
		if (stopping) {
			if (live_workers() == 0)
				break;
			/* The gates are gone: the engine and flusher last. */
			if (live_workers() == (size_t)(slots[ENGINE].pid > 0) +
			    (size_t)(slots[FLUSHER].pid > 0) && !engine_told) {
				if (slots[ENGINE].pid > 0)
					kill(slots[ENGINE].pid, SIGTERM);
				if (slots[FLUSHER].pid > 0)
					kill(slots[FLUSHER].pid, SIGTERM);
				engine_told = true;
			}
			if (now > deadline) {
				log_warn("stop_timeout", " msg=\"killing "
				    "workers\"");
				signal_all(SIGKILL);
				deadline = now + 5;
			}
			continue;
		}
		for (i = 0; i <= LAST; i++)
			if (slots[i].pid == 0 && slots[i].respawn_at <= now &&
			    (i < nslots || i == ENGINE || i == FLUSHER ||
			    (i >= GATE0 && i < GATE0 + ngates)))
				spawn(i, fd);
	}
	close(fd);
	close(gate_fd);
	if (!socket_inherited)
		unlink(cfg.socket);
	unlink(cfg.gate_socket);
	log_info("stopped", "%s", "");
	return 0;
}

/*
 * Checks the database's schema against this build.  Returns 0 to go on
 * (equal, or the database cannot be asked now: then a warning), 1 when
 * it differs (the reason is logged, or printed when print is set).
 */
static int
check_schema(bool print, bool quiet)
{
	char	 msg[512];
	int	 rc;

	rc = schema_check(msg, sizeof(msg));
	db_close();	/* The workers make their own connections. */
	if (rc == 0) {
		if (print && !quiet)
			printf("tollgated: %s, as this build expects\n", msg);
		return 0;
	}
	if (rc == DB_DOWN) {
		if (print)
			fprintf(stderr, "tollgated: warning: the schema was not "
			    "checked: %s\n", msg);
		else
			log_warn("schema_unchecked", " msg=\"%s; it is checked "
			    "at the next start\"", msg);
		return 0;
	}
	if (print)
		fprintf(stderr, "tollgated: %s\n", msg);
	else
		log_err("schema_mismatch", " msg=\"%s\"", msg);
	return 1;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "sender", no_argument, NULL, 's' },
		{ "test", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*path = config_default_path();
	char		 err[512];
	bool		 sender = false, test = false, quiet = false;
	int		 ch;

	while ((ch = getopt_long(argc, argv, "c:tq", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 's':
			sender = true;
			break;
		case 't':
			test = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'V':
			printf("tollgated %s (schema version %d)\n",
			    tg_version(), tg_schema_version());
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc || (quiet && !test))
		usage();
	if (crypto_init() < 0) {
		fprintf(stderr, "tollgated: libsodium failed to initialise\n");
		return 1;
	}
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "tollgated: %s\n", err);
		return 1;
	}
	/* Safe HS256 checking depends on the libjwt in use: check it. */
	if (jwt_selftest(err, sizeof(err)) < 0) {
		fprintf(stderr, "tollgated: %s\n", err);
		return 1;
	}
	if (test) {
		if (cfg.mail_texts[0] != '\0') {
			int n = mail_texts_check(cfg.mail_texts, err,
			    sizeof(err));

			if (n < 0) {
				fprintf(stderr, "tollgated: [server] "
				    "mail_texts: %s\n", err);
				return 1;
			}
			if (!quiet)
				printf("tollgated: %d mail texts in %s\n", n,
				    cfg.mail_texts);
		}
		if (!quiet)
			printf("tollgated: the configuration %s is ok\n", path);
		return check_schema(true, quiet);
	}
	if (check_schema(false, false) != 0)
		return 1;
	if (sender)
		return sender_run();
	return master();
}
