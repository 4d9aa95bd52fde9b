#!/usr/bin/env bash
# `vigil migrate` against the real PostgreSQL of scripts/services
# ($VIGIL_PG_CONNINFO). Every run works in private schemas mt_<pid>*
# (search_path passed as a connection option), dropped at the end, so it
# shares the database with other tests safely.
#
# Checks: all migrations applied once and recorded; the keys that make
# replays idempotent exist and work; a second run changes nothing; a failing
# migration rolls back whole and a later run resumes; concurrent runs
# serialise on the advisory lock; the directory triggers NOTIFY;
# VIGIL_PG_CONNINFO_FILE (a mounted Secret) is read, wins over
# VIGIL_PG_CONNINFO and loses to --conninfo, and neither a missing file nor
# a refused password prints the password.
set -u
v=${VIGIL_BINARY:?}
src=${VIGIL_SOURCE_DIR:?}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
if [ -z "${VIGIL_PG_CONNINFO:-}" ]; then
  echo 'FAIL: VIGIL_PG_CONNINFO is not set: start the services with eval "$(scripts/services up)"' >&2
  echo "0 passed, 1 failed"
  exit 1
fi
base=$VIGIL_PG_CONNINFO
tmp=$(mktemp -d)
s=mt_$$          # the main schema
sf=mt_$$_fail    # a migration that fails, then resumes
sc=mt_$$_conc    # concurrent migrates
cleanup() {
  psql -X -q "$base" -c "DROP SCHEMA IF EXISTS $s, $sf, $sc CASCADE" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

# in_schema SCHEMA: the conninfo with search_path set to SCHEMA only.
in_schema() {
  case "$base" in
  postgres://* | postgresql://*)
    case "$base" in *\?*) echo "$base&options=-csearch_path%3D$1" ;; *) echo "$base?options=-csearch_path%3D$1" ;; esac ;;
  *) echo "$base options=-csearch_path=$1" ;;
  esac
}
# q SCHEMA SQL: one value (unaligned, tuples only); psql errors on stderr.
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$(in_schema "$1")" -c "$2"; }
# eq WHAT GOT WANT
eq() { [ "$2" = "$3" ] && ok || bad "$1: got '$2', want '$3'"; }
# rejects WHAT SCHEMA SQL [ERROR_PATTERN]: the statement must fail (with
# an error matching the pattern, if given).
rejects() {
  if q "$2" "$3" >/dev/null 2>"$tmp/rej"; then
    bad "$1: accepted"
  elif [ -n "${4:-}" ] && ! grep -q -e "$4" "$tmp/rej"; then
    bad "$1: wrong error: $(cat "$tmp/rej")"
  else
    ok
  fi
}

