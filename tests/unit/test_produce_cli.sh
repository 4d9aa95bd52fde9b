#!/usr/bin/env bash
# vigil produce / vigil import without a broker: the generator's
# --emit-ndjson is deterministic per seed, file input is mapped (NDJSON,
# CSV, FHIR) with FILE:LINE errors and the summary line and exit status the
# help promises, and bad usage exits 2.
set -u
v=${VIGIL_BINARY:?}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

"$v" produce --generate 500 --seed 5 --emit-ndjson >"$t/a" 2>/dev/null && ok || bad "generate exits 0"
"$v" produce --generate 500 --seed 5 --emit-ndjson >"$t/b" 2>/dev/null
"$v" produce --generate 500 --seed 6 --emit-ndjson >"$t/c" 2>/dev/null
cmp -s "$t/a" "$t/b" && ok || bad "same seed, same bytes"
cmp -s "$t/a" "$t/c" && bad "different seed, different records" || ok
[ "$(wc -l <"$t/a")" = 500 ] && ok || bad "500 records"
head -1 "$t/a" | grep -q '"observation_id":"OBS-5-0","study_id":"STUDY-001"' && ok || bad "first record: $(head -1 "$t/a")"

# The emitted NDJSON reads back as input, unchanged.
"$v" produce --emit-ndjson "$t/a" >"$t/a2" 2>"$t/err" && ok || bad "NDJSON re-read exits 0: $(cat "$t/err")"
cmp -s "$t/a" "$t/a2" && ok || bad "NDJSON round trip is byte-identical"
grep -q '^emitted 500, invalid 0$' "$t/err" && ok || bad "emit summary: $(cat "$t/err")"

# A bad line: reported with its line number, counted, exit 1.
{ head -2 "$t/a"; echo '{"observation_id":"x"}'; sed -n 3p "$t/a"; } >"$t/bad.ndjson"
"$v" produce --emit-ndjson "$t/bad.ndjson" >"$t/out" 2>"$t/err"
[ $? = 1 ] && ok || bad "invalid record: exit 1"
grep -qx "$t/bad.ndjson:3: missing field study_id" "$t/err" && ok || bad "FILE:LINE: reason ($(cat "$t/err"))"
tail -1 "$t/err" | grep -qx 'emitted 3, invalid 1' && ok || bad "summary counts the invalid record"

# CSV from stdin, format guessed from the header line.
printf 'observation_id,study_id,site_id,subject_id,loinc,value,unit,effective_time,status\n"A,1",S,X,P,2823-3,4.1,mmol/L,2025-01-06T08:00:00Z,final\n' \
  | "$v" produce --emit-ndjson >"$t/out" 2>"$t/err" && ok || bad "CSV from stdin: $(cat "$t/err")"
grep -q '"observation_id":"A,1"' "$t/out" && ok || bad "CSV quoted comma: $(cat "$t/out")"

# FHIR: one resource, study and site from identifiers with chosen systems.
cat >"$t/obs.json" <<'JSON'
{
  "resourceType": "Observation",
  "id": "f-1",
  "identifier": [
    {"system": "urn:example:study", "value": "ST-9"},
    {"system": "urn:example:site", "value": "SI-3"}
  ],
  "status": "corrected",
  "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
  "subject": {"reference": "Patient/PX-1"},
  "effectiveDateTime": "2025-02-01T10:00:00Z",
  "valueQuantity": {"value": 21, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"},
  "referenceRange": [{"low": {"value": 150}, "high": {"value": 400}}]
}
JSON
"$v" produce --emit-ndjson --fhir-study-system urn:example:study --fhir-site-system urn:example:site "$t/obs.json" >"$t/out" 2>"$t/err" \
  && ok || bad "FHIR resource: $(cat "$t/err")"
want='{"observation_id":"f-1","study_id":"ST-9","site_id":"SI-3","subject_id":"PX-1","loinc":"777-3","value":21,"unit":"10*3/uL","ref_low":150,"ref_high":400,"effective_time":"2025-02-01T10:00:00.000Z","issued_time":0,"status":"corrected","visit":null}'
[ "$(cat "$t/out")" = "$want" ] && ok || bad "FHIR mapping: $(cat "$t/out")"
"$v" produce --emit-ndjson "$t/obs.json" >/dev/null 2>"$t/err"
[ $? = 1 ] && ok || bad "FHIR without the study system: exit 1"
grep -q "^$t/obs.json: no study: " "$t/err" && ok || bad "FHIR error names the file: $(cat "$t/err")"

# Usage errors.
"$v" produce --generate 10 "$t/a" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--generate with files: exit 2"
"$v" produce --format xml >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--format xml: exit 2"
"$v" import >/dev/null 2>"$t/err"; [ $? = 2 ] && ok || bad "import without a file: exit 2"
grep -q '^vigil import: which file' "$t/err" && ok || bad "import names the problem"
"$v" import --format fhir x >/dev/null 2>&1; [ $? = 2 ] && ok || bad "import --format fhir: exit 2"
"$v" import --skip -1 x >/dev/null 2>&1; [ $? = 2 ] && ok || bad "import --skip -1: exit 2"
"$v" import -b 127.0.0.1:1 /nonexistent >/dev/null 2>"$t/err"; [ $? = 1 ] && ok || bad "import of a missing file: exit 1"
grep -q 'could not open /nonexistent' "$t/err" && ok || bad "missing file named: $(cat "$t/err")"
# A long flag without its argument is named as typed (it was printed as
# "-" and a control byte), a lettered one by its letter; --set works.
"$v" import x --skip >/dev/null 2>"$t/err"; [ $? = 2 ] && ok || bad "import --skip without N: exit 2"
head -1 "$t/err" | grep -qx "vigil import: unknown or incomplete option '--skip'" && ok || bad "import names --skip: $(head -1 "$t/err" | od -c | head -3)"
"$v" produce --subjects-per-site >/dev/null 2>"$t/err"; [ $? = 2 ] && ok || bad "produce --subjects-per-site without K: exit 2"
head -1 "$t/err" | grep -qx "vigil produce: unknown or incomplete option '--subjects-per-site'" && ok || bad "produce names --subjects-per-site: $(head -1 "$t/err")"
"$v" produce --generate >/dev/null 2>"$t/err"
head -1 "$t/err" | grep -qx "vigil produce: unknown or incomplete option '-n'" && ok || bad "produce names --generate by its letter: $(head -1 "$t/err")"
"$v" import --set max_in_flight=0 x >/dev/null 2>"$t/err"; [ $? = 1 ] && ok || bad "import --set reaches the settings: exit 1"
grep -q "^vigil import: max_in_flight must be" "$t/err" && ok || bad "import --set max_in_flight=0 refused: $(cat "$t/err")"
"$v" produce --set log_level=bogus -n 1 --emit-ndjson >/dev/null 2>"$t/err"; [ $? = 1 ] && ok || bad "produce --set reaches the settings: exit 1"
"$v" produce -s 3 -n 2 --emit-ndjson >"$t/s3" 2>/dev/null && "$v" produce --seed 3 -n 2 --emit-ndjson 2>/dev/null | cmp -s - "$t/s3" && ok || bad "produce -s is still --seed"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
