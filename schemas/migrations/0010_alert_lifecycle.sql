-- 0010_alert_lifecycle: the closed loop (issue #14). Each signal alert has a
-- lifecycle (open -> acknowledged -> resolved, or retracted), critical ones
-- an escalation timer, and every transition is an event in an append-only,
-- hash-chained audit trail (alert_events).
--
-- WHY the rows come from triggers on alerts and not from the notifier: the
-- alert row is durable the moment the worker's batch commits, whether or
-- not any notifier is running. A lifecycle row and a timer created in the
-- same transaction exist exactly when the alert does, so a deadline that
-- falls while every notifier is down is still in the table when one comes
-- back, and a replayed alert (ON CONFLICT DO NOTHING in store_batch.c)
-- creates nothing twice. The worker writes alerts with INSERT ... SELECT
-- from its COPY staging table; alerts are rare (a few per thousand
-- observations), so a row-level trigger costs nothing measurable there.
-- The retraction side hangs off the UPDATE that store_batch.c already
-- makes (alerts.retracted goes true), the one place a retraction becomes
-- effective.

-- ---- resolution categories ----------------------------------------------
CREATE TABLE resolution_categories (
    category    text PRIMARY KEY CONSTRAINT resolution_categories_name_check
        CHECK (category ~ '^[a-z][a-z0-9_]{0,39}$'),
    description text NOT NULL
);
INSERT INTO resolution_categories (category, description) VALUES
    ('clinically_managed', 'clinically managed'),
    ('lab_error', 'laboratory or transcription error'),
    ('known_expected', 'known or expected for this subject'),
    ('reported_as_sae', 'reported as a serious adverse event'),
    ('other', 'other (the note says what)');

-- ---- lifecycle -----------------------------------------------------------
-- alert_lifecycle: one row per signal alert (retraction alerts have none:
-- they are the event that moves a signal to 'retracted').
CREATE TABLE alert_lifecycle (
    alert_id            text PRIMARY KEY REFERENCES alerts (alert_id) ON DELETE CASCADE,
    study_id            text NOT NULL,
    site_id             text NOT NULL,
    severity            text NOT NULL,
    state               text NOT NULL DEFAULT 'open'
        CONSTRAINT alert_lifecycle_state_check
        CHECK (state IN ('open', 'acknowledged', 'resolved', 'retracted')),
    opened_at           timestamptz NOT NULL DEFAULT now(),
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    ack_channel         text,
    ack_origin          text,
    ack_note            text,
    resolved_at         timestamptz,
    resolved_by         text,
    resolution_category text REFERENCES resolution_categories (category),
    resolution_note     text,
    retracted_at        timestamptz,
    retracted_by        text,          -- alert_id of the retraction
    CONSTRAINT alert_lifecycle_ack_check
        CHECK (state = 'open' OR state = 'retracted' OR acknowledged_at IS NOT NULL),
    CONSTRAINT alert_lifecycle_resolved_check
        CHECK ((state = 'resolved') = (resolved_at IS NOT NULL) OR state = 'retracted')
);
-- The console's queue: open/acknowledged alerts of a study.
CREATE INDEX alert_lifecycle_study_state_idx ON alert_lifecycle (study_id, state, opened_at);

-- ---- escalation policies -------------------------------------------------
-- study_roles: who holds a role at a study (site_id null: every site). The
-- safety physician falls back to studies.safety_contact_researcher_id.
CREATE TABLE study_roles (
    study_id      text NOT NULL REFERENCES studies (study_id) ON DELETE CASCADE,
    site_id       text,
    role          text NOT NULL CONSTRAINT study_roles_role_check
        CHECK (role IN ('site_coordinator', 'investigator', 'safety_physician', 'medical_monitor')),
    researcher_id text NOT NULL REFERENCES researchers (researcher_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX study_roles_key ON study_roles (study_id, coalesce(site_id, ''), role, researcher_id);

-- escalation_policies: per study (site_id null: every site) and severity.
-- Without a row the built-in default applies (vigil_policy_tiers): critical
-- -> subscribers at once, the safety physician 15 min later, repeated every
-- 15 min; warning -> no escalation, a daily digest.
CREATE TABLE escalation_policies (
    policy_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_id      text NOT NULL REFERENCES studies (study_id) ON DELETE CASCADE,
    site_id       text,
    severity      text NOT NULL CONSTRAINT escalation_policies_severity_check
        CHECK (severity IN ('warning', 'critical')),
    repeat_last_s integer NOT NULL DEFAULT 900 CONSTRAINT escalation_policies_repeat_check
        CHECK (repeat_last_s BETWEEN 1 AND 86400),
    digest        boolean NOT NULL DEFAULT false,  -- daily digest of unacknowledged alerts
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX escalation_policies_key
    ON escalation_policies (study_id, coalesce(site_id, ''), severity);

-- escalation_tiers: ordered. targets are 'subscribers', 'role:<role>' or
-- 'researcher:<id>'; channels 'email', 'sms' or 'subscribed' (the
-- researcher's own subscription channels). ack_deadline_s: how long this
-- tier has to acknowledge before the next one is paged.
CREATE TABLE escalation_tiers (
    policy_id      bigint NOT NULL REFERENCES escalation_policies (policy_id) ON DELETE CASCADE,
    tier           integer NOT NULL CONSTRAINT escalation_tiers_tier_check CHECK (tier BETWEEN 1 AND 16),
    targets        text[] NOT NULL CONSTRAINT escalation_tiers_targets_check CHECK (cardinality(targets) > 0),
    channels       text[] NOT NULL CONSTRAINT escalation_tiers_channels_check
        CHECK (cardinality(channels) > 0 AND channels <@ ARRAY['email', 'sms', 'subscribed']::text[]),
    ack_deadline_s integer NOT NULL CONSTRAINT escalation_tiers_deadline_check
        CHECK (ack_deadline_s BETWEEN 1 AND 86400),
    PRIMARY KEY (policy_id, tier)
);

-- The tiers that apply to (study, site, severity): the site's policy, else
-- the study's, else the built-in default.
CREATE FUNCTION vigil_policy_tiers(p_study text, p_site text, p_severity text)
RETURNS TABLE (tier integer, targets text[], channels text[], ack_deadline_s integer,
               repeat_last_s integer)
LANGUAGE sql STABLE AS $$
    WITH p AS (
        SELECT policy_id, repeat_last_s FROM escalation_policies
        WHERE study_id = p_study AND severity = p_severity
          AND (site_id = p_site OR site_id IS NULL)
        ORDER BY site_id IS NULL LIMIT 1)
    SELECT t.tier, t.targets, t.channels, t.ack_deadline_s, p.repeat_last_s
    FROM p JOIN escalation_tiers t USING (policy_id)
    UNION ALL
    SELECT d.tier, d.targets, d.channels, 900, 900
    FROM (VALUES (1, ARRAY['subscribers'], ARRAY['subscribed']),
                 (2, ARRAY['role:safety_physician'], ARRAY['email', 'sms'])) AS d(tier, targets, channels)
    WHERE p_severity = 'critical' AND NOT EXISTS (SELECT 1 FROM p)
    ORDER BY 1
$$;

-- ---- durable timers ------------------------------------------------------
-- escalations: one per critical signal alert. step is the next step to fire
-- (step s pages tier min(s+1, last)); due_at when. A notifier fires due rows
-- with SELECT ... FOR UPDATE SKIP LOCKED and advances step and due_at in
-- the same transaction (0011), so each step happens once across replicas.
CREATE TABLE escalations (
    alert_id    text PRIMARY KEY REFERENCES alerts (alert_id) ON DELETE CASCADE,
    study_id    text NOT NULL,
    site_id     text NOT NULL,
    severity    text NOT NULL,
    step        integer NOT NULL DEFAULT 0,
    due_at      timestamptz NOT NULL DEFAULT now(),
    state       text NOT NULL DEFAULT 'active'
        CONSTRAINT escalations_state_check CHECK (state IN ('active', 'stopped')),
    last_tier_at timestamptz,         -- when the last tier was first paged
    stopped_at  timestamptz,
    stop_reason text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The timer's scan: active rows by due time, nothing else.
CREATE INDEX escalations_due_idx ON escalations (due_at) WHERE state = 'active';

-- ---- audit trail ---------------------------------------------------------
-- alert_events: append-only. row_hash = sha256(prev_hash || canonical
-- text), the canonical text being the jsonb array vigil_audit_canon builds
-- (jsonb's text form is deterministic: keys sorted, no insignificant
-- spaces; the time is rendered in UTC). event_id has no gaps: appends are
-- serialized by the chain head's row lock, which also makes event_id the
-- commit order. A deleted row breaks the next row's prev_hash (or, for the
-- last row, the head); an edited or inserted row breaks its own hash.
CREATE TABLE alert_events (
    event_id    bigint PRIMARY KEY,
    alert_id    text,
    kind        text NOT NULL CONSTRAINT alert_events_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
    actor       text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL,
    prev_hash   bytea NOT NULL,
    row_hash    bytea NOT NULL
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, event_id);

CREATE TABLE alert_events_head (
    one           boolean PRIMARY KEY DEFAULT true CONSTRAINT alert_events_head_one CHECK (one),
    last_event_id bigint NOT NULL,
    last_hash     bytea NOT NULL
);
INSERT INTO alert_events_head VALUES (true, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION vigil_audit_canon(p_event_id bigint, p_alert_id text, p_kind text, p_actor text,
                                  p_recorded_at timestamptz, p_detail jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_array(p_event_id, p_alert_id, p_kind, p_actor,
        to_char(p_recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        p_detail)::text
$$;

CREATE FUNCTION vigil_audit_append(p_alert_id text, p_kind text, p_actor text, p_detail jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_last bigint;
    v_prev bytea;
    v_id   bigint;
    v_at   timestamptz;
    v_det  jsonb := coalesce(p_detail, '{}'::jsonb);
    v_hash bytea;
BEGIN
    -- The lock is held to commit: appends are serialized, ids gapless.
    SELECT last_event_id, last_hash INTO v_last, v_prev FROM alert_events_head WHERE one FOR UPDATE;
    v_id := v_last + 1;
    v_at := date_trunc('microseconds', clock_timestamp());
    v_hash := sha256(v_prev || convert_to(
        vigil_audit_canon(v_id, p_alert_id, p_kind, coalesce(p_actor, ''), v_at, v_det), 'UTF8'));
    INSERT INTO alert_events (event_id, alert_id, kind, actor, detail, recorded_at, prev_hash, row_hash)
    VALUES (v_id, p_alert_id, p_kind, coalesce(p_actor, ''), v_det, v_at, v_prev, v_hash);
    UPDATE alert_events_head SET last_event_id = v_id, last_hash = v_hash WHERE one;
    RETURN v_id;
END;
$$;

-- Append-only for everyone but a superuser. The services connect as the
-- role that owns the tables (it runs the migrations), and an owner
-- bypasses nothing it has revoked from itself: UPDATE, DELETE and TRUNCATE
-- are revoked from the owner and PUBLIC, so the application gets
-- "permission denied". The trigger is the second wall, for a deployment
-- where someone grants them back. A superuser can still change rows (and
-- the owner could re-grant or drop the trigger: both are DDL, visible in
-- the server log); vigil audit verify is what detects that.
REVOKE UPDATE, DELETE, TRUNCATE ON alert_events FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON alert_events FROM CURRENT_USER;

CREATE FUNCTION vigil_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('is_superuser') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'alert_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER alert_events_append_only BEFORE UPDATE OR DELETE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION vigil_audit_refuse();
CREATE TRIGGER alert_events_no_truncate BEFORE TRUNCATE ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_audit_refuse();

-- ---- triggers on alerts --------------------------------------------------
CREATE FUNCTION vigil_alert_opened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
CREATE TRIGGER alerts_lifecycle_open AFTER INSERT ON alerts
    FOR EACH ROW WHEN (NEW.kind = 'signal') EXECUTE FUNCTION vigil_alert_opened();

CREATE FUNCTION vigil_alert_retracted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
BEGIN
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
CREATE TRIGGER alerts_lifecycle_retract AFTER UPDATE OF retracted ON alerts
    FOR EACH ROW WHEN (NEW.retracted AND NOT OLD.retracted)
    EXECUTE FUNCTION vigil_alert_retracted();

-- ---- the contract: acknowledge, resolve ----------------------------------
-- Both are idempotent and say which state they found; every call, refused
-- or not, is an event. p_channel: cli, api, email_link, sms_reply, console;
-- p_origin: where from (address, phone number, host).
CREATE FUNCTION vigil_alert_ack(p_alert_id text, p_researcher_id text, p_channel text,
                                p_origin text, p_note text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_answer text;
    v_detail jsonb := jsonb_strip_nulls(jsonb_build_object('channel', p_channel,
                          'origin', p_origin, 'note', p_note));
BEGIN
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

CREATE FUNCTION vigil_alert_resolve(p_alert_id text, p_researcher_id text, p_category text,
                                    p_note text, p_channel text, p_origin text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_answer text;
    v_detail jsonb := jsonb_strip_nulls(jsonb_build_object('category', p_category,
                          'note', p_note, 'channel', p_channel, 'origin', p_origin));
BEGIN
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
