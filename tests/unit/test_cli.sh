#!/usr/bin/env bash
# The binary's command line works with no service running: --help for the
# binary and every subcommand, `vigil version`, and exit 2 with a one-line
# error plus usage for unknown commands and flags.
set -u
v=${VIGIL_BINARY:?}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect STATUS CMD...
  local want=$1; shift
  "$@" >/tmp/cli.$$.out 2>/tmp/cli.$$.err; local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "$* exited $got, want $want"; fi
}

expect 0 "$v" --help
grep -q '^usage: vigil COMMAND' /tmp/cli.$$.out && ok || bad "--help prints usage"
for cmd in worker notifier console produce import mllp migrate rules dq version; do
  expect 0 "$v" "$cmd" --help
  grep -q "^usage: vigil $cmd" /tmp/cli.$$.out && ok || bad "$cmd --help prints its usage"
  expect 2 "$v" "$cmd" --no-such-flag
  head -1 /tmp/cli.$$.err | grep -q "^vigil $cmd: .*--no-such-flag" && ok || bad "$cmd: first stderr line names the flag"
  grep -q "^usage: vigil $cmd" /tmp/cli.$$.err && ok || bad "$cmd: usage on stderr after a bad flag"
done
expect 2 "$v" frobnicate
head -1 /tmp/cli.$$.err | grep -q "unknown command 'frobnicate'" && ok || bad "unknown command named"
expect 2 "$v"
expect 0 "$v" version
for lib in librdkafka avro-c libpq libcurl; do
  grep -Eq "^$lib [0-9]+\.[0-9]+" /tmp/cli.$$.out && ok || bad "version lists $lib"
done
rm -f /tmp/cli.$$.out /tmp/cli.$$.err
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
