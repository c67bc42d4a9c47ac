/*
 * Unit test of smtp_send (src/core/outside.c) against a relay that does
 * not offer STARTTLS (or whose STARTTLS a man in the middle stripped):
 * with [smtp] user and password set, tollgate must not authenticate in
 * the clear; the send fails (the outbox retries) and the relay never
 * sees AUTH or the password.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "tap.h"

/* Serves one SMTP session without STARTTLS; writes what it saw to out. */
static void
relay(int ls, int out)
{
	char	 buf[4096], all[16384];
	size_t	 n = 0;
	ssize_t	 got;
	int	 c;

	if ((c = accept(ls, NULL, NULL)) < 0)
		_exit(1);
	dprintf(c, "220 plain-relay ESMTP\r\n");
	while ((got = read(c, buf, sizeof(buf) - 1)) > 0) {
		buf[got] = '\0';
		if (n + (size_t)got < sizeof(all)) {
			memcpy(all + n, buf, (size_t)got);
			n += (size_t)got;
		}
		if (strncasecmp(buf, "EHLO", 4) == 0)
			dprintf(c, "250-plain-relay\r\n250-AUTH PLAIN LOGIN\r\n"
			    "250 8BITMIME\r\n");
		else if (strncasecmp(buf, "AUTH", 4) == 0)
			dprintf(c, "235 ok\r\n");
		else if (strncasecmp(buf, "QUIT", 4) == 0) {
			dprintf(c, "221 bye\r\n");
			break;
		} else
			dprintf(c, "250 ok\r\n");
	}
	if (write(out, all, n) < 0)
		_exit(1);
	close(c);
	_exit(0);
}

int
main(void)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);
	char			 err[256], url[64], seen[16384];
	int			 ls, p[2], rc;
	ssize_t			 n;
	pid_t			 pid;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &len) < 0 || pipe(p) < 0)
		return 1;
	if ((pid = fork()) == 0) {
		close(p[0]);
		relay(ls, p[1]);
	}
	close(p[1]);
	close(ls);
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d",
	    ntohs(sa.sin_port));
	cfg.smtp_url = url;
	cfg.smtp_user = "relay-user";
	cfg.smtp_password = "relay-secret-password";
	ok(outside_init() == 0, "libcurl initialised");
	rc = smtp_send("from@example.com", "to@example.com",
	    "Subject: x\r\n\r\nhello\r\n", 23, err, sizeof(err));
	ok(rc != 0, "with credentials and no STARTTLS, the send fails");
	kill(pid, SIGTERM);
	n = read(p[0], seen, sizeof(seen) - 1);
	seen[n > 0 ? n : 0] = '\0';
	waitpid(pid, NULL, 0);
	ok(strstr(seen, "AUTH") == NULL && strcasestr(seen, "auth ") == NULL,
	    "the relay never saw AUTH");
	ok(strstr(seen, "relay-secret-password") == NULL,
	    "nor the password, in any form");
	return done_testing();
}
