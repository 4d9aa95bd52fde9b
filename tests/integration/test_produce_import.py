#!/usr/bin/python3
"""Integration tests of `vigil produce` and `vigil import` against the real
Kafka broker of scripts/services (VIGIL_KAFKA_BOOTSTRAP).

  produce  an NDJSON file lands on a fresh topic: every record once, key
           study_id/subject_id, the Avro value decodes back to the record
  import   200,000 records, SIGINT once progress passes 30%: exit 3, the
           reported count equals what is on the topic, and resuming with
           the printed --skip completes it with every record exactly once

Each test makes its own topic, so tests never see each other's messages.
Usage: test_produce_import.py produce|import
"""
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import avro.io
import avro.schema
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

VIGIL = os.environ["VIGIL_BINARY"]
SRC = os.environ["VIGIL_SOURCE_DIR"]
SCALE = float(os.environ.get("VIGIL_TIMEOUT_SCALE", "1"))
BOOTSTRAP = os.environ.get("VIGIL_KAFKA_BOOTSTRAP")

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, file=sys.stderr)


def done():
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


def new_topic(tag, partitions=6):
    name = f"vigil.test.{tag}.{os.getpid()}.{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for _, fut in admin.create_topics([NewTopic(name, partitions, 1)]).items():
        fut.result(timeout=30)
    # The topic's metadata must reach the broker's cache before producing.
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            break
        time.sleep(0.1)
    return name


