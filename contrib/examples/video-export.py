#!/usr/bin/env python3
"""A video-export job on a serverless worker: compute minutes, once per job.

The front end queues a job with the user's credential (a guest's token
works too: contract section 3); the worker, far from the operator's
nginx, asks tollgate before it renders. The job's id is the idempotency
key, so a job the platform runs twice (a retry after a timeout) is
counted once and gets the first answer again.

    TOLLGATE_SERVICE_KEY=tgs_... contrib/examples/video-export.py CREDENTIAL JOB_ID MINUTES

Exit 0 when rendered, 3 when refused (the gate's message: a guest, whose
plan has no compute minutes, is asked to sign up; a trial past its
minutes, to upgrade), 1 on any other failure. Environment: see
tollgate_client.py.
"""
import sys

from tollgate_client import check


def main(argv):
    if len(argv) != 4:
        print("usage: video-export.py CREDENTIAL JOB_ID MINUTES", file=sys.stderr)
        return 1
    cred, job, minutes = argv[1], argv[2], int(argv[3])
    try:
        ans = check(credential=cred, meter="compute_minutes", cost=minutes,
                    idempotency_key="export-" + job)
    except RuntimeError as e:
        print("video-export: %s" % e, file=sys.stderr)
        return 1
    if not ans["allowed"]:
        print("refused %s: %s" % (ans["code"], ans["message"]))
        return 3
    # ... render the video here ...
    m = ans["meter"]
    print("rendered %s: %d minutes for %s (%s of %s used)" % (
        job, minutes, ans["user_id"], m["used"],
        "no limit" if m["limit"] is None else m["limit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
