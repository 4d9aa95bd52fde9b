"""Shared helpers for vigil's Python integration tests.

Every test runs against the real services `scripts/services up` started (its
export lines are in the environment) and the real `vigil` binary. Each test
makes its own topics, consumer group and study ids, so tests sharing one
broker and one database never see each other's data.

Waiting is always on a condition (wait_until), never a bare sleep.
"""
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import psycopg2
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SCALE = float(os.environ.get("VIGIL_TIMEOUT_SCALE", "1"))
VIGIL = os.environ.get("VIGIL_BINARY", "vigil")
SRC = os.environ.get("VIGIL_SOURCE_DIR", ".")
BUILD = os.path.dirname(VIGIL)
CODEC_TOOL = os.path.join(BUILD, "tests", "codec_tool")


def env(name):
    v = os.environ.get(name)
    if not v:
        print("FAIL: %s is not set: run eval \"$(scripts/services up)\" first" % name)
        sys.exit(1)
    return v


class Checks:
    """Counts checks; prints the closing 'N passed, N failed' line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, flush=True)
        return cond

    def done(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(0 if self.failed == 0 and self.passed > 0 else 1)


def wait_until(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns a true value (returned) or timeout*SCALE
    seconds pass (then returns None and says what was awaited)."""
    end = time.monotonic() + timeout * SCALE
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            print("timed out after %.0fs waiting for %s" % (timeout * SCALE, what), flush=True)
            return None
        time.sleep(interval)


def read_jsonl(path):
    """The records of a JSON-lines log another process appends to (the SMTP
    server's index, the SMS double's request log). A line without its
    newline is being written right now -- a write that crosses a page is
    visible half done -- so it is left for the next read, not parsed."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def run_id():
    return "t%d%d" % (os.getpid(), int(time.time() * 1000) % 100000)


# ---- Kafka --------------------------------------------------------------

def bootstrap():
    return env("VIGIL_KAFKA_BOOTSTRAP")


def create_topics(names, partitions, config=None):
    """Creates NAMES with PARTITIONS partitions each and, if given, the
    topic CONFIG (e.g. {"max.message.bytes": "20000000"})."""
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    fs = admin.create_topics([NewTopic(n, partitions, 1, config=config or {}) for n in names],
                             operation_timeout=30)
    for n, f in fs.items():
        f.result(timeout=60 * SCALE)
    # Metadata can lag a moment behind creation: wait until every partition
    # has a leader.
    def ready():
        md = admin.list_topics(timeout=10)
        return all(n in md.topics and len(md.topics[n].partitions) == partitions
                   and all(p.leader >= 0 for p in md.topics[n].partitions.values())
                   for n in names)
    wait_until(ready, 30, "topics %s" % names)


def delete_topics(names):
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    fs = admin.delete_topics(names, operation_timeout=30)
    for f in fs.values():
        try:
            f.result(timeout=30)
        except Exception:
            pass


def encode(kind, records, framing="single", schema_id=0):
    """Encodes dicts (Avro field names, times in epoch ms, status with '_')
    with vigil's own encoder through codec_tool; returns a list of bytes."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    p = subprocess.run([CODEC_TOOL, "encode", kind, framing, str(schema_id)], input=text,
                       capture_output=True, text=True, check=True)
    out = []
    for line in p.stdout.splitlines():
        if line.startswith("error"):
            raise ValueError(line)
        out.append(bytes.fromhex(line))
    return out


def decode(kind, values):
    """Decodes bytes with vigil's decoder through codec_tool; returns dicts."""
    text = "".join(v.hex() + "\n" for v in values)
    p = subprocess.run([CODEC_TOOL, "decode", kind], input=text, capture_output=True,
                       text=True, check=True)
    return [json.loads(l) for l in p.stdout.splitlines()]


def produce(topic, items):
    """items: (key bytes, value bytes[, headers]) tuples. Waits for every
    delivery; raises if any failed."""
    p = Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True,
                  "linger.ms": 5, "message.max.bytes": 2000000})
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append(err)
    for it in items:
        while True:
            try:
                p.produce(topic, key=it[0], value=it[1],
                          headers=it[2] if len(it) > 2 else None, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60 * SCALE)
    if errors or left:
        raise RuntimeError("produce failed: %s, %d left" % (errors[:3], left))


