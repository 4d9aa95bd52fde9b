#!/usr/bin/python3
"""The real Kafka broker stopped for ~12 s while a worker is in the middle of
30,000 observations, then started again. Meanwhile a hospital keeps
producing (its producer buffers until the broker is back). The worker must
ride it out in-process and reach the same end state as an undisturbed run:
every observation once in PostgreSQL, every expected alert in PostgreSQL and
on the alerts topic, no duplicate rows, nothing dead-lettered, every offset
committed.

The broker is shared with the other tests, so it is started again in a
finally block whatever happens here (ctest runs tests one at a time)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import fault_lib as f  # noqa: E402
from fault_lib import h  # noqa: E402

N = int(os.environ.get("VIGIL_FAULT_N", "30000"))
DOWN_S = float(os.environ.get("VIGIL_FAULT_KAFKA_DOWN_S", "12"))
PARTS = 4
t = h.Checks()
rid = h.run_id()
topic, group, study = "fk.%s.obs" % rid, "fk-%s" % rid, "SK-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], PARTS)

records, expected = f.potassium_records(rid, study, N)
first, second = records[: N // 2], records[N // 2:]
second_vals = h.encode("observation", second)

w = h.Worker(rid, f.RULES, topic, group, h.worker_args())
h.produce_observations(topic, first)
t.check(h.wait_until(lambda: h.stored(study) >= N // 10, 90, "processing started"),
        "processing started before the fault")

# The hospital side keeps sending through the outage: a producer that
# buffers and retries, as any Kafka client does.
late_err = []


def produce_second():
    try:
        h.produce(topic, [(("%s/%s" % (r["study_id"], r["subject_id"])).encode(), v)
                          for r, v in zip(second, second_vals)])
    except Exception as e:  # reported below, after the broker is back
        late_err.append(e)


stored_before = h.stored(study)
producer = threading.Thread(target=produce_second)
t_stop = time.monotonic()
with f.stopped("kafka"):
    f.say("injected: broker stopped with %d of %d observations stored", stored_before, N)
    producer.start()
    # The outage lasts DOWN_S: this wait is the fault's duration, not a
    # synchronisation.
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - t_stop)))
    t.check(w.proc.poll() is None, "worker alive while the broker is down")
    f.say("injected: broker down %.1f s (%d stored meanwhile), starting it again",
          time.monotonic() - t_stop, h.stored(study) - stored_before)
f.say("broker back after %.1f s", time.monotonic() - t_stop)
producer.join(120 * h.SCALE)
t.check(not producer.is_alive() and not late_err,
        "the second half reached the broker after the restart (%s)" % late_err[:1])

f.audit(t, w, topic, group, study, N, expected, PARTS)
st = f.proc_status(w.proc.pid)
f.say("worker: VmHWM %d MiB, threads %d, fds %d", st.get("VmHWM", 0) // 1024,
      st.get("Threads", 0), st.get("fds", 0))
t.check(w.stop() == 0, "worker exits 0 on SIGTERM")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
