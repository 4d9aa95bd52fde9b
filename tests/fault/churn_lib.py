"""Churn under load: a fleet of `vigil worker` processes that join and leave
one consumer group while a paced producer offers a steady load, and the
audit and figures every churn scenario ends with (tests/fault/test_churn.py,
tests/fault/test_autoscale.py, bench/churn).

  Load       paced producer thread: R observations/s of this run's study,
             every EVERY-th a critical potassium (an alert under
             tests/integration/rules/pipeline.yaml); it knows what it
             delivered, so loss is counted against its delivery reports
  Fleet      starts, stops (SIGTERM with the chart's grace), freezes
             (SIGSTOP/SIGCONT) workers and records each membership change
  Monitor    samples every partition's committed offset and end offset
             (lag), and records any committed offset that moved backwards
  figures()  from the rows' created_at in PostgreSQL (each row is stamped by
             the batch transaction that first stored it): per membership
             change and partition, the longest time the partition went
             without a newly stored row (the pause), throughput before and
             during the churn, replayed alerts
  audit()    0 lost, 0 duplicate rows, every alert once after dedupe by id,
             offsets committed to the end, nothing dead-lettered
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import vigil_harness as h  # noqa: E402
import fault_lib as f  # noqa: E402

PARTS = 12


def say(fmt, *args):
    print(fmt % args if args else fmt, flush=True)


def chart_values():
    with open(os.path.join(h.SRC, "helm", "vigil", "values.yaml")) as fh:
        return yaml.safe_load(fh)


class Load:
    """A steady offered load: RATE observations per second, encoded by
    vigil's own encoder (codec_tool) a tick at a time and produced with an
    idempotent producer. stop() returns once every message is delivered."""

    TICK = 0.1

    def __init__(self, topic, rid, study, rate, every=10):
        self.topic, self.rid, self.study, self.rate, self.every = topic, rid, study, rate, every
        self.delivered = set()
        self.alerts = set()
        self.errors = []
        self.sent = 0
        self.behind = 0.0  # the most the producer fell behind its schedule, s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        enc = subprocess.Popen([h.CODEC_TOOL, "encode", "observation", "single", "0"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        p = h.Producer({"bootstrap.servers": h.bootstrap(), "enable.idempotence": True,
                        "linger.ms": 5, "queue.buffering.max.messages": 1000000})
        t0 = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            per_tick = max(1, int(self.rate * self.TICK))  # set_rate() may change it
            recs = []
            for i in range(self.sent, self.sent + per_tick):
                v = 6.9 if i % self.every == 0 else 4.0 + (i % 10) / 10
                recs.append(h.observation(self.rid, i, self.study, "S-%04d" % (i % 2000), value=v,
                                          t0=1767225600000))
            vals = []
            # In slices: all of a tick's lines at once would fill both pipes
            # (the encoder blocks writing, we block writing) and deadlock.
            for k in range(0, len(recs), 100):
                part = recs[k:k + 100]
                enc.stdin.write("".join(json.dumps(r) + "\n" for r in part))
                enc.stdin.flush()
                vals += [bytes.fromhex(enc.stdout.readline().strip()) for _ in part]
            for r, v in zip(recs, vals):
                oid = r["observation_id"]
                alert = r["value"] >= f.K_HIGH

                def dr(err, msg, oid=oid, alert=alert):
                    if err is not None:
                        self.errors.append(err)
                        return
                    with self._lock:
                        self.delivered.add(oid)
                        if alert:
                            self.alerts.add(oid)
                while True:
                    try:
                        p.produce(self.topic, key=("%s/%s" % (self.study, r["subject_id"])).encode(),
                                  value=v, on_delivery=dr)
                        break
                    except BufferError:
                        p.poll(0.01)
            self.sent += len(recs)
            p.poll(0)
            tick += 1
            due = t0 + tick * self.TICK
            now = time.monotonic()
            self.behind = max(self.behind, now - due)
            # The producer's clock: paced ticks, not a synchronisation.
            self._stop.wait(max(0.0, due - now))
        left = p.flush(60 * h.SCALE)
        if left:
            self.errors.append("%d undelivered at stop" % left)
        enc.stdin.close()
        enc.wait()

    def set_rate(self, rate):
        self.rate = rate

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.delivered, self.alerts


class Fleet:
    """Worker processes of one group. Every membership change is recorded in
    self.events as (monotonic time, wall time, what)."""

    def __init__(self, rid, topic, group, assignor="range", static=False, threads=2,
                 session_ms=6000, log_dir=None):
        self.rid, self.topic, self.group = rid, topic, group
        self.assignor, self.static, self.threads = assignor, static, threads
        self.session_ms = session_ms
        self.grace = int(chart_values()["worker"]["grace"])
        self.log_dir = log_dir
        self.live = []
        self.gone = []
        self.events = []
        self.exits = []  # (name, rc, seconds to exit)
        self.seq = 0
        self._waiters = []

    def mark(self, what):
        self.events.append((time.monotonic(), time.time(), what))

    def start(self, n=1, wait=True):
        new = []
        for _ in range(n):
            self.seq += 1
            # A Deployment's pod name: a new one for every pod, never reused.
            name = "vigil-worker-%s-%d" % (self.rid[-6:], self.seq)
            extra = ["-X", "session.timeout.ms=%d" % self.session_ms,
                     "-X", "heartbeat.interval.ms=%d" % max(500, self.session_ms // 6),
                     "--pg", h.env("VIGIL_PG_CONNINFO"), "-b", h.bootstrap(),
                     "--assignor", self.assignor, "--grace", str(self.grace)]
            if self.static:
                extra += ["-X", "group.instance.id=" + name]
            w = h.Worker(self.rid, f.RULES, self.topic, self.group, extra, threads=self.threads,
                         log_dir=self.log_dir)
            w.name = name
            self.live.append(w)
            new.append(w)
        self.mark("join %d" % n)
        if wait:
            for w in new:
                h.wait_until(lambda w=w: w.get("/readyz")[0] == 200 or w.proc.poll() is not None,
                             60, "%s ready" % w.name)
        return new

    def stop(self, w, wait=True):
        """SIGTERM, as the kubelet does; the worker has the chart's grace
        (terminationGracePeriodSeconds, then SIGKILL)."""
        self.live.remove(w)
        self.gone.append(w)
        self.mark("leave")
        t0 = time.monotonic()
        w.proc.send_signal(signal.SIGTERM)

        def reap():
            grace = int(chart_values()["worker"]["terminationGracePeriodSeconds"])
            try:
                rc = w.proc.wait(grace)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                rc = w.proc.wait()
            self.exits.append((w.name, rc, time.monotonic() - t0))
            w.log.close()
        if wait:
            reap()
        else:
            th = threading.Thread(target=reap)
            th.start()
            self._waiters.append(th)

    def join_all(self):
        for th in self._waiters:
            th.join()
        self._waiters = []

    def stop_all(self):
        for w in list(self.live):
            self.stop(w, wait=False)
        self.join_all()

    def assigned_total(self):
        return sum(w.metric("vigil_assigned_partitions") or 0 for w in self.live)


class Monitor:
    """Every PERIOD s: each partition's committed offset (one long-lived
    consumer, never joining the group) and end offset. Records lag and any
    committed offset that went backwards."""

    def __init__(self, topic, group, period=0.25):
        self.topic, self.group, self.period = topic, group, period
        self.samples = []  # (monotonic, {p: committed}, {p: end})
        self.backwards = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        c = h.Consumer({"bootstrap.servers": h.bootstrap(), "group.id": self.group,
                        "enable.auto.commit": False})
        tps = [h.TopicPartition(self.topic, p) for p in range(PARTS)]
        last = {}
        while not self._stop.is_set():
            try:
                com = {tp.partition: max(tp.offset, 0) for tp in c.committed(tps, timeout=5)}
                ends = {p: c.get_watermark_offsets(h.TopicPartition(self.topic, p), timeout=5,
                                                   cached=False)[1] for p in range(PARTS)}
            except Exception:  # a coordinator moving: try again next period
                self._stop.wait(self.period)
                continue
            now = time.monotonic()
            for p, o in com.items():
                if o < last.get(p, 0):
                    self.backwards.append((now, p, last[p], o))
                last[p] = max(o, last.get(p, 0))
            self.samples.append((now, com, ends))
            self._stop.wait(self.period)
        c.close()

    def lag(self):
        """[(monotonic, total lag)]."""
        return [(t, sum(max(0, e[p] - c.get(p, 0)) for p in e)) for t, c, e in self.samples]

    def stop(self):
        self._stop.set()
        self._thread.join()


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] if v else float("nan")


def row_stamps(study):
    """{partition: sorted epoch seconds at which its rows were first stored}."""
    out = {}
    for p, ts in h.query("SELECT source_partition, extract(epoch FROM created_at) FROM observations "
                         "WHERE study_id = %s ORDER BY 1, 2", study):
        out.setdefault(p, []).append(float(ts))
    return out


def pauses(stamps, events, horizon=20.0):
    """Per membership change and partition: the longest gap between two
    stored rows of the partition that ends after the change and starts
    before the next change (at most HORIZON s after it). Returns a list
    of seconds, one per (change, partition)."""
    out = []
    walls = [e[1] for e in events]
    for i, t in enumerate(walls):
        end = min(walls[i + 1] if i + 1 < len(walls) else t + horizon, t + horizon)
        for p, ts in stamps.items():
            gap = 0.0
            for a, b in zip(ts, ts[1:]):
                if b > t and a < end:
                    gap = max(gap, b - a)
                if a >= end:
                    break
            out.append(gap)
    return out


def steady_gaps(stamps, t0, t1, window=2.0):
    """The longest gap per partition per WINDOW s between wall times t0 and
    t1: what a 'pause' is when nothing changes."""
    out = []
    w = t0
    while w + window <= t1:
        for ts in stamps.values():
            sel = [x for x in ts if w <= x < w + window]
            if len(sel) > 1:
                out.append(max(b - a for a, b in zip(sel, sel[1:])))
        w += window
    return out


def rate_between(stamps, t0, t1):
    n = sum(1 for ts in stamps.values() for x in ts if t0 <= x < t1)
    return n / max(1e-6, t1 - t0)


def figures(name, study, fleet, monitor, steady, churn, rebalances, replayed_alerts, every):
    """Prints `figure` lines for scenario NAME. steady and churn: (wall t0, t1)."""
    stamps = row_stamps(study)
    changes = [e for e in fleet.events if churn[0] - 0.5 <= e[1] <= churn[1]]
    ps = pauses(stamps, changes)
    base = steady_gaps(stamps, *steady)
    thr_steady = rate_between(stamps, *steady)
    thr_churn = rate_between(stamps, *churn)
    lag = [l for t, l in monitor.lag()]
    out = {
        "pause_p50": pct(ps, 0.5), "pause_p99": pct(ps, 0.99), "pause_max": max(ps or [0]),
        "steady_gap_p99": pct(base, 0.99),
        "throughput_steady": thr_steady, "throughput_churn": thr_churn,
        "lag_max": max(lag or [0]),
        "rebalances": rebalances,
        "replayed_alerts": replayed_alerts,
        "replays_per_rebalance": replayed_alerts * every / max(1, rebalances),
    }
    say("figure %s_pause_p50 %.2f s", name, out["pause_p50"])
    say("figure %s_pause_p99 %.2f s", name, out["pause_p99"])
    say("figure %s_pause_max %.2f s", name, out["pause_max"])
    say("figure %s_steady_gap_p99 %.2f s", name, out["steady_gap_p99"])
    say("figure %s_throughput_steady %.0f obs/s", name, thr_steady)
    say("figure %s_throughput_churn %.0f obs/s", name, thr_churn)
    say("figure %s_lag_max %d messages", name, out["lag_max"])
    say("figure %s_rebalances %d", name, rebalances)
    say("figure %s_replays_per_rebalance %.0f observations", name, out["replays_per_rebalance"])
    return out


def audit(t, topic, group, study, delivered, alerts, monitor, fleet):
    """The end state of every churn scenario. Returns the number of replayed
    alert copies on the alerts topic (allowed: dedupe by id is the
    notifier's job)."""
    n = len(delivered)
    ok = h.wait_until(lambda: h.stored(study) >= n, 30, "all %d stored" % n, interval=0.5)
    rows = h.query("SELECT count(*), count(DISTINCT observation_id) FROM observations "
                   "WHERE study_id = %s", study)[0]
    ids = {r[0] for r in h.query("SELECT observation_id FROM observations WHERE study_id = %s",
                                 study)}
    lost = len(delivered - ids)
    say("counted: %d delivered by the producer, %d rows (%d distinct), %d lost", n, rows[0],
        rows[1], lost)
    t.check(ok and lost == 0, "0 observations lost (%d of %d missing)" % (lost, n))
    t.check(rows[0] == rows[1] == n, "0 duplicate rows (%d rows, %d distinct, %d delivered)"
            % (rows[0], rows[1], n))
    got = h.query("SELECT observation_id, count(*) FROM alerts WHERE study_id = %s "
                  "GROUP BY observation_id", study)
    aids = {r[0] for r in got}
    twice = sum(1 for r in got if r[1] != 1)
    t.check(aids == alerts and twice == 0, "every alert once in PostgreSQL (%d expected, %d "
            "missing, %d unexpected, %d doubled)" % (len(alerts), len(alerts - aids),
                                                    len(aids - alerts), twice))
    ends = f.high_watermarks(topic, PARTS)
    ok = h.wait_until(lambda: h.committed(group, topic, PARTS) == ends, 60, "offsets committed",
                      interval=0.5)
    t.check(ok, "every offset committed to the end of its partition (%s)" % (
        "ok" if ok else h.committed(group, topic, PARTS)))
    t.check(not monitor.backwards, "no committed offset ever moved backwards (%d times, e.g. %s)"
            % (len(monitor.backwards), monitor.backwards[:3]))
    msgs = h.consume_all(topic + ".alerts", idle=2.0)
    decoded = h.decode("alert", [m[3] for m in msgs])
    on_topic = [(d.get("evidence") or [{}])[0].get("observation_id") for d in decoded]
    distinct = set(on_topic)
    dups = len(on_topic) - len(distinct)
    say("counted: alerts topic %d messages, %d distinct, %d replayed copies", len(msgs),
        len(distinct), dups)
    t.check(distinct == alerts, "every alert on the alerts topic after dedupe by id "
            "(%d missing, %d unexpected)" % (len(alerts - distinct), len(distinct - alerts)))
    dlq = h.consume_all(topic + ".dlq", idle=1.0)
    t.check(len(dlq) == 0, "nothing dead-lettered (%d)" % len(dlq))
    bad = [(nm, rc, round(s, 1)) for nm, rc, s in fleet.exits if rc != 0 or s >= fleet.grace]
    t.check(not bad, "every SIGTERMed worker exited 0 within the chart's grace (%d of %d did not:"
            " %s)" % (len(bad), len(fleet.exits), bad[:3]))
    return dups


def setup(prefix, partitions=PARTS):
    rid = h.run_id()
    topic, group, study = "%s.%s.obs" % (prefix, rid), "%s-%s" % (prefix, rid), \
        "%s-%s" % (prefix.upper(), rid)
    h.migrate()
    h.create_topics([topic, topic + ".dlq", topic + ".alerts"], partitions)
    return rid, topic, group, study


def teardown(topic):
    h.delete_topics([topic, topic + ".dlq", topic + ".alerts"])


def pick(rng, seq):
    return seq[rng.randrange(len(seq))]


__all__ = ["Load", "Fleet", "Monitor", "audit", "figures", "setup", "teardown", "say", "pick",
           "random"]
