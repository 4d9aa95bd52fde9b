#!/usr/bin/python3
"""vigil notifier over SMTP with STARTTLS (issue 7, item 5), end to end.

Uses the broker and PostgreSQL of scripts/services (like the integration
tests; its own topics, study and researcher) but its OWN SMTP server: an
aiosmtpd on 127.0.0.1 that offers STARTTLS with a certificate for localhost
from a CA made here and refuses mail before TLS.

  1. notifier with smtp_tls=require, smtp_ca_file = the right CA: an alert
     reaches the researcher, over TLS, and its notification is 'sent';
  2. a notifier with smtp_ca_file = a CA that did not sign the certificate,
     on a second alert: the send is attempted and refused with a
     certificate error recorded in notifications.last_error, the
     notification is not 'sent', and the server received nothing.

Afterwards this run's notification rows are failed on purpose so no other
notifier sharing the database retries them.
"""
import asyncio
import logging
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import tls_lib  # noqa: E402
import vigil_harness as h  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402


class Recorder:
    def __init__(self):
        self.got = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append((list(envelope.rcpt_tos), session.ssl is not None, envelope.content))
        return "250 OK"


def make_alert(rid, i, study):
    t0 = 1767225600000
    return dict(alert_id="%s-a%d" % (rid, i), kind="signal", rule_id="alt-3xuln",
                rule_version=1, severity="warning", ctcae_grade=0, study_id=study,
                site_id="A", subject_id="P-001",
                evidence=[dict(observation_id="%s-o%d" % (rid, i), loinc="1742-6",
                               value=250.0, unit="U/L", effective_time=t0 + i)],
                message="ALT 250 U/L above 3x ULN", observed_time=t0 + i,
                detected_time=int(time.time() * 1000), retracts_alert_id=None)


def notification(alert_id):
    rows = h.query("SELECT state, attempts, coalesce(last_error, '') FROM notifications "
                   "WHERE alert_id = %s", alert_id)
    return rows[0] if rows else None


def start_notifier(topic, group, smtp_port, ca, log_path):
    args = [h.VIGIL, "notifier", "-t", topic, "-g", group, "--http", "127.0.0.1:0",
            "--grace", "5", "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"),
            "--smtp-url", "smtp://localhost:%d" % smtp_port,
            "-s", "smtp_tls=require", "-s", "smtp_ca_file=" + ca,
            "-s", "smtp_timeout_ms=5000", "-s", "rate_per_min=0", "-s", "lease=3",
            "-s", "retry_base_ms=500", "-s", "retry_max_ms=2000", "-s", "give_up=300",
            "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"]
    log = open(log_path, "wb")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=tls_lib.die_with_parent)


def main():
    t = h.Checks()
    t0 = time.monotonic()
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    rid = h.run_id()
    tmp = tempfile.mkdtemp(prefix="vigil-notifier-tls.")
    ctl = None
    procs = []
    ids = []
    ok = False
    try:
        h.migrate()
        tls_lib.make_ca(tmp, "ca")
        tls_lib.make_ca(tmp, "other")
        cert, key = tls_lib.make_cert(tmp, "ca", "smtp", "localhost",
                                      ["DNS:localhost", "IP:127.0.0.1"])
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        rec = Recorder()
        port = tls_lib.free_port()
        ctl = Controller(rec, hostname="127.0.0.1", port=port, tls_context=ctx,
                         require_starttls=True, loop=asyncio.new_event_loop())
        ctl.start()

        # One researcher subscribed by email to one study.
        researcher, study = "%s-ana" % rid, "%s-S1" % rid
        mail = "ana.%s@test.example" % rid
        h.query("INSERT INTO researchers (researcher_id, name, email) VALUES (%s, %s, %s)",
                researcher, "ana", mail)
        h.query("INSERT INTO studies (study_id, name) VALUES (%s, %s)", study, "S1")
        h.query("INSERT INTO sites (study_id, site_id, name) VALUES (%s, 'A', 'A')", study)
        h.query("INSERT INTO subscriptions (researcher_id, study_id, min_severity, channels) "
                "VALUES (%s, %s, 'info', %s)", researcher, study, ["email"])
        topics = ["tls.%s.ok" % rid, "tls.%s.bad" % rid]
        h.create_topics(topics, 1)

        # 1. The right CA.
        a1 = make_alert(rid, 1, study)
        ids.append(a1["alert_id"])
        log1 = os.path.join(tmp, "notifier-ok.log")
        n1 = start_notifier(topics[0], "tls-ok-" + rid, port, os.path.join(tmp, "ca.pem"), log1)
        procs.append(n1)
        h.produce(topics[0], [(("%s/P-001" % study).encode(), v)
                              for v in h.encode("alert", [a1])])
        row = h.wait_until(lambda: (notification(a1["alert_id"]) or ("",))[0] == "sent", 60,
                           "the alert's email to be sent")
        t.check(row, "notification with the right CA: %s" % (notification(a1["alert_id"]),))
        t.check(len(rec.got) == 1, "server received %d messages, want 1" % len(rec.got))
        if rec.got:
            rcpt, over_tls, data = rec.got[0]
            t.check(rcpt == [mail], "recipient %s" % rcpt)
            t.check(over_tls, "the alert's email arrived without TLS")
            t.check(a1["alert_id"].encode() in data, "the email names the alert")
        tls_lib.stop(n1)
        t.check(n1.returncode == 0, "notifier exited %s on SIGTERM" % n1.returncode)

        # 2. A CA that did not sign the server's certificate.
        a2 = make_alert(rid, 2, study)
        ids.append(a2["alert_id"])
        log2 = os.path.join(tmp, "notifier-bad.log")
        n2 = start_notifier(topics[1], "tls-bad-" + rid, port, os.path.join(tmp, "other.pem"),
                            log2)
        procs.append(n2)
        h.produce(topics[1], [(("%s/P-001" % study).encode(), v)
                              for v in h.encode("alert", [a2])])
        row = h.wait_until(lambda: (lambda r: r if r and r[1] >= 1 and r[2] else None)(
            notification(a2["alert_id"])), 60, "a refused attempt to be recorded")
        t.check(row, "an attempt with the wrong CA was recorded: %s"
                % (notification(a2["alert_id"]),))
        if row:
            print("wrong CA: state %s, attempts %d, last_error %r" % row, flush=True)
            t.check(row[0] != "sent", "wrong CA notification state %s" % row[0])
            t.check("certificate" in row[2].lower() or "ssl" in row[2].lower(),
                    "last_error names the certificate: %r" % row[2])
        t.check(len(rec.got) == 1, "wrong CA: server received %d messages, want still 1"
                % len(rec.got))
        tls_lib.stop(n2)
        ok = t.failed == 0
        return t
    finally:
        for p in procs:
            tls_lib.stop(p)
        if ctl is not None:
            ctl.stop()
        for a in ids:
            try:
                h.query("UPDATE notifications SET state = 'failed', next_attempt_at = NULL, "
                        "last_error = coalesce(last_error, 'test cleanup') "
                        "WHERE alert_id = %s AND state <> 'sent'", a)
            except Exception as e:
                print("cleanup of %s failed: %s" % (a, e))
        if not ok:
            for name in ("notifier-ok.log", "notifier-bad.log"):
                print("--- %s ---\n%s" % (name, tls_lib.tail(os.path.join(tmp, name), 25)))
        print("notifier smtp tls test took %s" % tls_lib.elapsed(t0), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main().done()
