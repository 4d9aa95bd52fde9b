#!/usr/bin/python3
"""The chart's wiring, executed: helm/vigil rendered, and every vigil
workload in it run from the built image (scripts/image) against the local
services, with its command, args, env, ConfigMaps and Secrets exactly as
rendered (tests/k8s/podrun.py plays the kubelet).

  test_chart_wiring.py [files|env|all]     (default all)

For each secrets mode (files: the default values; env: secretKeyRef), with
only the site's addresses set (Kafka, topics, groups, SMTP, SMS, ports):
  1. the migration Job runs `vigil migrate` against a fresh schema and exits
     0, and every embedded migration is then recorded there;
  2. the worker and notifier Deployments (one pod each: pods here share the
     host's network) answer their readiness and liveness probes' paths;
     any other Deployment the chart renders (console, MLLP listener) must
     start from its wiring, pass its readinessProbe and stop with exit 0;
  3. observations produced to the chart's topic are stored, once each, and
     their critical alerts reach the safety physician by SMS and email (the
     SMS double's log, the SMTP server's spool);
  4. SIGTERM stops each pod with exit 0 within its
     terminationGracePeriodSeconds, its offsets committed.
Then, so the harness cannot pass vacuously, two broken copies of the
rendered manifests must fail: a renamed credential variable in the Job, and
the worker's config mounted at the wrong path.

Needs the services (eval "$(scripts/services up)"), the image (scripts/image;
VIGIL_IMAGE names it, default vigil:<appVersion>), helm in .deps/bin, root.
Prints "N passed, N failed".
"""
import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import vigil_harness as h  # noqa: E402
import podrun  # noqa: E402

CHART = os.path.join(h.SRC, "helm", "vigil")
HELM = os.path.join(h.SRC, ".deps", "bin", "helm")
SECRET = "vigil-credentials"  # secrets.existingSecret's default
N = 3000
EVERY = 60  # every 60th observation is a critical potassium (6.9 mmol/L)

class Checks(h.Checks):
    """Prints every check, passed or not: the wiring is the report."""

    def check(self, cond, what):
        if cond:
            print("ok:", what, flush=True)
        return super().check(cond, what)


t = Checks()
mode_arg = sys.argv[1] if len(sys.argv) > 1 else "all"


def app_version():
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        return yaml.safe_load(f)["appVersion"]


