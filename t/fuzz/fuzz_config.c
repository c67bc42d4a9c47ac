/*
 * Fuzzes the INI loader: config_load (src/core/config.c, through libinih) on a
 * temporary 0600 file holding the input, with no TOLLGATE_* variables in
 * the environment.  A configuration it accepts must hold what the rest of
 * tollgate relies on; one it refuses must say why.
 */
#include "fuzz.h"

static char	 path[64];
static int	 fd = -1;

static void
remove_file(void)
{
	unlink(path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_clean_env();
	/* A memory file system when there is one: a file per input. */
	snprintf(path, sizeof(path), "%s/tollgate-fuzz-ini-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (sodium_init() < 0 || (fd = mkstemp(path)) < 0 ||
	    fchmod(fd, 0600) < 0)
		abort();
	atexit(remove_file);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	 c;
	char		 err[512];
	size_t		 len;
	int		 rc;

	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	memset(&c, 0, sizeof(c));
	rc = config_load(path, &c, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1, "returns 0 or -1");
	if (rc < 0) {
		FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)),
		    "a refusal says why");
		return 0;
	}
	FUZZ_CHECK(c.jwt_secret != NULL && strlen(c.jwt_secret) >= 32,
	    "the JWT secret is at least 32 bytes");
	FUZZ_CHECK(c.jwt_previous_secret != NULL &&
	    (c.jwt_previous_secret[0] == '\0' ||
	    strlen(c.jwt_previous_secret) >= 32),
	    "a previous secret is none or at least 32 bytes");
	len = strlen(c.base_url);
	FUZZ_CHECK(strncmp(c.base_url, "https://", 8) == 0 ||
	    strncmp(c.base_url, "http://", 7) == 0, "base_url is http(s)");
	FUZZ_CHECK(len == 0 || c.base_url[len - 1] != '/',
	    "base_url has no trailing slash");
	FUZZ_CHECK(strncmp(c.base_url, c.origin, strlen(c.origin)) == 0,
	    "the origin is a prefix of base_url");
	FUZZ_CHECK(c.workers >= 1 && c.workers <= 256, "workers in range");
	FUZZ_CHECK(c.db_port >= 1 && c.db_port <= 65535, "port in range");
	FUZZ_CHECK(c.trial_fallback_plan[0] == '\0' ||
	    valid_slug(c.trial_fallback_plan, strlen(c.trial_fallback_plan))
	    == NULL, "the fallback plan is a plan name");
	FUZZ_CHECK(c.argon2_memory >= 8 * 1024 && c.argon2_ops >= 1,
	    "Argon2 costs in range");
	/* Contract section 12 (amended): any value from 1 up. */
	FUZZ_CHECK(c.stripe_report_interval >= 1, "report interval in range");
	FUZZ_CHECK(c.path != NULL && strcmp(c.path, path) == 0, "path kept");
	config_free(&c);
	return 0;
}
