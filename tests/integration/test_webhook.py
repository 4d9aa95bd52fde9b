#!/usr/bin/python3
"""The webhook channel (issue #14, point 6) end to end: two `vigil notifier`
replicas, a subscriber (webhook_subscribers) whose receiver here answers 503
twice and then 200, and the signatures checked by an independent
implementation, the `standardwebhooks` package from PyPI (scripts/setup
puts it in .deps/py):

  - every attempt's webhook-signature verifies with the subscriber's
    whsec_ secret; a body altered by one byte does not
  - the third attempt is accepted; the three carry the same webhook-id
    (the receiver's idempotency key) and the alert as JSON
  - the notification log has one 'webhook' row, sent, 3 attempts; both
    replicas running, the alert is accepted once
  - a warning alert does not reach a subscriber of critical alerts only;
    an alert of another study does not reach it either

test_webhook.py https: subscribers over TLS. One whose certificate is
signed by the CA named in webhook_ca_file receives the alert, verified; one
whose certificate comes from another CA never receives a request (the
handshake fails, the row retries with the certificate error recorded).
"""
import base64
import json
import os
import secrets
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
import ack_lib as A  # noqa: E402
from ack_lib import h  # noqa: E402

sys.path.insert(0, os.path.join(h.SRC, ".deps", "py"))
from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # noqa: E402

t = h.Checks()
rid = h.run_id()
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
hook = Webhook(SECRET)


class Receiver(BaseHTTPRequestHandler):
    lock = threading.Lock()
    attempts = []  # (alert_id, headers, verified, tamper_rejected, status)

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = hook.verify(body, hdrs)
            verified = True
        except WebhookVerificationError:
            payload, verified = json.loads(body), False
        try:
            hook.verify(body.replace(b"potassium", b"Potassium"), hdrs)
            tamper_rejected = False
        except WebhookVerificationError:
            tamper_rejected = True
        aid = payload.get("data", {}).get("alert_id")
        with Receiver.lock:
            n = sum(1 for a in Receiver.attempts if a[0] == aid)
            status = 503 if n < 2 else 200
            Receiver.attempts.append((aid, hdrs, verified, tamper_rejected, status, payload))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def of(aid):
    with Receiver.lock:
        return [a for a in Receiver.attempts if a[0] == aid]


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/vigil" % srv.server_address[1]
    s = A.Setup(rid, notifier=False)
    other = s.study + "-other"
    h.query("INSERT INTO studies (study_id, name) VALUES (%s, 'other')", other)
    h.query("INSERT INTO webhook_subscribers (subscriber_id, study_id, min_severity, url, secret) "
            "VALUES (%s, %s, 'critical', %s, %s)", rid + "-ctms", s.study, url, SECRET)
    topic = "wh.%s.alerts" % rid
    h.create_topics([topic], 1)
    notifiers = [A.Proc("notifier", [
        "notifier", "-t", topic, "-g", "wh-" + rid, "--http", "127.0.0.1:0", "--grace", "5",
        "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"),
        "--smtp-url", h.env("VIGIL_SMTP_URL"), "-s", "retry_base_ms=300",
        "-s", "retry_max_ms=1000", "-s", "webhook_poll_ms=100", "-s", "lease=30"])
        for _ in range(2)]
    try:
        a1, _ = s.alert(1, produce=False)
        ok = h.wait_until(lambda: any(a[4] == 200 for a in of(a1)), 60, "the accepted delivery")
        t.check(ok, "the alert reached the subscriber")
        got = of(a1)
        t.check(len(got) == 3 and [a[4] for a in got] == [503, 503, 200],
                "503, 503, then accepted: %r" % [a[4] for a in got])
        t.check(all(a[2] for a in got), "every attempt's signature verified by standardwebhooks")
        t.check(all(a[3] for a in got), "a body altered by one byte fails verification")
        ids = {a[1].get("webhook-id") for a in got}
        t.check(len(ids) == 1 and next(iter(ids)).startswith("msg_"),
                "one webhook-id across the retries: %r" % ids)
        p = got[-1][5]
        t.check(p.get("type") == "alert.raised" and p["data"]["alert_id"] == a1 and
                p["data"]["severity"] == "critical" and p["data"]["study_id"] == s.study,
                "the body is the alert as JSON: %r" % p)
        row = h.wait_until(lambda: h.query(
            "SELECT state, attempts, provider_message_id FROM notifications "
            "WHERE alert_id = %s AND channel = 'webhook' AND state = 'sent'", a1), 20,
            "the notification row final")
        t.check(row and row[0][1] == 3 and row[0][2] == next(iter(ids)),
                "the notification log: one webhook row, sent after 3 attempts: %r" % row)
        # the barrier for what must not arrive: alerts that do, after those that do not
        aw, _ = s.alert(2, severity="warning", produce=False)
        h.query("INSERT INTO alerts (alert_id, rule_id, rule_version, severity, study_id, "
                "site_id, subject_id, message, observed_at, detected_at) VALUES "
                "(%s, 'k-high', 1, 'critical', %s, 'A', 'X', 'potassium', now(), now())",
                rid + "-other1", other)
        a3, _ = s.alert(3, produce=False)
        t.check(h.wait_until(lambda: any(a[4] == 200 for a in of(a3)), 60, "the barrier alert"),
                "a later critical alert delivered")
        t.check(not of(aw), "a warning did not reach a critical-only subscriber")
        t.check(not of(rid + "-other1"), "another study's alert did not reach it")
        t.check(len([a for a in of(a1) if a[4] == 200]) == 1,
                "with two notifiers running, alert 1 was accepted once")
        n = h.query("SELECT count(*) FROM notifications WHERE alert_id = %s "
                    "AND channel = 'webhook'", a1)[0][0]
        t.check(n == 1, "one webhook notification row for it (%d)" % n)
        m = sum((x.metric("vigil_webhook_notifications_total", 'outcome="retried"') or 0)
                for x in notifiers)
        t.check(m >= 4, "retries counted in /metrics (%d)" % m)
    finally:
        for x in notifiers:
            x.stop()
        s.stop()
        srv.shutdown()


