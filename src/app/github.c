/*
 * GitHub login: the OAuth 2.0 authorization code flow with PKCE (S256).
 *
 * GET /api/v1/auth/github sends the browser to GitHub with a random
 * state and code challenge; the state and the PKCE verifier travel in a
 * short-lived cookie (HttpOnly, Secure, SameSite=Lax, path limited to
 * these two routes), sealed with the crypto key, so the callback only
 * accepts a state that this browser was given.  The callback trades the
 * code (with the verifier) for a token, reads the GitHub user and its
 * verified primary email, and signs in the account linked to that GitHub
 * id, else links the account with that email (taking over one whose
 * email was never verified: its password, keys, tokens, second factor
 * and sessions go first, so whoever signed up with someone else's
 * address gets nothing), else claims the guest that started the sign-in,
 * else creates a verified account with a trial (none when the email or
 * the GitHub id had one before).  That account step is OpenID Connect's
 * too: ext_signin (extid.c), one transaction.  Every way it can fail
 * ends on a page that says what happened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "app/app.h"

#define GH_COOKIE	"tg_github"
#define GH_PATH		"/api/v1/auth/github"
#define GH_TTL		600		/* seconds to come back from GitHub */
#define GH_SCOPE	"read:user user:email"

/* What GitHub told us about the person signing in. */
struct ghuser {
	long long	 id;
	const char	*login;
	const char	*name;
	const char	*email;		/* the verified primary address */
};

/* Outcomes of the calls to GitHub. */
enum ghres { GH_OK, GH_DOWN, GH_BADCODE, GH_REFUSED, GH_NOEMAIL };

/* Ends the flow on a page (ext_page), with a link to start again. */
static void
gh_page(struct req *r, int status, const char *title, const char *message)
{
	ext_page(r, status, title, message, GH_PATH,
	    "Sign in with GitHub again");
}

static void
gh_clear_cookie(struct req *r)
{
	reply_header(r, "Set-Cookie", GH_COOKIE "=; Path=" GH_PATH
	    "; Max-Age=0; HttpOnly; Secure; SameSite=Lax");
}

/* The PKCE challenge of a verifier: base64url(SHA-256), in the arena. */
static const char *
pkce_challenge(struct arena *a, const char *verifier)
{
	unsigned char	 h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)verifier,
	    strlen(verifier));
	return b64url(a, h, sizeof(h));
}

/*
 * GET /api/v1/auth/github: 302 to GitHub's authorize URL, with the state
 * cookie; a 404 page when GitHub sign-in is not set up; a 503 page when
 * the database is down.
 */
void
h_github_start(struct req *r)
{
	struct buf	 q;
	const char	*state, *verifier, *payload, *guest;
	long long	 now;
	int		 rc;

	if (!github_configured()) {
		gh_page(r, 404, "GitHub sign-in", "Signing in with GitHub is "
		    "not set up on this site.");
		return;
	}
	if ((rc = db_unix_now(r->a, &now)) < 0) {
		reply_db(r, rc);
		return;
	}
	/* A guest presenting its own token is claimed by this sign-in. */
	if ((rc = guest_of_request(r, &guest)) < 0) {
		reply_db(r, rc);
		return;
	}
	state = new_token(r->a, "", 32);
	verifier = new_token(r->a, "", 32);
	payload = arena_printf(r->a, "%s|%s|%lld|%s", state, verifier,
	    now + GH_TTL, guest != NULL ? guest : "");
	cookie_seal(r, GH_COOKIE, payload, GH_PATH, GH_TTL);

	buf_init(&q, r->a);
	form_add(&q, "client_id", cfg.github_client_id);
	form_add(&q, "redirect_uri", arena_printf(r->a, "%s%s/callback",
	    cfg.base_url, GH_PATH));
	form_add(&q, "state", state);
	form_add(&q, "scope", GH_SCOPE);
	form_add(&q, "code_challenge", pkce_challenge(r->a, verifier));
	form_add(&q, "code_challenge_method", "S256");
	reply_redirect(r, 302, arena_printf(r->a, "%s%c%s",
	    cfg.github_authorize_url,
	    strchr(cfg.github_authorize_url, '?') ? '&' : '?', q.p));
}

/*
 * Opens the state cookie.  Returns true with the state, the verifier and
 * the expiry (unix seconds), false when it is missing or not ours.
 */
