#!/usr/bin/python3
"""Interop of vigil's Avro codec with an independent implementation.

python-avro (Debian's python3-avro) writes observations and alerts; this
script frames them itself (single-object: C3 01 + CRC-64-AVRO fingerprint of
the Parsing Canonical Form, both computed here from the spec, not by vigil;
Confluent: 00 + big-endian schema id) and checks that vigil's decoder
(codec_tool) gets the same field values. Then vigil's encoder writes the
same records and python-avro must read them back equal.

For the Confluent framing a tiny schema-registry double (http.server,
GET /schemas/ids/{id}) serves the schemas: a real Confluent Schema Registry
is not available here (its jars are not on Maven Central). The double also
checks that the codec caches by id, that an id the registry does not know is
"unknown_schema" and that an unreachable registry is "transient".

usage: codec_interop.py CODEC_TOOL SOURCE_DIR
"""
import datetime
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import avro.io
import avro.schema

TOOL, SRC = sys.argv[1], sys.argv[2]
failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    if cond:
        passes += 1
    else:
        failures += 1
        print("FAIL:", what)


# ---- Parsing Canonical Form and CRC-64-AVRO, written from the spec ----

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def canonical(schema, ns="", seen=None):
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return json.dumps(schema)
        full = schema if "." in schema or not ns else ns + "." + schema
        return json.dumps(full)
    if isinstance(schema, list):
        return "[" + ",".join(canonical(s, ns, seen) for s in schema) + "]"
    t = schema["type"]
    if t in PRIMITIVES:
        return json.dumps(t)
    if t in ("array", "map"):
        key = "items" if t == "array" else "values"
        return '{"type":"%s","%s":%s}' % (t, key, canonical(schema[key], ns, seen))
    name = schema["name"]
    if "." in name:
        full = name
    elif schema.get("namespace"):
        full = schema["namespace"] + "." + name
    else:
        full = ns + "." + name if ns else name
    if full in seen:
        return json.dumps(full)
    seen.add(full)
    inner = full.rsplit(".", 1)[0] if "." in full else ""
    out = '{"name":%s,"type":"%s"' % (json.dumps(full), "record" if t == "error" else t)
    if t in ("record", "error"):
        out += ',"fields":[' + ",".join(
            '{"name":%s,"type":%s}' % (json.dumps(f["name"]), canonical(f["type"], inner, seen))
            for f in schema["fields"]) + "]"
    elif t == "enum":
        out += ',"symbols":[' + ",".join(json.dumps(s) for s in schema["symbols"]) + "]"
    elif t == "fixed":
        out += ',"size":%d' % int(schema["size"])
    return out + "}"


EMPTY = 0xC15D213AA4D7A795
TABLE = []
for i in range(256):
    fp = i
    for _ in range(8):
        fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
    TABLE.append(fp)


def rabin(data):
    fp = EMPTY
    for b in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ b) & 0xFF]
    return fp


def load(rel):
    with open(os.path.join(SRC, rel)) as f:
        text = f.read()
    return text, avro.schema.parse(text), rabin(canonical(json.loads(text)).encode())


OBS_TEXT, OBS, OBS_FP = load("schemas/observation.avsc")
ALERT_TEXT, ALERT, ALERT_FP = load("schemas/alert.avsc")
V1_TEXT, V1, V1_FP = load("schemas/history/observation.v1.avsc")

check(rabin(b"") == EMPTY, "empty fingerprint")
check(rabin(b'"int"') == 8247732601305521295, "fingerprint of \"int\" (Avro schema-tests)")

# Our canonical form agrees with vigil's, for every schema.
for rel in ("schemas/observation.avsc", "schemas/alert.avsc", "schemas/history/observation.v1.avsc"):
    out = subprocess.run([TOOL, "canon", os.path.join(SRC, rel)], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    with open(os.path.join(SRC, rel)) as f:
        mine = canonical(json.load(f))
    check(out[0] == mine, "canonical form of %s: vigil %s, python %s" % (rel, out[0][:60], mine[:60]))
    check(int(out[1], 16) == rabin(mine.encode()), "fingerprint of %s" % rel)
# ... and with python-avro's own, on a schema without logical types (python-avro
# 1.11.1 keeps {"type":"long"} for a primitive with a logicalType, against the spec).
TRICKY = {"type": "record", "name": "R", "namespace": "a.b", "doc": "d", "fields": [
    {"name": "f", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}, "default": "A"},
    {"name": "g", "type": "E"},
    {"name": "h", "type": {"type": "fixed", "name": "c.F", "size": 16}},
    {"name": "i", "type": ["null", {"type": "map", "values": {"type": "array", "items": "a.b.R"}}]}]}
check(canonical(TRICKY) == avro.schema.parse(json.dumps(TRICKY)).canonical_form,
      "canonical form agrees with python-avro's")
with open("/tmp/vigil-codec-interop-%d.avsc" % os.getpid(), "w") as f:
    json.dump(TRICKY, f)