n=$(ls "$src"/schemas/migrations/*.sql | wc -l)
[ "$n" -ge 4 ] && ok || bad "found $n migration files"
want_names=$(cd "$src"/schemas/migrations && ls *.sql | sort | sed 's/\.sql$//')

psql -X -q -v ON_ERROR_STOP=1 "$base" -c "CREATE SCHEMA $s; CREATE SCHEMA $sf; CREATE SCHEMA $sc" \
  && ok || { bad "could not create test schemas"; echo "$pass passed, $fail failed"; exit 1; }

# --- first run applies everything, in order, once -------------------------
"$v" migrate --status --conninfo "$(in_schema $s)" >"$tmp/st0" 2>"$tmp/err"; eq "status before exit" $? 0
eq "status before: pending lines" "$(grep -c '^pending ' "$tmp/st0")" "$n"
eq "status before: table not created" "$(q $s "SELECT to_regclass('schema_migrations') IS NULL")" t

"$v" migrate --conninfo "$(in_schema $s)" >"$tmp/out1" 2>"$tmp/err"; eq "first run exit" $? 0
eq "first run applied lines" "$(grep -c '^applied ' "$tmp/out1")" "$n"
eq "first run order" "$(sed -n 's/^applied //p' "$tmp/out1")" "$want_names"
eq "schema_migrations rows" "$(q $s 'SELECT count(*) FROM schema_migrations')" "$n"
eq "schema_migrations names" "$(q $s 'SELECT name FROM schema_migrations ORDER BY version')" "$want_names"

# --- tables and their keys ------------------------------------------------
pk() { # pk TABLE -> its primary key columns, comma-separated, in key order
  q $s "SELECT string_agg(k.column_name, ',' ORDER BY k.ordinal_position)
          FROM information_schema.table_constraints c
          JOIN information_schema.key_column_usage k
            ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name
         WHERE c.table_schema = '$s' AND c.table_name = '$1' AND c.constraint_type = 'PRIMARY KEY'"
}
eq "observations pk" "$(pk observations)" observation_id
eq "alerts pk" "$(pk alerts)" alert_id
eq "studies pk" "$(pk studies)" study_id
eq "sites pk" "$(pk sites)" study_id,site_id
eq "researchers pk" "$(pk researchers)" researcher_id
eq "subscriptions pk" "$(pk subscriptions)" subscription_id
# 0011 adds the escalation step to the key (a repeated last tier pages again)
eq "notifications pk" "$(pk notifications)" alert_id,researcher_id,channel,step
eq "alert_events pk" "$(pk alert_events)" event_id
eq "alert_lifecycle pk" "$(pk alert_lifecycle)" alert_id
eq "schema_migrations pk" "$(pk schema_migrations)" version
idx() { q $s "SELECT indexdef FROM pg_indexes WHERE schemaname = '$s' AND indexname = '$1'"; }
case "$(idx subscriptions_researcher_study_site_key)" in
*UNIQUE*"(researcher_id, study_id, COALESCE(site_id, ''::text))"*) ok ;;
*) bad "unique (researcher, study, coalesce(site,'')) index: $(idx subscriptions_researcher_study_site_key)" ;;
esac
case "$(idx observations_subject_loinc_idx)" in
*"(study_id, subject_id, loinc, effective_at)"*) ok ;;
*) bad "per-subject observations index: $(idx observations_subject_loinc_idx)" ;;
esac
eq "subject_baselines view" "$(q $s "SELECT count(*) FROM information_schema.views WHERE table_schema = '$s' AND table_name = 'subject_baselines'")" 1
eq "nothing created in another schema" \
  "$(q $s "SELECT count(*) FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE c.relname = 'observations' AND ns.nspname LIKE 'mt_$$%' AND ns.nspname <> '$s'")" 0

# --- second run changes nothing --------------------------------------------
before=$(q $s "SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version) FROM schema_migrations")
"$v" migrate --conninfo "$(in_schema $s)" >"$tmp/out2" 2>"$tmp/err"; eq "second run exit" $? 0
eq "second run output" "$(cat "$tmp/out2")" "database is up to date ($n migrations)"
eq "second run kept schema_migrations" \
  "$(q $s "SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version) FROM schema_migrations")" "$before"
VIGIL_PG_CONNINFO=$(in_schema $s) "$v" migrate --status >"$tmp/st1" 2>"$tmp/err"; eq "status exit" $? 0
eq "status applied lines" "$(grep -c '^applied ' "$tmp/st1")" "$n"
eq "status summary" "$(tail -1 "$tmp/st1")" "$n applied, 0 pending"

# --- 0015: alerts stored before the lifecycle existed get one --------------
# An alert inserted with the lifecycle trigger off stands for one stored
# before 0010; 0015 is then applied again (its record removed) and must
# give it an open lifecycle row, a retracted one its state, an 'opened'
# event naming the migration, no escalation timer, and a chain that holds.
bf=bf-$$
q $s "ALTER TABLE alerts DISABLE TRIGGER alerts_lifecycle_open;
      INSERT INTO alerts (alert_id, rule_id, rule_version, severity, study_id, site_id, subject_id,
                          message, observed_at, detected_at, retracted, retracted_by)
      VALUES ('$bf-open', 'k-high', 1, 'critical', 'ST', 'S1', 'P-1', 'm', now(), now(), false, NULL),
             ('$bf-gone', 'k-high', 1, 'critical', 'ST', 'S1', 'P-1', 'm', now(), now(), true, '$bf-r');
      ALTER TABLE alerts ENABLE TRIGGER alerts_lifecycle_open;
      DELETE FROM schema_migrations WHERE name = '0015_lifecycle_backfill'" >/dev/null 2>"$tmp/err" \
  && ok || bad "pre-0010 alerts inserted: $(cat "$tmp/err")"
eq "no lifecycle before the backfill" "$(q $s "SELECT count(*) FROM alert_lifecycle WHERE alert_id LIKE '$bf-%'")" 0
"$v" migrate --conninfo "$(in_schema $s)" >"$tmp/outb" 2>"$tmp/err"; eq "backfill run exit ($(cat "$tmp/err"))" $? 0
eq "backfill applied" "$(cat "$tmp/outb")" "applied 0015_lifecycle_backfill"
eq "backfilled states" "$(q $s "SELECT string_agg(alert_id || '=' || state, ',' ORDER BY alert_id) FROM alert_lifecycle WHERE alert_id LIKE '$bf-%'")" \
  "$bf-gone=retracted,$bf-open=open"
eq "backfilled events" "$(q $s "SELECT string_agg(alert_id || ':' || kind || ':' || actor, ',' ORDER BY alert_id) FROM alert_events WHERE alert_id LIKE '$bf-%'")" \
  "$bf-gone:opened:migration:0015_lifecycle_backfill,$bf-open:opened:migration:0015_lifecycle_backfill"
eq "no timers for backfilled alerts" "$(q $s "SELECT count(*) FROM escalations WHERE alert_id LIKE '$bf-%'")" 0
eq "a backfilled alert can be acknowledged" "$(q $s "SELECT vigil_alert_ack('$bf-open', 'R1', 'cli', 'test', NULL)")" acknowledged
eq "backfill again: nothing twice" "$(q $s "DELETE FROM schema_migrations WHERE name = '0015_lifecycle_backfill'" >/dev/null; "$v" migrate --conninfo "$(in_schema $s)" >/dev/null 2>&1; q $s "SELECT count(*) FROM alert_events WHERE alert_id LIKE '$bf-%' AND kind = 'opened'")" 2

# --- idempotent rows ---------------------------------------------------------
obs="INSERT INTO observations (observation_id, study_id, site_id, subject_id, loinc, value, unit,
       effective_at, issued_at, status, revision)
     VALUES ('obs-1', 'ST1', 'S01', 'SUBJ-1', '2823-3', %s, 'mmol/L', '2026-03-01T08:00Z',
             '2026-03-01T10:00Z', '%s', %s)"
upsert=" ON CONFLICT (observation_id) DO UPDATE SET value = EXCLUDED.value, status = EXCLUDED.status,
         revision = EXCLUDED.revision, updated_at = now()
         WHERE observations.revision < EXCLUDED.revision"
q $s "$(printf "$obs" 5.1 final 100) ON CONFLICT DO NOTHING" >/dev/null; eq "observation insert" $? 0
q $s "$(printf "$obs" 5.1 final 100) ON CONFLICT DO NOTHING" >/dev/null; eq "observation replay" $? 0
eq "replayed observation stored once" "$(q $s "SELECT count(*) FROM observations")" 1
q $s "$(printf "$obs" 6.9 amended 200)$upsert" >/dev/null
eq "amended revision updates the row" "$(q $s "SELECT value || ' ' || status FROM observations")" "6.9 amended"
q $s "$(printf "$obs" 5.1 final 100)$upsert" >/dev/null
eq "older revision replayed later changes nothing" "$(q $s "SELECT value || ' ' || status FROM observations")" "6.9 amended"
rejects "status outside FHIR's five" $s "$(printf "$obs" 5.1 preliminary 300)$upsert" observations_status_check

q $s "INSERT INTO alerts (alert_id, rule_id, rule_version, severity, study_id, site_id, subject_id,
        observation_id, evidence, message, observed_at, detected_at)
      VALUES ('a1', 'potassium-critical-high', 1, 'critical', 'ST1', 'S01', 'SUBJ-1', 'obs-1',
        '[{\"observation_id\": \"obs-1\"}]', 'Potassium 6.9 mmol/L', '2026-03-01T08:00Z', now())
      ON CONFLICT (alert_id) DO NOTHING" >/dev/null; eq "alert insert" $? 0
rejects "severity outside info/warning/critical" $s "INSERT INTO alerts (alert_id, rule_id,
        rule_version, severity, study_id, site_id, subject_id, message, observed_at, detected_at)
      VALUES ('a2', 'r', 1, 'urgent', 'ST1', 'S01', 'SUBJ-1', 'm', now(), now())" alerts_severity_check

notif="INSERT INTO notifications (alert_id, researcher_id, channel) VALUES ('a1', 'r1', 'sms')"
q $s "$notif" >/dev/null; eq "notification insert" $? 0
rejects "duplicate (alert, researcher, channel)" $s "$notif" \
  'duplicate key value violates unique constraint "notifications_pkey"'
eq "dedupe by ON CONFLICT reports 0 rows" "$(q $s "$notif ON CONFLICT DO NOTHING RETURNING 1")" ""
rejects "channel fax" $s "INSERT INTO notifications (alert_id, researcher_id, channel)
  VALUES ('a1', 'r1', 'fax')" notifications_channel_check

# --- directory: keys, checks, and the NOTIFY the notifier's cache listens for
q $s "INSERT INTO researchers (researcher_id, name, email, phone) VALUES ('r1', 'Dr A', 'a@example.org', '+447700900123');
      INSERT INTO studies (study_id, name, safety_contact_researcher_id) VALUES ('ST1', 'Study 1', 'r1');
      INSERT INTO sites (study_id, site_id, name) VALUES ('ST1', 'S01', 'Site 1')" >/dev/null
eq "directory insert" $? 0
rejects "non-E.164 phone" $s "INSERT INTO researchers (researcher_id, name, phone)
  VALUES ('r2', 'Dr B', '07700 900123')" researchers_phone_check
sub="INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity, channels) VALUES"
q $s "$sub ('r1', 'ST1', NULL, 'warning', '{email,sms}')" >/dev/null; eq "all-sites subscription" $? 0
rejects "second all-sites subscription of a researcher to a study" $s \
  "$sub ('r1', 'ST1', NULL, 'critical', '{sms}')" subscriptions_researcher_study_site_key
q $s "$sub ('r1', 'ST1', 'S01', 'critical', '{sms}')" >/dev/null; eq "per-site subscription beside all-sites" $? 0
rejects "subscription to an unknown site" $s "$sub ('r1', 'ST1', 'S99', 'critical', '{sms}')" \
  'foreign key constraint'
rejects "channel pager" $s "$sub ('r2x', 'ST1', NULL, 'info', '{email,pager}')" subscriptions_channels_check

psql -X -q "$(in_schema $s)" -c "LISTEN vigil_directory" \
  -c "INSERT INTO sites (study_id, site_id, name) VALUES ('ST1', 'S02', 'Site 2')" \
  -c "UPDATE researchers SET active = false WHERE researcher_id = 'r1'" >"$tmp/notify" 2>&1
grep -q 'notification "vigil_directory" with payload "sites"' "$tmp/notify" && ok \
  || bad "insert into sites notifies vigil_directory: $(cat "$tmp/notify")"
grep -q 'notification "vigil_directory" with payload "researchers"' "$tmp/notify" && ok \
  || bad "update of researchers notifies vigil_directory: $(cat "$tmp/notify")"

# --- a failing migration rolls back whole; the next run resumes --------------
# A table named like an index 0002 creates after its table: 0002 fails half
# way, and its first statement (CREATE TABLE alerts) must be rolled back.
q $sf "CREATE TABLE alerts_subject_idx (x int)" >/dev/null
"$v" migrate --conninfo "$(in_schema $sf)" >"$tmp/outf" 2>"$tmp/errf"; eq "failing run exit" $? 1
grep -q '^vigil migrate: could not apply 0002_alerts: .*alerts_subject_idx' "$tmp/errf" && ok \
  || bad "failure names the migration and the error: $(cat "$tmp/errf")"
eq "failing run applied the ones before" "$(cat "$tmp/outf")" "applied 0001_observations"
eq "failed migration not recorded" "$(q $sf "SELECT string_agg(version::text, ',') FROM schema_migrations")" 1
eq "failed migration rolled back" "$(q $sf "SELECT to_regclass('alerts') IS NULL")" t
q $sf "DROP TABLE alerts_subject_idx" >/dev/null
"$v" migrate --conninfo "$(in_schema $sf)" >"$tmp/outr" 2>"$tmp/err"; eq "resumed run exit" $? 0
eq "resumed run applies the rest" "$(grep -c '^applied ' "$tmp/outr")" "$((n - 1))"
eq "resumed: all recorded" "$(q $sf 'SELECT count(*) FROM schema_migrations')" "$n"

# --- concurrent runs serialise on the advisory lock ------------------------
for i in 1 2 3; do
  "$v" migrate --conninfo "$(in_schema $sc)" >"$tmp/conc$i" 2>"$tmp/concerr$i" &
  pids[$i]=$!
done
for i in 1 2 3; do
  wait "${pids[$i]}"; rc=$?
  eq "concurrent run $i exit ($(cat "$tmp/concerr$i"))" $rc 0
done
eq "concurrent runs applied each migration once" "$(cat "$tmp"/conc? | grep -c '^applied ')" "$n"
eq "concurrent: others found it up to date" "$(cat "$tmp"/conc? | grep -c '^database is up to date')" 2
eq "concurrent: all recorded once" "$(q $sc 'SELECT count(*) FROM schema_migrations')" "$n"

# --- VIGIL_PG_CONNINFO_FILE ----------------------------------------------------
# The conninfo only in a file (with the trailing newline `echo` and a
# Kubernetes Secret leave); VIGIL_PG_CONNINFO is unset.
echo "$(in_schema $s)" >"$tmp/conninfo"
env -u VIGIL_PG_CONNINFO VIGIL_PG_CONNINFO_FILE="$tmp/conninfo" "$v" migrate --status \
  >"$tmp/stf" 2>"$tmp/err"
eq "status from VIGIL_PG_CONNINFO_FILE: exit ($(cat "$tmp/err"))" $? 0
eq "status from VIGIL_PG_CONNINFO_FILE: summary" "$(tail -1 "$tmp/stf")" "$n applied, 0 pending"
# The file wins over VIGIL_PG_CONNINFO (here a server that is not there).
VIGIL_PG_CONNINFO="host=127.0.0.1 port=1 connect_timeout=3" VIGIL_PG_CONNINFO_FILE="$tmp/conninfo" \
  "$v" migrate --status >"$tmp/stf" 2>"$tmp/err"
eq "VIGIL_PG_CONNINFO_FILE wins over VIGIL_PG_CONNINFO ($(cat "$tmp/err"))" $? 0
# --conninfo wins over both: a missing file is not even read.
VIGIL_PG_CONNINFO_FILE="$tmp/no-such-conninfo" "$v" migrate --status --conninfo "$(in_schema $s)" \
  >"$tmp/stf" 2>"$tmp/err"
eq "--conninfo wins over VIGIL_PG_CONNINFO_FILE ($(cat "$tmp/err"))" $? 0
eq "--conninfo wins: summary" "$(tail -1 "$tmp/stf")" "$n applied, 0 pending"
# A missing file is a configuration error naming the variable and the path,
# not a silent fallback to VIGIL_PG_CONNINFO or libpq's defaults.
VIGIL_PG_CONNINFO_FILE="$tmp/no-such-conninfo" "$v" migrate --status >"$tmp/stf" 2>"$tmp/err"
eq "missing VIGIL_PG_CONNINFO_FILE: exit" $? 2
grep -q "^vigil migrate: VIGIL_PG_CONNINFO_FILE: could not open $tmp/no-such-conninfo: " "$tmp/err" && ok \
  || bad "missing file: error names the variable and the path: $(cat "$tmp/err")"
eq "missing VIGIL_PG_CONNINFO_FILE: nothing on stdout" "$(cat "$tmp/stf")" ""
# A wrong password (the server asks for one: scram-sha-256 on loopback) and
# a malformed conninfo holding a password, both from the file: they fail,
# and neither the password nor the file's text is printed.
secret=mt-secret-$$-$RANDOM-wrong
echo "$(in_schema $s) password=$secret passfile=/nonexistent" >"$tmp/conninfo-bad"
VIGIL_PG_CONNINFO_FILE="$tmp/conninfo-bad" "$v" migrate --status >"$tmp/stf" 2>"$tmp/err"
eq "wrong password from the file: exit" $? 1
grep -q "^vigil migrate: could not connect to PostgreSQL: .*password authentication failed" "$tmp/err" && ok \
  || bad "wrong password from the file: says why: $(cat "$tmp/err")"
grep -q -e "$secret" "$tmp/err" "$tmp/stf" && bad "wrong password from the file: password printed: $(cat "$tmp/err")" || ok
echo "host=127.0.0.1 password='$secret" >"$tmp/conninfo-bad"
VIGIL_PG_CONNINFO_FILE="$tmp/conninfo-bad" "$v" migrate --status >"$tmp/stf" 2>"$tmp/err"
eq "malformed conninfo from the file: exit" $? 1
grep -q "could not connect to PostgreSQL" "$tmp/err" && ok || bad "malformed conninfo from the file: $(cat "$tmp/err")"
grep -q -e "$secret" "$tmp/err" "$tmp/stf" && bad "malformed conninfo from the file: password printed: $(cat "$tmp/err")" || ok

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
