#!/usr/bin/env python3
"""A service behind tollgate's gate, in the Python standard library alone.

nginx asks tollgate about every request first (nginx/tollgate-gate.conf)
and passes on only the allowed ones, with the caller in three headers:

    X-Tollgate-User-Id            the user's id (authentic: nginx drops any
                                  copy the client sent)
    X-Tollgate-Plan               trial, free, pro, ...
    X-Tollgate-Credits-Remaining  credits left after this request
    X-Tollgate-Role               user or admin
    X-Tollgate-Meter-Remaining    what is left of the location's meter this
                                  period (empty: the plan has no limit)

So the service needs no tollgate library and no credential checks. Bind it
to loopback (or a private socket) so that nginx is the only way in: the
user id is authentic only then. The location is in contrib/examples/nginx.conf.

    contrib/examples/upstream.py [PORT]      (default 9000, on 127.0.0.1)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        user = self.headers.get("X-Tollgate-User-Id")
        if not user:
            # Not through the gate: a misconfigured location. Refuse.
            return self.answer(403, {"error": "not through the gate"})
        self.answer(200, {
            "hello": user,
            "plan": self.headers.get("X-Tollgate-Plan"),
            "credits_remaining": self.headers.get("X-Tollgate-Credits-Remaining"),
            "role": self.headers.get("X-Tollgate-Role"),
            "meter_remaining": self.headers.get("X-Tollgate-Meter-Remaining"),
            "path": self.path,
        })

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
