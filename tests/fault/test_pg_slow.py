#!/usr/bin/python3
"""PostgreSQL slowed to a stop: the test holds LOCK TABLE observations IN
ACCESS EXCLUSIVE MODE in an open transaction for 30 s while 100,000
observations keep arriving. The worker's batches block on the lock, its
queues fill and it must pause partitions (vigil_paused_partitions > 0)
instead of buffering without bound: peak RSS (VmHWM) stays under
RSS_BOUND_MIB. When the lock goes, everything is stored once, every alert is
present and every offset committed."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import fault_lib as f  # noqa: E402
from fault_lib import h  # noqa: E402

N = int(os.environ.get("VIGIL_FAULT_N", "100000"))
LOCK_S = float(os.environ.get("VIGIL_FAULT_LOCK_S", "30"))
# The bound the worker promises when PostgreSQL is slower than the input
# (issue 3's benchmark target). Measured peak is printed below.
RSS_BOUND_MIB = 256
if h.SCALE > 1:
    # A sanitizer build: AddressSanitizer's shadow memory and its 256 MiB
    # free quarantine count in RSS, so only a runaway is caught there.
    RSS_BOUND_MIB = 1024
PARTS = 4
t = h.Checks()
rid = h.run_id()
topic, group, study = "fs.%s.obs" % rid, "fs-%s" % rid, "SS-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], PARTS)

# 300 subjects, all seen (state warmed) before the lock: under it the
# analysers block on a full store queue, not on warming state from the table.
records, expected = f.potassium_records(rid, study, N, subjects=300)
head, rest = records[:5000], records[5000:]
w = h.Worker(rid, f.RULES, topic, group, h.worker_args() + ["-s", "threads=2", "-s", "store_writers=4", "-s", "batch_rows=1000"])  # the bound below
h.produce_observations(topic, head)
t.check(h.wait_until(lambda: h.stored(study) >= len(head), 90, "head stored"),
        "processing started before the lock")
before = h.stored(study)

lock = h.psycopg2.connect(h.env("VIGIL_PG_CONNINFO"))
lock.autocommit = False
cur = lock.cursor()
cur.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
t_lock = time.monotonic()
f.say("injected: ACCESS EXCLUSIVE lock on observations (%d stored before), "
      "%d more observations produced under it", before, len(rest))

# Input keeps arriving while the table is locked.
feed_err = []


def feed():
    try:
        h.produce_observations(topic, rest)
    except Exception as e:
        feed_err.append(e)


feeder = threading.Thread(target=feed)
feeder.start()
peak_paused = 0
peak_hwm = 0
samples = 0
try:
    # Sample the worker for the whole lock: the lock's duration is the
    # fault, so this loop runs on the clock, not on a condition.
    while time.monotonic() - t_lock < LOCK_S:
        paused = w.metric("vigil_paused_partitions") or 0
        peak_paused = max(peak_paused, paused)
        st = f.proc_status(w.proc.pid)
        peak_hwm = max(peak_hwm, st.get("VmHWM", 0))
        samples += 1
        if w.proc.poll() is not None:
            break
        time.sleep(0.25)
    consumed = w.metric("vigil_consumed_total") or 0
    t.check(w.proc.poll() is None, "worker alive under the lock")
    t.check(w.get("/healthz")[0] == 200, "still live (healthz) under the lock")
finally:
    lock.rollback()
    lock.close()
f.say("released the lock after %.1f s; under it: peak paused partitions %d, %d consumed, "
      "%d samples", time.monotonic() - t_lock, peak_paused, consumed, samples)
feeder.join(120 * h.SCALE)
t.check(not feeder.is_alive() and not feed_err, "all input produced (%s)" % feed_err[:1])
t.check(peak_paused > 0, "partitions paused under the lock (peak %d)" % peak_paused)
# What may be taken in while the store is stuck: its queue (4,096), one
# batch per store writer (4 x 1,000 since the store is sharded: a writer
# takes its batch off the queue before it blocks on the lock), two analysis
# queues (2 x 1,024), one stashed message per partition, and 2,000 for
# messages being handed between stages. (CI saw 10,093 against the old
# bound of 10,000, which counted a single writer's batch.)
BOUND = 4096 + 4 * 1000 + 2 * 1024 + PARTS + 2000
held = consumed - len(head)
f.say("counted: %d observations taken in under the lock (bound %d), %d left in Kafka",
      held, BOUND, N - consumed)
t.check(held <= BOUND, "the worker did not swallow the backlog into memory (%d)" % held)

f.audit(t, w, topic, group, study, N, expected, PARTS)
st = f.proc_status(w.proc.pid)
peak_hwm = max(peak_hwm, st.get("VmHWM", 0))
f.say("figure fault_pg_lock_rss_peak %d MiB (bound %d MiB)", peak_hwm // 1024, RSS_BOUND_MIB)
t.check(0 < peak_hwm < RSS_BOUND_MIB * 1024,
        "peak RSS %d MiB under %d MiB" % (peak_hwm // 1024, RSS_BOUND_MIB))
t.check(w.stop() == 0, "worker exits 0 on SIGTERM")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
