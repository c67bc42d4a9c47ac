/* Unit tests of db_host_split in src/db/db.c: items of [database] host. */
#include <stdio.h>
#include <string.h>

#include "server/server.h"
#include "tap.h"

struct hcase {
	const char	*in;
	int		 rc;		/* 0 or -1 */
	const char	*host;		/* when rc is 0 */
	int		 port;		/* when rc is 0; 3306 means "kept" */
};

static const struct hcase cases[] = {
	{ "localhost", 0, "localhost", 3306 },
	{ "127.0.0.1", 0, "127.0.0.1", 3306 },
	{ "127.0.0.1:13306", 0, "127.0.0.1", 13306 },
	{ " db1.example.com:3307 ", 0, "db1.example.com", 3307 },
	{ "\tdb2\t", 0, "db2", 3306 },
	{ "[::1]", 0, "::1", 3306 },
	{ "[::1]:3310", 0, "::1", 3310 },
	{ "[fe80::1%eth0]:1", 0, "fe80::1%eth0", 1 },
	{ "::1", 0, "::1", 3306 },
	{ "2001:db8::7", 0, "2001:db8::7", 3306 },
	{ "h:65535", 0, "h", 65535 },
	{ "", -1, NULL, 0 },
	{ "   ", -1, NULL, 0 },
	{ ":3306", -1, NULL, 0 },
	{ "h:", -1, NULL, 0 },
	{ "h:0", -1, NULL, 0 },
	{ "h:65536", -1, NULL, 0 },
	{ "h:-1", -1, NULL, 0 },
	{ "h:+1", -1, NULL, 0 },
	{ "h:33x", -1, NULL, 0 },
	{ "h:99999999999999999999", -1, NULL, 0 },
	{ "[::1", -1, NULL, 0 },
	{ "[]", -1, NULL, 0 },
	{ "[]:3306", -1, NULL, 0 },
	{ "[::1]3306", -1, NULL, 0 },
	{ "[::1]:", -1, NULL, 0 },
};

int
main(void)
{
	char	 host[64], name[128], small[4];
	size_t	 i;
	int	 port, rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		port = 3306;
		strcpy(host, "unchanged");
		rc = db_host_split(cases[i].in, host, sizeof(host), &port);
		snprintf(name, sizeof(name), "'%s' %s", cases[i].in,
		    cases[i].rc == 0 ? "splits" : "is refused");
		is_int(rc, cases[i].rc, name);
		if (cases[i].rc != 0 || rc != 0)
			continue;
		snprintf(name, sizeof(name), "'%s': host", cases[i].in);
		is_str(host, cases[i].host, name);
		snprintf(name, sizeof(name), "'%s': port", cases[i].in);
		is_int(port, cases[i].port, name);
	}

	/* A host that does not fit the buffer is refused, not cut. */
	port = 1;
	is_int(db_host_split("abcd", small, sizeof(small), &port), -1,
	    "a host longer than the buffer is refused");
	is_int(db_host_split("abc:9", small, sizeof(small), &port), 0,
	    "a host that just fits is taken");
	is_str(small, "abc", "... whole");
	is_int(port, 9, "... with its port");
	return done_testing();
}