def topic_count(topic):
    """Messages on the topic: the sum of the high watermarks (no
    transactions, so every offset is a message)."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "vigil-test-count"})
    md = c.list_topics(topic, timeout=10)
    total = 0
    for p in md.topics[topic].partitions:
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high
    c.close()
    return total


def consume_all(topic):
    """Every message of the topic, as (key, value) pairs."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"vigil-test-{os.getpid()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    want = {}
    for p in md.topics[topic].partitions:
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > 0:
            want[p] = high
    c.assign([TopicPartition(topic, p, 0) for p in want])
    got, pos = [], {p: 0 for p in want}
    deadline = time.time() + 60 * SCALE
    while any(pos[p] < want[p] for p in want) and time.time() < deadline:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                continue
            got.append((m.key(), m.value()))
            pos[m.partition()] = m.offset() + 1
    c.close()
    return got


def read_string(b, i):
    """An Avro string at b[i:]: zigzag varint length, then bytes."""
    shift = n = 0
    while True:
        byte = b[i]
        i += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    n = (n >> 1) ^ -(n & 1)
    return b[i:i + n].decode(), i + n


def observation_id(value):
    # Single-object encoding: C3 01, 8-byte fingerprint, then the body,
    # whose first field is observation_id.
    assert value[:2] == b"\xc3\x01"
    return read_string(value, 10)[0]


def decoder():
    with open(os.path.join(SRC, "schemas", "observation.avsc")) as f:
        schema = avro.schema.parse(f.read())
    reader = avro.io.DatumReader(schema)

    def decode(value):
        assert value[:2] == b"\xc3\x01"
        return reader.read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    return decode


def iso_to_ms(s):
    # The generator writes "YYYY-MM-DDThh:mm:ss.mmmZ".
    from datetime import datetime, timezone
    d = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(d.timestamp() * 1000 + 0.5)


def to_ms(v):
    """python-avro may hand timestamp-millis back as a datetime."""
    if hasattr(v, "timestamp"):
        return int(round(v.timestamp() * 1000))
    return v


def generate(n, seed, path):
    with open(path, "wb") as out:
        r = subprocess.run([VIGIL, "produce", "--generate", str(n), "--seed", str(seed),
                            "--emit-ndjson"], stdout=out, stderr=subprocess.PIPE,
                           timeout=60 * SCALE)
    check(r.returncode == 0, f"--emit-ndjson exits 0 ({r.stderr!r})")


def test_produce(tmp):
    topic = new_topic("produce")
    path = os.path.join(tmp, "obs.ndjson")
    generate(600, 11, path)
    with open(path) as f:
        records = [json.loads(line) for line in f]
    r = subprocess.run([VIGIL, "produce", "-t", topic, path], capture_output=True, text=True,
                       timeout=60 * SCALE)
    check(r.returncode == 0, f"produce exits 0 (got {r.returncode}: {r.stderr})")
    check(r.stderr.strip().splitlines()[-1] == "produced 600, failed 0, invalid 0",
          f"summary line ({r.stderr!r})")

    msgs = consume_all(topic)
    check(len(msgs) == 600, f"600 messages on the topic (got {len(msgs)})")
    decode = decoder()
    by_id = {rec["observation_id"]: rec for rec in records if rec["status"] == "final"}
    seen, key_ok, equal = set(), 0, 0
    for key, value in msgs:
        obs = decode(value)
        if key.decode() == f"{obs['study_id']}/{obs['subject_id']}":
            key_ok += 1
        want = by_id.get(obs["observation_id"])
        if want is None or obs["status"] != "final":
            continue
        seen.add(obs["observation_id"])
        same = all(obs[k] == want[k] for k in ("study_id", "site_id", "subject_id", "loinc",
                                                 "value", "unit", "ref_low", "ref_high",
                                                 "visit"))
        same = same and to_ms(obs["effective_time"]) == iso_to_ms(want["effective_time"])
        same = same and to_ms(obs["issued_time"]) == iso_to_ms(want["issued_time"])
        equal += same
    check(key_ok == 600, f"every key is study_id/subject_id ({key_ok} of 600)")
    check(len(seen) == len(by_id), f"every final record is on the topic ({len(seen)} of "
          f"{len(by_id)})")
    check(equal == len(by_id), f"every record decodes back equal ({equal} of {len(by_id)})")
    # Amended and entered-in-error records reuse an earlier id: count them
    # by status in what was decoded.
    statuses = {}
    for _, value in msgs:
        s = decode(value)["status"]
        statuses[s] = statuses.get(s, 0) + 1
    want_statuses = {}
    for rec in records:
        s = rec["status"].replace("-", "_")
        want_statuses[s] = want_statuses.get(s, 0) + 1
    check(statuses == want_statuses, f"statuses match ({statuses} vs {want_statuses})")


def test_import(tmp):
    n = 200000
    topic = new_topic("import")
    path = os.path.join(tmp, "export.ndjson")
    generate(n, 21, path)

    cmd = [VIGIL, "import", "-t", topic, "--progress-interval", "0.1", "--rate", "40000", path]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    lines, signalled = [], threading.Event()

    def watch():
        for line in p.stderr:
            lines.append(line.rstrip("\n"))
            m = re.search(r"progress (\d+\.\d)%", line)
            if m and float(m.group(1)) > 30 and not signalled.is_set():
                signalled.set()
                p.send_signal(signal.SIGINT)
    t = threading.Thread(target=watch)
    t.start()
    try:
        rc = p.wait(timeout=60 * SCALE)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    t.join()
    check(signalled.is_set(), "progress passed 30% and SIGINT was sent")
    check(rc == 3, f"interrupted import exits 3 (got {rc}; {lines[-3:]})")
    last = lines[-1] if lines else ""
    m = re.match(r"import: status=(\w+) imported=(\d+) invalid=(\d+) failed=(\d+) skip=(\d+)$",
                 last)
    check(m is not None, f"last line is machine-readable ({last!r})")
    if m is None:
        return
    status, imported, skip = m.group(1), int(m.group(2)), int(m.group(5))
    check(status == "partial", f"status partial ({status})")
    check(0 < imported < n, f"stopped part-way (imported {imported} of {n})")
    check(skip == imported, f"--skip is the acknowledged prefix (skip {skip}, imported {imported})")
    check(any(f"--skip {skip}" in line for line in lines), "the resume command is printed")
    on_topic = topic_count(topic)
    check(on_topic == imported, f"reported count equals what is on the topic ({imported} vs "
          f"{on_topic})")

    r = subprocess.run([VIGIL, "import", "-t", topic, "--skip", str(skip), path],
                       capture_output=True, text=True, timeout=60 * SCALE)
    check(r.returncode == 0, f"resumed import exits 0 (got {r.returncode}: {r.stderr[-500:]})")
    check(f"imported={n - skip} " in r.stderr, "resume imports the rest")

    ids = [observation_id(v) for _, v in consume_all(topic)]
    check(len(ids) == n, f"topic holds {n} messages (got {len(ids)})")
    # Amendments reuse ids, so compare (id, status) multisets with the file.
    with open(path) as f:
        want = sorted((json.loads(line)["observation_id"]) for line in f)
    check(sorted(ids) == want, "every record exactly once, none missing or duplicated")


def main():
    if not BOOTSTRAP:
        print("FAIL: VIGIL_KAFKA_BOOTSTRAP is not set: run eval \"$(scripts/services up)\"",
              file=sys.stderr)
        sys.exit(1)
    which = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="vigil-produce-") as tmp:
        {"produce": test_produce, "import": test_import}[which](tmp)
    done()


if __name__ == "__main__":
    main()
