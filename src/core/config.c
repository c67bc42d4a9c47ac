/*
 * The configuration: one INI file (read with libinih) whose every key can
 * be overridden by TOLLGATE_<SECTION>_<KEY> in the environment.  Keys are
 * declared in one table; unknown keys and missing required ones stop the
 * program with a sentence for the operator.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "core/core.h"

struct config cfg;

enum ktype { K_STR, K_INT, K_HEX32, K_KIB, K_BOOL };

struct key {
	const char	*section;
	const char	*name;
	enum ktype	 type;
	size_t		 offset;
	const char	*dflt;		/* NULL: required */
	long long	 min, max;	/* K_INT and K_KIB bounds */
};

#define OFF(f)	offsetof(struct config, f)

static const struct key keys[] = {
	{ "server", "base_url", K_STR, OFF(base_url), "https://127.0.0.1:8443", 0, 0 },
	{ "server", "workers", K_INT, OFF(workers), "0", 0, 256 },
	{ "server", "cors_origins", K_STR, OFF(cors_origins), "", 0, 0 },
	{ "server", "socket", K_STR, OFF(socket), "/run/tollgate/tollgate.sock", 0, 0 },
	{ "server", "socket_group", K_STR, OFF(socket_group), "", 0, 0 },
	{ "server", "gate_socket", K_STR, OFF(gate_socket), "/run/tollgate/gate.sock", 0, 0 },
	{ "server", "gate_workers", K_INT, OFF(gate_workers), "0", 0, 64 },
	{ "server", "engine_file", K_STR, OFF(engine_file), "", 0, 0 },
	{ "server", "gate_wait_commit", K_BOOL, OFF(gate_wait_commit), "no", 0, 0 },
	{ "server", "name", K_STR, OFF(product_name), "tollgate", 0, 0 },
	{ "server", "support_url", K_STR, OFF(support_url), "", 0, 0 },
	{ "server", "mail_texts", K_STR, OFF(mail_texts), "", 0, 0 },
	{ "database", "host", K_STR, OFF(db_host), "localhost", 0, 0 },
	{ "database", "port", K_INT, OFF(db_port), "3306", 1, 65535 },
	{ "database", "socket", K_STR, OFF(db_socket), "", 0, 0 },
	{ "database", "user", K_STR, OFF(db_user), "tollgate", 0, 0 },
	{ "database", "password", K_STR, OFF(db_password), "", 0, 0 },
	{ "database", "name", K_STR, OFF(db_name), "tollgate", 0, 0 },
	{ "jwt", "secret", K_STR, OFF(jwt_secret), NULL, 0, 0 },
	{ "jwt", "previous_secret", K_STR, OFF(jwt_previous_secret), "", 0, 0 },
	{ "crypto", "key", K_HEX32, OFF(crypto_key), NULL, 0, 0 },
	{ "crypto", "previous_key", K_HEX32, OFF(crypto_previous_key), "", 0, 0 },
	{ "crypto", "argon2_memory", K_KIB, OFF(argon2_memory), "19456", 8, 4194304 },
	{ "crypto", "argon2_iterations", K_INT, OFF(argon2_ops), "2", 1, 64 },
	{ "trial", "days", K_INT, OFF(trial_days), "30", 0, 3650 },
	{ "trial", "credits", K_INT, OFF(trial_credits), "10", 0, 1000000000 },
	{ "trial", "fallback_plan", K_STR, OFF(trial_fallback_plan), "", 0, 0 },
	{ "trial", "require_verified_email", K_BOOL, OFF(require_verified_email), "yes", 0, 0 },
	{ "limits", "api_per_minute", K_INT, OFF(api_per_minute), "120", 1, 1000000 },
	{ "limits", "login_failures", K_INT, OFF(login_failures), "10", 1, 1000000 },
	{ "limits", "mail_per_hour", K_INT, OFF(mail_per_hour), "5", 1, 1000000 },
	{ "limits", "password_hashes", K_INT, OFF(password_hashes), "0", 0, 64 },
	{ "github", "client_id", K_STR, OFF(github_client_id), "", 0, 0 },
	{ "github", "client_secret", K_STR, OFF(github_client_secret), "", 0, 0 },
	{ "github", "authorize_url", K_STR, OFF(github_authorize_url), "https://github.com/login/oauth/authorize", 0, 0 },
	{ "github", "token_url", K_STR, OFF(github_token_url), "https://github.com/login/oauth/access_token", 0, 0 },
	{ "github", "api_url", K_STR, OFF(github_api_url), "https://api.github.com", 0, 0 },
	{ "stripe", "api_base", K_STR, OFF(stripe_api_base), "https://api.stripe.com", 0, 0 },
	{ "stripe", "secret_key", K_STR, OFF(stripe_secret_key), "", 0, 0 },
	{ "stripe", "webhook_secret", K_STR, OFF(stripe_webhook_secret), "", 0, 0 },
	{ "stripe", "price_pro", K_STR, OFF(stripe_price_pro), "", 0, 0 },
	{ "stripe", "price_team", K_STR, OFF(stripe_price_team), "", 0, 0 },
	{ "stripe", "report_interval", K_INT, OFF(stripe_report_interval), "3600", 1, INT_MAX },
	{ "stripe", "meter_prices", K_STR, OFF(stripe_meter_prices), "", 0, 0 },
	{ "client", "config_file", K_STR, OFF(client_config_file), "", 0, 0 },
	{ "smtp", "url", K_STR, OFF(smtp_url), "smtp://127.0.0.1:25", 0, 0 },
	{ "smtp", "user", K_STR, OFF(smtp_user), "", 0, 0 },
	{ "smtp", "password", K_STR, OFF(smtp_password), "", 0, 0 },
	{ "smtp", "from", K_STR, OFF(smtp_from), "tollgate@localhost", 0, 0 },
	{ "guest", "days", K_INT, OFF(guest_days), "30", 1, 3650 },
	{ "guest", "per_hour", K_INT, OFF(guest_per_hour), "20", 1, 100000 },
	{ "accounts", "magic_link_signup", K_BOOL, OFF(magic_link_signup), "no", 0, 0 },
	{ "smtp", "from_name", K_STR, OFF(smtp_from_name), "", 0, 0 },
};

