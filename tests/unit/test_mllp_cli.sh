#!/usr/bin/env bash
# vigil mllp's command line with no service running: its settings in
# --help, and settings it must refuse before listening, each with a message
# that names the problem (exit 1).
set -u
v=${VIGIL_BINARY:?}
src=${VIGIL_SOURCE_DIR:?}
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# refuses WANT-REGEX ARGS...: exit 1 and WANT on stderr.
refuses() {
  local want=$1; shift
  timeout 30 "$v" mllp --listen 127.0.0.1:0 --http "" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" = 1 ] && grep -Eq -- "$want" "$tmp/err"; then ok
  else bad "mllp $*: exit $rc, want 1 with /$want/: $(head -c 400 "$tmp/err")"; fi
}

"$v" mllp --help >"$tmp/help" 2>&1 || bad "mllp --help failed"
for s in VIGIL_MLLP_LISTEN VIGIL_MLLP_HTTP_ADDR VIGIL_MLLP_FACILITIES VIGIL_HL7_DLQ_TOPIC \
         VIGIL_MLLP_TLS_CERT VIGIL_MLLP_TLS_KEY VIGIL_MLLP_TLS_CLIENT_CA VIGIL_MLLP_MAX_CONNECTIONS \
         VIGIL_MLLP_IDLE_TIMEOUT VIGIL_MLLP_ACK_TIMEOUT VIGIL_MLLP_MAX_MESSAGE_BYTES \
         VIGIL_MLLP_PROCESSING_IDS VIGIL_MLLP_ENROL_REFRESH VIGIL_PG_CONNINFO; do
  grep -q "$s" "$tmp/help" && ok || bad "mllp --help does not list $s"
done

refuses 'tls_cert and tls_key must be set together' -s tls_cert=/x.pem
refuses "processing_ids must be letters of P, T and D, not 'X'" -s processing_ids=X
refuses 'ack_timeout' --ack-timeout 5
refuses 'could not open /nonexistent/facilities.yaml' -f /nonexistent/facilities.yaml
printf 'facilities:\n  A:\n    time_zone: Not/AZone\n' >"$tmp/bad.yaml"
refuses "$tmp/bad.yaml:3: unknown time zone 'Not/AZone'" -f "$tmp/bad.yaml"
refuses 'could not load TLS certificate /nonexistent.pem' \
  -s tls_cert=/nonexistent.pem -s tls_key=/nonexistent.key
refuses 'could not set Kafka property no.such.property' -X no.such.property=1
refuses "listen address 'nowhere' is not HOST:PORT" -s listen=nowhere
# The facility mapping of the tests loads (its refusal above is not a
# blanket one): the listener gets past it to the next setting it refuses.
refuses 'could not set Kafka property' -f "$src/tests/hl7/facilities.yaml" -X no.such.property=1
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
