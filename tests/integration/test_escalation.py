#!/usr/bin/python3
"""The closed loop of issue #14 against the real PostgreSQL, Kafka, SMTP
server and SMS double of scripts/services, with escalation deadlines
compressed by the notifier's escalation_scale (policies keep minutes).

  test_escalation.py timeline   a critical alert escalates tier 1 -> 2 -> 3 ->
                                3 again; each page reaches the tier's people
                                (SMTP spool); an acknowledgement stops it; the
                                audit trail holds the events in order, with
                                the deadlines kept; ack/resolve answers are
                                idempotent and say which (the CLI and SQL)
  test_escalation.py race       two notifiers fire the same 150 alerts' timers:
                                every step exactly once (audit trail, the
                                notification log, the spool), both counted in
                                their metrics, the sum equal to the steps
  test_escalation.py kill       SIGKILL of the only notifier just before a
                                deadline; the deadline passes while none
                                runs; after the restart the step fires once
  test_escalation.py audit      the app role is refused UPDATE, DELETE and
                                TRUNCATE on alert_events; `vigil audit
                                verify` passes, then names the row a superuser
                                edited, the row a superuser inserted (with a
                                correct hash) and the row a superuser deleted
                                (each undone afterwards)
  test_escalation.py digest     warning alerts do not escalate; two notifiers
                                send each subscriber one daily digest listing
                                the warnings still open (not the acknowledged
                                one), audited
  test_escalation.py lockorder  a worker batch that appends then retracts an
                                alert whose timer a notifier is firing at that
                                moment: both commit, no deadlock (migration
                                0014's lock order; before it, PostgreSQL
                                aborted one of them)
  test_escalation.py retract    an escalating alert is retracted (the worker's
                                statements): the escalation stops and everyone
                                paged so far -- tier 1 and tier 2 -- is told
                                it was withdrawn
  test_escalation.py quiet      quiet hours (0064): inside a researcher's window
                                a critical alert is sent at once, warnings and
                                info are deferred (not sent, offsets committed,
                                due at the window's end), sent once when it
                                ends; one acknowledged meanwhile never is
                                (suppressed, with the reason, audited), nor one
                                retracted meanwhile (and no withdrawal notice)
  test_escalation.py quiet_race two notifiers at the end of a window: each of
                                30 deferred warnings sent exactly once
  test_escalation.py quiet_burst 6 warnings fired at once to one researcher wait
                                for the rate limit longer than the lease: the
                                waiting rows' lease is renewed, so the other
                                notifier does not take them back (each sent once)
  test_escalation.py quiet_kill the notifier that deferred is SIGKILLed; the
                                next one sends them when the window ends; a
                                page fired by a notifier that died before
                                sending it is taken back after the lease, and
                                waits for the directory to load (not
                                suppressed for want of an address)
"""
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vigil_harness as h  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "timeline"
t = h.Checks()
rid = h.run_id()
LOG_DIR = tempfile.mkdtemp(prefix="escalation-test-")
# 60 s policy deadlines x SCALE_FACTOR = the real deadline in the test
SCALE_FACTOR = 0.05   # 3 s


class Notifier(h.Worker):
    def __init__(self, topic, scale=SCALE_FACTOR, settings=None):
        self.log_path = os.path.join(LOG_DIR, "notifier-%d.log" % id(self))
        self.log = open(self.log_path, "wb")
        s = {"rate_per_min": "0", "lease": "3", "retry_base_ms": "200",
             "retry_max_ms": "2000", "escalation_tick_ms": "100"}
        s.update(settings or {})
        args = [h.VIGIL, "notifier", "-t", topic, "-g", "esc-%s" % rid, "--http",
                "127.0.0.1:0", "--grace", "10", "-b", h.bootstrap(),
                "--pg", h.env("VIGIL_PG_CONNINFO"), "--smtp-url", h.env("VIGIL_SMTP_URL"),
                "--sms-url", h.env("VIGIL_SMS_URL"), "--escalation-scale", str(scale),
                "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"]
        for k, v in s.items():
            args += ["-s", "%s=%s" % (k, v)]
        e = dict(os.environ)
        e["VIGIL_SMS_USER"] = h.env("VIGIL_SMS_USER")
        e["VIGIL_SMS_PASSWORD_FILE"] = h.env("VIGIL_SMS_PASSWORD_FILE")
        e.pop("VIGIL_SMS_PASSWORD", None)
        self.proc = h.track(subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                             env=e))
        self.port = None


