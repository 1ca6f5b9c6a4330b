-- E-mails waiting for the orchestrator. A row is queued in the same transaction as the event
-- it reports, so a rolled-back event never mails and a committed one always does.
CREATE TABLE envsync.outbox (
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
CREATE INDEX outbox_due ON envsync.outbox (next_attempt_at) WHERE status = 'pending';
COMMENT ON TABLE envsync.outbox IS
    'E-mails queued by envsync (comparison finished, sync succeeded or failed), delivered by the orchestrator';

-- Wake the orchestrator at once; it also polls, so a lost notification only delays a mail.
CREATE FUNCTION envsync.outbox_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('envsync_outbox', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON envsync.outbox
    FOR EACH ROW EXECUTE FUNCTION envsync.outbox_notify();

CREATE VIEW envsync.mail_status AS
    SELECT id, created_at, kind, recipient, subject, status, attempts, next_attempt_at,
           last_error, sent_at
      FROM envsync.outbox;
COMMENT ON VIEW envsync.mail_status IS
    'Delivery state of every queued e-mail; status failed carries the SMTP error in last_error';

-- Queues an e-mail to a role's address (envsync.operators); without one, says so and sends none.
CREATE FUNCTION envsync.queue_mail(role_name name, kind text, subject text, payload jsonb) RETURNS void
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
