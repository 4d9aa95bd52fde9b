-- 0011_escalation_steps: firing escalation timers, exactly once across
-- notifier replicas, and the pages each step sends.

-- The notification log keys a page by its escalation step too: step 0 is
-- an alert's first page (the Kafka path, and escalation step 0 to tier 1,
-- which therefore dedupes against it), step N the Nth escalation step. The
-- last tier repeated every 15 minutes pages the same person on the same
-- channel again, which the old key (alert, researcher, channel) forbade.
ALTER TABLE notifications ADD COLUMN step integer NOT NULL DEFAULT 0
    CONSTRAINT notifications_step_check CHECK (step >= 0);
ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD PRIMARY KEY (alert_id, researcher_id, channel, step);

-- Set when an active escalation pages its last tier again: nobody on the
-- whole policy acknowledged in time. Exported as a gauge, alerted on.
ALTER TABLE escalations ADD COLUMN past_last_tier boolean NOT NULL DEFAULT false;

-- escalation_pages: who a step decided to page, written in the step's own
-- transaction. The notifier hands each to its sender at once; a page whose
-- notification row never became final (the notifier died between the
-- step's commit and the send) is handed again after a lease by whichever
-- notifier runs vigil_escalation_recover. settled: its notification is
-- final, nothing more to watch (keeps the recovery scan small).
CREATE TABLE escalation_pages (
    alert_id      text NOT NULL,
    step          integer NOT NULL,
    tier          integer NOT NULL,
    researcher_id text NOT NULL,
    channel       text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    handed_at     timestamptz NOT NULL DEFAULT now(),
    settled       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (alert_id, step, researcher_id, channel)
);
CREATE INDEX escalation_pages_unsettled_idx ON escalation_pages (handed_at) WHERE NOT settled;

-- The (researcher, channel) pairs of one tier, active researchers with an
-- address on that channel only. Targets: 'subscribers' (subscribed to the
-- study and site at this severity), 'role:<role>' (study_roles; the safety
-- physician also the study's safety contact), 'researcher:<id>'. Channel
-- 'subscribed': the researcher's own subscription channels for the study,
-- email when they have none.
CREATE FUNCTION vigil_tier_recipients(p_study text, p_site text, p_severity text,
                                      p_targets text[], p_channels text[])
RETURNS TABLE (researcher_id text, channel text)
LANGUAGE sql STABLE AS $$
    WITH rank AS (
        SELECT CASE p_severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END AS r),
    who AS (
        SELECT s.researcher_id FROM subscriptions s, rank
        WHERE 'subscribers' = ANY (p_targets) AND s.study_id = p_study
          AND (s.site_id IS NULL OR s.site_id = p_site)
          AND rank.r >= CASE s.min_severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END
        UNION
        SELECT sr.researcher_id FROM study_roles sr
        WHERE ('role:' || sr.role) = ANY (p_targets) AND sr.study_id = p_study
          AND (sr.site_id IS NULL OR sr.site_id = p_site)
        UNION
        SELECT st.safety_contact_researcher_id FROM studies st
        WHERE 'role:safety_physician' = ANY (p_targets) AND st.study_id = p_study
          AND st.safety_contact_researcher_id IS NOT NULL
        UNION
        SELECT substr(t, 12) FROM unnest(p_targets) t WHERE t LIKE 'researcher:%'),
    pairs AS (
        SELECT w.researcher_id, c AS channel
        FROM who w, unnest(p_channels) c WHERE c <> 'subscribed'
        UNION
        SELECT w.researcher_id, coalesce(sc.c, 'email')
        FROM who w
        LEFT JOIN LATERAL (
            SELECT unnest(s.channels) AS c FROM subscriptions s
            WHERE s.researcher_id = w.researcher_id AND s.study_id = p_study
              AND (s.site_id IS NULL OR s.site_id = p_site)) sc ON true
        WHERE 'subscribed' = ANY (p_channels))
    SELECT p.researcher_id, p.channel FROM pairs p
    JOIN researchers r ON r.researcher_id = p.researcher_id AND r.active
    WHERE (p.channel = 'email' AND r.email IS NOT NULL)
       OR (p.channel = 'sms' AND r.phone IS NOT NULL)
    ORDER BY 1, 2
$$;

-- Fires up to p_limit due escalation steps. Each due row is locked with
-- FOR UPDATE SKIP LOCKED: a second notifier running this at the same
-- moment skips it instead of waiting, and the step's pages, its audit
-- event and the advanced timer commit together, so a step happens once
-- across replicas (a crash before commit rolls all of it back and the row
-- is due again). Step s pages tier min(s+1, last); the next step is due
-- after the paged tier's ack_deadline_s, or repeat_last_s once the last
-- tier has been paged, times p_scale (1 in production; tests compress
-- minutes to seconds). The next due time counts from now, not from the
-- missed due time: a notifier back after an outage pages each overdue
-- alert once, not once per missed interval.
CREATE FUNCTION vigil_escalation_fire(p_limit integer, p_scale double precision, p_actor text)
RETURNS TABLE (alert_id text, step integer, tier integer, researcher_id text, channel text,
               due_at timestamptz, fired_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e        escalations%ROWTYPE;
    v_ntiers integer;
    v_tier   integer;
    t        record;
    v_state  text;
    v_pages  jsonb;
    v_next   double precision;
    v_now    timestamptz;
BEGIN
    FOR e IN
        SELECT * FROM escalations x
        WHERE x.state = 'active' AND x.due_at <= now()
        ORDER BY x.due_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        v_now := clock_timestamp();
        SELECT l.state INTO v_state FROM alert_lifecycle l WHERE l.alert_id = e.alert_id;
        IF v_state IS DISTINCT FROM 'open' THEN
            -- acknowledged, resolved or retracted without stopping the
            -- timer (cannot happen through the contract functions): stop.
            UPDATE escalations x SET state = 'stopped', stopped_at = v_now,
                stop_reason = coalesce(v_state, 'no_lifecycle')
            WHERE x.alert_id = e.alert_id;
            CONTINUE;
        END IF;
        SELECT count(*) INTO v_ntiers FROM vigil_policy_tiers(e.study_id, e.site_id, e.severity);
        IF v_ntiers = 0 THEN
            UPDATE escalations x SET state = 'stopped', stopped_at = v_now, stop_reason = 'no_policy'
            WHERE x.alert_id = e.alert_id;
            PERFORM vigil_audit_append(e.alert_id, 'escalation_stopped', p_actor,
                                       jsonb_build_object('reason', 'no_policy', 'step', e.step));
            CONTINUE;
        END IF;
        v_tier := least(e.step + 1, v_ntiers);
        SELECT * INTO t FROM vigil_policy_tiers(e.study_id, e.site_id, e.severity) pt
        WHERE pt.tier = v_tier;
        INSERT INTO escalation_pages AS ep (alert_id, step, tier, researcher_id, channel)
        SELECT e.alert_id, e.step, v_tier, r.researcher_id, r.channel
        FROM vigil_tier_recipients(e.study_id, e.site_id, e.severity, t.targets, t.channels) r
        ON CONFLICT DO NOTHING;
        SELECT coalesce(jsonb_agg(jsonb_build_object('researcher_id', ep.researcher_id,
                                                     'channel', ep.channel)
                                  ORDER BY ep.researcher_id, ep.channel), '[]'::jsonb)
        INTO v_pages FROM escalation_pages ep
        WHERE ep.alert_id = e.alert_id AND ep.step = e.step;
        PERFORM vigil_audit_append(e.alert_id, CASE WHEN e.step = 0 THEN 'paged' ELSE 'escalated' END,
            p_actor, jsonb_build_object('step', e.step, 'tier', v_tier, 'of_tiers', v_ntiers,
                'targets', to_jsonb(t.targets), 'pages', v_pages,
                'due_at', to_char(e.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'lag_ms', round(extract(epoch FROM v_now - e.due_at) * 1000)));
        IF v_tier < v_ntiers OR e.last_tier_at IS NULL THEN
            v_next := t.ack_deadline_s;     -- the last tier too, the first time
        ELSE
            v_next := t.repeat_last_s;
        END IF;
        UPDATE escalations x SET step = e.step + 1,
            due_at = v_now + make_interval(secs => v_next * p_scale),
            last_tier_at = CASE WHEN v_tier = v_ntiers THEN coalesce(e.last_tier_at, v_now) END,
            past_last_tier = (v_tier = v_ntiers AND e.last_tier_at IS NOT NULL)
        WHERE x.alert_id = e.alert_id;
        RETURN QUERY SELECT ep.alert_id, ep.step, ep.tier, ep.researcher_id, ep.channel,
                            e.due_at, v_now
                     FROM escalation_pages ep
                     WHERE ep.alert_id = e.alert_id AND ep.step = e.step;
        IF NOT FOUND THEN
            -- a step nobody could be paged for still advances (the next
            -- tier may reach someone); the 'escalated' event shows pages [].
            RETURN QUERY SELECT e.alert_id, e.step, v_tier, NULL::text, NULL::text, e.due_at, v_now;
        END IF;
    END LOOP;
END;
$$;

-- Pages handed out at least p_lease_s seconds ago whose notification is not
-- final: handed again (to the caller). Pages found final are settled.
CREATE FUNCTION vigil_escalation_recover(p_lease_s integer, p_limit integer)
RETURNS TABLE (alert_id text, step integer, researcher_id text, channel text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    UPDATE escalation_pages ep SET settled = true
    FROM notifications n
    WHERE NOT ep.settled AND ep.handed_at < now() - make_interval(secs => p_lease_s)
      AND n.alert_id = ep.alert_id AND n.researcher_id = ep.researcher_id
      AND n.channel = ep.channel AND n.step = ep.step
      AND n.state IN ('sent', 'failed', 'suppressed');
    RETURN QUERY
    WITH due AS (
        SELECT ep.alert_id, ep.step, ep.researcher_id, ep.channel FROM escalation_pages ep
        WHERE NOT ep.settled AND ep.handed_at < now() - make_interval(secs => p_lease_s)
        ORDER BY ep.handed_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    UPDATE escalation_pages ep SET handed_at = now()
    FROM due
    WHERE ep.alert_id = due.alert_id AND ep.step = due.step
      AND ep.researcher_id = due.researcher_id AND ep.channel = due.channel
    RETURNING ep.alert_id, ep.step, ep.researcher_id, ep.channel;
END;
$$;
