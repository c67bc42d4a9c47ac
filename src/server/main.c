/*
 * tollgated: the master.  It reads the configuration, opens the FastCGI
 * socket, preforks the workers and keeps them running: a worker that
 * dies is replaced (with backoff when they die young), SIGHUP reloads
 * the configuration by replacing every worker, SIGTERM stops them
 * gracefully (each finishes its request).  With --sender it runs the
 * background sender instead (mail and Stripe meter events).
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

static void
usage(void)
{
	fprintf(stderr, "usage: tollgated [-c file] [--sender]\n");
	exit(2);
}

/* Opens the FastCGI socket with the configured group and mode 0660. */
static int
open_socket(void)
{
	struct stat	 st;
	struct group	*gr;
	mode_t		 old;
	int		 fd;

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
				unlink(cfg.socket);
				drain_socket(fd);
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
	unlink(cfg.socket);
	log_info("stopped", "%s", "");
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "sender", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*path = config_default_path();
	char		 err[512];
	bool		 sender = false;
	int		 ch;

	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 's':
			sender = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
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
	if (sender)
		return sender_run();
	return master();
}
