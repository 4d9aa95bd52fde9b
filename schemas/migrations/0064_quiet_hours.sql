-- 0064_quiet_hours: quiet hours for non-critical alerts (issue #15).
--
-- A researcher may name a daily quiet window (local start and end times in
-- an IANA time zone; a window may cross midnight). A warning or info alert
-- routed to them inside it is DEFERRED, not dropped and not sent: the
-- notifier records its notification row in state 'deferred' with
-- next_attempt_at = the end of the window, and the alert's Kafka offset
-- commits at once (the row is the durable promise, like an escalation
-- timer). At the end of the window any notifier fires it
-- (vigil_deferred_fire, below): sent if the alert is still open,
-- suppressed with the reason if it was acknowledged, resolved or retracted
-- meanwhile. Critical alerts are never held.
--
-- Per researcher, not per subscription: a window is when a person sleeps
-- (or operates), in the zone they live in; it does not change with the
-- study paging them, and one alert matched by two of a person's
-- subscriptions (the study's and one site's) must not get two answers.

CREATE TABLE researcher_quiet_hours (
    researcher_id text PRIMARY KEY REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    start_local   time NOT NULL,
    end_local     time NOT NULL,
    time_zone     text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- start = end would be either no window or the whole day: ambiguous
    CONSTRAINT researcher_quiet_hours_window_check CHECK (start_local <> end_local)
);

-- An IANA zone name PostgreSQL knows (pg_timezone_names: 'Europe/Paris',
-- 'UTC'), not a POSIX string or an abbreviation AT TIME ZONE would also
-- take ('UTC+3' means three hours WEST in POSIX, a classic trap).
CREATE FUNCTION vigil_time_zone_valid(p_zone text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_zone IS NOT NULL AND length(p_zone) <= 64
       AND EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_zone)
$$;

CREATE FUNCTION vigil_quiet_hours_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT vigil_time_zone_valid(NEW.time_zone) THEN
        RAISE EXCEPTION 'unknown time zone: %', left(NEW.time_zone, 64)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER researcher_quiet_hours_check BEFORE INSERT OR UPDATE ON researcher_quiet_hours
    FOR EACH ROW EXECUTE FUNCTION vigil_quiet_hours_check();

-- When the quiet window (P_START .. P_END local time in P_ZONE) that
-- contains P_AT ends, or NULL when P_AT is outside it. The end is the next
-- local P_END after P_AT, converted back with the zone's rules of that day
-- (a DST change inside the window is accounted for). One expression, no
-- FROM: PostgreSQL inlines it into the caller's query (the notifier's
-- batched claim joins researcher_quiet_hours and calls it per row, at no
-- more cost than writing the expression there).
CREATE FUNCTION vigil_quiet_end(p_start time, p_end time, p_zone text, p_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN (p_start < p_end AND (p_at AT TIME ZONE p_zone)::time >= p_start
                              AND (p_at AT TIME ZONE p_zone)::time < p_end)
          OR (p_start > p_end AND ((p_at AT TIME ZONE p_zone)::time >= p_start
                                   OR (p_at AT TIME ZONE p_zone)::time < p_end))
        THEN (((p_at AT TIME ZONE p_zone)::date
               + CASE WHEN (p_at AT TIME ZONE p_zone)::time < p_end THEN 0 ELSE 1 END)
              + p_end) AT TIME ZONE p_zone
    END
$$;

-- The same for researcher P_RESEARCHER (NULL: no window, or outside it).
CREATE FUNCTION vigil_quiet_until(p_researcher text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT vigil_quiet_end(q.start_local, q.end_local, q.time_zone, p_at)
    FROM researcher_quiet_hours q WHERE q.researcher_id = p_researcher
$$;

-- The notification log learns the state. deferred_until stays set once a
-- row was deferred (the alert detail shows it; the recovery below finds
-- fired rows by it); next_attempt_at is the row's due time while deferred.
ALTER TABLE notifications DROP CONSTRAINT notifications_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_state_check
    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'suppressed', 'deferred'));
ALTER TABLE notifications ADD COLUMN deferred_until timestamptz;
CREATE INDEX notifications_deferred_idx ON notifications (next_attempt_at)
    WHERE state = 'deferred';
CREATE INDEX notifications_deferred_fired_idx ON notifications (updated_at)
    WHERE deferred_until IS NOT NULL AND state IN ('pending', 'sending');

-- The delivery events of a deferred row say so (deferred_until), so the
-- audit trail shows a warning sent at 07:00 was held, not late.
CREATE OR REPLACE FUNCTION vigil_notification_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vigil_audit_append(NEW.alert_id,
        CASE NEW.state WHEN 'sent' THEN 'delivered' WHEN 'failed' THEN 'delivery_failed'
                       ELSE 'delivery_suppressed' END,
        'notifier',
        jsonb_strip_nulls(jsonb_build_object('researcher_id', NEW.researcher_id,
            'channel', NEW.channel, 'step', NEW.step, 'attempts', NEW.attempts,
            'provider_message_id', NEW.provider_message_id, 'error', NEW.last_error,
            'deferred_until', to_char(NEW.deferred_until AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))));
    RETURN NULL;
END;
$$;