def vigil(*args, check=False):
    p = subprocess.run([h.VIGIL] + list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("vigil %s: %s %s" % (" ".join(args), p.stdout, p.stderr))
    return p


# ---- the directory and the policy ----------------------------------------

def directory(tier3=True):
    """Study with a subscriber (tier 1), a safety physician (tier 2) and a
    medical monitor (tier 3). Returns (study, {name: researcher id}, emails)."""
    study = "%s-ST" % rid
    ppl = {}
    mails = {}
    for i, name in enumerate(("coord", "safety", "monitor")):
        r = "%s-%s" % (rid, name)
        mail = "%s.%s@test.example" % (name, rid)
        phone = "+1%03d%07d" % (300 + i, int(rid[-6:]) % 10000000)
        h.query("INSERT INTO researchers (researcher_id, name, email, phone) VALUES "
                "(%s, %s, %s, %s)", r, name, mail, phone)
        ppl[name] = r
        mails[mail] = r
    h.query("INSERT INTO studies (study_id, name, safety_contact_researcher_id) VALUES "
            "(%s, %s, %s)", study, "escalation test", ppl["safety"])
    h.query("INSERT INTO sites (study_id, site_id, name) VALUES (%s, 'A', 'A')", study)
    h.query("INSERT INTO subscriptions (researcher_id, study_id, min_severity, channels) "
            "VALUES (%s, %s, 'critical', ARRAY['email', 'sms'])", ppl["coord"], study)
    h.query("INSERT INTO study_roles (study_id, role, researcher_id) VALUES "
            "(%s, 'medical_monitor', %s)", study, ppl["monitor"])
    tiers = [{"targets": ["subscribers"], "channels": ["subscribed"], "ack_deadline": "1m"},
             {"targets": ["role:safety_physician"], "channels": ["email"],
              "ack_deadline": 60}]
    if tier3:
        tiers.append({"targets": ["role:medical_monitor"], "channels": ["email"],
                      "ack_deadline": "1m"})
    pol = {"study": study, "severity": "critical", "repeat_last": "1m", "tiers": tiers}
    path = os.path.join(LOG_DIR, "policy.json")
    with open(path, "w") as f:
        json.dump(pol, f)
    p = vigil("policy", "set", path)
    t.check(p.returncode == 0, "vigil policy set: %s%s" % (p.stdout.strip(), p.stderr.strip()))
    return study, ppl, mails


def insert_alert(study, i, conn=None, severity="critical"):
    """What the worker's batch does (store_batch.c): INSERT into alerts."""
    aid = "%s-a%05d" % (rid, i)
    sql = ("INSERT INTO alerts (alert_id, rule_id, rule_version, severity, ctcae_grade, "
           "study_id, site_id, subject_id, evidence, message, observed_at, detected_at) "
           "VALUES (%s, 'k-high', 1, '" + severity + "', 4, %s, 'A', %s, "
           "'[{\"observation_id\":\"o1\",\"loinc\":\"2823-3\",\"value\":7.1,"
           "\"unit\":\"mmol/L\",\"effective_ms\":1767225600000}]', "
           "'Potassium 7.1 mmol/L (grade 4)', now(), now())")
    if conn is None:
        h.query(sql, aid, study, "P-%03d" % (i % 100))
    else:
        conn.cursor().execute(sql, (aid, study, "P-%03d" % (i % 100)))
    return aid


def events(aid=None, kinds=None):
    rows = h.query("SELECT event_id, alert_id, kind, actor, detail, recorded_at "
                   "FROM alert_events WHERE alert_id LIKE %s ORDER BY event_id",
                   aid if aid else rid + "-%")
    if kinds:
        rows = [r for r in rows if r[2] in kinds]
    return rows


def steps_of(aid):
    return [(r[4]["step"], r[4]["tier"]) for r in events(aid, ("paged", "escalated"))]


def emails(mails):
    """[(researcher, [alert ids], subject)] from the SMTP spool, this run's."""
    spool = h.env("VIGIL_SMTP_SPOOL")
    out = []
    for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
        rc = [mails[x] for x in e["rcpt_tos"] if x in mails]
        if not rc:
            continue
        with open(os.path.join(spool, e["file"]), "rb") as mf:
            msg = email.message_from_binary_file(mf, policy=email.policy.default)
        ids = str(msg["X-Vigil-Alert-Ids"] or "").split()
        for r in rc:
            out.append((r, ids, str(msg["Subject"])))
    return out


def print_timeline(aid):
    print("alert_events for %s:" % aid)
    for eid, _, kind, actor, detail, at in events(aid):
        print("  %6d %s %-20s %-28s %s" % (eid, at.strftime("%H:%M:%S.%f")[:-3], kind, actor,
                                          json.dumps(detail, sort_keys=True)))


# ---- timeline ---------------------------------------------------------------

def run_timeline():
    h.migrate()
    topic = "esc.%s.alerts" % rid
    h.create_topics([topic], 1)
    study, ppl, mails = directory()
    n = Notifier(topic)
    aid = insert_alert(study, 1)
    t0 = time.time()
    # tier 1 at once, tier 2 after 3 s, tier 3 after 6 s, tier 3 again after 9 s
    h.wait_until(lambda: len(steps_of(aid)) >= 4, 30 * h.SCALE, "four escalation steps")
    p = vigil("alerts", "ack", aid, "--as", ppl["monitor"], "--note", "called the site")
    t.check(p.returncode == 0 and "acknowledged" in p.stdout,
            "ack by the medical monitor: %s" % p.stdout.strip())
    st = steps_of(aid)
    t.check(st[:4] == [(0, 1), (1, 2), (2, 3), (3, 3)],
            "steps page tiers 1, 2, 3, then 3 again: %s" % st)
    # the deadlines were kept: each step no sooner than 3 s after the last
    ev = events(aid, ("paged", "escalated"))
    gaps = [(ev[i + 1][5] - ev[i][5]).total_seconds() for i in range(min(3, len(ev) - 1))]
    # (never early; late by at most a loaded machine's scheduling)
    t.check(all(2.9 <= g <= 3.0 + 2.5 * h.SCALE for g in gaps),
            "3 s between steps (never less): %s" % gaps)
    # pages reached the people of each tier, through the sender
    def paged():
        got = {}
        for r, ids, _ in emails(mails):
            if aid in ids:
                got[r] = got.get(r, 0) + 1
        return got
    h.wait_until(lambda: paged().get(ppl["monitor"], 0) >= 2, 20 * h.SCALE, "tier 3 twice")
    got = paged()
    t.check(got.get(ppl["coord"]) == 1 and got.get(ppl["safety"]) == 1 and
            got.get(ppl["monitor"]) == 2,
            "emails: coordinator 1, safety physician 1, monitor 2 (the repeat): %s" % got)
    rows = h.query("SELECT researcher_id, channel, step, state FROM notifications "
                   "WHERE alert_id = %s ORDER BY step, researcher_id, channel", aid)
    t.check([(r[0], r[1], r[2]) for r in rows] ==
            [(ppl["coord"], "email", 0), (ppl["coord"], "sms", 0), (ppl["safety"], "email", 1),
             (ppl["monitor"], "email", 2), (ppl["monitor"], "email", 3)],
            "notification log keyed by step: %s" % rows)
    # an escalation page says so; the first page does not
    subj = {}
    for r, ids, sj in emails(mails):
        if aid in ids:
            subj.setdefault(r, []).append(sj.startswith("ESCALATED: "))
    t.check(subj.get(ppl["coord"]) == [False] and subj.get(ppl["safety"]) == [True] and
            subj.get(ppl["monitor"]) == [True, True],
            "escalation pages' subjects start ESCALATED, the first page's does not: %s" % subj)
    mids = h.query("SELECT provider_message_id FROM notifications WHERE alert_id = %s "
                   "AND channel = 'email'", aid)
    t.check(len({m[0] for m in mids}) == len(mids) == 4,
            "each email page has its own Message-ID: %s" % mids)
    # after the acknowledgement: nothing more for two deadlines
    n_steps = len(steps_of(aid))
    time.sleep(6.5)
    t.check(len(steps_of(aid)) == n_steps, "no step after the acknowledgement")
    esc = h.query("SELECT state, stop_reason FROM escalations WHERE alert_id = %s", aid)
    t.check(esc == [("stopped", "acknowledged")], "escalation stopped: %s" % esc)
    # idempotent answers, CLI and SQL
    ans = []
    for args in (["ack", aid, "--as", ppl["safety"]],
                 ["resolve", aid, "--as", ppl["safety"], "--category", "nope", "--note", "x"],
                 ["resolve", aid, "--as", ppl["safety"], "--category", "clinically_managed",
                  "--note", "potassium repleted"],
                 ["resolve", aid, "--as", ppl["safety"], "--category", "lab_error",
                  "--note", "again"],
                 ["ack", aid, "--as", ppl["safety"]],
                 ["ack", rid + "-nosuch", "--as", ppl["safety"]]):
        p = vigil("alerts", *args)
        ans.append((p.stdout.strip().rsplit(": ", 1)[-1], p.returncode))
    t.check(ans == [("already_acknowledged", 3), ("bad_category", 3), ("resolved", 0),
                    ("already_resolved", 3), ("already_resolved", 3), ("unknown_alert", 3)],
            "ack/resolve answers: %s" % ans)
    p = vigil("alerts", "ack", aid, "--as", rid + "-nobody")
    t.check(p.returncode == 2 and "no researcher" in p.stderr,
            "ack as someone not in the directory refused: %s" % p.stderr.strip())
    # policy set refuses what the directory cannot honour, naming it
    bad = os.path.join(LOG_DIR, "bad.yaml")
    with open(bad, "w") as f:
        f.write("study: %s\nseverity: critical\ntiers:\n"
                "  - {targets: [researcher:%s-ghost], channels: [email], ack_deadline: 15m}\n"
                "  - {targets: [role:investigator], channels: [email], ack_deadline: 15m}\n"
                % (study, rid))
    p = vigil("policy", "set", bad)
    t.check(p.returncode == 1 and "researcher:%s-ghost" % rid in p.stderr and
            "role:investigator" in p.stderr, "policy set names the problems: %s" %
            p.stderr.strip())
    p = vigil("policy", "show", "--study", study)
    t.check(p.returncode == 0 and "tier 3: role:medical_monitor" in p.stdout and
            ppl["monitor"] + "/email" in p.stdout, "policy show: %s" % p.stdout.strip())
    # remove: the study's policy goes (audited, with the policy as it was)
    # and the built-in one is in force; a second remove finds nothing
    p = vigil("policy", "remove", "--study", study, "--severity", "critical")
    p2 = vigil("policy", "remove", "--study", study, "--severity", "critical")
    shown = vigil("policy", "show", "--study", study)
    gone = h.query("SELECT detail->'tiers'->2->'targets'->>0 FROM alert_events "
                   "WHERE kind = 'policy_removed' AND detail->>'study_id' = %s", study)
    t.check(p.returncode == 0 and p2.returncode == 1 and "no critical policy" in p2.stderr and
            "critical (built-in default)" in shown.stdout and gone == [("role:medical_monitor",)],
            "policy remove: %s / %s / %s / %s" % (p.stdout.strip(), p2.stderr.strip(),
                                                  shown.stdout.strip(), gone))
    life = h.query("SELECT state, acknowledged_by, ack_channel, resolution_category "
                   "FROM alert_lifecycle WHERE alert_id = %s", aid)
    t.check(life == [("resolved", ppl["monitor"], "cli", "clinically_managed")],
            "lifecycle: %s" % life)
    kinds = [r[2] for r in events(aid)]
    want = ["opened", "paged", "escalated", "escalated", "escalated", "acknowledged",
            "ack_refused", "resolve_refused", "resolved", "resolve_refused", "ack_refused"]
    t.check([k for k in kinds if not k.startswith("deliver")] == want,
            "event order: %s" % kinds)
    t.check(kinds.count("delivered") == 5, "5 deliveries audited: %s" % kinds)
    t.check(kinds.index("acknowledged") > max(i for i, k in enumerate(kinds)
                                             if k == "escalated"),
            "acknowledged after the last escalation")
    p = vigil("audit", "verify")
    t.check(p.returncode == 0, "audit verify: %s" % p.stdout.strip())
    tta = n.metric("vigil_alert_time_to_ack_seconds_count", 'severity="critical"')
    h.wait_until(lambda: (n.metric("vigil_alert_time_to_ack_seconds_count",
                                   'severity="critical"') or 0) >= 1, 10, "time-to-ack metric")
    t.check((n.metric("vigil_escalation_deadline_breaches_total") or 0) >= 3,
            "deadline breaches counted")
    print("time to ack observed: %s" % tta)
    print_timeline(aid)
    t.check(n.stop() == 0, "notifier exits 0")


# ---- race -------------------------------------------------------------------

def run_race():
    h.migrate()
    topic = "esc.%s.alerts" % rid
    h.create_topics([topic], 1)
    study, ppl, mails = directory(tier3=False)
    conn = h.pg()
    conn.autocommit = False
    ids = [insert_alert(study, i, conn) for i in range(150)]
    conn.commit()
    conn.close()
    started = h.query("SELECT now()")[0][0]
    a = Notifier(topic, scale=0.03)  # 1.8 s deadlines
    b = Notifier(topic, scale=0.03)
    # steps 0, 1 (tier 2), 2 (tier 2 again) for every alert
    def enough():
        r = h.query("SELECT count(*) FROM escalations WHERE alert_id LIKE %s AND step >= 3",
                    rid + "-%")
        return r[0][0] == len(ids)
    h.wait_until(enough, 60 * h.SCALE, "three steps for every alert")
    h.query("SELECT vigil_alert_ack(alert_id, %s, 'cli', 'test', NULL) FROM alert_lifecycle "
            "WHERE alert_id LIKE %s", ppl["safety"], rid + "-%")
    time.sleep(1.0)
    ev = events(None, ("paged", "escalated"))
    per = {}
    for e in ev:
        k = (e[1], e[4]["step"])
        per[k] = per.get(k, 0) + 1
    dup = [k for k, v in per.items() if v > 1]
    t.check(not dup, "every step once in the audit trail (%d steps, duplicates: %s)" %
            (len(per), dup[:5]))
    actors = {e[3] for e in ev}
    t.check(len(actors) == 2, "both notifiers fired steps: %s" % sorted(actors))
    sa = a.metric("vigil_escalation_steps_total") or 0
    sb = b.metric("vigil_escalation_steps_total") or 0
    # A notifier fires every due timer in the database, also those of
    # alerts other tests left behind: its metric is compared with all the
    # steps the audit trail credits to it (actor notifier:HOST:PID, since it
    # started), of which this run's are a part.
    def audited_by(n):
        r = h.query("SELECT count(*) FROM alert_events WHERE kind IN ('paged', 'escalated') "
                    "AND actor LIKE %s AND recorded_at >= %s",
                    "notifier:%%:%d" % n.proc.pid, started)
        return r[0][0]
    aa, ab = audited_by(a), audited_by(b)
    mine_a = sum(1 for e in ev if e[3].endswith(":%d" % a.proc.pid))
    mine_b = sum(1 for e in ev if e[3].endswith(":%d" % b.proc.pid))
    t.check(sa == aa and sb == ab and mine_a > 0 and mine_b > 0 and mine_a + mine_b == len(ev),
            "steps counted: %d + %d = %d + %d audited (this run's: %d + %d = %d)" %
            (sa, sb, aa, ab, mine_a, mine_b, len(ev)))
    # each page once in the log and in the spool
    rows = h.query("SELECT alert_id, researcher_id, channel, step, count(*) FROM notifications "
                   "WHERE alert_id LIKE %s GROUP BY alert_id, researcher_id, channel, step "
                   "HAVING count(*) > 1", rid + "-%")
    t.check(not rows, "notification rows unique per step")
    def sent_all():
        r = h.query("SELECT count(*) FROM notifications WHERE alert_id LIKE %s AND step > 0 "
                    "AND state <> 'sent'", rid + "-%")
        return r[0][0] == 0
    h.wait_until(sent_all, 30 * h.SCALE, "escalation pages sent")
    spool = {}
    for r, aids, _ in emails(mails):
        if r == ppl["safety"]:
            for x in aids:
                spool[x] = spool.get(x, 0) + 1
    want = {}
    for (aid, step), _ in per.items():
        if step >= 1:
            want[aid] = want.get(aid, 0) + 1
    t.check(spool == want, "safety physician emails = tier-2 steps per alert (%d alerts, "
            "%d emails; mismatches: %s)" % (len(want), sum(spool.values()),
                                            [k for k in want if spool.get(k) != want[k]][:5]))
    print("race: %d steps, notifier A %d, notifier B %d" % (len(ev), sa, sb))
    a.stop()
    b.stop()


# ---- kill -------------------------------------------------------------------

def run_kill():
    h.migrate()
    topic = "esc.%s.alerts" % rid
    h.create_topics([topic], 1)
    study, ppl, mails = directory(tier3=False)
    n = Notifier(topic, scale=0.1)  # 6 s deadlines
    aid = insert_alert(study, 1)
    h.wait_until(lambda: len(steps_of(aid)) >= 1, 20 * h.SCALE, "step 0")
    due = h.query("SELECT extract(epoch FROM due_at - now()) FROM escalations "
                  "WHERE alert_id = %s", aid)[0][0]
    n.proc.send_signal(signal.SIGKILL)
    n.proc.wait()
    n.log.close()
    # the deadline passes while no notifier runs
    time.sleep(float(due) + 2.0)
    t.check(len(steps_of(aid)) == 1, "nothing fired while every notifier was down")
    late = h.query("SELECT now() > due_at FROM escalations WHERE alert_id = %s", aid)[0][0]
    t.check(late, "the deadline has passed")
    n2 = Notifier(topic, scale=0.1)
    h.wait_until(lambda: len(steps_of(aid)) >= 2, 20 * h.SCALE, "step 1 after the restart")
    h.query("SELECT vigil_alert_ack(%s, %s, 'cli', 'test', NULL)", aid, ppl["safety"])
    st = steps_of(aid)
    t.check(st == [(0, 1), (1, 2)], "step 1 fired once after the restart: %s" % st)
    lag = events(aid, ("escalated",))[0][4]["lag_ms"]
    t.check(lag >= 2000, "it fired late (lag %s ms), not on time" % lag)
    h.wait_until(lambda: h.query("SELECT state FROM notifications WHERE alert_id = %s AND "
                                 "step = 1", aid) == [("sent",)], 20, "step-1 page sent")
    got = [r for r, ids, _ in emails(mails) if aid in ids and r == ppl["safety"]]
    t.check(len(got) == 1, "the safety physician paged once: %d" % len(got))
    t.check(n2.stop() == 0, "notifier exits 0")


# ---- audit ------------------------------------------------------------------

def superuser(sql):
    owner = subprocess.run(["stat", "-c", "%U", os.path.join(h.env("VIGIL_STATE_DIR"), "pg",
                                                             "data")],
                           capture_output=True, text=True).stdout.strip()
    port = [x.split("=")[1] for x in h.env("VIGIL_PG_CONNINFO").split() if
            x.startswith("port=")][0]
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
           os.path.join(h.env("VIGIL_STATE_DIR"), "pg", "run"), "-p", port, "-U", owner,
           "-d", "vigil", "-c", sql]
    if os.getuid() == 0 and owner != "root":
        cmd = ["runuser", "-u", owner, "--"] + cmd
    subprocess.run(cmd, check=True, capture_output=True, cwd="/")


