-- 0001_observations: every observation a worker has processed, one row per
-- FHIR Observation id.
--
-- Migrations run inside one transaction each (vigil migrate), in the schema
-- first on the connection's search_path: never qualify names with a schema
-- and never use transaction control or CREATE INDEX CONCURRENTLY here.

-- observations: the durable copy of what arrived on vigil.observations,
-- raw and normalised side by side, so a physician can see what the lab sent
-- and what the rules compared. Keyed by observation_id so a replayed message
-- changes nothing.
--
-- An amended or corrected result arrives with the same observation_id and
-- updates the row. The writer stamps each version with a monotonic
-- `revision` (the worker uses issued_at in epoch milliseconds: a lab that
-- amends a result re-issues it later) and upserts only forward, so a replay
-- of an older message after a newer one can never roll the row back:
--
--   INSERT INTO observations (...) VALUES ($1, ...)
--   ON CONFLICT (observation_id) DO UPDATE SET ... = EXCLUDED...., updated_at = now()
--   WHERE observations.revision < EXCLUDED.revision;
--
-- A replay of the same revision updates nothing (and reports 0 rows).
CREATE TABLE observations (
    observation_id   text PRIMARY KEY,
    study_id         text NOT NULL,
    site_id          text NOT NULL,
    subject_id       text NOT NULL,          -- pseudonym; names and MRNs never stored
    loinc            text NOT NULL,
    -- as sent by the lab (value is null when the result has none, e.g. cancelled)
    value            double precision,
    unit             text,
    ref_low          double precision,
    ref_high         double precision,
    -- normalised to the canonical UCUM unit of the LOINC code; null when the
    -- code or unit is unknown or the value is implausible (see dq_finding)
    value_norm       double precision,
    unit_norm        text,
    ref_low_norm     double precision,
    ref_high_norm    double precision,
    effective_at     timestamptz NOT NULL,   -- when the sample was taken (event time)
    issued_at        timestamptz,            -- when the lab released the result
    status           text NOT NULL
        CONSTRAINT observations_status_check
        CHECK (status IN ('final', 'amended', 'corrected', 'cancelled', 'entered-in-error')),
    visit            text,
    -- data-quality finding ('unknown_unit', 'implausible_value', ...): a
    -- finding is not a clinical alert, but the row is kept for the data manager
    dq_finding       text
        CONSTRAINT observations_dq_finding_check
        CHECK (dq_finding ~ '^[a-z][a-z0-9_]{0,63}$'),
    -- where the current revision came from (Kafka Connect's DLQ convention)
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    revision         bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT observations_ref_range_check
        CHECK (ref_low IS NULL OR ref_high IS NULL OR ref_low <= ref_high)
);

-- A subject's history of one test in event-time order: baselines, Hy's law
-- windows and warming a restarted worker's per-subject state.
CREATE INDEX observations_subject_loinc_idx
    ON observations (study_id, subject_id, loinc, effective_at);

-- Per-site review of data-quality findings (small: most rows have none).
CREATE INDEX observations_dq_finding_idx
    ON observations (study_id, site_id, effective_at)
    WHERE dq_finding IS NOT NULL;
