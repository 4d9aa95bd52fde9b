-- 0012_delivery_audit: every delivery outcome is an event in alert_events.
-- A trigger and not a call in the sender: whichever process writes the
-- outcome (the notifier's batches, a future channel, a repair by hand), the
-- audit trail gets it in the same transaction, so the log and the trail
-- cannot disagree. Outcomes are written in batches of up to 512 rows; each
-- row's append takes the chain head's lock once, held to that commit.
CREATE FUNCTION vigil_notification_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vigil_audit_append(NEW.alert_id,
        CASE NEW.state WHEN 'sent' THEN 'delivered' WHEN 'failed' THEN 'delivery_failed'
                       ELSE 'delivery_suppressed' END,
        'notifier',
        jsonb_strip_nulls(jsonb_build_object('researcher_id', NEW.researcher_id,
            'channel', NEW.channel, 'step', NEW.step, 'attempts', NEW.attempts,
            'provider_message_id', NEW.provider_message_id, 'error', NEW.last_error)));
    RETURN NULL;
END;
$$;
CREATE TRIGGER notifications_audit AFTER UPDATE OF state ON notifications
    FOR EACH ROW WHEN (NEW.state IN ('sent', 'failed', 'suppressed')
                       AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION vigil_notification_audit();
