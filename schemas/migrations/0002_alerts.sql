-- 0002_alerts: every safety signal a worker raised, and its retractions.

-- alerts: one row per vigil.Alert. alert_id is deterministic (same rule,
-- same rule version, same evidence => same id), so a replayed observation
-- inserts nothing new (INSERT ... ON CONFLICT (alert_id) DO NOTHING).
--
-- A retraction (the observation behind a signal was entered-in-error or
-- cancelled) is an alert of its own kind naming the signal it retracts in
-- retracts_alert_id; the signal's row is then marked retracted/retracted_by
-- so the safety physician's view shows it withdrawn, never deleted.
--
-- observation_id is not a foreign key to observations: the worker writes
-- both in one batch, but an alert may also be imported or re-derived, and
-- the alert is the record that must survive.
CREATE TABLE alerts (
    alert_id          text PRIMARY KEY,
    kind              text NOT NULL DEFAULT 'signal'
        CONSTRAINT alerts_kind_check CHECK (kind IN ('signal', 'retraction')),
    rule_id           text NOT NULL,
    rule_version      integer NOT NULL CONSTRAINT alerts_rule_version_check CHECK (rule_version > 0),
    severity          text NOT NULL
        CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    ctcae_grade       smallint
        CONSTRAINT alerts_ctcae_grade_check CHECK (ctcae_grade BETWEEN 1 AND 5),
    study_id          text NOT NULL,
    site_id           text NOT NULL,
    subject_id        text NOT NULL,         -- pseudonym only
    observation_id    text,                  -- the triggering observation
    -- the evidence observations: [{"observation_id":..., "loinc":..., "value":...,
    -- "unit":..., "effective_at":...}, ...]
    evidence          jsonb NOT NULL DEFAULT '[]'::jsonb
        CONSTRAINT alerts_evidence_check CHECK (jsonb_typeof(evidence) = 'array'),
    message           text NOT NULL,         -- no PHI beyond the pseudonym
    observed_at       timestamptz NOT NULL,  -- effective time of the triggering observation
    detected_at       timestamptz NOT NULL,
    retracts_alert_id text,
    retracted         boolean NOT NULL DEFAULT false,
    retracted_by      text,                  -- alert_id of the retraction
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alerts_retraction_check
        CHECK ((kind = 'retraction') = (retracts_alert_id IS NOT NULL)),
    CONSTRAINT alerts_retracted_by_check
        CHECK (retracted OR retracted_by IS NULL)
);

-- The safety physician's queue and a subject's alert history.
CREATE INDEX alerts_subject_idx ON alerts (study_id, subject_id, detected_at);
CREATE INDEX alerts_study_detected_idx ON alerts (study_id, detected_at);
-- Finding the signals raised from an observation that is later withdrawn.
CREATE INDEX alerts_observation_idx ON alerts (observation_id);
