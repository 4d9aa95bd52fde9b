"""The console's JSON API against the real PostgreSQL and a real `vigil
console`: the role matrix (every study-scoped endpoint x every kind of
caller x own study / other study), CSRF, sessions (another user's, expired,
idle, signed out, fixation), backoff and lockout, disabled accounts, API
tokens and their caps, bad input (SQL metacharacters, over-long and
malformed values: 4xx, never 5xx), markup returned as inert JSON strings,
and keyset pagination."""
import http.client
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("api")
E.seed()
E.start()

# ---- callers ---------------------------------------------------------------
callers = {}
for rid in cl.ROLES:
    cookie, csrf, _ = E.signin(rid)
    callers[rid] = {"cookie": cookie, "csrf": csrf}
callers["anonymous"] = {}
# An API token of the responder, scoped to S1 as responder: may ack S1.
tok = E.users("token", "--researcher", "responder", "--study", "S1", "--role", "responder").stdout.strip()
C.check(tok.startswith("vgt_"), "vigil users token prints a vgt_ token")
callers["token_responder"] = {"token": tok}
# The study admin's token capped at viewer: may read S1, may not change it.
tok2 = E.users("token", "--researcher", "study_admin", "--study", "S1", "--role", "viewer").stdout.strip()
callers["token_viewer_cap"] = {"token": tok2}

RANK = {"viewer": 1, "responder": 2, "study_admin": 3, "admin": 3, "none": 0, "anonymous": -1,
        "token_responder": 2, "token_viewer_cap": 1}
STUDY_OF = {"admin": None}  # None: every study


def sees(caller, study):
    if caller == "admin":
        return True
    return RANK[caller] >= 1 and study == "S1"


def lifecycle(aid):
    r = E.sql("SELECT state FROM alert_lifecycle WHERE alert_id = %s", aid)
    return r[0][0] if r else None


def events(aid):
    return [k for (k,) in E.sql("SELECT kind FROM alert_events WHERE alert_id = %s ORDER BY event_id", aid)]


E.observation("obs-1", "S1", "SUBJ-1", value=6.8)
E.observation("obs-2", "S2", "SUBJ-2", value=6.9)
E.alert("seen-S1", "S1")
E.alert("seen-S2", "S2", subject="SUBJ-2")
# a member of each study whose contact a study-admin may read and change:
# in S1 by a grant, in S2 by a subscription (the study's people list)
E.sql("INSERT INTO researchers (researcher_id, name, email, phone) VALUES "
      "('member-S1', %s, 'm1@example.org', '+15550000001'), "
      "('member-S2', %s, 'm2@example.org', '+15550000002')", cl.MARKUP, cl.MARKUP)
E.sql("INSERT INTO console_grants (researcher_id, study_id, role) VALUES ('member-S1', 'S1', 'viewer')")
E.sql("INSERT INTO subscriptions (researcher_id, study_id) VALUES ('member-S2', 'S2')")

cells = 0
for caller, study in itertools.product(sorted(callers), ["S1", "S2"]):
    a = callers[caller]
    kw = dict(cookie=a.get("cookie"), token=a.get("token"))
    what = "%s/%s" % (caller, "own" if study == "S1" else "other")
    subject = "SUBJ-1" if study == "S1" else "SUBJ-2"
    visible = sees(caller, study)
    anon = caller == "anonymous"

    # list, filtered by study: never a row of a study the caller may not see
    st, _, b = E.request("GET", "/api/v1/alerts?study=%s" % study, **kw)
    cells += 1
    if anon:
        C.check(st == 401, "%s list: 401 (got %d)" % (what, st))
    else:
        ids = [x["alert_id"] for x in b["alerts"]] if st == 200 else None
        C.check(st == 200 and (("seen-" + study) in ids) == visible and
                all(x["study_id"] == study for x in b["alerts"]),
                "%s list: 200, own study's rows only (got %d %s)" % (what, st, ids))
    # the unfiltered list: the caller's studies only (read first, then the
    # page filtered by them: console/api.c), nothing for a caller without one
    if study == "S1" and not anon:
        st, _, b = E.request("GET", "/api/v1/alerts?limit=200", **kw)
        rows = b["alerts"] if st == 200 else None
        C.check(rows is not None and all(sees(caller, x["study_id"]) for x in rows) and
                (len(rows) > 0) == (RANK[caller] >= 1),
                "%s unfiltered list: only the caller's studies (got %d, %s)" %
                (caller, st, sorted({x["study_id"] for x in rows or []})))
    # detail
    st, _, b = E.request("GET", "/api/v1/alerts/seen-%s" % study, **kw)
    cells += 1
    exp = 401 if anon else (200 if visible else 404)
    C.check(st == exp, "%s detail: %d (got %d)" % (what, exp, st))
    # timeline
    st, _, b = E.request("GET", "/api/v1/subjects/%s/%s/timeline" % (study, subject), **kw)
    cells += 1
    C.check(st == exp, "%s timeline: %d (got %d)" % (what, exp, st))
    if st == 200:
        C.check(len(b["analytes"]) == 1 and b["analytes"][0]["points"][0]["observation_id"] ==
                ("obs-1" if study == "S1" else "obs-2") and len(b["alerts"]) >= 1 and
                all(x["subject_id"] == subject for x in b["alerts"]), "%s timeline has its rows" % what)
    # the audit export: study-admins (and the global admin) only
    st, hd, b = E.request("GET", "/api/v1/studies/%s/audit.csv" % study, **kw)
    cells += 1
    exp = 401 if anon else (200 if visible and RANK[caller] >= 3 else (403 if visible else 404))
    C.check(st == exp, "%s audit export: %d (got %d)" % (what, exp, st))
    if st == 200:
        C.check(hd["content-type"].startswith("text/csv") and b.startswith('"event_id","recorded_at"')
                and ('"seen-%s"' % study) in b and ("seen-" + ("S2" if study == "S1" else "S1")) not in b,
                "%s audit export: CSV of this study's events only" % what)
    # study administration: a site and a grant (study-admins and the admin)
    may_admin = visible and RANK[caller] >= 3
    site_id = "NEW-%s" % caller
    st, _, _ = E.request("PUT", "/api/v1/studies/%s/sites/%s" % (study, site_id), body={"name": cl.MARKUP},
                         csrf=a.get("csrf"), **kw)
    cells += 1
    exp = 401 if anon else (200 if may_admin else (403 if visible else 404))
    C.check(st == exp, "%s site PUT: %d (got %d)" % (what, exp, st))
    C.check(E.sql("SELECT count(*) FROM sites WHERE site_id = %s AND study_id = %s", site_id, study)[0][0]
            == (1 if may_admin else 0), "%s site PUT: written only when allowed" % what)
    st, _, _ = E.request("PUT", "/api/v1/studies/%s/grants/none" % study, body={"role": "study_admin"},
                         csrf=a.get("csrf"), **kw)
    cells += 1
    C.check(st == exp, "%s grant PUT: %d (got %d)" % (what, exp, st))
    got = E.sql("SELECT role FROM console_grants WHERE researcher_id = 'none' AND study_id = %s", study)
    C.check(bool(got) == may_admin, "%s grant PUT: written only when allowed (%s)" % (what, got))
    E.sql("DELETE FROM console_grants WHERE researcher_id = 'none'")
    # a member's contact: read and changed by study-admins of that study only
    member = "member-" + study
    path = "/api/v1/studies/%s/researchers/%s/contact" % (study, member)
    st, _, b = E.request("GET", path, **kw)
    cells += 1
    C.check(st == exp and (st != 200 or b["phone"] == E.sql(
        "SELECT phone FROM researchers WHERE researcher_id = %s", member)[0][0]),
        "%s member contact GET: %d (got %d)" % (what, exp, st))
    if st != 200:
        C.check("phone" not in (b or {}) and "+1555" not in str(b),
                "%s member contact GET refused: no phone in the answer" % what)
    phone = "+1555%07d" % (cells * 10 + RANK[caller] + 5)
    st, _, b = E.request("PUT", path, body={"email": "%s@example.org" % member, "phone": phone},
                         csrf=a.get("csrf"), **kw)
    cells += 1
    C.check(st == exp, "%s member contact PUT: %d (got %d %s)" % (what, exp, st, b))
    C.check((E.sql("SELECT phone FROM researchers WHERE researcher_id = %s", member)[0][0] == phone)
            == may_admin, "%s member contact PUT: written only when allowed" % what)
    # ack and resolve: a fresh alert each, and the database says what changed
    for action in ("ack", "resolve"):
        aid = "m-%s-%s-%s" % (action, caller, study)
        E.alert(aid, study, subject=subject)
        body = {"category": "lab_error", "note": cl.MARKUP} if action == "resolve" else {"note": "seen"}
        st, _, b = E.request("POST", "/api/v1/alerts/%s/%s" % (aid, action), body=body,
                             csrf=a.get("csrf"), **kw)
        cells += 1
        may = visible and (RANK[caller] >= 2)
        exp = 401 if anon else (200 if may else (403 if visible else 404))
        C.check(st == exp, "%s %s: %d (got %d %s)" % (what, action, exp, st, b))
        want_state = ("acknowledged" if action == "ack" else "resolved") if may else "open"
        C.check(lifecycle(aid) == want_state,
                "%s %s: state %s (got %s)" % (what, action, want_state, lifecycle(aid)))
        if not may:
            C.check(events(aid) == ["opened"], "%s %s refused: no audit event but 'opened' (got %s)"
                    % (what, action, events(aid)))
