#!/usr/bin/python3
"""Workers that churn under a steady load, on the real broker (issue 17).

  test_churn.py SCENARIO [--assignor range|cooperative-sticky] [--static]
                [--rate R] [--storm-seconds S] [--json FILE]

SCENARIO:
  rolling  4 workers restarted one at a time as a Deployment rollout does
           (maxSurge 1, maxUnavailable 0: the new pod is ready, then the old
           one gets SIGTERM and the chart's grace)
  scale    1 -> 6 -> 2 workers
  storm    a worker joins or leaves every 2 s for --storm-seconds (60)
  zombie   a worker frozen with SIGSTOP past the session timeout, then
           resumed: its late commits must not move offsets backwards and its
           late writes must not duplicate rows
Throughout, a paced producer offers R observations/s (default 4000).

Each ends with the audit of churn_lib: 0 observations lost, 0 duplicate
rows, every alert once after dedupe by id, offsets committed to the end and
never backwards, and prints `figure` lines: pause per rebalance (p50, p99),
throughput steady and during churn, replays per rebalance. --static gives
each worker a group.instance.id (a new pod name per process, as a
Deployment does). Prints "N passed, N failed".
"""
import argparse
import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_lib as c  # noqa: E402
from churn_lib import h  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("scenario", choices=["rolling", "scale", "storm", "zombie"])
ap.add_argument("--assignor", default=None,
                help="default: the chart's kafka.assignor")
ap.add_argument("--static", action="store_true", default=None)
ap.add_argument("--rate", type=int, default=4000)
ap.add_argument("--storm-seconds", type=float, default=60)
ap.add_argument("--steady", type=float, default=8, help="seconds of steady load before churn")
ap.add_argument("--json", help="append the figures as one JSON line to this file")
a = ap.parse_args()
vals = c.chart_values()
assignor = a.assignor or vals["kafka"]["assignor"]
static = a.static if a.static is not None else bool(vals["kafka"].get("staticMembership"))
rate = max(200, int(a.rate / h.SCALE))  # a sanitizer build is offered less
EVERY = 10

t = h.Checks()
rid, topic, group, study = c.setup("ch" + a.scenario[:2])
c.say("churn %s: assignor %s, static membership %s, %d obs/s, topic %s", a.scenario, assignor,
      static, rate, topic)
fleet = c.Fleet(rid, topic, group, assignor=assignor, static=static)
rng = random.Random(17)


def steady(seconds):
    """Lets the load run: the scenario's clock, not a synchronisation."""
    time.sleep(seconds)


def settled(n):
    """Every partition assigned among exactly N live workers."""
    return h.wait_until(lambda: len(fleet.live) == n and fleet.assigned_total() == c.PARTS,
                        60, "12 partitions assigned over %d workers" % n, interval=0.1)


start = {"rolling": 4, "scale": 1, "storm": 3, "zombie": 3}[a.scenario]
fleet.start(start)
settled(start)
monitor = c.Monitor(topic, group).start()
load = c.Load(topic, rid, study, rate, every=EVERY).start()
steady(2)
s0 = time.time()
steady(a.steady)
s1 = time.time()
rebalances = 0
frozen_ok = True

if a.scenario == "rolling":
    for i in range(4):
        old = fleet.live[0]
        fleet.start(1)              # the surge pod, ready first
        fleet.stop(old, wait=True)  # then the old pod gets SIGTERM
        rebalances += 2
        settled(4)
elif a.scenario == "scale":
    fleet.start(5)
    rebalances += 1
    settled(6)
    steady(4)
    for w in list(fleet.live[:4]):
        fleet.stop(w, wait=False)
    fleet.join_all()
    rebalances += 1
    settled(2)
elif a.scenario == "storm":
    end = time.monotonic() + a.storm_seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        n = len(fleet.live)
        if n <= 2 or (n < 6 and rng.random() < 0.5):
            fleet.start(1, wait=False)
        else:
            fleet.stop(c.pick(rng, fleet.live), wait=False)
        rebalances += 1
        nxt += 2.0
        time.sleep(max(0.0, nxt - time.monotonic()))  # one change every 2 s
    fleet.join_all()
    settled(len(fleet.live))
elif a.scenario == "zombie":
    z = fleet.live[0]
    before = z.metric("vigil_assigned_partitions") or 0
    z.proc.send_signal(signal.SIGSTOP)
    fleet.mark("freeze")
    t_stop = time.monotonic()
    # Past the session timeout the broker evicts it; the others take its
    # partitions (the metric of a frozen process cannot be read: sum the rest).
    others = [w for w in fleet.live if w is not z]
    moved = h.wait_until(lambda: sum(w.metric("vigil_assigned_partitions") or 0
                                      for w in others) == c.PARTS, 60,
                         "the frozen worker's partitions moved to the others", interval=0.1)
    evicted_after = time.monotonic() - t_stop
    t.check(moved is not None and before > 0,
            "the frozen worker (%d partitions) was evicted and its partitions reassigned after "
            "%.1f s (session timeout %.1f s)" % (before, evicted_after, fleet.session_ms / 1000))
    steady(2)
    z.proc.send_signal(signal.SIGCONT)
    fleet.mark("thaw")
    rebalances += 2
    alive = h.wait_until(lambda: z.get("/healthz")[0] == 200, 30, "the zombie answers again")
    t.check(alive is not None and z.proc.poll() is None,
            "the resumed worker is alive (rc %s)" % z.proc.poll())
    settled(3)
    frozen_ok = z.proc.poll() is None

steady(4)
c1 = time.time()
delivered, alerts = load.stop()
c.say("load: %d produced, %d delivered, %d alerts expected, producer at most %.2f s behind",
      load.sent, len(delivered), len(alerts), load.behind)
t.check(not load.errors and len(delivered) == load.sent,
        "the producer delivered all it offered (%d of %d, errors %s)"
        % (len(delivered), load.sent, load.errors[:3]))
if not h.wait_until(lambda: h.stored(study) >= len(delivered), 90, "the fleet caught up",
                    interval=0.5):
    # What each live worker believes: a partition assigned, not paused and
    # yet not consumed is one librdkafka is not fetching.
    for w in fleet.live:
        st, body = w.get("/metrics")
        c.say("%s: %s", w.name, " ".join(l for l in body.splitlines() if l.startswith((
            "vigil_assigned_partitions", "vigil_paused_partitions", "vigil_consumer_lag"))))
dups = c.audit(t, topic, group, study, delivered, alerts, monitor, fleet)
monitor.stop()
fig = c.figures(a.scenario, study, fleet, monitor, (s0, s1), (s1, c1), rebalances, dups, EVERY)
fig.update(scenario=a.scenario, assignor=assignor, static=static, rate=rate)
if a.json:
    with open(a.json, "a") as fh:
        fh.write(json.dumps(fig) + "\n")
fleet.stop_all()
t.check(all(rc == 0 for _, rc, _ in fleet.exits), "every worker exited 0 at the end")
c.teardown(topic)
t.done()
