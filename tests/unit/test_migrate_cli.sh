#!/usr/bin/env bash
# `vigil migrate` with no server: --help documents the options and the
# environment, usage errors exit 2, an unreachable server exits 1 with a
# one-line "could not connect" that never shows the password;
# VIGIL_PG_CONNINFO_FILE is documented, read (winning over VIGIL_PG_CONNINFO,
# losing to --conninfo), and a missing one exits 2 naming variable and path.
set -u
v=${VIGIL_BINARY:?}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
out=$(mktemp) err=$(mktemp)
dir=$(mktemp -d)
trap 'rm -rf "$out" "$err" "$dir"' EXIT
run() { # run WANT_STATUS ARGS...
  local want=$1; shift
  "$v" migrate "$@" >"$out" 2>"$err"; local got=$?
  [ "$got" = "$want" ] && ok || bad "vigil migrate $* exited $got, want $want"
}

run 0 --help
for word in '^usage: vigil migrate' '--conninfo' '--status' 'VIGIL_PG_CONNINFO' 'PGHOST' \
  'VIGIL_PG_CONNINFO_FILE'; do
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

# VIGIL_PG_CONNINFO_FILE, with no server: libpq's refusal names the port, so
# the port tells which conninfo was used (1 from the file, 2 from the env).
echo "host=127.0.0.1 port=1 password=hunter3 connect_timeout=3" >"$dir/conninfo"
VIGIL_PG_CONNINFO="host=127.0.0.1 port=2 connect_timeout=3" VIGIL_PG_CONNINFO_FILE="$dir/conninfo" run 1 --status
grep -q 'port 1 failed' "$err" && ok || bad "VIGIL_PG_CONNINFO_FILE wins over VIGIL_PG_CONNINFO: $(cat "$err")"
grep -q hunter3 "$err" "$out" && bad "password from the file printed" || ok
VIGIL_PG_CONNINFO_FILE="$dir/conninfo" run 1 --conninfo "host=127.0.0.1 port=2 connect_timeout=3"
grep -q 'port 2 failed' "$err" && ok || bad "--conninfo wins over VIGIL_PG_CONNINFO_FILE: $(cat "$err")"
VIGIL_PG_CONNINFO_FILE="$dir/missing" run 2 --status
grep -q "^vigil migrate: VIGIL_PG_CONNINFO_FILE: could not open $dir/missing: " "$err" && ok \
  || bad "missing file: error names the variable and the path: $(cat "$err")"
# Empty means unset, as for every VAR_FILE: VIGIL_PG_CONNINFO applies.
VIGIL_PG_CONNINFO="host=127.0.0.1 port=2 connect_timeout=3" VIGIL_PG_CONNINFO_FILE= run 1 --status
grep -q 'port 2 failed' "$err" && ok || bad "empty VIGIL_PG_CONNINFO_FILE is unset: $(cat "$err")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
