#!/usr/bin/env python3
"""A service that is not behind the operator's nginx asks tollgate first.

A serverless function, a job runner, a chat backend: before it does the
work it asks POST /api/v1/check, with its service key, whether the user
may (the gate's own decision: the plan's rate, the trial, the meter's
quota, the credits), and tollgate counts it when it is allowed. Python's
standard library alone.

    TOLLGATE_SERVICE_KEY=tgs_... contrib/examples/check.py WHO [METER [COST]]

WHO is what the user gave the service (an access token or an API key,
tgk_...), or user:ID for a user id the service already knows (from
X-Tollgate-User-Id, say). METER defaults to api_calls, COST to 1; for
`credits` the balance is spent, exactly (of many concurrent spends only
those that fit pass). Exit 0 and a line when allowed, 3 when refused
(the gate's code and message), 1 on any other failure.

Environment:
    TOLLGATE_URL          the service (default https://127.0.0.1:8443)
    TOLLGATE_SERVICE_KEY  the service key (tollgatectl service-key create)
    TOLLGATE_CA           a CA file for a self-signed certificate
                          (the dev stack's: .devstack/etc/cert.pem)
    CHECK_IDEMPOTENCY_KEY the same key again answers the first answer and
                          counts once (retries of one job)
    CHECK_DRY_RUN=1       ask what would happen; count nothing
"""
import os
import sys

from tollgate_client import call


def main(argv):
    if len(argv) < 2 or not os.environ.get("TOLLGATE_SERVICE_KEY"):
        print("usage: TOLLGATE_SERVICE_KEY=tgs_... check.py WHO [METER [COST]]",
              file=sys.stderr)
        return 1
    who = argv[1]
    body = {"user_id": who[5:]} if who.startswith("user:") else {"credential": who}
    body["meter"] = argv[2] if len(argv) > 2 else "api_calls"
    body["cost"] = int(argv[3]) if len(argv) > 3 else 1
    if os.environ.get("CHECK_IDEMPOTENCY_KEY"):
        body["idempotency_key"] = os.environ["CHECK_IDEMPOTENCY_KEY"]
    if os.environ.get("CHECK_DRY_RUN") == "1":
        body["dry_run"] = True
    status, ans = call("POST", "/api/v1/check", body)
    if status != 200:
        err = ans.get("error", {})
        print("check: tollgate answered %d %s" % (status, err.get("code", "")),
              file=sys.stderr)
        return 1
    meter = ans["meter"]
    if not ans["allowed"]:
        print("refused %s: %s" % (ans["code"], ans["message"]))
        return 3
    left = meter["remaining"]
    print("allowed %s %s for %s (plan %s); %s left, %d more requests this minute"
          % (body["cost"], meter["name"], ans["user_id"], ans["plan"],
             "no limit" if left is None else left, ans["rate"]["remaining"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
