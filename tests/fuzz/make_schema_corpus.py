#!/usr/bin/python3
"""Writes the seed corpus of fuzz_schema into tests/fuzz/corpus/schema/.
usage: make_schema_corpus.py SOURCE_DIR
Each seed is SCHEMA-JSON NUL BODY, the body written by python3-avro with
that writer schema (or by hand where python-avro would not write it)."""
import copy, io, json, os, sys
import avro.schema, avro.io
import datetime

def ts(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)

SRC = sys.argv[1]
OUT = os.path.join(SRC, "tests/fuzz/corpus/schema")
os.makedirs(OUT, exist_ok=True)

def load(p):
    return json.load(open(os.path.join(SRC, p)))

def body(schema, datum):
    s = avro.schema.parse(json.dumps(schema))
    b = io.BytesIO()
    avro.io.DatumWriter(s).write(datum, avro.io.BinaryEncoder(b))
    return b.getvalue()

def nodoc(x):
    # Variations drop "doc" so the fuzzer mutates structure, not prose.
    if isinstance(x, dict):
        return {k: nodoc(v) for k, v in x.items() if k != "doc"}
    if isinstance(x, list):
        return [nodoc(v) for v in x]
    return x

def compact(schema):
    return json.dumps(nodoc(schema), separators=(",", ":")).encode()

OBS_S, ALERT_S, V1_S = load("schemas/observation.avsc"), load("schemas/alert.avsc"), load("schemas/history/observation.v1.avsc")
OBS = dict(observation_id="obs-1", study_id="ONC", site_id="S1", subject_id="SU-1", loinc="2823-3",
           value=6.3, unit="mmol/L", ref_low=3.5, ref_high=None, effective_time=ts(1764115200123),
           issued_time=ts(0), status="final", visit="C1D1")
EV = dict(observation_id="obs-1", loinc="2823-3", value=6.3, unit="mmol/L", effective_time=ts(1))
ALERT = dict(alert_id="al-1", kind="signal", rule_id="k", rule_version=1, severity="critical",
             ctcae_grade=3, study_id="ONC", site_id="S1", subject_id="SU-1", evidence=[EV, EV],
             message="K 6.3", observed_time=ts(1), detected_time=ts(2), retracts_alert_id=None)
seeds = {}

def seed(name, schema, datum=None, raw=None):
    text = compact(schema) if not isinstance(schema, bytes) else schema
    if raw is not None:
        seeds[name] = text + b"\0" + raw
    elif datum is not None:
        seeds[name] = text + b"\0" + body(schema, datum)
    else:
        seeds[name] = text

def fields(schema):
    return {f["name"]: f for f in schema["fields"]}

# The real schemas, as written (doc strings and all), with valid bodies.
seed("obs_current", json.dumps(OBS_S).encode(), raw=body(OBS_S, OBS))
seed("alert_current", json.dumps(ALERT_S).encode(), raw=body(ALERT_S, ALERT))
v1 = {k: v for k, v in OBS.items() if k not in ("issued_time", "visit")}
seed("obs_v1", json.dumps(V1_S).encode(), raw=body(V1_S, v1))
seed("obs_v1_nobody", json.dumps(V1_S).encode())

# Added writer fields (skipped by the reader): primitives, map, array,
# nested record, fixed, in the middle and at the end.
s = copy.deepcopy(OBS_S)
s["fields"].insert(3, {"name": "lab", "type": "string", "default": ""})
s["fields"].append({"name": "extras", "type": {"type": "map", "values": ["null", "long", "string"]}})
s["fields"].append({"name": "tags", "type": {"type": "array", "items": {"type": "fixed", "name": "Tag", "size": 4}}})
s["fields"].append({"name": "device", "type": {"type": "record", "name": "Device", "fields": [
    {"name": "serial", "type": "bytes"}, {"name": "cal", "type": ["null", "double"]},
    {"name": "ok", "type": "boolean"}, {"name": "f", "type": "float"}]}})
d = dict(OBS, lab="LAB1", extras={"a": 1, "b": "x", "c": None}, tags=[b"abcd", b"efgh"],
         device=dict(serial=b"\x00\xff", cal=1.25, ok=True, f=0.5))
seed("obs_added_fields", s, d)

# Removed fields the reader has defaults for, fields reordered.
s = copy.deepcopy(OBS_S)
s["fields"] = [f for f in s["fields"] if f["name"] not in ("issued_time", "visit")]
s["fields"].reverse()
seed("obs_removed_reordered", s, v1)

# Removed field without a reader default: does not resolve.
s = copy.deepcopy(OBS_S)
s["fields"] = [f for f in s["fields"] if f["name"] != "unit"]
seed("obs_missing_required", s, {k: v for k, v in OBS.items() if k != "unit"})

# Union and promotion changes.
s = copy.deepcopy(OBS_S)
f = fields(s)
f["value"]["type"] = ["null", "int", "long", "float", "double", "string"]
f["ref_low"]["type"] = "float"
f["ref_high"]["type"] = ["long", "null"]
f["observation_id"]["type"] = ["bytes", "null"]
f["visit"]["type"] = "string"
f["effective_time"]["type"] = "int"
seed("obs_unions_promotions", s, dict(OBS, value=7, ref_low=3.5, ref_high=5, observation_id=b"obs-1",
                                      visit="C2D1", effective_time=12345))
