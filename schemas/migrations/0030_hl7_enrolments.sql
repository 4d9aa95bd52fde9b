-- 0030_hl7_enrolments: which patients on a hospital's HL7 v2 feed are in a
-- trial (`vigil mllp`). The listener forwards results only for the active
-- rows here and drops everyone else's, counted, before reading any result.
--
-- patient_id is the hospital's own identifier for the patient (a PID-3
-- repetition's CX-1, e.g. the MRN): the one identifier vigil must hold to
-- recognise an enrolled patient. It stays in this table and in the
-- listener's memory: it is never published, logged or dead-lettered, and
-- nothing else in vigil joins to it. Everything downstream sees only the
-- subject pseudonym.
CREATE TABLE hl7_enrolments (
    -- MSH-4 (its first component) of the sending facility, as it sends it
    facility            text NOT NULL CONSTRAINT hl7_enrolments_facility_check
        CHECK (length(facility) BETWEEN 1 AND 64),
    patient_id          text NOT NULL CONSTRAINT hl7_enrolments_patient_id_check
        CHECK (length(patient_id) BETWEEN 1 AND 64),
    -- PID-3 CX-4 (first component) the identifier must carry; '' = any
    assigning_authority text NOT NULL DEFAULT ''
        CONSTRAINT hl7_enrolments_authority_check CHECK (length(assigning_authority) <= 64),
    study_id            text NOT NULL,
    site_id             text NOT NULL,
    subject_id          text NOT NULL CONSTRAINT hl7_enrolments_subject_check
        CHECK (length(subject_id) BETWEEN 1 AND 64),  -- the pseudonym
    -- false once the subject withdraws consent or leaves the study: the
    -- row stays for the audit, results stop flowing
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (facility, patient_id, assigning_authority),
    FOREIGN KEY (study_id, site_id) REFERENCES sites (study_id, site_id) ON DELETE CASCADE
);

-- A subject's enrolments (several hospital identifiers may map to one
-- subject; the primary key keeps one identifier from mapping to two).
CREATE INDEX hl7_enrolments_subject_idx ON hl7_enrolments (study_id, subject_id);

-- Every change wakes the listeners (LISTEN vigil_hl7_enrolments), which
-- reload the table whole; the payload carries nothing.
CREATE FUNCTION hl7_enrolments_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vigil_hl7_enrolments', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER hl7_enrolments_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hl7_enrolments
    FOR EACH STATEMENT EXECUTE FUNCTION hl7_enrolments_notify();
