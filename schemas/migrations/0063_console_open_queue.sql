-- 0063_console_open_queue: the console's queue of one lifecycle state
-- (GET /api/v1/alerts?state=open) read newest first from alert_lifecycle
-- itself, by (opened_at, alert_id) within a state. Without it a page read
-- alerts newest first and looked each one's state up: about 40 ms a page
-- with 10,000 open among 1,000,000 alerts, and 64 clients overflowed the
-- console's limiter (bench/console). 0010's (study_id, state, opened_at)
-- serves the same queue for one study.
CREATE INDEX alert_lifecycle_console_queue_idx ON alert_lifecycle (state, opened_at, alert_id);
