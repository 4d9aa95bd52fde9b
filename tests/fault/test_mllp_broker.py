#!/usr/bin/python3
"""The real Kafka broker stopped while four interface-engine connections
keep sending results to `vigil mllp`, then started again (issue 16).

What must hold:
  - no AA for a message whose observations are not all on Kafka: every
    observation of every AA'd message is found on the topic afterwards;
  - while the broker is down the listener answers AE (ERR 207, "resend"),
    within its ack_timeout, and stays up;
  - once the broker is back, AA again without a restart of the listener;
  - the engine then resends every message not answered AA (as an engine's
    queue does), and a real worker stores every observation exactly once:
    no duplicate row, none missing.

The broker is shared with the other tests, so it is started again in a
finally block whatever happens here (ctest runs tests one at a time)."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import fault_lib as f  # noqa: E402
import mllp_lib as ml  # noqa: E402
from fault_lib import h  # noqa: E402

CONNS, OBX = 4, 3
t = h.Checks()
rid = h.run_id()
topic = "fm.%s.obs" % rid
study = "FM-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".alerts"], 4)
h.create_topics([topic + ".dlq", topic + ".hl7dlq"], 1)
ml.enrol(rid, [("GENHOSP", "F%02d" % c, "", study, "SITE-1", "S-%02d" % c) for c in range(CONNS)])
fac = ml.facilities_file(rid)
lst = ml.Listener(rid, topic, fac, extra=["--ack-timeout", "2000"])
t.check(lst.ready(), "listener ready")


def message(c, n):
    """Message N of connection C: three potassium results whose values
    encode (C, N), so each can be found on the topic."""
    fac_name = ml.facility("GENHOSP", rid)
    segs = ["MSH|^~\\&|LIS|%s|VIGIL|VIGIL|20250301120000+0000||ORU^R01|F%d-%d|P|2.5.1"
            % (fac_name, c, n),
            "PID|1||F%02d^^^%s^MR||PHIFAULT%s^PAT||19360606" % (c, fac_name, rid),
            "OBR|1||O-%d-%d^LIS|2823-3^K^LN|||20250301110000+0000" % (c, n)]
    for k in range(OBX):
        segs.append("OBX|%d|NM|2823-3^Potassium^LN|%d|%s|mmol/L|3.5-5.1||||F|||"
                    "20250301110000+0000" % (k + 1, k + 1, value(c, n, k)))
    return "\r".join(segs)


def value(c, n, k):
    return "%d.%04d%d" % (3 + k, n, c)


state = {"phase": "before", "acks": {}, "ae_down": 0}


async def connection(c, stop):
    reader, writer = await ml.open_hl7_connection("127.0.0.1", lst.port)
    n = 0
    while not stop.is_set():
        acks = await ml.send_async(lst.port, [message(c, n)], timeout=20, conn=(reader, writer))
        code = ml.ack_code(acks[0])
        state["acks"][(c, n)] = (code, state["phase"], acks[0])
        if code is None:
            writer.close()
            reader, writer = await ml.open_hl7_connection("127.0.0.1", lst.port)
        n += 1
    writer.close()


async def run():
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(connection(c, stop)) for c in range(CONNS)]
    loop = asyncio.get_event_loop()

    def count(pred):
        return sum(1 for v in list(state["acks"].values()) if pred(v))

    async def wait_for(pred, timeout, what):
        end = time.monotonic() + timeout * h.SCALE
        while time.monotonic() < end:
            if pred():
                return True
            await asyncio.sleep(0.05)
        print("timed out waiting for", what, flush=True)
        return False

    t.check(await wait_for(lambda: count(lambda v: v[0] == "AA") >= 40, 60, "40 AA"),
            "AA before the fault")
    await loop.run_in_executor(None, f.service, "stop", "kafka")
    try:
        state["phase"] = "down"
        f.say("injected: broker stopped after %d messages", len(state["acks"]))
        ok = await wait_for(lambda: count(lambda v: v[1] == "down" and v[0] == "AE") >= 2 * CONNS,
                            60, "AE while down")
        t.check(ok, "AE while the broker is down (%d)" %
                count(lambda v: v[1] == "down" and v[0] == "AE"))
    finally:
        state["phase"] = "restarting"
        await loop.run_in_executor(None, f.service, "start", "kafka")
    state["phase"] = "after"
    f.say("broker back after %d messages", len(state["acks"]))
    t.check(await wait_for(lambda: count(lambda v: v[1] == "after" and v[0] == "AA") >= 40, 120,
                           "AA after"), "AA again after the broker is back, same process")
    stop.set()
    await asyncio.gather(*tasks)


asyncio.run(run())
acks = state["acks"]
down_ae = [v[2] for v in acks.values() if v[1] == "down" and v[0] == "AE"]
t.check(all(any(e[1] == "207" for e in [(str(s(2)), str(s(3)(1)(1))) for s in a.segments("ERR")])
            for a in down_ae[:20]) and all("resend" in str(a.segment("MSA")(3)) for a in down_ae[:20]),
        "AE while down carries ERR 207 and says resend")
f.say("counted: %d messages, %d AA, %d AE, %d without answer", len(acks),
      sum(1 for v in acks.values() if v[0] == "AA"), sum(1 for v in acks.values() if v[0] == "AE"),
      sum(1 for v in acks.values() if v[0] is None))
t.check(lst.proc.poll() is None, "the listener never exited")

# No AA for a message not on Kafka.
obs = ml.observations(topic)
on_topic = {(o["subject_id"], "%.5f" % o["value"]) for o in obs}
missing = [k for k, v in acks.items() if v[0] == "AA" and not all(
    ("S-%02d" % k[0], "%.5f" % float(value(k[0], k[1], j))) in on_topic for j in range(OBX))]
t.check(not missing, "every observation of every AA'd message is on Kafka (%d AA'd messages "
        "missing something: %s)" % (len(missing), missing[:3]))

# The engine resends what was not answered AA.
resend = [k for k, v in acks.items() if v[0] != "AA"]
again = ml.send(lst.port, [message(c, n) for c, n in resend], timeout=20) if resend else []
t.check(len(again) == len(resend) and all(ml.ack_code(a) == "AA" for a in again),
        "all %d resent messages answered AA" % len(resend))

# A real worker: every observation exactly once in PostgreSQL.
want = len(acks) * OBX
w = h.Worker(rid, f.RULES, topic, "g-" + rid, h.worker_args())
h.wait_until(lambda: h.stored(study) >= want, 120, "%d stored" % want, interval=0.5)
rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations "
               "WHERE study_id = %s", study)[0]
f.say("counted: observations on Kafka %d (with replays), rows %s, want %d", len(ml.observations(topic)), rows, want)
t.check(rows == (want, want), "every observation once in PostgreSQL (%s of %d)" % (rows, want))
t.check(w.stop() == 0, "worker exits 0")
t.check(lst.stop() == 0, "listener exits 0")
hits = ml.sweep(rid, [("log", lst.text())])
t.check(not any("PHIFAULT" in m for m, _ in hits) and "PHIFAULT" not in lst.text(),
        "no patient name in the listener's log")
h.delete_topics([topic, topic + ".alerts", topic + ".dlq", topic + ".hl7dlq"])
os.unlink(fac)
t.done()
