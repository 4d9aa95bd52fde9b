#!/usr/bin/python3
"""scripts/demo's helper: seeds the study directory, shows live progress and
prints the summary. Reads the services from the VIGIL_* environment that
`scripts/services up` exported. Not a public tool: scripts/demo calls it.

  demo_report.py seed --studies K --sites-per-study K
  demo_report.py progress --observations N --logs DIR --producer PID
  demo_report.py researchers --logs DIR --console URL
  demo_report.py summary --logs DIR
"""
import argparse
import glob
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg2


def db():
    conn = psycopg2.connect(os.environ["VIGIL_PG_CONNINFO"])
    conn.autocommit = True
    return conn


def q(conn, sql, *params):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchall() if cur.description else None


def seed(args):
    """A directory shaped like a real trial's: per study a principal
    investigator (every alert, email), a safety physician (critical, SMS and
    email, also the study's safety contact), and per site a coordinator
    (warning and above, email)."""
    conn = db()
    for s in range(1, args.studies + 1):
        study = "STUDY-%03d" % s
        pi, safety = "PI-%03d" % s, "SAFETY-%03d" % s
        for rid, name, phone in ((pi, "Principal investigator %d" % s, None),
                                 (safety, "Safety physician %d" % s, "+4420790%05d" % s)):
            q(conn, "INSERT INTO researchers (researcher_id, name, email, phone) VALUES"
                    " (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
              rid, name, "%s@hospital.example" % rid.lower(), phone)
        q(conn, "INSERT INTO studies (study_id, name, safety_contact_researcher_id) VALUES"
                " (%s, %s, %s) ON CONFLICT DO NOTHING", study, "Demo study %d" % s, safety)
        q(conn, "INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity,"
                " channels) VALUES (%s, %s, NULL, 'info', %s) ON CONFLICT DO NOTHING",
          pi, study, ["email"])
        q(conn, "INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity,"
                " channels) VALUES (%s, %s, NULL, 'critical', %s) ON CONFLICT DO NOTHING",
          safety, study, ["email", "sms"])
        for k in range(1, args.sites_per_study + 1):
            site = "SITE-%d" % (s * 100 + k)
            coord = "COORD-%d" % (s * 100 + k)
            q(conn, "INSERT INTO sites (study_id, site_id, name) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING", study, site, "Site %d" % (s * 100 + k))
            q(conn, "INSERT INTO researchers (researcher_id, name, email) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING", coord, "Coordinator %s" % site,
              "%s@hospital.example" % coord.lower())
            q(conn, "INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity,"
                    " channels) VALUES (%s, %s, %s, 'warning', %s) ON CONFLICT DO NOTHING",
              coord, study, site, ["email"])
    n = q(conn, "SELECT count(*) FROM subscriptions")[0][0]
    print("demo: directory seeded: %d studies, %d sites each, %d subscriptions"
          % (args.studies, args.sites_per_study, n), file=sys.stderr)


def ports(logs):
    out = []
    for f in sorted(glob.glob(os.path.join(logs, "*.log"))):
        with open(f, errors="replace") as fh:
            m = re.search(r"on port (\d+)", fh.read())
        if m:
            out.append((os.path.basename(f), int(m.group(1))))
    return out


def metric_sum(logs, name, prefix):
    total = 0.0
    for f, port in ports(logs):
        if not f.startswith(prefix):
            continue
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " ") or line.startswith(name + "{"):
                        total += float(line.split()[-1])
        except Exception:
            pass
    return total


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


def progress(args):
    conn = db()
    start = time.monotonic()
    last, stable_since = None, time.monotonic()
    deadline = start + 600
    while time.monotonic() < deadline:
        consumed = metric_sum(args.logs, "vigil_consumed_total", "worker")
        processed = metric_sum(args.logs, "vigil_processed_total", "worker")
        alerts = q(conn, "SELECT count(*) FROM alerts WHERE kind = 'signal'")[0][0]
        sent = q(conn, "SELECT count(*) FROM notifications WHERE state = 'sent'")[0][0]
        open_ = q(conn, "SELECT count(*) FROM notifications"
                        " WHERE state IN ('pending', 'sending')")[0][0]
        print("demo: %5.0fs  consumed %7d  processed %7d  alerts %6d  notifications sent %6d"
              % (time.monotonic() - start, consumed, processed, alerts, sent), file=sys.stderr,
              flush=True)
        now = (processed, alerts, sent)
        if now != last:
            last, stable_since = now, time.monotonic()
        # Done: the producer finished, every observation processed, nothing
        # left in flight in the notifier, and nothing moving for 3 s.
        if (not alive(args.producer) and processed >= args.observations and open_ == 0
                and time.monotonic() - stable_since >= 3):
            return 0
        time.sleep(1)
    return 1


