-- 0017_alerts_drop_study_detected_idx: alerts (study_id, detected_at) from
-- 0002 is a prefix of 0061's (study_id, detected_at, alert_id), which
-- serves every query the shorter one did (the console's one-study pages,
-- by study and time); keeping both cost the worker one more index entry
-- per alert row for nothing.
DROP INDEX alerts_study_detected_idx;
