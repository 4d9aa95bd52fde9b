#!/usr/bin/python3
"""No message may stall a partition (issue #12): large records and dead
letters that cannot be written, for the worker and the notifier.

The source topic accepts records of up to 20 MB (max.message.bytes raised,
as some sites do); among valid records on the same partitions go three
incompressible ones of 1,000,000 bytes (an observation whose visit string is
huge), 1.5 MiB and 10 MiB. The dead-letter topic keeps Kafka's default
limit (about 1 MiB), so some dead letters cannot be written whole.

  worker          each large record ends on the DLQ, whole or truncated
                  to its first 64 KiB, with its size and SHA-256 in the
                  headers matching what was sent; every valid observation is
                  stored; committed offsets reach the end (lag 0); SIGTERM
                  exits 0 within the grace
  worker-skip     the same with the DLQ topic missing, policy skip (the
                  default), and an operator's receive.message.max.bytes
                  (5 MB) below the 10 MiB record: each large record is a row
                  of dead_letters with its size and SHA-256, counted and
                  logged; nothing valid is held back; lag 0; SIGTERM exits 0
                  within the grace
  worker-stall    the DLQ topic missing, policy stall: the partitions stop
                  at their first large record (committed offset there),
                  /readyz says which partition stalled, SIGTERM exits 3
                  within the grace and the log names each partition and the
                  offset its next owner restarts from; then the topic is
                  created and a new worker writes the dead letters and
                  reaches the end
  notifier        the notifier's alerts DLQ as the worker's: large
                  undecodable alerts on vigil.alerts.dlq whole or truncated
                  with matching SHA-256, every valid alert emailed, lag 0,
                  SIGTERM within grace
  notifier-skip   the alerts DLQ missing: rows in dead_letters, every valid
                  alert emailed, lag 0

New settings are passed through the environment (VIGIL_DLQ_POLICY,
VIGIL_STALL_SECONDS), which an older binary ignores, so each mode runs
against the code before issue #12 and shows how it failed there.
"""
import hashlib
import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "worker"
MIB = 1024 * 1024
K = 64 * 1024        # the default dlq_truncate_bytes
GRACE = 10           # seconds given to --grace
PARTS = 3
TOPIC_MAX = "20000000"
# librdkafka waits topic.metadata.propagation.max.ms (30 s) after it first
# hears of a topic before it believes the topic is missing; the tests with
# a missing DLQ topic shorten that wait to stay bounded. The path taken is
# the same.
MISSING_PROPS = ["-X", "topic.metadata.propagation.max.ms=2000"]

t = h.Checks()
rid = h.run_id()
LOG_DIR = tempfile.mkdtemp(prefix="dlq-large-")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def huge_visit(valid, total):
    """VALID is an encoded observation whose visit is "W1" (the last field:
    union branch 1, length 2, "W1"). Returns the same observation with a
    visit of random bytes making the whole record TOTAL bytes long."""
    assert valid.endswith(b"\x02\x04W1")
    head = valid[:-4] + b"\x02"
    # zig-zag varint of the string length; its own size depends on N
    for width in range(1, 6):
        n = total - len(head) - width
        zz = n << 1
        enc = bytearray()
        while True:
            b = zz & 0x7F
            zz >>= 7
            if zz:
                enc.append(b | 0x80)
            else:
                enc.append(b)
                break
        if len(enc) == width:
            return head + bytes(enc) + os.urandom(n)
    raise AssertionError("no varint width fits")


