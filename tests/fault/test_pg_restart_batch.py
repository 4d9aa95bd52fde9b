#!/usr/bin/python3
"""PostgreSQL restarted while a batch is being written. To be sure a batch
is mid-transaction when PostgreSQL goes, the test first locks the alerts
table, then produces more: the next batch COPYs and upserts its
observations, then blocks on the alerts insert, inside its transaction. The test sees that batch waiting
(pg_locks), stops PostgreSQL (fast: open transactions roll back) and starts
it again at once, while input keeps arriving.

Asserted: the batch is retried (store failures counted); at every sample
during recovery no stored observation lacks its alert (a batch is visible
whole or not at all); the end state is exact: every observation once, every
expected alert once, no duplicate rows, every offset committed."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import fault_lib as f  # noqa: E402
from fault_lib import h  # noqa: E402

N = int(os.environ.get("VIGIL_FAULT_N", "20000"))
PARTS = 4
t = h.Checks()
rid = h.run_id()
topic, group, study = "fr.%s.obs" % rid, "fr-%s" % rid, "SR-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], PARTS)

records, expected = f.potassium_records(rid, study, N)
# The middle part is produced only once the alerts table is locked, so a
# batch is sure to meet the lock however fast the worker got through the
# first part.
first = records[: N // 2 - 2000]
middle, second = records[N // 2 - 2000: N // 2], records[N // 2:]
w = h.Worker(rid, f.RULES, topic, group, h.worker_args())
h.produce_observations(topic, first)
t.check(h.wait_until(lambda: h.stored(study) >= 1000, 90, "processing started"),
        "processing started")

lock = h.psycopg2.connect(h.env("VIGIL_PG_CONNINFO"))
lock.autocommit = False
lock.cursor().execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
h.produce_observations(topic, middle)


def batch_waiting():
    return h.query("SELECT count(*) FROM pg_locks WHERE relation = 'alerts'::regclass "
                   "AND NOT granted")[0][0] > 0


caught = h.wait_until(batch_waiting, 30, "a batch blocked inside its transaction")
t.check(caught, "a batch is mid-transaction (observations upserted, alerts insert waiting)")
stored_mid = h.stored(study)
# The lock holder is the one session that can read the alerts table now: at
# this instant a batch has upserted observations it has not committed, and
# none of them may be visible without its alert.
cur = lock.cursor()
cur.execute("SELECT count(*) FROM observations o WHERE o.study_id = %s AND o.value >= %s "
            "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.observation_id = o.observation_id)",
            (study, f.K_HIGH))
mid_missing = cur.fetchone()[0]
f.say("counted: while the batch waits: %d observations committed, %d of them without their "
      "alert", stored_mid, mid_missing)
t.check(mid_missing == 0, "nothing of the waiting batch visible (%d without alert)" % mid_missing)
feed_err = []


def feed():
    try:
        h.produce_observations(topic, second)
    except Exception as e:
        feed_err.append(e)


feeder = threading.Thread(target=feed)
feeder.start()
with f.stopped("postgres"):
    f.say("injected: PostgreSQL stopped (fast) with a batch mid-transaction; "
          "%d observations committed before", stored_mid)
try:
    lock.close()  # its session died with the server
except Exception:
    pass
f.say("injected: PostgreSQL started again")

# Recovery: sample the partial-batch invariant until everything is stored.
worst = 0
samples = 0


def all_stored():
    global worst, samples
    try:
        worst = max(worst, f.incomplete_batches(study))
        samples += 1
        return h.stored(study) >= N
    except h.psycopg2.OperationalError:
        return False  # still starting


t.check(h.wait_until(all_stored, 120, "all stored after the restart", interval=0.2),
        "every observation stored after the restart")
f.say("counted: %d samples during recovery, worst count of observations without their "
      "alert %d", samples, worst)
t.check(worst == 0, "no partial batch ever visible (%d observations seen without their alert)"
        % worst)
feeder.join(60 * h.SCALE)
t.check(not feeder.is_alive() and not feed_err, "all input produced (%s)" % feed_err[:1])
failures = w.metric("vigil_store_failures_total") or 0
f.say("counted: vigil_store_failures_total %d (batches failed and retried)", failures)
t.check(failures > 0, "the interrupted batch failed and was retried")
f.audit(t, w, topic, group, study, N, expected, PARTS)
t.check(w.stop() == 0, "worker exits 0 on SIGTERM")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
