#!/usr/bin/env python3
"""A workspace server that asks tollgate before it provisions.

Plans limit how many workspaces a user may run at a time with a level
meter: it holds how much is in use now, not a sum per period.

    tollgatectl meters set workspaces kind=level
    tollgatectl plans set pro limit.workspaces=2

Before it starts a workspace the server asks POST /api/v1/check (meter
workspaces, cost 1): tollgate lets it through when level + 1 is at most
the plan's limit and raises the level, exactly (of ten concurrent starts
against a limit of 2, two pass). When workspaces stop, the server says how
many still run with PUT /api/v1/usage/levels/workspaces. Each start
gets an idempotency key, kept until tollgate has answered, so a start
retried after a lost answer (the server died, the link broke) counts
once; a start tried again after a refusal is a new one. Python's standard library alone; the running workspaces are kept
in a JSON file (a real server would ask its orchestrator).

    workspaces.py start USER_ID WORKSPACE_ID
    workspaces.py stop USER_ID WORKSPACE_ID
    workspaces.py list USER_ID

Exit 0 when done, 3 when tollgate refused the start (its code and
message are printed), 1 on any other failure.

Environment: TOLLGATE_URL, TOLLGATE_SERVICE_KEY, TOLLGATE_CA (see
tollgate_client.py); WORKSPACES_STATE, the JSON file (default ./workspaces.json).
"""
import json
import os
import sys

from tollgate_client import call

METER = "workspaces"


def load():
    try:
        with open(os.environ.get("WORKSPACES_STATE", "workspaces.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(state):
    with open(os.environ.get("WORKSPACES_STATE", "workspaces.json"), "w") as f:
        json.dump(state, f)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("start", "stop", "list") or \
            (argv[1] != "list" and len(argv) < 4) or \
            not os.environ.get("TOLLGATE_SERVICE_KEY"):
        print("usage: workspaces.py start|stop USER_ID WORKSPACE_ID | "
              "list USER_ID", file=sys.stderr)
        return 1
    cmd, user = argv[1], argv[2]
    state = load()
    running = state.setdefault("running", {}).setdefault(user, [])
    if cmd == "list":
        print(" ".join(running))
        return 0
    ws = argv[3]
    if cmd == "start":
        if ws in running:
            print("%s already runs" % ws)
            return 0
        pending = state.setdefault("pending", {})
        key = pending.get(ws) or "start-%s-%s" % (ws, os.urandom(8).hex())
        pending[ws] = key
        save(state)                 # before asking: a retry reuses it
        status, ans = call("POST", "/api/v1/check", {
            "user_id": user, "meter": METER, "cost": 1,
            "idempotency_key": key})
        if status != 200:
            print("workspaces: tollgate answered %d" % status, file=sys.stderr)
            return 1
        del pending[ws]             # answered: the next start is new
        if not ans["allowed"]:
            save(state)
            print("refused %s: %s" % (ans["code"], ans["message"]))
            return 3
        running.append(ws)          # ... provision it here ...
        save(state)
        m = ans["meter"]
        print("started %s for %s (%s of %s running)" % (
            ws, user, m["used"], "no limit" if m["limit"] is None else m["limit"]))
        return 0
    if ws in running:
        running.remove(ws)          # ... tear it down here ...
    status, ans = call("PUT", "/api/v1/usage/levels/" + METER,
                       {"user_id": user, "level": len(running)})
    if status != 200:
        print("workspaces: tollgate answered %d" % status, file=sys.stderr)
        return 1
    save(state)
    print("stopped %s for %s (%d running)" % (ws, user, ans["level"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
