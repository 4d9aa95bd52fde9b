#!/usr/bin/env bash
# scripts/demo, small: it must exit 0, and its summary line must agree with
# the SQL counts in its database and with what its SMTP server and SMS
# double received.
set -u
top=${VIGIL_SOURCE_DIR:?}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
out=$(mktemp)
"$top/scripts/demo" --observations 2000 --rate 2000 --keep >"$out" 2>"$out.err"
rc=$?
[ "$rc" = 0 ] && ok || { bad "scripts/demo exited $rc"; tail -20 "$out.err" >&2; }
state=$(sed -n 's/^state //p' "$out" | head -1)
line=$(tail -1 "$out")
echo "$line"
case "$line" in summary\ observations=*) ok ;; *) bad "last line is the summary: $line" ;; esac
get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
if [ -n "$state" ] && [ -f "$state/env" ]; then
  # shellcheck disable=SC1091
  . "$state/env"
  sql() { psql "$VIGIL_PG_CONNINFO" -XAtc "$1"; }
  [ "$(get observations)" = "$(sql 'select count(*) from observations')" ] && ok || bad "observations agree with SQL"
  [ "$(get alerts)" = "$(sql "select count(*) from alerts where kind = 'signal'")" ] && ok || bad "alerts agree with SQL"
  [ "$(get emails)" = "$(sql "select count(*) from notifications where channel = 'email' and state = 'sent'")" ] && ok || bad "emails agree with SQL"
  [ "$(get sms)" = "$(sql "select count(*) from notifications where channel = 'sms' and state = 'sent'")" ] && ok || bad "sms agree with SQL"
  eml=$(find "$VIGIL_SMTP_SPOOL" -name '*.eml' | wc -l)
  [ "$(get emails)" = "$eml" ] && ok || bad "emails agree with the SMTP server's spool ($eml)"
  sms=$(grep -c '"status": 201' "$VIGIL_SMS_LOG" || true)
  [ "$(get sms)" = "$sms" ] && ok || bad "sms agree with the SMS double's log ($sms)"
  [ "$(get alerts)" -gt 0 ] && [ "$(get emails)" -gt 0 ] && [ "$(get sms)" -gt 0 ] && ok || bad "the demo raised alerts and sent both kinds"
  grep -q '^-- one email' "$out" && ok || bad "an email is shown"
  grep -q '^-- one SMS' "$out" && ok || bad "an SMS is shown"
  "$top/scripts/services" down "$state" >/dev/null 2>&1
  [ ! -d "$state" ] && ok || bad "services down removed the demo's state"
else
  bad "the demo printed its state folder"
fi
leftover=$(pgrep -f "vigil (worker|notifier|produce)" | xargs -r ps -o args= -p 2>/dev/null | grep -c "$state" || true)
[ "${leftover:-0}" = 0 ] && ok || bad "no vigil process of the demo left"
rm -f "$out" "$out.err"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
