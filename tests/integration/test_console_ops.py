#!/usr/bin/python3
"""`vigil console`'s operations endpoints and route table over real HTTP:
/healthz answers while PostgreSQL is unreachable and /readyz says 503 with
the reason (vigil_console_pg_up 0); with PostgreSQL, /readyz is 200; an
unknown path is 404, a method a route does not take is 405 with Allow, a
body over the limit is 413; without link keys or an inbound secret the
acknowledgement pages and the inbound webhook are not there at all. With
metrics_listen, /metrics moves to that port alone (404 on the main one,
where the chart's NetworkPolicy admits the ingress controller) while both
answer the probes."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import ack_lib as A  # noqa: E402
from ack_lib import h  # noqa: E402

t = h.Checks()


def start(pg, extra=None, env=None):
    port = A.free_port()
    p = A.Proc("console", ["console", "--listen", "127.0.0.1:%d" % port, "--pg", pg]
               + (extra or []), env=env)
    base = "http://127.0.0.1:%d" % port

    def up():
        try:
            return A.http("GET", base + "/healthz")[0] == 200
        except OSError:
            return False
    t.check(h.wait_until(up, 30, "console up"), "the console answers /healthz")
    return p, base


p, base = start("host=127.0.0.1 port=1 connect_timeout=1")
try:
    st, body, _ = A.http("GET", base + "/readyz")
    t.check(st == 503 and "PostgreSQL not reachable" in body,
            "PostgreSQL down: /readyz 503 with the reason (%s %r)" % (st, body))
    st, body, _ = A.http("GET", base + "/metrics")
    t.check(st == 200 and "vigil_console_pg_up 0" in body, "/metrics: vigil_console_pg_up 0")
    t.check(A.http("GET", base + "/ack/x")[0] == 404, "no link keys: no acknowledgement pages")
    t.check(A.http("POST", base + "/sms/inbound", b"From=x")[0] == 404,
            "no inbound secret: no inbound webhook")
    t.check(A.http("POST", base + "/healthz", b"")[0] == 405, "POST /healthz: 405")
    t.check(A.http("GET", base + "/nowhere")[0] == 404, "an unknown path: 404")
finally:
    t.check(p.stop() == 0, "SIGTERM: exit 0")

h.migrate()
keys = os.path.join(A.LOG_DIR, "keys")
with open(keys, "w") as f:
    f.write("k1 %s\n" % ("x" * 32))
p, base = start(h.env("VIGIL_PG_CONNINFO"), ["-s", "link_keys_file=" + keys],
                env={"VIGIL_SMS_INBOUND_SECRET": "s" * 24})
try:
    t.check(h.wait_until(lambda: A.http("GET", base + "/readyz")[0] == 200, 30, "ready"),
            "PostgreSQL up: /readyz 200")
    st, _, hdr = A.http("GET", base + "/sms/inbound")
    t.check(st == 405 and hdr.get("Allow") == "POST", "GET /sms/inbound: 405, Allow: POST")
    st, _, _ = A.http("POST", base + "/sms/inbound", b"x" * (70 * 1024),
                      {"Content-Type": "application/x-www-form-urlencoded"})
    t.check(st == 413, "a body over 64 KiB: 413 (%s)" % st)
    st, body, hdr = A.http("GET", base + "/ack/garbage")
    t.check(st == 400 and "Content-Security-Policy" in hdr and "no-store" in hdr.get(
        "Cache-Control", ""), "a page: 400 for garbage, with CSP and no-store")
finally:
    t.check(p.stop() == 0, "SIGTERM: exit 0")

# metrics_listen: /metrics on its own port only
mport = A.free_port()
p, base = start(h.env("VIGIL_PG_CONNINFO"), ["-s", "metrics_listen=127.0.0.1:%d" % mport])
mbase = "http://127.0.0.1:%d" % mport
try:
    t.check(h.wait_until(lambda: A.http("GET", mbase + "/readyz")[0] == 200, 30, "metrics port ready"),
            "metrics_listen: /readyz 200 on the metrics port")
    st, body, _ = A.http("GET", mbase + "/metrics")
    t.check(st == 200 and "vigil_console_pg_up" in body and "vigil_console_alert_streams" in body,
            "metrics_listen: the console's metrics on the metrics port (%s)" % st)
    t.check(A.http("GET", base + "/metrics")[0] == 404, "metrics_listen: no /metrics on the main port")
    t.check(A.http("GET", base + "/healthz")[0] == 200 and A.http("GET", base + "/console/")[0] == 200,
            "metrics_listen: the main port still answers probes and pages")
    t.check(A.http("GET", mbase + "/console/")[0] == 404, "the metrics port serves no pages")
finally:
    t.check(p.stop() == 0, "SIGTERM: exit 0")
t.done()
