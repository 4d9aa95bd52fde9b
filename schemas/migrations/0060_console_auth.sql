-- 0060_console_auth: who may use `vigil console`, their sessions, API
-- tokens and per-study roles.
--
-- Console users are researchers (0003) with a password. Secrets are never
-- stored: passwords as Argon2id strings (libsodium's crypto_pwhash_str,
-- parameters inside the string), session ids, CSRF tokens and API tokens as
-- the hex SHA-256 of the random value handed out (32 random bytes: a
-- digest without salt is enough, there is nothing to guess).

-- console_credentials: one per researcher who may sign in. email is the
-- sign-in name, lower-cased and unique here (researchers.email is not
-- unique: two directory rows may share a mailbox, two logins may not).
-- failed_count/locked_until implement the backoff and lockout: see
-- console/auth.c for the schedule.
CREATE TABLE console_credentials (
    researcher_id       text PRIMARY KEY REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    email               text NOT NULL
        CONSTRAINT console_credentials_email_check CHECK (email = lower(email) AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    password_hash       text NOT NULL
        CONSTRAINT console_credentials_hash_check CHECK (password_hash LIKE '$argon2id$%'),
    disabled            boolean NOT NULL DEFAULT false,
    failed_count        integer NOT NULL DEFAULT 0 CONSTRAINT console_credentials_failed_check CHECK (failed_count >= 0),
    locked_until        timestamptz,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX console_credentials_email_key ON console_credentials (email);

-- console_sessions: a signed-in browser. The cookie holds the random id;
-- the row holds its digest, so a leaked table (or backup) cannot be replayed
-- as a cookie. A session ends at expires_at (absolute) or after idle_until
-- passes without a request (sliding); sign-in always makes a new row and
-- deletes the one the browser presented (no fixation).
CREATE TABLE console_sessions (
    session_hash  text PRIMARY KEY CONSTRAINT console_sessions_hash_check CHECK (session_hash ~ '^[0-9a-f]{64}$'),
    researcher_id text NOT NULL REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    csrf_hash     text NOT NULL CONSTRAINT console_sessions_csrf_check CHECK (csrf_hash ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    idle_until    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_researcher_idx ON console_sessions (researcher_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- console_grants: researcher R has ROLE in study S. role 'admin' is global
-- (study_id null) and sees every study as a study-admin would; the other
-- roles name one study. One role per (researcher, study): the highest wins
-- by replacing the row, never by adding one.
--   viewer       read alerts, subjects
--   responder    viewer + acknowledge and resolve alerts
--   study_admin  responder + the study's directory and policies
CREATE TABLE console_grants (
    researcher_id text NOT NULL REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    study_id      text REFERENCES studies (study_id) ON DELETE CASCADE,
    role          text NOT NULL
        CONSTRAINT console_grants_role_check CHECK (role IN ('viewer', 'responder', 'study_admin', 'admin')),
    granted_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT console_grants_scope_check CHECK ((role = 'admin') = (study_id IS NULL))
);
CREATE UNIQUE INDEX console_grants_key ON console_grants (researcher_id, coalesce(study_id, ''));

-- console_api_tokens: for scripts. Bound to a researcher, limited to
-- study_ids and to max_role (never more than the researcher's own grants:
-- console_study_roles takes the lesser), and expiring.
CREATE TABLE console_api_tokens (
    token_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    text NOT NULL UNIQUE CONSTRAINT console_api_tokens_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    researcher_id text NOT NULL REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    name          text NOT NULL,
    study_ids     text[] NOT NULL,
    max_role      text NOT NULL
        CONSTRAINT console_api_tokens_role_check CHECK (max_role IN ('viewer', 'responder', 'study_admin')),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION console_role_rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_role WHEN 'viewer' THEN 1 WHEN 'responder' THEN 2
                       WHEN 'study_admin' THEN 3 WHEN 'admin' THEN 3 END
$$;

-- console_study_roles(R, T): the studies researcher R may see, each with
-- R's rank there (1 viewer, 2 responder, 3 study-admin), through API token
-- T (null for a browser session: then R's grants as they are). Every
-- console query joins its rows to this, so a caller's studies are filtered
-- in SQL, never after fetching. A disabled login or an inactive researcher
-- has no studies at all, whatever the grants say. A token's max_role caps
-- the rank (a session has no cap: rank 3); rows are only ever rank 1..3.
CREATE FUNCTION console_study_roles(p_researcher_id text, p_token_id bigint)
RETURNS TABLE (study_id text, rank integer)
LANGUAGE sql STABLE AS $$
  SELECT x.study_id, x.rank FROM (
    SELECT s.study_id,
           least(max(console_role_rank(g.role)),
                 CASE WHEN p_token_id IS NULL THEN 3 ELSE min(console_role_rank(t.max_role)) END) AS rank
      FROM console_grants g
      JOIN researchers r ON r.researcher_id = g.researcher_id AND r.active
      JOIN console_credentials c ON c.researcher_id = g.researcher_id AND NOT c.disabled
      JOIN studies s ON s.study_id = g.study_id OR g.role = 'admin'
      LEFT JOIN console_api_tokens t ON t.token_id = p_token_id
     WHERE g.researcher_id = p_researcher_id
       AND (p_token_id IS NULL
            OR (t.researcher_id = p_researcher_id AND s.study_id = ANY (t.study_ids)
                AND t.revoked_at IS NULL AND t.expires_at > now()))
     GROUP BY s.study_id
  ) x WHERE x.rank BETWEEN 1 AND 3
$$;