def https():
    sys.path.insert(0, os.path.join(h.SRC, "tests", "security"))
    import tls_lib
    d = os.path.join(A.LOG_DIR, "tls")
    os.makedirs(d, exist_ok=True)
    tls_lib.make_ca(d, "ca")
    tls_lib.make_ca(d, "rogue")
    good = tls_lib.make_cert(d, "ca", "good", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    bad = tls_lib.make_cert(d, "rogue", "bad", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    servers = []
    for cert, key in (good, bad):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    s = A.Setup(rid, notifier=False)
    for name, srv in (("good", servers[0]), ("rogue", servers[1])):
        h.query("INSERT INTO webhook_subscribers (subscriber_id, study_id, min_severity, url, "
                "secret) VALUES (%s, %s, 'critical', %s, %s)", "%s-%s" % (rid, name), s.study,
                "https://127.0.0.1:%d/%s" % (srv.server_address[1], name), SECRET)
    topic = "whs.%s.alerts" % rid
    h.create_topics([topic], 1)
    n = A.Proc("notifier", [
        "notifier", "-t", topic, "-g", "whs-" + rid, "--http", "127.0.0.1:0", "--grace", "5",
        "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"),
        "--smtp-url", h.env("VIGIL_SMTP_URL"), "-s", "retry_base_ms=200",
        "-s", "retry_max_ms=500", "-s", "webhook_poll_ms=100",
        "-s", "webhook_ca_file=" + os.path.join(d, "ca.pem")])
    try:
        a1, _ = s.alert(1, produce=False)
        t.check(h.wait_until(lambda: any(a[4] == 200 for a in of(a1)), 60, "the TLS delivery"),
                "delivered over https to the subscriber whose CA is configured")
        t.check(all(a[2] for a in of(a1)), "its signature verified by standardwebhooks")

        def rogue_tried():
            r = h.query("SELECT attempts, last_error FROM notifications WHERE alert_id = %s "
                        "AND researcher_id = %s", a1, rid + "-rogue")
            return r if r and r[0][0] >= 3 else None
        r = h.wait_until(rogue_tried, 60, "three attempts at the rogue subscriber")
        t.check(r is not None and "certificate" in (r[0][1] or "").lower(),
                "the rogue certificate refused, the error recorded: %r" % (r,))
        t.check(len(of(a1)) == 3, "the rogue receiver never got a request (only the good "
                                  "one's three: 503, 503, 200): %d" % len(of(a1)))
    finally:
        n.stop()
        s.stop()
        for srv in servers:
            srv.shutdown()


{"retry": main, "https": https}[sys.argv[1] if len(sys.argv) > 1 else "retry"]()
t.done()
