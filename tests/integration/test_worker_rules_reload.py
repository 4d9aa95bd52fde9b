#!/usr/bin/python3
"""Rules changed mid-stream: a new rules file applies without a restart
(both when the file changes and on SIGHUP), and an invalid file is refused
with a logged reason while the old rules stay in force."""
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

t = h.Checks()
rid = h.run_id()
topic, group, study = "wr.%s.obs" % rid, "wr-%s" % rid, "SR-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], 2)
d = tempfile.mkdtemp(prefix="vigil-rules-")
path = os.path.join(d, "rules.yaml")

RULE = """version: 1
rules:
  - id: %s
    version: 1
    kind: threshold
    loinc: "2823-3"
    op: ">="
    value: %s
    unit: mmol/L
    severity: critical
"""


def write(text):
    # As a ConfigMap update does: a new file renamed over the old one.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


write(RULE % ("k-above-6-5", "6.5"))
w = h.Worker(rid, path, topic, group, h.worker_args())
t.check(h.wait_until(lambda: w.metric("vigil_rules_generation") == 1, 30, "generation 1"),
        "rules generation 1 at start")

i = 0


def batch(values):
    global i
    recs = []
    for v in values:
        recs.append(h.observation(rid, i, study, "S-%d" % (i % 3), value=v))
        i += 1
    h.produce_observations(topic, recs)
    h.wait_until(lambda: h.stored(study) == i, 60, "batch stored")
    return [r["observation_id"] for r in recs]


def alerts_for(ids):
    rows = h.query("SELECT observation_id, rule_id FROM alerts WHERE observation_id = ANY(%s)", ids)
    return sorted(rows)


b1 = batch([6.2, 6.7])
t.check(alerts_for(b1) == [(b1[1], "k-above-6-5")], "batch 1 judged by the first rules")

# 1. The file changes: reloaded without restart.
write(RULE % ("k-above-6-0", "6.0"))
t.check(h.wait_until(lambda: w.metric("vigil_rules_generation") == 2, 30, "generation 2"),
        "file change reloads the rules (generation 2)")
b2 = batch([6.2, 5.9])
t.check(alerts_for(b2) == [(b2[0], "k-above-6-0")], "batch 2 judged by the new rules")

# 2. An invalid file is refused; the old rules stay.
write("version: 1\nrules:\n  - id: broken\n    kind: no-such-kind\n")
t.check(h.wait_until(lambda: w.metric("vigil_rules_reload_failures_total") == 1, 30,
                     "reload failure counted"), "an invalid file is refused")
t.check(w.metric("vigil_rules_generation") == 2, "generation stays 2")
t.check("refused, keeping the old rules" in w.text(), "the refusal is logged with its reason")
b3 = batch([6.1])
t.check(alerts_for(b3) == [(b3[0], "k-above-6-0")], "batch 3 still judged by the last good rules")

# 3. A valid file again, then SIGHUP with the file unchanged: only the
# signal can cause that reload.
write(RULE % ("k-above-7-0", "7.0"))
t.check(h.wait_until(lambda: w.metric("vigil_rules_generation") == 3, 30, "generation 3"),
        "a valid file after an invalid one is taken (generation 3)")
b4 = batch([6.8, 7.2])
t.check(alerts_for(b4) == [(b4[1], "k-above-7-0")], "batch 4 judged by the third rules")
w.proc.send_signal(signal.SIGHUP)
t.check(h.wait_until(lambda: w.metric("vigil_rules_generation") == 4, 30, "generation 4"),
        "SIGHUP reloads the rules (generation 4)")
t.check("rules reloaded (SIGHUP)" in w.text(), "the SIGHUP reload is logged")
t.check(w.proc.poll() is None, "the worker never restarted")
t.check(w.stop() == 0, "worker exits 0")
h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
