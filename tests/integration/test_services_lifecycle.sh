#!/usr/bin/env bash
# test_services_lifecycle: a second, independent `scripts/services up
# --partitions 2` next to the one the test run uses (VIGIL_STATE_DIR), so
# two runs must coexist. Checks every endpoint it exports really answers,
# then that `down` stops every recorded process and removes the folder, is
# safe to repeat, and that the first run was left alone.

# Functions here are called through check(), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -uo pipefail

src=${VIGIL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
services=$src/scripts/services
scale=${VIGIL_TIMEOUT_SCALE:-1}
py=/usr/bin/python3
passed=0
failed=0

ok() {
    passed=$((passed + 1))
}
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
check() { # check DESCRIPTION CMD...
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 && $passed -gt 0 ]]
    exit $?
}

if [[ -z ${VIGIL_STATE_DIR:-} ]]; then
    echo "FAIL: VIGIL_STATE_DIR is not set: run \`eval \"\$(scripts/services up)\"\` before the integration tests" >&2
    exit 1
fi
main_state=$VIGIL_STATE_DIR

# pid_gone PID: no such process, or only a zombie waiting for its reaper.
pid_gone() {
    [[ -r /proc/$1/stat ]] || return 0
    local st
    st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [[ -z $st || $st == Z || $st == X ]]
}

out=$(mktemp /tmp/vigil-lifecycle.XXXXXX)
s2_state=
cleanup() {
    # A failed check must not leave the second run's processes behind.
    if [[ -n $s2_state && -d $s2_state ]]; then
        "$services" down "$s2_state" >/dev/null 2>&1
    fi
    rm -f "$out"
}
trap cleanup EXIT

# ------------------------------------------------------------------ up
start=$(date +%s)
if ! timeout $((120 * scale)) "$services" up --partitions 2 >"$out"; then
    bad "second services up failed"
    finish
fi
echo "second services up in $(($(date +%s) - start)) s" >&2
# Read the second run's exports under other names: our environment keeps
# pointing at the main run.
eval "$(sed -n 's/^export VIGIL_/S2_/p' "$out")"
s2_state=${S2_STATE_DIR:-}
check "up printed VIGIL_STATE_DIR" test -n "$s2_state"
check "up printed all ten exports" test "$(grep -c '^export VIGIL_' "$out")" -eq 10
check "stdout carries only export lines" test "$(grep -vc '^export ' "$out")" -eq 0
check "state folder exists" test -d "$s2_state"
check "env file matches stdout" cmp -s "$out" "$s2_state/env"
check "second run has its own folder" test "$s2_state" != "$main_state"
check "second run has its own Kafka port" test "$S2_KAFKA_BOOTSTRAP" != "${VIGIL_KAFKA_BOOTSTRAP:-}"
check "partitions exported" test "$S2_PARTITIONS" = 2
check "status: all four running" test "$("$services" status "$s2_state" | grep -c ' running$')" -eq 4

# ---------------------------------------------------------- PostgreSQL
check "pgpass is mode 0600" test "$(stat -c %a "$s2_state/pg/pgpass")" = 600
check "psql as vigil with the conninfo" \
    test "$(psql -X -At -d "$S2_PG_CONNINFO" -c 'select current_user' 2>&1)" = vigil
# In PostgreSQL 15 only the database owner may create in schema public.
check "vigil owns database vigil" \
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$S2_PG_CONNINFO" \
    -c 'create table lifecycle_probe (x int); drop table lifecycle_probe'
pg_port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$S2_PG_CONNINFO")
no_password() {
    ! psql -X -w -At -d "host=127.0.0.1 port=$pg_port dbname=vigil user=vigil passfile=/dev/null" \
        -c 'select 1' >/dev/null 2>&1
}
check "a connection without the password is refused" no_password

# --------------------------------------------------------------- Kafka
desc=$(timeout $((60 * scale)) java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j.configuration="file:$src/.deps/kafka-libs/log4j.properties" \
    -Dkafka.logs.dir="$s2_state/kafka/logs" \
    -cp "$src/.deps/kafka-libs/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$S2_KAFKA_BOOTSTRAP" --describe 2>/dev/null)
