#!/usr/bin/env bash
# `vigil migrate` with no server: --help documents the options and the
# environment, usage errors exit 2, an unreachable server exits 1 with a
# one-line "could not connect" that never shows the password.
set -u
v=${VIGIL_BINARY:?}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
run() { # run WANT_STATUS ARGS...
  local want=$1; shift
  "$v" migrate "$@" >"$out" 2>"$err"; local got=$?
  [ "$got" = "$want" ] && ok || bad "vigil migrate $* exited $got, want $want"
}

run 0 --help
for word in '^usage: vigil migrate' '--conninfo' '--status' 'VIGIL_PG_CONNINFO' 'PGHOST'; do
  grep -q -e "$word" "$out" && ok || bad "--help mentions $word"
done
run 2 --no-such-flag
head -1 "$err" | grep -q "^vigil migrate: .*--no-such-flag" && ok || bad "bad flag named"
run 2 extra-argument
head -1 "$err" | grep -q "^vigil migrate: unexpected argument 'extra-argument'" && ok || bad "extra argument named"
run 2 --conninfo
grep -q "^usage: vigil migrate" "$err" && ok || bad "missing --conninfo value shows usage"

# Nothing listens on port 1: refused at once.
run 1 --conninfo "host=127.0.0.1 port=1 user=vigil password=hunter2 connect_timeout=3"
grep -q "^vigil migrate: could not connect to PostgreSQL: " "$err" && ok || bad "connect error: $(cat "$err")"
[ "$(wc -l <"$err")" = 1 ] && ok || bad "connect error is one line"
grep -q hunter2 "$err" "$out" && bad "password printed" || ok
VIGIL_PG_CONNINFO="host=127.0.0.1 port=1 password=hunter2 connect_timeout=3" run 1 --status
grep -q "could not connect to PostgreSQL" "$err" && ok || bad "VIGIL_PG_CONNINFO used by --status"
grep -q hunter2 "$err" "$out" && bad "password printed (status)" || ok

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
