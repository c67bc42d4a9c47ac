#!/bin/sh
#
# device-login.sh: sign in to tollgate from a command-line tool with the
# device flow (RFC 8628), then call a gated endpoint with the access
# token.  Needs only curl and jq.  The example for client authors: your
# tool never sees the user's password or second factor.
#
#   TOLLGATE_URL=https://tollgate.example.com contrib/examples/device-login.sh [PATH]
#
# PATH is the endpoint to call once signed in (default /demo/echo, the dev
# stack's gated echo).  Environment:
#   TOLLGATE_URL      the service (default https://127.0.0.1:8443, the dev stack)
#   CLIENT_NAME       how the sign-in is named on /device and in the user's
#                     sessions (default "device-login.sh on <host>")
#   TOKEN_FILE        when set, the token pair is written there (mode 0600)
#   CURL_CA_BUNDLE    curl's own: a CA file for a self-signed certificate
#                     (the dev stack's is .devstack/etc/cert.pem)

set -eu

base=${TOLLGATE_URL:-https://127.0.0.1:8443}
base=${base%/}
path=${1:-/demo/echo}
client=${CLIENT_NAME:-"device-login.sh on $(hostname 2>/dev/null || echo unknown)"}

die() { printf 'device-login: %s\n' "$*" >&2; exit 1; }

# POSTs a JSON body; prints the body, then the HTTP status on a line of its own.
post() {
	curl -sS -X POST -H 'Content-Type: application/json' \
	    --data-binary "$2" -w '\n%{http_code}\n' "$base$1"
}

# 1. Ask for a device code and a user code.
out=$(post /api/v1/auth/device "$(jq -nc --arg c "$client" '{client_name: $c}')") ||
	die "cannot reach $base"
status=$(printf '%s\n' "$out" | tail -n 1)
body=$(printf '%s\n' "$out" | sed '$d')
[ "$status" = 200 ] || die "device authorization failed ($status): $body"
device_code=$(printf '%s' "$body" | jq -r .device_code)
interval=$(printf '%s' "$body" | jq -r .interval)

# 2. Show the user where to go.
printf '%s' "$body" | jq -r '"To sign in, open \(.verification_uri)\nand enter the code \(.user_code)\n(or open \(.verification_uri_complete))\nWaiting for approval..."'

# 3. Poll, no faster than the interval, slowing down when told to.
while :; do
	sleep "$interval"
	out=$(post /api/v1/auth/device/token \
	    "$(jq -nc --arg d "$device_code" '{device_code: $d}')") || continue
	status=$(printf '%s\n' "$out" | tail -n 1)
	body=$(printf '%s\n' "$out" | sed '$d')
	[ "$status" = 200 ] && break
	error=$(printf '%s' "$body" | jq -r '.error.code // empty' 2>/dev/null || true)
	case $status:$error in
	400:authorization_pending) ;;
	400:slow_down) interval=$((interval + 5)) ;;
	400:access_denied) die "the sign-in was denied" ;;
	400:expired_token) die "the code expired; run me again" ;;
	503:*) ;;	# briefly unavailable: try again
	*) die "unexpected answer ($status): $body" ;;
	esac
done

access=$(printf '%s' "$body" | jq -r .tokens.access_token)
printf '%s' "$body" | jq -r '"Signed in as \(.user.email)."'
if [ -n "${TOKEN_FILE:-}" ]; then
	(umask 077 && printf '%s\n' "$body" | jq .tokens >"$TOKEN_FILE")
fi

# 4. Call the gated endpoint with the access token (it lives 15 minutes;
# POST /api/v1/auth/refresh {refresh_token} gets a new pair).
curl -sS --fail-with-body -H "Authorization: Bearer $access" "$base$path"
echo