/*
 * The keys of the named sections [oidc NAME] and [trust NAME]: in the
 * file, or from TOLLGATE_OIDC_<NAME>_<KEY> and TOLLGATE_TRUST_<NAME>_<KEY>
 * (NAME in upper case there, read in lower case).
 */
static const char *const oidc_keys[] = { "issuer", "client_id",
    "client_secret", NULL };
static const char *const trust_keys[] = { "issuer", "audience", "jwks_url",
    NULL };

#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* What the INI pass collects before the environment is applied. */
struct loading {
	struct config	*c;		/* where named sections go */
	char		*raw[NKEYS];	/* owned copies, or NULL */
	char		*err;
	size_t		 errlen;
	int		 failed;
};

/*
 * Whether GitHub sign-in is set up ([github] client_id and
 * client_secret): the pages offer it only then.
 */
bool
github_configured(void)
{
	return cfg.github_client_id != NULL && cfg.github_client_id[0] != '\0' &&
	    cfg.github_client_secret != NULL &&
	    cfg.github_client_secret[0] != '\0';
}

/*
 * Whether Stripe billing is set up ([stripe] secret_key): the pages
 * offer upgrades and the portal only then.
 */
bool
stripe_configured(void)
{
	return cfg.stripe_secret_key != NULL && cfg.stripe_secret_key[0] != '\0';
}

const char *
config_default_path(void)
{
	const char	*p = getenv("TOLLGATE_CONF");

	return p != NULL && *p != '\0' ? p : SYSCONFDIR "/tollgate/tollgate.conf";
}