IMAGE = os.environ.get("VIGIL_IMAGE") or "vigil:%s" % app_version()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def render(values):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values, f)
    try:
        p = subprocess.run([HELM, "template", "vigil", CHART, "-f", f.name,
                            "--kube-version", "1.30.0"], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if p.returncode != 0:
        raise SystemExit("helm template failed: %s" % p.stderr)
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def workloads(objects):
    """The chart's Job and Deployments whose pods run vigil, by component."""
    out = {}
    for o in objects:
        if o["kind"] in ("Job", "Deployment"):
            comp = o["metadata"]["labels"].get("app.kubernetes.io/component")
            out[comp] = o
    return out


def conninfo_for(schema):
    """The Secret's pg-conninfo, as an operator would write it: everything
    inline (the local passfile is not inside the container), and a search
    path of this run's own schema so the migration starts from nothing."""
    ci = dict(kv.split("=", 1) for kv in h.env("VIGIL_PG_CONNINFO").split())
    with open(ci.pop("passfile")) as f:
        password = f.read().strip().split(":")[-1]
    return ("host=%s port=%s dbname=%s user=%s password=%s options='-csearch_path=%s'"
            % (ci["host"], ci["port"], ci["dbname"], ci["user"], password, schema))


def sq(schema, sql, *params):
    conn = h.pg()
    try:
        cur = conn.cursor()
        cur.execute("SET search_path = %s" % schema)
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def probe(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def probe_ok(c, spec):
    """The probe SPEC of container C passes (httpGet: 2xx/3xx; tcpSocket:
    the port accepts)."""
    if "tcpSocket" in spec:
        port = spec["tcpSocket"]["port"]
        if not isinstance(port, int):
            port = next(p["containerPort"] for p in c["ports"] if p["name"] == port)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            return True
        except OSError:
            return False
    st = probe(http_port(c, spec), spec["httpGet"]["path"])
    return st is not None and 200 <= st < 400


def http_port(c, probe_spec):
    port = probe_spec["httpGet"]["port"]
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c["ports"] if p["name"] == port)


def deliveries(study_phone, alert_ids):
    """SMS (to the safety physician's phone) and emails carrying this run's
    alert ids."""
    sms = set()
    for e in h.read_jsonl(h.env("VIGIL_SMS_LOG")):
        if e.get("status") == 201 and e["fields"].get("To") == study_phone:
            body = e["fields"].get("Body", "")
            if " refs " in body:
                sms.update(body.rsplit(" refs ", 1)[1].split(","))
    mails = set()
    spool = h.env("VIGIL_SMTP_SPOOL")
    for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
        with open(os.path.join(spool, e["file"]), "rb") as f:
            head = f.read(8192).decode("utf-8", "replace")
        for line in head.splitlines():
            if line.lower().startswith("x-vigil-alert-ids:"):
                mails.update(x for x in line.split(":", 1)[1].split() if x in alert_ids)
    return sms & alert_ids, mails


def release(mode):
    rid = h.run_id()
    topic = "cw.%s.obs" % rid
    alerts_topic = "cw.%s.alerts" % rid
    schema = "cw_%s" % rid
    study = "CW-%s" % rid
    phone = "+44207%07d" % (os.getpid() % 10 ** 7)
    h.create_topics([topic, topic + ".dlq"], 12)
    h.create_topics([alerts_topic, alerts_topic + ".dlq"], 6)
    h.query("CREATE SCHEMA %s" % schema)
    sms_url = h.env("VIGIL_SMS_URL")
    with open(h.env("VIGIL_SMS_PASSWORD_FILE")) as f:
        sms_password = f.read().strip()
    # The site's values: where the services are. Everything else is the
    # chart's default.
    values = {
        "kafka": {"bootstrap": h.bootstrap(), "observationsTopic": topic,
                  "dlqTopic": topic + ".dlq", "alertsTopic": alerts_topic,
                  "alertsDlqTopic": alerts_topic + ".dlq"},
        "worker": {"group": "cw-w-" + rid, "port": free_port()},
        "notifier": {"group": "cw-n-" + rid, "port": free_port(),
                     "smtp": {"url": h.env("VIGIL_SMTP_URL"), "tls": "off"},
                     "sms": {"url": sms_url, "user": h.env("VIGIL_SMS_USER")}},
        # The console on free ports (pods share the host's network), with
        # acknowledgement links (the notifier signs with the key file the
        # console verifies with) and the SMS webhook, so every file it and
        # the notifier are given is mounted and read.
        "console": {"port": free_port(), "metricsPort": free_port(), "ackLinks": True, "smsInbound": True,
                    "publicUrl": "https://console.example.org"},
    }
    # The image under test (VIGIL_IMAGE), as the chart would name it.
    repo, _, tag = IMAGE.rpartition(":")
    values["image"] = {"repository": repo, "tag": tag}
    if mode == "env":
        values["secrets"] = {"mode": "env"}
    objects = render(values)
    wl = workloads(objects)
    t.check({"migration", "worker", "notifier"} <= set(wl),
            "[%s] the chart renders the migration Job and the worker and notifier "
            "Deployments (%s)" % (mode, sorted(wl)))
    secrets = {SECRET: {"pg-conninfo": conninfo_for(schema).encode(),
                        "sms-password": sms_password.encode(),
                        "smtp-password": b"unused",
                        "link-keys": ("cw1 %s\n" % os.urandom(16).hex()).encode(),
                        "sms-inbound-secret": os.urandom(16).hex().encode()}}
    logdir = tempfile.mkdtemp(prefix="chart-wiring-")
    pods = []

    def pod(kind):
        p = podrun.Pod(wl[kind], objects, secrets, IMAGE, logdir)
        pods.append(p)
        return p

    try:
        # ---- 1. the migration Job -----------------------------------------
        job = pod("migration")
        cname = wl["migration"]["spec"]["template"]["spec"]["containers"][0]["name"]
        job.run(cname)
        rc = job.wait(60 * h.SCALE)
        t.check(rc == 0, "[%s] the migration Job exits 0 (rc %s): %s"
                % (mode, rc, job.text()[-600:] if rc != 0 else "ok"))
        files = sorted(f for f in os.listdir(os.path.join(h.SRC, "schemas", "migrations"))
                       if f.endswith(".sql"))
        versions = sq(schema, "SELECT count(*) FROM schema_migrations")[0][0]
        t.check(versions == len(files), "[%s] the Job applied every migration to the fresh "
                "schema (%d of %d)" % (mode, versions, len(files)))

        # The directory: a study whose safety physician gets critical alerts
        # by SMS and email.
        sq(schema, "INSERT INTO researchers (researcher_id, name, email, phone) VALUES "
           "(%s, 'Safety physician', %s, %s)", "SAFE-" + rid, "safe-%s@hospital.example" % rid,
           phone)
        sq(schema, "INSERT INTO studies (study_id, name, safety_contact_researcher_id) "
           "VALUES (%s, 'wiring', %s)", study, "SAFE-" + rid)
        sq(schema, "INSERT INTO sites (study_id, site_id, name) VALUES (%s, 'SITE-1', 'site')",
           study)
        sq(schema, "INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity, "
           "channels) VALUES (%s, %s, NULL, 'critical', %s)", "SAFE-" + rid, study,
           ["email", "sms"])

        # ---- 2. the Deployments ---------------------------------------------
        running = {}
        for kind in ("worker", "notifier"):
            p = pod(kind)
            c = wl[kind]["spec"]["template"]["spec"]["containers"][0]
            p.run(c["name"])
            running[kind] = (p, c)
        for kind, (p, c) in running.items():
            rp, lp = c["readinessProbe"], c["livenessProbe"]
            port = http_port(c, rp)
            ready = h.wait_until(lambda: probe(port, rp["httpGet"]["path"]) == 200
                                 or p.proc.poll() is not None, 60, "%s ready" % kind)
            alive = p.proc.poll() is None
            t.check(ready and alive, "[%s] the %s answers its readinessProbe (GET %s on %s) "
                    "with 200%s" % (mode, kind, rp["httpGet"]["path"], port,
                                    "" if alive else ": exited\n" + p.text()[-800:]))
            t.check(probe(http_port(c, lp), lp["httpGet"]["path"]) == 200,
                    "[%s] the %s answers its livenessProbe (GET %s)"
                    % (mode, kind, lp["httpGet"]["path"]))
        worker, wc = running["worker"]
        t.check(h.wait_until(lambda: "rules" in worker.text(), 30, "rules loaded") is not None
                and "/etc/vigil/rules/" in worker.env.get("VIGIL_RULES", ""),
                "[%s] the worker reads its rules from the mounted ConfigMap (%s)"
                % (mode, worker.env.get("VIGIL_RULES")))

        # ---- 3. data through the fleet ----------------------------------------
        records, critical = [], set()
        for i in range(N):
            v = 6.9 if i % EVERY == 0 else 4.0 + (i % 10) / 10
            r = h.observation(rid, i, study, "S-%03d" % (i % 200), value=v)
            records.append(r)
            if v >= 6.5:
                critical.add(r["observation_id"])
        h.produce_observations(topic, records)
        stored = h.wait_until(lambda: sq(schema, "SELECT count(*) FROM observations")[0][0] >= N,
                              90, "observations stored", interval=0.25)
        rows = sq(schema, "SELECT count(*), count(DISTINCT observation_id) FROM observations "
                  "WHERE study_id = %s", study)[0]
        t.check(stored and rows == (N, N), "[%s] the worker stored every observation once "
                "(%s of %d)" % (mode, rows, N))
        got = sq(schema, "SELECT alert_id, observation_id FROM alerts WHERE study_id = %s AND "
                 "rule_id = 'potassium-critical-high'", study)
        alert_ids = {a for a, _ in got}
        t.check({o for _, o in got} == critical and len(got) == len(critical),
                "[%s] one potassium-critical-high alert per critical observation (%d of %d)"
                % (mode, len(got), len(critical)))
        sent = h.wait_until(lambda: all(x == alert_ids for x in deliveries(phone, alert_ids)),
                            90, "SMS and email for every critical alert", interval=0.5)
        sms, mails = deliveries(phone, alert_ids)
        t.check(sent is not None, "[%s] the notifier sent every critical alert by SMS (%d of %d) "
                "and email (%d of %d)" % (mode, len(sms), len(alert_ids), len(mails),
                                          len(alert_ids)))
        # console.ackLinks: the notifier got the console's public URL and the
        # mounted link keys, so its messages carry signed links to the console.
        spool = h.env("VIGIL_SMTP_SPOOL")
        linked = 0
        for e in h.read_jsonl(os.path.join(spool, "index.jsonl")):
            with open(os.path.join(spool, e["file"]), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if any(a in text for a in alert_ids) and "https://console.example.org/ack/" in text:
                linked += 1
        t.check(linked > 0, "[%s] the notifier's e-mails carry acknowledgement links to the "
                "console's public URL (%d e-mails)" % (mode, linked))

        # ---- 4. SIGTERM, as a rollout does ---------------------------------
        ends = {p: hi for p, hi in _ends(topic, 12).items()}
        ok = h.wait_until(lambda: h.committed(values["worker"]["group"], topic, 12) == ends,
                          30, "worker offsets committed", interval=0.5)
        t.check(ok, "[%s] the worker committed every offset to the end" % mode)
        for kind, (p, c) in running.items():
            grace = wl[kind]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            rc, took = p.terminate(grace)
            t.check(rc == 0 and took < grace, "[%s] the %s exits 0 on SIGTERM within the pod's "
                    "grace (%ss): rc %s after %.1fs" % (mode, kind, grace, rc, took))
        # Any other Deployment of the chart (the console, the MLLP listener,
        # when they land): it must start from its rendered wiring, pass its
        # probes and stop cleanly. What it needs beyond that (a Secret key,
        # a service) is taught here, never skipped.
        for kind in sorted(set(wl) - {"migration", "worker", "notifier"}):
            if wl[kind]["kind"] != "Deployment":
                t.check(False, "[%s] %s %s: teach this test to run it"
                        % (mode, wl[kind]["kind"], kind))
                continue
            try:
                p = pod(kind)
                c = wl[kind]["spec"]["template"]["spec"]["containers"][0]
                p.run(c["name"])
            except podrun.WiringError as e:
                t.check(False, "[%s] the %s Deployment's wiring: %s" % (mode, kind, e))
                continue
            rp = c.get("readinessProbe")
            ready = rp and h.wait_until(lambda: probe_ok(c, rp) or p.proc.poll() is not None,
                                        60, "%s ready" % kind)
            t.check(bool(ready) and p.proc.poll() is None, "[%s] the %s starts from its "
                    "rendered wiring and passes its readinessProbe%s" % (
                        mode, kind, "" if p.proc.poll() is None else ": exited\n" + p.text()[-800:]))
            grace = wl[kind]["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            rc, took = p.terminate(grace)
            t.check(rc == 0, "[%s] the %s exits 0 on SIGTERM (rc %s after %.1fs)"
                    % (mode, kind, rc, took))
        if mode == "files":
            env = worker.env
            t.check(not any(k in env for k in ("VIGIL_PG_CONNINFO", "VIGIL_SMS_PASSWORD"))
                    and env.get("VIGIL_PG_CONNINFO_FILE", "").startswith("/var/run/secrets/"),
                    "[files] credentials reach the pods as files, never as variables")
            broken(objects, wl, secrets, logdir, schema)
    finally:
        for p in pods:
            p.remove()
        h.delete_topics([topic, topic + ".dlq", alerts_topic, alerts_topic + ".dlq"])
        h.query("DROP SCHEMA %s CASCADE" % schema)
        shutil.rmtree(logdir, ignore_errors=True)


def _ends(topic, parts):
    c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": "ends-" + h.run_id()})
    try:
        return {p: c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10)[1]
                for p in range(parts)}
    finally:
        c.close()


def broken(objects, wl, secrets, logdir, schema):
    """Mutants of the rendered manifests that a correct harness must see fail."""
    # A credential variable renamed in the Job: vigil migrate then has no
    # conninfo and libpq's defaults reach no server inside the container.
    job = copy.deepcopy(wl["migration"])
    for e in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if e["name"] == "VIGIL_PG_CONNINFO_FILE":
            e["name"] = "VIGIL_PG_CONNINFO_PATH"
    p = podrun.Pod(job, objects, secrets, IMAGE, logdir)
    try:
        p.run(job["spec"]["template"]["spec"]["containers"][0]["name"])
        rc = p.wait(60 * h.SCALE)
        t.check(rc not in (0, None), "mutant: a renamed VIGIL_PG_CONNINFO_FILE makes the Job "
                "fail (rc %s)" % rc)
    finally:
        p.remove()
    # The worker's config mounted one folder off: VIGIL_CONFIG names a file
    # that is not there, and the worker must refuse to start.
    dep = copy.deepcopy(wl["worker"])
    c = dep["spec"]["template"]["spec"]["containers"][0]
    for m in c["volumeMounts"]:
        if m["name"] == "config":
            m["mountPath"] = "/etc/vigil/settings"
    p = podrun.Pod(dep, objects, secrets, IMAGE, logdir)
    try:
        p.run(c["name"])
        rc = p.wait(30 * h.SCALE)
        t.check(rc not in (0, None), "mutant: the worker's config at a wrong mount path stops "
                "the worker (rc %s)" % rc)
    finally:
        p.remove()


for mode in (["files", "env"] if mode_arg == "all" else [mode_arg]):
    try:
        podrun.image_config(IMAGE)
    except podrun.WiringError as e:
        t.check(False, str(e))
        break
    release(mode)
t.done()
