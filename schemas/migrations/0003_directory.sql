-- 0003_directory: who is told about what. Studies, their sites, the
-- researchers and their subscriptions; the notifier routes each alert with a
-- read-mostly cache of these tables and reloads it when they change.

-- researchers: people who can be paged. Contact details are the only
-- personal data vigil keeps about staff; phone is E.164 (+ and up to 15
-- digits) so the SMS gateway gets one canonical form. An inactive researcher
-- keeps their history but is never routed to.
CREATE TABLE researchers (
    researcher_id text PRIMARY KEY,
    name          text NOT NULL,
    email         text CONSTRAINT researchers_email_check CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone         text CONSTRAINT researchers_phone_check CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- studies: a trial. safety_contact_researcher_id is the study's safety
-- physician: the escalation target when nobody acknowledges a critical alert.
CREATE TABLE studies (
    study_id                     text PRIMARY KEY,
    name                         text NOT NULL,
    safety_contact_researcher_id text REFERENCES researchers (researcher_id) ON DELETE SET NULL,
    created_at                   timestamptz NOT NULL DEFAULT now()
);

-- sites: the hospitals taking part in a study.
CREATE TABLE sites (
    study_id   text NOT NULL REFERENCES studies (study_id) ON DELETE CASCADE,
    site_id    text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study_id, site_id)
);

-- subscriptions: researcher R wants alerts of study S (one site, or every
-- site when site_id is null) at min_severity or above, on these channels.
-- One subscription per (researcher, study, site-or-all): the unique index
-- below treats "all sites" (null) as one value, which a plain UNIQUE
-- constraint would not (nulls are distinct).
CREATE TABLE subscriptions (
    subscription_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    researcher_id   text NOT NULL REFERENCES researchers (researcher_id) ON DELETE CASCADE,
    study_id        text NOT NULL REFERENCES studies (study_id) ON DELETE CASCADE,
    site_id         text,
    min_severity    text NOT NULL DEFAULT 'warning'
        CONSTRAINT subscriptions_min_severity_check
        CHECK (min_severity IN ('info', 'warning', 'critical')),
    channels        text[] NOT NULL DEFAULT ARRAY['email']::text[]
        CONSTRAINT subscriptions_channels_check
        CHECK (cardinality(channels) > 0 AND channels <@ ARRAY['email', 'sms']::text[]),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- MATCH SIMPLE: a null site_id (all sites) is not checked against sites
    FOREIGN KEY (study_id, site_id) REFERENCES sites (study_id, site_id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX subscriptions_researcher_study_site_key
    ON subscriptions (researcher_id, study_id, coalesce(site_id, ''));
-- Routing looks subscriptions up by study.
CREATE INDEX subscriptions_study_idx ON subscriptions (study_id);

-- Any change to the directory wakes the notifiers (LISTEN vigil_directory);
-- the payload names the table so a cache may reload only what changed.
-- Statement-level, so a bulk load sends one notification, not one per row;
-- PostgreSQL delivers it only if the transaction commits.
CREATE FUNCTION vigil_directory_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vigil_directory', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER researchers_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON researchers
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_directory_notify();
CREATE TRIGGER studies_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON studies
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_directory_notify();
CREATE TRIGGER sites_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_directory_notify();
CREATE TRIGGER subscriptions_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_directory_notify();
