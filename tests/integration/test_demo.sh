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
  # the closed loop: the researchers the demo plays acknowledged by link and
  # by SMS reply, and the alert left alone escalated
  [ "$(get acked)" = "$(sql "select count(*) from alert_lifecycle where acknowledged_at is not null")" ] && ok || bad "acked agrees with SQL"
  [ "$(get acked)" -gt 1 ] && ok || bad "the demo acknowledged alerts"
  [ "$(sql "select count(*) from alert_lifecycle where ack_channel = 'link'")" -gt 0 ] && ok || bad "acknowledged through the email link"
  [ "$(sql "select count(*) from alert_lifecycle where ack_channel = 'sms_reply'")" = 1 ] && ok || bad "one acknowledged by SMS reply"
  [ "$(get escalated)" = "$(sql "select count(distinct alert_id) from alert_events where kind = 'escalated'")" ] && ok || bad "escalated agrees with the audit trail"
  [ "$(get escalated)" -ge 1 ] && ok || bad "the alert left unacknowledged escalated"
  grep -q '^console http://127.0.0.1:[0-9]*$' "$out" && ok || bad "the console's address is printed"
  grep -q '^console_login http://127.0.0.1:[0-9]*/console/ safety-001@hospital.example [^ ]*$' "$out" && ok ||
    bad "a console login is printed"
  [ "$(sql "select count(*) from console_grants where researcher_id = 'SAFETY-001' and role = 'responder'")" = 1 ] &&
    ok || bad "the demo login is a responder"
  grep -q '^-- one email' "$out" && ok || bad "an email is shown"
  grep -q '^-- one SMS' "$out" && ok || bad "an SMS is shown"
  "$top/scripts/services" down "$state" >/dev/null 2>&1
  [ ! -d "$state" ] && ok || bad "services down removed the demo's state"
else
  bad "the demo printed its state folder"
fi
leftover=$(pgrep -f "vigil (worker|notifier|produce|console)" | xargs -r ps -o args= -p 2>/dev/null | grep -c "$state" || true)
[ "${leftover:-0}" = 0 ] && ok || bad "no vigil process of the demo left"
rm -f "$out" "$out.err"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
