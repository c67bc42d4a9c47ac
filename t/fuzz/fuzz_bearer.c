/*
 * Fuzzes the Authorization header as auth_resolve (src/app/auth.c) reads it:
 * bearer_of takes the credential out of the header, and a credential that
 * is neither an API key (tgk_) nor a service key (tgs_) goes to
 * jwt_check, with a fixed configuration.  The key lookups need the
 * database and are not fuzzed here (they hash the credential and bind
 * it; nothing parses it).  The same bytes are also given as the Origin
 * header to same_origin.
 *
 * bearer_of reads the header through req_env (src/http/request.c), here
 * over a plain environment array.
 */
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fixed_config();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena	*a = fuzz_arena();
	struct req	 r;
	char		*env[3];
	const char	*cred, *uid = NULL, *sid = NULL, *seen;
	char		*hdr = fuzz_cstr(data, size);
	bool		 present = false;
	int		 rc;

	memset(&r, 0, sizeof(r));
	r.a = a;
	env[0] = arena_printf(a, "HTTP_AUTHORIZATION=%s", hdr);
	env[1] = arena_printf(a, "HTTP_ORIGIN=%s", hdr);
	env[2] = NULL;
	r.env = env;
	/* The header as bearer_of sees it: inside the environment string. */
	seen = env[0] + strlen("HTTP_AUTHORIZATION=");

	cred = bearer_of(&r, &present);
	FUZZ_CHECK(present, "a header that came is present");
	if (cred != NULL) {
		FUZZ_CHECK(cred > seen && cred < seen + strlen(seen) &&
		    *cred != ' ' && strlen(cred) <= 4096,
		    "the credential is a non-blank tail of the header");
		FUZZ_CHECK(strncasecmp(hdr, "Bearer ", 7) == 0,
		    "only the Bearer scheme is read");
		if (strncmp(cred, "tgk_", 4) != 0 &&
		    strncmp(cred, "tgs_", 4) != 0) {
			rc = jwt_check(a, cred, &uid, &sid);
			FUZZ_CHECK(rc == JWT_OK || rc == JWT_BAD ||
			    rc == JWT_EXPIRED, "jwt_check's answer");
			if (rc == JWT_OK)
				FUZZ_CHECK(valid_id(uid, strlen(uid)) == NULL &&
				    valid_id(sid, strlen(sid)) == NULL,
				    "accepted ids are valid");
		}
	}
	if (same_origin(&r))
		FUZZ_CHECK(strcmp(hdr, "https://accounts.example.com") == 0,
		    "same_origin only for base_url's origin");

	/* No header at all. */
	env[0] = NULL;
	cred = bearer_of(&r, &present);
	FUZZ_CHECK(!present && cred == NULL, "no header, no credential");
	free(hdr);
	return 0;
}