static bool
gh_cookie_open(struct req *r, const char **state, const char **verifier,
    long long *expires, const char **guest)
{
	char		*plain, *p1, *p2, *end;

	if ((plain = cookie_unseal(r, GH_COOKIE)) == NULL)
		return false;
	if ((p1 = strchr(plain, '|')) == NULL ||
	    (p2 = strchr(p1 + 1, '|')) == NULL)
		return false;
	*p1 = *p2 = '\0';
	*state = plain;
	*verifier = p1 + 1;
	*expires = strtoll(p2 + 1, &end, 10);
	/* The guest that started the sign-in, if one did. */
	*guest = NULL;
	if (*end == '|') {
		*end++ = '\0';
		*guest = *end != '\0' ? end : NULL;
		end += strlen(end);
	}
	return *end == '\0' && **state != '\0' && **verifier != '\0';
}

/*
 * Trades the code for an access token.  Returns GH_OK with the token in
 * *token, GH_BADCODE (unknown, used or expired code), GH_REFUSED
 * (GitHub refused for another reason) or GH_DOWN.
 */
static enum ghres
gh_token(struct req *r, const char *code, const char *verifier,
    const char **token)
{
	static const char *const headers[] = { "Accept: application/json",
	    NULL };
	struct json_object	*j;
	struct buf		 form, answer;
	const char		*e;
	char			 err[256];
	int			 status;
	enum ghres		 res;

	buf_init(&form, r->a);
	form_add(&form, "code", code);
	form_add(&form, "client_id", cfg.github_client_id);
	form_add(&form, "client_secret", cfg.github_client_secret);
	form_add(&form, "redirect_uri", arena_printf(r->a, "%s%s/callback",
	    cfg.base_url, GH_PATH));
	form_add(&form, "code_verifier", verifier);
	status = http_call(r->a, "POST", cfg.github_token_url, headers,
	    form.p, &answer, err, sizeof(err));
	sodium_memzero(form.p, form.len);
	if (status < 0 || status >= 500) {
		log_warn("github_down", " step=token status=%d err=\"%s\"",
		    status, status < 0 ? err : "-");
		return GH_DOWN;
	}
	j = json_parse_any(answer.p, answer.len);
	if (status == 200 && (*token = json_str_at(j, "access_token")) !=
	    NULL && **token != '\0') {
		*token = arena_strdup(r->a, *token);
		json_object_put(j);
		return GH_OK;
	}
	e = json_str_at(j, "error");
	res = e != NULL && (strcmp(e, "bad_verification_code") == 0 ||
	    strcmp(e, "invalid_grant") == 0) ? GH_BADCODE : GH_REFUSED;
	log_warn("github_token_refused", " status=%d error=\"%.64s\"", status,
	    e != NULL ? e : "-");
	json_object_put(j);
	return res;
}

/*
 * GETs <api_url><path> with the token.  Returns GH_OK with the parsed
 * answer in *out (the caller puts it), GH_REFUSED or GH_DOWN.
 */
static enum ghres
gh_get(struct req *r, const char *token, const char *path,
    struct json_object **out)
{
	const char	*headers[4];
	struct buf	 answer;
	char		 err[256];
	int		 status;

	headers[0] = arena_printf(r->a, "Authorization: Bearer %s", token);
	headers[1] = "Accept: application/vnd.github+json";
	headers[2] = "X-GitHub-Api-Version: 2022-11-28";
	headers[3] = NULL;
	*out = NULL;
	status = http_call(r->a, "GET", arena_printf(r->a, "%s%s",
	    cfg.github_api_url, path), headers, NULL, &answer, err,
	    sizeof(err));
	if (status < 0 || status >= 500) {
		log_warn("github_down", " step=%s status=%d err=\"%s\"", path,
		    status, status < 0 ? err : "-");
		return GH_DOWN;
	}
	if (status != 200 || (*out = json_parse_any(answer.p,
	    answer.len)) == NULL) {
		log_warn("github_refused", " step=%s status=%d", path, status);
		return GH_REFUSED;
	}
	return GH_OK;
}

/*
 * Reads the GitHub user and its verified primary email into *u (strings
 * in the arena).  Returns GH_OK, GH_NOEMAIL, GH_REFUSED or GH_DOWN.
 */