/* Returns the index of section/name in keys, or -1. */
static int
key_find(const char *section, const char *name)
{
	size_t	 i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Sets key name of the named section "oidc NAME" or "trust NAME" in *c,
 * adding the provider on first sight.  Returns 0, or -1 for an unknown
 * key, a bad name or one provider too many.
 */
static int
named_set(struct config *c, const char *section, const char *name,
    const char *value)
{
	const char *const	*keys_of;
	const char		*pname;
	char			**slot = NULL;
	size_t			 i, n, *count, max;
	bool			 oidc = section[0] == 'o';

	pname = section + (oidc ? 5 : 6);
	while (*pname == ' ')
		pname++;
	n = strlen(pname);
	if (n == 0 || n > 32)
		return -1;
	for (i = 0; i < n; i++)
		if (!islower((unsigned char)pname[i]) &&
		    !isdigit((unsigned char)pname[i]) && pname[i] != '_' &&
		    pname[i] != '-')
			return -1;
	keys_of = oidc ? oidc_keys : trust_keys;
	for (i = 0; keys_of[i] != NULL; i++)
		if (strcmp(keys_of[i], name) == 0)
			break;
	if (keys_of[i] == NULL)
		return -1;
	count = oidc ? &c->n_oidc : &c->n_trust;
	max = oidc ? CONFIG_MAX_OIDC : CONFIG_MAX_TRUST;
	for (n = 0; n < *count; n++)
		if (strcmp(oidc ? c->oidc[n].name : c->trust[n].name,
		    pname) == 0)
			break;
	if (n == *count) {
		if (n == max)
			return -1;
		if (oidc) {
			if ((c->oidc[n].name = strdup(pname)) == NULL)
				return -1;
		} else if ((c->trust[n].name = strdup(pname)) == NULL)
			return -1;
		(*count)++;
	}
	if (oidc)
		slot = i == 0 ? &c->oidc[n].issuer : i == 1 ?
		    &c->oidc[n].client_id : &c->oidc[n].client_secret;
	else
		slot = i == 0 ? &c->trust[n].issuer : i == 1 ?
		    &c->trust[n].audience : &c->trust[n].jwks_url;
	free(*slot);
	return (*slot = strdup(value)) == NULL ? -1 : 0;
}

/*
 * Applies TOLLGATE_OIDC_<NAME>_<KEY> and TOLLGATE_TRUST_<NAME>_<KEY> from
 * the environment (they may also make a provider the file does not
 * name), then checks that every provider has all its keys.  Returns 0,
 * or -1 with err.
 */
static int
named_env(struct config *c, char *err, size_t errlen)
{
	extern char	**environ;
	char		**e, sect[64], key[64];
	const char	*const *keys_of, *rest, *eq;
	size_t		 i, n, klen;
	int		 oidc;

	for (e = environ; *e != NULL; e++) {
		if (strncmp(*e, "TOLLGATE_OIDC_", 14) == 0)
			oidc = 1, rest = *e + 14;
		else if (strncmp(*e, "TOLLGATE_TRUST_", 15) == 0)
			oidc = 0, rest = *e + 15;
		else
			continue;
		if ((eq = strchr(rest, '=')) == NULL)
			continue;
		keys_of = oidc ? oidc_keys : trust_keys;
		for (i = 0; keys_of[i] != NULL; i++) {
			/* <NAME>_<KEY>: the name is what is left. */
			snprintf(key, sizeof(key), "_%s", keys_of[i]);
			klen = strlen(key);
			n = (size_t)(eq - rest);
			if (n > klen && strncasecmp(eq - klen, key, klen) == 0)
				break;
		}
		if (keys_of[i] == NULL)
			continue;
		n = (size_t)(eq - rest) - klen;
		if (n > 32)
			continue;
		snprintf(sect, sizeof(sect), "%s %.*s", oidc ? "oidc" : "trust",
		    (int)n, rest);
		for (klen = oidc ? 5 : 6; sect[klen] != '\0'; klen++)
			sect[klen] = (char)tolower((unsigned char)sect[klen]);
		if (named_set(c, sect, keys_of[i], eq + 1) < 0) {
			snprintf(err, errlen, "bad environment variable %.*s",
			    (int)(eq - *e), *e);
			return -1;
		}
	}
	for (n = 0; n < c->n_oidc; n++)
		if (c->oidc[n].issuer == NULL || c->oidc[n].client_id == NULL ||
		    c->oidc[n].client_secret == NULL) {
			snprintf(err, errlen, "[oidc %s] needs issuer, client_id "
			    "and client_secret", c->oidc[n].name);
			return -1;
		}
	for (n = 0; n < c->n_trust; n++)
		if (c->trust[n].issuer == NULL || c->trust[n].audience ==
		    NULL || c->trust[n].jwks_url == NULL) {
			snprintf(err, errlen, "[trust %s] needs issuer, audience "
			    "and jwks_url", c->trust[n].name);
			return -1;
		}
	return 0;
}

static int
on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct loading	*ld = user;
	int		 k;

	if (ld->failed)
		return 0;
	if (strncmp(section, "oidc ", 5) == 0 ||
	    strncmp(section, "trust ", 6) == 0) {
		if (named_set(ld->c, section, name, value) < 0) {
			snprintf(ld->err, ld->errlen, "unknown key [%s] %s in "
			    "the configuration file (or a bad or one too many "
			    "section name)", section, name);
			ld->failed = 1;
			return 0;
		}
		return 1;
	}
	if ((k = key_find(section, name)) < 0) {
		snprintf(ld->err, ld->errlen,
		    "unknown key [%s] %s in the configuration file", section, name);
		ld->failed = 1;
		return 0;
	}
	free(ld->raw[k]);
	if ((ld->raw[k] = strdup(value)) == NULL) {
		ld->failed = 1;
		return 0;
	}
	return 1;
}

