-- 0005_subject_baselines: each subject's baseline per test.

-- subject_baselines: the first usable result (earliest effective time) of
-- each test for each subject: what CTCAE's "baseline abnormal" branch and
-- the baseline_change rules compare against. A view, not a table: it can
-- never disagree with observations (an entered-in-error baseline simply
-- stops being chosen, and the next result becomes the baseline), and
-- observations_subject_loinc_idx makes a per-subject lookup an index scan.
-- A restarted worker warms its per-subject state from here.
CREATE VIEW subject_baselines AS
SELECT DISTINCT ON (study_id, subject_id, loinc)
       study_id, subject_id, loinc,
       value_norm, unit_norm, ref_low_norm, ref_high_norm,
       observation_id, effective_at
  FROM observations
 WHERE status IN ('final', 'amended', 'corrected')
   AND value_norm IS NOT NULL
   AND dq_finding IS NULL
 ORDER BY study_id, subject_id, loinc, effective_at, observation_id;
