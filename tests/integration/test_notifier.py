#!/usr/bin/python3
"""vigil notifier end to end against the real broker, PostgreSQL, SMTP
server and SMS double of scripts/services.

  test_notifier.py deliver   1,000 alerts over 3 studies with overlapping
                             subscriptions (+ unroutable ones): every
                             expected (alert, researcher, channel) delivered
                             exactly once, nothing to anyone else, the
                             unroutable recorded; the same 1,000 again:
                             nothing sent again; a subscription added while
                             running reaches its researcher without restart;
                             a retraction reaches whoever got the alert; a
                             critical alert whose SMS fails for good is
                             escalated by email
  test_notifier.py faults    the SMS double answers 503 for FAULT_S seconds
                             (30 by default, as the issue says) then
                             recovers: all delivered, retries in /metrics,
                             no duplicates; SMTP down when the notifier
                             starts: it waits, stays up, delivers once a
                             server appears
  test_notifier.py lease     a retry waiting longer than the lease while a
                             second notifier (another group) reads the same
                             alerts: the rows stay the first one's, every
                             page goes out once
  test_notifier.py kill      SIGKILL mid-run and restart: every alert
                             delivered; duplicates only among the sends in
                             flight at the kill (counted and printed)
  test_notifier.py backlog   more alerts of one partition in progress at once
                             than the per-partition offset tracker holds
                             (max_alerts above it, SMTP down, then up):
                             every alert delivered exactly once, none
                             skipped, offsets at the end (the notifier once
                             dropped what the full tracker refused)
  test_notifier.py poison    bytes that are not an alert (garbage, empty,
                             truncated) among good alerts: the good ones are
                             delivered exactly once, each bad one is on the
                             dead-letter topic byte for byte with its own
                             headers and the error's, offsets reach the end

Deliveries are read back from what the services recorded: the SMTP spool
(index.jsonl + one .eml per message, X-Vigil-Alert-Ids header) and the SMS
double's request log ("refs ID,ID" at the end of each text). The expected
deliveries are computed here, independently, from the routing rule.
"""
import email
import email.policy
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "deliver"
FAULT_S = float(os.environ.get("VIGIL_NOTIFIER_FAULT_S", "30"))
PARTS = 4
SEV = {"info": 0, "warning": 1, "critical": 2}
t = h.Checks()
rid = h.run_id()
LOG_DIR = tempfile.mkdtemp(prefix="notifier-test-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---- the directory -----------------------------------------------------

class Directory:
    """This run's studies, researchers and subscriptions, in PostgreSQL and
    here (to compute the expected routes)."""

    def __init__(self):
        self.researchers = {}  # id -> (email, phone, active)
        self.safety = {}       # study -> researcher id or None
        self.subs = []         # (researcher, study, site or None, min_sev, channels)
        self.n = 0
        self.conn = None       # set: statements join this transaction

    def q(self, sql, *params):
        if self.conn is None:
            return h.query(sql, *params)
        self.conn.cursor().execute(sql, params)
        return None

    def researcher(self, name, sms=True, active=True):
        rid_ = "%s-%s" % (rid, name)
        self.n += 1
        mail = "%s.%s@test.example" % (name, rid)
        phone = "+1%03d%07d" % (200 + self.n, int(rid[-6:]) % 10000000) if sms else None
        self.researchers[rid_] = (mail, phone, active)
        self.q("INSERT INTO researchers (researcher_id, name, email, phone, active) "
                "VALUES (%s, %s, %s, %s, %s)", rid_, name, mail, phone, active)
        return rid_

    def study(self, name, safety=None):
        sid = "%s-%s" % (rid, name)
        self.safety[sid] = safety
        h.query("INSERT INTO studies (study_id, name, safety_contact_researcher_id) "
                "VALUES (%s, %s, %s)", sid, name, safety)
        for site in ("A", "B", "C"):
            h.query("INSERT INTO sites (study_id, site_id, name) VALUES (%s, %s, %s)",
                    sid, site, site)
        return sid

    def subscribe(self, researcher, study, site, min_sev, channels):
        self.subs.append((researcher, study, site, min_sev, tuple(channels)))
        self.q("INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity, "
                "channels) VALUES (%s, %s, %s, %s, %s)", researcher, study, site, min_sev,
                list(channels))

    def address(self, r, ch):
        mail, phone, active = self.researchers[r]
        return (mail if ch == "email" else phone) if active else None

    def route(self, a):
        """The routing rule of issue #4 / alerting/directory.h."""
        out = set()
        for (r, s, site, mins, chans) in self.subs:
            if s != a["study_id"] or (site and site != a["site_id"]):
                continue
            if SEV[a["severity"]] < SEV[mins]:
                continue
            for ch in chans:
                if self.address(r, ch):
                    out.add((r, ch))
        if out:
            return out
        sc = self.safety.get(a["study_id"])
        if sc and self.researchers[sc][2]:
            out.add((sc, "email"))
            if a["severity"] == "critical" and self.address(sc, "sms"):
                out.add((sc, "sms"))
        return out

    def by_address(self):
        m = {}
        for r, (mail, phone, _) in self.researchers.items():
            m[mail] = r
            if phone:
                m[phone] = r
        return m


def make_alert(i, study, site, subject, severity, t0=1767225600000, prefix="a"):
    return dict(alert_id="%s-%s%05d" % (rid, prefix, i), kind="signal",
                rule_id="alt-3xuln", rule_version=1, severity=severity,
                ctcae_grade=3 if severity == "critical" else 0, study_id=study, site_id=site,
                subject_id=subject,
                evidence=[dict(observation_id="%s-o%05d" % (rid, i), loinc="1742-6",
                               value=250.0, unit="U/L", effective_time=t0 + i * 1000)],
                message="ALT 250 U/L above 3x ULN", observed_time=t0 + i * 1000,
                detected_time=int(time.time() * 1000), retracts_alert_id=None)


def produce_alerts(topic, alerts):
    vals = h.encode("alert", alerts)
    h.produce(topic, [(("%s/%s" % (a["study_id"], a["subject_id"])).encode(), v)
                      for a, v in zip(alerts, vals)])


# ---- what was delivered ------------------------------------------------

def deliveries(directory, spool=None):
    """Counts of (alert id, researcher, channel) delivered to this run's
    researchers, from the SMTP spool and the SMS log; plus the number of
    messages that carried more than one alert (grouped)."""
    spool = spool or h.env("VIGIL_SMTP_SPOOL")
    addr = directory.by_address()
    counts = {}
    grouped = 0
    index = os.path.join(spool, "index.jsonl")
    for e in h.read_jsonl(index):
        rcpts = [addr.get(x) for x in e["rcpt_tos"] if addr.get(x)]
        if not rcpts:
            continue
        with open(os.path.join(spool, e["file"]), "rb") as mf:
            msg = email.message_from_binary_file(mf, policy=email.policy.default)
        ids = str(msg["X-Vigil-Alert-Ids"] or "").split()
        grouped += len(ids) > 1
        for r in rcpts:
            for a in ids:
                counts[(a, r, "email")] = counts.get((a, r, "email"), 0) + 1
    for e in h.read_jsonl(h.env("VIGIL_SMS_LOG")):
        if e.get("status") != 201:
            continue
        r = addr.get(e["fields"].get("To"))
        if r is None:
            continue
        body = e["fields"].get("Body", "")
        ids = body.rsplit(" refs ", 1)[1].split(",") if " refs " in body else []
        grouped += len(ids) > 1
        for a in ids:
            counts[(a, r, "sms")] = counts.get((a, r, "sms"), 0) + 1
    return counts, grouped


def sms_attempts(directory):
    """Requests (any status) to this run's phones."""
    addr = directory.by_address()
    n = 0
    for e in h.read_jsonl(h.env("VIGIL_SMS_LOG")):
        n += e["fields"].get("To") in addr
    return n


def expected_set(directory, alerts):
    exp = set()
    for a in alerts:
        for (r, ch) in directory.route(a):
            exp.add((a["alert_id"], r, ch))
    return exp


def check_exactly_once(counts, exp, ids, what):
    mine = {k: v for k, v in counts.items() if k[0] in ids}
    missing = [k for k in exp if mine.get(k, 0) == 0]
    dup = {k: v for k, v in mine.items() if v > 1}
    extra = [k for k in mine if k not in exp]
    t.check(not missing, "%s: %d expected deliveries missing, e.g. %s" % (what, len(missing),
                                                                          missing[:3]))
    t.check(not dup, "%s: %d deliveries duplicated, e.g. %s" % (what, len(dup),
                                                                 list(dup.items())[:3]))
    t.check(not extra, "%s: %d deliveries to someone not subscribed, e.g. %s" % (
        what, len(extra), extra[:3]))
    return len(missing), len(dup), len(extra)


def delivered_all(directory, exp, spool=None):
    def pred():
        c, _ = deliveries(directory, spool)
        return all(c.get(k, 0) > 0 for k in exp)
    return pred


# ---- the notifier process ----------------------------------------------

class Notifier(h.Worker):
    """A `vigil notifier` process (reuses the worker helper's log, port and
    metrics plumbing)."""

    def __init__(self, topic, group, settings=None, smtp_url=None):
        self.log_path = os.path.join(LOG_DIR, "notifier-%d.log" % id(self))
        self.log = open(self.log_path, "wb")
        s = {"rate_per_min": "0", "lease": "3", "retry_base_ms": "200",
             "retry_max_ms": "2000", "give_up": "300", "directory_refresh": "60"}
        s.update(settings or {})
        args = [h.VIGIL, "notifier", "-t", topic, "-g", group, "--http", "127.0.0.1:0",
                "--grace", "10", "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"),
                "--smtp-url", smtp_url or h.env("VIGIL_SMTP_URL"),
                "--sms-url", h.env("VIGIL_SMS_URL"),
                "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"]
        for k, v in s.items():
            args += ["-s", "%s=%s" % (k, v)]
        e = dict(os.environ)
        e["VIGIL_SMS_USER"] = h.env("VIGIL_SMS_USER")
        e["VIGIL_SMS_PASSWORD_FILE"] = h.env("VIGIL_SMS_PASSWORD_FILE")
        e.pop("VIGIL_SMS_PASSWORD", None)
        self.proc = h.track(subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                             env=e))
        self.port = None

    def msum(self, name):
        return sum((self.metric(name, 'channel="%s"' % c) or 0) for c in ("email", "sms"))

    def idle_after(self, n_alerts):
        """Every one of n_alerts taken and finished."""
        def pred():
            return (self.metric("vigil_notifier_alerts_total") or 0) >= n_alerts and \
                self.metric("vigil_notifier_alerts_in_progress") == 0
        return pred