static enum ghres
gh_user(struct req *r, const char *token, struct ghuser *u)
{
	struct json_object	*user, *emails;
	const char		*s;
	size_t			 i, n;
	enum ghres		 res;

	memset(u, 0, sizeof(*u));
	if ((res = gh_get(r, token, "/user", &user)) != GH_OK)
		return res;
	u->id = json_int_at(user, "id", 0);
	s = json_str_at(user, "login");
	u->login = s != NULL ? arena_strndup(r->a, s, strnlen(s, 100)) : NULL;
	s = json_str_at(user, "name");
	if (s != NULL && valid_name(s, strlen(s)) == NULL)
		u->name = arena_strdup(r->a, s);
	json_object_put(user);
	if (u->id <= 0) {
		log_warn("github_refused", " step=/user msg=\"no id\"");
		return GH_REFUSED;
	}
	if ((res = gh_get(r, token, "/user/emails", &emails)) != GH_OK)
		return res;
	n = json_object_is_type(emails, json_type_array) ?
	    json_object_array_length(emails) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(emails, i);

		if (!json_bool_at(e, "primary", false) ||
		    !json_bool_at(e, "verified", false) ||
		    (s = json_str_at(e, "email")) == NULL ||
		    valid_email(s, strlen(s)) != NULL)
			continue;
		u->email = arena_strdup(r->a, s);
		break;
	}
	json_object_put(emails);
	if (u->name == NULL)
		u->name = u->login != NULL &&
		    valid_name(u->login, strlen(u->login)) == NULL ?
		    u->login : "";
	return u->email != NULL ? GH_OK : GH_NOEMAIL;
}

/*
 * GET /api/v1/auth/github/callback?code&state: 302 to /profile with a
 * session cookie.  Pages otherwise: 400 for a missing or wrong state, a
 * used or expired code, a refusal or no verified email; 403 for denied
 * consent or a disabled account; 409 when the address belongs to an
 * account linked to another GitHub user; 200 asking for the second
 * factor; 503 when GitHub or the database cannot be reached.
 */
void
h_github_callback(struct req *r)
{
	const char	*state = in_str(r, "state"), *code = in_str(r, "code");
	const char	*error = in_str(r, "error");
	const char	*c_state = NULL, *verifier = NULL, *token, *uid = NULL;
	const char	*sid = NULL, *guest = NULL, *why;
	struct ghuser	 u;
	struct ext_identity x;
	enum ghres	 res;
	long long	 expires = 0;
	bool		 opened;
	int		 rc = DB_FAIL, what = EXT_SESSION;

	opened = gh_cookie_open(r, &c_state, &verifier, &expires, &guest);
	if ((rc = ext_state_check(r, opened, state, c_state, expires,
	    gh_clear_cookie, &why)) != 0) {
		if (rc > 0)
			gh_page(r, rc, "GitHub sign-in failed", why);
		else
			reply_db(r, rc);
		return;
	}
	if (error != NULL) {
		if (strcmp(error, "access_denied") == 0)
			gh_page(r, 403, "GitHub sign-in cancelled", "You did "
			    "not allow this site to use your GitHub account, "
			    "so you are not signed in.");
		else
			gh_page(r, 400, "GitHub sign-in failed", "GitHub "
			    "refused the sign-in. Please try again.");
		return;
	}
	if (code == NULL) {
		gh_page(r, 400, "GitHub sign-in failed", "GitHub sent no "
		    "authorization code. Please start again.");
		return;
	}

	if ((res = gh_token(r, code, verifier, &token)) == GH_OK)
		res = gh_user(r, token, &u);
	switch (res) {
	case GH_OK:
		break;
	case GH_DOWN:
		gh_page(r, 503, "GitHub is unavailable", "GitHub could not be "
		    "reached. Please try again in a minute.");
		return;
	case GH_BADCODE:
		gh_page(r, 400, "GitHub sign-in failed", "This sign-in link "
		    "was already used or has expired. Please start again.");
		return;
	case GH_NOEMAIL:
		gh_page(r, 400, "GitHub sign-in failed", "Your GitHub account "
		    "has no verified primary email address. Verify one on "
		    "GitHub, then try again.");
		return;
	case GH_REFUSED:
		gh_page(r, 400, "GitHub sign-in failed", "GitHub refused the "
		    "sign-in. Please start again.");
		return;
	}

	memset(&x, 0, sizeof(x));
	x.provider = "github";
	x.subject = arena_printf(r->a, "%lld", u.id);
	x.github_id = u.id;
	x.login = u.login;
	x.email = u.email;
	x.name = u.name;
	x.guest = guest;
	if ((rc = ext_signin(r, &x, "github", NULL, &uid, &sid, &what)) < 0) {
		reply_db(r, rc);
		return;
	}
	switch (what) {
	case EXT_DISABLED:
		gh_page(r, 403, "Account disabled", "This account has been "
		    "disabled.");
		return;
	case EXT_OTHER:
		gh_page(r, 409, "GitHub sign-in failed", "The account with "
		    "this email address is linked to a different GitHub "
		    "account. Log in with your email instead.");
		return;
	case EXT_TOTP:
		pending_ask(r, uid, "github", "/profile");
		return;
	default:
		break;
	}
	log_info("github_login", " user=%s session=%s", uid, sid);
	reply_redirect(r, 302, "/profile");
}
