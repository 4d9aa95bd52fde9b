#!/usr/bin/python3
"""Writes the seed corpus of fuzz_codec into tests/fuzz/corpus/codec/.

usage: make_codec_corpus.py CODEC_TOOL SOURCE_DIR
(CODEC_TOOL is tests/codec_tool of a build.) Seeds are small: valid
messages of each framing and writer schema, some broken ones, a schema.
"""
import json
import os
import re
import struct
import subprocess
import sys

TOOL, SRC = sys.argv[1], sys.argv[2]
OUT = os.path.join(SRC, "tests/fuzz/corpus/codec")
os.makedirs(OUT, exist_ok=True)


def zz(v):
    v = (v << 1) ^ (v >> 63)
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def s(text):
    b = text.encode()
    return zz(len(b)) + b


def canon_fp(path):
    out = subprocess.run([TOOL, "canon", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split("\n")[1], 16)


def encode(kind, framing, sid, rec):
    out = subprocess.run([TOOL, "encode", kind, framing, str(sid)], input=json.dumps(rec) + "\n",
                         capture_output=True, text=True, check=True).stdout.strip()
    return bytes.fromhex(out)


OBS = dict(observation_id="obs-1", study_id="ONC", site_id="S1", subject_id="SU-1",
           loinc="2823-3", value=6.3, unit="mmol/L", ref_low=3.5, ref_high=None,
           effective_time=1764115200123, issued_time=0, status="final", visit="C1D1")
ALERT = dict(alert_id="al-1", kind="signal", rule_id="k", rule_version=1, severity="critical",
             ctcae_grade=3, study_id="ONC", site_id="S1", subject_id="SU-1",
             evidence=[dict(observation_id="obs-1", loinc="2823-3", value=6.3, unit="mmol/L",
                            effective_time=1)],
             message="K 6.3", observed_time=1, detected_time=2, retracts_alert_id=None)

seeds = {}
seeds["obs_single"] = encode("observation", "single", 0, OBS)
seeds["obs_confluent"] = encode("observation", "confluent", 1, OBS)
seeds["alert_single"] = encode("alert", "single", 0, ALERT)
seeds["alert_confluent"] = encode("alert", "confluent", 2, ALERT)

body_v1 = (s("o") + s("S") + s("T") + s("U") + s("L") + zz(1) + struct.pack("<d", 1.5) + s("u") +
           zz(0) + zz(0) + zz(7) + zz(3))
v1_fp = canon_fp(os.path.join(SRC, "schemas/history/observation.v1.avsc"))
seeds["v1_single"] = b"\xc3\x01" + struct.pack("<Q", v1_fp) + body_v1
seeds["v1_confluent"] = b"\x00" + struct.pack(">I", 3) + body_v1

# The fuzz target's "hostile" writer (id 4): recursive tree, map, fixed.
src = open(os.path.join(SRC, "tests/fuzz/fuzz_codec.c")).read()
hostile = re.search(r'hostile\[\] =\n(.*?);\n', src, re.S).group(1)
hostile = "".join(json.loads(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"', hostile))
tmp = "/tmp/hostile-%d.avsc" % os.getpid()
open(tmp, "w").write(hostile)
hostile_fp = canon_fp(tmp)
os.unlink(tmp)
leaf = zz(0) + zz(0)                            # Node{kids: [], tag: null}
tree = zz(1) + zz(0) + zz(1) + b"ab" + zz(0)    # kids: [Node{[], fixed "ab"}]
tree += zz(2) + zz(1) + s("k") + leaf + zz(0)   # tag: map {"k": leaf}
body_h = (tree + zz(2) + s("h-1") + s("S") + s("T") + s("U") + s("L") + zz(2) +
          struct.pack("<f", 1.5) + s("u") + struct.pack("<f", 2.0) + zz(5) + b"\x01" + zz(1))
seeds["hostile_confluent"] = b"\x00" + struct.pack(">I", 4) + body_h
seeds["hostile_single"] = b"\xc3\x01" + struct.pack("<Q", hostile_fp) + body_h
seeds["schema_hostile"] = hostile.encode()

# Broken ones.
seeds["broken_truncated"] = seeds["obs_single"][:25]
seeds["broken_marker"] = b"\xc3\x02" + seeds["obs_single"][2:]
seeds["broken_unknown_fp"] = b"\xc3\x01" + b"\x00" * 8 + body_v1
seeds["broken_unknown_id"] = b"\x00\x00\x00\x01\x00" + body_v1
seeds["broken_huge_length"] = seeds["obs_single"][:10] + zz(1 << 40) + b"abc"
seeds["broken_huge_array"] = seeds["alert_single"][:40] + zz(1 << 50)

for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), OUT))
