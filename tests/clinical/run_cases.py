#!/usr/bin/python3
"""Runs the clinical table (cases.yaml) through the real pipeline: the
observations go to Kafka, one `vigil worker` with rules.yaml analyses them,
and every case's alert rows in PostgreSQL must be exactly the hand-checked
expectation (rule, CTCAE grade, signal or retraction, retracted or not, and
which result a signal is about).

Each case with two results or more also runs in other arrival orders, each
as a subject of its own: reversed, rotated (the first arrival last) and
replayed (every message sent twice, the second time after all the first).
A result keeps its issue time whatever order it arrives in (an amendment is
issued after what it amends, even when it arrives first). Whatever the
order, the subject must end with the same standing alerts -- signals not
withdrawn, named by rule, grade and the results they are about -- as the
hand-checked order."""
import os
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import vigil_harness as h  # noqa: E402

t = h.Checks()
rid = h.run_id()
topic, group, study = "wc.%s.obs" % rid, "wc-%s" % rid, "SC-%s" % rid
with open(os.path.join(HERE, "cases.yaml")) as f:
    cases = yaml.safe_load(f)
t.check(len(cases) >= 40, "at least 40 cases (%d)" % len(cases))
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], 4)

DAY = 86400000
T0 = 1767225600000  # 2026-01-01, the study's day 0
NOW = int(time.time() * 1000)


def record(ci, tag, k, o):
    """The Avro record of result O, the K-th of case CI in the hand-checked
    order, for the subject variant TAG."""
    if "days_from_now" in o:
        eff = NOW + int(o["days_from_now"] * DAY)
        issued = NOW
    else:
        eff = T0 + int(o.get("day", 0) * DAY)
        # a later version of the same result is a later issue
        issued = T0 + int(o["issued_day"] * DAY) if "issued_day" in o else T0 + 60 * DAY + k * 60000
    return dict(observation_id="%s-c%03d%s-%s" % (rid, ci, tag, o["id"]), study_id=study,
                site_id="SITE-C", subject_id="C-%03d%s" % (ci, tag), loinc=o["loinc"],
                value=o.get("value"), unit=o["unit"], ref_low=o.get("low"),
                ref_high=o.get("high"), effective_time=eff, issued_time=issued,
                status=o.get("status", "final"), visit="V%d" % k)


def variants(n):
    """Arrival orders (as index lists) other than the hand-checked one."""
    if n < 2:
        return {}
    v = {"r": list(reversed(range(n))), "p": list(range(n)) * 2}
    if n >= 3:
        v["o"] = list(range(1, n)) + [0]
    return v


records, labels = [], {}
for ci, case in enumerate(cases):
    base = [record(ci, "", k, o) for k, o in enumerate(case["obs"])]
    orders = {"": list(range(len(base)))}
    orders.update(variants(len(base)))
    for tag, order in orders.items():
        for k in order:
            rec = dict(base[k])
            o = case["obs"][k]
            rec["observation_id"] = "%s-c%03d%s-%s" % (rid, ci, tag, o["id"])
            rec["subject_id"] = "C-%03d%s" % (ci, tag)
            labels[rec["observation_id"]] = o["id"]
            records.append(rec)
h.produce_observations(topic, records)

w = h.Worker(rid, os.path.join(HERE, "rules.yaml"), topic, group, h.worker_args())
c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "e-" + rid})
ends = {p: c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1] for p in range(4)}
c.close()
t.check(h.wait_until(lambda: h.committed(group, topic, 4) == ends, 90, "every case processed"),
        "every observation processed and committed")

rows = h.query("SELECT subject_id, observation_id, rule_id, ctcae_grade, kind, retracted,"
               " evidence FROM alerts WHERE study_id = %s", study)
findings = dict(h.query("SELECT observation_id, dq_finding FROM observations WHERE study_id = %s",
                        study))
by_subject = {}
for subj, oid, rule, grade, kind, retracted, evidence in rows:
    label = labels.get(oid, oid)
    ev = [labels.get(e["observation_id"], e["observation_id"]) for e in evidence]
    signal = kind == "signal"
    # what a signal is about: its first evidence (for Hy's law the
    # transaminase; the bilirubin is the second), when not the trigger
    about = ev[0] if signal and ev and ev[0] != label else None
    by_subject.setdefault(subj, []).append(
        dict(key=(label, rule, grade if signal else None, not signal, bool(retracted), about),
             standing=signal and not retracted, rule=rule, grade=grade,
             about=tuple(ev[:2]) if rule.startswith("hys") else tuple(ev[:1])))


def standing(subj):
    return sorted((r["rule"], r["grade"], r["about"]) for r in by_subject.get(subj, [])
                  if r["standing"])


variant_checks = 0
for ci, case in enumerate(cases):
    subj = "C-%03d" % ci
    want = sorted(((e["obs"], e["rule"], e.get("grade"), bool(e.get("retraction")),
                    bool(e.get("retracted")), e.get("about")) for e in case["expect"] or []),
                  key=repr)
    got = sorted((r["key"] for r in by_subject.get(subj, [])), key=repr)
    t.check(got == want, "case %d: %s\n      want %s\n      got  %s" % (ci, case["name"], want, got))
    for o in case["obs"]:
        if "finding" in o:
            oid = "%s-c%03d-%s" % (rid, ci, o["id"])
            t.check(findings.get(oid) == o["finding"],
                    "case %d: data-quality finding %s (got %s)" % (ci, o["finding"], findings.get(oid)))
    for tag in variants(len(case["obs"])):
        variant_checks += 1
        t.check(standing(subj + tag) == standing(subj),
                "case %d (%s), arrival order %s: standing alerts\n      want %s\n      got  %s"
                % (ci, case["name"], tag, standing(subj), standing(subj + tag)))
print("%d cases, %d out-of-order variants" % (len(cases), variant_checks))

# Symptom reports counted: items by attribute, and a report (a subject's
# items answered at one time) once -- replays count nothing.
ATTR = {"FRQ": "frequency", "SEV": "severity", "INT": "interference"}
items, reports = {}, set()
for ci, case in enumerate(cases):
    for tag in [""] + list(variants(len(case["obs"]))):
        for o in case["obs"]:
            usable = (o["loinc"].startswith("PRO-") and o.get("status", "final") == "final"
                      and o.get("value") in (0, 1, 2, 3, 4))
            if usable:
                a = ATTR[o["loinc"].rsplit("-", 1)[1]]
                items[a] = items.get(a, 0) + 1
                reports.add(("C-%03d%s" % (ci, tag), o.get("day", 0)))
for a, n in items.items():
    got = w.metric("vigil_epro_items_total", 'attribute="%s"' % a)
    t.check(got == n, "vigil_epro_items_total{attribute=%s} %s, want %d" % (a, got, n))
got = w.metric("vigil_epro_submissions_total")
t.check(got == len(reports), "vigil_epro_submissions_total %s, want %d" % (got, len(reports)))

dlq = h.consume_all(topic + ".dlq", idle=1.0)
t.check(len(dlq) == 0, "no case was dead-lettered (%d)" % len(dlq))
t.check(w.stop() == 0, "worker exits 0")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
