#!/usr/bin/python3
"""Runs the clinical table (cases.yaml) through the real pipeline: the
observations go to Kafka, one `vigil worker` with rules.yaml analyses them,
and every case's alert rows in PostgreSQL must be exactly the hand-checked
expectation (rule, CTCAE grade, signal or retraction, retracted or not)."""
import os
import sys

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
T0 = 1767225600000
records = []
for ci, case in enumerate(cases):
    subject = "C-%03d" % ci
    for k, o in enumerate(case["obs"]):
        status = o.get("status", "final")
        value = o.get("value")
        rec = dict(observation_id="%s-c%03d-%s" % (rid, ci, o["id"]), study_id=study,
                   site_id="SITE-C", subject_id=subject, loinc=o["loinc"], value=value,
                   unit=o["unit"], ref_low=o.get("low"), ref_high=o.get("high"),
                   effective_time=T0 + int(o.get("day", 0) * DAY),
                   # a later arrival of the same result is a later issue
                   issued_time=T0 + 30 * DAY + k * 60000, status=status, visit="V%d" % k)
        records.append(rec)
h.produce_observations(topic, records)

w = h.Worker(rid, os.path.join(HERE, "rules.yaml"), topic, group, h.worker_args())
c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "e-" + rid})
ends = {p: c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1] for p in range(4)}
c.close()
t.check(h.wait_until(lambda: h.committed(group, topic, 4) == ends, 60, "every case processed"),
        "every observation processed and committed")

rows = h.query("SELECT observation_id, rule_id, ctcae_grade, kind, retracted FROM alerts"
               " WHERE study_id = %s", study)
findings = dict(h.query("SELECT observation_id, dq_finding FROM observations WHERE study_id = %s",
                        study))
by_case = {}
for oid, rule, grade, kind, retracted in rows:
    ci = int(oid.split("-c")[-1].split("-")[0])
    label = oid.split("-c%03d-" % ci, 1)[1]
    key = (label, rule, grade if kind == "signal" else None, kind == "retraction",
           bool(retracted))
    by_case.setdefault(ci, []).append(key)

for ci, case in enumerate(cases):
    want = sorted(((e["obs"], e["rule"], e.get("grade"), bool(e.get("retraction")),
                    bool(e.get("retracted"))) for e in case["expect"] or []), key=repr)
    got = sorted(by_case.get(ci, []), key=repr)
    t.check(got == want, "case %d: %s\n      want %s\n      got  %s" % (ci, case["name"], want, got))
    for o in case["obs"]:
        if "finding" in o:
            oid = "%s-c%03d-%s" % (rid, ci, o["id"])
            t.check(findings.get(oid) == o["finding"],
                    "case %d: data-quality finding %s (got %s)" % (ci, o["finding"], findings.get(oid)))

dlq = h.consume_all(topic + ".dlq", idle=1.0)
t.check(len(dlq) == 0, "no case was dead-lettered (%d)" % len(dlq))
t.check(w.stop() == 0, "worker exits 0")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