def large_records(valid_obs=None):
    """The three large records: 1,000,000 bytes, 1.5 MiB and 10 MiB."""
    first = huge_visit(valid_obs, 1000000) if valid_obs else \
        b"\xc3\x01" + os.urandom(1000000 - 2)
    return [first, b"\xc3\x01" + os.urandom(3 * MIB // 2 - 2), b"\xc3\x01" + os.urandom(10 * MIB - 2)]


def produce_ordered(topic, items):
    """items: (key, value). Produces them in order through one producer that
    accepts 20 MB records (no compression: the large ones are random);
    returns [(partition, offset)] per item."""
    p = h.Producer({"bootstrap.servers": h.bootstrap(), "message.max.bytes": 21000000,
                    "compression.type": "none", "linger.ms": 5, "enable.idempotence": True})
    where = [None] * len(items)
    errors = []

    def dr(i):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                where[i] = (msg.partition(), msg.offset())
        return cb
    for i, (k, v) in enumerate(items):
        while True:
            try:
                p.produce(topic, key=k, value=v, on_delivery=dr(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(120 * h.SCALE)
    if errors or left:
        raise RuntimeError("produce failed: %s, %d left" % (errors[:3], left))
    return where


def ends_of(where):
    ends = {p: 0 for p in range(PARTS)}
    for (p, off) in where:
        ends[p] = max(ends[p], off + 1)
    return ends


def headers(hdrs):
    return {k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in hdrs}


def check_letters(letters, source_topic, big, big_where, what, whole_if_fits=True):
    """Each large record has exactly one dead letter: whole, or truncated to
    its first K bytes; size and SHA-256 headers match what was sent. With
    WHOLE_IF_FITS, a record the DLQ topic's ~1 MiB limit takes must be whole
    (vigil tries whole first)."""
    by_src = {}
    for (_, _, key, val, hdrs) in letters:
        hd = headers(hdrs)
        src = (hd.get("vigil.source.topic"), hd.get("vigil.source.partition"),
               hd.get("vigil.source.offset"))
        by_src.setdefault(src, []).append((val or b"", hd))
    for i, (orig, (p, off)) in enumerate(zip(big, big_where)):
        got = by_src.get((source_topic, str(p), str(off)), [])
        name = "%s: the %d-byte record (partition %d offset %d)" % (what, len(orig), p, off)
        if not t.check(len(got) == 1, "%s has one dead letter (%d)" % (name, len(got))):
            continue
        val, hd = got[0]
        t.check(hd.get("vigil.original.size") == str(len(orig)),
                "%s: vigil.original.size %s" % (name, hd.get("vigil.original.size")))
        t.check(hd.get("vigil.original.sha256") == sha(orig),
                "%s: vigil.original.sha256 matches what was sent" % name)
        t.check(hd.get("vigil.error.class") and hd.get("vigil.error.message"),
                "%s: says why it was dead-lettered (%s)" % (name, hd.get("vigil.error.class")))
        if len(orig) > 1048576 or (not whole_if_fits and hd.get("vigil.truncated")):
            # Above the DLQ topic's limit: only the truncated one fits.
            t.check(hd.get("vigil.truncated") == "true" and val == orig[:K],
                    "%s: truncated to its first %d bytes (got %d bytes, truncated=%s)"
                    % (name, K, len(val), hd.get("vigil.truncated")))
            t.check(bool(hd.get("vigil.publish.error")),
                    "%s: says why the whole one was refused" % name)
        else:
            t.check(val == orig and hd.get("vigil.truncated") is None,
                    "%s: whole (%d bytes)" % (name, len(val)))
    extra = sum(len(v) for k, v in by_src.items()) - len(big)
    t.check(extra == 0, "%s: no other dead letters (%d)" % (what, extra))


def stop_within_grace(proc_obj, want_rc, what):
    t0 = time.monotonic()
    rc = proc_obj.stop(timeout=GRACE + 30)
    took = time.monotonic() - t0
    t.check(took <= GRACE, "%s: SIGTERM to exit took %.1f s (grace %d s)" % (what, took, GRACE))
    t.check(rc == want_rc, "%s: exit status %s (want %d)" % (what, rc, want_rc))
    return rc


def dead_letter_rows(source_topic):
    return h.query("SELECT source_partition, source_offset, original_size, original_sha256, "
                   "error_class, publish_error, dead_letter_topic FROM dead_letters "
                   "WHERE source_topic = %s ORDER BY source_partition, source_offset",
                   source_topic)


def check_rows(source_topic, big, big_where, what):
    try:
        rows = dead_letter_rows(source_topic)
    except Exception as e:  # no table on the old code
        t.check(False, "%s: dead_letters readable (%s)" % (what, str(e).strip()))
        return
    got = {(r[0], r[1]): r for r in rows}
    for orig, (p, off) in zip(big, big_where):
        r = got.get((p, off))
        if not t.check(r is not None, "%s: a dead_letters row for partition %d offset %d"
                       % (what, p, off)):
            continue
        t.check(r[2] == len(orig) and r[3] == sha(orig),
                "%s: row of offset %d holds size %s and the SHA-256 of what was sent"
                % (what, off, r[2]))
        t.check(r[4] and r[5], "%s: row of offset %d says why (%s) and why the DLQ refused (%s)"
                % (what, off, r[4], r[5]))
    t.check(len(rows) == len(big), "%s: %d rows (want %d)" % (what, len(rows), len(big)))


# ---- the worker ---------------------------------------------------------------

def worker_data(study):
    good = [h.observation(rid, i, study, "S-%02d" % (i % 6), value=4.0 + (i % 10) / 10)
            for i in range(150)]
    enc = h.encode("observation", good)
    big = large_records(enc[0])
    items = []
    big_idx = []
    for i, (r, v) in enumerate(zip(good, enc)):
        if i in (20, 60, 100):
            big_idx.append(len(items))
            k = "%s/S-%02d" % (study, len(big_idx))
            items.append((k.encode(), big[len(big_idx) - 1]))
        items.append((("%s/%s" % (r["study_id"], r["subject_id"])).encode(), v))
    return good, big, items, big_idx


def run_worker(mode):
    h.migrate()
    topic, group, study = "wl.%s.obs" % rid, "wl-%s" % rid, "SL-%s" % rid
    rules = os.path.join(h.SRC, "tests", "integration", "rules", "pipeline.yaml")
    h.create_topics([topic], PARTS, {"max.message.bytes": TOPIC_MAX})
    h.create_topics([topic + ".alerts"], PARTS)
    if mode == "worker":
        h.create_topics([topic + ".dlq"], PARTS)
    good, big, items, big_idx = worker_data(study)
    where = produce_ordered(topic, items)
    big_where = [where[i] for i in big_idx]
    ends = ends_of(where)
    print("large records at %s; ends %s" % (big_where, ends), flush=True)

    extra_env = {}
    args = h.worker_args() + ["--grace", str(GRACE)]
    if mode != "worker":
        args += MISSING_PROPS
    if mode == "worker-skip":
        # An operator's receive.message.max.bytes below the 10 MiB record:
        # librdkafka would fail that partition's fetch for ever; vigil
        # raises it to what max_record_bytes (64 MiB) needs.
        args += ["-X", "receive.message.max.bytes=5000000"]
    if mode == "worker-stall":
        extra_env = {"VIGIL_DLQ_POLICY": "stall", "VIGIL_STALL_SECONDS": "3"}
    w = h.Worker(rid, rules, topic, group, args, log_dir=LOG_DIR, extra_env=extra_env)

    ok = h.wait_until(lambda: h.stored(study) == len(good), 90, "every valid observation stored")
    t.check(ok, "every valid observation stored (%d of %d)" % (h.stored(study), len(good)))
    if mode in ("worker", "worker-skip"):
        ok = h.wait_until(lambda: h.committed(group, topic, PARTS) == ends, 60,
                          "offsets committed to the end")
        t.check(ok, "lag 0: committed %s, ends %s" % (h.committed(group, topic, PARTS), ends))
        if mode == "worker":
            letters = h.wait_until(
                lambda: (lambda m: m if len(m) >= len(big) else None)(
                    h.consume_all(topic + ".dlq", idle=1.0)), 30, "dead letters") or []
            check_letters(letters, topic, big, big_where, "worker")
        else:
            check_rows(topic, big, big_where, "worker, DLQ topic missing")
            skipped = w.metric("vigil_dead_letters_skipped_total") or 0
            t.check(skipped == len(big), "vigil_dead_letters_skipped_total %s" % skipped)
            t.check(len(re.findall(r"skipped.*recorded in dead_letters", w.text())) >= len(big),
                    "an error log line per skipped dead letter")
        st, body = w.get("/readyz")
        t.check(st == 200, "ready at the end (%s %s)" % (st, body.strip()))
        stop_within_grace(w, 0, mode)
    else:
        # stall: each partition with a large record stops at its first one
        first = {}
        for (p, off) in big_where:
            first[p] = min(first.get(p, off), off)
        want = {p: first.get(p, ends[p]) for p in range(PARTS)}
        ok = h.wait_until(lambda: h.committed(group, topic, PARTS) == want, 60,
                          "partitions committed up to their first large record")
        t.check(ok, "stalled at the first large record: committed %s, want %s"
                % (h.committed(group, topic, PARTS), want))
        ready = h.wait_until(lambda: (lambda r: r if r[0] == 503 and "stalled" in r[1] else None)(
            w.get("/readyz")), 30, "/readyz reporting the stall")
        t.check(ready, "/readyz reports a stalled partition (%s)" % (w.get("/readyz"),))
        p0 = sorted(first)[0]
        age = h.wait_until(lambda: (lambda v: v if v >= 3 else None)(
            w.metric("vigil_oldest_unfinished_seconds", 'partition="%d"' % p0) or 0), 10,
            "the stall gauge")
        t.check(age, "vigil_oldest_unfinished_seconds of partition %d reaches the 3 s threshold "
                "(%s)" % (p0, w.metric("vigil_oldest_unfinished_seconds", 'partition="%d"' % p0)))
        stalled = w.metric("vigil_dead_letters_stalled") or 0
        t.check(stalled == len(big), "vigil_dead_letters_stalled %s" % stalled)
        stop_within_grace(w, 3, "worker, stalled")
        text = w.text()
        for p, off in sorted(first.items()):
            t.check(re.search(r"partition %d left unfinished: .*from offset %d on" % (p, off), text),
                    "the log names partition %d and offset %d" % (p, off))
        # A stall ends when the topic exists, without a restart: a second
        # worker stalls the same way, then the topic is created.
        w2 = h.Worker(rid, rules, topic, group, args, log_dir=LOG_DIR, extra_env=extra_env)
        ok = h.wait_until(lambda: (w2.metric("vigil_dead_letters_stalled") or 0) == len(big), 60,
                          "the second worker stalled on the same records")
        t.check(ok, "the second worker stalls too (%s)" % w2.metric("vigil_dead_letters_stalled"))
        h.create_topics([topic + ".dlq"], PARTS)
        ok = h.wait_until(lambda: h.committed(group, topic, PARTS) == ends, 60,
                          "offsets committed to the end once the DLQ topic exists")
        t.check(ok, "after the topic appeared: committed %s, ends %s"
                % (h.committed(group, topic, PARTS), ends))
        letters = h.consume_all(topic + ".dlq", idle=1.0)
        # retried as they stalled: truncated, whatever their size
        check_letters(letters, topic, big, big_where, "worker after the stall", False)
        t.check((w2.metric("vigil_dead_letters_stalled") or 0) == 0, "no dead letter stalled")
        st, body = w2.get("/readyz")
        t.check(st == 200, "ready again (%s %s)" % (st, body.strip()))
        stop_within_grace(w2, 0, "second worker")
    h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])


# ---- the notifier ---------------------------------------------------------------

class Notifier(h.Worker):
    """A `vigil notifier` process (the worker helper's log, port, metrics)."""

    def __init__(self, topic, group, dlq_topic, extra=None, extra_env=None):
        self.log_path = os.path.join(LOG_DIR, "notifier-%d.log" % id(self))
        self.log = open(self.log_path, "wb")
        args = [h.VIGIL, "notifier", "-t", topic, "-g", group, "--http", "127.0.0.1:0",
                "--grace", str(GRACE), "-b", h.bootstrap(), "--pg", h.env("VIGIL_PG_CONNINFO"),
                "--smtp-url", h.env("VIGIL_SMTP_URL"), "-s", "rate_per_min=0",
                "-s", "dlq_topic=" + dlq_topic,
                "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"]
        args += extra or []
        e = dict(os.environ)
        e.pop("VIGIL_SMS_URL", None)
        e.update(extra_env or {})
        self.proc = h.track(h.subprocess.Popen(args, stdout=self.log, stderr=h.subprocess.STDOUT,
                                               env=e))
        self.port = None


def emailed_ids(spool):
    """Alert ids in the SMTP spool's messages to this run's address."""
    import email
    import email.policy
    ids = set()
    for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
        if not any(rid in x for x in e["rcpt_tos"]):
            continue
        with open(os.path.join(spool, e["file"]), "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        ids.update(str(msg["X-Vigil-Alert-Ids"] or "").split())
    return ids


def run_notifier(mode):
    h.migrate()
    topic, group = "nl.%s.alerts" % rid, "nl-%s" % rid
    dlq = topic + ".dlq"
    h.create_topics([topic], PARTS, {"max.message.bytes": TOPIC_MAX})
    if mode == "notifier":
        h.create_topics([dlq], 1)
    study, researcher = "%s-NS" % rid, "%s-nora" % rid
    h.query("INSERT INTO researchers (researcher_id, name, email) VALUES (%s, %s, %s)",
            researcher, "nora", "nora.%s@test.example" % rid)
    h.query("INSERT INTO studies (study_id, name) VALUES (%s, %s)", study, "NS")
    h.query("INSERT INTO sites (study_id, site_id, name) VALUES (%s, 'A', 'A')", study)
    h.query("INSERT INTO subscriptions (researcher_id, study_id, min_severity, channels) "
            "VALUES (%s, %s, 'info', %s)", researcher, study, ["email"])
    t0 = 1767225600000
    good = [dict(alert_id="%s-a%04d" % (rid, i), kind="signal", rule_id="alt-3xuln",
                 rule_version=1, severity="critical", ctcae_grade=3, study_id=study,
                 site_id="A", subject_id="P-%03d" % (i % 6),
                 evidence=[dict(observation_id="%s-o%04d" % (rid, i), loinc="1742-6",
                                value=250.0, unit="U/L", effective_time=t0 + i * 1000)],
                 message="ALT 250 U/L above 3x ULN", observed_time=t0 + i * 1000,
                 detected_time=int(time.time() * 1000), retracts_alert_id=None)
            for i in range(30)]
    vals = h.encode("alert", good)
    big = large_records()
    items, big_idx = [], []
    for i, (a, v) in enumerate(zip(good, vals)):
        if i in (4, 12, 20):
            big_idx.append(len(items))
            items.append((("%s/P-%03d" % (study, len(big_idx))).encode(), big[len(big_idx) - 1]))
        items.append((("%s/%s" % (a["study_id"], a["subject_id"])).encode(), v))
    where = produce_ordered(topic, items)
    big_where = [where[i] for i in big_idx]
    ends = ends_of(where)
    print("large alerts at %s; ends %s" % (big_where, ends), flush=True)

    n = Notifier(topic, group, dlq, MISSING_PROPS if mode != "notifier" else [])
    spool = h.env("VIGIL_SMTP_SPOOL")
    want = {a["alert_id"] for a in good}
    ok = h.wait_until(lambda: want <= emailed_ids(spool), 90, "every valid alert emailed")
    t.check(ok, "every valid alert emailed (%d of %d)" % (len(want & emailed_ids(spool)),
                                                          len(want)))
    ok = h.wait_until(lambda: h.committed(group, topic, PARTS) == ends, 60, "offsets at the end")
    t.check(ok, "lag 0: committed %s, ends %s" % (h.committed(group, topic, PARTS), ends))
    if mode == "notifier":
        letters = h.consume_all(dlq, idle=1.0)
        check_letters(letters, topic, big, big_where, "notifier")
    else:
        check_rows(topic, big, big_where, "notifier, DLQ topic missing")
        skipped = n.metric("vigil_dead_letters_skipped_total") or 0
        t.check(skipped == len(big), "vigil_dead_letters_skipped_total %s" % skipped)
    stop_within_grace(n, 0, mode)
    h.delete_topics([topic, dlq])


try:
    if MODE.startswith("worker"):
        run_worker(MODE)
    else:
        run_notifier(MODE)
finally:
    print("logs in", LOG_DIR, flush=True)
t.done()
