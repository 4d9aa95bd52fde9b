-- 0006_unroutable_alerts: alerts the notifier could route to nobody -- no
-- matching subscriber and no active safety contact for the study. Never
-- silently dropped: each is recorded here once (replays change nothing),
-- counted in vigil_notifier_unroutable_total and logged; a safety
-- physician's view lists them until the directory is fixed.
CREATE TABLE unroutable_alerts (
    alert_id    text PRIMARY KEY,
    study_id    text NOT NULL,
    site_id     text NOT NULL,
    severity    text NOT NULL
        CONSTRAINT unroutable_alerts_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX unroutable_alerts_study_idx ON unroutable_alerts (study_id, recorded_at);
