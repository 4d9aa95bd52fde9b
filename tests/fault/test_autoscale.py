#!/usr/bin/python3
"""Autoscaling on lag, exercised (issue 17): a small controller plays KEDA's
Kafka scaler and the HPA it drives, with the chart's numbers, and starts or
stops worker processes under a load that rises and falls.

  test_autoscale.py [--phases RATE:SECONDS,...] [--json FILE]

The rule (KEDA's kafka scaler + the HPA's AverageValue target), every poll:
  lag      = sum over partitions of (end offset - committed offset)
  desired  = ceil(lag / worker.keda.lagThreshold), at most the partition
             count (allowIdleConsumers: false), within
             [worker.keda.minReplicas, worker.keda.maxReplicas]
  scale out at once; scale in only to the highest desired count of the last
  stabilisation window (the HPA's default scale-down behaviour);
  within 10 % of the current count, no change (the HPA's tolerance).
Time is scaled: the chart polls every worker.keda.pollingInterval (15 s) and
the HPA stabilises scale-in over 300 s; here the poll is 2 s and the window
10 s, so the test takes a minute. The thresholds and bounds are the chart's.

Asserts: the fleet scaled out when the load rose, never beyond the bounds,
scaled back in when it fell, and the churn audit (nothing lost, no duplicate
rows, every alert once, offsets committed). Prints figures: replicas and lag
per phase, lag max. Prints "N passed, N failed".
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_lib as c  # noqa: E402
from churn_lib import h  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--phases", default="1000:10,8000:20,1000:25",
                help="offered obs/s and seconds per phase")
ap.add_argument("--poll", type=float, default=2.0)
ap.add_argument("--window", type=float, default=10.0, help="scale-in stabilisation, s")
ap.add_argument("--json")
a = ap.parse_args()
keda = c.chart_values()["worker"]["keda"]
parts = int(c.chart_values()["kafka"]["observationsPartitions"])
THRESHOLD, MINR, MAXR = int(keda["lagThreshold"]), int(keda["minReplicas"]), int(keda["maxReplicas"])
bound = min(MAXR, parts)
phases = [(max(100, int(int(r) / h.SCALE)), float(s)) for r, s in
          (p.split(":") for p in a.phases.split(","))]

t = h.Checks()
rid, topic, group, study = c.setup("as", partitions=parts)
c.say("autoscale: lagThreshold %d, replicas %d..%d (partitions %d), phases %s", THRESHOLD, MINR,
      MAXR, parts, phases)
fleet = c.Fleet(rid, topic, group, assignor=c.chart_values()["kafka"]["assignor"],
                static=bool(c.chart_values()["kafka"].get("staticMembership")))
fleet.start(MINR)
monitor = c.Monitor(topic, group).start()
load = c.Load(topic, rid, study, phases[0][0]).start()


def desired(lag, current):
    want = min(math.ceil(lag / THRESHOLD), parts)
    want = max(MINR, min(MAXR, want))
    if current and abs(lag / THRESHOLD / current - 1.0) <= 0.1:
        return current
    return want


history = []  # (monotonic, desired)
timeline = []  # (phase, rate, replicas, lag)
peak = MINR
beyond = 0
for i, (rate, seconds) in enumerate(phases):
    load.set_rate(rate)
    fleet.mark("rate %d" % rate)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(a.poll)  # the controller's polling interval
        lag = monitor.lag()[-1][1] if monitor.samples else 0
        now = time.monotonic()
        want = desired(lag, len(fleet.live))
        history.append((now, want))
        window = [d for t0, d in history if now - t0 <= a.window]
        n = len(fleet.live)
        target = want if want > n else max(window)
        if target > n:
            fleet.start(target - n, wait=False)
        elif target < n:
            for w in fleet.live[target - n:]:
                fleet.stop(w, wait=False)
        peak = max(peak, len(fleet.live))
        beyond += len(fleet.live) > bound or len(fleet.live) < MINR
        timeline.append((i, rate, len(fleet.live), lag))
        c.say("phase %d (%d obs/s): lag %d -> desired %d, replicas %d", i, rate, lag, want,
              len(fleet.live))
fleet.join_all()
delivered, alerts = load.stop()
t.check(not load.errors and len(delivered) == load.sent,
        "the producer delivered all it offered (%d of %d)" % (len(delivered), load.sent))
h.wait_until(lambda: h.stored(study) >= len(delivered), 90, "the fleet caught up", interval=0.5)
c.audit(t, topic, group, study, delivered, alerts, monitor, fleet)
monitor.stop()

hi = max(r for _, r, _, _ in timeline)
peak_phase = max(range(len(phases)), key=lambda i: phases[i][0])
at_peak = [n for i, _, n, _ in timeline if i == peak_phase]
last = [n for i, _, n, _ in timeline if i == len(phases) - 1]
t.check(max(at_peak) > MINR, "the fleet scaled out when the load rose to %d obs/s (%d -> %d "
        "workers)" % (phases[peak_phase][0], MINR, max(at_peak)))
t.check(beyond == 0, "replicas stayed within [%d, %d] (the chart's bounds and the partition "
        "count) at every poll" % (MINR, bound))
t.check(peak_phase < len(phases) - 1 and last[-1] < max(at_peak),
        "the fleet scaled in after the load fell (%d -> %d workers)" % (max(at_peak), last[-1]))
figs = {}
for i, (rate, _) in enumerate(phases):
    lags = [l for j, _, _, l in timeline if j == i]
    reps = [n for j, _, n, _ in timeline if j == i]
    figs["phase%d" % i] = dict(rate=rate, replicas_max=max(reps), replicas_end=reps[-1],
                               lag_max=max(lags), lag_p50=c.pct(lags, 0.5))
    c.say("figure autoscale_phase%d_rate %d obs/s", i, rate)
    c.say("figure autoscale_phase%d_replicas_max %d", i, max(reps))
    c.say("figure autoscale_phase%d_replicas_end %d", i, reps[-1])
    c.say("figure autoscale_phase%d_lag_max %d messages", i, max(lags))
lag_all = [l for _, l in monitor.lag()]
c.say("figure autoscale_lag_max %d messages", max(lag_all or [0]))
c.say("figure autoscale_scale_events %d", len(fleet.events) - 1 - len(phases))
if a.json:
    with open(a.json, "a") as fh:
        fh.write(json.dumps(dict(scenario="autoscale", threshold=THRESHOLD, **figs)) + "\n")
fleet.stop_all()
c.teardown(topic)
t.done()
