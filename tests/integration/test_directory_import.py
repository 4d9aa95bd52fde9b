"""vigil directory import FILE: researchers, studies, sites and
subscriptions from CSV into a private schema. The import is idempotent (a
second run changes nothing), updates in place, is all or nothing, and names
the line of the first bad row."""
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


def run(text):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(text)
    r = subprocess.run([h.VIGIL, "directory", "import", f.name, "--conninfo", E.conninfo],
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
C.done()
