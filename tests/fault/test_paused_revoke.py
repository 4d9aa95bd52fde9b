#!/usr/bin/python3
"""A partition paused for backpressure, revoked, and given back to the same
worker must be fetched again (the stall the churn storm found, made
deterministic).

librdkafka keeps a partition's pause across unassign and assign. The
consumer-group engine forgot its own pause flag on revoke without resuming
the partition in librdkafka, so when a later rebalance returned the
partition to the same worker, vigil believed it was running and librdkafka
never fetched it: its observations were never stored.

  1. one worker owns all 12 partitions; PostgreSQL is stopped and 20,000
     observations are produced: the store stage fills, partitions pause;
  2. a plain consumer joins the group and leaves again: two eager
     rebalances, and every partition comes back to the worker;
  3. PostgreSQL starts again: every observation must be stored once and
     every offset committed. Before the fix the paused partitions stayed
     unconsumed forever.
Prints "N passed, N failed".
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_lib as c  # noqa: E402
import fault_lib as f  # noqa: E402
from churn_lib import h  # noqa: E402

N = 20000
t = h.Checks()
rid, topic, group, study = c.setup("pr")
fleet = c.Fleet(rid, topic, group, assignor="range")
w = fleet.start(1)[0]
t.check(h.wait_until(lambda: (w.metric("vigil_assigned_partitions") or 0) == c.PARTS, 60,
                     "12 partitions assigned") is not None, "the worker owns all 12 partitions")
records, expected = f.potassium_records(rid, study, N, subjects=600, every=50)
with f.stopped("postgres"):
    h.produce_observations(topic, records)
    paused = h.wait_until(lambda: (w.metric("vigil_paused_partitions") or 0) > 0, 60,
                          "backpressure pauses a partition")
    npaused = w.metric("vigil_paused_partitions") or 0
    t.check(paused is not None, "with PostgreSQL away the worker paused partitions (%d)" % npaused)
    # A foreign member joins (a rebalance takes everything from the worker)
    # and leaves (a second one gives everything back).
    other = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": group,
                        "enable.auto.commit": False, "session.timeout.ms": 6000,
                        "partition.assignment.strategy": "range"})
    got = []
    other.subscribe([topic], on_assign=lambda cons, parts: got.extend(parts))
    end = time.monotonic() + 60 * h.SCALE
    while not got and time.monotonic() < end:
        other.poll(0.2)
    t.check(bool(got), "a second member joined and was given %d partitions" % len(got))
    other.close()
    back = h.wait_until(lambda: (w.metric("vigil_assigned_partitions") or 0) == c.PARTS, 60,
                        "all partitions back with the worker")
    t.check(back is not None, "after it left, every partition came back to the worker")
stored = h.wait_until(lambda: h.stored(study) >= N, 90, "all %d stored" % N, interval=0.5)
rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations "
               "WHERE study_id = %s", study)[0]
t.check(stored is not None and rows == (N, N), "every observation stored once after PostgreSQL "
        "came back (%s of %d): no partition left paused" % (rows, N))
ends = f.high_watermarks(topic, c.PARTS)
ok = h.wait_until(lambda: h.committed(group, topic, c.PARTS) == ends, 60, "offsets committed",
                  interval=0.5)
t.check(ok is not None, "every offset committed to the end (%s of %s)"
        % (h.committed(group, topic, c.PARTS), ends))
fleet.stop_all()
t.check(all(rc == 0 for _, rc, _ in fleet.exits), "the worker exits 0 on SIGTERM")
c.teardown(topic)
t.done()
