/* Unit tests of the configuration loader in src/core/config.c. */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "tap.h"

static const char key64[] =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/* Writes text to a temporary file with mode; returns its path. */
static const char *
write_conf(const char *text, mode_t mode)
{
	static char	 path[64];
	FILE		*f;
	int		 fd;

	snprintf(path, sizeof(path), "/tmp/tgconf-XXXXXX");
	if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL)
		abort();
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

static int
load(const char *text, mode_t mode, struct config *c, char *err, size_t n)
{
	const char	*p = write_conf(text, mode);
	int		 rc = config_load(p, c, err, n);

	unlink(p);
	return rc;
}

int
main(void)
{
	struct config	 c;
	char		 err[512], good[1024];
	int		 rc;

	crypto_init();
	snprintf(good, sizeof(good),
	    "[server]\nbase_url = https://tg.example.com/\nworkers = 3\n"
	    "[jwt]\nsecret = 0123456789abcdef0123456789abcdef\n"
	    "[crypto]\nkey = %s\n[trial]\ndays = 14\n", key64);

	rc = load(good, 0600, &c, err, sizeof(err));
	ok(rc == 0, "a good file loads");
	if (rc == 0) {
		is_str(c.base_url, "https://tg.example.com", "trailing slash dropped");
		is_str(c.origin, "https://tg.example.com", "origin derived");
		is_int(c.workers, 3, "workers read");
		is_int(c.trial_days, 14, "trial days read");
		is_int(c.trial_credits, 10, "trial credits default");
		is_int(c.api_per_minute, 120, "api_per_minute default");
		is_int(c.login_failures, 10, "login_failures default");
		is_int(c.stripe_report_interval, 3600, "report_interval default");
		is_int((long long)c.argon2_memory, 19456 * 1024, "argon2 memory default");
		is_str(c.smtp_url, "smtp://127.0.0.1:25", "smtp url default");
		is_str(c.stripe_api_base, "https://api.stripe.com", "stripe default");
		is_str(c.github_api_url, "https://api.github.com", "github default");
		ok(c.crypto_key[0] == 0x00 && c.crypto_key[31] == 0xff, "crypto key decoded");
		config_free(&c);
	}

	setenv("TOLLGATE_STRIPE_API_BASE", "http://127.0.0.1:9", 1);
	setenv("TOLLGATE_TRIAL_DAYS", "7", 1);
	rc = load(good, 0600, &c, err, sizeof(err));
	ok(rc == 0 && strcmp(c.stripe_api_base, "http://127.0.0.1:9") == 0,
	    "environment overrides a default");
	ok(rc == 0 && c.trial_days == 7, "environment overrides the file");
	if (rc == 0)
		config_free(&c);
	setenv("TOLLGATE_TRIAL_DAYS", "many", 1);
	ok(load(good, 0600, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "[trial] days") != NULL, "bad override refused by name");
	unsetenv("TOLLGATE_TRIAL_DAYS");
	unsetenv("TOLLGATE_STRIPE_API_BASE");

	/* Contract section 12: report_interval is any value from 1 up. */
	setenv("TOLLGATE_STRIPE_REPORT_INTERVAL", "1", 1);
	rc = load(good, 0600, &c, err, sizeof(err));
	ok(rc == 0 && c.stripe_report_interval == 1,
	    "report_interval 1 (seconds, for tests) accepted");
	if (rc == 0)
		config_free(&c);
	setenv("TOLLGATE_STRIPE_REPORT_INTERVAL", "604800", 1);
	rc = load(good, 0600, &c, err, sizeof(err));
	ok(rc == 0 && c.stripe_report_interval == 604800,
	    "report_interval of a week accepted");
	if (rc == 0)
		config_free(&c);
	setenv("TOLLGATE_STRIPE_REPORT_INTERVAL", "0", 1);
	ok(load(good, 0600, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "[stripe] report_interval") != NULL,
	    "report_interval 0 refused by name");
	unsetenv("TOLLGATE_STRIPE_REPORT_INTERVAL");

	ok(load(good, 0644, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "readable") != NULL, "world-readable file refused");
	ok(load("[crypto]\nkey = 00\n", 0600, &c, err, sizeof(err)) < 0,
	    "short crypto key refused");
	snprintf(good, sizeof(good), "[crypto]\nkey = %s\n", key64);
	ok(load(good, 0600, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "[jwt] secret") != NULL, "missing jwt secret named");
	snprintf(good, sizeof(good), "[jwt]\nsecret = short\n[crypto]\nkey = %s\n", key64);
	ok(load(good, 0600, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "32 bytes") != NULL, "short jwt secret refused");
	snprintf(good, sizeof(good), "[jwt]\nsecret = 0123456789abcdef0123456789abcdef\n"
	    "[crypto]\nkey = %s\n[server]\nwokers = 2\n", key64);
	ok(load(good, 0600, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "wokers") != NULL, "unknown key named");
	snprintf(good, sizeof(good), "[jwt]\nsecret = 0123456789abcdef0123456789abcdef\n"
	    "[crypto]\nkey = %s\n[server]\nbase_url = ftp://x\n", key64);
	ok(load(good, 0600, &c, err, sizeof(err)) < 0, "non-http base_url refused");
	ok(load("[server\n", 0600, &c, err, sizeof(err)) < 0 &&
	    strstr(err, "line 1") != NULL, "syntax error gives its line");
	ok(config_load("/nonexistent/tollgate.conf", &c, err, sizeof(err)) < 0,
	    "missing file refused");

	/* [stripe] meter_prices and [client] config_file (issue 18). */
	{
		static const char *const bad[] = { "compute_minutes",
		    "compute_minutes:", ":price_1", "Compute:price_1",
		    "a:price_1,", "a:price 1", "a:price_1,,b:price_2",
		    "a:p1,a:p2", "a:price-1" };
		char	 base[512], text[1024], json[64];
		size_t	 i;

		snprintf(base, sizeof(base), "[jwt]\nsecret = "
		    "0123456789abcdef0123456789abcdef\n[crypto]\nkey = %s\n",
		    key64);
		rc = load(base, 0600, &c, err, sizeof(err));
		ok(rc == 0 && c.nmeter_prices == 0 &&
		    strcmp(c.client_config, "{}") == 0,
		    "no meter_prices, no config_file: none and {}");
		if (rc == 0)
			config_free(&c);
		snprintf(text, sizeof(text), "%s[stripe]\nmeter_prices = "
		    " compute_minutes:price_1Ab , tokens:price_2\n", base);
		rc = load(text, 0600, &c, err, sizeof(err));
		ok(rc == 0 && c.nmeter_prices == 2, "two meter prices");
		if (rc == 0) {
			is_str(c.meter_prices[0].meter, "compute_minutes",
			    "first meter, blanks trimmed");
			is_str(c.meter_prices[0].price, "price_1Ab",
			    "first price");
			is_str(c.meter_prices[1].meter, "tokens", "second meter");
			cfg = c;
			is_str(meter_price("tokens"), "price_2", "meter_price");
			ok(meter_billed("compute_minutes") &&
			    !meter_billed("api_calls"),
			    "meter_billed: only the named meters");
			memset(&cfg, 0, sizeof(cfg));
			ok(meter_billed("api_calls"),
			    "meter_billed: every meter without meter_prices");
			config_free(&c);
		}
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(text, sizeof(text), "%s[stripe]\n"
			    "meter_prices = %s\n", base, bad[i]);
			ok(load(text, 0600, &c, err, sizeof(err)) < 0 &&
			    strstr(err, "meter_prices") != NULL,
			    "a malformed meter_prices is refused");
		}
		snprintf(json, sizeof(json), "%s", "/tmp/tgclient-XXXXXX");
		{
			int fd = mkstemp(json);
			FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

			if (f == NULL)
				abort();
			fputs("{ \"api\": \"https://x\", \"n\": [1, 2] }\n", f);
			fclose(f);
		}
		snprintf(text, sizeof(text), "%s[client]\nconfig_file = %s\n",
		    base, json);
		rc = load(text, 0600, &c, err, sizeof(err));
		ok(rc == 0, "a config_file loads");
		if (rc == 0) {
			is_str(c.client_config, "{\"api\":\"https:\\/\\/x\","
			    "\"n\":[1,2]}", "kept as compact JSON");
			config_free(&c);
		}
		{
			FILE *f = fopen(json, "w");

			if (f == NULL)
				abort();
			fputs("[1, 2]", f);
			fclose(f);
		}
		ok(load(text, 0600, &c, err, sizeof(err)) < 0 &&
		    strstr(err, "one JSON object") != NULL,
		    "a config_file that is no object is refused");
		unlink(json);
		ok(load(text, 0600, &c, err, sizeof(err)) < 0 &&
		    strstr(err, "cannot be read") != NULL,
		    "a config_file that cannot be read is refused");
		snprintf(text, sizeof(text), "%s[client]\nconfig_file = "
		    "/dev/null\n", base);
		ok(load(text, 0600, &c, err, sizeof(err)) < 0 &&
		    strstr(err, "not a regular file") != NULL,
		    "a config_file that is a device is refused");
	}
	return done_testing();
}
