"""console/openapi.yaml against the real server: every (path, method,
status) the file lists is produced by a request here, every answer's status
is one the file lists for its operation, and every JSON body validates
against the schema the file gives for it (a subset of JSON Schema: type,
with "null" in type lists, enum, required, properties, items, allOf, $ref).
A route the server answers that the file does not list fails too."""
import os
import sys
import threading

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
SPEC = yaml.safe_load(open(os.path.join(h.SRC, "console", "openapi.yaml")))


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        cur = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            cur = cur[part]
        node = cur
    return node


TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(value, schema, where):
    """Returns a list of problems (empty: valid)."""
    schema = deref(schema)
    out = []
    for sub in schema.get("allOf", []):
        out += validate(value, sub, where)
    t = schema.get("type")
    if t is not None:
        ts = t if isinstance(t, list) else [t]
        ok = False
        for one in ts:
            if one == "integer":
                ok |= isinstance(value, int) and not isinstance(value, bool)
            elif one == "number":
                ok |= isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok |= isinstance(value, TYPES[one]) and not (one != "boolean" and isinstance(value, bool))
        if not ok:
            return out + ["%s: %r is not %s" % (where, value, t)]
    if "enum" in schema and value not in schema["enum"]:
        out.append("%s: %r not in %s" % (where, value, schema["enum"]))
    if isinstance(value, dict):
        for k in schema.get("required", []):
            if k not in value:
                out.append("%s: %s missing" % (where, k))
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                out += validate(value[k], sub, where + "." + k)
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value[:50]):
            out += validate(v, schema["items"], "%s[%d]" % (where, i))
    return out


expected = set()
for path, ops in SPEC["paths"].items():
    for method, op in ops.items():
        for status in op["responses"]:
            expected.add((path, method.upper(), int(status)))
covered = set()


def call(template, method, path=None, **kw):
    st, hd, body = E.request(method, path or template, **kw)
    op = SPEC["paths"].get(template, {}).get(method.lower())
    if not C.check(op is not None, "%s %s is in openapi.yaml" % (method, template)):
        return st, body
    resp = op["responses"].get(str(st))
    if not C.check(resp is not None, "%s %s answered %d, which openapi.yaml does not list" % (method, template, st)):
        return st, body
    resp = deref(resp)
    covered.add((template, method, st))
    content = resp.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if "text/csv" in content:
        C.check(hd.get("content-type", "").startswith("text/csv") and isinstance(body, str)
                and body.startswith('"event_id"'), "%s %s %d is CSV" % (method, template, st))
    elif schema is not None:
        probs = validate(body, schema, "%s %s %d" % (method, template, st))
        C.check(not probs, "body matches the schema: %s" % probs[:5])
    else:
        C.check(body is None, "%s %s %d has no body, as listed" % (method, template, st))
    for name in resp.get("headers", {}):
        C.check(name.lower() in hd, "%s %s %d carries %s" % (method, template, st, name))
    return st, body


