-- 0015_lifecycle_backfill: signal alerts stored before 0010 had no
-- lifecycle row, so they could not be acknowledged (vigil_alert_ack
-- answered 'unknown_alert'), nor resolved, and the console's queue could
-- not filter them by state. Each gets its row now: 'retracted' if it was,
-- else 'open', opened when it was stored, and an 'opened' event in the
-- audit trail whose actor names this migration, so the trail says the row
-- was made afterwards and by what.
--
-- No escalation timer is made for them: paging a tier for an alert raised
-- before the upgrade, out of nowhere and possibly weeks late, would be a
-- surprise nobody asked for; they wait in the queue to be acknowledged or
-- resolved like any open alert. A database created at 0010 or later has
-- nothing to backfill, and this is a no-op there.
DO $$
DECLARE
    r record;
BEGIN
    PERFORM vigil_audit_lock(); -- the head first, as every appender (0014)
    FOR r IN
        SELECT a.alert_id, a.study_id, a.site_id, a.severity, a.rule_id, a.rule_version,
               a.created_at, a.retracted, a.retracted_by
          FROM alerts a
         WHERE a.kind = 'signal'
           AND NOT EXISTS (SELECT 1 FROM alert_lifecycle l WHERE l.alert_id = a.alert_id)
         ORDER BY a.created_at, a.alert_id
    LOOP
        INSERT INTO alert_lifecycle (alert_id, study_id, site_id, severity, state, opened_at,
                                     retracted_at, retracted_by)
        VALUES (r.alert_id, r.study_id, r.site_id, r.severity,
                CASE WHEN r.retracted THEN 'retracted' ELSE 'open' END, r.created_at,
                CASE WHEN r.retracted THEN now() END, r.retracted_by);
        PERFORM vigil_audit_append(r.alert_id, 'opened', 'migration:0015_lifecycle_backfill',
            jsonb_build_object('severity', r.severity, 'study_id', r.study_id,
                               'site_id', r.site_id, 'rule_id', r.rule_id,
                               'rule_version', r.rule_version, 'backfilled', true,
                               'stored_at', r.created_at, 'retracted', r.retracted));
    END LOOP;
END;
$$;
