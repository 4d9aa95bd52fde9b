-- 0040_dead_letters: records that could be dead-lettered neither whole nor
-- truncated (the dead-letter topic missing, not authorised, refusing even
-- the first bytes) and were skipped under dlq_policy=skip (the default), so
-- that one such record never stops its partition. Each row holds what the
-- truncated dead letter's headers would have said; the record itself stays
-- readable at its source offset while the topic's retention keeps it. A
-- replay of the same record updates its row (one row per source record and
-- consumer group). Also logged (error) and counted
-- (vigil_dead_letters_skipped_total).
CREATE TABLE dead_letters (
    consumer_group    text        NOT NULL,  -- vigil-workers, vigil-notifier, ...
    source_topic      text        NOT NULL,
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL,
    source_timestamp  timestamptz,           -- the record's own timestamp
    dead_letter_topic text        NOT NULL,  -- where it should have gone ('' if none set)
    error_class       text        NOT NULL,  -- why it was dead-lettered (truncated, oversize, ...)
    error_message     text        NOT NULL,
    publish_error     text        NOT NULL,  -- why the dead-letter topic refused it
    original_size     bigint      NOT NULL,  -- bytes of the record's value
    original_sha256   text        NOT NULL
        CONSTRAINT dead_letters_sha256_check CHECK (original_sha256 ~ '^[0-9a-f]{64}$'),
    head              bytea       NOT NULL,  -- the value's first dlq_truncate_bytes bytes
    record_key        bytea,                 -- the key, cut to dlq_truncate_bytes
    headers           jsonb       NOT NULL,  -- the truncated dead letter's headers
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    times_recorded    integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (consumer_group, source_topic, source_partition, source_offset)
);

CREATE INDEX dead_letters_recorded_idx ON dead_letters (recorded_at);
