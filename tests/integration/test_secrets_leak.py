#!/usr/bin/python3
"""Secrets and subject ids never reach the logs or /metrics (issue 7, item 5).

A short full pipeline against the services of scripts/services: a worker and
a notifier, both at log level debug, with their secrets given only through
files --
  VIGIL_PG_CONNINFO_FILE   a conninfo with password=... (read here from the
                           services' pgpass), no passfile, no --pg
  VIGIL_SMS_PASSWORD_FILE  the SMS double's password (HTTP Basic)
-- 20 subjects, each with a critical potassium and a normal one, routed to a
safety contact by email and SMS. Once every alert is delivered, every log
line of both processes (start to SIGTERM exit) and both /metrics outputs
are searched for each secret (as is, URL-encoded and inside an HTTP Basic
header), the conninfo text, and every raw subject id produced; any hit
fails. The pipeline must really have run (rows stored, refused records
counted, alerts delivered by SMS), or the search would prove nothing.
Error paths log the most: `vigil migrate` with a conninfo holding a wrong
password must fail naming PostgreSQL, and without that password.
"""
import base64
import os
import signal
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

t = h.Checks()
rid = h.run_id()
LOG_DIR = tempfile.mkdtemp(prefix="secrets-leak-")
SUBJECTS = 20


def pg_secret_conninfo():
    """The services' conninfo with the passfile replaced by password=..."""
    conninfo = h.env("VIGIL_PG_CONNINFO")
    parts = dict(p.split("=", 1) for p in conninfo.split())
    with open(parts.pop("passfile")) as f:
        password = f.readline().rstrip("\n").rsplit(":", 1)[1]
    parts["password"] = password
    return " ".join("%s=%s" % kv for kv in parts.items()), password


