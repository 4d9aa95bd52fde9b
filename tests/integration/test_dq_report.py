#!/usr/bin/python3
"""Data-quality findings through the real worker, and `vigil dq report` over
them (issue #13): two sites send results vigil cannot analyse -- a LOINC
with a wrong check digit, a well-formed code vigil does not know, a unit it
cannot convert, an implausible value, a result dated after its arrival --
each is stored with its finding, the unknown and malformed codes are
counted per site on /metrics, and the report gives them by kind, site and
week received, with the codes and units behind them; --since and --site
narrow it."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

t = h.Checks()
rid = h.run_id()
topic, group, study = "wq.%s.obs" % rid, "wq-%s" % rid, "SQ-%s" % rid
h.migrate()
h.create_topics([topic, topic + ".dlq", topic + ".alerts"], 2)

DAY = 86400000
NOW = int(time.time() * 1000)
recs = []


def add(site, loinc, value, unit, when=NOW - 2 * DAY):
    i = len(recs)
    r = h.observation(rid, i, study, "S-%d" % (i % 4), loinc=loinc, value=value, unit=unit,
                      t0=when - i * 1000)
    r["site_id"] = site
    recs.append(r)


for _ in range(3):
    add("SITE-A", "99999-9", 1.0, "mmol/L")        # wrong check digit
for _ in range(2):
    add("SITE-A", "99999-5", 1.0, "mmol/L")        # well formed, unknown
add("SITE-A", "2823-3", 4.0, "mmol/L", NOW + 30 * DAY)  # from the future
for _ in range(2):
    add("SITE-B", "2823-3", 16.0, "mg/L")          # unknown unit
add("SITE-B", "2823-3", 25.0, "mmol/L")            # implausible
for _ in range(4):
    add("SITE-B", "2823-3", 4.2, "mmol/L")         # fine
h.produce_observations(topic, recs)

w = h.Worker(rid, os.path.join(h.SRC, "schemas", "rules.example.yaml"), topic, group,
             h.worker_args())
t.check(h.wait_until(lambda: h.stored(study) == len(recs), 60, "every result stored"),
        "every result stored")
findings = dict(h.query("SELECT dq_finding, count(*) FROM observations WHERE study_id = %s"
                        " AND dq_finding IS NOT NULL GROUP BY 1", study))
want = {"malformed_code": 3, "unknown_code": 2, "future_effective_time": 1, "unknown_unit": 2,
        "implausible_value": 1}
t.check(findings == want, "findings stored: %s" % findings)
alerts = h.query("SELECT count(*) FROM alerts WHERE study_id = %s", study)[0][0]
t.check(alerts == 0, "no alert from a result with a finding (%d)" % alerts)
lab = 'study="%s",site="SITE-A",finding="%%s"' % study
t.check(w.metric("vigil_unanalysed_codes_total", lab % "malformed_code") == 3,
        "malformed codes counted for the site")
t.check(w.metric("vigil_unanalysed_codes_total", lab % "unknown_code") == 2,
        "unknown codes counted for the site")
t.check(w.stop() == 0, "worker exits 0")

# The unknown units were received two weeks ago (as if): by week and --since.
h.query("UPDATE observations SET created_at = created_at - interval '14 days'"
        " WHERE study_id = %s AND dq_finding = 'unknown_unit'", study)


def report(*args):
    p = subprocess.run([h.VIGIL, "dq", "report", "--study", study] + list(args),
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


rc, out, err = report("--format", "json")
t.check(rc == 0, "report exits 0 (%s)" % err)
r = json.loads(out) if rc == 0 else {}
t.check(r.get("results") == len(recs) and r.get("with_finding") == 9,
        "totals: %s of %s" % (r.get("with_finding"), r.get("results")))
kinds = {k["finding"]: k["results"] for k in r.get("by_finding", [])}
t.check(kinds == want, "by kind: %s" % kinds)
sites = {(k["site"], k["finding"]): k["results"] for k in r.get("by_site", [])}
t.check(sites.get(("SITE-A", "malformed_code")) == 3 and sites.get(("SITE-B", "unknown_unit")) == 2
        and len(sites) == 5, "by site: %s" % sites)
weeks = {k["week"] for k in r.get("by_week", [])}
t.check(len(weeks) == 2, "two weeks received: %s" % weeks)
top = r.get("top_codes", [])
t.check(top and top[0]["code"] == "99999-9" and top[0]["finding"] == "malformed_code"
        and top[0]["results"] == 3 and top[0]["sites"] == 1, "top code: %s" % top[:1])
units = r.get("top_units", [])
t.check(units == [{"code": "2823-3", "unit": "mg/L", "results": 2, "sites": 1}],
        "top units: %s" % units)

rc, out, err = report("--format", "json", "--since", "7d")
r = json.loads(out) if rc == 0 else {}
kinds = {k["finding"]: k["results"] for k in r.get("by_finding", [])}
t.check(rc == 0 and "unknown_unit" not in kinds and kinds.get("malformed_code") == 3,
        "--since 7d leaves out what arrived two weeks ago: %s" % kinds)
rc, out, err = report("--format", "json", "--site", "SITE-B")
r = json.loads(out) if rc == 0 else {}
t.check(rc == 0 and {k["site"] for k in r.get("by_site", [])} == {"SITE-B"}, "--site SITE-B")
rc, out, err = report("--top", "1")
t.check(rc == 0 and "findings by kind" in out and "malformed_code" in out
        and "data-quality finding 9" in out, "text report:\n%s" % out)

rc = subprocess.run([h.VIGIL, "dq", "report"], capture_output=True).returncode
t.check(rc == 2, "no --study: exit 2")
rc = subprocess.run([h.VIGIL, "dq", "nonsense"], capture_output=True).returncode
t.check(rc == 2, "unknown dq command: exit 2")
rc = subprocess.run([h.VIGIL, "dq", "report", "--study", study, "--since", "yesterday"],
                    capture_output=True).returncode
t.check(rc == 2, "a --since that is no time: exit 2")

h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])
t.done()
