"""The console's trusted-proxy mode (single sign-on through an
authenticating proxy such as oauth2-proxy): the identity header is believed
from the configured proxy address only, names a console account by e-mail
(disabled or unknown: 401), keeps every per-study rule, and a state change
through the proxy needs the custom header `X-CSRF-Token: proxy` (the proxy's
cookie is ambient; a cross-site page cannot add a custom header)."""
import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("proxy")
E.seed()
E.start(extra_env={"VIGIL_CONSOLE_TRUSTED_PROXIES": "10.9.9.9, 127.0.0.1",
                   "VIGIL_CONSOLE_PROXY_USER_HEADER": "X-Forwarded-Email"})
E.alert("x1", "S1")
E.alert("x2", "S2")


def req(method, path, email=None, src="127.0.0.1", csrf=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", E.port, timeout=10, source_address=(src, 0))
    hd = {}
    if email:
        hd["X-Forwarded-Email"] = email
    if csrf:
        hd["X-CSRF-Token"] = csrf
    data = None
    if body is not None:
        import json
        data = json.dumps(body)
        hd["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=hd)
    r = c.getresponse()
    raw = r.read()
    c.close()
    import json
    return r.status, (json.loads(raw) if raw else None)


st, b = req("GET", "/api/v1/session", email="Responder@Example.org")
C.check(st == 200 and b["researcher_id"] == "responder" and b["via"] == "proxy",
        "from the trusted proxy the header signs in (case-insensitive e-mail) (got %d %s)" % (st, b))
st, _ = req("GET", "/api/v1/session", email="responder@example.org", src="127.0.0.2")
C.check(st == 401, "the same header from another address is ignored: 401 (got %d)" % st)
st, _ = req("GET", "/api/v1/session", email="nobody@example.org")
C.check(st == 401, "an e-mail without a console account: 401 (got %d)" % st)
st, b = req("GET", "/api/v1/alerts", email="responder@example.org")
C.check(st == 200 and [a["alert_id"] for a in b["alerts"]] == ["x1"], "per-study rules hold through the proxy")
st, _ = req("POST", "/api/v1/alerts/x1/ack", email="responder@example.org", body={})
C.check(st == 403 and E.sql("SELECT state FROM alert_lifecycle WHERE alert_id = 'x1'")[0][0] == "open",
        "a state change without the custom header: 403, nothing changed (got %d)" % st)
st, _ = req("POST", "/api/v1/alerts/x1/ack", email="viewer@example.org", csrf="proxy", body={})
C.check(st == 403, "a viewer through the proxy may not acknowledge (got %d)" % st)
st, _ = req("POST", "/api/v1/alerts/x2/ack", email="responder@example.org", csrf="proxy", body={})
C.check(st == 404, "another study's alert through the proxy: 404 (got %d)" % st)
st, b = req("POST", "/api/v1/alerts/x1/ack", email="responder@example.org", csrf="proxy", body={"note": "sso"})
C.check(st == 200 and E.sql("SELECT state, ack_channel, ack_origin FROM alert_lifecycle WHERE alert_id = 'x1'")[0]
        == ("acknowledged", "console", "proxy"), "acknowledged through the proxy, audited as such (got %d %s)" % (st, b))
C.check(E.users("disable", "--researcher", "responder").returncode == 0, "disable")
st, _ = req("GET", "/api/v1/session", email="responder@example.org")
C.check(st == 401, "a disabled account through the proxy: 401 (got %d)" % st)
C.done()
