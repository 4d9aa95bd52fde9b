#!/usr/bin/python3
"""Order independence through the real pipeline (issue #13), the small
end-to-end variant of tests/unit/test_order_property.c: generated subjects'
histories (liver panels for Hy's law, creatinine for the baseline rules,
symptom reports for worsening; amendments, withdrawals, replays) are sent
in several arrival orders, each order as a subject of its own, through
Kafka and a `vigil worker` with the clinical rules -- and the worker is
restarted half way, so the second half is judged on the state it reads
back from PostgreSQL. Every order of a history must end with the same
standing alerts in PostgreSQL (signal rows not withdrawn, named by rule,
grade, the results they are about and a symptom score)."""
import itertools
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import vigil_harness as h  # noqa: E402

t = h.Checks()
rid = h.run_id()
topic, group, study = "wo.%s.obs" % rid, "wo-%s" % rid, "SO-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], 4)

DAY = 86400000
T0 = 1767225600000  # 2026-01-01
HISTORIES = int(os.environ.get("VIGIL_ORDER_HISTORIES", "30"))
ORDERS = 6  # arrival orders per history (all of them when there are fewer)

LIVER = [("1742-6", "U/L", 7, 40, [22, 150, 200]), ("1975-2", "umol/L", 3, 21, [10, 45, 60]),
         ("6768-6", "U/L", 40, 120, [80, 260]), ("1920-8", "U/L", 8, 40, [24, 130])]
CREAT = [("2160-0", "umol/L", 53, 97, [70, 80, 125, 160])]
SYMPTOM = [("PRO-FATIGUE-SEV", "{score}", None, None, [0, 1, 2, 3, 4])]


def history(rng):
    """A subject's messages: each result's versions in issue order, and
    perhaps a replay of one of them."""
    palette = rng.choice([LIVER, CREAT, SYMPTOM])
    msgs = []
    for r in range(rng.randint(2, 4)):
        code, unit, lo, hi, values = rng.choice(palette)
        day = rng.randint(0, 40)
        base = dict(label="r%d" % r, loinc=code, unit=unit, ref_low=lo, ref_high=hi,
                    value=rng.choice(values), day=day, issued=day + 1 + r / 1000.0,
                    status="final")
        msgs.append(base)
        kind = rng.random()
        if kind < 0.25:
            msgs.append(dict(base, value=rng.choice(values), issued=base["issued"] + 2,
                             status="amended"))
        elif kind < 0.35:
            msgs.append(dict(base, issued=base["issued"] + 3, status="entered_in_error"))
    if rng.random() < 0.3:
        msgs.append(dict(rng.choice(msgs)))
    return msgs


def orders(n, rng):
    everything = list(itertools.permutations(range(n)))
    if len(everything) <= ORDERS:
        return everything
    picked = [tuple(range(n)), tuple(reversed(range(n)))]
    while len(picked) < ORDERS:
        o = tuple(rng.sample(range(n), n))
        if o not in picked:
            picked.append(o)
    return picked


rng = random.Random(13)
first, second, labels = [], [], {}
subjects = {}  # history index -> its subjects
for hi_ in range(HISTORIES):
    msgs = history(rng)
    for oi, order in enumerate(orders(len(msgs), rng)):
        subject = "O-%03d-%d" % (hi_, oi)
        subjects.setdefault(hi_, []).append(subject)
        half = len(order) // 2
        for k, mi in enumerate(order):
            m = msgs[mi]
            oid = "%s-h%03dp%d-%s" % (rid, hi_, oi, m["label"])
            labels[oid] = m["label"]
            rec = dict(observation_id=oid, study_id=study, site_id="SITE-O", subject_id=subject,
                       loinc=m["loinc"], value=m["value"], unit=m["unit"],
                       ref_low=m["ref_low"], ref_high=m["ref_high"],
                       effective_time=T0 + m["day"] * DAY,
                       issued_time=int(T0 + m["issued"] * DAY), status=m["status"], visit="V")
            (first if k < half else second).append(rec)

rules = os.path.join(HERE, "rules.yaml")
c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "e-" + rid})


def ends():
    return {p: c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1]
            for p in range(4)}


# First half of every order, one worker; then a restart: a second worker
# reads each subject back from PostgreSQL and judges the rest.
h.produce_observations(topic, first)
w = h.Worker(rid, rules, topic, group, h.worker_args())
e = ends()
t.check(h.wait_until(lambda: h.committed(group, topic, 4) == e, 90, "first half processed"),
        "first half processed and committed")
t.check(w.stop() == 0, "first worker exits 0")
h.produce_observations(topic, second)
w = h.Worker(rid + "b", rules, topic, group, h.worker_args())
e = ends()
t.check(h.wait_until(lambda: h.committed(group, topic, 4) == e, 90, "second half processed"),
        "second half processed and committed after the restart")
loads = w.metric("vigil_subject_state_loads_total") or 0
t.check(loads > 0, "the restarted worker loaded subjects from PostgreSQL (%d)" % loads)
t.check(w.stop() == 0, "second worker exits 0")
c.close()

rows = h.query("SELECT subject_id, rule_id, ctcae_grade, evidence, kind, retracted FROM alerts"
               " WHERE study_id = %s", study)
standing, retractions = {}, 0
for subj, rule, grade, ev, kind, retracted in rows:
    if kind == "retraction":
        retractions += 1
        continue
    if retracted:
        continue
    ids = [labels.get(x["observation_id"], x["observation_id"]) for x in ev]
    about = tuple(ids[:2]) if rule.startswith("hys") else tuple(ids[:1])
    score = ev[0]["value"] if rule in ("pro-severe", "pro-constant") else None
    standing.setdefault(subj, []).append((rule, grade, about, score))

nonempty = 0
for hi_, subs in subjects.items():
    want = sorted(standing.get(subs[0], []), key=repr)
    nonempty += bool(want)
    t.check(len(want) == len(set(want)), "history %d: no signal stands twice: %s" % (hi_, want))
    for s in subs[1:]:
        got = sorted(standing.get(s, []), key=repr)
        t.check(got == want, "history %d, %s: standing alerts\n      want %s\n      got  %s"
                % (hi_, s, want, got))
print("%d histories, %d arrival orders, %d messages, %d with standing alerts, %d retractions"
      % (HISTORIES, sum(len(s) for s in subjects.values()), len(first) + len(second), nonempty,
         retractions))
t.check(nonempty >= HISTORIES // 3, "the histories raise alerts (%d)" % nonempty)
t.check(retractions > 0, "and withdraw some (%d)" % retractions)
dlq = h.consume_all(topic + ".dlq", idle=1.0)
t.check(len(dlq) == 0, "nothing dead-lettered (%d)" % len(dlq))
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