def stream_call(template, cookie):
    """GET of a text/event-stream path: the status, the content type and
    the stream's first bytes (it never ends on its own), then close."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", E.port, timeout=10)
    c.request("GET", template, headers={"Cookie": "__Host-vigil_session=" + cookie})
    r = c.getresponse()
    first = r.readline() if r.status == 200 else b""
    c.close()
    op = SPEC["paths"].get(template, {}).get("get")
    listed = op is not None and "text/event-stream" in op["responses"].get(str(r.status), {}).get("content", {})
    if C.check(listed and r.getheader("Content-Type", "").startswith("text/event-stream")
               and first.startswith((b"retry:", b":", b"event:")),
               "GET %s %d is an event stream, as listed (%s, %r)" % (template, r.status,
                                                                   r.getheader("Content-Type"), first)):
        covered.add((template, "GET", r.status))


E = cl.Env("openapi")
E.seed()
E.start(threads=16, pg_connections=2, extra_env={"VIGIL_CONSOLE_MAX_IN_FLIGHT": "1",
                                                 "VIGIL_CONSOLE_SLOT_WAIT_MS": "100",
                                                 "VIGIL_SMTP_URL": h.env("VIGIL_SMTP_URL"),
                                                 "VIGIL_SMTP_TLS": "off"})
E.alert("a1", "S1")
E.alert("a2", "S1")
E.alert("a3", "S2")
E.observation("o1", "S1", "SUBJ-1")
S, A, T = "/api/v1/session", "/api/v1/alerts", "/api/v1/alerts/{id}"
ACK, RES, TL = "/api/v1/alerts/{id}/ack", "/api/v1/alerts/{id}/resolve", "/api/v1/subjects/{study}/{subject}/timeline"

# sign-in
call(S, "POST", body={"email": "responder@example.org", "password": cl.PASSWORD})
cookie, csrf, _ = E.signin("responder")
vcookie, vcsrf, _ = E.signin("viewer")
call(S, "POST", body="{")
call(S, "POST", body={"email": "viewer@example.org", "password": "wrong wrong wrong"})
for i in range(5):  # five wrong passwords, each after the backoff of the one before
    h.wait_until(lambda: E.request("POST", S, {"email": "none@example.org", "password": "wrong"})[0] != 429,
                 10, "backoff")
call(S, "POST", body={"email": "none@example.org", "password": cl.PASSWORD})
call(S, "GET", cookie=cookie)
call(S, "GET")
call(S, "DELETE", cookie=cookie)
call(S, "DELETE")
# alerts
call(A, "GET", path=A + "?limit=1", cookie=cookie)
call(A, "GET", path=A + "?limit=0", cookie=cookie)
call(A, "GET")
SSE = "/api/v1/alerts/stream"
stream_call(SSE, cookie)
call(SSE, "GET")
call(T, "GET", path=A + "/a1", cookie=cookie)
call(T, "GET", path=A + "/a3", cookie=cookie)
call(T, "GET", path=A + "/a1")
call(ACK, "POST", path=A + "/a1/ack", body={"note": "seen"}, cookie=cookie, csrf=csrf)
call(ACK, "POST", path=A + "/a1/ack", body="{", cookie=cookie, csrf=csrf)
call(ACK, "POST", path=A + "/a1/ack")
call(ACK, "POST", path=A + "/a1/ack", cookie=vcookie, csrf=vcsrf)
call(ACK, "POST", path=A + "/a3/ack", cookie=cookie, csrf=csrf)
call(RES, "POST", path=A + "/a1/resolve", body={"category": "nope_category"}, cookie=cookie, csrf=csrf)
call(RES, "POST", path=A + "/a1/resolve", body={"category": "lab_error", "note": "x"}, cookie=cookie, csrf=csrf)
call(RES, "POST", path=A + "/a1/resolve", body={"category": "lab_error"}, cookie=cookie, csrf=csrf)
call(ACK, "POST", path=A + "/a1/ack", cookie=cookie, csrf=csrf)
call(RES, "POST", path=A + "/a2/resolve", body={}, cookie=cookie, csrf=csrf)
call(RES, "POST", path=A + "/a2/resolve")
call(RES, "POST", path=A + "/a2/resolve", body={"category": "lab_error"}, cookie=vcookie, csrf=vcsrf)
call(RES, "POST", path=A + "/a3/resolve", body={"category": "lab_error"}, cookie=cookie, csrf=csrf)
call(TL, "GET", path="/api/v1/subjects/S1/SUBJ-1/timeline", cookie=cookie)
call(TL, "GET", path="/api/v1/subjects/S1/SUBJ-1/timeline?since=yesterday", cookie=cookie)
call(TL, "GET", path="/api/v1/subjects/S2/SUBJ-1/timeline", cookie=cookie)
call(TL, "GET", path="/api/v1/subjects/S1/SUBJ-1/timeline")
AU = "/api/v1/studies/{study}/audit.csv"
E.users("grant", "--researcher", "study_admin", "--role", "study_admin", "--study", "S1")
acookie, acsrf, _ = E.signin("study_admin")
call(AU, "GET", path="/api/v1/studies/S1/audit.csv", cookie=acookie)
call(AU, "GET", path="/api/v1/studies/S1/audit.csv?since=x", cookie=acookie)
call(AU, "GET", path="/api/v1/studies/S1/audit.csv")
call(AU, "GET", path="/api/v1/studies/S1/audit.csv", cookie=cookie)
call(AU, "GET", path="/api/v1/studies/S2/audit.csv", cookie=acookie)
SB = "/api/v1/subscriptions"
good = {"study_id": "S1", "site_id": "SITE-1", "min_severity": "warning", "channels": ["email"]}
call(SB, "PUT", body=good, cookie=cookie, csrf=csrf)
call(SB, "PUT", body=dict(good, channels=["pigeon"]), cookie=cookie, csrf=csrf)
call(SB, "PUT", body=good)
call(SB, "PUT", body=good, cookie=cookie)
call(SB, "PUT", body=dict(good, study_id="S2"), cookie=cookie, csrf=csrf)
call(SB, "PUT", body=dict(good, site_id="NOPE"), cookie=cookie, csrf=csrf)
call(SB, "PUT", body={"quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Paris"}},
     cookie=cookie, csrf=csrf)
call(SB, "PUT", body=dict(good, quiet_hours={"start": "22:00", "end": "07:00", "time_zone": "Mars/Olympus"}),
     cookie=cookie, csrf=csrf)
call(SB, "PUT", body=dict(good, quiet_hours=None), cookie=cookie, csrf=csrf)
call(SB, "GET", cookie=cookie)
call(SB, "GET")
call(SB, "DELETE", path=SB + "?study=S1&site=SITE-1", cookie=cookie, csrf=csrf)
call(SB, "DELETE", path=SB + "?study=S1&site=SITE-1", cookie=cookie, csrf=csrf)
call(SB, "DELETE", path=SB, cookie=cookie, csrf=csrf)
call(SB, "DELETE", path=SB + "?study=S1")
call(SB, "DELETE", path=SB + "?study=S1", cookie=cookie)
PR, PC = "/api/v1/password-reset", "/api/v1/password-reset/confirm"
call(PR, "POST", body={"email": "nobody@example.org"})
call(PR, "POST", body="{")
tokr = "B" * 43
E.sql("INSERT INTO console_password_resets (token_hash, researcher_id, expires_at) "
      "VALUES (encode(sha256(%s::bytea), 'hex'), 'study_admin', now() + interval '10 minutes')", tokr)
call(PC, "POST", body={"token": tokr, "password": "short"})
call(PC, "POST", body={"token": "C" * 43, "password": cl.PASSWORD + "?"})
call(PC, "POST", body={"token": tokr, "password": cl.PASSWORD + "?"})
# the reset above set study_admin's password anew and ended its sessions
acookie, acsrf, _ = E.signin("study_admin", password=cl.PASSWORD + "?")
ST, STS, STR, GR = ("/api/v1/studies/{study}/sites", "/api/v1/studies/{study}/sites/{site}",
                    "/api/v1/studies/{study}/researchers", "/api/v1/studies/{study}/grants/{researcher}")
call(ST, "GET", path="/api/v1/studies/S1/sites", cookie=cookie)
call(ST, "GET", path="/api/v1/studies/S1/sites")
call(ST, "GET", path="/api/v1/studies/S2/sites", cookie=cookie)
call(STS, "PUT", path="/api/v1/studies/S1/sites/SITE-9", body={"name": "Nine"}, cookie=acookie, csrf=acsrf)
call(STS, "PUT", path="/api/v1/studies/S1/sites/SITE-9", body={"name": ""}, cookie=acookie, csrf=acsrf)
call(STS, "PUT", path="/api/v1/studies/S1/sites/SITE-9", body={"name": "Nine"})
call(STS, "PUT", path="/api/v1/studies/S1/sites/SITE-9", body={"name": "Nine"}, cookie=cookie, csrf=csrf)
call(STS, "PUT", path="/api/v1/studies/S2/sites/SITE-9", body={"name": "Nine"}, cookie=acookie, csrf=acsrf)
call(STR, "GET", path="/api/v1/studies/S1/researchers", cookie=acookie)
call(STR, "GET", path="/api/v1/studies/S1/researchers")
call(STR, "GET", path="/api/v1/studies/S1/researchers", cookie=cookie)
call(STR, "GET", path="/api/v1/studies/S2/researchers", cookie=acookie)
call(GR, "PUT", path="/api/v1/studies/S1/grants/none", body={"role": "viewer"}, cookie=acookie, csrf=acsrf)
call(GR, "PUT", path="/api/v1/studies/S1/grants/none", body={"role": "admin"}, cookie=acookie, csrf=acsrf)
call(GR, "PUT", path="/api/v1/studies/S1/grants/none", body={"role": "viewer"})
call(GR, "PUT", path="/api/v1/studies/S1/grants/none", body={"role": "viewer"}, cookie=cookie, csrf=csrf)
call(GR, "PUT", path="/api/v1/studies/S2/grants/none", body={"role": "viewer"}, cookie=acookie, csrf=acsrf)
call(GR, "PUT", path="/api/v1/studies/S1/grants/nobody-such", body={"role": "viewer"}, cookie=acookie, csrf=acsrf)
call(GR, "DELETE", path="/api/v1/studies/S1/grants/none", cookie=acookie, csrf=acsrf)
call(GR, "DELETE", path="/api/v1/studies/S1/grants/none", cookie=acookie, csrf=acsrf)
call(GR, "DELETE", path="/api/v1/studies/S1/grants/none")
call(GR, "DELETE", path="/api/v1/studies/S1/grants/none", cookie=cookie, csrf=csrf)
MC, SC = "/api/v1/me/contact", "/api/v1/studies/{study}/researchers/{researcher}/contact"
call(MC, "GET", cookie=cookie)
call(MC, "GET")
call(MC, "PUT", body={"email": "viewer@example.org", "phone": "+447700900123"}, cookie=cookie, csrf=csrf)
call(MC, "PUT", body={"email": "viewer@example.org", "phone": "07700 900123"}, cookie=cookie, csrf=csrf)
call(MC, "PUT", body={"email": "viewer@example.org"})
call(MC, "PUT", body={"email": "viewer@example.org"}, cookie=cookie)
call(SC, "GET", path="/api/v1/studies/S1/researchers/viewer/contact", cookie=acookie)
call(SC, "GET", path="/api/v1/studies/S1/researchers/viewer/contact")
call(SC, "GET", path="/api/v1/studies/S1/researchers/viewer/contact", cookie=cookie)
call(SC, "GET", path="/api/v1/studies/S1/researchers/none/contact", cookie=acookie)
call(SC, "PUT", path="/api/v1/studies/S1/researchers/viewer/contact", body={"email": "v@example.org"},
     cookie=acookie, csrf=acsrf)
call(SC, "PUT", path="/api/v1/studies/S1/researchers/viewer/contact", body={"email": "no at sign"},
     cookie=acookie, csrf=acsrf)
call(SC, "PUT", path="/api/v1/studies/S1/researchers/viewer/contact", body={"email": "v@example.org"})
call(SC, "PUT", path="/api/v1/studies/S1/researchers/viewer/contact", body={"email": "v@example.org"},
     cookie=cookie, csrf=csrf)
call(SC, "PUT", path="/api/v1/studies/S2/researchers/viewer/contact", body={"email": "v@example.org"},
     cookie=acookie, csrf=acsrf)
PO = "/api/v1/studies/{study}/policies"
pol = {"study": "S1", "severity": "critical", "repeat_last": "15m",
       "tiers": [{"targets": ["subscribers"], "channels": ["subscribed"], "ack_deadline": "15m"},
                 {"targets": ["researcher:responder"], "channels": ["email"], "ack_deadline": "10m"}]}
call(PO, "GET", path="/api/v1/studies/S1/policies", cookie=cookie)
call(PO, "GET", path="/api/v1/studies/S1/policies")
call(PO, "GET", path="/api/v1/studies/S2/policies", cookie=cookie)
call(PO, "PUT", path="/api/v1/studies/S1/policies", body=pol, cookie=acookie, csrf=acsrf)
call(PO, "PUT", path="/api/v1/studies/S1/policies", body=dict(pol, tiers=[]), cookie=acookie, csrf=acsrf)
call(PO, "PUT", path="/api/v1/studies/S1/policies",
     body=dict(pol, tiers=[{"targets": ["role:medical_monitor"], "channels": ["email"],
                            "ack_deadline": "15m"}]), cookie=acookie, csrf=acsrf)
call(PO, "PUT", path="/api/v1/studies/S1/policies", body=pol)
call(PO, "PUT", path="/api/v1/studies/S1/policies", body=pol, cookie=cookie, csrf=csrf)
call(PO, "PUT", path="/api/v1/studies/S2/policies", body=dict(pol, study="S2"), cookie=acookie, csrf=acsrf)
call(PO, "DELETE", path="/api/v1/studies/S1/policies?severity=critical", cookie=acookie, csrf=acsrf)
call(PO, "DELETE", path="/api/v1/studies/S1/policies?severity=critical", cookie=acookie, csrf=acsrf)
call(PO, "DELETE", path="/api/v1/studies/S1/policies?severity=loud", cookie=acookie, csrf=acsrf)
call(PO, "DELETE", path="/api/v1/studies/S1/policies?severity=critical")
call(PO, "DELETE", path="/api/v1/studies/S1/policies?severity=critical", cookie=cookie, csrf=csrf)
# a body not declared JSON: 415 wherever a body is taken
for tmpl, method, path in [(S, "POST", S), (ACK, "POST", A + "/a2/ack"), (RES, "POST", A + "/a2/resolve"),
                           (SB, "PUT", SB), (PR, "POST", PR), (PC, "POST", PC),
                           (STS, "PUT", "/api/v1/studies/S1/sites/SITE-9"),
                           (GR, "PUT", "/api/v1/studies/S1/grants/none"),
                           (PO, "PUT", "/api/v1/studies/S1/policies"), (MC, "PUT", MC),
                           (SC, "PUT", "/api/v1/studies/S1/researchers/viewer/contact")]:
    call(tmpl, method, path=path, body='{"a": 1}', cookie=cookie, csrf=csrf,
         headers={"Content-Type": "text/plain"})
# sign out last (needs the CSRF token)
call(S, "DELETE", cookie=cookie, csrf=csrf)

# 503: the one slot held by a request stalled in PostgreSQL
tok = E.users("token", "--researcher", "responder", "--study", "S1",
              "--role", "responder").stdout.strip()
import psycopg2  # noqa: E402
lk = psycopg2.connect(E.conninfo)
lk.cursor().execute("BEGIN; LOCK TABLE console_sessions IN ACCESS EXCLUSIVE MODE")
holder = threading.Thread(target=lambda: E.request("GET", S, cookie=vcookie, timeout=30))
holder.start()
h.wait_until(lambda: "vigil_console_in_flight 1" in E.request("GET", "/metrics")[2], 10, "slot held")
for tmpl, method, path, body in [(S, "POST", S, {"email": "x@y", "password": "p"}), (S, "GET", S, None),
                                 (S, "DELETE", S, None), (A, "GET", A, None), (T, "GET", A + "/a2", None),
                                 (SSE, "GET", SSE, None),
                                 (ACK, "POST", A + "/a2/ack", {}), (RES, "POST", A + "/a2/resolve", {"category": "other"}),
                                 (TL, "GET", "/api/v1/subjects/S1/SUBJ-1/timeline", None),
                                 (AU, "GET", "/api/v1/studies/S1/audit.csv", None),
                                 (SB, "GET", SB, None), (SB, "PUT", SB, good),
                                 (SB, "DELETE", SB + "?study=S1", None),
                                 (PR, "POST", PR, {"email": "x@y"}),
                                 (PC, "POST", PC, {"token": "D" * 43, "password": cl.PASSWORD}),
                                 (ST, "GET", "/api/v1/studies/S1/sites", None),
                                 (STS, "PUT", "/api/v1/studies/S1/sites/X", {"name": "x"}),
                                 (STR, "GET", "/api/v1/studies/S1/researchers", None),
                                 (GR, "PUT", "/api/v1/studies/S1/grants/none", {"role": "viewer"}),
                                 (GR, "DELETE", "/api/v1/studies/S1/grants/none", None),
                                 (PO, "GET", "/api/v1/studies/S1/policies", None),
                                 (PO, "PUT", "/api/v1/studies/S1/policies", pol),
                                 (PO, "DELETE", "/api/v1/studies/S1/policies?severity=critical", None),
                                 (MC, "GET", MC, None), (MC, "PUT", MC, {"email": "x@y"}),
                                 (SC, "GET", "/api/v1/studies/S1/researchers/viewer/contact", None),
                                 (SC, "PUT", "/api/v1/studies/S1/researchers/viewer/contact", {"email": "x@y"})]:
    call(tmpl, method, path=path, body=body, token=tok)
lk.rollback()
lk.close()
holder.join()

missing = sorted(expected - covered)
C.check(not missing, "every (path, method, status) in openapi.yaml was produced: missing %s" % missing)
print("openapi: %d (path, method, status) listed, %d produced" % (len(expected), len(covered & expected)), flush=True)
C.done()