def secret_file(name, text):
    path = os.path.join(LOG_DIR, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


class Proc(h.Worker):
    """A vigil process with the harness's log, port and metrics plumbing but
    our own command line and environment."""

    def __init__(self, name, args, env):
        import subprocess
        self.log_path = os.path.join(LOG_DIR, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = h.track(subprocess.Popen([h.VIGIL] + args, stdout=self.log,
                                             stderr=subprocess.STDOUT, env=env))
        self.port = None


def leaks(text, needles):
    """Returns the needles (name, value) found in text."""
    return [name for name, v in needles if v and v in text]


def main():
    h.migrate()
    conninfo, pg_password = pg_secret_conninfo()
    sms_user = h.env("VIGIL_SMS_USER")
    with open(h.env("VIGIL_SMS_PASSWORD_FILE")) as f:
        sms_password = f.read().strip()
    basic = base64.b64encode(("%s:%s" % (sms_user, sms_password)).encode()).decode()
    secrets = [("PostgreSQL password", pg_password),
               ("PostgreSQL password, URL-encoded", urllib.parse.quote(pg_password, safe="")),
               ("PostgreSQL conninfo", "password=" + pg_password),
               ("SMS password", sms_password),
               ("SMS password, URL-encoded", urllib.parse.quote(sms_password, safe="")),
               ("SMS Basic credentials", basic)]
    t.check(len(pg_password) >= 16 and len(sms_password) >= 16,
            "secrets long enough to be found only where they leak")
    # The search itself must work, or every check below passes vacuously.
    t.check("SMS password" in leaks("x " + sms_password + " y", secrets), "leak search works")

    base_env = {k: v for k, v in os.environ.items()
                if k not in ("VIGIL_PG_CONNINFO", "VIGIL_SMS_PASSWORD", "PGPASSWORD",
                             "PGPASSFILE")}
    base_env["VIGIL_PG_CONNINFO_FILE"] = secret_file("pg_conninfo", conninfo)
    base_env["VIGIL_SMS_PASSWORD_FILE"] = h.env("VIGIL_SMS_PASSWORD_FILE")
    base_env["VIGIL_LOG_LEVEL"] = "debug"
    # libpq would fall back to ~/.pgpass; point it at nothing.
    base_env["PGPASSFILE"] = os.path.join(LOG_DIR, "no-such-pgpass")

    topic = "sl.%s.obs" % rid
    alerts_topic = topic + ".alerts"
    h.create_topics([topic, topic + ".dlq", alerts_topic], 3)

    study = "%s-S" % rid
    contact = "%s-safety" % rid
    phone = "+1555%07d" % (int(rid[-6:]) % 10000000)
    h.query("INSERT INTO researchers (researcher_id, name, email, phone, active) "
            "VALUES (%s, %s, %s, %s, true)", contact, "safety", "safety.%s@test.example" % rid,
            phone)
    h.query("INSERT INTO studies (study_id, name, safety_contact_researcher_id) "
            "VALUES (%s, %s, %s)", study, "S", contact)
    h.query("INSERT INTO sites (study_id, site_id, name) VALUES (%s, 'SITE-1', 'one')", study)

    kafka = ["-b", h.bootstrap(), "-X", "session.timeout.ms=6000",
             "-X", "heartbeat.interval.ms=1000"]
    w_env = dict(base_env, VIGIL_DLQ_TOPIC=topic + ".dlq", VIGIL_ALERTS_TOPIC=alerts_topic)
    worker = Proc("worker", ["worker", "--rules",
                             os.path.join(h.SRC, "tests/integration/rules/pipeline.yaml"),
                             "--topic", topic, "--group", "sl-w-" + rid, "--http", "127.0.0.1:0",
                             "--threads", "2", "--grace", "20"] + kafka, w_env)
    notifier = Proc("notifier", ["notifier", "-t", alerts_topic, "-g", "sl-n-" + rid,
                                 "--http", "127.0.0.1:0", "--grace", "10",
                                 "--smtp-url", h.env("VIGIL_SMTP_URL"),
                                 "--sms-url", h.env("VIGIL_SMS_URL"),
                                 "-s", "rate_per_min=0", "-s", "retry_base_ms=200",
                                 "-s", "directory_refresh=60"] + kafka, base_env)

    subjects = ["%s-SUBJ-%03d" % (rid, i) for i in range(SUBJECTS)]
    records = []
    for i, s in enumerate(subjects):
        records.append(h.observation(rid, 2 * i, study, s, value=7.1))      # k-high: critical
        records.append(h.observation(rid, 2 * i + 1, study, s, value=4.2))  # normal
    # Two the worker refuses (dead letters, logged with their subject):
    # a unit it cannot convert and a LOINC no rule knows with a bad range.
    bad = [h.observation(rid, 1000, study, subjects[0], unit="furlong/fortnight"),
           h.observation(rid, 1001, study, subjects[1], ref_low=9.0, ref_high=1.0)]
    h.produce_observations(topic, records + bad)

    stored = h.wait_until(lambda: h.stored(study) >= len(records), 40,
                          "%d observations stored" % len(records))
    t.check(stored, "the worker stored the observations (with the conninfo from a file)")
    def invalid():
        st, body = worker.get("/metrics")
        return sum(float(line.split()[-1]) for line in body.splitlines()
                   if line.startswith("vigil_invalid_total") or
                   line.startswith("vigil_data_quality_findings_total"))
    t.check(h.wait_until(lambda: invalid() >= 2, 20, "the refused records counted"),
            "the refused records were dead-lettered or flagged (%s)" % invalid())

    def sms_sent():
        n = 0
        for e in h.read_jsonl(h.env("VIGIL_SMS_LOG")):
            n += e["fields"].get("To") == phone and e.get("status") == 201
        return n >= SUBJECTS
    t.check(h.wait_until(sms_sent, 40, "%d SMS to the safety contact" % SUBJECTS),
            "the notifier sent every critical alert by SMS (password from a file)")

    metrics = {}
    for name, p in (("worker", worker), ("notifier", notifier)):
        st, body = p.get("/metrics")
        t.check(st == 200 and len(body) > 100, "%s /metrics answered" % name)
        metrics[name] = body
    rc_w = worker.stop(signal.SIGTERM)
    rc_n = notifier.stop(signal.SIGTERM)
    t.check(rc_w == 0 and rc_n == 0, "both exited cleanly (worker %s, notifier %s)" % (rc_w, rc_n))

    needles = secrets + [("subject id %s" % s, s) for s in subjects]
    for name, p in (("worker", worker), ("notifier", notifier)):
        text = p.text()
        lines = text.splitlines()
        t.check(len(lines) >= 5, "%s logged (%d lines)" % (name, len(lines)))
        bad = [(i + 1, leaks(line, needles)) for i, line in enumerate(lines)
               if leaks(line, needles)]
        t.check(not bad, "%s log leaks: %s" % (name, bad[:5]))
        for i, found in bad[:5]:
            print("  %s.log:%d: %s" % (name, i, found))
        found = leaks(metrics[name], needles)
        t.check(not found, "%s /metrics leaks: %s" % (name, found[:5]))

    # An error path: a wrong password, from a file like every secret.
    import subprocess
    wrong = base64.b16encode(os.urandom(12)).decode().lower()
    bad_env = dict(base_env, VIGIL_PG_CONNINFO_FILE=secret_file(
        "pg_conninfo_wrong", conninfo.replace("password=" + pg_password, "password=" + wrong)))
    p = subprocess.run([h.VIGIL, "migrate"], env=bad_env, capture_output=True, text=True,
                       timeout=30 * h.SCALE)
    out = p.stdout + p.stderr
    t.check(p.returncode != 0 and "PostgreSQL" in out,
            "migrate with a wrong password fails and says so: %r" % out[-200:])
    t.check(wrong not in out and pg_password not in out,
            "the failed connection does not print the password")
    print("migrate with a wrong password said: %s" % out.strip().splitlines()[-1][:200])
    print("logs: worker %d lines, notifier %d lines; kept in %s" % (
        len(worker.text().splitlines()), len(notifier.text().splitlines()), LOG_DIR))
    h.delete_topics([topic, topic + ".dlq", alerts_topic])
    os.unlink(os.path.join(LOG_DIR, "pg_conninfo"))
    os.unlink(os.path.join(LOG_DIR, "pg_conninfo_wrong"))
    t.done()


main()
