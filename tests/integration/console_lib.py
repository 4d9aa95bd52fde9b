"""What the console's integration tests share: a private PostgreSQL schema
migrated by the real `vigil migrate`, a directory of two studies with one
researcher per role, `vigil users` to give them passwords and roles, a real
`vigil console` on a free port, and an HTTP client that never follows
redirects and returns (status, headers, parsed JSON or text).

Each test gets its own schema (search_path as a connection option), so tests
sharing the database never see each other's rows; it is dropped at exit.
"""
import atexit
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vigil_harness as h  # noqa: E402

import psycopg2  # noqa: E402

PASSWORD = "correct horse battery staple"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"

# researcher id -> (role, study) ; 'none' has an account and no grant.
ROLES = {
    "viewer": ("viewer", "S1"),
    "responder": ("responder", "S1"),
    "study_admin": ("study_admin", "S1"),
    "admin": ("admin", None),
    "none": (None, None),
}


class Env:
    def __init__(self, tag):
        base = h.env("VIGIL_PG_CONNINFO")
        self.schema = "console_%s_%d" % (tag, os.getpid())
        self.conninfo = "%s options=-csearch_path=%s" % (base, self.schema)
        admin = psycopg2.connect(base)
        admin.autocommit = True
        admin.cursor().execute("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s"
                               % (self.schema, self.schema))
        admin.close()
        atexit.register(self.drop)
        subprocess.run([h.VIGIL, "migrate", "--conninfo", self.conninfo], check=True,
                       capture_output=True)
        self.db = psycopg2.connect(self.conninfo)
        self.db.autocommit = True
        self.proc = None

    def drop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        try:
            self.db.close()
        except Exception:
            pass
        admin = psycopg2.connect(h.env("VIGIL_PG_CONNINFO"))
        admin.autocommit = True
        admin.cursor().execute("DROP SCHEMA IF EXISTS %s CASCADE" % self.schema)
        admin.close()

    def sql(self, q, *params):
        cur = self.db.cursor()
        cur.execute(q, params)
        return cur.fetchall() if cur.description else None

    def users(self, *args, password=None):
        r = subprocess.run([h.VIGIL, "users"] + list(args) + ["--conninfo", self.conninfo],
                           input=(password + "\n") if password else None,
                           capture_output=True, text=True)
        return r

    def seed(self):
        """Two studies, an alert in each, observations for one subject in
        each, a notification, and one researcher per role of ROLES."""
        self.sql("INSERT INTO studies (study_id, name) VALUES ('S1', %s), ('S2', 'Study two')", MARKUP)
        self.sql("INSERT INTO sites (study_id, site_id, name) VALUES ('S1', 'SITE-1', %s), "
                 "('S2', 'SITE-2', 'Site two')", MARKUP)
        for rid in ROLES:
            self.sql("INSERT INTO researchers (researcher_id, name, email) VALUES (%s, %s, %s)",
                     rid, MARKUP, "%s@example.org" % rid)
            r = self.users("create", "--researcher", rid, password=PASSWORD)
            assert r.returncode == 0, r.stderr
            role, study = ROLES[rid]
            if role is not None:
                args = ["grant", "--researcher", rid, "--role", role]
                if study:
                    args += ["--study", study]
                r = self.users(*args)
                assert r.returncode == 0, r.stderr

    def alert(self, aid, study, subject="SUBJ-1", severity="critical", message="K high",
              minutes_ago=0, site=None):
        site = site or ("SITE-1" if study == "S1" else "SITE-2")
        self.sql("INSERT INTO alerts (alert_id, rule_id, rule_version, severity, study_id, site_id, "
                 "subject_id, message, observed_at, detected_at, evidence) VALUES "
                 "(%s, 'k_high', 1, %s, %s, %s, %s, %s, now() - %s * interval '1 minute', "
                 "now() - %s * interval '1 minute', %s)",
                 aid, severity, study, site, subject, message, minutes_ago, minutes_ago,
                 json.dumps([{"observation_id": "o-" + aid, "loinc": "2823-3", "value": MARKUP,
                              "unit": "mmol/L"}]))

    def observation(self, oid, study, subject, loinc="2823-3", value=4.2, days_ago=0):
        site = "SITE-1" if study == "S1" else "SITE-2"
        self.sql("INSERT INTO observations (observation_id, study_id, site_id, subject_id, loinc, "
                 "value, unit, ref_low, ref_high, value_norm, unit_norm, ref_low_norm, ref_high_norm, "
                 "effective_at, status) VALUES (%s, %s, %s, %s, %s, %s, 'mmol/L', 3.5, 5.1, %s, "
                 "'mmol/L', 3.5, 5.1, now() - %s * interval '1 day', 'final')",
                 oid, study, site, subject, loinc, value, value, days_ago)

    def start(self, threads=8, pg_connections=4, extra_env=None, log_name="console"):
        port_file = tempfile.mktemp(prefix="console-port-")
        self.log_path = os.path.join(tempfile.gettempdir(), "%s-%s.log" % (log_name, self.schema))
        envv = dict(os.environ, VIGIL_PG_CONNINFO=self.conninfo, VIGIL_CONSOLE_PORT_FILE=port_file,
                    VIGIL_CONSOLE_PG_CONNECTIONS=str(pg_connections))
        envv.pop("VIGIL_PG_CONNINFO_FILE", None)
        envv.update(extra_env or {})
        self.proc = h.track(subprocess.Popen(
            [h.VIGIL, "console", "--listen", "127.0.0.1:0", "--threads", str(threads)],
            env=envv, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT))

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("console exited: " + open(self.log_path).read())
            try:
                return int(open(port_file).read().strip())
            except (OSError, ValueError):
                return None
        self.port = h.wait_until(ready, 20, "the console's port file")
        h.wait_until(lambda: self.request("GET", "/readyz")[0] == 200, 20, "console ready")
        return self.port

    def request(self, method, path, body=None, cookie=None, csrf=None, token=None, headers=None,
                timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hd = dict(headers or {})
        if cookie:
            hd["Cookie"] = "__Host-vigil_session=" + cookie
        if csrf:
            hd["X-CSRF-Token"] = csrf
        if token:
            hd["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            hd.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=hd)
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return r.status, hdrs, parsed

    def signin(self, rid, password=PASSWORD):
        """(cookie, csrf) for RID, or raises."""
        st, hd, body = self.request("POST", "/api/v1/session",
                                    {"email": "%s@example.org" % rid, "password": password})
        if st != 200:
            raise RuntimeError("sign-in of %s: %d %s" % (rid, st, body))
        sc = hd.get("set-cookie", "")
        cookie = sc.split(";")[0].split("=", 1)[1]
        return cookie, body["csrf_token"], sc


def now():
    return time.monotonic()
