"""What the acknowledgement tests share: a directory, alerts in PostgreSQL
and on the topic, the console and notifier processes, a Python
implementation of the link token (alerting/acklink.h) to forge and alter
links independently of the C code, and readers of lifecycle and audit."""
import base64
import hashlib
import hmac
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

LOG_DIR = tempfile.mkdtemp(prefix="ack-test-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(kid, secret, alert_id, researcher, expires, nonce=None):
    """A token as alerting/acklink.c makes it, made here independently."""
    nonce = nonce or secrets.token_hex(16)
    head = "v1.%s.%s.%s.%d.%s" % (kid, b64url(alert_id.encode()), b64url(researcher.encode()),
                                  expires, nonce)
    sig = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64url(sig)


def http(method, url, data=None, headers=None):
    body = urllib.parse.urlencode(data).encode() if isinstance(data, dict) else data
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


class Proc(h.Worker):
    """A vigil subcommand with its own log (the worker helper's plumbing)."""

    def __init__(self, name, args, env=None):
        self.log_path = os.path.join(LOG_DIR, "%s-%d.log" % (name, id(self)))
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = h.track(subprocess.Popen([h.VIGIL] + args, stdout=self.log,
                                             stderr=subprocess.STDOUT, env=e))
        self.port = None


class Setup:
    """One run's keys, directory, console and (optionally) notifier."""

    def __init__(self, rid, notifier=True):
        self.rid = rid
        h.migrate()
        self.keyfile = os.path.join(LOG_DIR, "link-keys")
        # rotation: k2 signs, k1 (the previous key) still verifies
        self.keys = {"k2": secrets.token_hex(24), "k1": secrets.token_hex(24)}
        with open(self.keyfile, "w") as f:
            f.write("# kid secret\nk2 %s\nk1 %s\n" % (self.keys["k2"], self.keys["k1"]))
        self.sms_secret = secrets.token_hex(20)
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.study = "%s-S" % rid
        self.r1, self.r2 = "%s-ana" % rid, "%s-ben" % rid
        digits = int(re.sub(r"\D", "", rid) or "0") % 10**10
        self.phone1 = "+44%010d" % digits
        self.phone2 = "+45%010d" % digits
        h.query("INSERT INTO researchers (researcher_id, name, email, phone) VALUES "
                "(%s, 'Ana', %s, %s), (%s, 'Ben', %s, %s)",
                self.r1, "ana.%s@test.example" % rid, self.phone1,
                self.r2, "ben.%s@test.example" % rid, self.phone2)
        h.query("INSERT INTO studies (study_id, name) VALUES (%s, 'S')", self.study)
        h.query("INSERT INTO sites (study_id, site_id, name) VALUES (%s, 'A', 'A')", self.study)
        h.query("INSERT INTO subscriptions (researcher_id, study_id, min_severity, channels) "
                "VALUES (%s, %s, 'critical', ARRAY['email','sms'])", self.r1, self.study)
        self.console = Proc("console", [
            "console", "--listen", "127.0.0.1:%d" % self.port, "--public-url", self.base,
            "--pg", h.env("VIGIL_PG_CONNINFO"), "-s", "link_keys_file=" + self.keyfile],
            env={"VIGIL_SMS_INBOUND_SECRET": self.sms_secret})
        h.wait_until(lambda: self.get("/readyz")[0] == 200, 30, "console ready")
        self.notifier = None
        if notifier:
            self.topic, self.group = "ack.%s.alerts" % rid, "ack-%s" % rid
            h.create_topics([self.topic], 2)
            self.notifier = Proc("notifier", [
                "notifier", "-t", self.topic, "-g", self.group, "--http", "127.0.0.1:0",
                "--grace", "10", "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"),
                "--smtp-url", h.env("VIGIL_SMTP_URL"), "--sms-url", h.env("VIGIL_SMS_URL"),
                "-s", "console_url=" + self.base, "-s", "link_keys_file=" + self.keyfile,
                "-s", "rate_per_min=0", "-X", "session.timeout.ms=6000"],
                env={"VIGIL_SMS_USER": h.env("VIGIL_SMS_USER"),
                     "VIGIL_SMS_PASSWORD_FILE": h.env("VIGIL_SMS_PASSWORD_FILE")})

    def get(self, path):
        try:
            return http("GET", self.base + path)
        except OSError:
            return None, "", {}

    def alert(self, n, severity="critical", produce=True):
        """Alert N of this run: a row in alerts (the lifecycle starts there,
        as when a worker stores it) and, if PRODUCE, a record on the topic."""
        aid = "%s-a%03d" % (self.rid, n)
        subject = "SUBJ-%s-%d" % (self.rid[-4:], n)
        h.query("INSERT INTO alerts (alert_id, rule_id, rule_version, severity, study_id, "
                "site_id, subject_id, message, observed_at, detected_at) VALUES "
                "(%s, 'k-high', 1, %s, %s, 'A', %s, 'potassium 6.8 mmol/L', now(), now())",
                aid, severity, self.study, subject)
        if produce:
            now = int(time.time() * 1000)
            a = dict(alert_id=aid, kind="signal", rule_id="k-high", rule_version=1,
                     severity=severity, ctcae_grade=3, study_id=self.study, site_id="A",
                     subject_id=subject,
                     evidence=[dict(observation_id="%s-o%d" % (self.rid, n), loinc="2823-3",
                                    value=6.8, unit="mmol/L", effective_time=now)],
                     message="potassium 6.8 mmol/L", observed_time=now, detected_time=now,
                     retracts_alert_id=None)
            v = h.encode("alert", [a])[0]
            h.produce(self.topic, [(("%s/%s" % (self.study, subject)).encode(), v)])
        return aid, subject

    def state(self, aid):
        r = h.query("SELECT state, acknowledged_by, ack_channel, ack_origin FROM "
                    "alert_lifecycle WHERE alert_id = %s", aid)
        return r[0] if r else None

    def events(self, kind, since=0):
        return h.query("SELECT event_id, alert_id, actor, detail FROM alert_events "
                       "WHERE kind = %s AND event_id > %s ORDER BY event_id", kind, since)

    def last_event_id(self):
        return h.query("SELECT coalesce(max(event_id), 0) FROM alert_events")[0][0]

    def email_links(self, aid):
        """The acknowledgement links in the emails that carried alert AID."""
        spool = h.env("VIGIL_SMTP_SPOOL")
        out = []
        mine = {"ana.%s@test.example" % self.rid, "ben.%s@test.example" % self.rid}
        for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
            # the spool is shared with every other test: open this run's mail only
            if not mine.intersection(e.get("rcpt_tos", [])):
                continue
            with open(os.path.join(spool, e["file"]), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if aid in text and "X-Vigil-Alert-Ids" in text:
                out += re.findall(re.escape(self.base) + r"/ack/[A-Za-z0-9._-]+", text)
        return out

    def sms_to(self, phone):
        return [e["fields"].get("Body", "") for e in h.read_jsonl(h.env("VIGIL_SMS_LOG"))
                if e["fields"].get("To") == phone and e.get("status") == 201]

    def stop(self):
        if self.notifier:
            self.notifier.stop()
        self.console.stop()