-- Fires up to p_limit deferred notifications whose window has ended, and
-- takes back fired ones whose notifier died before finishing them (state
-- pending/sending, lease p_lease_s expired). Each row is locked FOR
-- UPDATE SKIP LOCKED: two notifiers never take one row, and a fired row
-- is 'pending' under the caller's fresh lease, no longer due. A row
-- whose alert is no longer open is suppressed with the reason (the audit
-- trigger records delivery_suppressed); one whose alert row is not stored
-- yet waits a minute. Returns the rows the caller must now send (its
-- sender owns them: no further claim).
CREATE FUNCTION vigil_deferred_fire(p_limit integer, p_lease_s integer)
RETURNS TABLE (alert_id text, researcher_id text, channel text, deferred_until timestamptz,
               recovered boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    d record;
BEGIN
    -- nothing due (most ticks): no lock on the audit chain head
    IF NOT EXISTS (SELECT 1 FROM notifications n WHERE n.state = 'deferred'
                   AND n.next_attempt_at <= now())
       AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.deferred_until IS NOT NULL
                       AND n.state IN ('pending', 'sending')
                       AND n.updated_at < now() - make_interval(secs => p_lease_s)) THEN
        RETURN;
    END IF;
    PERFORM vigil_audit_lock(); -- the head first: see the top of 0014
    FOR d IN
        SELECT n.alert_id, n.researcher_id, n.channel, n.step, n.state, n.deferred_until,
               l.state AS life
        FROM notifications n LEFT JOIN alert_lifecycle l ON l.alert_id = n.alert_id
        WHERE n.deferred_until IS NOT NULL
          AND ((n.state = 'deferred' AND n.next_attempt_at <= now())
               OR (n.state IN ('pending', 'sending')
                   AND n.updated_at < now() - make_interval(secs => p_lease_s)))
        ORDER BY n.next_attempt_at LIMIT p_limit
        FOR UPDATE OF n SKIP LOCKED
    LOOP
        IF d.life IS NULL THEN
            UPDATE notifications n SET next_attempt_at = now() + interval '1 minute'
            WHERE n.alert_id = d.alert_id AND n.researcher_id = d.researcher_id
              AND n.channel = d.channel AND n.step = d.step AND n.state = 'deferred';
            CONTINUE;
        END IF;
        IF d.life <> 'open' THEN
            UPDATE notifications n SET state = 'suppressed', updated_at = now(),
                next_attempt_at = NULL, last_error = d.life || ' during quiet hours'
            WHERE n.alert_id = d.alert_id AND n.researcher_id = d.researcher_id
              AND n.channel = d.channel AND n.step = d.step;
            CONTINUE;
        END IF;
        UPDATE notifications n SET state = 'pending', updated_at = now(), next_attempt_at = now()
        WHERE n.alert_id = d.alert_id AND n.researcher_id = d.researcher_id
          AND n.channel = d.channel AND n.step = d.step;
        RETURN QUERY SELECT d.alert_id, d.researcher_id, d.channel, d.deferred_until,
                            d.state <> 'deferred';
    END LOOP;
END;
$$;

-- The daily warning digest (0013) and quiet hours: a researcher inside
-- their window gets no digest then (the claim runs all day from
-- digest_hour, so it goes when the window ends), and a warning still
-- deferred to them is not listed (it comes on its own at the window's end:
-- listed and sent would be the same warning twice).
CREATE OR REPLACE FUNCTION vigil_digest_claim(p_day date, p_min_age_s integer, p_lease_s integer,
                                              p_limit integer)
RETURNS TABLE (researcher_id text, email text, alert_ids text[])
LANGUAGE sql AS $$
    WITH cand AS (
        SELECT s.researcher_id,
               (array_agg(DISTINCT l.alert_id))[1:200] AS ids
        FROM subscriptions s
        JOIN researchers r ON r.researcher_id = s.researcher_id AND r.active
                          AND r.email IS NOT NULL
        JOIN alert_lifecycle l ON l.study_id = s.study_id
                              AND (s.site_id IS NULL OR s.site_id = l.site_id)
        WHERE s.min_severity IN ('info', 'warning') AND 'email' = ANY (s.channels)
          AND l.severity = 'warning' AND l.state = 'open'
          AND l.opened_at < now() - make_interval(secs => p_min_age_s)
          AND coalesce((SELECT p.digest FROM escalation_policies p
                        WHERE p.study_id = l.study_id AND p.severity = 'warning'
                          AND (p.site_id = l.site_id OR p.site_id IS NULL)
                        ORDER BY p.site_id IS NULL LIMIT 1), true)
          AND vigil_quiet_until(s.researcher_id, now()) IS NULL
          AND NOT EXISTS (SELECT 1 FROM notifications n
                          WHERE n.alert_id = l.alert_id AND n.researcher_id = s.researcher_id
                            AND n.state = 'deferred')
        GROUP BY s.researcher_id
        ORDER BY s.researcher_id
        LIMIT p_limit),
    ins AS (
        INSERT INTO warning_digests AS d (day, researcher_id, alert_ids)
        SELECT p_day, c.researcher_id, c.ids FROM cand c
        ON CONFLICT (day, researcher_id) DO UPDATE
            SET claimed_at = now(), attempts = d.attempts + 1, state = 'sending',
                alert_ids = EXCLUDED.alert_ids
            WHERE (d.state = 'sending' AND d.claimed_at < now() - make_interval(secs => p_lease_s))
               OR (d.state = 'failed' AND d.attempts < 5
                   AND d.claimed_at < now() - make_interval(secs => p_lease_s))
        RETURNING d.researcher_id, d.alert_ids)
    SELECT ins.researcher_id, r.email, ins.alert_ids
    FROM ins JOIN researchers r ON r.researcher_id = ins.researcher_id
$$;
