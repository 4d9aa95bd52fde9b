"""The console's limiter (the seed's): at most N API requests in flight; a
request waits at most 500 ms for a slot, then gets 503 with Retry-After;
timelines have their own smaller pool; per-route metrics count requests and
503s.

The slots are filled the way production fills them: PostgreSQL stalls.
This test locks console_sessions, so every request signed in by cookie
blocks inside the console holding its slot; 200 more clients then arrive at
once and must each be answered 503 in about 500 ms, none hanging. API-token
requests do not touch console_sessions, which lets the heavy-pool check run
while general slots are free."""
import concurrent.futures
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("limit")
E.seed()
N = 4
# The console serves each connection on its own thread, so a request
# waiting for a slot holds up nothing else (with libmicrohttpd's thread pool
# 7 % of these clients waited 2 x 500 ms: a second connection queued behind
# a waiting one on the same thread).
E.start(threads=240, pg_connections=N, extra_env={"VIGIL_CONSOLE_MAX_IN_FLIGHT": str(N),
                                                  "VIGIL_CONSOLE_MAX_HEAVY": "1"})
cookie, csrf, _ = E.signin("admin")
tok = E.users("token", "--researcher", "responder", "--study", "S1", "--role", "viewer").stdout.strip()
E.observation("o1", "S1", "SUBJ-1")


def metric(name, route):
    st, _, text = E.request("GET", "/metrics")
    m = re.search(r'^%s\{route="%s"\} (\S+)$' % (re.escape(name), re.escape(route)), text, re.M)
    return float(m.group(1)) if m else 0.0


def gauge(name):
    st, _, text = E.request("GET", "/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else -1


def timed(path, src=None, timeout=10, **kw):
    t0 = time.monotonic()
    try:
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", E.port, timeout=timeout * h.SCALE,
                                       source_address=(src, 0) if src else None)
        hd = {}
        if kw.get("cookie"):
            hd["Cookie"] = "__Host-vigil_session=" + kw["cookie"]
        if kw.get("token"):
            hd["Authorization"] = "Bearer " + kw["token"]
        c.request("GET", path, headers=hd)
        r = c.getresponse()
        r.read()
        out = (r.status, r.getheader("Retry-After"), time.monotonic() - t0)
        c.close()
        return out
    except Exception as e:  # a hang shows up as a timeout here
        return ("error: %s" % e, None, time.monotonic() - t0)


# ---- fill the N general slots with requests stalled in PostgreSQL ----------
import psycopg2  # noqa: E402
lk = psycopg2.connect(E.conninfo)
lk.cursor().execute("BEGIN; LOCK TABLE console_sessions IN ACCESS EXCLUSIVE MODE")
pool = concurrent.futures.ThreadPoolExecutor(max_workers=N + 210)
# they wait on the lock for as long as this test holds it: a long timeout
holders = [pool.submit(timed, "/api/v1/session", cookie=cookie, timeout=60) for _ in range(N)]
C.check(h.wait_until(lambda: gauge("vigil_console_in_flight") == N, 10, "N requests in flight"),
        "%d requests hold the %d slots" % (N, N))

# ---- 200 clients over the limit ------------------------------------------------
before = metric("vigil_console_rejected_total", "/api/v1/alerts")
srcs = ["127.0.0.%d" % (2 + i % 5) for i in range(200)]  # libmicrohttpd bounds connections per address
start = threading.Event()


def client(i):
    start.wait()
    return timed("/api/v1/alerts", src=srcs[i], token=tok)


futs = [pool.submit(client, i) for i in range(200)]
start.set()
res = [f.result() for f in futs]
codes = {}
for st, _, _ in res:
    codes[st] = codes.get(st, 0) + 1
lat = sorted(r[2] for r in res)
p50, p99, mx = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1], lat[-1]
slow = sum(1 for x in lat if x > 0.75)
print("limiter: N=%d, 200 clients over the limit: %s; latency min %.0f ms, p50 %.0f ms, p99 %.0f ms, "
      "max %.0f ms; %d over 750 ms" % (N, codes, lat[0] * 1000, p50 * 1000, p99 * 1000, mx * 1000, slow),
      flush=True)
C.check(codes.get(503) == 200, "all 200 answered 503 (got %s)" % codes)
C.check(all(r[1] == "1" for r in res if r[0] == 503), "every 503 carries Retry-After: 1")
C.check(min(lat) >= 0.45, "none refused before waiting ~500 ms (min %.0f ms)" % (min(lat) * 1000))
C.check(mx < 0.9 * h.SCALE, "none waited much beyond 500 ms (max %.0f ms)" % (mx * 1000))
after = metric("vigil_console_rejected_total", "/api/v1/alerts")
C.check(after - before == 200, "vigil_console_rejected_total{route=/api/v1/alerts} rose by 200 (%g)" % (after - before))

# ---- release: the stalled requests finish normally ------------------------------
lk.rollback()
held = [f.result() for f in holders]
C.check(all(r[0] == 200 for r in held), "the stalled requests finish 200 once PostgreSQL answers (%s)"
        % [r[0] for r in held])
C.check(h.wait_until(lambda: gauge("vigil_console_in_flight") == 0, 10, "slots back"), "every slot returned")

# ---- the heavy pool: one timeline at a time, general requests still served ------
lk.cursor().execute("BEGIN; LOCK TABLE console_sessions IN ACCESS EXCLUSIVE MODE")
heavy = pool.submit(timed, "/api/v1/subjects/S1/SUBJ-1/timeline", cookie=cookie, timeout=60)
C.check(h.wait_until(lambda: gauge("vigil_console_in_flight") == 1, 10, "one timeline in flight"),
        "a timeline holds the heavy slot")
st, ra, t = timed("/api/v1/subjects/S1/SUBJ-1/timeline", token=tok)
C.check(st == 503 and ra == "1", "a second timeline: 503 Retry-After (got %s)" % st)
st2, _, _ = timed("/api/v1/alerts", token=tok)
C.check(st2 == 200, "a list request meanwhile: 200 (general slots free) (got %s)" % st2)
lk.rollback()
C.check(heavy.result()[0] == 200, "the held timeline finishes 200")
st, _, text = E.request("GET", "/metrics")
C.check('vigil_console_request_seconds_bucket{route="/api/v1/alerts",le="0.5"}' in text,
        "latency histogram per route")
C.check(re.search(r'^vigil_console_requests_total\{route="/api/v1/alerts"\} (\d+)', text, re.M) is not None,
        "request count per route")
lk.close()
pool.shutdown()
C.done()
