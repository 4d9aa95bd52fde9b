#!/usr/bin/python3
"""vigil worker end to end: 3 worker processes in one consumer group on a
12-partition topic, N observations (100,000 by default).

  test_worker_pipeline.py normal [N]   all three run to the end
  test_worker_pipeline.py kill [N]     one worker is SIGKILLed half-way

Either way the end state must be the same: every observation exactly once in
PostgreSQL, every expected alert exactly once in PostgreSQL and present on
the alerts topic, each subject's alerts in the order of its observations,
nothing dead-lettered, and every partition's committed offset at its end.

The expected alerts are computed here, independently of vigil, from the
records produced and the two rules in rules/pipeline.yaml (potassium >= 6.5
mmol/L after unit conversion; ALT > 5 x the result's own ULN).
"""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "normal"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
PARTS = 12
t = h.Checks()
rid = h.run_id()
topic = "wt.%s.obs" % rid
group = "wt-%s" % rid
study = "ST-%s" % rid
rules = os.path.join(h.SRC, "tests", "integration", "rules", "pipeline.yaml")

h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], PARTS)

# ---- the data: 2,000 subjects, potassium and ALT in two units each -------
rng = random.Random(20261126)
SUBJECTS = 2000
records = []
expected = []  # (observation_id, rule_id) in input order
t0 = 1767225600000
for i in range(N):
    subj = "S-%05d" % rng.randrange(SUBJECTS)
    oid = "%s-o%07d" % (rid, i)
    if rng.random() < 0.5:
        # potassium; values kept away from the 6.5 threshold so float
        # rounding can never decide the verdict
        mmol = rng.choice([rng.uniform(3.4, 5.4), rng.uniform(6.6, 7.5)]) if rng.random() < 0.05 \
            else rng.uniform(3.4, 5.4)
        if rng.random() < 0.5:
            value, unit = round(mmol, 2), "mmol/L"
            norm = value
        else:
            value = round(mmol * 39.098 / 10, 3)
            unit = "mg/dL"
            norm = value * 10 / 39.098
        rec = dict(loinc="2823-3", value=value, unit=unit, ref_low=3.5, ref_high=5.1)
        if norm >= 6.5:
            expected.append((oid, "k-high"))
    else:
        uln = 40.0
        mult = rng.uniform(6.0, 9.0) if rng.random() < 0.03 else rng.uniform(0.2, 4.0)
        if rng.random() < 0.5:
            value, unit, ref_high = round(uln * mult, 1), "U/L", uln
            ratio = value / ref_high
        else:
            value, unit, ref_high = round(uln * mult / 60, 4), "ukat/L", round(uln / 60, 4)
            ratio = value / ref_high
        rec = dict(loinc="1742-6", value=value, unit=unit, ref_low=0.0, ref_high=ref_high)
        if ratio > 5:
            expected.append((oid, "alt-5x"))
    rec.update(observation_id=oid, study_id=study, site_id="SITE-%d" % (hash(subj) % 5),
               subject_id=subj, effective_time=t0 + i * 1000, issued_time=t0 + i * 1000 + 500,
               status="final", visit="W%d" % (i % 12))
    records.append(rec)
subject_of = {r["observation_id"]: r["subject_id"] for r in records}
t.check(len(expected) > 100, "the data has enough alerts to mean something (%d)" % len(expected))

h.produce_observations(topic, records)

extra = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
         "--pg", h.env("VIGIL_PG_CONNINFO"), "-b", h.bootstrap()]
workers = [h.Worker(rid, rules, topic, group, extra) for _ in range(3)]


def stored():
    return h.query("SELECT count(*) FROM observations WHERE study_id = %s", study)[0][0]


def ends():
    c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "ends-" + rid})
    out = {}
    for p in range(PARTS):
        lo, hi = c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)
        out[p] = hi
    c.close()
    return out


end_offsets = ends()
t.check(sum(end_offsets.values()) == N, "all %d records are on the topic" % N)

if mode == "kill":
    h.wait_until(lambda: stored() >= N // 2, 180, "half the observations stored")
    victim = workers[0]
    victim.kill()
    t.check(victim.proc.returncode == -9, "worker 0 was SIGKILLed mid-run")
    print("killed worker 0 with %d of %d stored" % (stored(), N), flush=True)
    live = workers[1:]
else:
    live = workers


def finished():
    return (stored() == N and h.committed(group, topic, PARTS) == end_offsets)


ok = h.wait_until(finished, 300, "every observation stored and every offset committed",
                  interval=0.5)
t.check(ok, "the group finished: %d stored, committed %s" % (stored(), h.committed(group, topic, PARTS)))

# ---- PostgreSQL --------------------------------------------------------
rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations"
               " WHERE study_id = %s", study)[0]
t.check(rows == (N, N), "every observation exactly once in PostgreSQL: %s" % (rows,))
alerts = h.query("SELECT observation_id, rule_id, kind FROM alerts WHERE study_id = %s", study)
got = sorted((a[0], a[1]) for a in alerts)
t.check(len(got) == len(set(got)), "no alert twice in PostgreSQL")
t.check(set(got) == set(expected),
        "alerts in PostgreSQL are exactly the expected ones: %d expected, %d got, %d missing, "
        "%d unexpected" % (len(expected), len(got), len(set(expected) - set(got)),
                           len(set(got) - set(expected))))
t.check(all(a[2] == "signal" for a in alerts), "all signals, no retractions")

# ---- the alerts topic --------------------------------------------------
msgs = h.consume_all(topic + ".alerts")
decoded = h.decode("alert", [m[3] for m in msgs])
t.check(all("error" not in d for d in decoded), "every message on the alerts topic decodes")
seen = []
first = set()
for m, d in zip(msgs, decoded):
    ev = d.get("evidence") or [{}]
    pair = (ev[0].get("observation_id"), d.get("rule_id"))
    t.check(m[2] == ("%s/%s" % (study, d.get("subject_id"))).encode(),
            "alert key is study/subject") if len(seen) < 50 else None
    if pair not in first:
        first.add(pair)
        seen.append((m[0], m[1], pair))
t.check(first == set(expected),
        "alerts topic holds every expected alert (%d missing, %d unexpected)"
        % (len(set(expected) - first), len(first - set(expected))))
dups = len(msgs) - len(first)
print("alerts on topic: %d messages, %d distinct, %d replayed copies" % (len(msgs), len(first), dups))
if mode == "normal":
    t.check(dups == 0, "no alert published twice without a failure (%d)" % dups)

# Per-subject order: a subject's alerts all sit on one partition, in the
# order of its observations.
order_ok = True
by_subject = {}
for part, off, pair in seen:
    by_subject.setdefault(subject_of[pair[0]], []).append((part, off, pair[0]))
for subj, lst in by_subject.items():
    parts = {p for p, _, _ in lst}
    oids = [o for _, _, o in sorted(lst, key=lambda x: x[1])]
    if len(parts) != 1 or oids != sorted(oids):
        order_ok = False
t.check(order_ok, "each subject's alerts are on one partition in observation order")

dlq = h.consume_all(topic + ".dlq", idle=1.0)
t.check(len(dlq) == 0, "nothing dead-lettered (%d)" % len(dlq))

for w in live:
    rc = w.stop()
    t.check(rc == 0, "worker exits 0 on SIGTERM (rc %s)" % rc)
    text = w.text()
    t.check("stopped: offsets committed, group left" in text, "worker logged a clean stop")
for w in workers:
    text = w.text()
    for s in list(by_subject)[:20]:
        if s in text:
            t.check(False, "raw subject id %s found in a worker log" % s)
            break

h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
