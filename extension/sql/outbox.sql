-- The mail queue: e-mails waiting for the orchestrator. A row is queued in the same transaction
-- as the event it reports, so a rolled-back event never mails and a committed one always does.
CREATE TABLE IF NOT EXISTS envsync.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL
                    CHECK (kind IN ('comparison_finished', 'sync_succeeded', 'sync_failed')),
    recipient       text NOT NULL,
    subject         text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_due ON envsync.outbox (next_attempt_at) WHERE status = 'pending';
COMMENT ON TABLE envsync.outbox IS
    'E-mails queued by envsync (comparison finished, sync succeeded or failed), delivered by the orchestrator';
COMMENT ON COLUMN envsync.outbox.id IS 'The e-mail';
COMMENT ON COLUMN envsync.outbox.created_at IS 'When it was queued';
COMMENT ON COLUMN envsync.outbox.kind IS 'comparison_finished, sync_succeeded or sync_failed';
COMMENT ON COLUMN envsync.outbox.recipient IS 'The address it goes to';
COMMENT ON COLUMN envsync.outbox.subject IS 'Its subject';
COMMENT ON COLUMN envsync.outbox.payload IS 'What it reports (title, text, counts, error), rendered by the orchestrator';
COMMENT ON COLUMN envsync.outbox.status IS 'pending, sent or failed';
COMMENT ON COLUMN envsync.outbox.attempts IS 'Delivery attempts so far';
COMMENT ON COLUMN envsync.outbox.next_attempt_at IS 'When the next attempt is due';
COMMENT ON COLUMN envsync.outbox.last_error IS 'The SMTP error of the last failed attempt';
COMMENT ON COLUMN envsync.outbox.sent_at IS 'When it was sent';

-- Wake the orchestrator at once; it also polls, so a lost notification only delays a mail.
CREATE OR REPLACE FUNCTION envsync.outbox_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('envsync_outbox', NEW.id::text);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION envsync.outbox_notify() IS 'Wakes the orchestrator when an e-mail is queued';
CREATE OR REPLACE TRIGGER outbox_notify AFTER INSERT ON envsync.outbox
    FOR EACH ROW EXECUTE FUNCTION envsync.outbox_notify();

CREATE OR REPLACE VIEW envsync.mail_status AS
    SELECT id, created_at, kind, recipient, subject, status, attempts, next_attempt_at,
           last_error, sent_at
      FROM envsync.outbox;
COMMENT ON VIEW envsync.mail_status IS
    'Delivery state of every queued e-mail; status failed carries the SMTP error in last_error';
COMMENT ON COLUMN envsync.mail_status.id IS 'The e-mail';
COMMENT ON COLUMN envsync.mail_status.created_at IS 'When it was queued';
COMMENT ON COLUMN envsync.mail_status.kind IS 'comparison_finished, sync_succeeded or sync_failed';
COMMENT ON COLUMN envsync.mail_status.recipient IS 'The address it goes to';
COMMENT ON COLUMN envsync.mail_status.subject IS 'Its subject';
COMMENT ON COLUMN envsync.mail_status.status IS 'pending, sent or failed';
COMMENT ON COLUMN envsync.mail_status.attempts IS 'Delivery attempts so far';
COMMENT ON COLUMN envsync.mail_status.next_attempt_at IS 'When the next attempt is due';
COMMENT ON COLUMN envsync.mail_status.last_error IS 'The SMTP error of the last failed attempt';
COMMENT ON COLUMN envsync.mail_status.sent_at IS 'When it was sent';

-- Queues an e-mail to a role's address (envsync.operators); without one, says so and sends none.
CREATE OR REPLACE FUNCTION envsync.queue_mail(role_name name, kind text, subject text, payload jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_email text := (SELECT o.email FROM envsync.operators o WHERE o.role_name = queue_mail.role_name);
BEGIN
    IF v_email IS NULL THEN
        RAISE NOTICE 'no e-mail address for role "%": no e-mail is sent', role_name
            USING HINT = 'Set one with sync_set_operator().';
        RETURN;
    END IF;
    INSERT INTO envsync.outbox (kind, recipient, subject, payload) VALUES (kind, v_email, subject, payload);
END
$$;
COMMENT ON FUNCTION envsync.queue_mail(name, text, text, jsonb) IS 'Queues an e-mail to a role''s address, if it has one';