/* Fills buf with TOLLGATE_<SECTION>_<KEY> for key k. */
static void
env_name(char *buf, size_t len, const struct key *k)
{
	size_t	 i;

	snprintf(buf, len, "TOLLGATE_%s_%s", k->section, k->name);
	for (i = 0; buf[i] != '\0'; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
}

/* Parses a decimal integer bounded by min and max.  Returns 0 or -1. */
static int
parse_int(const char *s, long long min, long long max, long long *out)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Stores the text value of key k into *c.  Returns 0, or -1 with err. */
static int
set_value(struct config *c, const struct key *k, const char *v,
    char *err, size_t errlen)
{
	char		*field = (char *)c + k->offset;
	long long	 n;
	size_t		 binlen;

	switch (k->type) {
	case K_STR:
		if ((*(char **)field = strdup(v)) == NULL)
			goto bad;
		return 0;
	case K_INT:
		if (parse_int(v, k->min, k->max, &n) < 0)
			goto bad;
		if (k->offset == OFF(trial_credits))
			c->trial_credits = n;
		else if (k->offset == OFF(argon2_ops))
			c->argon2_ops = (unsigned long long)n;
		else
			*(int *)field = (int)n;
		return 0;
	case K_KIB:
		if (parse_int(v, k->min, k->max, &n) < 0)
			goto bad;
		c->argon2_memory = (size_t)n * 1024;
		return 0;
	case K_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
		    strcmp(v, "1") == 0 || strcmp(v, "on") == 0)
			*(int *)field = 1;
		else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
		    strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
			*(int *)field = 0;
		else
			goto bad;
		return 0;
	case K_HEX32:
		/* An optional key left empty: absent (previous_key). */
		if (*v == '\0' && k->dflt != NULL && *k->dflt == '\0') {
			if (k->offset == OFF(crypto_previous_key))
				c->has_previous_key = false;
			return 0;
		}
		if (k->offset == OFF(crypto_previous_key))
			c->has_previous_key = true;
		if (strlen(v) != 64 || sodium_hex2bin((unsigned char *)field,
		    32, v, 64, NULL, &binlen, NULL) != 0 || binlen != 32)
			goto bad;
		return 0;
	}
bad:
	snprintf(err, errlen, "[%s] %s has a bad value%s", k->section,
	    k->name, k->type == K_HEX32 ? " (it must be 64 hex digits)" :
	    k->type == K_STR ? "" : k->type == K_BOOL ? " (yes or no)" :
	    " (out of range or not a number)");
	return -1;
}