seed("obs_value_as_string", s, dict(OBS, value="high", ref_low=3.5, ref_high=None,
                                     observation_id=b"o", visit="", effective_time=0))

# Enum symbols: reordered, extra ones, a reader-unknown one used.
s = copy.deepcopy(OBS_S)
st = fields(s)["status"]["type"]
st["symbols"] = ["preliminary", "entered_in_error", "final", "amended", "registered"]
seed("obs_enum_reordered", s, dict(OBS, status="entered_in_error"))
seed("obs_enum_unknown_used", s, dict(OBS, status="preliminary"))
s = copy.deepcopy(ALERT_S)
k = fields(s)["kind"]["type"]
k["symbols"] = ["retraction", "signal", "reminder"]
k["default"] = "signal"
fields(s)["severity"]["type"]["symbols"] = ["critical", "warning", "info", "debug"]
seed("alert_enums", s, dict(ALERT, kind="retraction", severity="info", retracts_alert_id="al-0"))

# Nested records: evidence items with extra nested record, wrapped in a
# union; the whole writer as a union holding the record.
s = copy.deepcopy(ALERT_S)
ev = fields(s)["evidence"]["type"]["items"]
ev["fields"].insert(1, {"name": "specimen", "type": {"type": "record", "name": "Specimen", "fields": [
    {"name": "kind", "type": "string"},
    {"name": "parent", "type": ["null", "Specimen"]}]}})
fields(s)["evidence"]["type"] = ["null", fields(s)["evidence"]["type"]]
spec = dict(kind="serum", parent=dict(kind="blood", parent=None))
e2 = dict(EV, specimen=spec)
seed("alert_nested_evidence", s, dict(ALERT, evidence=[e2, e2, e2]))
seed("alert_five_evidence", ALERT_S, dict(ALERT, evidence=[EV] * 5))
seed("obs_root_union", ["null", OBS_S], raw=b"\x02" + body(OBS_S, OBS))

# A recursive writer-only field (linked list) and a deep tree.
s = copy.deepcopy(OBS_S)
s["fields"].insert(0, {"name": "history", "type": ["null", {"type": "record", "name": "Prev", "fields": [
    {"name": "v", "type": "double"}, {"name": "next", "type": ["null", "Prev"]}]}]})
chain = None
for i in range(20):
    chain = dict(v=float(i), next=chain)
seed("obs_recursive_list", s, dict(OBS, history=chain))

# Namespaces: a type in the null namespace inside a namespaced record,
# a dotted name, a namespace attribute, and the python3-avro 1.11 canonical
# form case (a primitive with a logicalType).
s = copy.deepcopy(OBS_S)
s["fields"].append({"name": "extra", "type": {"type": "enum", "name": "E", "namespace": "", "symbols": ["A", "B"]}})
s["fields"].append({"name": "extra2", "type": {"type": "fixed", "name": "other.F", "size": 2}})
s["fields"].append({"name": "extra3", "type": ["null", "E", "other.F"]})
seed("obs_namespaces", s, dict(OBS, extra="B", extra2=b"xy", extra3=b"zz"))

# Hand-made broken bodies with a good schema.
good = body(OBS_S, OBS)
seed("obs_truncated_body", json.dumps(OBS_S).encode(), raw=good[:17])
seed("obs_trailing_bytes", json.dumps(OBS_S).encode(), raw=good + b"\x00\x01")
seed("obs_huge_length", json.dumps(OBS_S).encode(), raw=b"\xfe\xff\xff\xff\xff\x01abc")
head = copy.deepcopy(ALERT_S)
head["fields"] = head["fields"][:9]  # the fields before evidence
pre = body(head, {k: ALERT[k] for k in [f["name"] for f in head["fields"]]})
seed("alert_huge_count", compact(ALERT_S), raw=pre + b"\xfe\xff\xff\xff\xff\xff\xff\x01")
seed("alert_negative_block", compact(ALERT_S), raw=body(ALERT_S, ALERT).replace(
    pre + b"\x04", pre + b"\x03\x7e", 1))

# Schema-only shapes and refusals.
for name, text in [
        ("prim_string", b'"string"'),
        ("prim_object", b'{"type":"long","logicalType":"timestamp-millis"}'),
        ("fixed", b'{"type":"fixed","name":"md5","namespace":"a.b","size":16}'),
        ("error_type", b'{"type":"error","name":"Oops","fields":[{"name":"why","type":"string"}]}'),
        ("enum_default", b'{"type":"enum","name":"E","symbols":["A","B"],"default":"B"}'),
        ("map_array", b'{"type":"map","values":{"type":"array","items":["null","int"]}}'),
        ("bad_dup_field", b'{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}'),
        ("bad_union_in_union", b'[["null"],"int"]'),
        ("bad_unknown_ref", b'{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}'),
        ("bad_json", b'{"type":"record","name":"R","fields":[{"name":"a","type":'),
        ("bad_name", b'{"type":"record","name":"1R","fields":[]}'),
        ("empty_record", b'{"type":"record","name":"Observation","fields":[]}'),
        ("empty_union", b'[]'),
]:
    seed("schema_" + name, text)

for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(data)
print("wrote %d seeds to %s" % (len(seeds), OUT))
