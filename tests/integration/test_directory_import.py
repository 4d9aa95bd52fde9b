"""vigil directory import FILE: researchers, studies, sites and
subscriptions from CSV, and all of those plus escalation policies from
YAML, into a private schema. The import is idempotent (a second run changes
nothing and says so; an unchanged policy is not rewritten nor audited
again), updates in place, is all or nothing (a policy that reaches nobody
in an otherwise valid file rolls back its studies and researchers too),
and every error names its line: YAML syntax, unknown sections and keys,
bad values, a policy's tier, and rows the tables refuse. A researcher's
quiet hours are set when given, removed by null/none, and left alone when
the file does not say."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_lib as cl  # noqa: E402
import vigil_harness as h  # noqa: E402

C = h.Checks()
E = cl.Env("dirimp")
GOOD = "\n".join([
    "kind,id,name,email,phone,study,site,min_severity,channels",
    "# a comment line and a blank one are skipped",
    "",
    'study,STUDY-A,"Trial A, phase II",,,,,,',
    "site,SITE-1,Site one,,,STUDY-A,,,",
    'site,SITE-2,"Site ""two""",,,STUDY-A,,,',
    "researcher,R-1,Ann Smith,ann@example.org,+442079000001,,,,",
    "researcher,R-2,<b>Bob</b>,bob@example.org,,,,,",
    "subscription,R-1,,,,STUDY-A,,critical,email;sms",
    "subscription,R-2,,,,STUDY-A,SITE-1,warning,email",
]) + "\n"


def run(text, suffix=".csv", *args):
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as f:
        f.write(text)
    r = subprocess.run([h.VIGIL, "directory", "import", f.name, "--conninfo", E.conninfo] + list(args),
                       capture_output=True, text=True)
    os.unlink(f.name)
    return r


r = run(GOOD)
C.check(r.returncode == 0 and "7 rows; changed 2 researchers, 1 studies, 2 sites, 2 subscriptions" in r.stdout,
        "first import: %s %s" % (r.stdout, r.stderr))
C.check(E.sql("SELECT name FROM sites WHERE site_id = 'SITE-2'")[0][0] == 'Site "two"', "quoted CSV fields")
C.check(E.sql("SELECT channels FROM subscriptions WHERE researcher_id = 'R-1'")[0][0] == ["email", "sms"],
        "channels email;sms")
r = run(GOOD)
C.check(r.returncode == 0 and "changed 0 researchers, 0 studies, 0 sites, 0 subscriptions" in r.stdout,
        "second import changes nothing: %s" % r.stdout)
r = run(GOOD.replace("Ann Smith", "Ann Jones").replace("critical,email;sms", "warning,email"))
C.check(r.returncode == 0 and "changed 1 researchers, 0 studies, 0 sites, 1 subscriptions" in r.stdout,
        "an edited file updates in place: %s" % r.stdout)
before = E.sql("SELECT count(*) FROM researchers")[0][0]
for bad, line, what in [
        (GOOD + "researcher,R-3,Carl,carl@example.org,,,,,\nsubscription,R-3,,,,STUDY-A,,loud,email\n",
         "line 12:", "min_severity 'loud'"),
        (GOOD + "subscription,R-2,,,,STUDY-A,SITE-9,info,email\n", "line 11:", "foreign key"),
        (GOOD + "doctor,R-9,X,,,,,,\n", "line 11:", "kind 'doctor'"),
        (GOOD + 'researcher,R-9,"unterminated\n', "line 11:", "quoted field"),
        (GOOD + "researcher,R-9,X,not-an-email,,,,,\n", "line 11:", "researchers_email_check"),
        ("kind,id,nmae\n", "line 1:", "column 'nmae'")]:
    r = run(bad)
    C.check(r.returncode == 1 and line in r.stderr and what in r.stderr and "nothing imported" in r.stderr,
            "bad row named with its line (%s): %s" % (what, r.stderr.strip()))
C.check(E.sql("SELECT count(*) FROM researchers")[0][0] == before and
        E.sql("SELECT count(*) FROM researchers WHERE researcher_id = 'R-3'")[0][0] == 0,
        "a failed import changes nothing (all or nothing)")
r = subprocess.run([h.VIGIL, "directory", "import"], capture_output=True, text=True)
C.check(r.returncode == 2, "no FILE: usage error")
# the file is read and checked before connecting: a bad line is named even
# with PostgreSQL out of reach (port 1 refuses); a good file gets the
# connection's error
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
    f.write("kind,id,nmae\n")
