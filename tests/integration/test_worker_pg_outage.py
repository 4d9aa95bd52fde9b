#!/usr/bin/python3
"""PostgreSQL stopped for 20 s in the middle of a run, then started again.
The worker must not exit, must report not-ready while PostgreSQL is away,
must not dead-letter anything (an outage is transient, not poison), and must
reach the same end state by itself: every observation once, every expected
alert once, every offset committed."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

OUTAGE_S = float(os.environ.get("VIGIL_PG_OUTAGE_S", "20"))
N = 20000
t = h.Checks()
rid = h.run_id()
topic, group, study = "wp.%s.obs" % rid, "wp-%s" % rid, "SP-%s" % rid
rules = os.path.join(h.SRC, "tests", "integration", "rules", "pipeline.yaml")
services = os.path.join(h.SRC, "scripts", "services")
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], 4)

records = []
expected = set()
for i in range(N):
    v = 6.9 if i % 50 == 0 else 4.0 + (i % 10) / 10
    records.append(h.observation(rid, i, study, "S-%03d" % (i % 300), value=v))
    if v >= 6.5:
        expected.add(records[-1]["observation_id"])
first, second = records[: N // 2], records[N // 2:]

w = h.Worker(rid, rules, topic, group, h.worker_args())
h.produce_observations(topic, first)
t.check(h.wait_until(lambda: h.stored(study) >= N // 4, 60, "a quarter stored"), "processing started")
t.check(w.get("/readyz")[0] == 200, "ready before the outage")

subprocess.run([services, "stop", "postgres"], check=True)
t_stop = time.monotonic()
h.produce_observations(topic, second)  # input keeps arriving during the outage
t.check(h.wait_until(lambda: w.get("/readyz")[0] == 503, 30, "not ready during the outage"),
        "/readyz reports 503 while PostgreSQL is down")
st, body = w.get("/readyz")
t.check("PostgreSQL" in body, "readiness names PostgreSQL (%r)" % body)
# The outage itself lasts OUTAGE_S: this wait is the fault's duration, not
# a synchronisation.
time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_stop)))
t.check(w.proc.poll() is None, "worker still running after %.0f s without PostgreSQL" % OUTAGE_S)
t.check(w.get("/healthz")[0] == 200, "still live (healthz) during the outage")
subprocess.run([services, "start", "postgres"], check=True)

ok = h.wait_until(lambda: h.stored(study) == N, 120, "all stored after recovery", interval=0.5)
t.check(ok, "every observation stored after PostgreSQL returned (%d of %d)" % (h.stored(study), N))
t.check(h.wait_until(lambda: w.get("/readyz")[0] == 200, 30, "ready again"), "ready again")
rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations WHERE study_id = %s", study)[0]
t.check(rows == (N, N), "no duplicate rows (%s)" % (rows,))
got = h.query("SELECT observation_id FROM alerts WHERE study_id = %s", study)
t.check(sorted(r[0] for r in got) == sorted(expected),
        "every expected alert once (%d of %d)" % (len(got), len(expected)))
t.check((w.metric("vigil_store_failures_total") or 0) > 0, "store failures were counted and retried")
dlq = h.consume_all(topic + ".dlq", idle=1.0)
t.check(len(dlq) == 0, "nothing dead-lettered by the outage (%d)" % len(dlq))
ends = {}
c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "e-" + rid})
for p in range(4):
    ends[p] = c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1]
c.close()
t.check(h.wait_until(lambda: h.committed(group, topic, 4) == ends, 30, "offsets committed"),
        "every offset committed")
t.check(w.stop() == 0, "worker exits 0")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
