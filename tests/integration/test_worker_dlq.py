#!/usr/bin/python3
"""Poison messages: garbage, truncated, oversized and unknown-schema
messages mixed into good ones. Each bad one must land in the dead-letter
topic with its original key, value and headers plus the vigil.error.* and
vigil.source.* headers; every good one must be stored; the partition must
move on (its committed offset reaches the end)."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

t = h.Checks()
rid = h.run_id()
topic, group, study = "wd.%s.obs" % rid, "wd-%s" % rid, "SD-%s" % rid
rules = os.path.join(h.SRC, "tests", "integration", "rules", "pipeline.yaml")
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], 3)

good = [h.observation(rid, i, study, "S-%02d" % (i % 7), value=4.0 + (i % 10) / 10) for i in range(300)]
enc = h.encode("observation", good)
key = lambda r: ("%s/%s" % (r["study_id"], r["subject_id"])).encode()

valid = enc[0]
bad = [
    # (class expected, key, value)
    ("corrupt", b"%s/S-00" % study.encode(), b"this is not avro at all"),
    ("truncated", b"%s/S-01" % study.encode(), valid[: len(valid) // 2]),
    ("truncated", b"%s/S-02" % study.encode(), valid[:5]),
    ("oversize", b"%s/S-03" % study.encode(), b"\xc3\x01" + valid[2:10] + b"\x00" * 70000),
    ("unknown_schema", b"%s/S-04" % study.encode(), b"\xc3\x01" + struct.pack("<Q", 0x1234567890abcdef) + valid[10:]),
    ("unknown_schema", b"%s/S-05" % study.encode(), b"\x00" + struct.pack(">I", 424242) + valid[10:]),
    ("invalid", b"wrong/key", valid),
    ("truncated", b"%s/S-06" % study.encode(), b""),
]
items = []
bi = 0
for i, (r, v) in enumerate(zip(good, enc)):
    if i % 40 == 5 and bi < len(bad):
        cls, k, val = bad[bi]
        items.append((k, val, [("origin", b"lab-%d" % bi)]))
        bi += 1
    items.append((key(r), v))
while bi < len(bad):
    items.append((bad[bi][1], bad[bi][2], [("origin", b"lab-%d" % bi)]))
    bi += 1
h.produce(topic, items)

w = h.Worker(rid, rules, topic, group, h.worker_args(),
             extra_env={"VIGIL_MAX_MESSAGE_BYTES": "65536"})
# good[0] shares its bytes with the "wrong/key" message: the good one is stored
ok = h.wait_until(lambda: h.stored(study) == len(good), 60, "all good observations stored")
t.check(ok, "every good observation stored (%d of %d)" % (h.stored(study), len(good)))

dlq = h.wait_until(lambda: (lambda m: m if len(m) >= len(bad) else None)(h.consume_all(topic + ".dlq", idle=1.0)),
                   60, "dead letters")
dlq = dlq or []
t.check(len(dlq) == len(bad), "exactly one dead letter per bad message (%d of %d)" % (len(dlq), len(bad)))
got = {}
for part, off, k, v, hdrs in dlq:
    hd = {}
    for name, val in hdrs:
        hd[name] = val
    got[(k, v)] = hd
for cls, k, val in bad:
    hd = got.get((k, val))
    if not t.check(hd is not None, "dead letter for the %s message with key %r kept key and value" % (cls, k)):
        continue
    t.check(hd.get("vigil.error.class") == cls.encode(),
            "class %s (got %r, message %r)" % (cls, hd.get("vigil.error.class"), hd.get("vigil.error.message")))
    t.check(len(hd.get("vigil.error.message", b"")) > 5, "an error message for %s" % cls)
    t.check(hd.get("vigil.source.topic") == topic.encode(), "source topic header")
    t.check(hd.get("vigil.source.partition", b"x").isdigit(), "source partition header")
    t.check(hd.get("vigil.source.offset", b"x").isdigit(), "source offset header")
    t.check(hd.get("origin", b"").startswith(b"lab-"), "original headers kept")
    # the source coordinates point at the original message
    src = [m for m in h.consume_all(topic, idle=0.5) if m[0] == int(hd.get("vigil.source.partition", b"-1"))
           and m[1] == int(hd.get("vigil.source.offset", b"-1"))] if cls == "unknown_schema" else None
    if src is not None:
        t.check(len(src) == 1 and src[0][3] == val, "source offset header names the original message")

ends = {}
c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "e-" + rid})
for p in range(3):
    ends[p] = c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1]
c.close()
ok = h.wait_until(lambda: h.committed(group, topic, 3) == ends, 30, "offsets committed to the end")
t.check(ok, "every partition moved on past its poison messages: committed %s, ends %s, "
        "processed %s, consumed %s, paused %s, abandoned %s"
        % (h.committed(group, topic, 3), ends, w.metric("vigil_processed_total"),
           w.metric("vigil_consumed_total"), w.metric("vigil_paused_partitions"),
           w.metric("vigil_abandoned_total")))
m_invalid = sum(w.metric("vigil_invalid_total", 'reason="%s"' % c) or 0
                for c in {"corrupt", "truncated", "oversize", "unknown_schema", "invalid"})
t.check(m_invalid == len(bad), "vigil_invalid_total counts every dead letter (%s)" % m_invalid)
t.check(w.proc.poll() is None, "the worker is still running")
t.check(w.stop() == 0, "worker exits 0")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
