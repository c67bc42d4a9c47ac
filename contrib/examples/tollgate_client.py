"""The few lines every example service needs to talk to tollgate.

Python's standard library alone. Environment:
    TOLLGATE_URL          the service (default https://127.0.0.1:8443)
    TOLLGATE_SERVICE_KEY  the service key (tollgatectl service-key create)
    TOLLGATE_CA           a CA file for a self-signed certificate
                          (the dev stack's: .devstack/etc/cert.pem)
"""
import json
import os
import ssl
import urllib.error
import urllib.request


def call(method, path, body=None, credential=None):
    """Sends one request; returns (status, decoded JSON or {}).

    With no credential the service key is used (POST /api/v1/check,
    usage events, levels); with one, the request is the user's own.
    """
    base = os.environ.get("TOLLGATE_URL", "https://127.0.0.1:8443").rstrip("/")
    ctx = ssl.create_default_context(cafile=os.environ.get("TOLLGATE_CA"))
    headers = {"Authorization": "Bearer " + (
        credential or os.environ["TOLLGATE_SERVICE_KEY"])}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as res:
            raw = res.read()
            return res.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else {}
        except ValueError:
            return e.code, {}


def check(**body):
    """POST /api/v1/check: the gate's decision for a service.

    Returns the answer ({allowed, code, message, user_id, plan, ...});
    raises RuntimeError when tollgate could not decide (a bad service
    key, tollgate unavailable): the caller must then refuse the work.
    """
    status, ans = call("POST", "/api/v1/check", body)
    if status != 200:
        raise RuntimeError("tollgate answered %d %s" % (
            status, ans.get("error", {}).get("code", "")))
    return ans
