-- 0050_dq_report: the data-quality report (`vigil dq report`, and the
-- console's page of the same) reads a study's findings by the time vigil
-- received them. Findings are few, so a partial index keeps this small and
-- the report cheap on a table of millions of results.
CREATE INDEX observations_dq_received_idx
    ON observations (study_id, created_at)
    WHERE dq_finding IS NOT NULL;

-- dq_findings_weekly: findings per study, site, week received, kind, code
-- and unit -- what the report's sections add up, for any other reader (the
-- console). Weeks start on Monday, UTC.
CREATE VIEW dq_findings_weekly AS
SELECT study_id, site_id,
       date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS week,
       dq_finding AS finding, loinc AS code, unit, count(*) AS results
  FROM observations
 WHERE dq_finding IS NOT NULL
 GROUP BY study_id, site_id, 3, dq_finding, loinc, unit;
