-- 0062_console_password_reset: single-use password reset links, e-mailed.
-- The link carries 256 random bits; the row keeps their SHA-256 only
-- (console/secret.h). A link works once (used_at), within 30 minutes
-- (expires_at), and using one spends every other open link of the account.
CREATE TABLE console_password_resets (
    token_hash    text PRIMARY KEY CONSTRAINT console_password_resets_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    researcher_id text NOT NULL REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX console_password_resets_researcher_idx ON console_password_resets (researcher_id, created_at);