/* Derives origin from base_url and strips a trailing slash. */
static int
derive_origin(struct config *c, char *err, size_t errlen)
{
	const char	*p;
	size_t		 len = strlen(c->base_url);

	while (len > 0 && c->base_url[len - 1] == '/')
		c->base_url[--len] = '\0';
	if (strncmp(c->base_url, "https://", 8) == 0)
		p = c->base_url + 8;
	else if (strncmp(c->base_url, "http://", 7) == 0)
		p = c->base_url + 7;
	else {
		snprintf(err, errlen, "[server] base_url must start with "
		    "https:// or http://");
		return -1;
	}
	p += strcspn(p, "/");
	if ((c->origin = strndup(c->base_url, (size_t)(p - c->base_url))) == NULL)
		return -1;
	return 0;
}

/* True when s is a plausible Stripe id: [A-Za-z0-9_], 1 to 255. */
static bool
stripe_id_text(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 255)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/*
 * Parses [stripe] meter_prices, "meter:price_id, meter:price_id...", into
 * c->meter_prices.  Each meter at most once.  Returns 0, or -1 with err.
 */
static int
parse_meter_prices(struct config *c, char *err, size_t errlen)
{
	char		*copy, *rest, *item, *colon, *end;
	size_t		 n = 1, i;
	int		 rc = -1;

	if (*c->stripe_meter_prices == '\0')
		return 0;
	for (item = c->stripe_meter_prices; *item != '\0'; item++)
		if (*item == ',')
			n++;
	if ((c->meter_prices = calloc(n, sizeof(*c->meter_prices))) == NULL ||
	    (copy = strdup(c->stripe_meter_prices)) == NULL)
		return -1;
	rest = copy;
	while ((item = strsep(&rest, ",")) != NULL) {
		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		colon = strchr(item, ':');
		if (colon == NULL || valid_slug(item, (size_t)(colon - item)) !=
		    NULL || !stripe_id_text(colon + 1, strlen(colon + 1))) {
			snprintf(err, errlen, "[stripe] meter_prices must be "
			    "METER:PRICE_ID pairs separated by commas (e.g. "
			    "compute_minutes:price_123,tokens:price_456)");
			goto out;
		}
		*colon = '\0';
		for (i = 0; i < c->nmeter_prices; i++)
			if (strcmp(c->meter_prices[i].meter, item) == 0) {
				snprintf(err, errlen, "[stripe] meter_prices "
				    "names the meter %s twice", item);
				goto out;
			}
		if ((c->meter_prices[c->nmeter_prices].meter = strdup(item)) ==
		    NULL)
			goto out;
		if ((c->meter_prices[c->nmeter_prices].price =
		    strdup(colon + 1)) == NULL) {
			free(c->meter_prices[c->nmeter_prices].meter);
			c->meter_prices[c->nmeter_prices].meter = NULL;
			goto out;
		}
		c->nmeter_prices++;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/*
 * Reads the JSON object of [client] config_file (a relative path is taken
 * from the configuration file's directory) into c->client_config, as
 * compact JSON text; "{}" when no file is named.  Returns 0, or -1 with
 * err when the file cannot be read or is not one JSON object.
 */
static int
load_client_config(struct config *c, const char *conf_path, char *err,
    size_t errlen)
{
	struct json_object	*o;
	struct stat		 st;
	const char		*file = c->client_config_file, *slash;
	char			*path, *text;
	FILE			*f;
	size_t			 len = 0, got;
	int			 rc = -1;

	if (*file == '\0')
		return (c->client_config = strdup("{}")) != NULL ? 0 : -1;
	slash = strrchr(conf_path, '/');
	if (file[0] == '/' || slash == NULL)
		path = strdup(file);
	else if (asprintf(&path, "%.*s/%s", (int)(slash - conf_path),
	    conf_path, file) < 0)
		path = NULL;
	if (path == NULL)
		return -1;
	if ((text = malloc(MAX_RAW_BODY + 1)) == NULL) {
		free(path);
		return -1;
	}
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "[client] config_file %s cannot be "
		    "read: %s", path, strerror(errno));
		goto out;
	}
	/* A regular file: never a device or a FIFO that could block. */
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "[client] config_file %s cannot be "
		    "read: not a regular file", path);
		fclose(f);
		goto out;
	}
	while (len <= MAX_RAW_BODY && (got = fread(text + len, 1,
	    MAX_RAW_BODY + 1 - len, f)) > 0)
		len += got;
	if (ferror(f)) {
		snprintf(err, errlen, "[client] config_file %s cannot be "
		    "read: %s", path, strerror(errno));
		fclose(f);
		goto out;
	}
	fclose(f);
	if (len > MAX_RAW_BODY || (o = parse_json_object(text, len)) ==
	    NULL) {
		snprintf(err, errlen, "[client] config_file %s must hold one "
		    "JSON object (at most %d bytes)", path, MAX_RAW_BODY);
		goto out;
	}
	c->client_config = strdup(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	rc = c->client_config != NULL ? 0 : -1;
out:
	free(text);
	free(path);
	return rc;
}

