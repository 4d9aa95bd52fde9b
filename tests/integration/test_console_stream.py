"""The live open-alert queue: GET /api/v1/alerts/stream (Server-Sent Events).

A viewer of study S1 opens a stream; an alert of S1 and one of S2 are
inserted; within a few seconds the stream carries exactly the S1 alert (the
filter is the caller's studies, in SQL). Also: no session is 401 and no
stream; a global admin's stream carries both studies; heartbeat comments
arrive while nothing happens; streams beyond VIGIL_CONSOLE_MAX_STREAMS are
503 with Retry-After; the page uses EventSource with polling as its
fallback; another user's acknowledgement (and a resolution) of an S1 alert
reaches the viewer's stream as a "change" event while one in S2 reaches
only the admin's; SIGTERM ends open streams cleanly (the console exits 0 promptly
and the client sees the end of the stream).
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("stream")
E.seed()
MAX_STREAMS = 3
E.start(threads=32, pg_connections=4, extra_env={"VIGIL_CONSOLE_MAX_STREAMS": str(MAX_STREAMS)})


class Stream:
    """An SSE client on a raw socket: collects events and comments as they
    arrive, on its own thread."""

    def __init__(self, cookie=None, token=None):
        self.events, self.comments, self.ended = [], [], False
        self.conn = http.client.HTTPConnection("127.0.0.1", E.port, timeout=30)
        hd = {"Accept": "text/event-stream"}
        if cookie:
            hd["Cookie"] = "__Host-vigil_session=" + cookie
        if token:
            hd["Authorization"] = "Bearer " + token
        self.conn.request("GET", "/api/v1/alerts/stream", headers=hd)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        if self.status == 200:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        else:
            self.body = self.resp.read()
            self.conn.close()

    def _read(self):
        event, data = None, []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    self.events.append((event, json.loads("\n".join(data))))
                    event, data = None, []
        except Exception:  # noqa: BLE001 - closed under the reader (close())
            pass
        self.ended = True

    def ids(self):
        return [d["alert_id"] for e, d in self.events if e == "alert"]

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()


viewer_cookie, _, _ = E.signin("viewer")
admin_cookie, _, _ = E.signin("admin")

# No credentials: 401, JSON, no stream.
anon = Stream()
C.check(anon.status == 401, "no session: 401 (got %d)" % anon.status)

v = Stream(cookie=viewer_cookie)
C.check(v.status == 200 and v.headers.get("content-type", "").startswith("text/event-stream"),
        "viewer of S1: 200 text/event-stream (%d %s)" % (v.status, v.headers.get("content-type")))
a = Stream(cookie=admin_cookie)
C.check(a.status == 200, "global admin: 200 (%d)" % a.status)
# The stream is set up once its first bytes (retry + a comment) arrived.
h.wait_until(lambda: v.comments and a.comments, 10, "the streams' first comment")

t0 = time.monotonic()
E.alert("live-S1", "S1", message="mine")
E.alert("live-S2", "S2", message="other study")
got = h.wait_until(lambda: "live-S1" in v.ids() or None, 10, "the S1 alert on the viewer's stream")
took = time.monotonic() - t0
C.check(got, "the viewer's stream carries the S1 alert within %.1f s" % took)
print("figure console_stream_latency %.2f s (insert to event, 1 s polls)" % took, flush=True)
h.wait_until(lambda: {"live-S1", "live-S2"} <= set(a.ids()) or None, 10, "both alerts on the admin's stream")
C.check({"live-S1", "live-S2"} <= set(a.ids()), "the admin's stream carries both studies' alerts: %s" % a.ids())
# Two more polls: nothing of S2 arrives late, the S1 alert is not repeated.
time.sleep(2.5)  # an absence cannot be waited for: two more polls (1 s each)
C.check(v.ids() == ["live-S1"], "the viewer's stream carries exactly the S1 alert, once: %s" % v.ids())
ev = [d for e, d in v.events if e == "alert"]
C.check(ev and ev[0]["study_id"] == "S1" and ev[0]["state"] == "open" and ev[0]["message"] == "mine",
        "the event's data is the alert as the list answers it: %s" % (ev[:1],))

# Lifecycle changes: another user's acknowledgement of an S1 alert reaches
# the viewer's stream as a "change" event; an acknowledgement in S2 reaches
# the admin's stream (so it was produced) and never the viewer's.
def changes(s):
    return [(d["alert_id"], d["state"]) for e, d in s.events if e == "change"]


resp_cookie, resp_csrf, _ = E.signin("responder")
t0 = time.monotonic()
st, _, body = E.request("POST", "/api/v1/alerts/live-S1/ack", {"note": "seen"}, cookie=resp_cookie,
                        csrf=resp_csrf)
C.check(st == 200 and body.get("result") == "acknowledged", "the responder acknowledges live-S1: %s %s"
        % (st, body))
r = subprocess.run([h.VIGIL, "alerts", "ack", "live-S2", "--as", "admin", "--conninfo", E.conninfo],
                   capture_output=True, text=True)
C.check(r.returncode == 0 and "acknowledged" in r.stdout, "live-S2 acknowledged by the CLI: %s %s"
        % (r.stdout, r.stderr))
got = h.wait_until(lambda: ("live-S1", "acknowledged") in changes(v) or None, 10,
                   "the acknowledgement on the viewer's stream")
took = time.monotonic() - t0
C.check(got, "another user's acknowledgement reaches the viewer's stream within %.1f s" % took)
print("figure console_stream_change_latency %.2f s (ack to event, 1 s polls)" % took, flush=True)
h.wait_until(lambda: {("live-S1", "acknowledged"), ("live-S2", "acknowledged")} <= set(changes(a)) or None,
             10, "both acknowledgements on the admin's stream")
C.check({("live-S1", "acknowledged"), ("live-S2", "acknowledged")} <= set(changes(a)),
        "the admin's stream carries both studies' acknowledgements: %s" % changes(a))
time.sleep(2.5)  # an absence cannot be waited for: two more polls (1 s each)
C.check(changes(v) == [("live-S1", "acknowledged")],
        "the viewer's stream carries S1's acknowledgement once and never S2's: %s" % changes(v))
ch = [d for e, d in v.events if e == "change"]
C.check(ch and ch[0]["kind"] == "acknowledged" and isinstance(ch[0]["event_id"], int) and ch[0]["at"],
        "a change event names the kind, the audit event id and when: %s" % ch[:1])
# and a resolution, by the command line this time
r = subprocess.run([h.VIGIL, "alerts", "resolve", "live-S1", "--as", "responder", "--category", "other",
                    "--note", "done", "--conninfo", E.conninfo], capture_output=True, text=True)
got = h.wait_until(lambda: ("live-S1", "resolved") in changes(v) or None, 10, "the resolution on the stream")
C.check(got and changes(v)[-1] == ("live-S1", "resolved"), "the resolution reaches the viewer's stream: %s %s"
        % (changes(v), r.stderr))

# Heartbeats while nothing happens (every 5 s), so proxies keep it open.
n0 = sum(1 for c in v.comments if "keep-alive" in c)
h.wait_until(lambda: sum(1 for c in v.comments if "keep-alive" in c) > n0, 12, "a heartbeat comment")
C.check(sum(1 for c in v.comments if "keep-alive" in c) > n0, "heartbeat comments arrive while idle")

# The bound: MAX_STREAMS open (2 so far), the next one fits, then 503.
third = Stream(cookie=viewer_cookie)
over = Stream(cookie=viewer_cookie)
C.check(third.status == 200 and over.status == 503 and over.headers.get("retry-after"),
        "streams beyond %d: 503 with Retry-After (got %d, %d %s)"
        % (MAX_STREAMS, third.status, over.status, over.headers.get("retry-after")))
# A stream whose client went away gives its place back. The server sees the
# close on a write: the first heartbeat after it may still be accepted by
# the kernel, the next one fails (two heartbeats, 10 s, and a margin).
third.close()
again = h.wait_until(lambda: (lambda s: s if s.status == 200 else s.close())(Stream(cookie=viewer_cookie)),
                     15, "a place freed by a closed stream", interval=0.5)
C.check(again is not None, "a closed stream's place is given back")
st, _, text = E.request("GET", "/metrics")
C.check("vigil_console_alert_streams" in text, "/metrics has vigil_console_alert_streams")

# Ordinary API requests still work with streams open (they hold no slot).
st, _, body = E.request("GET", "/api/v1/alerts?state=open", cookie=viewer_cookie)
C.check(st == 200, "the alert list answers while streams are open (%d)" % st)

# The page served from the binary listens to the stream and keeps polling
# as the fallback.
st, _, js = E.request("GET", "/console/console.js")
C.check(st == 200 and 'new EventSource("/api/v1/alerts/stream")' in js and "setInterval" in js
        and "EventSource.CLOSED" in js, "the page uses EventSource and falls back to polling")

# SIGTERM: open streams end, the console exits 0 promptly.
t0 = time.monotonic()
E.proc.send_signal(signal.SIGTERM)
rc = E.proc.wait(15)
took = time.monotonic() - t0
h.wait_until(lambda: v.ended and a.ended or None, 5, "the streams' end")
C.check(rc == 0 and took < 5, "SIGTERM with streams open: exit %s after %.1f s" % (rc, took))
C.check(v.ended and a.ended, "the clients see their streams end")
C.done()
