-- Who changed who gets paged: every change of the directory (researchers,
-- studies, sites, subscriptions, quiet hours) and of console access
-- (accounts, grants) appends an event to the audit chain (0010), in the
-- transaction that made it, whatever made it: the console, `vigil
-- directory import`, `vigil users`, or SQL by hand. Escalation policies
-- were already audited by their writer (policy_set, policy_removed).
--
-- alert_id is null; detail names the study (study_id) where the change
-- belongs to one, so a study's audit export includes it.
--
-- The actor is the transaction's `vigil.actor` setting (set_config(...,
-- true), as the console and the CLI do: 'console:RESEARCHER',
-- 'cli:USER@HOST'), else 'db:' and the session's role.
--
-- Personal data stays out: the trail is append-only and cannot forget,
-- so a researcher's name, email or phone change records which fields
-- changed, not their values (the directory holds those). Sign-in
-- bookkeeping (failed attempts, lockout) is not a change of access and
-- is not recorded.
--
-- Lock order (0014): an appender takes the chain head first. A trigger
-- fires after its row is locked, so the writers here take the head
-- before their first row (vigil_audit_lock()); a writer that does not
-- (SQL by hand) can at worst deadlock with one that does, and PostgreSQL
-- aborts one of the two.

CREATE FUNCTION vigil_audit_actor() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('vigil.actor', true), ''), 'db:' || session_user)
$$;

-- The columns whose values differ between OLD and NEW, timestamps of
-- bookkeeping left out.
CREATE FUNCTION vigil_changed_fields(p_old jsonb, p_new jsonb, p_ignore text[])
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}')
      FROM jsonb_each(p_new) n JOIN jsonb_each(p_old) o USING (key)
     WHERE n.value IS DISTINCT FROM o.value AND NOT n.key = ANY (p_ignore)
$$;

CREATE FUNCTION vigil_directory_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    v_kind  text;
    v_det   jsonb;
    v_chg   text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        v_chg := vigil_changed_fields(to_jsonb(OLD), to_jsonb(NEW),
            ARRAY['updated_at', 'created_at', 'granted_at', 'failed_count', 'locked_until',
                  'password_changed_at']);
        IF cardinality(v_chg) = 0 THEN
            RETURN NULL;
        END IF;
    END IF;
    CASE TG_TABLE_NAME
    WHEN 'researchers' THEN
        v_kind := CASE TG_OP WHEN 'INSERT' THEN 'researcher_added'
                             WHEN 'DELETE' THEN 'researcher_removed' ELSE 'researcher_changed' END;
        v_det := jsonb_build_object('researcher_id', r.researcher_id, 'active', r.active);
        IF TG_OP = 'UPDATE' THEN
            v_det := v_det || jsonb_build_object('changed', to_jsonb(v_chg));
        END IF;
    WHEN 'studies' THEN
        v_kind := CASE TG_OP WHEN 'INSERT' THEN 'study_added'
                             WHEN 'DELETE' THEN 'study_removed' ELSE 'study_changed' END;
        v_det := jsonb_build_object('study_id', r.study_id, 'name', r.name,
                                    'safety_contact_researcher_id', r.safety_contact_researcher_id);
        IF TG_OP = 'UPDATE' THEN
            v_det := v_det || jsonb_build_object('changed', to_jsonb(v_chg));
        END IF;
    WHEN 'sites' THEN
        v_kind := CASE TG_OP WHEN 'DELETE' THEN 'site_removed' ELSE 'site_set' END;
        v_det := jsonb_build_object('study_id', r.study_id, 'site_id', r.site_id, 'name', r.name);
    WHEN 'subscriptions' THEN
        v_kind := CASE TG_OP WHEN 'DELETE' THEN 'subscription_removed' ELSE 'subscription_set' END;
        v_det := jsonb_build_object('study_id', r.study_id, 'site_id', r.site_id,
                                    'researcher_id', r.researcher_id);
        IF TG_OP <> 'DELETE' THEN
            v_det := v_det || jsonb_build_object('min_severity', r.min_severity,
                                                 'channels', to_jsonb(r.channels));
        END IF;
    WHEN 'console_grants' THEN
        v_kind := CASE TG_OP WHEN 'DELETE' THEN 'grant_removed' ELSE 'grant_set' END;
        v_det := jsonb_build_object('study_id', r.study_id, 'researcher_id', r.researcher_id,
                                    'role', r.role);
    WHEN 'researcher_quiet_hours' THEN
        v_kind := CASE TG_OP WHEN 'DELETE' THEN 'quiet_hours_removed' ELSE 'quiet_hours_set' END;
        v_det := jsonb_build_object('researcher_id', r.researcher_id);
        IF TG_OP <> 'DELETE' THEN
            v_det := v_det || jsonb_build_object('start', to_char(r.start_local, 'HH24:MI:SS'),
                                                 'end', to_char(r.end_local, 'HH24:MI:SS'),
                                                 'time_zone', r.time_zone);
        END IF;
    WHEN 'console_credentials' THEN
        v_kind := CASE TG_OP WHEN 'INSERT' THEN 'account_created'
                             WHEN 'DELETE' THEN 'account_removed' ELSE 'account_changed' END;
        v_det := jsonb_build_object('researcher_id', r.researcher_id, 'disabled', r.disabled);
        IF TG_OP = 'UPDATE' THEN
            -- password_hash changed: "password" (the hash is no one's business)
            v_det := v_det || jsonb_build_object('changed', to_jsonb(array_replace(v_chg,
                                                 'password_hash', 'password')));
        END IF;
    END CASE;
    PERFORM vigil_audit_append(NULL, v_kind, vigil_audit_actor(), jsonb_strip_nulls(v_det));
    RETURN NULL;
END;
$$;

CREATE TRIGGER researchers_audit AFTER INSERT OR UPDATE OR DELETE ON researchers
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
CREATE TRIGGER studies_audit AFTER INSERT OR UPDATE OR DELETE ON studies
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
CREATE TRIGGER sites_audit AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
CREATE TRIGGER subscriptions_audit AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
CREATE TRIGGER console_grants_audit AFTER INSERT OR UPDATE OR DELETE ON console_grants
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
CREATE TRIGGER researcher_quiet_hours_audit AFTER INSERT OR UPDATE OR DELETE ON researcher_quiet_hours
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
-- Sign-in bookkeeping updates failed_count and locked_until on every
-- attempt: only a change of what the account may do is recorded.
CREATE TRIGGER console_credentials_audit_insdel AFTER INSERT OR DELETE ON console_credentials
    FOR EACH ROW EXECUTE FUNCTION vigil_directory_audit();
CREATE TRIGGER console_credentials_audit_upd AFTER UPDATE ON console_credentials
    FOR EACH ROW WHEN (OLD.disabled IS DISTINCT FROM NEW.disabled
                       OR OLD.password_hash IS DISTINCT FROM NEW.password_hash
                       OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION vigil_directory_audit();

-- A study's export reads its directory events by the study in detail.
CREATE INDEX alert_events_study_idx ON alert_events ((detail ->> 'study_id'), event_id)
    WHERE alert_id IS NULL;