print("role matrix: %d callers x 2 studies x 10 endpoints = %d cells" % (len(callers), cells), flush=True)
C.check(cells == len(callers) * 2 * 10, "matrix size")
# the self-service rows (no study in the path): every caller gets their own
# researcher's contact and quiet hours, and nobody else's; anonymous 401
OWNER = {"token_responder": "responder", "token_viewer_cap": "study_admin"}
for caller, a in sorted(callers.items()):
    kw = dict(cookie=a.get("cookie"), token=a.get("token"))
    me = OWNER.get(caller, caller)
    st, _, b = E.request("GET", "/api/v1/me/contact", **kw)
    st2, _, b2 = E.request("GET", "/api/v1/subscriptions", **kw)
    if caller == "anonymous":
        C.check(st == 401 and st2 == 401, "anonymous: /me/contact and /subscriptions 401 (%d %d)" % (st, st2))
    else:
        C.check(st == 200 and b["researcher_id"] == me and b["email"] == "%s@example.org" % me,
                "%s: GET /me/contact is %s's own (got %d %s)" % (caller, me, st, b))
        C.check(st2 == 200 and "quiet_hours" in b2, "%s: GET /subscriptions carries quiet_hours" % caller)

# ---- study administration: what a study-admin may and may not do ---------------
sa = callers["study_admin"]
st, _, b = E.request("GET", "/api/v1/studies/S1/researchers", cookie=sa["cookie"])
C.check(st == 200 and {"viewer", "responder", "study_admin"} <= {x["researcher_id"] for x in b["researchers"]}
        and all(x["name"] == cl.MARKUP for x in b["researchers"]), "a study-admin lists the study's people")
st, _, _ = E.request("PUT", "/api/v1/studies/S1/grants/none", body={"role": "admin"},
                     cookie=sa["cookie"], csrf=sa["csrf"])
C.check(st == 400 and not E.sql("SELECT 1 FROM console_grants WHERE researcher_id = 'none'"),
        "a study-admin cannot grant the global admin role (got %d)" % st)
st, _, _ = E.request("PUT", "/api/v1/studies/S1/grants/nobody-such", body={"role": "viewer"},
                     cookie=sa["cookie"], csrf=sa["csrf"])
C.check(st == 422, "a grant to a researcher not in the directory: 422 (got %d)" % st)
st, _, _ = E.request("PUT", "/api/v1/studies/S1/grants/none", body={"role": "viewer"},
                     cookie=sa["cookie"], csrf=sa["csrf"])
st2, _, _ = E.request("PUT", "/api/v1/studies/S1/grants/none", body={"role": "responder"},
                      cookie=sa["cookie"], csrf=sa["csrf"])
C.check(st == 200 and st2 == 200 and E.sql("SELECT role FROM console_grants WHERE researcher_id = 'none'")
        == [("responder",)], "grant, then change the role: one row")
st, _, _ = E.request("DELETE", "/api/v1/studies/S1/grants/none", cookie=sa["cookie"], csrf=sa["csrf"])
st2, _, _ = E.request("DELETE", "/api/v1/studies/S1/grants/none", cookie=sa["cookie"], csrf=sa["csrf"])
C.check(st == 204 and st2 == 404, "remove a grant, then nothing to remove (got %d %d)" % (st, st2))
st, _, b = E.request("GET", "/api/v1/studies/S1/sites", cookie=callers["viewer"]["cookie"])
C.check(st == 200 and any(x["site_id"] == "SITE-1" for x in b["sites"]), "a viewer lists the study's sites")
C.check(E.request("GET", "/api/v1/studies/S2/sites", cookie=callers["viewer"]["cookie"])[0] == 404,
        "another study's sites: 404")

# ---- escalation policies: every caller, own study and another -----------------------
def policy_rows(study):
    return E.sql("SELECT p.site_id, p.severity, t.tier, t.targets, t.channels, t.ack_deadline_s "
                 "FROM escalation_policies p JOIN escalation_tiers t USING (policy_id) "
                 "WHERE p.study_id = %s ORDER BY p.site_id NULLS FIRST, p.severity, t.tier", study)