unreachable = "host=127.0.0.1 port=1 dbname=vigil connect_timeout=5"
r = subprocess.run([h.VIGIL, "directory", "import", f.name, "--conninfo", unreachable],
                   capture_output=True, text=True)
r2 = subprocess.run([h.VIGIL, "directory", "import", "-", "--conninfo", unreachable], input=GOOD,
                    capture_output=True, text=True)
os.unlink(f.name)
C.check(r.returncode == 1 and "line 1:" in r.stderr and "column 'nmae'" in r.stderr and
        r2.returncode == 1 and "could not connect" in r2.stderr,
        "the file is checked before connecting: %s / %s" % (r.stderr.strip(), r2.stderr.strip()))

# ---- YAML, with escalation policies ----------------------------------------
YAML = """# the directory of study Y
studies:
  - {id: STUDY-Y, name: "Trial Y: <b>phase</b> III"}
sites:
  - id: SITE-Y1
    study: STUDY-Y
    name: Site Y one
researchers:
  - id: RY-1
    name: Yan
    email: yan@example.org
    phone: "+442079000009"
  - id: RY-2
    name: Zoe
    email: zoe@example.org
subscriptions:
  - researcher: RY-1
    study: STUDY-Y
    min_severity: critical
    channels: [email, sms]
  - {researcher: RY-2, study: STUDY-Y, site: SITE-Y1, min_severity: warning, channels: email}
policies:
  - study: STUDY-Y
    severity: critical
    repeat_last: 15m
    tiers:
      - {targets: [subscribers], channels: [subscribed], ack_deadline: 15m}
      - {targets: ["researcher:RY-2"], channels: [email], ack_deadline: 10m}
  - study: STUDY-Y
    site: SITE-Y1
    severity: warning
    digest: true
"""


def line_of(text, marker, nth=1):
    """The 1-based line of the NTH line holding MARKER."""
    hits = [i + 1 for i, ln in enumerate(text.split("\n")) if marker in ln]
    return hits[nth - 1]


def tiers_y():
    return E.sql("SELECT t.tier, t.targets, t.channels, t.ack_deadline_s FROM escalation_policies p "
                 "JOIN escalation_tiers t USING (policy_id) WHERE p.study_id = 'STUDY-Y' AND p.site_id IS NULL "
                 "ORDER BY t.tier")


def audits():
    return E.sql("SELECT count(*) FROM alert_events WHERE kind = 'policy_set' AND actor LIKE 'cli:%%'")[0][0]


r = run(YAML, ".yaml")
C.check(r.returncode == 0 and "(yaml): 8 rows; changed 2 researchers, 1 studies, 1 sites, 2 subscriptions, "
        "2 policies" in r.stdout, "YAML import: %s %s" % (r.stdout, r.stderr))
C.check(tiers_y() == [(1, ["subscribers"], ["subscribed"], 900), (2, ["researcher:RY-2"], ["email"], 600)],
        "the policy's tiers are in the tables: %s" % tiers_y())
C.check(E.sql("SELECT digest FROM escalation_policies WHERE study_id = 'STUDY-Y' AND site_id = 'SITE-Y1' "
              "AND severity = 'warning'") == [(True,)], "the site's warning policy (digest)")
C.check(E.sql("SELECT channels FROM subscriptions WHERE researcher_id = 'RY-1'")[0][0] == ["email", "sms"]
        and E.sql("SELECT name FROM studies WHERE study_id = 'STUDY-Y'")[0][0] == "Trial Y: <b>phase</b> III",
        "YAML lists and quoted text")
C.check(audits() == 2, "each policy written is audited (2): %d" % audits())


def dir_audits():
    """(kind, actor's first 4 characters) of the directory events of STUDY-Y's import."""
    return sorted((k, a[:4]) for k, a in E.sql(
        "SELECT kind, actor FROM alert_events WHERE alert_id IS NULL AND kind NOT LIKE 'policy%%' "
        "AND (detail->>'study_id' = 'STUDY-Y' OR detail->>'researcher_id' LIKE 'RY-%%')"))


C.check(dir_audits() == sorted([("researcher_added", "cli:")] * 2 + [("study_added", "cli:"),
                                ("site_set", "cli:")] + [("subscription_set", "cli:")] * 2),
        "each directory row written is audited, the operator the actor: %s" % dir_audits())