def run_audit():
    h.migrate()
    study, ppl, _ = directory(tier3=False)
    aid = insert_alert(study, 1)
    h.query("SELECT vigil_alert_ack(%s, %s, 'cli', 'test', 'seen')", aid, ppl["safety"])
    import psycopg2
    for sql in ("UPDATE alert_events SET actor = 'mallory' WHERE alert_id = '%s'" % aid,
                "DELETE FROM alert_events WHERE alert_id = '%s'" % aid,
                "TRUNCATE alert_events"):
        # in a transaction rolled back: if the protection were gone, the
        # statement must still not wipe the shared trail
        conn = h.pg()
        conn.autocommit = False
        try:
            conn.cursor().execute(sql)
            t.check(False, "app role refused: %s" % sql.split()[0])
        except psycopg2.Error as e:
            t.check(e.pgcode == "42501", "app role refused %s (%s)" % (sql.split()[0],
                                                                     e.pgerror.strip()))
        finally:
            conn.rollback()
            conn.close()
    p = vigil("audit", "verify")
    t.check(p.returncode == 0, "intact before: %s" % p.stdout.strip())
    eid, detail = h.query("SELECT event_id, detail::text FROM alert_events WHERE alert_id = %s "
                          "AND kind = 'acknowledged'", aid)[0]
    superuser("UPDATE alert_events SET detail = detail || '{\"note\": \"forged\"}' "
              "WHERE event_id = %d" % eid)
    p = vigil("audit", "verify")
    t.check(p.returncode == 1 and ("event %d:" % eid) in p.stdout and "edited" in p.stdout,
            "edited row named: %s" % p.stdout.strip())
    superuser("UPDATE alert_events SET detail = '%s' WHERE event_id = %d" %
              (detail.replace("'", "''"), eid))
    p = vigil("audit", "verify")
    t.check(p.returncode == 0, "intact once restored: %s" % p.stdout.strip())
    # an inserted row, its hash even computed correctly, the head left alone
    superuser("INSERT INTO alert_events SELECT h.last_event_id + 1, '%s', 'acknowledged', "
              "'mallory', '{}', now(), h.last_hash, sha256(h.last_hash || convert_to("
              "vigil_audit_canon(h.last_event_id + 1, '%s', 'acknowledged', 'mallory', "
              "date_trunc('microseconds', now()), '{}'), 'UTF8')) FROM alert_events_head h"
              % (aid, aid))
    try:
        p = vigil("audit", "verify")
        t.check(p.returncode == 1 and "rows added without the head" in p.stdout,
                "inserted row caught: %s" % p.stdout.strip())
    finally:
        superuser("DELETE FROM alert_events WHERE actor = 'mallory'")
    p = vigil("audit", "verify")
    t.check(p.returncode == 0, "intact once removed: %s" % p.stdout.strip())
    opened = h.query("SELECT event_id FROM alert_events WHERE alert_id = %s AND kind = 'opened'",
                     aid)[0][0]
    superuser("CREATE TABLE IF NOT EXISTS public.audit_test_keep AS SELECT * FROM alert_events "
              "WHERE false; INSERT INTO public.audit_test_keep SELECT * FROM alert_events "
              "WHERE event_id = %d; DELETE FROM alert_events WHERE event_id = %d" %
              (opened, opened))
    try:
        p = vigil("audit", "verify")
        t.check(p.returncode == 1 and ("event %d is missing" % opened) in p.stdout,
                "deleted row named: %s" % p.stdout.strip())
    finally:
        superuser("INSERT INTO alert_events SELECT * FROM public.audit_test_keep WHERE "
                  "event_id = %d; DROP TABLE public.audit_test_keep" % opened)
    p = vigil("audit", "verify")
    t.check(p.returncode == 0, "intact once restored: %s" % p.stdout.strip())


