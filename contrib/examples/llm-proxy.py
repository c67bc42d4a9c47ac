#!/usr/bin/env python3
"""An LLM proxy behind an editor extension: a token quota, a usage log.

The extension signs its user in with the device flow
(contrib/examples/device-login.sh) and asks GET /api/v1/client-config
once; then it sends each completion request to this proxy with the
user's credential. The proxy

1. asks tollgate whether the user may use more tokens: a check of cost 0
   on the meter `tokens` passes while the period's use is below the
   plan's limit (`tollgatectl plans set PLAN limit.tokens=N`) and counts
   only the request against the plan's rate;
2. calls the model (here a stand-in that counts words as tokens);
3. records what the call used as a usage event with the model's name and
   its price (cost_micros: millionths of the currency), which the user
   lists with GET /api/v1/usage/events and the admin exports as CSV.

    TOLLGATE_SERVICE_KEY=tgs_... contrib/examples/llm-proxy.py CREDENTIAL REQUEST_ID PROMPT

Exit 0 with the completion, 3 when refused (the gate's message), 1 on
any other failure. Environment: see tollgate_client.py.
"""
import sys

from tollgate_client import call, check

MODEL = "stand-in-1"
MICROS_PER_TOKEN = 2000             # 0.002 of the currency per token


def model(prompt):
    """A stand-in for the model: (completion, prompt tokens, its tokens)."""
    words = prompt.split()
    completion = " ".join(reversed(words))
    return completion, len(words), len(words)


def main(argv):
    if len(argv) != 4:
        print("usage: llm-proxy.py CREDENTIAL REQUEST_ID PROMPT", file=sys.stderr)
        return 1
    cred, req_id, prompt = argv[1:]
    try:
        ans = check(credential=cred, meter="tokens", cost=0)
    except RuntimeError as e:
        print("llm-proxy: %s" % e, file=sys.stderr)
        return 1
    if not ans["allowed"]:
        print("refused %s: %s" % (ans["code"], ans["message"]))
        return 3
    completion, p_tok, c_tok = model(prompt)
    used = p_tok + c_tok
    status, err = call("POST", "/api/v1/usage/events", {
        "user_id": ans["user_id"], "meter": "tokens", "quantity": used,
        "idempotency_key": "llm-" + req_id,
        "metadata": {"model": MODEL, "prompt_tokens": p_tok,
                     "completion_tokens": c_tok},
        "cost_micros": used * MICROS_PER_TOKEN})
    if status != 202:
        # The answer was given: log it to be recorded again later.
        print("llm-proxy: the usage event answered %d" % status, file=sys.stderr)
        return 1
    print(completion)
    print("(%d tokens with %s)" % (used, MODEL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
