-- 0013_warning_digest: warning alerts do not escalate; instead each
-- researcher subscribed at warning level gets one email a day listing the
-- warnings still open (unacknowledged) in their studies and sites. Off for
-- a (study, site) whose warning policy says digest: false.

-- warning_digests: one row per (UTC day, researcher), claimed by whichever
-- notifier gets there first (INSERT ... ON CONFLICT), so any number of
-- replicas send each digest once. 'sending' left by a crash is taken over
-- after a lease; 'failed' is retried a few times.
CREATE TABLE warning_digests (
    day           date NOT NULL,
    researcher_id text NOT NULL,
    state         text NOT NULL DEFAULT 'sending'
        CONSTRAINT warning_digests_state_check CHECK (state IN ('sending', 'sent', 'failed')),
    alert_ids     text[] NOT NULL,
    attempts      integer NOT NULL DEFAULT 1,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    last_error    text,
    PRIMARY KEY (day, researcher_id)
);

-- Claims up to p_limit digests of p_day: researchers with open warnings
-- older than p_min_age_s (a fresh one was just sent on its own). Returns
-- who, where to, and which alerts (at most 200, oldest first).
CREATE FUNCTION vigil_digest_claim(p_day date, p_min_age_s integer, p_lease_s integer,
                                   p_limit integer)
RETURNS TABLE (researcher_id text, email text, alert_ids text[])
LANGUAGE sql AS $$
    WITH cand AS (
        SELECT s.researcher_id,
               (array_agg(DISTINCT l.alert_id))[1:200] AS ids
        FROM subscriptions s
        JOIN researchers r ON r.researcher_id = s.researcher_id AND r.active
                          AND r.email IS NOT NULL
        JOIN alert_lifecycle l ON l.study_id = s.study_id
                              AND (s.site_id IS NULL OR s.site_id = l.site_id)
        WHERE s.min_severity IN ('info', 'warning') AND 'email' = ANY (s.channels)
          AND l.severity = 'warning' AND l.state = 'open'
          AND l.opened_at < now() - make_interval(secs => p_min_age_s)
          AND coalesce((SELECT p.digest FROM escalation_policies p
                        WHERE p.study_id = l.study_id AND p.severity = 'warning'
                          AND (p.site_id = l.site_id OR p.site_id IS NULL)
                        ORDER BY p.site_id IS NULL LIMIT 1), true)
        GROUP BY s.researcher_id
        ORDER BY s.researcher_id
        LIMIT p_limit),
    ins AS (
        INSERT INTO warning_digests AS d (day, researcher_id, alert_ids)
        SELECT p_day, c.researcher_id, c.ids FROM cand c
        ON CONFLICT (day, researcher_id) DO UPDATE
            SET claimed_at = now(), attempts = d.attempts + 1, state = 'sending',
                alert_ids = EXCLUDED.alert_ids
            WHERE (d.state = 'sending' AND d.claimed_at < now() - make_interval(secs => p_lease_s))
               OR (d.state = 'failed' AND d.attempts < 5
                   AND d.claimed_at < now() - make_interval(secs => p_lease_s))
        RETURNING d.researcher_id, d.alert_ids)
    SELECT ins.researcher_id, r.email, ins.alert_ids
    FROM ins JOIN researchers r ON r.researcher_id = ins.researcher_id
$$;