# ---- retract ----------------------------------------------------------------

def run_retract():
    h.migrate()
    topic = "esc.%s.alerts" % rid
    h.create_topics([topic], 1)
    study, ppl, mails = directory()
    n = Notifier(topic, scale=0.05)
    aid = insert_alert(study, 1)
    h.wait_until(lambda: len(steps_of(aid)) >= 2, 20 * h.SCALE, "tier 2 paged")
    h.wait_until(lambda: h.query("SELECT count(*) FROM notifications WHERE alert_id = %s "
                                 "AND state = 'sent'", aid)[0][0] >= 3, 20, "pages sent")
    # the worker's two statements for a retraction (store_batch.c), and the
    # retraction alert on the topic as the worker publishes it
    rx = aid + "-rx"
    h.query("INSERT INTO alerts (alert_id, kind, rule_id, rule_version, severity, study_id, "
            "site_id, subject_id, message, observed_at, detected_at, retracts_alert_id) "
            "VALUES (%s, 'retraction', 'k-high', 1, 'critical', %s, 'A', 'P-001', "
            "'withdrawn', now(), now(), %s)", rx, study, aid)
    h.query("UPDATE alerts SET retracted = true, retracted_by = %s WHERE alert_id = %s",
            rx, aid)
    ra = dict(alert_id=rx, kind="retraction", rule_id="k-high", rule_version=1,
              severity="critical", ctcae_grade=0, study_id=study, site_id="A",
              subject_id="P-001", evidence=[], message="withdrawn",
              observed_time=int(time.time() * 1000), detected_time=int(time.time() * 1000),
              retracts_alert_id=aid)
    h.produce(topic, [(b"k", v) for v in h.encode("alert", [ra])])
    n_steps = len(steps_of(aid))
    life = h.query("SELECT state FROM alert_lifecycle WHERE alert_id = %s", aid)
    t.check(life == [("retracted",)], "lifecycle retracted: %s" % life)
    esc = h.query("SELECT state, stop_reason FROM escalations WHERE alert_id = %s", aid)
    t.check(esc == [("stopped", "retracted")], "escalation stopped: %s" % esc)

    def told():
        return {r for r, ids, _ in emails(mails) if rx in ids}
    paged = {r[0] for r in h.query("SELECT researcher_id FROM notifications WHERE "
                                   "alert_id = %s AND state = 'sent'", aid)}
    t.check(paged >= {ppl["coord"], ppl["safety"]}, "tiers 1 and 2 were paged: %s" % paged)
    h.wait_until(lambda: told() >= paged, 30 * h.SCALE, "withdrawal reached everyone paged")
    t.check(told() == paged,
            "withdrawn notice to exactly those paged: %s" % sorted(told()))
    time.sleep(6.5)
    t.check(len(steps_of(aid)) == n_steps, "no step after the retraction")
    p = vigil("alerts", "ack", aid, "--as", ppl["safety"])
    t.check(p.stdout.strip().endswith("retracted") and p.returncode == 3,
            "ack of a retracted alert answers retracted: %s" % p.stdout.strip())
    kinds = [r[2] for r in events(aid)]
    t.check("retracted" in kinds and kinds.index("retracted") >
            max(i for i, k in enumerate(kinds) if k in ("paged", "escalated")),
            "retracted after the pages in the trail: %s" % kinds)
    t.check(n.stop() == 0, "notifier exits 0")


