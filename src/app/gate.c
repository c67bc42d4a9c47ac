/*
 * What the gate's answers share: the message a denial's code is told
 * with, and the rule for the normalised URI a location passes, for the
 * gate workers (server/gate_worker.c, which answer nginx's auth
 * subrequests to /_tollgate/check over HTTP with the engine's decision)
 * and POST /api/v1/check (check.c).
 *
 * The route row /_tollgate/check stays in the route table so that the
 * gate workers' requests have their name in /metrics; the shipped nginx
 * configuration proxies that path to the gate workers, never to the
 * FastCGI workers, which answer it 404 like any unknown path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"

/*
 * The message a client is told with a denial's code, for the gate
 * workers and POST /api/v1/check alike.  Static or in a.
 */
const char *
deny_message(struct arena *a, const char *code, const char *meter,
    const char *next, const char *role)
{
	if (strcmp(code, "unauthenticated") == 0)
		return "The credential is missing or not valid.";
	if (strcmp(code, "token_expired") == 0)
		return "The credential has expired.";
	if (strcmp(code, "account_disabled") == 0)
		return "This account has been disabled.";
	if (strcmp(code, "rate_limited") == 0)
		return "Too many requests. Please slow down and try again "
		    "later.";
	if (strcmp(code, "email_not_verified") == 0)
		return "Verify your email address first.";
	if (strcmp(code, "subscription_required") == 0)
		return "Your trial has ended. Please subscribe to continue.";
	if (strcmp(code, "trial_credits_exhausted") == 0)
		return "Trial credits exhausted. Please upgrade to continue.";
	if (strcmp(code, "quota_exceeded") == 0)
		return quota_message(a, meter != NULL ? meter : "api_calls",
		    next);
	if (strcmp(code, "forbidden") == 0 && role != NULL)
		return arena_printf(a, "Only an %s may use this.", role);
	if (strcmp(code, "forbidden") == 0)
		return "A session cookie counts only on same-origin requests.";
	if (strcmp(code, "bad_request") == 0)
		return "The path is not in its plain form (an encoded slash or "
		    "dot, a dot segment, a doubled slash or a \";\"): send it "
		    "as the service should act on it.";
	return "The service is briefly unavailable. Please try again in a "
	    "few seconds.";
}

/*
 * True when nginx's normalised URI holds no dot segment or "//" (the
 * gate's location passes $uri; nothing passed counts as normal).
 */
bool
gate_uri_normal(const char *u)
{
	size_t	 n;

	if (u == NULL || *u == '\0')
		return true;	/* the location did not pass it */
	if (*u != '/' || strstr(u, "//") != NULL)
		return false;
	for (; *u != '\0'; u += n) {
		u++;
		n = strcspn(u, "/");
		if ((n == 1 && u[0] == '.') || (n == 2 && u[0] == '.' &&
		    u[1] == '.'))
			return false;
	}
	return true;
}

/*
 * /_tollgate/check reached through FastCGI: nothing decides here (the
 * gate workers do), so it is not found.
 */
void
h_gate(struct req *r)
{
	reply_error(r, 404, "not_found", "There is nothing here.");
}