def http(method, url, data=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def links_in_spool(spool, base):
    """alert id -> the acknowledgement links the emails carried for it."""
    out = {}
    pat = re.compile(r"^  (\S+): (" + re.escape(base) + r"/ack/[A-Za-z0-9._-]+)\r?$", re.M)
    for f in sorted(glob.glob(os.path.join(spool, "*.eml"))):
        with open(f, errors="replace") as fh:
            for aid, url in pat.findall(fh.read()):
                out.setdefault(aid, []).append(url)
    return out


def researchers(args):
    """Plays the researchers: every open critical alert but the newest is
    acknowledged -- one by an SMS reply through the SMS double's inbound
    endpoint, the rest through the link in their email, GET then POST as a
    browser does -- and the newest is left alone, so it escalates to the
    study's safety physician. Writes what happened to LOGS/loop.json."""
    conn = db()
    spool = os.environ["VIGIL_SMTP_SPOOL"]
    sms_url = os.environ["VIGIL_SMS_URL"]
    open_ = [r[0] for r in q(conn, "SELECT alert_id FROM alert_lifecycle WHERE state = 'open'"
                                   " AND severity = 'critical' ORDER BY opened_at, alert_id")]
    result = {"acked_link": 0, "acked_sms": 0, "left_open": None, "escalated": 0}
    if not open_:
        print("demo: no open critical alert to acknowledge", file=sys.stderr)
    else:
        left = open_[-1]
        result["left_open"] = left
        todo = open_[:-1]
        # one by SMS: an alert whose SMS carried a reply code
        with open(os.environ["VIGIL_SMS_LOG"]) as f:
            texts = [json.loads(l) for l in f if l.strip()]
        by_sms = None
        for t in texts:
            body = t.get("fields", {}).get("Body", "")
            m = re.search(r"Reply ACK (\d+)", body)
            ids = body.rsplit(" refs ", 1)[1].split(",") if " refs " in body else []
            if t.get("status") == 201 and m and len(ids) == 1 and ids[0] in todo:
                by_sms = (ids[0], t["fields"]["To"], m.group(1))
                break
        if by_sms:
            data = urllib.parse.urlencode({"from": by_sms[1], "text": "ACK " + by_sms[2]})
            with urllib.request.urlopen(sms_url.replace("/v1/messages", "/_control/reply"),
                                        data=data.encode(), timeout=15) as r:
                answer = json.loads(r.read())
            print("demo: %s replied \"ACK %s\" by SMS: %s" % (by_sms[1], by_sms[2],
                  answer["body"].strip()), file=sys.stderr)
            if answer["status"] == 200 and "acknowledged" in answer["body"]:
                result["acked_sms"] += 1
            todo.remove(by_sms[0])
        links = links_in_spool(spool, args.console)
        shown = 0
        for aid in todo:
            for url in links.get(aid, [])[:1]:
                st, page = http("GET", url)      # the confirmation page: changes nothing
                shown += st == 200 and "<form" in page
                st, page = http("POST", url, {"confirm": "1"})
                if st == 200 and "Acknowledged" in page:
                    result["acked_link"] += 1
        print("demo: researchers acknowledged %d critical alerts through the email link "
              "(%d confirmation pages shown first) and %d by SMS reply; %s left unacknowledged"
              % (result["acked_link"], shown, result["acked_sms"], left), file=sys.stderr)
        if args.escalation_wait > 0:
            print("demo: waiting up to %ds for %s to escalate to the safety physician"
                  % (args.escalation_wait, left), file=sys.stderr, flush=True)
            end = time.monotonic() + args.escalation_wait
            while time.monotonic() < end:
                if q(conn, "SELECT 1 FROM alert_events WHERE alert_id = %s AND kind = "
                           "'escalated'", left):
                    break
                time.sleep(0.5)
        rows = q(conn, "SELECT to_char(recorded_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), kind,"
                       " actor, detail::text FROM alert_events WHERE alert_id = %s"
                       " ORDER BY event_id", left)
        print("demo: the audit trail of %s:" % left, file=sys.stderr)
        for r in rows:
            print("demo:   %s %-18s %-14s %s" % (r[0], r[1], r[2], r[3][:110]), file=sys.stderr)
    # escalated: alerts that reached a tier after the first (the audit trail's
    # 'escalated' events; none if this build's notifier does not escalate)
    result["escalated"] = q(conn, "SELECT count(DISTINCT alert_id) FROM alert_events"
                                  " WHERE kind = 'escalated'")[0][0]
    result["acked"] = q(conn, "SELECT count(*) FROM alert_lifecycle"
                              " WHERE acknowledged_at IS NOT NULL")[0][0]
    with open(os.path.join(args.logs, "loop.json"), "w") as f:
        json.dump(result, f)
    return 0


def summary(args):
    conn = db()
    spool = os.environ["VIGIL_SMTP_SPOOL"]
    smslog = os.environ["VIGIL_SMS_LOG"]
    obs = q(conn, "SELECT count(*) FROM observations")[0][0]
    findings = q(conn, "SELECT count(*) FROM observations WHERE dq_finding IS NOT NULL")[0][0]
    alerts = q(conn, "SELECT count(*) FROM alerts WHERE kind = 'signal'")[0][0]
    retractions = q(conn, "SELECT count(*) FROM alerts WHERE kind = 'retraction'")[0][0]
    print("\n== vigil demo summary ==")
    print("observations stored: %d (%d with a data-quality finding)" % (obs, findings))
    print("alerts: %d signals, %d retractions" % (alerts, retractions))
    for rule, sev, n in q(conn, "SELECT rule_id, severity, count(*) FROM alerts WHERE kind ="
                                " 'signal' GROUP BY 1, 2 ORDER BY 3 DESC, 1"):
        print("  %-28s %-9s %6d" % (rule, sev, n))
    print("notifications:")
    for ch, st, n in q(conn, "SELECT channel, state, count(*) FROM notifications"
                             " GROUP BY 1, 2 ORDER BY 1, 2"):
        print("  %-6s %-10s %6d" % (ch, st, n))
    emails = q(conn, "SELECT count(*) FROM notifications WHERE channel = 'email'"
                     " AND state = 'sent'")[0][0]
    sms = q(conn, "SELECT count(*) FROM notifications WHERE channel = 'sms'"
                  " AND state = 'sent'")[0][0]
    lat = q(conn, "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),"
                  " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM ("
                  " SELECT extract(epoch FROM n.sent_at - a.detected_at) * 1000 AS ms"
                  " FROM notifications n JOIN alerts a USING (alert_id)"
                  # the first page only: an escalation page is late by design
                  " WHERE n.state = 'sent' AND n.step = 0"
                  " AND n.channel IN ('email', 'sms')) t")[0]
    p50 = int(round(lat[0] or 0))
    p99 = int(round(lat[1] or 0))
    print("latency from alert raised to its first page sent: p50 %d ms, p99 %d ms" % (p50, p99))
    mails = sorted(glob.glob(os.path.join(spool, "*.eml")))
    if mails:
        print("\n-- one email, as the researcher received it (%s) --" % os.path.basename(mails[0]))
        with open(mails[0], errors="replace") as f:
            print(f.read().rstrip())
    with open(smslog) as f:
        texts = [json.loads(l) for l in f if l.strip()]
    texts = [t for t in texts if t.get("status") == 201]
    if texts:
        t = texts[0]
        print("\n-- one SMS, as the gateway received it --")
        print("To: %s\nFrom: %s\n%s" % (t["fields"].get("To"), t["fields"].get("From"),
                                        t["fields"].get("Body")))
    loop = {}
    try:
        with open(os.path.join(args.logs, "loop.json")) as f:
            loop = json.load(f)
    except OSError:
        pass
    by = q(conn, "SELECT coalesce(ack_channel, '?'), count(*) FROM alert_lifecycle"
                 " WHERE acknowledged_at IS NOT NULL GROUP BY 1 ORDER BY 1")
    print("acknowledged alerts by channel: %s" % (", ".join("%s %d" % r for r in by) or "none"))
    print("\nsummary observations=%d alerts=%d emails=%d sms=%d latency_p99_ms=%d acked=%d "
          "escalated=%d" % (obs, alerts, emails, sms, p99, loop.get("acked", 0),
                             loop.get("escalated", 0)))


ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["seed", "progress", "researchers", "summary"])
ap.add_argument("--console", default="")
ap.add_argument("--escalation-wait", type=int, default=90)
ap.add_argument("--studies", type=int, default=2)
ap.add_argument("--sites-per-study", type=int, default=3)
ap.add_argument("--observations", type=int, default=0)
ap.add_argument("--logs", default=".")
ap.add_argument("--producer", type=int, default=0)
a = ap.parse_args()
sys.exit({"seed": seed, "progress": progress, "researchers": researchers,
          "summary": summary}[a.what](a) or 0)