r = run(YAML, ".yaml")
C.check(r.returncode == 0 and "changed 0 researchers, 0 studies, 0 sites, 0 subscriptions, 0 policies "
        "(nothing changed: already up to date)" in r.stdout, "a second YAML import changes nothing: %s %s"
        % (r.stdout, r.stderr))
C.check(audits() == 2, "an unchanged policy is neither rewritten nor audited again: %d" % audits())
C.check(len(dir_audits()) == 6, "an unchanged directory is not audited again: %s" % dir_audits())
r = run(YAML.replace("ack_deadline: 10m", "ack_deadline: 20m"), ".yml")
C.check(r.returncode == 0 and "changed 0 researchers, 0 studies, 0 sites, 0 subscriptions, 1 policies"
        in r.stdout and tiers_y()[1][3] == 1200 and audits() == 3,
        "an edited policy is replaced and audited: %s %s" % (r.stdout, tiers_y()))
# the format by content (no telling extension) and by --format
r = run(YAML.replace("ack_deadline: 10m", "ack_deadline: 20m"), ".txt")
C.check(r.returncode == 0 and "(yaml)" in r.stdout and "nothing changed" in r.stdout,
        "YAML recognised by content: %s" % r.stdout)
r = run(GOOD, ".txt")
C.check(r.returncode == 0 and "(csv)" in r.stdout, "CSV recognised by content: %s" % r.stdout)
r = run(YAML, ".txt", "--format", "csv")
C.check(r.returncode == 1 and "line " in r.stderr, "--format csv read as CSV: %s" % r.stderr)

# every kind of error names its line, and nothing is imported
before = E.sql("SELECT (SELECT count(*) FROM researchers), (SELECT count(*) FROM studies), "
               "(SELECT count(*) FROM escalation_tiers)")
NEW = YAML.replace("STUDY-Y", "STUDY-Z").replace("RY-", "RZ-").replace("SITE-Y1", "SITE-Z1")
bad_policy = NEW.replace('["researcher:RZ-2"]', '["researcher:NOBODY"]')
cases = [
    (YAML + "researchers: [oops\n", line_of(YAML, "digest") + 2, "not YAML"),
    (YAML.replace("reseachers", "x").replace("researchers:", "reseachers:"), line_of(YAML, "researchers:"),
     "unknown section 'reseachers'"),
    (YAML.replace("    email: zoe", "    emial: zoe"), line_of(YAML, "email: zoe"), "unknown key 'emial'"),
    (YAML.replace("min_severity: critical", "min_severity: loud"), line_of(YAML, "min_severity: critical"),
     "min_severity 'loud'"),
    (YAML.replace("channels: [email, sms]", "channels: [email, pager]"), line_of(YAML, "channels: [email, sms]"),
     "channels must be"),
    (YAML.replace('{id: STUDY-Y, name: "Trial Y: <b>phase</b> III"}', "{id: STUDY-Y}"),
     line_of(YAML, "{id: STUDY-Y"), "needs name"),
    (YAML.replace("ack_deadline: 10m", "ack_deadline: 30s"), line_of(YAML, "ack_deadline: 10m"),
     "tier 2 ack_deadline 30 s is out of bounds"),
    (YAML.replace("    severity: critical\n", "    severity: critical\n    colour: red\n"),
     line_of(YAML, "- study: STUDY-Y"), "unknown key 'colour'"),
    (YAML + "  - {study: STUDY-Y, severity: critical, tiers: [{targets: [subscribers], channels: [email], "
     "ack_deadline: 5m}]}\n", line_of(YAML, "digest") + 1, "same study, site and severity as the policy of line"),
    # the tables refuse: a check constraint, a foreign key (the record's line)
    (NEW.replace("zoe@example.org", "not-an-email"), line_of(NEW, "- id: RZ-2"), "researchers_email_check"),
    (NEW.replace("site: SITE-Z1, min", "site: SITE-9, min"), line_of(NEW, "{researcher: RZ-2"), "foreign key"),
    # a policy that reaches nobody, in a file otherwise valid and new
    (bad_policy, line_of(bad_policy, "- study: STUDY-Z"), "reaches nobody"),
]
for text, line, what in cases:
    r = run(text, ".yaml")
    C.check(r.returncode == 1 and ("line %d:" % line) in r.stderr and what in r.stderr
            and "nothing imported" in r.stderr,
            "YAML error named with its line %d (%s): %s" % (line, what, r.stderr.strip()))
after = E.sql("SELECT (SELECT count(*) FROM researchers), (SELECT count(*) FROM studies), "
              "(SELECT count(*) FROM escalation_tiers)")