def observation(rid, i, study, subject, loinc="2823-3", value=4.2, unit="mmol/L", ref_low=3.5,
                ref_high=5.1, status="final", t0=1767225600000):
    """One observation record as encode() takes it."""
    return dict(observation_id="%s-o%07d" % (rid, i), study_id=study, site_id="SITE-1",
                subject_id=subject, loinc=loinc, value=value, unit=unit, ref_low=ref_low,
                ref_high=ref_high, effective_time=t0 + i * 1000, issued_time=t0 + i * 1000 + 500,
                status=status, visit="W1")


def worker_args():
    return ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
            "--pg", env("VIGIL_PG_CONNINFO"), "-b", bootstrap()]


def stored(study):
    return query("SELECT count(*) FROM observations WHERE study_id = %s", study)[0][0]


def produce_observations(topic, records):
    vals = encode("observation", records)
    produce(topic, [(("%s/%s" % (r["study_id"], r["subject_id"])).encode(), v)
                    for r, v in zip(records, vals)])


def consume_all(topic, idle=3.0, max_total=120):
    """Reads a topic from the beginning until it has been idle for IDLE s
    after reaching the end of every partition. Returns messages in per-
    partition order as (partition, offset, key, value, headers)."""
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": "reader-" + run_id(),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    md = c.list_topics(topic, timeout=10)
    parts = list(md.topics[topic].partitions.keys())
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = []
    eof = set()
    last = time.monotonic()
    end = time.monotonic() + max_total * SCALE
    while time.monotonic() < end:
        m = c.poll(0.2)
        if m is None:
            if len(eof) == len(parts) and time.monotonic() - last > idle:
                break
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
            continue
        eof.discard(m.partition())
        last = time.monotonic()
        out.append((m.partition(), m.offset(), m.key(), m.value(), m.headers() or []))
    c.close()
    return out


def committed(group, topic, partitions):
    """Returns {partition: committed offset}, or None while the group
    coordinator cannot answer yet (NOT_COORDINATOR, load in progress on a
    fresh broker): callers poll it through wait_until."""
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    except Exception as e:  # KafkaException: a transient coordinator error
        print("committed offsets not available yet: %s" % e, flush=True)
        return None
    finally:
        c.close()
    # A partition nothing was ever committed for reports OFFSET_INVALID
    # (-1001); for comparing with end offsets that is position 0 (an empty
    # partition is "at its end" with nothing committed).
    return {tp.partition: max(tp.offset, 0) for tp in tps}


# ---- PostgreSQL ---------------------------------------------------------

def pg():
    conn = psycopg2.connect(env("VIGIL_PG_CONNINFO"))
    conn.autocommit = True
    return conn


def query(sql, *params):
    conn = pg()
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def migrate():
    subprocess.run([VIGIL, "migrate"], check=True, capture_output=True)


# ---- child processes -----------------------------------------------------

_children = []


def track(proc):
    """Kills PROC when this test exits, if it is still running: a test that
    fails with an exception must not leave a worker or notifier behind
    (it would keep consuming, and CPU, into the next test)."""
    _children.append(proc)
    return proc


def _kill_children():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_children)


# ---- the worker ---------------------------------------------------------

class Worker:
    """A `vigil worker` process with its own log file and HTTP port."""

    def __init__(self, rid, rules, topic, group, extra=None, log_dir=None, threads=2,
                 extra_env=None):
        self.log_path = os.path.join(log_dir or tempfile.gettempdir(),
                                     "worker-%s-%d.log" % (rid, id(self)))
        self.log = open(self.log_path, "wb")
        args = [VIGIL, "worker", "--rules", rules, "--topic", topic, "--group", group,
                "--http", "127.0.0.1:0", "--threads", str(threads), "--grace", "20"]
        args += extra or []
        e = dict(os.environ)
        e["VIGIL_DLQ_TOPIC"] = topic + ".dlq"
        e["VIGIL_ALERTS_TOPIC"] = topic + ".alerts"
        e.update(extra_env or {})
        self.proc = track(subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                           env=e))
        self.port = None

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def http_port(self):
        if self.port is None:
            m = wait_until(lambda: re.search(r"on port (\d+)", self.text()), 30, "worker HTTP port")
            self.port = int(m.group(1)) if m else -1
        return self.port

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port(), path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except Exception:
            return None, ""

    def metric(self, name, labels=None):
        st, body = self.get("/metrics")
        if st != 200:
            return None
        want = name + ("{" + labels + "}" if labels else "")
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def assigned(self):
        return (self.metric("vigil_assigned_partitions") or 0) > 0

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