POL = {"study": "S1", "severity": "critical", "repeat_last": "15m",
       "tiers": [{"targets": ["subscribers"], "channels": ["subscribed"], "ack_deadline": "15m"},
                 {"targets": ["researcher:responder"], "channels": ["email"], "ack_deadline": "10m"}]}
for caller, how in callers.items():
    for study in ("S1", "S2"):
        body = dict(POL, study=study, tiers=[dict(POL["tiers"][0]),
                                             dict(POL["tiers"][1], ack_deadline="%dm" % (11 + RANK[caller]))])
        before = policy_rows(study)
        st, _, b = E.request("PUT", "/api/v1/studies/%s/policies" % study, body=body, **how)
        allowed = RANK[caller] >= 3 and (caller == "admin" or study == "S1")
        after = policy_rows(study)
        if allowed:
            C.check(st == 200 and b["set"] == 1 and [r[2] for r in after] == [1, 2] and
                    after[1][5] == 60 * (11 + RANK[caller]),
                    "policy PUT by %s on %s: set (%d, %s)" % (caller, study, st, after))
        else:
            C.check(st in (401, 403, 404) and after == before,
                    "policy PUT by %s on %s: refused, nothing changed (%d)" % (caller, study, st))
        st, _, b = E.request("GET", "/api/v1/studies/%s/policies" % study, **how)
        if sees(caller, study):
            C.check(st == 200 and len(b["policies"]) == len({(r[0], r[1]) for r in policy_rows(study)}),
                    "policy GET by %s on %s (%d)" % (caller, study, st))
        else:
            C.check(st in (401, 404), "policy GET by %s on %s: refused (%d)" % (caller, study, st))
ev = E.sql("SELECT actor, detail->>'study_id' FROM alert_events WHERE kind = 'policy_set' "
           "AND actor LIKE 'console:%%' ORDER BY event_id")
C.check(("console:study_admin", "S1") in ev and ("console:admin", "S2") in ev,
        "a policy set through the console is audited with its researcher: %s" % ev)
# DELETE: every caller, own study and another (the study-wide warning policy, set first by the admin)
def policies_of(study):
    return E.sql("SELECT site_id, severity, digest FROM escalation_policies WHERE study_id = %s "
                 "ORDER BY site_id NULLS FIRST, severity", study)


WPOL = {"study": "S1", "severity": "warning", "digest": True}
for caller, how in callers.items():
    for study in ("S1", "S2"):
        st0, _, _ = E.request("PUT", "/api/v1/studies/%s/policies" % study, body=dict(WPOL, study=study),
                              cookie=callers["admin"]["cookie"], csrf=callers["admin"]["csrf"])
        before = policies_of(study)
        st, _, b = E.request("DELETE", "/api/v1/studies/%s/policies?severity=warning" % study, **how)
        allowed = RANK[caller] >= 3 and (caller == "admin" or study == "S1")
        after = policies_of(study)
        gone = [r for r in before if not (r[0] is None and r[1] == "warning")]
        if allowed:
            C.check(st0 == 200 and st == 204 and after == gone and len(before) == len(after) + 1,
                    "policy DELETE by %s on %s: removed (%d)" % (caller, study, st))
        else:
            C.check(st in (401, 403, 404) and after == before,
                    "policy DELETE by %s on %s: refused, nothing changed (%d)" % (caller, study, st))
E.request("DELETE", "/api/v1/studies/S1/policies?severity=warning", cookie=sa["cookie"], csrf=sa["csrf"])
st, _, _ = E.request("DELETE", "/api/v1/studies/S1/policies?severity=warning", cookie=sa["cookie"],
                     csrf=sa["csrf"])
C.check(st == 404, "removing a policy the study does not have: 404 (%d)" % st)
ev = E.sql("SELECT actor, detail->>'site_id', detail->>'severity', detail->>'digest' FROM alert_events "
           "WHERE kind = 'policy_removed' AND detail->>'study_id' = 'S1' ORDER BY event_id")
C.check(("console:study_admin", None, "warning", "true") in ev,
        "a removed policy is audited with the policy as it was: %s" % ev)
st, _, _ = E.request("DELETE", "/api/v1/studies/S1/policies?severity=critical&site=%3Cb%3E'--",
                     cookie=sa["cookie"], csrf=sa["csrf"])
C.check(st == 404, "a site id with markup and quotes is only a parameter: no such policy, 404 (%d)" % st)
for q in ("", "?severity=loud", "?severity=warning&colour=red", "?severity=warning&site=%01"):
    before = policies_of("S1")
    st, _, _ = E.request("DELETE", "/api/v1/studies/S1/policies" + q, cookie=sa["cookie"], csrf=sa["csrf"])
    C.check(st == 400 and policies_of("S1") == before, "policy DELETE%s: 400, nothing changed (%d)" % (q, st))
st, _, _ = E.request("DELETE", "/api/v1/studies/S1/policies?severity=critical", cookie=sa["cookie"])
C.check(st == 403 and any(r[1] == "critical" for r in policies_of("S1")),
        "policy DELETE without the CSRF token: 403 (%d)" % st)

before = policy_rows("S1")
for bad, want in ((dict(POL, tiers=[]), 400),
                  (dict(POL, tiers=[{"targets": ["role:medical_monitor"], "channels": ["email"],
                                     "ack_deadline": "15m"}]), 422),
                  (dict(POL, study="S2"), 400),
                  (dict(POL, tiers=[dict(POL["tiers"][0], ack_deadline="5s")]), 400)):
    st, _, b = E.request("PUT", "/api/v1/studies/S1/policies", body=bad,
                         cookie=sa["cookie"], csrf=sa["csrf"])
    C.check(st == want and policy_rows("S1") == before and b.get("message"),
            "an invalid policy: %d with the problem (%s), nothing changed" % (st, b.get("message")))

# ---- CSRF ----------------------------------------------------------------------
r = callers["responder"]
E.alert("csrf-1", "S1")
for label, csrf in [("missing", None), ("wrong", "x" * 43), ("another user's", callers["study_admin"]["csrf"]),
                    ("malformed", "<script>")]:
    st, _, _ = E.request("POST", "/api/v1/alerts/csrf-1/ack", body={}, cookie=r["cookie"], csrf=csrf)
    C.check(st == 403 and lifecycle("csrf-1") == "open", "CSRF %s: 403 and nothing changed (got %d)" % (label, st))
# another user's session with my CSRF token: the token belongs to a session
st, _, _ = E.request("POST", "/api/v1/alerts/csrf-1/ack", body={}, cookie=callers["study_admin"]["cookie"],
                     csrf=r["csrf"])