def sms_fault(status, seconds):
    import urllib.parse
    import urllib.request
    url = h.env("VIGIL_SMS_URL").replace("/v1/messages", "/_control/fail")
    data = urllib.parse.urlencode({"status": status, "seconds": seconds}).encode()
    with urllib.request.urlopen(url, data=data, timeout=5) as r:
        return r.status == 200


def setup_directory():
    d = Directory()
    r1, r2, r3 = d.researcher("ana"), d.researcher("ben"), d.researcher("cem")
    r4, r5 = d.researcher("dan"), d.researcher("eva", sms=False)
    r6 = d.researcher("fay")
    d.researcher("gus")                     # subscribed to nothing
    r8 = d.researcher("hal", active=False)  # subscribed but inactive
    s1 = d.study("S1", safety=r3)
    s2 = d.study("S2", safety=r4)
    s3 = d.study("S3", safety=r3)
    s4 = d.study("S4", safety=None)         # nobody: unroutable
    # Overlapping: ana in S1 and S2, ben in S1 (site A) and S2 (site B),
    # S3 warning+ only, so its info alerts go to the safety contact.
    d.subscribe(r1, s1, None, "warning", ["email", "sms"])
    d.subscribe(r2, s1, "A", "info", ["email"])
    d.subscribe(r3, s1, None, "critical", ["sms"])
    d.subscribe(r1, s2, None, "info", ["email"])
    d.subscribe(r4, s2, None, "warning", ["email", "sms"])
    d.subscribe(r2, s2, "B", "critical", ["sms"])
    d.subscribe(r5, s3, None, "warning", ["email", "sms"])  # eva has no phone
    d.subscribe(r6, s3, "A", "warning", ["sms"])
    d.subscribe(r8, s3, None, "info", ["email"])
    return d, [s1, s2, s3, s4]


