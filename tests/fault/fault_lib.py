"""Shared helpers for the fault tests (tests/fault/): the end-state audit
every scenario ends with, process figures from /proc, and a guard that puts
a stopped service back even when the test fails.

The audit is the point of every fault test: after the fault, with the worker
still the same process, the data must look exactly as if nothing had
happened. Each check prints what it counted, so the closing note can quote
the numbers.
"""
import contextlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

SERVICES = os.path.join(h.SRC, "scripts", "services")
RULES = os.path.join(h.SRC, "tests", "integration", "rules", "pipeline.yaml")
# pipeline.yaml's k-high rule: potassium >= 6.5 mmol/L is a critical alert.
K_HIGH = 6.5


def say(fmt, *args):
    print(fmt % args if args else fmt, flush=True)


def service(action, name):
    """scripts/services stop|start postgres|kafka on the running set."""
    subprocess.run([SERVICES, action, name], check=True)


@contextlib.contextmanager
def stopped(name):
    """Stops service NAME for the body of the with-block and always starts
    it again afterwards, even if the body raised: the other tests share the
    services."""
    service("stop", name)
    try:
        yield
    finally:
        service("start", name)


def potassium_records(rid, study, n, subjects=300, every=50, start=0):
    """N potassium observations over SUBJECTS subjects; every EVERY-th is
    6.9 mmol/L (an alert under pipeline.yaml), the rest normal. Returns
    (records, expected observation ids)."""
    records, expected = [], set()
    for i in range(start, start + n):
        v = 6.9 if i % every == 0 else 4.0 + (i % 10) / 10
        r = h.observation(rid, i, study, "S-%04d" % (i % subjects), value=v)
        records.append(r)
        if v >= K_HIGH:
            expected.add(r["observation_id"])
    return records, expected


def proc_status(pid):
    """{'VmRSS': kB, 'VmHWM': kB, 'Threads': n} from /proc/PID/status, plus
    'fds' (open descriptors). Empty if the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return {}
    return out


def high_watermarks(topic, partitions):
    c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "hw-" + h.run_id()})
    try:
        return {p: c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        c.close()


def incomplete_batches(study):
    """Stored observations at or above the alert threshold whose alert row is
    missing. Observations and their alerts are written in one transaction,
    so this is 0 at every instant, not only at the end: a positive count is
    a partial batch made visible. One statement, so one snapshot."""
    return h.query(
        "SELECT count(*) FROM observations o WHERE o.study_id = %s AND o.value >= %s "
        "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.observation_id = o.observation_id)",
        study, K_HIGH)[0][0]


def audit(t, w, topic, group, study, n, expected, partitions, topic_dups_allowed=True):
    """The end state every fault test asserts: every observation once in
    PostgreSQL, exactly the expected alerts in PostgreSQL (once each) and on
    the alerts topic, nothing dead-lettered, every offset committed, the
    worker never exited. Prints the counts. Returns the number of replayed
    copies found on the alerts topic."""
    ok = h.wait_until(lambda: h.stored(study) >= n, 120, "all %d stored" % n, interval=0.5)
    rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations "
                   "WHERE study_id = %s", study)[0]
    say("counted: observations in PostgreSQL %d (distinct %d) of %d injected", rows[0], rows[1], n)
    t.check(ok and rows == (n, n), "every observation exactly once in PostgreSQL (%s of %d)"
            % (rows, n))
    got = h.query("SELECT observation_id, count(*) FROM alerts WHERE study_id = %s "
                  "GROUP BY observation_id", study)
    ids = {r[0] for r in got}
    twice = sum(1 for r in got if r[1] != 1)
    say("counted: alerts in PostgreSQL %d (%d expected, %d missing, %d unexpected, %d doubled)",
        sum(r[1] for r in got), len(expected), len(expected - ids), len(ids - expected), twice)
    t.check(ids == expected and twice == 0, "every expected alert once in PostgreSQL")
    t.check(incomplete_batches(study) == 0, "no observation without its alert (no partial batch)")

    # Rows are stored before their alerts are acknowledged, and an offset is
    # committed only after both: wait for the offsets before reading the
    # alerts topic, or a batch still waiting for a broker looks missing.
    ends = high_watermarks(topic, partitions)
    ok = h.wait_until(lambda: h.committed(group, topic, partitions) == ends, 60,
                      "offsets committed", interval=0.5)
    say("counted: committed offsets %s, partition ends %s",
        h.committed(group, topic, partitions), ends)
    t.check(ok, "every offset committed to the end of its partition")

    msgs = h.consume_all(topic + ".alerts", idle=2.0)
    decoded = h.decode("alert", [m[3] for m in msgs])
    bad = sum(1 for d in decoded if "error" in d)
    on_topic = [(d.get("evidence") or [{}])[0].get("observation_id") for d in decoded]
    distinct = set(on_topic)
    dups = len(on_topic) - len(distinct)
    say("counted: alerts on %s: %d messages, %d distinct, %d replayed copies, %d undecodable",
        topic + ".alerts", len(msgs), len(distinct), dups, bad)
    t.check(bad == 0, "every message on the alerts topic decodes")
    t.check(distinct == expected, "the alerts topic holds every expected alert and no other "
            "(%d missing, %d unexpected)" % (len(expected - distinct), len(distinct - expected)))
    if not topic_dups_allowed:
        t.check(dups == 0, "no alert published twice (%d)" % dups)

    dlq = h.consume_all(topic + ".dlq", idle=1.0)
    say("counted: dead letters %d", len(dlq))
    t.check(len(dlq) == 0, "nothing dead-lettered by the fault (%d)" % len(dlq))

    t.check(w.proc.poll() is None, "the worker never exited (rc %s)" % w.proc.poll())
    return dups