out = subprocess.run([TOOL, "canon", f.name], capture_output=True, text=True, check=True).stdout
os.unlink(f.name)
check(out.split("\n")[0] == canonical(TRICKY), "vigil canonical form of a tricky schema")

# ---- data ----

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ms_to_dt(ms):
    return EPOCH + datetime.timedelta(milliseconds=ms)


def dt_to_ms(dt):
    return (dt - EPOCH) // datetime.timedelta(milliseconds=1)


OBSERVATIONS = [
    dict(observation_id="obs-1", study_id="ONC-301", site_id="S01", subject_id="SUBJ-0001",
         loinc="2823-3", value=6.3, unit="mmol/L", ref_low=3.5, ref_high=5.1,
         effective_time=1764115200123, issued_time=1764118800456, status="final", visit="C1D1"),
    dict(observation_id="obs-2", study_id="ONC-301", site_id="S02", subject_id="SUBJ-0002",
         loinc="1742-6", value=None, unit="", ref_low=None, ref_high=None,
         effective_time=-86400000, issued_time=0, status="entered_in_error", visit=None),
    dict(observation_id="x" * 64, study_id="étude-ü", site_id="S-日本", subject_id="s",
         loinc="1975-2", value=-0.1e-300, unit="u" * 32, ref_low=1e300, ref_high=None,
         effective_time=253402300799999, issued_time=1, status="corrected", visit="v" * 64),
    dict(observation_id="obs-4", study_id="A", site_id="B", subject_id="C", loinc="718-7",
         value=13.25, unit="g/dL", ref_low=None, ref_high=17.5, effective_time=1, issued_time=2,
         status="amended", visit=None),
]

EV = [dict(observation_id="obs-alt", loinc="1742-6", value=190.5, unit="U/L",
           effective_time=1764115200000),
      dict(observation_id="obs-bili", loinc="1975-2", value=45.125, unit="umol/L",
           effective_time=1764115200001)]
ALERTS = [
    dict(alert_id="al-1", kind="signal", rule_id="hys-law", rule_version=3, severity="critical",
         ctcae_grade=3, study_id="ONC-301", site_id="S01", subject_id="SUBJ-0001", evidence=EV,
         message="Hy's law: ALT > 3xULN and bilirubin > 2xULN", observed_time=1764115200001,
         detected_time=1764115260000, retracts_alert_id=None),
    dict(alert_id="al-2", kind="retraction", rule_id="k-high", rule_version=1, severity="info",
         ctcae_grade=None, study_id="ONC-301", site_id="S01", subject_id="SUBJ-0001", evidence=[],
         message="", observed_time=0, detected_time=5, retracts_alert_id="al-1"),
    dict(alert_id="al-3", kind="signal", rule_id="r" * 64, rule_version=-7, severity="warning",
         ctcae_grade=5, study_id="S", site_id="T", subject_id="U", evidence=EV * 2,
         message="m" * 512, observed_time=1, detected_time=2, retracts_alert_id=None),
]

TIME_FIELDS = ("effective_time", "issued_time", "observed_time", "detected_time")


def to_avro(rec, schema):
    """Our dicts (times in ms) -> what python-avro's writer wants."""
    out = {}
    names = {f.name for f in schema.fields}
    for k, v in rec.items():
        if k not in names:
            continue
        if k in TIME_FIELDS:
            v = ms_to_dt(v)
        if k == "evidence":
            v = [dict(e, effective_time=ms_to_dt(e["effective_time"])) for e in v]
        out[k] = v
    return out


def from_avro(rec):
    out = {}
    for k, v in rec.items():
        if isinstance(v, datetime.datetime):
            v = dt_to_ms(v)
        if k == "evidence":
            v = [from_avro(e) for e in v]
        out[k] = v
    return out