const char *
meter_price(const char *meter)
{
	size_t	 i;

	for (i = 0; i < cfg.nmeter_prices; i++)
		if (strcmp(cfg.meter_prices[i].meter, meter) == 0)
			return cfg.meter_prices[i].price;
	return NULL;
}

bool
meter_billed(const char *meter)
{
	return cfg.nmeter_prices == 0 || meter_price(meter) != NULL;
}

int
config_load(const char *path, struct config *out, char *err, size_t errlen)
{
	struct loading	 ld;
	struct stat	 st;
	struct config	 c;
	char		 name[128];
	const char	*v;
	size_t		 i;
	int		 rc = -1, line;

	memset(&ld, 0, sizeof(ld));
	memset(&c, 0, sizeof(c));
	ld.err = err;
	ld.errlen = errlen;
	ld.c = &c;
	err[0] = '\0';

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "%s holds secrets and is readable or "
		    "writable by others; chmod o-rw it first", path);
		goto out;
	}
	if ((line = ini_parse(path, on_ini, &ld)) != 0) {
		if (!ld.failed) {
			if (line < 0)
				snprintf(err, errlen, "cannot read %s", path);
			else
				snprintf(err, errlen, "%s: syntax error on "
				    "line %d", path, line);
		}
		goto out;
	}
	if ((c.path = strdup(path)) == NULL)
		goto out;
	for (i = 0; i < NKEYS; i++) {
		env_name(name, sizeof(name), &keys[i]);
		if ((v = getenv(name)) == NULL)
			v = ld.raw[i];
		if (v == NULL)
			v = keys[i].dflt;
		if (v == NULL) {
			snprintf(err, errlen, "the required key [%s] %s is "
			    "missing (set it in %s or %s)", keys[i].section,
			    keys[i].name, path, name);
			goto out;
		}
		if (set_value(&c, &keys[i], v, err, errlen) < 0)
			goto out;
	}
	if (named_env(&c, err, errlen) < 0)
		goto out;
	if (strlen(c.jwt_secret) < 32) {
		snprintf(err, errlen, "[jwt] secret must be at least 32 bytes");
		goto out;
	}
	if (c.jwt_previous_secret[0] != '\0' &&
	    strlen(c.jwt_previous_secret) < 32) {
		snprintf(err, errlen, "[jwt] previous_secret must be at least "
		    "32 bytes");
		goto out;
	}
	if (c.has_previous_key && sodium_memcmp(c.crypto_previous_key,
	    c.crypto_key, sizeof(c.crypto_key)) == 0) {
		snprintf(err, errlen, "[crypto] previous_key equals key: put "
		    "the new key in key and the old one in previous_key");
		goto out;
	}
	if (c.product_name[0] == '\0' || strlen(c.product_name) > 64 ||
	    strpbrk(c.product_name, "<>&\"\r\n") != NULL) {
		snprintf(err, errlen, "[server] name must be 1 to 64 "
		    "characters, without < > & \" or line breaks");
		goto out;
	}
	if (c.support_url[0] != '\0' && strncmp(c.support_url, "https://",
	    8) != 0 && strncmp(c.support_url, "http://", 7) != 0 &&
	    strncmp(c.support_url, "mailto:", 7) != 0) {
		snprintf(err, errlen, "[server] support_url must start with "
		    "https://, http:// or mailto:");
		goto out;
	}
	if (strpbrk(c.support_url, "<>\"' \r\n") != NULL ||
	    strpbrk(c.smtp_from_name, "\r\n\"\\") != NULL) {
		snprintf(err, errlen, "[server] support_url or [smtp] "
		    "from_name holds a character it may not (a quote, a line "
		    "break)");
		goto out;
	}
	if (c.trial_fallback_plan[0] != '\0' && valid_slug(
	    c.trial_fallback_plan, strlen(c.trial_fallback_plan)) != NULL) {
		snprintf(err, errlen, "[trial] fallback_plan must be a plan "
		    "name (a-z, 0-9, _)");
		goto out;
	}
	if (c.gate_workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		c.gate_workers = n > 0 ? (n > 64 ? 64 : (int)n) : 2;
	}
	if (c.workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c.workers = n > 0 ? (int)n : 2;
	}
	if (c.password_hashes == 0) {
		/* Every core but one: the gate always keeps a core. */
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c.password_hashes = n > 1 ? (int)n - 1 : 1;
	}
	if (derive_origin(&c, err, errlen) < 0 ||
	    parse_meter_prices(&c, err, errlen) < 0 ||
	    load_client_config(&c, path, err, errlen) < 0)
		goto out;
	*out = c;
	memset(&c, 0, sizeof(c));
	rc = 0;
