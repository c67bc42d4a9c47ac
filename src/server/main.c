/*
 * tollgated: the master.  It reads the configuration, opens the FastCGI
 * socket, preforks the workers and keeps them running: a worker that
 * dies is replaced (with backoff when they die young), SIGHUP reloads
 * the configuration by replacing every worker, SIGTERM stops them
 * gracefully (each finishes its request).  With --sender it runs the
 * background sender instead (mail and Stripe meter events).  Both refuse
 * to start against a schema other than the one this build expects; -t
 * checks the configuration and the schema and exits.  Under systemd the
 * socket comes from tollgated.socket (LISTEN_FDS) and outlives us.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
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

static struct slot	 slots[MAX_WORKERS];
static int		 nslots;
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

/*
 * The FastCGI socket: the one systemd passed, else a new one at
 * [server] socket with the configured group and mode 0660.
 */
static int
open_socket(void)
{
	struct stat	 st;
	struct group	*gr;
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
	if (lstat(cfg.socket, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(cfg.socket);
	old = umask(0117);
	fd = FCGX_OpenSocket(cfg.socket, 1024);
	umask(old);
	if (fd < 0) {
		log_err("socket", " path=%s msg=\"cannot listen\"", cfg.socket);
		return -1;
	}
	if (cfg.socket_group[0] != '\0') {
		if ((gr = getgrnam(cfg.socket_group)) == NULL ||
		    chown(cfg.socket, (uid_t)-1, gr->gr_gid) < 0) {
			log_err("socket", " path=%s group=%s msg=\"cannot set "
			    "group\"", cfg.socket, cfg.socket_group);
			close(fd);
			return -1;
		}
	}
	return fd;
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

	for (i = 0; i < (size_t)nslots; i++)
		if (slots[i].pid > 0)
			kill(slots[i].pid, sig);
	for (i = 0; i < ndraining; i++)
		kill(draining[i], sig);
}

static size_t
live_workers(void)
{
	size_t	 i, n = ndraining;

	for (i = 0; i < (size_t)nslots; i++)
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
		for (i = 0; i < nslots; i++) {
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

	if (config_load(cfg.path, &next, err, sizeof(err)) < 0) {
		log_err("reload_failed", " msg=\"%s\"", err);
		return;
	}
	if (strcmp(next.socket, cfg.socket) != 0)
		log_warn("reload", " msg=\"[server] socket changes need a "
		    "restart\"");
	if (next.workers > MAX_WORKERS)
		next.workers = MAX_WORKERS;
	for (i = 0; i < nslots; i++)
		if (slots[i].pid > 0 &&
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
	log_info("reloaded", " workers=%d", nslots);
}

/* The master's loop: signals are taken synchronously with sigtimedwait. */
static int
master(void)
{
	sigset_t	 set;
	siginfo_t	 info;
	struct timespec	 tick = { 0, 250 * 1000 * 1000 };
	double		 deadline = 0, now;
	bool		 stopping = false;
	int		 fd, i, sig;

	metrics_route_labels(route_label);
	if (metrics_init() < 0 || hashcap_init(cfg.password_hashes) < 0 ||
	    (fd = open_socket()) < 0)
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
	log_info("started", " workers=%d socket=%s", nslots, cfg.socket);

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
				signal_all(SIGTERM);
			}
		} else if (sig == SIGHUP && !stopping)
			reload(fd);
		reap(stopping);
		if (stopping) {
			if (live_workers() == 0)
				break;
			if (now > deadline) {
				log_warn("stop_timeout", " msg=\"killing "
				    "workers\"");
				signal_all(SIGKILL);
				deadline = now + 5;
			}
			continue;
		}
		for (i = 0; i < nslots; i++)
			if (slots[i].pid == 0 && slots[i].respawn_at <= now)
				spawn(i, fd);
	}
	close(fd);
	if (!socket_inherited)
		unlink(cfg.socket);
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