# ---- deliver -------------------------------------------------------------

def run_deliver():
    h.migrate()
    topic, group = "nt.%s.alerts" % rid, "nt-%s" % rid
    h.create_topics([topic], PARTS)
    d, studies = setup_directory()
    rng = random.Random(4)
    alerts = []
    for i in range(1000):
        study = studies[3] if i % 100 == 7 else studies[i % 3]
        alerts.append(make_alert(i, study, rng.choice("ABC"), "P-%03d" % rng.randrange(60),
                                 rng.choice(["info", "warning", "warning", "critical"])))
    exp = expected_set(d, alerts)
    ids = {a["alert_id"] for a in alerts}
    unroutable = {a["alert_id"] for a in alerts if not d.route(a)}
    t.check(len(exp) > 1000 and len(unroutable) == 10,
            "test data: %d deliveries expected, %d unroutable" % (len(exp), len(unroutable)))

    n = Notifier(topic, group, {"group_window_ms": "300"})
    t0 = time.monotonic()
    produce_alerts(topic, alerts)
    ok = h.wait_until(delivered_all(d, exp), 120, "all %d deliveries" % len(exp))
    t.check(ok, "all expected deliveries arrived")
    t.check(h.wait_until(n.idle_after(1000), 60, "1000 alerts finished"), "1000 alerts final")
    print("delivered %d notifications for 1000 alerts in %.1fs" % (len(exp),
                                                                   time.monotonic() - t0))
    counts, grouped = deliveries(d)
    check_exactly_once(counts, exp, ids, "first pass")
    t.check(grouped > 0, "some warning/info alerts of one subject were grouped (%d)" % grouped)
    crit = {a["alert_id"] for a in alerts if a["severity"] == "critical"}
    rows = h.query("SELECT state, count(*) FROM notifications WHERE alert_id LIKE %s "
                   "GROUP BY state", rid + "-a%")
    t.check(dict(rows) == {"sent": len(exp)}, "notification log all sent: %s" % rows)
    got_unr = {r[0] for r in h.query("SELECT alert_id FROM unroutable_alerts WHERE "
                                     "alert_id LIKE %s", rid + "-%")}
    t.check(got_unr == unroutable, "unroutable recorded: %d of %d" % (len(got_unr & unroutable),
                                                                      len(unroutable)))
    t.check(n.metric("vigil_notifier_unroutable_total") == 10, "unroutable counted")
    # a grouped message carries no critical alert
    spool = h.env("VIGIL_SMTP_SPOOL")
    crit_grouped = 0
    for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
        if not any(rid in x for x in e["rcpt_tos"]):
            continue
        with open(os.path.join(spool, e["file"]), "rb") as mf:
            msg = email.message_from_binary_file(mf, policy=email.policy.default)
        mids = str(msg["X-Vigil-Alert-Ids"]).split()
        crit_grouped += len(mids) > 1 and any(x in crit for x in mids)
        for hdr in ("Date", "Message-ID", "Subject", "MIME-Version"):
            if msg[hdr] is None:
                t.check(False, "email lacks %s" % hdr)
    t.check(crit_grouped == 0, "no critical alert was held in a group (%d)" % crit_grouped)
    sent_before = n.msum("vigil_notifications_sent_total")

    # -- the same 1,000 again: nothing new -------------------------------
    produce_alerts(topic, alerts)
    t.check(h.wait_until(n.idle_after(2000), 60, "the replayed 1000 finished"),
            "replayed alerts finished")
    counts2, _ = deliveries(d)
    t.check(counts2 == counts, "replay sent nothing (%d vs %d deliveries)" % (
        sum(counts2.values()), sum(counts.values())))
    t.check(n.msum("vigil_notifications_sent_total") == sent_before, "sent counter unchanged")
    t.check(n.msum("vigil_notifications_duplicate_total") >= len(exp),
            "replays counted as duplicates")

    # -- a subscription added while running ------------------------------
    gen = n.metric("vigil_notifier_directory_generation")
    # One transaction: its notifications arrive at commit, so the reload
    # they cause sees the researcher and the subscription together (two
    # commits let the late alert meet a directory with only the first).
    d.conn = h.pg()
    d.conn.autocommit = False
    newbie = d.researcher("ivy")
    d.subscribe(newbie, studies[0], None, "info", ["email", "sms"])
    d.conn.commit()
    d.conn.close()
    d.conn = None
    t.check(h.wait_until(lambda: n.metric("vigil_notifier_directory_generation") > gen, 20,
                         "directory reload"), "directory reloaded on NOTIFY")
    late = make_alert(5000, studies[0], "B", "P-999", "info", prefix="n")
    produce_alerts(topic, [late])
    exp_late = expected_set(d, [late])
    t.check((late["alert_id"], newbie, "email") in exp_late, "new researcher is expected")
    t.check(h.wait_until(delivered_all(d, exp_late), 30, "the new subscriber's alert"),
            "new subscriber reached without restart")

    # -- a retraction goes to whoever got the alert ----------------------
    target = next(a for a in alerts if a["study_id"] == studies[1] and
                  len(d.route(a)) >= 2)
    retr = dict(make_alert(6000, target["study_id"], target["site_id"], target["subject_id"],
                           target["severity"], prefix="r"),
                kind="retraction", retracts_alert_id=target["alert_id"])
    produce_alerts(topic, [retr])
    exp_r = {(retr["alert_id"], r, ch) for (_, r, ch) in
             {k for k in exp if k[0] == target["alert_id"]}}
    t.check(h.wait_until(delivered_all(d, exp_r), 30, "retraction"),
            "retraction reached the %d recipients of the withdrawn alert" % len(exp_r))

    # -- a critical alert whose SMS fails for good escalates by email ----
    # S2 critical at site B: ana (email), dan (email+sms), ben (sms).
    t.check(sms_fault(400, 600), "SMS double set to answer 400")
    crit_a = make_alert(7000, studies[1], "B", "P-777", "critical", prefix="c")
    produce_alerts(topic, [crit_a])
    ben, dan, cem = ("%s-%s" % (rid, x) for x in ("ben", "dan", "cem"))

    def crit_settled():
        # The rows themselves, not the alerts counter: a redelivered
        # message can push that counter to 2003 before crit_a is taken,
        # and the fault would end before its SMS went out (CI, ASan).
        st = dict((tuple(r[:2]), r[2]) for r in h.query(
            "SELECT researcher_id, channel, state FROM notifications WHERE alert_id = %s",
            crit_a["alert_id"]))
        want = [(ben, "sms"), (dan, "sms"), (ben, "email"), (dan, "email")]
        return all(st.get(k) in ("sent", "failed", "suppressed") for k in want)
    t.check(h.wait_until(crit_settled, 30, "escalated alert settled"),
            "escalated alert settled")
    t.check(h.wait_until(n.idle_after(2003), 30, "escalated alert finished"),
            "escalated alert finished")
    sms_fault(400, 0)
    rows = dict((tuple(r[:2]), r[2]) for r in h.query(
        "SELECT researcher_id, channel, state FROM notifications WHERE alert_id = %s",
        crit_a["alert_id"]))
    t.check(rows.get((ben, "sms")) == "failed" and rows.get((dan, "sms")) == "failed",
            "SMS failed for good: %s" % rows)
    # escalation: ben and dan by email (dan had it already: not twice),
    # and the S2 safety contact (dan) by email
    t.check(rows.get((ben, "email")) == "sent", "ben escalated to email: %s" % rows)
    t.check(rows.get((dan, "email")) == "sent", "dan's email sent once")
    counts3, _ = deliveries(d)
    t.check(counts3.get((crit_a["alert_id"], dan, "email")) == 1, "no duplicate escalation")
    t.check(n.metric("vigil_notifier_escalations_total") >= 1, "escalation counted")
    t.check(rows.get((cem, "email")) is None, "nobody else")
    rc = n.stop()
    t.check(rc == 0, "notifier exits 0 on SIGTERM (rc %s)" % rc)
    log = n.text()
    t.check("P-0" not in log and "P-9" not in log, "no subject id in the log")
    t.check("@test.example" not in log.replace("…@test.example", ""),
            "no full email address in the log")


