#!/bin/sh
#
# usage-event.sh: a service reports work it has done for a user (minutes
# rendered, tokens generated), which counts toward the user's meter and,
# on a paid plan, is billed through Stripe's metered usage.  Needs curl.
#
#   TOLLGATE_SERVICE_KEY=tgs_... contrib/examples/usage-event.sh USER_ID METER QUANTITY [IDEMPOTENCY_KEY]
#
# The service key comes from `tollgatectl service-key create NAME`
# (`contrib/devstack ctl service-key create NAME` on the dev stack); it is
# the one credential whose user_id tollgate trusts.  USER_ID is the
# X-Tollgate-User-Id the gate handed the service.  The idempotency key
# (default: a fresh random one) makes a retry count once: give the same
# key again when you are not sure the first report arrived.
#
# Environment:
#   TOLLGATE_URL          the service (default https://127.0.0.1:8443)
#   TOLLGATE_SERVICE_KEY  the service key (required)
#   CURL_CA_BUNDLE        curl's own: a CA file for a self-signed
#                         certificate (the dev stack's: .devstack/etc/cert.pem)

set -eu

die() { printf 'usage-event: %s\n' "$*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: usage-event.sh USER_ID METER QUANTITY [IDEMPOTENCY_KEY]"
[ -n "${TOLLGATE_SERVICE_KEY:-}" ] || die "TOLLGATE_SERVICE_KEY is not set"
base=${TOLLGATE_URL:-https://127.0.0.1:8443}
key=${4:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}

# Ids, meters and keys are URL-safe, so plain string interpolation is safe
# JSON here; check the quantity is a number.
case $3 in ''|*[!0-9]*) die "QUANTITY must be a positive integer" ;; esac

status=$(curl -sS -o /dev/stderr -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $TOLLGATE_SERVICE_KEY" \
    -H 'Content-Type: application/json' \
    -d "{\"user_id\": \"$1\", \"meter\": \"$2\", \"quantity\": $3, \"idempotency_key\": \"$key\"}" \
    "${base%/}/api/v1/usage/events")
[ "$status" = 202 ] || die "tollgate answered $status"
printf 'recorded %s %s for %s (idempotency key %s)\n' "$3" "$2" "$1" "$key"
