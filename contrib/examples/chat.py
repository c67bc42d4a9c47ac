#!/usr/bin/env python3
"""An AI chat app's backend: a long answer costs more credits.

Before it asks the model, the backend asks tollgate whether the user can
afford the longest answer it may get (a dry run: nothing is counted);
then it spends what the answer really cost, once, under the message's id
(a retried message is charged once). Credits move exactly as gate spends
do: the balance, the ledger, the trial's end when they run out.

    TOLLGATE_SERVICE_KEY=tgs_... contrib/examples/chat.py CREDENTIAL MESSAGE_ID TEXT

CREDENTIAL is what the chat's front end holds for the user (an access
token or an API key). The model here is a stand-in that echoes the text
back; its price is one credit per started 40 characters of answer.
Exit 0 with the answer, 3 when refused (the gate's message, for the
user), 1 on any other failure. Environment: see tollgate_client.py.
"""
import sys

from tollgate_client import check

MAX_ANSWER = 200                    # characters the model may answer


def price(chars):
    """Credits for an answer of so many characters."""
    return max(1, -(-chars // 40))


def model(text):
    """A stand-in for the model: what it says, at most MAX_ANSWER chars."""
    return ("You said: " + text)[:MAX_ANSWER]


def main(argv):
    if len(argv) != 4:
        print("usage: chat.py CREDENTIAL MESSAGE_ID TEXT", file=sys.stderr)
        return 1
    cred, msg_id, text = argv[1:]
    try:
        ans = check(credential=cred, meter="credits",
                    cost=price(MAX_ANSWER), dry_run=True)
        if not ans["allowed"]:
            print("refused %s: %s" % (ans["code"], ans["message"]))
            return 3
        reply = model(text)
        ans = check(credential=cred, meter="credits", cost=price(len(reply)),
                    idempotency_key="chat-" + msg_id)
    except RuntimeError as e:
        print("chat: %s" % e, file=sys.stderr)
        return 1
    if not ans["allowed"]:
        # Another message spent the rest meanwhile: no answer is shown.
        print("refused %s: %s" % (ans["code"], ans["message"]))
        return 3
    print(reply)
    print("(%d credits; %d left)" % (price(len(reply)), ans["credits_remaining"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
