#!/bin/sh
#
# client-config.sh: what an editor extension or a CLI does once after it
# signs in (for instance with device-login.sh): one call to
# GET /api/v1/client-config, which says who the user is, the plan, what
# is left on each meter, and the operator's own settings for clients
# ([client] config_file: an endpoint URL, feature flags).  Needs only curl
# and jq.
#
#   TOLLGATE_TOKEN=<access token or tgk_ API key> contrib/examples/client-config.sh [METER]
#
# Prints a summary; with METER, exits 3 when nothing is left on it (a
# client would then offer the upgrade rather than call the service).
# Environment:
#   TOLLGATE_URL      the service (default https://127.0.0.1:8443, the dev stack)
#   TOLLGATE_TOKEN    the user's credential (required)
#   CURL_CA_BUNDLE    curl's own: a CA file for a self-signed certificate
#                     (the dev stack's is .devstack/etc/cert.pem)

set -eu

base=${TOLLGATE_URL:-https://127.0.0.1:8443}
base=${base%/}
meter=${1:-}

die() { printf 'client-config: %s\n' "$*" >&2; exit 1; }

[ -n "${TOLLGATE_TOKEN:-}" ] || die "set TOLLGATE_TOKEN to an access token or an API key"

# The credential goes in a header read from stdin, never on the command line.
out=$(printf 'Authorization: Bearer %s\n' "$TOLLGATE_TOKEN" |
    curl -sS -H @- -w '\n%{http_code}\n' "$base/api/v1/client-config") ||
	die "cannot reach $base"
status=$(printf '%s\n' "$out" | tail -n 1)
body=$(printf '%s\n' "$out" | sed '$d')
case $status in
200) ;;
401) die "not signed in: $(printf '%s' "$body" | jq -r .error.message)" ;;
*) die "client-config failed ($status): $body" ;;
esac

printf '%s' "$body" | jq -r '
	"user: \(.user.email) (\(.user.name))",
	"plan: \(if .plan then "\(.plan.display_name) (\(.plan.name))" else "none" end)",
	"credits left: \(.credits.remaining)",
	(.meters | to_entries[] |
	    "meter \(.key): \(.value.used) used, " +
	    (if .value.limit == null then "no limit"
	     else "\(.value.remaining) of \(.value.limit) left" end) +
	    (if .value.kind == "level" then " (in use now)" else "" end)),
	(.config | to_entries[] | "config \(.key) = \(.value | tojson)")'

if [ -n "$meter" ]; then
	left=$(printf '%s' "$body" | jq -r --arg m "$meter" '.meters[$m].remaining // "none"')
	if [ "$left" = 0 ]; then
		printf 'nothing left on %s: upgrade to go on\n' "$meter"
		exit 3
	fi
fi
