#!/usr/bin/python3
"""scripts/demo's helper for `--mllp`: one site of the synthetic trial
reaches vigil the way a hospital's laboratory system would, as HL7 v2
ORU^R01 messages over MLLP to `vigil mllp`, while the other sites go
through `vigil produce`. Not a public tool: scripts/demo calls it.

  demo_mllp.py split TRIAL.ndjson --site SITE --kafka OUT.ndjson --hl7 OUT.hl7
        the site's records become HL7 messages (one per subject and visit,
        one OBR per result whose filler order number is the trial record's
        id, so a corrected result re-issued later maps to the same
        observation); every other record goes to OUT.ndjson
  demo_mllp.py enrol OUT.hl7 --facility F
        enrols the messages' patients (hl7_enrolments) for facility F
  demo_mllp.py send OUT.hl7 --port P --rate R
        sends the messages with python3-hl7, one at a time, checks that
        each ACK is AA and prints the counts
"""
import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone

import psycopg2

FACILITY = "DEMOHOSP"
STATUS = {"final": "F", "amended": "C", "corrected": "C", "cancelled": "X",
          "entered_in_error": "W", "entered-in-error": "W"}


def dtm(v):
    """An NDJSON time (RFC 3339 or epoch ms) as an HL7 DTM with offset."""
    if isinstance(v, (int, float)):
        t = datetime.fromtimestamp(v / 1000.0, tz=timezone.utc)
    else:
        t = datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(timezone.utc)
    return t.strftime("%Y%m%d%H%M%S.") + "%03d+0000" % (t.microsecond // 1000)


def mrn(subject):
    return "MRN" + subject.replace("-", "")


def message(n, subject, visit, recs, facility):
    segs = ["MSH|^~\\&|LIS|%s|VIGIL|VIGIL|%s||ORU^R01^ORU_R01|DEMO%07d|P|2.5.1"
            % (facility, dtm(recs[0]["issued_time"]), n),
            "PID|1||%s^^^%s^MR||DEMO^PATIENT" % (mrn(subject), facility),
            "PV1|1|O|||||||||||||||||%s" % visit]
    for i, r in enumerate(recs):
        segs.append("OBR|%d||%s^LIS|%s^^LN|||%s||||||||||||||%s|||F"
                    % (i + 1, r["observation_id"], r["loinc"], dtm(r["effective_time"]),
                       dtm(r["issued_time"])))
        value = ("" if r.get("value") is None
                 else ("%.6f" % float(r["value"])).rstrip("0").rstrip("."))
        ref = ""
        if r.get("ref_low") is not None and r.get("ref_high") is not None:
            ref = "%s-%s" % (r["ref_low"], r["ref_high"])
        segs.append("OBX|1|NM|%s^^LN||%s|%s|%s||||%s|||%s"
                    % (r["loinc"], value, r.get("unit") or "", ref, STATUS[r["status"]],
                       dtm(r["effective_time"])))
    return "\r".join(segs)


def split(a):
    groups, order = {}, []
    n_kafka = n_hl7 = 0
    with open(a.trial) as f, open(a.kafka, "w") as out:
        for line in f:
            r = json.loads(line)
            if r["site_id"] != a.site:
                out.write(line)
                n_kafka += 1
                continue
            key = (r["subject_id"], r.get("visit") or "", r["effective_time"])
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(r)
            n_hl7 += 1
    with open(a.hl7, "w") as out:
        for n, key in enumerate(order):
            recs = groups[key]
            out.write(json.dumps({"study": recs[0]["study_id"], "site": a.site,
                                  "subject": key[0], "observations": len(recs),
                                  "hl7": message(n, key[0], key[1], recs, a.facility)}) + "\n")
    print("demo: %d observations of %s as %d HL7 messages over MLLP, %d through vigil produce"
          % (n_hl7, a.site, len(order), n_kafka), file=sys.stderr)


def enrol(a):
    conn = psycopg2.connect(os.environ["VIGIL_PG_CONNINFO"])
    conn.autocommit = True
    cur = conn.cursor()
    seen = set()
    with open(a.hl7) as f:
        for line in f:
            m = json.loads(line)
            if m["subject"] in seen:
                continue
            seen.add(m["subject"])
            cur.execute("INSERT INTO hl7_enrolments (facility, patient_id, study_id, site_id,"
                        " subject_id) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (a.facility, mrn(m["subject"]), m["study"], m["site"], m["subject"]))
    print("demo: %d patients of %s enrolled for HL7 facility %s"
          % (len(seen), a.facility, a.facility), file=sys.stderr)


async def send_all(port, msgs, rate):
    from hl7.mllp import open_hl7_connection
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    start = time.monotonic()
    sent = obs = 0
    codes = {}
    for m in msgs:
        if rate > 0:
            due = start + obs / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
        writer.writemessage(m["hl7"])
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), 30)
        code = str(ack.segment("MSA")(1))
        codes[code] = codes.get(code, 0) + 1
        sent += 1
        obs += m["observations"]
    writer.close()
    return sent, obs, codes


def send(a):
    with open(a.hl7) as f:
        msgs = [json.loads(line) for line in f]
    sent, obs, codes = asyncio.run(send_all(a.port, msgs, a.rate))
    print("demo: MLLP: %d messages (%d observations) sent, ACKs %s"
          % (sent, obs, ", ".join("%s %d" % kv for kv in sorted(codes.items()))), file=sys.stderr)
    return 0 if codes.get("AA", 0) == sent else 1


ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["split", "enrol", "send"])
ap.add_argument("file")
ap.add_argument("--site", default="SITE-101")
ap.add_argument("--facility", default=FACILITY)
ap.add_argument("--kafka")
ap.add_argument("--hl7")
ap.add_argument("--port", type=int)
ap.add_argument("--rate", type=float, default=0)
args = ap.parse_args()
if args.what == "split":
    args.trial = args.file
elif args.hl7 is None:
    args.hl7 = args.file
sys.exit({"split": split, "enrol": enrol, "send": send}[args.what](args) or 0)