def run_digest():
    h.migrate()
    topic = "esc.%s.alerts" % rid
    h.create_topics([topic], 1)
    study, ppl, mails = directory(tier3=False)
    h.query("UPDATE subscriptions SET min_severity = 'warning' WHERE researcher_id = %s",
            ppl["coord"])
    ids = [insert_alert(study, i, severity="warning") for i in range(3)]
    h.query("SELECT vigil_alert_ack(%s, %s, 'cli', 'test', NULL)", ids[1], ppl["coord"])
    esc = h.query("SELECT count(*) FROM escalations WHERE alert_id = ANY(%s)", ids)[0][0]
    t.check(esc == 0, "warnings have no escalation timer")
    keys = os.path.join(LOG_DIR, "link-keys")
    with open(keys, "w") as f:
        f.write("dg1 digest-test-secret-%s\n" % rid)
    st = {"digest_hour": "0", "digest_min_age": "0",
          "console_url": "https://console.example/", "link_keys_file": keys}
    a = Notifier(topic, scale=0.02, settings=st)  # a digest look every 1.2 s
    b = Notifier(topic, scale=0.02, settings=st)

    def digests():
        return [(r, subj) for r, _, subj in emails(mails) if subj.startswith("vigil digest")]
    h.wait_until(lambda: digests(), 30 * h.SCALE, "a digest email")
    time.sleep(4)  # three more looks by each notifier
    d = digests()
    t.check(d == [(ppl["coord"], "vigil digest: 2 unacknowledged warning alerts")],
            "one digest, to the warning subscriber, of the 2 open warnings: %s" % d)
    spool = h.env("VIGIL_SMTP_SPOOL")
    body = ""
    for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
        if any(mails.get(x) == ppl["coord"] for x in e["rcpt_tos"]):
            with open(os.path.join(spool, e["file"]), "rb") as mf:
                msg = email.message_from_binary_file(mf, policy=email.policy.default)
            if str(msg["Subject"]).startswith("vigil digest"):
                body = msg.get_body(("plain",)).get_content()
    t.check(ids[0] in body and ids[2] in body and ids[1] not in body,
            "the digest lists the open warnings, not the acknowledged one")
    # each listed warning is followed by its own acknowledgement link
    lines = body.splitlines()
    links = [lines[i + 1] for i, l in enumerate(lines[:-1]) if "[alert " in l]
    t.check(len(links) == 2 and all(x.startswith("  Acknowledge: https://console.example/ack/")
                                    for x in links) and links[0] != links[1],
            "an acknowledgement link under each warning: %s" % links)
    row = h.query("SELECT state, attempts FROM warning_digests WHERE researcher_id = %s",
                  ppl["coord"])
    t.check(row == [("sent", 1)], "claimed once, sent: %s" % row)
    ev = h.query("SELECT detail->>'researcher_id', detail->>'alerts' FROM alert_events "
                 "WHERE kind = 'digest_sent' AND detail->>'researcher_id' = %s", ppl["coord"])
    t.check(ev == [(ppl["coord"], "2")], "digest audited: %s" % ev)
    a.stop()
    b.stop()


