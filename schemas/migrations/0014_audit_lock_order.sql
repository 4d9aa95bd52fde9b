-- 0014_audit_lock_order: one lock order for everything that appends to the
-- audit trail, so that no two of them can deadlock.
--
-- The order: the chain head (alert_events_head) first, then any other row.
-- Before this, vigil_escalation_fire held its timer rows and then waited
-- for the head, while a worker batch that had appended ('opened') held the
-- head and then, retracting an alert, waited for that alert's timer row:
-- a deadlock PostgreSQL breaks by aborting one of them (the worker's batch
-- retried, or a step a tick late). Likewise an acknowledgement (lifecycle
-- row, then timer, then head) against a retraction in a worker batch
-- (head, then lifecycle). Each function below now takes the head first;
-- vigil_escalation_fire's SKIP LOCKED then never waits at all. The cost:
-- appends were already serialized on the head until commit; the head is
-- now held from the start of these transactions instead of from their
-- first append, a few statements earlier.
--
-- Signatures and answers are unchanged (CREATE OR REPLACE).

CREATE FUNCTION vigil_audit_lock() RETURNS void LANGUAGE sql AS $$
    SELECT NULL::void FROM alert_events_head WHERE one FOR UPDATE
$$;


CREATE OR REPLACE FUNCTION vigil_alert_opened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vigil_audit_lock(); -- the head first: see the top of 0014
    INSERT INTO alert_lifecycle (alert_id, study_id, site_id, severity, opened_at)
    VALUES (NEW.alert_id, NEW.study_id, NEW.site_id, NEW.severity, now())
    ON CONFLICT (alert_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM vigil_audit_append(NEW.alert_id, 'opened', 'worker',
        jsonb_build_object('severity', NEW.severity, 'study_id', NEW.study_id,
                           'site_id', NEW.site_id, 'rule_id', NEW.rule_id,
                           'rule_version', NEW.rule_version));
    IF NEW.severity = 'critical' AND EXISTS (
            SELECT 1 FROM vigil_policy_tiers(NEW.study_id, NEW.site_id, NEW.severity)) THEN
        INSERT INTO escalations (alert_id, study_id, site_id, severity, step, due_at)
        VALUES (NEW.alert_id, NEW.study_id, NEW.site_id, NEW.severity, 0, now())
        ON CONFLICT (alert_id) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION vigil_alert_retracted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
BEGIN
    PERFORM vigil_audit_lock(); -- the head first: see the top of 0014
    SELECT state INTO v_prev FROM alert_lifecycle WHERE alert_id = NEW.alert_id FOR UPDATE;
    IF NOT FOUND OR v_prev = 'retracted' THEN
        RETURN NULL;
    END IF;
    UPDATE alert_lifecycle SET state = 'retracted', retracted_at = now(),
        retracted_by = NEW.retracted_by WHERE alert_id = NEW.alert_id;
    UPDATE escalations SET state = 'stopped', stopped_at = now(), stop_reason = 'retracted'
    WHERE alert_id = NEW.alert_id AND state = 'active';
    PERFORM vigil_audit_append(NEW.alert_id, 'retracted', 'worker',
        jsonb_build_object('retracted_by', NEW.retracted_by, 'previous_state', v_prev));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION vigil_alert_ack(p_alert_id text, p_researcher_id text, p_channel text,
                                p_origin text, p_note text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_answer text;
    v_detail jsonb := jsonb_strip_nulls(jsonb_build_object('channel', p_channel,
                          'origin', p_origin, 'note', p_note));
BEGIN
    PERFORM vigil_audit_lock(); -- the head first: see the top of 0014
    SELECT state INTO v_state FROM alert_lifecycle WHERE alert_id = p_alert_id FOR UPDATE;
    IF NOT FOUND THEN
        v_answer := 'unknown_alert';
    ELSIF v_state = 'acknowledged' THEN
        v_answer := 'already_acknowledged';
    ELSIF v_state = 'resolved' THEN
        v_answer := 'already_resolved';
    ELSIF v_state = 'retracted' THEN
        v_answer := 'retracted';
    ELSE
        UPDATE alert_lifecycle SET state = 'acknowledged', acknowledged_at = now(),
            acknowledged_by = p_researcher_id, ack_channel = p_channel, ack_origin = p_origin,
            ack_note = p_note
        WHERE alert_id = p_alert_id;
        UPDATE escalations SET state = 'stopped', stopped_at = now(), stop_reason = 'acknowledged'
        WHERE alert_id = p_alert_id AND state = 'active';
        PERFORM vigil_audit_append(p_alert_id, 'acknowledged', p_researcher_id, v_detail);
        RETURN 'acknowledged';
    END IF;
    PERFORM vigil_audit_append(p_alert_id, 'ack_refused', p_researcher_id,
                               v_detail || jsonb_build_object('answer', v_answer));
    RETURN v_answer;
END;
$$;

CREATE OR REPLACE FUNCTION vigil_alert_resolve(p_alert_id text, p_researcher_id text, p_category text,
                                    p_note text, p_channel text, p_origin text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_answer text;
    v_detail jsonb := jsonb_strip_nulls(jsonb_build_object('category', p_category,
                          'note', p_note, 'channel', p_channel, 'origin', p_origin));
BEGIN
    PERFORM vigil_audit_lock(); -- the head first: see the top of 0014
    SELECT state INTO v_state FROM alert_lifecycle WHERE alert_id = p_alert_id FOR UPDATE;
    IF NOT FOUND THEN
        v_answer := 'unknown_alert';
    ELSIF v_state = 'resolved' THEN
        v_answer := 'already_resolved';
    ELSIF v_state = 'retracted' THEN
        v_answer := 'retracted';
    ELSIF p_category IS NULL OR NOT EXISTS (
            SELECT 1 FROM resolution_categories WHERE category = p_category) THEN
        v_answer := 'bad_category';
    ELSE
        -- Resolving an open alert acknowledges it too: the person who
        -- resolved it has evidently seen it.
        UPDATE alert_lifecycle SET state = 'resolved', resolved_at = now(),
            resolved_by = p_researcher_id, resolution_category = p_category,
            resolution_note = p_note,
            acknowledged_at = coalesce(acknowledged_at, now()),
            acknowledged_by = coalesce(acknowledged_by, p_researcher_id),
            ack_channel = coalesce(ack_channel, p_channel),
            ack_origin = coalesce(ack_origin, p_origin)
        WHERE alert_id = p_alert_id;
        UPDATE escalations SET state = 'stopped', stopped_at = now(), stop_reason = 'resolved'
        WHERE alert_id = p_alert_id AND state = 'active';
        PERFORM vigil_audit_append(p_alert_id, 'resolved', p_researcher_id, v_detail);
        RETURN 'resolved';
    END IF;
    PERFORM vigil_audit_append(p_alert_id, 'resolve_refused', p_researcher_id,
                               v_detail || jsonb_build_object('answer', v_answer));
    RETURN v_answer;
END;
$$;

CREATE OR REPLACE FUNCTION vigil_escalation_fire(p_limit integer, p_scale double precision, p_actor text)
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
    -- nothing due (most ticks): no lock, so an idle notifier never makes
    -- a worker's batch wait for the head
    IF NOT EXISTS (SELECT 1 FROM escalations x WHERE x.state = 'active'
                   AND x.due_at <= now()) THEN
        RETURN;
    END IF;
    PERFORM vigil_audit_lock(); -- the head first: see the top of 0014
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
