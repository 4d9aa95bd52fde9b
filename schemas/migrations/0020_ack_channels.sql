-- 0020_ack_channels: the researcher-facing edges of the closed loop (issue
-- #14): single-use acknowledgement links, SMS reply codes, and the webhook
-- channel's subscribers. The lifecycle itself (vigil_alert_ack, the audit
-- trail) is 0010's.

-- ---- acknowledgement links -------------------------------------------------
-- A link is signed (alerting/acklink.c) and stateless until it is used:
-- the console records its nonce here in the transaction that acknowledges,
-- so the second use of the same link finds the row and is refused as a
-- replay. Rows are small and few (one per acknowledgement by link).
CREATE TABLE ack_link_uses (
    nonce         text PRIMARY KEY CONSTRAINT ack_link_uses_nonce_check CHECK (nonce ~ '^[0-9a-f]{32}$'),
    kid           text NOT NULL,
    alert_id      text NOT NULL,
    researcher_id text NOT NULL,
    answer        text NOT NULL,         -- what vigil_alert_ack said
    client        text,                  -- the browser's address
    used_at       timestamptz NOT NULL DEFAULT now()
);

-- ---- SMS reply codes ---------------------------------------------------------
-- One short code per SMS delivery (an SMS may carry several alerts of one
-- subject): the researcher replies "ACK 4821" from the phone that was
-- paged. A code is unique per phone number while it is unexpired, so four
-- digits suffice; a reply is matched on (phone, code), which is why a code
-- sent to one number acknowledges nothing when it comes from another.
CREATE TABLE sms_ack_codes (
    phone         text NOT NULL,
    code          text NOT NULL CONSTRAINT sms_ack_codes_code_check CHECK (code ~ '^[0-9]{4,8}$'),
    researcher_id text NOT NULL,
    alert_ids     text[] NOT NULL CONSTRAINT sms_ack_codes_alerts_check CHECK (cardinality(alert_ids) > 0),
    delivery_key  text NOT NULL,          -- alert ids + researcher: a retried SMS keeps its code
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    PRIMARY KEY (phone, code)
);
CREATE UNIQUE INDEX sms_ack_codes_delivery_key ON sms_ack_codes (delivery_key);

-- Returns the code of the SMS delivery DELIVERY_KEY, issuing one on the
-- first call (and again once it expired): random 4 digits, unique for PHONE among its unexpired codes
-- (an expired code of that phone is reused), 6 digits if 4 keep colliding.
CREATE FUNCTION vigil_sms_code_issue(p_phone text, p_researcher_id text, p_alert_ids text[],
                                     p_delivery_key text, p_ttl_s integer)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_code text;
    v_try  integer := 0;
BEGIN
    SELECT code INTO v_code FROM sms_ack_codes
    WHERE delivery_key = p_delivery_key AND expires_at > now();
    IF FOUND THEN
        RETURN v_code;
    END IF;
    -- a page repeated after its code expired (an escalation's last tier
    -- repeats until acknowledged) gets a fresh code
    DELETE FROM sms_ack_codes WHERE delivery_key = p_delivery_key;
    LOOP
        v_try := v_try + 1;
        IF v_try > 40 THEN
            RAISE EXCEPTION 'no free SMS code for this phone';
        END IF;
        v_code := CASE WHEN v_try <= 20 THEN lpad((1000 + floor(random() * 9000))::int::text, 4, '0')
                       ELSE (100000 + floor(random() * 900000))::int::text END;
        DELETE FROM sms_ack_codes WHERE phone = p_phone AND code = v_code AND expires_at < now();
        INSERT INTO sms_ack_codes (phone, code, researcher_id, alert_ids, delivery_key, expires_at)
        VALUES (p_phone, v_code, p_researcher_id, p_alert_ids, p_delivery_key,
                now() + make_interval(secs => p_ttl_s))
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            RETURN v_code;
        END IF;
        -- a concurrent call for the same delivery may have won
        SELECT code INTO v_code FROM sms_ack_codes WHERE delivery_key = p_delivery_key;
        IF FOUND THEN
            RETURN v_code;
        END IF;
    END LOOP;
END;
$$;

-- ---- webhook subscribers -------------------------------------------------------
-- Systems that subscribe to a study's alerts (an EHR, a CTMS, a chat tool).
-- secret: the Standard Webhooks signing secret, "whsec_" + base64 of at
-- least 24 random bytes (the subscriber keeps the same string to verify).
-- Their notifications are rows of the notification log with channel
-- 'webhook' and researcher_id = subscriber_id, deduplicated like the rest.
CREATE TABLE webhook_subscribers (
    subscriber_id text PRIMARY KEY CONSTRAINT webhook_subscribers_id_check
        CHECK (subscriber_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    study_id      text NOT NULL REFERENCES studies (study_id) ON DELETE CASCADE,
    site_id       text,
    min_severity  text NOT NULL DEFAULT 'critical'
        CONSTRAINT webhook_subscribers_min_severity_check
        CHECK (min_severity IN ('info', 'warning', 'critical')),
    url           text NOT NULL CONSTRAINT webhook_subscribers_url_check CHECK (url ~ '^https?://'),
    secret        text NOT NULL CONSTRAINT webhook_subscribers_secret_check
        CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$'),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscribers_study_idx ON webhook_subscribers (study_id) WHERE active;

ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check
    CHECK (channel IN ('email', 'sms', 'webhook'));
-- The webhook sender's scan: its due rows only.
CREATE INDEX notifications_webhook_due_idx ON notifications (next_attempt_at)
    WHERE channel = 'webhook' AND state IN ('pending', 'sending');
-- and the alerts it has not yet considered, by arrival
CREATE INDEX alerts_created_idx ON alerts (created_at);