def run_lockorder():
    import threading
    import psycopg2
    h.migrate()
    study, ppl, _ = directory(tier3=False)
    x = insert_alert(study, 1)
    # its timer the first due (the shared database may hold other due ones)
    h.query("UPDATE escalations SET due_at = now() - interval '1 day' WHERE alert_id = %s", x)
    worker = h.pg()
    worker.autocommit = False
    wc = worker.cursor()
    # the worker's batch: a new alert appended ('opened': the chain head)...
    wc.execute("INSERT INTO alerts (alert_id, rule_id, rule_version, severity, study_id, "
               "site_id, subject_id, message, observed_at, detected_at) VALUES (%s, 'k', 1, "
               "'warning', %s, 'A', 'P-9', 'm', now(), now())", (rid + "-y", study))
    fire = h.pg()
    fire_pid = fire.get_backend_pid()
    result = {}

    def notifier():
        try:
            cur = fire.cursor()
            cur.execute("SELECT alert_id, step FROM vigil_escalation_fire(1000, 1, 'test')")
            result["fired"] = cur.fetchall()
        except psycopg2.Error as e:
            result["error"] = e.pgcode
    th = threading.Thread(target=notifier)
    th.start()
    h.wait_until(lambda: h.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                 fire_pid) == [("Lock",)], 10, "the notifier waits for a lock")
    # ... then, in the same batch, the retraction of the alert being fired
    err = None
    try:
        wc.execute("INSERT INTO alerts (alert_id, kind, rule_id, rule_version, severity, "
                   "study_id, site_id, subject_id, message, observed_at, detected_at, "
                   "retracts_alert_id) VALUES (%s, 'retraction', 'k', 1, 'critical', %s, 'A', "
                   "'P-001', 'm', now(), now(), %s)", (x + "-rx", study, x))
        wc.execute("UPDATE alerts SET retracted = true, retracted_by = %s WHERE alert_id = %s",
                   (x + "-rx", x))
        worker.commit()
    except psycopg2.Error as e:
        err = e.pgcode
        worker.rollback()
    th.join(30)
    t.check(err is None, "the worker's batch committed (error: %s)" % err)
    t.check("error" not in result, "the notifier's step did not fail (error: %s)" %
            result.get("error"))
    st = h.query("SELECT state FROM alert_lifecycle WHERE alert_id = %s", x)
    t.check(st == [("retracted",)], "the alert is retracted: %s" % st)
    steps = [r for r in result.get("fired", []) if r[0] == x]
    t.check(steps == [], "the retracted alert's timer was not fired: %s" % steps)
    worker.close()
    fire.close()


# ---- quiet hours (issue #15, migration 0064) ------------------------------

QUIET_TZ = "America/New_York"


def quiet_directory(end_in_s, partitions=1):
    """Migrates, makes the alerts topic and the escalation directory plus
    'night': subscribed to everything by email, quiet from an hour ago until
    END_IN_S seconds from now, local time in QUIET_TZ. Returns (topic,
    study, ppl, mails, window end)."""
    h.migrate()
    topic = "esc.%s.alerts" % rid
    h.create_topics([topic], partitions)
    study, ppl, mails = directory(tier3=False)
    night = "%s-night" % rid
    mail = "night.%s@test.example" % rid
    h.query("INSERT INTO researchers (researcher_id, name, email) VALUES (%s, 'night', %s)",
            night, mail)
    h.query("INSERT INTO subscriptions (researcher_id, study_id, min_severity, channels) "
            "VALUES (%s, %s, 'info', ARRAY['email'])", night, study)
    h.query("INSERT INTO researcher_quiet_hours VALUES (%s, "
            "(now() AT TIME ZONE %s - interval '1 hour')::time, "
            "(now() AT TIME ZONE %s + make_interval(secs => %s))::time, %s)",
            night, QUIET_TZ, QUIET_TZ, end_in_s, QUIET_TZ)
    end = h.query("SELECT vigil_quiet_until(%s, now())", night)[0][0]
    t.check(end is not None, "night is inside the window now, until %s" % end)
    ppl["night"] = night
    mails[mail] = night
    return topic, study, ppl, mails, end