C.check(st == 403 and lifecycle("csrf-1") == "open", "another session's CSRF token: 403 (got %d)" % st)
st, _, _ = E.request("DELETE", "/api/v1/session", cookie=r["cookie"])
C.check(st == 403, "sign-out without CSRF: 403 (got %d)" % st)

# ---- sessions ---------------------------------------------------------------------
c1, k1, setc = E.signin("viewer")
C.check(all(x in setc for x in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/")) and
        setc.startswith("__Host-vigil_session="), "cookie flags: " + setc)
C.check(E.sql("SELECT count(*) FROM console_sessions WHERE session_hash = %s", c1)[0][0] == 0,
        "the session id is not stored in clear")
# fixation: signing in while presenting a session id replaces it
c2, _, _ = E.signin("viewer")
st, hd, b = E.request("POST", "/api/v1/session", {"email": "viewer@example.org", "password": cl.PASSWORD},
                      cookie=c2)
c3 = hd["set-cookie"].split(";")[0].split("=", 1)[1]
C.check(st == 200 and c3 != c2, "sign-in issues a new session id")
C.check(E.request("GET", "/api/v1/session", cookie=c2)[0] == 401, "the presented session is gone after sign-in")
C.check(E.request("GET", "/api/v1/session", cookie=c3)[0] == 200, "the new session works")
# expired (absolute) and idle
E.sql("UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE researcher_id = 'viewer' "
      "AND session_hash = encode(sha256(%s::bytea), 'hex')", c3)
C.check(E.request("GET", "/api/v1/session", cookie=c3)[0] == 401, "expired session: 401")
E.sql("UPDATE console_sessions SET idle_until = now() - interval '1 second' "
      "WHERE session_hash = encode(sha256(%s::bytea), 'hex')", c1)
C.check(E.request("GET", "/api/v1/session", cookie=c1)[0] == 401, "idle session: 401")
# sliding idle deadline: written only when more than a minute old
c5, _, _ = E.signin("viewer")
H5 = "encode(sha256(%s::bytea), 'hex')"
before = E.sql("SELECT idle_until FROM console_sessions WHERE session_hash = " + H5, c5)[0][0]
E.request("GET", "/api/v1/session", cookie=c5)
C.check(E.sql("SELECT idle_until FROM console_sessions WHERE session_hash = " + H5, c5)[0][0] == before,
        "a fresh session's use writes nothing")
E.sql("UPDATE console_sessions SET idle_until = now() + interval '30 seconds' WHERE session_hash = " + H5, c5)
C.check(E.request("GET", "/api/v1/session", cookie=c5)[0] == 200, "a session close to idle still works")
C.check(E.sql("SELECT idle_until > now() + interval '50 minutes' FROM console_sessions WHERE session_hash = "
              + H5, c5)[0][0], "... and its idle deadline slides forward")
C.check(E.sql("SELECT count(*) FROM console_sessions WHERE researcher_id = 'viewer' "
              "AND (expires_at <= now() OR idle_until <= now())")[0][0] == 0,
        "ended sessions of the account are gone after its next sign-in")
# sign-out
c4, k4, _ = E.signin("viewer")
st, hd, _ = E.request("DELETE", "/api/v1/session", cookie=c4, csrf=k4)
C.check(st == 204 and "Max-Age=0" in hd.get("set-cookie", ""), "sign-out: 204, cookie cleared")
C.check(E.request("GET", "/api/v1/session", cookie=c4)[0] == 401, "signed-out session: 401")
C.check(E.request("GET", "/api/v1/session", cookie="A" * 43)[0] == 401, "made-up session: 401")
C.check(E.request("GET", "/api/v1/session", headers={"X-Forwarded-Email": "admin@example.org"})[0] == 401,
        "an identity header is ignored when no trusted proxy is configured")

# ---- backoff and lockout --------------------------------------------------------
E.alert("lock-1", "S1")


def attempt(pw):
    return E.request("POST", "/api/v1/session", {"email": "responder@example.org", "password": pw})


statuses = []
for i in range(5):
    # wait out a backoff (1 s, 2 s) so each wrong password is really checked
    res = h.wait_until(lambda: (lambda r: r if r[0] != 429 else None)(attempt("wrong password %d" % i)),
                       10, "backoff to pass")
    statuses.append(res[0] if res else None)
C.check(statuses == [401] * 5, "five wrong passwords answered 401 (got %s)" % statuses)
st, hd, _ = attempt(cl.PASSWORD)
C.check(st == 429 and int(hd.get("retry-after", "0")) > 60,
        "after 5 wrong: locked even with the right password, Retry-After %s (got %d)" % (hd.get("retry-after"), st))
C.check(E.sql("SELECT failed_count FROM console_credentials WHERE researcher_id = 'responder'")[0][0] == 5,
        "failures counted in PostgreSQL")
C.check(E.users("reset", "--researcher", "responder", password=cl.PASSWORD + "!").returncode == 0,
        "vigil users reset")
C.check(E.request("GET", "/api/v1/session", cookie=r["cookie"])[0] == 401, "reset ends the sessions")
C.check(attempt(cl.PASSWORD + "!")[0] == 200, "after reset the new password signs in")
C.check(E.users("reset", "--researcher", "responder", password="short").returncode != 0,
        "a too-short password is refused")
r2 = E.users("create", "--researcher", "viewer", "--password-file", "/nonexistent")
C.check(r2.returncode != 0, "users create: unreadable password file fails")
C.check(attempt("x")[0] == 401 and E.request("POST", "/api/v1/session",
        {"email": "nobody@example.org", "password": "whatever"})[0] == 401, "unknown e-mail: 401 as a wrong password")

# ---- disabled accounts and tokens -------------------------------------------------
cd, kd, _ = E.signin("study_admin")
C.check(E.users("disable", "--researcher", "study_admin").returncode == 0, "vigil users disable")
C.check(E.request("GET", "/api/v1/session", cookie=cd)[0] == 401, "disabled: session ends")
C.check(E.request("GET", "/api/v1/alerts", token=tok2)[0] == 401, "disabled: its API tokens stop")
C.check(E.request("POST", "/api/v1/session", {"email": "study_admin@example.org", "password": cl.PASSWORD})[0] == 401,
        "disabled: sign-in refused")
C.check(E.users("enable", "--researcher", "study_admin").returncode == 0, "vigil users enable")
ce, ke, _ = E.signin("study_admin")
C.check(E.request("GET", "/api/v1/alerts/seen-S1", cookie=ce)[0] == 200, "enabled again: signs in and sees S1")
C.check(E.users("revoke", "--researcher", "study_admin", "--study", "S1").returncode == 0, "vigil users revoke")
C.check(E.request("GET", "/api/v1/alerts/seen-S1", cookie=ce)[0] == 404,
        "a revoked grant takes effect on the next request of a live session")
C.check(E.users("revoke", "--researcher", "study_admin", "--study", "S1").returncode == 1,
        "revoking what is not granted fails")
C.check(E.users("grant", "--researcher", "study_admin", "--role", "admin", "--study", "S1").returncode == 2,
        "admin is global: --study refused")
C.check(E.users("create", "--researcher", "nobody-such", password=cl.PASSWORD).returncode == 1,
        "create for a researcher not in the directory fails")
E.sql("UPDATE console_api_tokens SET expires_at = now() - interval '1 second' WHERE researcher_id = 'responder'")
C.check(E.request("GET", "/api/v1/alerts", token=tok)[0] == 401, "expired token: 401")
C.check(E.request("GET", "/api/v1/alerts", token="vgt_" + "A" * 43)[0] == 401, "unknown token: 401")
# a token is scoped to its studies even when its researcher sees more
tok_adm_s1 = E.users("token", "--researcher", "admin", "--study", "S1", "--role", "responder").stdout.strip()
st, _, b = E.request("GET", "/api/v1/alerts?limit=200", token=tok_adm_s1)
C.check(st == 200 and b["alerts"] and all(x["study_id"] == "S1" for x in b["alerts"]),
        "a global admin's token scoped to S1 lists S1 only")
C.check(E.request("GET", "/api/v1/alerts/seen-S2", token=tok_adm_s1)[0] == 404 and
        E.request("GET", "/api/v1/studies/S1/audit.csv", token=tok_adm_s1)[0] == 403,
        "... sees no S2 alert, and its role cap (responder) refuses the audit export")
C.check(E.sql("SELECT count(*) FROM console_api_tokens WHERE token_hash LIKE 'vgt%%'")[0][0] == 0,
        "tokens are stored as digests")

# ---- bad input: 4xx, never 5xx -----------------------------------------------------
adm = callers["admin"]
payloads = ["'", "' OR '1'='1", "1; DROP TABLE alerts; --", "\\", "%00", "%27%22", "a" * 5000,
            "$1", "(SELECT 1)", "\u00e9\u0000", "2026-02-30T00:00:00Z", "-1", "99999999999999999999",
            "NaN", "null", "<script>"]
params = ["study", "site", "severity", "state", "since", "until", "limit", "cursor", "nope"]
bad = []
for p, v in itertools.product(params, payloads):
    from urllib.parse import quote
    st, _, _ = E.request("GET", "/api/v1/alerts?%s=%s" % (p, quote(v, safe="")), cookie=adm["cookie"])
    if not (st in (200, 400, 414, 431) or (st == 200 and p in ("study", "site"))):
        bad.append((p, v[:20], st))
    if st >= 500:
        bad.append((p, v[:20], st))
for v in payloads:
    from urllib.parse import quote
    for path in ["/api/v1/alerts/%s", "/api/v1/subjects/%s/x/timeline", "/api/v1/subjects/S1/%s/timeline",
                 "/api/v1/subjects/S1/SUBJ-1/timeline?since=%s"]:
        st, _, _ = E.request("GET", path % quote(v, safe=""), cookie=adm["cookie"])
        if st >= 500:
            bad.append((path, v[:20], st))
    st, _, _ = E.request("POST", "/api/v1/alerts/seen-S1/resolve", body={"category": v, "note": v},
                         cookie=adm["cookie"], csrf=adm["csrf"])
    if st >= 500:
        bad.append(("resolve", v[:20], st))
for body in ["{", "[]", "\"x\"", "{\"email\": 1, \"password\": 2}", "{\"email\":\"a\",\"email\":\"b\"}",
             "{\"email\":\"x@y\",\"password\":\"" + "p" * 100000 + "\"}", "\x00\x01"]:
    st, _, _ = E.request("POST", "/api/v1/session", body=body)
    if not 400 <= st < 500:
        bad.append(("signin body", body[:20], st))
st, _, _ = E.request("GET", "/api/v1/alerts?limit=201", cookie=adm["cookie"])
C.check(st == 400, "a page size over 200: 400 (got %d)" % st)
st, _, _ = E.request("GET", "/api/v1/alerts", cookie=adm["cookie"], headers={"X-Long": "a" * 20000})
if st >= 500:
    bad.append(("long header", "", st))
C.check(not bad, "bad input answered 4xx (or 200 with nothing found), never 5xx: %s" % bad[:10])
C.check(E.sql("SELECT count(*) FROM alerts")[0][0] > 0, "the alerts table is still there")
C.check(E.request("GET", "/api/v1/nope", cookie=adm["cookie"])[0] == 404, "unknown API path: 404")
C.check(E.request("PUT", "/api/v1/alerts", cookie=adm["cookie"])[0] in (404, 405), "unknown method: 405")

# ---- a cross-site HTML form cannot sign in (login CSRF) or change anything -----
for ct in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
    st, _, _ = E.request("POST", "/api/v1/session", body='{"email":"admin@example.org","password":"%s"}' % cl.PASSWORD,
                         headers={"Content-Type": ct})
    C.check(st == 415, "sign-in with %s: 415 (got %d)" % (ct, st))
E.alert("ct-1", "S1")
st, _, _ = E.request("POST", "/api/v1/alerts/ct-1/ack", body='{"note":"x"}', cookie=adm["cookie"], csrf=adm["csrf"],
                     headers={"Content-Type": "text/plain"})
C.check(st == 415 and E.sql("SELECT state FROM alert_lifecycle WHERE alert_id = 'ct-1'")[0][0] == "open",
        "ack with a text/plain body: 415, nothing changed (got %d)" % st)
st, _, _ = E.request("POST", "/api/v1/alerts/ct-1/ack", cookie=adm["cookie"], csrf=adm["csrf"])
C.check(st == 200, "ack without a body needs no content type (got %d)" % st)

# ---- markup stays data ---------------------------------------------------------------
st, hd, b = E.request("GET", "/api/v1/session", cookie=adm["cookie"])
C.check(b["name"] == cl.MARKUP and hd["content-type"].startswith("application/json") and
        hd.get("x-content-type-options") == "nosniff", "a name with markup comes back as the same JSON string")
st, hd, raw = E.request("GET", "/api/v1/alerts/m-resolve-admin-S1", cookie=adm["cookie"])
C.check(raw["resolution"]["note"] == cl.MARKUP and raw["evidence"][0]["value"] == cl.MARKUP,
        "resolution notes and evidence with markup: the same strings back")
c = http.client.HTTPConnection("127.0.0.1", E.port)
c.request("GET", "/api/v1/alerts/m-resolve-admin-S1", headers={"Cookie": "__Host-vigil_session=" + adm["cookie"]})
text = c.getresponse().read().decode()
C.check("<" not in text and ">" not in text, "no raw angle bracket in the JSON text (\\u003c escapes)")

# ---- subscriptions: self-service, own studies only ---------------------------------
vw = callers["viewer"]
SUB = "/api/v1/subscriptions"
st, _, b = E.request("PUT", SUB, {"study_id": "S1", "site_id": None, "min_severity": "critical",
                                  "channels": ["sms", "email"]}, cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 200 and b == {"study_id": "S1", "site_id": None, "min_severity": "critical",
                            "channels": ["email", "sms"]}, "subscribe to my study, every site (got %d %s)" % (st, b))
st, _, b = E.request("PUT", SUB, {"study_id": "S1", "site_id": None, "min_severity": "warning",
                                  "channels": ["email"]}, cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 200 and b["min_severity"] == "warning", "PUT again replaces it")
C.check(E.sql("SELECT count(*), min(min_severity) FROM subscriptions WHERE researcher_id = 'viewer'")[0] == (1, "warning"),
        "one row, replaced, in PostgreSQL")
st, _, _ = E.request("PUT", SUB, {"study_id": "S2", "site_id": None, "min_severity": "info", "channels": ["email"]},
                     cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 404 and E.sql("SELECT count(*) FROM subscriptions WHERE study_id = 'S2' "
                           "AND researcher_id = 'viewer'")[0][0] == 0,
        "another study: 404, nothing written (got %d)" % st)
st, _, _ = E.request("PUT", SUB, {"study_id": "S1", "site_id": "NO-SUCH-SITE", "min_severity": "info",
                                  "channels": ["email"]}, cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 422, "unknown site: 422 (got %d)" % st)
for bad in [{"study_id": "S1", "min_severity": "info", "channels": ["fax"]},
            {"study_id": "S1", "min_severity": "info", "channels": ["email", "email"]},
            {"study_id": "S1", "min_severity": "loud", "channels": ["email"]},
            {"study_id": "S1", "min_severity": "info", "channels": []},
            {"study_id": "S1'; --", "min_severity": "info", "channels": ["email"]}]:
    st, _, _ = E.request("PUT", SUB, bad, cookie=vw["cookie"], csrf=vw["csrf"])
    C.check(st == 400, "malformed subscription %s: 400 (got %d)" % (bad, st))
st, _, _ = E.request("PUT", SUB, {"study_id": "S1", "min_severity": "info", "channels": ["email"]},
                     cookie=vw["cookie"])
C.check(st == 403, "subscription change without CSRF: 403 (got %d)" % st)
st, _, b = E.request("GET", SUB, cookie=vw["cookie"])
C.check(st == 200 and [x["study_id"] for x in b["subscriptions"]] == ["S1"], "GET lists mine (got %s)" % b)
st, _, _ = E.request("DELETE", SUB + "?study=S1", cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 204 and E.sql("SELECT count(*) FROM subscriptions WHERE researcher_id = 'viewer'")[0][0] == 0,
        "DELETE removes it (got %d)" % st)
st, _, _ = E.request("DELETE", SUB + "?study=S1", cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 404, "DELETE of nothing: 404")

# ---- quiet hours: the researcher's, carried by the subscriptions API -------------------
QH = {"start": "22:30", "end": "06:45", "time_zone": "Europe/Paris"}
st, _, b = E.request("PUT", SUB, {"quiet_hours": QH}, cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 200 and b["quiet_hours"]["start"] == "22:30:00" and b["quiet_hours"]["end"] == "06:45:00"
        and b["quiet_hours"]["time_zone"] == "Europe/Paris" and "quiet_until" in b["quiet_hours"],
        "quiet hours set alone, crossing midnight (got %d %s)" % (st, b))
C.check(E.sql("SELECT start_local::text, end_local::text, time_zone FROM researcher_quiet_hours "
              "WHERE researcher_id = 'viewer'") == [("22:30:00", "06:45:00", "Europe/Paris")], "stored")
st, _, b = E.request("GET", SUB, cookie=vw["cookie"])
C.check(st == 200 and b["quiet_hours"]["time_zone"] == "Europe/Paris", "GET carries them (got %s)" % b)
st, _, b = E.request("PUT", SUB, {"study_id": "S1", "site_id": None, "min_severity": "info", "channels": ["email"],
                                  "quiet_hours": dict(QH, time_zone="Asia/Kolkata")},
                     cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 200 and b["min_severity"] == "info" and b["quiet_hours"]["time_zone"] == "Asia/Kolkata",
        "with a subscription (got %d %s)" % (st, b))
for bad in [dict(QH, time_zone="Mars/Olympus"), dict(QH, time_zone="UTC+3"), dict(QH, time_zone="EST5EDT'; --"),
            dict(QH, time_zone=""), dict(QH, time_zone="x" * 100), dict(QH, start="25:00"), dict(QH, end="7am"),
            dict(QH, start="07:00", end="07:00"), dict(QH, start="07:60"), {"start": "22:00", "end": "06:00"},
            dict(QH, extra=1), "22:00-06:00", [QH]]:
    st, _, b = E.request("PUT", SUB, {"quiet_hours": bad}, cookie=vw["cookie"], csrf=vw["csrf"])
    C.check(st == 400 and b.get("message"), "bad quiet hours %r: 400 (got %d)" % (str(bad)[:60], st))
C.check(E.sql("SELECT time_zone FROM researcher_quiet_hours WHERE researcher_id = 'viewer'") == [("Asia/Kolkata",)],
        "refused changes changed nothing")
try:
    E.sql("UPDATE researcher_quiet_hours SET time_zone = 'Mars/Olympus' WHERE researcher_id = 'viewer'")
    C.check(False, "the table refuses an unknown zone too")
except Exception as e:  # psycopg2.Error: 22023
    C.check("unknown time zone" in str(e), "the table refuses an unknown zone too: %s" % str(e).strip()[:80])
st, _, _ = E.request("PUT", SUB, {"quiet_hours": QH}, cookie=vw["cookie"])
C.check(st == 403, "quiet hours without CSRF: 403 (got %d)" % st)
st, _, b = E.request("PUT", SUB, {"quiet_hours": None}, cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 200 and b == {"quiet_hours": None} and
        not E.sql("SELECT 1 FROM researcher_quiet_hours WHERE researcher_id = 'viewer'"),
        "null removes them (got %d %s)" % (st, b))
E.sql("DELETE FROM subscriptions WHERE researcher_id = 'viewer'")

# a notification held by quiet hours shows as deferred, with when it is due
E.sql("INSERT INTO notifications (alert_id, researcher_id, channel, state, next_attempt_at, deferred_until) "
      "VALUES ('seen-S1', 'viewer', 'email', 'deferred', '2030-01-02 06:00+00', '2030-01-02 06:00+00')")
st, _, b = E.request("GET", "/api/v1/alerts/seen-S1", cookie=vw["cookie"])
nd = [n for n in b.get("notifications", []) if n["researcher_id"] == "viewer"]
C.check(st == 200 and len(nd) == 1 and nd[0]["state"] == "deferred" and
        nd[0]["deferred_until"] == "2030-01-02T06:00:00.000000Z",
        "the alert detail shows a deferred notification and its due time (got %s)" % nd)
E.sql("DELETE FROM notifications WHERE alert_id = 'seen-S1' AND researcher_id = 'viewer'")

# ---- contact details: my own, and a study-admin's view of the study's people ---------
ME = "/api/v1/me/contact"
st, _, b = E.request("PUT", ME, {"email": "viewer.new@example.org", "phone": "+447700900123"},
                     cookie=vw["cookie"], csrf=vw["csrf"])
C.check(st == 200 and b["email"] == "viewer.new@example.org" and b["phone"] == "+447700900123" and
        E.sql("SELECT email, phone FROM researchers WHERE researcher_id = 'viewer'") ==
        [("viewer.new@example.org", "+447700900123")], "my contact changed (got %d %s)" % (st, b))
st, _, b = E.request("GET", ME, cookie=vw["cookie"])
C.check(st == 200 and b["phone"] == "+447700900123" and b["researcher_id"] == "viewer", "GET mine")
C.check(E.request("GET", ME)[0] == 401, "anonymous: 401")
for bad in [{"email": "no-at-sign", "phone": None}, {"email": "a@b@c"}, {"email": "a b@c.d"},
            {"email": "x@y", "phone": "07700 900123"}, {"email": "x@y", "phone": "+0123"},
            {"email": "x@y", "phone": "+1" + "2" * 15}, {"email": "x@y", "phone": 447700900123},
            {"phone": "+447700900123"}, {"email": None}, {"email": "x@y", "nickname": "z"},
            {"email": "a" * 250 + "@b.cd"}, {"email": "x@y\u0000z"}]:
    st, _, b = E.request("PUT", ME, bad, cookie=vw["cookie"], csrf=vw["csrf"])
    C.check(st == 400, "bad contact %s: 400 (got %d)" % (str(bad)[:50], st))
C.check(E.sql("SELECT phone FROM researchers WHERE researcher_id = 'viewer'") == [("+447700900123",)],
        "refused contact changes changed nothing")
st, _, _ = E.request("PUT", ME, {"email": "x@y"}, cookie=vw["cookie"])
C.check(st == 403, "contact change without CSRF: 403 (got %d)" % st)
# a study-admin: the study's people only, the same 404 for another study's
# researcher and for nobody at all; never a phone outside their study
E.users("grant", "--researcher", "study_admin", "--role", "study_admin", "--study", "S1")  # revoked above
sac, sak, _ = E.signin("study_admin")
for target in ("member-S2", "nobody-at-all"):
    st, _, b = E.request("GET", "/api/v1/studies/S1/researchers/%s/contact" % target, cookie=sac)
    C.check(st == 404 and "+1555" not in str(b), "%s through S1: 404, nothing revealed (got %d)" % (target, st))
    st, _, b = E.request("PUT", "/api/v1/studies/S1/researchers/%s/contact" % target,
                         {"email": "evil@example.org"}, cookie=sac, csrf=sak)
    C.check(st == 404, "%s through S1: PUT 404 (got %d)" % (target, st))
C.check(E.sql("SELECT email FROM researchers WHERE researcher_id = 'member-S2'") == [("member-S2@example.org",)],
        "the other study's member unchanged")
# someone of S1 who also subscribes to S2: S1's admin may read, not redirect
E.sql("INSERT INTO subscriptions (researcher_id, study_id) VALUES ('member-S1', 'S2')")
st, _, b = E.request("GET", "/api/v1/studies/S1/researchers/member-S1/contact", cookie=sac)
C.check(st == 200, "a member of S1 and S2: S1's admin reads their contact (got %d)" % st)
st, _, b = E.request("PUT", "/api/v1/studies/S1/researchers/member-S1/contact",
                     {"email": "evil@example.org", "phone": "+15559999999"}, cookie=sac, csrf=sak)
C.check(st == 403 and E.sql("SELECT email FROM researchers WHERE researcher_id = 'member-S1'")[0][0] !=
        "evil@example.org", "... but may not change it: their S2 alerts would follow (got %d)" % st)
st, _, b = E.request("PUT", "/api/v1/studies/S1/researchers/member-S1/contact",
                     {"email": "m1.admin@example.org", "phone": None}, cookie=adm["cookie"], csrf=adm["csrf"])
C.check(st == 200 and b["phone"] is None, "the global admin may (got %d %s)" % (st, b))
E.sql("DELETE FROM subscriptions WHERE researcher_id = 'member-S1'")
log = open(E.log_path).read()
C.check("+447700900123" not in log and "+15559999999" not in log and "m1.admin@example.org" not in log,
        "phone numbers and addresses are masked in the console's log")
C.check("contact of researcher member-S1 set by admin" in log, "the change is logged")

# ---- the CSV export defuses formulas and quotes -------------------------------------------
E.alert("csv-1", "S1")
st, _, b = E.request("POST", "/api/v1/alerts/csv-1/resolve", {"category": "other", "note": "=HYPERLINK(\"x\")"},
                     cookie=adm["cookie"], csrf=adm["csrf"])
E.sql("SELECT vigil_audit_append('csv-1', 'note', '=cmd|calc', '{}'::jsonb)")
st, hd, b = E.request("GET", "/api/v1/studies/S1/audit.csv", cookie=adm["cookie"])
import csv as _csv  # noqa: E402
import io as _io  # noqa: E402
rows = list(_csv.reader(_io.StringIO(b)))
note_rows = [r for r in rows if r[2] == "csv-1" and r[5] == "resolved"]
C.check(len(note_rows) == 1 and '"note": "=HYPERLINK(\\"x\\")"' in note_rows[0][7],
        "CSV: the note is inside the JSON detail, quoted (%s)" % (note_rows[0][7] if note_rows else rows[:2]))
C.check(all(len(r) == 9 for r in rows) and not any(c.startswith(("=", "+", "@")) for r in rows for c in r),
        "CSV: 9 columns on every row, no cell a spreadsheet would run as a formula")
C.check(any(r[6] == "'=cmd|calc" for r in rows), "CSV: a formula-looking actor gets a leading apostrophe")
st, _, _ = E.request("GET", "/api/v1/studies/S1/audit.csv?since=nope", cookie=adm["cookie"])
C.check(st == 400, "CSV: malformed since: 400")

# ---- keyset pagination -----------------------------------------------------------------
for i in range(7):
    E.alert("page-%d" % i, "S2", minutes_ago=100 + i, severity="warning")
seen, cursor, pages = [], None, 0
while True:
    q = "/api/v1/alerts?study=S2&severity=warning&limit=3" + ("&cursor=" + cursor if cursor else "")
    st, _, b = E.request("GET", q, cookie=adm["cookie"])
    pages += 1
    seen += [x["alert_id"] for x in b["alerts"]]
    cursor = b["next_cursor"]
    if not cursor or pages > 5:
        break
C.check(seen == ["page-%d" % i for i in range(7)] and pages == 3,
        "keyset pages of 3: every alert once, newest first (got %s in %d pages)" % (seen, pages))
# a state's queue pages by when each alert's lifecycle opened (insertion order)
seen2, cursor2, pages2, first_cursor = [], None, 0, cursor
while True:
    q = "/api/v1/alerts?study=S2&severity=warning&state=open&limit=3" + ("&cursor=" + cursor2 if cursor2 else "")
    st, _, b = E.request("GET", q, cookie=adm["cookie"])
    pages2 += 1
    seen2 += [x["alert_id"] for x in b["alerts"]]
    if pages2 == 1:
        first_cursor = b["next_cursor"]
    cursor2 = b["next_cursor"]
    if not cursor2 or pages2 > 5:
        break
C.check(seen2 == ["page-%d" % i for i in reversed(range(7))] and pages2 == 3,
        "the open queue in keyset pages: every alert once, last opened first (got %s)" % seen2)
st, _, _ = E.request("GET", "/api/v1/alerts?study=S2&limit=3&cursor=" + first_cursor, cookie=adm["cookie"])
C.check(st == 400, "a state queue's cursor on the unfiltered list: 400 (got %d)" % st)
st, _, b = E.request("GET", "/api/v1/alerts?state=resolved&study=S1", cookie=adm["cookie"])
C.check(st == 200 and b["alerts"] and all(x["state"] == "resolved" for x in b["alerts"]), "state filter")

# ---- changes of the directory and of access are audited (0065) -------------------------
import json as _json  # noqa: E402


def dir_events(kind, **match):
    """(actor, detail) of the directory events KIND whose detail has MATCH."""
    out = []
    for actor, det in E.sql("SELECT actor, detail::text FROM alert_events WHERE alert_id IS NULL "
                            "AND kind = %s ORDER BY event_id", kind):
        d = _json.loads(det)
        if all(d.get(k) == v for k, v in match.items()):
            out.append((actor, d))
    return out


ev = dir_events("site_set", study_id="S1", site_id="NEW-study_admin")
C.check([a for a, _ in ev] == ["console:study_admin"] and ev[0][1]["name"] == cl.MARKUP,
        "a site set in the console: audited once, its study-admin the actor (%s)" % ev)
C.check(not dir_events("site_set", site_id="NEW-viewer"), "a refused site PUT: nothing audited")
ev = [(a, d["role"]) for a, d in dir_events("grant_set", study_id="S1", researcher_id="none")]
C.check(("console:study_admin", "viewer") in ev and ("console:study_admin", "responder") in ev,
        "a grant and its change: audited with the role (%s)" % ev)
C.check(dir_events("grant_removed", study_id="S1", researcher_id="none")[-1][0] == "console:study_admin",
        "a grant removed: audited")
ev = dir_events("subscription_set", researcher_id="viewer", study_id="S1")
C.check(ev and ev[-1][0] == "console:viewer" and ev[-1][1]["min_severity"] == "info",
        "a subscription set by its researcher: audited with what it says (%s)" % ev[-1:])
ev = dir_events("subscription_removed", researcher_id="viewer", study_id="S1")
C.check("console:viewer" in [a for a, _ in ev], "a subscription removed: audited (%s)" % ev)
ev = dir_events("quiet_hours_set", researcher_id="viewer")
C.check(ev and ev[-1][0] == "console:viewer" and ev[-1][1]["time_zone"] == "Asia/Kolkata",
        "quiet hours: audited with the window (%s)" % ev[-1:])
ev = dir_events("researcher_changed", researcher_id="member-S1")
C.check(ev and all(a in ("console:study_admin", "console:admin") for a, _ in ev)
        and "phone" in ev[-1][1]["changed"] and "+1555" not in str(ev) and "@" not in str(ev),
        "a member's contact changed: audited by field, no number or address in the trail (%s)" % ev[-1:])
n0 = E.sql("SELECT count(*) FROM alert_events WHERE alert_id IS NULL")[0][0]
st, _, _ = E.request("POST", "/api/v1/session", {"email": "viewer@example.org", "password": "wrong password"})
C.check(st == 401 and E.sql("SELECT count(*) FROM alert_events WHERE alert_id IS NULL")[0][0] == n0,
        "a failed sign-in is not a change of access: nothing audited (got %d)" % st)
r1, r2 = E.users("disable", "--researcher", "none"), E.users("enable", "--researcher", "none")
ev = [(a[:4], d["disabled"]) for a, d in dir_events("account_changed", researcher_id="none")]
C.check(r1.returncode == 0 and r2.returncode == 0 and ev[-2:] == [("cli:", True), ("cli:", False)],
        "vigil users disable/enable: audited with the operator (%s)" % ev)
st, _, b = E.request("GET", "/api/v1/studies/S1/audit.csv", cookie=E.signin("study_admin")[0])
C.check(st == 200 and '"site_set"' in b and '"grant_removed"' in b and "NEW-study_admin" in b
        and "member-S2" not in b and '"S2"' not in b,
        "S1's audit export carries S1's directory changes, none of S2's (%d %s)" % (st, str(b)[-1500:]))

# ---- vigil alerts list|show (operators: no console roles) ------------------------------
import subprocess  # noqa: E402
r = subprocess.run([h.VIGIL, "alerts", "list", "--study", "S2", "--severity", "warning", "--json",
                    "--limit", "3", "--conninfo", E.conninfo], capture_output=True, text=True)
rows = [_json.loads(l) for l in r.stdout.splitlines()]
C.check(r.returncode == 0 and [x["alert_id"] for x in rows] == ["page-0", "page-1", "page-2"],
        "vigil alerts list --json: newest first, filtered, limited (%s)" % r.stdout[:200])
r = subprocess.run([h.VIGIL, "alerts", "show", "m-resolve-admin-S1", "--conninfo", E.conninfo],
                   capture_output=True, text=True)
doc = _json.loads(r.stdout) if r.returncode == 0 else {}
C.check(doc.get("state") == "resolved" and [e["kind"] for e in doc.get("events", [])] == ["opened", "resolved"]
        and doc["lifecycle"]["resolution_note"] == cl.MARKUP, "vigil alerts show: lifecycle and events")
r = subprocess.run([h.VIGIL, "alerts", "show", "no-such", "--conninfo", E.conninfo], capture_output=True)
C.check(r.returncode == 3, "vigil alerts show of an unknown id exits 3")
C.done()