for t in vigil.observations:2 vigil.observations.dlq:3 vigil.alerts:2; do
    check "topic ${t%%:*} has ${t##*:} partitions" \
        grep -qE "Topic: ${t%%:*}[[:space:]].*PartitionCount: ${t##*:}([[:space:]]|\$)" <<<"$desc"
done

# ---------------------------------------------------------------- SMTP
smtp_port=${S2_SMTP_URL##*:}
subject="lifecycle-$$-$RANDOM"
check "SMTP greeting, NOOP and one message accepted" "$py" - "$smtp_port" "$subject" <<'EOF'
import smtplib, sys
port, subject = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP()
code, _ = s.connect("127.0.0.1", port)
assert code == 220, code
assert s.noop()[0] == 250
refused = s.sendmail("safety@vigil.test", ["physician@site.test"],
                     "From: safety@vigil.test\r\nTo: physician@site.test\r\n"
                     "Subject: %s\r\n\r\nGrade 3 ALT increase.\r\n" % subject)
assert refused == {}, refused
s.quit()
EOF
deadline=$(($(date +%s) + 10 * scale))
until grep -qs "Subject: $subject" "$S2_SMTP_SPOOL"/*.eml || (($(date +%s) >= deadline)); do
    sleep 0.05
done
check "message stored as .eml" grep -qs "Subject: $subject" "$S2_SMTP_SPOOL"/*.eml
check "message indexed in index.jsonl" grep -qs '"rcpt_tos": \["physician@site.test"\]' "$S2_SMTP_SPOOL/index.jsonl"
check "no temporary files left in the spool" \
    test "$(find "$S2_SMTP_SPOOL" -name '*.tmp.*' | wc -l)" -eq 0

# ----------------------------------------------------------------- SMS
password=$(cat "$S2_SMS_PASSWORD_FILE")
resp=$(curl -sS --max-time 10 -u "$S2_SMS_USER:$password" -w '\n%{http_code}' \
    --data-urlencode 'To=+15550100' --data-urlencode 'From=+15550199' \
    --data-urlencode 'Body=vigil: grade 3 ALT, study S1 subject ****42' "$S2_SMS_URL")
code=${resp##*$'\n'}
body=${resp%$'\n'*}
check "SMS POST with auth answers 201" test "$code" = 201
sid=$(sed -n 's/.*"sid": *"\(SM[0-9a-f]\{32\}\)".*/\1/p' <<<"$body")
check "SMS answer carries an SM<32 hex> sid" test -n "$sid"
check "SMS request logged with its sid" grep -qs "\"sid\": \"$sid\"" "$S2_SMS_LOG"
check "SMS with a wrong password answers 401" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -u "$S2_SMS_USER:wrong" \
        -d To=1 -d From=2 -d Body=x "$S2_SMS_URL")" = 401

# ---------------------------------------------------------------- down
pids=()
for f in "$s2_state"/pids/*.pid; do
    [[ -f $f ]] && pids+=("$(cat "$f")")
done
check "four pids recorded" test "${#pids[@]}" -eq 4
start=$(date +%s)
check "down succeeds" "$services" down "$s2_state"
echo "second services down in $(($(date +%s) - start)) s" >&2
for p in "${pids[@]}"; do
    check "pid $p is gone after down" pid_gone "$p"
done
check "state folder removed" test ! -e "$s2_state"
check "down twice is harmless" "$services" down "$s2_state"

# The guard: a folder without the marker is never removed.
decoy=$(mktemp -d /tmp/vigil-decoy.XXXXXX)
check "down refuses a folder without the marker" bash -c "! '$services' down '$decoy' 2>/dev/null"
check "the refused folder is still there" test -d "$decoy"
rmdir "$decoy"

check "the main services are still running" "$services" status "$main_state" >/dev/null

finish