C.check(after == before and E.sql("SELECT count(*) FROM studies WHERE study_id = 'STUDY-Z'")[0][0] == 0,
        "a failed YAML import changes nothing, not even the valid records before the bad policy: %s %s"
        % (before, after))
C.check(audits() == 3, "no audit event from a failed import: %d" % audits())
r = subprocess.run([h.VIGIL, "directory", "import", "x.yaml", "--format", "xml"], capture_output=True, text=True)
C.check(r.returncode == 2, "--format xml: usage error")


# ---- quiet hours (0064): set, left alone when not given, removed by null ----
def quiet(rid):
    return E.sql("SELECT start_local::text, end_local::text, time_zone FROM researcher_quiet_hours "
                 "WHERE researcher_id = %s", rid)


QY = YAML.replace('    phone: "+442079000009"\n',
                  '    phone: "+442079000009"\n'
                  '    quiet_hours: {start: "22:00", end: "07:00:30", time_zone: Europe/Paris}\n')
r = run(QY, ".yaml")
C.check(r.returncode == 0 and "changed 1 researchers" in r.stdout
        and quiet("RY-1") == [("22:00:00", "07:00:30", "Europe/Paris")],
        "YAML quiet hours set: %s %s %s" % (r.stdout, r.stderr, quiet("RY-1")))
r = run(QY, ".yaml")
C.check(r.returncode == 0 and "changed 0 researchers" in r.stdout, "the same quiet hours again: nothing "
        "changed: %s" % r.stdout)
E.sql("UPDATE researcher_quiet_hours SET start_local = '23:00' WHERE researcher_id = 'RY-1'")
r = run(YAML, ".yaml")
C.check(r.returncode == 0 and quiet("RY-1") == [("23:00:00", "07:00:30", "Europe/Paris")],
        "no quiet_hours key: the researcher's own setting stays: %s" % quiet("RY-1"))
r = run(QY.replace('{start: "22:00", end: "07:00:30", time_zone: Europe/Paris}', "null"), ".yaml")
C.check(r.returncode == 0 and "changed 1 researchers" in r.stdout and quiet("RY-1") == [],
        "quiet_hours: null removes them: %s %s" % (r.stdout, quiet("RY-1")))
qline = line_of(QY, "quiet_hours")
for bad, what in [('{start: "22:00", end: "07:00"}', "quiet_hours needs time_zone"),
                  ('{start: "25:00", end: "07:00", time_zone: UTC}', "'25:00' is not a time of day"),
                  ('{start: "22:00", end: "22:00", time_zone: UTC}', "start and end must differ"),
                  ('{start: "22:00", end: "07:00", time_zone: UTC, colour: red}', "unknown key 'colour'"),
                  ('[22:00, 07:00]', "quiet_hours must be"),
                  # refused by the table's check (a POSIX zone): the record's line
                  ('{start: "22:00", end: "07:00", time_zone: "UTC+3"}', "unknown time zone")]:
    r = run(QY.replace('{start: "22:00", end: "07:00:30", time_zone: Europe/Paris}', bad), ".yaml")
    at = line_of(QY, "- id: RY-1") if what == "unknown time zone" else qline
    C.check(r.returncode == 1 and ("line %d:" % at) in r.stderr and what in r.stderr
            and quiet("RY-1") == [],
            "bad quiet hours named with their line (%s): %s" % (what, r.stderr.strip()))
CQ = GOOD.replace("min_severity,channels\n", "min_severity,channels,quiet_hours\n", 1)
CQ = CQ.replace("ann@example.org,+442079000001,,,,", "ann@example.org,+442079000001,,,,,21:30-06:00 UTC")
r = run(CQ)
C.check(r.returncode == 0 and quiet("R-1") == [("21:30:00", "06:00:00", "UTC")],
        "CSV quiet hours set: %s %s %s" % (r.stdout, r.stderr, quiet("R-1")))
r = run(GOOD)
C.check(r.returncode == 0 and quiet("R-1") == [("21:30:00", "06:00:00", "UTC")],
        "CSV without the column: unchanged")
r = run(CQ.replace("21:30-06:00 UTC", "none"))
C.check(r.returncode == 0 and quiet("R-1") == [], "CSV none removes them")
r = run(CQ.replace("21:30-06:00 UTC", "9pm-6am"))
C.check(r.returncode == 1 and "line 7:" in r.stderr and "HH:MM-HH:MM ZONE" in r.stderr,
        "a bad CSV quiet hours cell names its line: %s" % r.stderr.strip())
C.done()