# ---- faults --------------------------------------------------------------

def run_faults():
    h.migrate()
    topic, group = "nt.%s.alerts" % rid, "nt-%s" % rid
    topic2, group2 = "nt.%s.smtp" % rid, "nt2-%s" % rid
    h.create_topics([topic, topic2], PARTS)
    d, studies = setup_directory()
    rng = random.Random(5)
    # -- SMS 503 for FAULT_S seconds ---------------------------------------
    alerts = [make_alert(i, studies[i % 2], rng.choice("AB"), "P-%03d" % i, "critical")
              for i in range(60)]
    exp = expected_set(d, alerts)
    exp_sms = {k for k in exp if k[2] == "sms"}
    n = Notifier(topic, group, {"retry_max_ms": "3000"})
    t.check(h.wait_until(lambda: n.get("/readyz")[0] == 200, 30, "readyz"), "notifier ready")
    t.check(sms_fault(503, FAULT_S), "SMS double failing with 503 for %gs" % FAULT_S)
    fault_end = time.monotonic() + FAULT_S
    produce_alerts(topic, alerts)
    t.check(h.wait_until(lambda: n.metric("vigil_notifications_retried_total",
                                          'channel="sms"') > 0, 30, "SMS retries"),
            "SMS retries visible in /metrics")
    c, _ = deliveries(d)
    t.check(not any(k in c for k in exp_sms), "nothing got through during the fault")
    t.check(n.proc.poll() is None, "notifier still running during the fault")
    ok = h.wait_until(delivered_all(d, exp), FAULT_S + 60, "deliveries after the fault")
    t.check(ok, "all delivered after the gateway recovered")
    t.check(time.monotonic() >= fault_end - 1, "SMS deliveries came after the fault ended")
    t.check(h.wait_until(n.idle_after(60), 30, "alerts finished"), "alerts final")
    c, _ = deliveries(d)
    check_exactly_once(c, exp, {a["alert_id"] for a in alerts}, "503 fault")
    retried = n.metric("vigil_notifications_retried_total", 'channel="sms"')
    print("SMS retries during the %gs fault: %d (%d requests answered 503)" % (
        FAULT_S, retried, sms_attempts(d) - len(exp_sms)))
    t.check(n.metric("vigil_notifications_failed_total", 'channel="sms"') == 0,
            "nothing failed")
    n.stop()

    # -- SMTP down when the notifier starts --------------------------------
    port = free_port()
    spool2 = tempfile.mkdtemp(prefix="smtp2-")
    alerts2 = [make_alert(100 + i, studies[0], "A", "P-%03d" % i, "warning", prefix="m")
               for i in range(20)]
    exp2 = {k for k in expected_set(d, alerts2) if k[2] == "email"}
    n2 = Notifier(topic2, group2, {"retry_max_ms": "1000"},
                  smtp_url="smtp://127.0.0.1:%d" % port)
    produce_alerts(topic2, alerts2)
    t.check(h.wait_until(lambda: n2.metric("vigil_notifications_retried_total",
                                           'channel="email"') >= 3, 30, "SMTP retries"),
            "email retried while the SMTP server is down")
    t.check(n2.proc.poll() is None, "notifier stays up without SMTP")
    t.check(n2.get("/healthz")[0] == 200, "healthz while SMTP is down")
    smtp = subprocess.Popen(["/usr/bin/python3", os.path.join(h.SRC, "tests", "services", "smtp_server.py"),
                             "--port", str(port), "--spool", spool2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok = h.wait_until(delivered_all(d, exp2, spool2), 60, "email after SMTP came up")
        t.check(ok, "delivered once the SMTP server is back")
        t.check(h.wait_until(n2.idle_after(20), 30, "alerts finished"), "alerts final")
        c, _ = deliveries(d, spool2)
        mine = {k: v for k, v in c.items() if k[0].startswith(rid + "-m") and k[2] == "email"}
        t.check(all(v == 1 for v in mine.values()) and set(mine) == exp2,
                "each email once (%d of %d)" % (len(mine), len(exp2)))
    finally:
        n2.stop()
        smtp.terminate()
        smtp.wait(10)


# ---- lease ---------------------------------------------------------------

def run_lease():
    """A retry that waits longer than the lease keeps its rows: a second
    notifier reading the same alerts (another group: a replay) finds them
    busy instead of taking them over, and each page goes out once. Without
    the renewal the second notifier took the rows over and sent them (5
    sends), and only mark_sending's fence kept the first from sending them
    again."""
    h.migrate()
    topic = "nt.%s.lease" % rid
    h.create_topics([topic], PARTS)
    d, studies = setup_directory()
    alerts = [make_alert(i, studies[0], "A", "P-%03d" % i, "critical", prefix="l")
              for i in range(3)]
    exp = expected_set(d, alerts)
    fault_s = 9
    n1 = Notifier(topic, "nl1-%s" % rid, {"lease": "2", "retry_base_ms": "7000",
                                          "retry_max_ms": "7000"})
    t.check(h.wait_until(lambda: n1.get("/readyz")[0] == 200, 30, "readyz"), "notifier 1 ready")
    t.check(sms_fault(503, fault_s), "SMS double failing with 503 for %gs" % fault_s)
    produce_alerts(topic, alerts)
    t.check(h.wait_until(lambda: n1.metric("vigil_notifications_retried_total",
                                           'channel="sms"') > 0, 30, "SMS retries"),
            "notifier 1 waits to retry its SMS (longer than its lease)")
    # every row claimed by notifier 1 first: a row the second one finds
    # missing it may rightly claim and send itself (exactly once still)
    ids = [a["alert_id"] for a in alerts]
    t.check(h.wait_until(lambda: h.query("SELECT count(*) FROM notifications WHERE alert_id = ANY(%s)",
                                         ids)[0][0] >= len(exp), 30, "every row claimed"),
            "notifier 1 claimed every row (%d)" % len(exp))
    n2 = Notifier(topic, "nl2-%s" % rid, {"lease": "2"})
    try:
        ok = h.wait_until(delivered_all(d, exp), fault_s + 60, "deliveries after the fault")
        t.check(ok, "all delivered after the gateway recovered")
        t.check(h.wait_until(lambda: n1.idle_after(len(alerts))() and
                             n2.idle_after(len(alerts))(), 60, "both notifiers finished"),
                "both notifiers finished the alerts")
        c, _ = deliveries(d)
        check_exactly_once(c, exp, {a["alert_id"] for a in alerts}, "two notifiers, long retry")
        t.check(n2.msum("vigil_notifications_sent_total") == 0,
                "the second notifier sent nothing (%g)" % n2.msum("vigil_notifications_sent_total"))
        t.check(n2.metric("vigil_notifications_taken_over_total") == 0,
                "the second notifier took nothing over")
    finally:
        n2.stop()
        n1.stop()
        sms_fault(503, 0)
    h.delete_topics([topic])


# ---- kill ----------------------------------------------------------------

def run_kill():
    h.migrate()
    topic, group = "nt.%s.alerts" % rid, "nt-%s" % rid
    h.create_topics([topic], PARTS)
    d, studies = setup_directory()
    rng = random.Random(6)
    alerts = [make_alert(i, studies[i % 3], rng.choice("ABC"), "P-%03d" % rng.randrange(200),
                         rng.choice(["warning", "critical"]), prefix="k")
              for i in range(1500)]
    exp = expected_set(d, alerts)
    ids = {a["alert_id"] for a in alerts}
    produce_alerts(topic, alerts)
    # Small concurrency so the run lasts long enough to be killed in the middle.
    n = Notifier(topic, group, {"concurrency": "4"})

    def some_sent():
        c, _ = deliveries(d)
        return sum(1 for k in c if k[0] in ids) >= len(exp) // 4
    t.check(h.wait_until(some_sent, 60, "a quarter delivered"), "run under way")
    n.proc.send_signal(signal.SIGKILL)
    n.proc.wait()
    n.log.close()
    c, _ = deliveries(d)
    done_at_kill = sum(1 for k in c if k[0] in ids)
    in_flight = h.query("SELECT count(*) FROM notifications WHERE alert_id LIKE %s AND "
                        "state = 'sending'", rid + "-k%")[0][0]
    t.check(done_at_kill < len(exp), "killed mid-run (%d of %d delivered)" % (done_at_kill,
                                                                            len(exp)))
    n2 = Notifier(topic, group, {"concurrency": "4"})
    t.check(h.wait_until(delivered_all(d, exp), 120, "all after restart"),
            "every alert delivered after the restart")
    t.check(h.wait_until(n2.idle_after(1), 30, "restarted notifier idle"), "idle")
    c, _ = deliveries(d)
    mine = {k: v for k, v in c.items() if k[0] in ids}
    dups = sum(v - 1 for v in mine.values() if v > 1)
    t.check(all(k in mine for k in exp), "nothing lost")
    t.check(not [k for k in mine if k not in exp], "nothing to anyone not subscribed")
    print("SIGKILL mid-run: %d of %d delivered at the kill, %d rows in 'sending' at the kill, "
          "%d duplicate deliveries after the restart" % (done_at_kill, len(exp), in_flight, dups))
    t.check(dups <= in_flight, "duplicates (%d) only among sends in flight at the kill (%d)" % (
        dups, in_flight))
    rows = h.query("SELECT state, count(*) FROM notifications WHERE alert_id LIKE %s "
                   "GROUP BY state", rid + "-k%")
    t.check(dict(rows) == {"sent": len(exp)}, "notification log all sent: %s" % rows)
    n2.stop()


# ---- poison ------------------------------------------------------------

def run_poison():
    h.migrate()
    topic, group = "np.%s.alerts" % rid, "np-%s" % rid
    dlq = topic + ".dlq"
    h.create_topics([topic], PARTS)
    h.create_topics([dlq], 1)
    d, studies = setup_directory()
    good = [make_alert(i, studies[i % 3], "A", "P-%03d" % i, "critical") for i in range(12)]
    exp = expected_set(d, good)
    ids = {a["alert_id"] for a in good}
    vals = h.encode("alert", good)
    truncated = vals[0][:len(vals[0]) // 2]
    poison = [b"\xc3\x01not-an-alert-at-all", b"", truncated]
    items = []
    for i, (a, v) in enumerate(zip(good, vals)):
        items.append((("%s/%s" % (a["study_id"], a["subject_id"])).encode(), v))
        if i % 4 == 1:
            k = len(items)
            items.append((("poison-%d" % k).encode(), poison[i // 4],
                          [("trace-id", ("t-%d" % k).encode())]))
    h.produce(topic, items)
    n = Notifier(topic, group, {"dlq_topic": dlq})
    t.check(h.wait_until(delivered_all(d, exp), 90, "good alerts delivered"),
            "every good alert delivered")
    t.check(h.wait_until(n.idle_after(len(good)), 60, "good alerts final"), "good alerts final")
    t.check(h.wait_until(lambda: (n.metric("vigil_dead_letters_total") or 0) >= 3, 60,
                         "3 dead letters acknowledged"), "3 dead letters acknowledged")
    counts, _ = deliveries(d)
    check_exactly_once(counts, exp, ids, "good alerts among poison")

    ends = {p: 0 for p in range(PARTS)}
    src = {}
    for (p, off, key, val, hdrs) in h.consume_all(topic, idle=1.0):
        ends[p] = max(ends[p], off + 1)
        if key.startswith(b"poison-"):
            src[key] = (p, off, val)
    t.check(h.wait_until(lambda: h.committed(group, topic, PARTS) == ends, 60,
                         "offsets committed"), "offsets committed past the poison to the end")
    letters = h.consume_all(dlq, idle=1.0)
    t.check(len(letters) == 3, "3 messages on the dead-letter topic (%d)" % len(letters))
    for (_, _, key, val, hdrs) in letters:
        hd = {k: v.decode() if v is not None else None for k, v in hdrs}
        p, off, orig = src.get(key, (None, None, None))
        t.check(orig is not None and (val or b"") == orig,
                "dead letter %s is the original bytes" % key)
        t.check(hd.get("vigil.source.topic") == topic and
                hd.get("vigil.source.partition") == str(p) and
                hd.get("vigil.source.offset") == str(off),
                "dead letter %s names its source %s [%s] %s: %s" % (key, topic, p, off, hd))
        t.check(hd.get("vigil.error.class") and hd.get("vigil.error.message"),
                "dead letter %s says why: %s / %s" % (key, hd.get("vigil.error.class"),
                                                      hd.get("vigil.error.message")))
        t.check(hd.get("trace-id") == "t-%s" % key.decode().split("-")[1],
                "dead letter %s keeps its own headers" % key)
    t.check(n.metric("vigil_notifier_invalid_total") == 3, "3 counted as undecodable")
    n.stop()
    h.delete_topics([topic, dlq])


# ---- backlog beyond the offset tracker ------------------------------------

TRACKER = 20000  # the default per-partition tracker capacity


def run_backlog():
    h.migrate()
    topic, group = "nb.%s.alerts" % rid, "nb-%s" % rid
    h.create_topics([topic], 1)
    d = Directory()
    r = d.researcher("ivy", sms=False)
    study = d.study("BL")
    d.subscribe(r, study, None, "info", ["email"])
    n_alerts = TRACKER + 400
    alerts = [make_alert(i, study, "A", "P-%04d" % (i % 500), "critical", prefix="b")
              for i in range(n_alerts)]
    exp = expected_set(d, alerts)
    ids = {a["alert_id"] for a in alerts}
    t.check(len(exp) == n_alerts, "test data: one email per alert (%d)" % len(exp))
    produce_alerts(topic, alerts)

    # Nothing can finish while the SMTP server is away, so the alerts pile
    # up in progress: more than the tracker holds, since max_alerts is above.
    port = free_port()
    spool = tempfile.mkdtemp(prefix="smtp-backlog-")
    n = Notifier(topic, group, {"max_alerts": str(2 * TRACKER), "retry_base_ms": "200",
                                "retry_max_ms": "500", "concurrency": "64"},
                 smtp_url="smtp://127.0.0.1:%d" % port)
    full = h.wait_until(lambda: (n.metric("vigil_notifier_alerts_in_progress") or 0) >= TRACKER,
                        120, "the tracker full")
    t.check(full, "%d alerts in progress with the SMTP server away" % TRACKER)
    # The rest of the partition is read (and must wait, not be dropped):
    # the notifier has seen the whole backlog, or paused the partition.
    t.check(h.wait_until(lambda: (n.metric("vigil_consumed_total") or 0) >= n_alerts or
                         (n.metric("vigil_paused_partitions") or 0) > 0, 60,
                         "the backlog read or held back"), "the backlog beyond the tracker waits")
    smtp = subprocess.Popen(["/usr/bin/python3",
                             os.path.join(h.SRC, "tests", "services", "smtp_server.py"),
                             "--port", str(port), "--spool", spool],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok = h.wait_until(delivered_all(d, exp, spool), 300, "every alert's email")
        t.check(ok, "every one of %d alerts delivered" % n_alerts)
        counts, _ = deliveries(d, spool)
        missing, dup, extra = check_exactly_once(counts, exp, ids, "backlog")
        print("backlog: %d missing, %d duplicated, %d extra" % (missing, dup, extra))
        t.check(h.wait_until(lambda: h.committed(group, topic, 1) == {0: n_alerts}, 60,
                             "offsets at the end"),
                "committed offset at the end (%s)" % h.committed(group, topic, 1))
    finally:
        n.stop()
        smtp.terminate()
        smtp.wait(10)
    h.delete_topics([topic])


try:
    {"deliver": run_deliver, "faults": run_faults, "kill": run_kill, "lease": run_lease,
     "poison": run_poison, "backlog": run_backlog}[MODE]()
finally:
    print("notifier logs in", LOG_DIR)
t.done()