def publish(topic, study, severities, first=1):
    """Stores alerts as the worker does and publishes them on TOPIC.
    Returns their ids, one per severity, subjects P-<first>..."""
    ids, recs = [], []
    now_ms = int(time.time() * 1000)
    for k, sev in enumerate(severities):
        i = first + k
        aid = insert_alert(study, i, severity=sev)
        ids.append(aid)
        recs.append(dict(alert_id=aid, kind="signal", rule_id="k-high", rule_version=1,
                         severity=sev, ctcae_grade=4, study_id=study, site_id="A",
                         subject_id="P-%03d" % (i % 100), evidence=[],
                         message="Potassium 7.1 mmol/L (grade 4)", observed_time=now_ms,
                         detected_time=now_ms, retracts_alert_id=None))
    h.produce(topic, [(b"k", v) for v in h.encode("alert", recs)])
    return ids


def night_rows(ids, night):
    return dict((r[0], r[1:]) for r in h.query(
        "SELECT alert_id, state, deferred_until, sent_at, last_error FROM notifications "
        "WHERE researcher_id = %s AND alert_id = ANY(%s)", night, ids))


def in_state(ids, night, state):
    return sum(1 for v in night_rows(ids, night).values() if v[0] == state)


def db_now():
    return h.query("SELECT now()")[0][0]


def run_quiet():
    topic, study, ppl, mails, end = quiet_directory(15)
    night = ppl["night"]
    n = Notifier(topic)
    w1, w2, i1, c1, w3 = publish(topic, study, ["warning", "warning", "info", "critical", "warning"])

    def told(aid):
        return [r for r, ids, _ in emails(mails) if aid in ids and r == night]
    h.wait_until(lambda: told(c1), 10 * h.SCALE, "the critical alert reaches night")
    t.check(db_now() < end, "the critical alert was sent inside the quiet window")
    h.wait_until(lambda: all(night_rows([w1, w2, i1, w3], night).get(a, ("",))[0] == "deferred"
                             for a in (w1, w2, i1, w3)), 10 * h.SCALE, "four deferred rows")
    rows = night_rows([w1, w2, i1], night)
    t.check(all(rows.get(a, ("",))[0] == "deferred" and rows[a][1] == end
                for a in (w1, w2, i1)),
            "warning and info deferred until the window's end %s: %s" % (end, rows))
    # the notifier does not hold the Kafka offsets for the window
    h.wait_until(lambda: h.committed("esc-%s" % rid, topic, 1) == {0: 5}, 10 * h.SCALE,
                 "offsets committed")
    t.check(h.committed("esc-%s" % rid, topic, 1) == {0: 5} and db_now() < end,
            "all five alerts' offsets committed inside the window")
    # w3 withdrawn meanwhile (the worker's statements and its retraction alert)
    rx = w3 + "-rx"
    h.query("INSERT INTO alerts (alert_id, kind, rule_id, rule_version, severity, study_id, "
            "site_id, subject_id, message, observed_at, detected_at, retracts_alert_id) "
            "VALUES (%s, 'retraction', 'k-high', 1, 'warning', %s, 'A', 'P-005', "
            "'withdrawn', now(), now(), %s)", rx, study, w3)
    h.query("UPDATE alerts SET retracted = true, retracted_by = %s WHERE alert_id = %s", rx, w3)
    now_ms = int(time.time() * 1000)
    h.produce(topic, [(b"k", v) for v in h.encode("alert", [dict(
        alert_id=rx, kind="retraction", rule_id="k-high", rule_version=1, severity="warning",
        ctcae_grade=0, study_id=study, site_id="A", subject_id="P-005", evidence=[],
        message="withdrawn", observed_time=now_ms, detected_time=now_ms, retracts_alert_id=w3)])])
    h.wait_until(lambda: h.committed("esc-%s" % rid, topic, 1) == {0: 6}, 10 * h.SCALE,
                 "the retraction's offset committed")
    p = vigil("alerts", "ack", w2, "--as", ppl["coord"], "--note", "seen on the ward")
    t.check(p.returncode == 0, "w2 acknowledged meanwhile: %s" % p.stdout.strip())
    t.check(not told(w1) and not told(w2) and not told(i1) and db_now() < end,
            "nothing non-critical sent inside the window")
    h.wait_until(lambda: night_rows([w1, i1], night).get(w1, ("",))[0] == "sent" and
                 night_rows([w1, i1], night).get(i1, ("",))[0] == "sent",
                 40 * h.SCALE, "deferred pages sent after the window")
    rows = night_rows([w1, w2, i1], night)
    t.check(rows[w1][2] >= end and rows[i1][2] >= end,
            "sent after the window's end: %s" % rows)
    h.wait_until(lambda: len(told(w1)) == 1 and len(told(i1)) == 1, 10, "the emails")
    t.check(rows[w2][0] == "suppressed" and rows[w2][3] == "acknowledged during quiet hours",
            "the acknowledged warning suppressed, saying why: %s" % (rows[w2],))
    h.wait_until(lambda: night_rows([w3], night).get(w3, ("",))[0] == "suppressed", 10 * h.SCALE,
                 "the withdrawn warning suppressed")
    t.check(night_rows([w3], night)[w3][3] == "retracted during quiet hours",
            "the withdrawn warning suppressed, saying why: %s" % (night_rows([w3], night)[w3],))
    time.sleep(1.0)  # a few more fire ticks: nothing more may go out
    t.check(len(told(w1)) == 1 and len(told(i1)) == 1 and told(w2) == [] and told(w3) == [],
            "w1 and i1 once each, w2 and w3 never: %d %d %d %d" % (
                len(told(w1)), len(told(i1)), len(told(w2)), len(told(w3))))
    t.check(told(rx) == [], "no withdrawal of a warning night was never sent: %s" % told(rx))
    ev = [r[4] for r in events(w1, ("delivered",)) if r[4]["researcher_id"] == night]
    t.check(len(ev) == 1 and "deferred_until" in ev[0], "delivery audited as deferred: %s" % ev)
    ev = [r[4] for r in events(w2, ("delivery_suppressed",)) if r[4]["researcher_id"] == night]
    t.check(len(ev) == 1 and ev[0].get("error") == "acknowledged during quiet hours",
            "suppression audited: %s" % ev)
    t.check(n.metric("vigil_notifications_deferred_total", 'channel="email"') == 4,
            "four deferrals counted")
    t.check(n.stop() == 0, "notifier exits 0")