def avro_body(rec, schema):
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(to_avro(rec, schema), avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def avro_read(body, writer, reader):
    return from_avro(avro.io.DatumReader(writer, reader).read(
        avro.io.BinaryDecoder(io.BytesIO(body))))


def single(fp, body):
    return b"\xc3\x01" + struct.pack("<Q", fp) + body


def confluent(schema_id, body):
    return b"\x00" + struct.pack(">I", schema_id) + body


# ---- the registry double ----

REGISTRY = {1: OBS_TEXT, 2: ALERT_TEXT, 3: V1_TEXT}
hits = {}


class Registry(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.strip("/").split("/")
        sid = int(parts[2]) if len(parts) == 3 and parts[:2] == ["schemas", "ids"] else -1
        hits[sid] = hits.get(sid, 0) + 1
        if sid in REGISTRY:
            body, code = json.dumps({"schema": REGISTRY[sid]}), 200
        else:
            body, code = json.dumps({"error_code": 40403, "message": "Schema not found"}), 404
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
threading.Thread(target=server.serve_forever, daemon=True).start()
REG_URL = "http://127.0.0.1:%d" % server.server_address[1]


def run_decode(kind, messages, registry=REG_URL, extra=()):
    args = [TOOL, "decode", kind] + ([registry] if registry else []) + list(extra)
    args += ["--writer", os.path.join(SRC, "schemas/history/observation.v1.avsc")]
    out = subprocess.run(args, input="".join(m.hex() + "\n" for m in messages),
                         capture_output=True, text=True, timeout=60)
    sys.stderr.write(out.stderr)
    check(out.returncode == 0, "codec_tool decode exit status %d" % out.returncode)
    return [json.loads(line) for line in out.stdout.splitlines()]


def same(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# (a) python-avro writes, vigil reads.
msgs, want = [], []
for o in OBSERVATIONS:
    body = avro_body(o, OBS)
    msgs += [single(OBS_FP, body), confluent(1, body)]
    want += [o, o]
    v1 = dict(o, issued_time=0, visit=None)  # what the current reader makes of v1
    body1 = avro_body(o, V1)
    msgs += [single(V1_FP, body1), confluent(3, body1)]
    want += [v1, v1]
got = run_decode("observation", msgs)
check(len(got) == len(want), "one answer per observation message")
for i, (g, w) in enumerate(zip(got, want)):
    check(same(g, w), "observation message %d: vigil %s != python %s" % (i, g, w))

msgs, want = [], []
for a in ALERTS:
    body = avro_body(a, ALERT)
    msgs += [single(ALERT_FP, body), confluent(2, body)]
    want += [a, a]
got = run_decode("alert", msgs)
check(len(got) == len(want), "one answer per alert message")
for i, (g, w) in enumerate(zip(got, want)):
    check(same(g, w), "alert message %d: vigil %s != python %s" % (i, g, w))
check(hits.get(1) == 1 and hits.get(2) == 1 and hits.get(3) == 1,
      "each schema id fetched once, then cached: %s" % hits)

# Error classes: unknown id (registry 404), unknown fingerprint, registry down.
body = avro_body(OBSERVATIONS[0], OBS)
got = run_decode("observation", [confluent(999, body), single(OBS_FP ^ 1, body)])
check(got[0].get("error") == "unknown_schema", "id 999 -> unknown_schema: %s" % got[0])
check(hits.get(999) == 1, "the registry was asked for id 999")
check(got[1].get("error") == "unknown_schema", "bad fingerprint -> unknown_schema: %s" % got[1])
with socket.socket() as s:  # a port with nobody listening
    s.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % s.getsockname()[1]
got = run_decode("observation", [confluent(1, body)], registry=dead)
check(got[0].get("error") == "transient", "registry unreachable -> transient: %s" % got[0])

# A cache of one schema, ids alternating, 4 threads decoding at once: every
# thread gets the same answers while entries are evicted under it, and the
# registry is asked again after an eviction.
hits.clear()
body1 = avro_body(OBSERVATIONS[0], OBS)
body3 = avro_body(OBSERVATIONS[0], V1)
mix = [confluent(1, body1), confluent(3, body3)] * 4
got = run_decode("observation", mix, extra=["--cache", "1", "--threads", "4"])
check(all("error" not in g for g in got), "decodes with a cache of one: %s" % got[:2])
check(hits.get(1, 0) >= 4 and hits.get(3, 0) >= 4, "evicted ids are fetched again: %s" % hits)

# (b) vigil writes, python-avro reads.
for kind, recs, schema, fp, sid in (("observation", OBSERVATIONS, OBS, OBS_FP, 1),
                                    ("alert", ALERTS, ALERT, ALERT_FP, 2)):
    for framing in ("single", "confluent"):
        out = subprocess.run([TOOL, "encode", kind, framing, str(sid)],
                             input="".join(json.dumps(r) + "\n" for r in recs),
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
        check(len(out) == len(recs), "one encoding per %s" % kind)
        for rec, line in zip(recs, out):
            if line.startswith("error"):
                check(False, "vigil could not encode %s: %s" % (rec, line))
                continue
            data = bytes.fromhex(line)
            if framing == "single":
                check(data[:2] == b"\xc3\x01", "single-object marker")
                check(struct.unpack("<Q", data[2:10])[0] == fp, "fingerprint in the header")
                body = data[10:]
            else:
                check(data[0] == 0 and struct.unpack(">I", data[1:5])[0] == sid, "Confluent header")
                body = data[5:]
            back = avro_read(body, schema, schema)
            check(same(back, rec), "%s %s: python read %s, wrote %s" % (kind, framing, back, rec))
            # An old consumer (v1 reader) can read what vigil writes now.
            if kind == "observation":
                old = avro_read(body, schema, V1)
                check(old["observation_id"] == rec["observation_id"] and "visit" not in old,
                      "v1 reader reads vigil's v2 observation")

server.shutdown()
print("%d passed, %d failed" % (passes, failures))
sys.exit(1 if failures else 0)