out:
	if (rc < 0 && err[0] == '\0')
		snprintf(err, errlen, "out of memory reading %s", path);
	config_free(&c);
	for (i = 0; i < NKEYS; i++) {
		if (ld.raw[i] != NULL) {
			sodium_memzero(ld.raw[i], strlen(ld.raw[i]));
			free(ld.raw[i]);
		}
	}
	return rc;
}

void
config_free(struct config *c)
{
	size_t	 i;
	char	**field;

	for (i = 0; i < NKEYS; i++) {
		if (keys[i].type != K_STR)
			continue;
		field = (char **)((char *)c + keys[i].offset);
		if (*field != NULL) {
			sodium_memzero(*field, strlen(*field));
			free(*field);
		}
	}
	for (i = 0; i < c->n_oidc; i++) {
		free(c->oidc[i].name);
		free(c->oidc[i].issuer);
		free(c->oidc[i].client_id);
		if (c->oidc[i].client_secret != NULL) {
			sodium_memzero(c->oidc[i].client_secret,
			    strlen(c->oidc[i].client_secret));
			free(c->oidc[i].client_secret);
		}
	}
	for (i = 0; i < c->n_trust; i++) {
		free(c->trust[i].name);
		free(c->trust[i].issuer);
		free(c->trust[i].audience);
		free(c->trust[i].jwks_url);
	}
	for (i = 0; i < c->nmeter_prices; i++) {
		free(c->meter_prices[i].meter);
		free(c->meter_prices[i].price);
	}
	free(c->meter_prices);
	free(c->client_config);
	free(c->path);
	free(c->origin);
	sodium_memzero(c, sizeof(*c));
}
