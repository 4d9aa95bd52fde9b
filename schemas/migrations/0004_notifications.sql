-- 0004_notifications: the notifier's delivery log.

-- notifications: one row per (alert, researcher, channel). The notifier
-- inserts the row as 'pending' BEFORE it sends (INSERT ... ON CONFLICT DO
-- NOTHING: 0 rows means another notifier, or an earlier run, already owns
-- this delivery) and moves it to 'sending', then 'sent' or 'failed' after.
-- The primary key is what makes a replayed alert not page again.
--
--   pending    recorded, not yet tried (or waiting for next_attempt_at)
--   sending    a notifier is talking to the provider right now; a row left
--              in this state by a crash is retried only after a timeout,
--              accepting a possible duplicate over a lost page
--   sent       the provider accepted it (provider_message_id)
--   failed     gave up after the last attempt (last_error says why)
--   suppressed deliberately not sent (researcher inactive, below min_severity
--              after a change, retracted before sending, ...)
--
-- No foreign keys to alerts or researchers: the notifier learns alerts from
-- Kafka, possibly before the worker's alert row is visible, and the log must
-- outlive a researcher who is removed from the directory.
CREATE TABLE notifications (
    alert_id            text NOT NULL,
    researcher_id       text NOT NULL,
    channel             text NOT NULL
        CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'sms')),
    state               text NOT NULL DEFAULT 'pending'
        CONSTRAINT notifications_state_check
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'suppressed')),
    attempts            integer NOT NULL DEFAULT 0 CONSTRAINT notifications_attempts_check CHECK (attempts >= 0),
    next_attempt_at     timestamptz,
    last_error          text,
    provider_message_id text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    PRIMARY KEY (alert_id, researcher_id, channel),
    CONSTRAINT notifications_sent_at_check CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);

-- Work a notifier resumes after a restart: unfinished deliveries, oldest due first.
CREATE INDEX notifications_unfinished_idx ON notifications (next_attempt_at)
    WHERE state IN ('pending', 'sending');