def run_quiet_race():
    topic, study, ppl, mails, end = quiet_directory(12, partitions=2)
    night = ppl["night"]
    a, b = Notifier(topic), Notifier(topic)
    ids = publish(topic, study, ["warning"] * 30)
    h.wait_until(lambda: in_state(ids, night, "deferred") == 30, 20 * h.SCALE, "30 deferred rows")
    t.check(db_now() < end, "all deferred inside the window")
    h.wait_until(lambda: in_state(ids, night, "sent") == 30, 40 * h.SCALE, "30 sent after the window")

    def counts():
        got = {}
        for r, aids, _ in emails(mails):
            if r == night:
                for x in aids:
                    got[x] = got.get(x, 0) + 1
        return got
    h.wait_until(lambda: sum(counts().get(x, 0) for x in ids) >= 30, 10, "30 in the spool")
    time.sleep(1.0)  # more fire ticks by both
    c = counts()
    t.check(all(c.get(x) == 1 for x in ids),
            "each deferred warning sent exactly once: %s" % sorted(set(c.get(x) for x in ids)))
    fa = a.metric("vigil_notifications_deferred_fired_total")
    fb = b.metric("vigil_notifications_deferred_fired_total")
    print("fired by A: %s, by B: %s" % (fa, fb))
    t.check(fa + fb == 30, "fired 30 times in all: %s + %s" % (fa, fb))
    t.check(a.stop() == 0 and b.stop() == 0, "notifiers exit 0")


def run_quiet_burst():
    topic, study, ppl, mails, end = quiet_directory(8)
    night = ppl["night"]
    # one message every 3 s after the first, a 6 s lease: the last ones wait 15 s
    st = {"rate_per_min": "20", "rate_burst": "1", "lease": "6"}
    a, b = Notifier(topic, settings=st), Notifier(topic, settings=st)
    ids = publish(topic, study, ["warning"] * 6)
    h.wait_until(lambda: in_state(ids, night, "deferred") == 6, 20 * h.SCALE, "6 deferred rows")
    h.wait_until(lambda: in_state(ids, night, "sent") == 6, 60 * h.SCALE, "6 sent after the window")
    sent = sorted(v[2] for v in night_rows(ids, night).values())
    print("sent over %.1f s" % (sent[-1] - sent[0]).total_seconds())
    t.check((sent[-1] - sent[0]).total_seconds() > 6, "the rate limit spread them past the lease")
    # both senders idle: any copy still waiting in one would have gone by now
    h.wait_until(lambda: a.metric("vigil_notifier_alerts_in_progress") == 0 and
                 b.metric("vigil_notifier_alerts_in_progress") == 0, 60 * h.SCALE, "both idle")
    got = [aid for r, aids, _ in emails(mails) if r == night for aid in aids]
    t.check(sorted(got) == sorted(ids), "each sent once: %s" % sorted(got))
    att = h.query("SELECT attempts FROM notifications WHERE researcher_id = %s AND alert_id = ANY(%s)",
                  night, ids)
    t.check(sorted(x for (x,) in att) == [1] * 6, "one attempt each: %s" % att)
    taken = sum(open(n.log_path, errors="replace").read().count("was never finished") for n in (a, b))
    t.check(taken == 0, "no waiting page taken back from its notifier (%d were)" % taken)
    t.check(a.stop() == 0 and b.stop() == 0, "notifiers exit 0")


def run_quiet_kill():
    topic, study, ppl, mails, end = quiet_directory(10)
    night = ppl["night"]
    a = Notifier(topic)
    ids = publish(topic, study, ["warning"] * 5)
    h.wait_until(lambda: in_state(ids, night, "deferred") == 5, 20 * h.SCALE, "5 deferred rows")
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    a.log.close()
    # what a notifier killed between vigil_deferred_fire's commit and its
    # send leaves: a fired row, pending, its lease long gone
    x = insert_alert(study, 40, severity="warning")
    h.query("INSERT INTO notifications (alert_id, researcher_id, channel, state, attempts, "
            "next_attempt_at, deferred_until, updated_at) VALUES (%s, %s, 'email', 'pending', "
            "0, now(), now() - interval '1 hour', now() - interval '1 hour')", x, night)
    # the next notifier starts while its directory cannot load (researchers
    # locked): its escalation thread runs from the start and takes the
    # abandoned row back at once; the page must wait for the directory,
    # not be suppressed for want of an address
    import psycopg2
    lock = psycopg2.connect(h.env("VIGIL_PG_CONNINFO"))
    lock.cursor().execute("LOCK TABLE researchers IN ACCESS EXCLUSIVE MODE")
    b = Notifier(topic)
    took = h.wait_until(lambda: h.query("SELECT updated_at > now() - interval '1 minute' "
                                        "FROM notifications WHERE alert_id = %s", x)[0][0],
                        20 * h.SCALE, "the abandoned row taken back")
    time.sleep(1.5)  # the sender has had it: it must not decide without the directory
    st = night_rows([x], night)[x]
    lock.rollback()
    lock.close()
    t.check(took and st[0] == "pending", "taken back, waiting for the directory: %s" % (st,))
    h.wait_until(lambda: night_rows([x], night).get(x, ("",))[0] == "sent", 20 * h.SCALE,
                 "the abandoned fired page sent")
    h.wait_until(lambda: in_state(ids, night, "sent") == 5, 40 * h.SCALE, "5 sent by the next notifier")
    rows = night_rows(ids, night)
    t.check(all(v[0] == "sent" and v[2] >= end for v in rows.values()),
            "the next notifier sent all 5 after the window: %s" % rows)
    got = [aid for r, aids, _ in emails(mails) if r == night for aid in aids]
    t.check(sorted(got) == sorted(ids + [x]), "each once: %s" % sorted(got))
    t.check(b.stop() == 0, "notifier exits 0")


{"quiet": run_quiet, "quiet_race": run_quiet_race, "quiet_kill": run_quiet_kill,
 "quiet_burst": run_quiet_burst,
 "timeline": run_timeline, "digest": run_digest, "lockorder": run_lockorder, "race": run_race, "kill": run_kill, "audit": run_audit,
 "retract": run_retract}[MODE]()
t.done()
