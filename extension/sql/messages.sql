-- Messages: what an operator reads about their synchronizations in the admin UI ("Synchronization
-- process" while pending, "Success: ..." or "FAILURE: ..." once finished), and the e-mails sent
-- when a comparison finishes and with each outcome. Every text shown to people lives here (the
-- orchestrator's e-mails print the title and text this file gives them). Each is written in the
-- transaction that records the event.

CREATE TABLE IF NOT EXISTS envsync.sync_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_id    bigint NOT NULL REFERENCES envsync.sync_runs ON DELETE CASCADE,
    recipient  name NOT NULL,   -- the role that started or scheduled the run
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    title      text NOT NULL,
    body       text NOT NULL,
    read       boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS sync_messages_recipient ON envsync.sync_messages (recipient, created_at DESC);
COMMENT ON TABLE envsync.sync_messages IS 'Messages about synchronizations, per operator';
COMMENT ON COLUMN envsync.sync_messages.id IS 'The message';
COMMENT ON COLUMN envsync.sync_messages.sync_id IS 'The synchronization it is about';
COMMENT ON COLUMN envsync.sync_messages.recipient IS 'The role that started or scheduled it';
COMMENT ON COLUMN envsync.sync_messages.created_at IS 'When it was written';
COMMENT ON COLUMN envsync.sync_messages.updated_at IS 'When it last changed (a cancelled run''s message)';
COMMENT ON COLUMN envsync.sync_messages.title IS 'Synchronization process, Success: Synchronization process or FAILURE: Synchronization process';
COMMENT ON COLUMN envsync.sync_messages.body IS 'What happened, when, and what to do';
COMMENT ON COLUMN envsync.sync_messages.read IS 'Whether the recipient has read it';

-- Each operator sees their own messages (those of the session's role), newest first, and may
-- mark them read.
CREATE OR REPLACE VIEW envsync.messages AS
    SELECT id, sync_id, created_at, updated_at, title, body, read
      FROM envsync.sync_messages
     WHERE recipient = session_user
     ORDER BY created_at DESC, id DESC;
COMMENT ON VIEW envsync.messages IS
    'The current operator''s messages about synchronizations, newest first; UPDATE read to mark them read';
COMMENT ON COLUMN envsync.messages.id IS 'The message';
COMMENT ON COLUMN envsync.messages.sync_id IS 'The synchronization it is about';
COMMENT ON COLUMN envsync.messages.created_at IS 'When it was written';
COMMENT ON COLUMN envsync.messages.updated_at IS 'When it last changed';
COMMENT ON COLUMN envsync.messages.title IS 'Synchronization process, Success: Synchronization process or FAILURE: Synchronization process';
COMMENT ON COLUMN envsync.messages.body IS 'What happened, when, and what to do';
COMMENT ON COLUMN envsync.messages.read IS 'Whether it has been read (updatable)';

-- An instant as users read it: date, hour and the UTC offset of this session's time zone.
CREATE OR REPLACE FUNCTION envsync.shown_time(at timestamptz) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_char(at, 'YYYY-MM-DD HH24:MI') || ' (UTC' || to_char(at, 'TZH:TZM') || ')'
$$;
COMMENT ON FUNCTION envsync.shown_time(timestamptz) IS 'An instant as users read it, with its UTC offset';

-- The counts of a summary, in words: "cms: 2 inserted, 1 updated; ..." (modules without changes left out).
CREATE OR REPLACE FUNCTION envsync.shown_summary(summary jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(format('%s: %s inserted, %s updated, %s deleted', m ->> 'module',
                                      m ->> 'inserted', m ->> 'updated', m ->> 'deleted'), '; ' ORDER BY m ->> 'module'),
                    'no records changed')
      FROM jsonb_array_elements(coalesce(summary, '[]')) m
     WHERE (m ->> 'inserted')::bigint + (m ->> 'updated')::bigint + (m ->> 'deleted')::bigint > 0
$$;
COMMENT ON FUNCTION envsync.shown_summary(jsonb) IS 'The counts of a run''s summary, in words';

-- The words about a run: the title and body of its message, and the subject of its e-mail.
CREATE OR REPLACE FUNCTION envsync.run_texts(sync_id bigint, OUT title text, OUT body text, OUT subject text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.syncs := (SELECT x FROM envsync.syncs x WHERE x.id = sync_id);
    what text := format('%s %s of %s > %s (comparison %s)', CASE WHEN s.test_import THEN 'Test import' ELSE 'Synchronization' END,
                        s.id, upper(s.source), upper(s.target), s.comparison_id);
BEGIN
    title := CASE s.status WHEN 'succeeded' THEN 'Success: Synchronization process'
                           WHEN 'failed' THEN 'FAILURE: Synchronization process' ELSE 'Synchronization process' END;
    subject := format('%s%s: Synchronization process %s > %s',
                      CASE WHEN s.status = 'succeeded' THEN 'Success' ELSE 'FAILURE' END,
                      CASE WHEN s.test_import THEN ' (test import)' ELSE '' END, upper(s.source), upper(s.target));
    body := CASE s.status
        WHEN 'pending' THEN format('%s is scheduled for %s. To cancel it: SELECT sync_cancel(%s);',
                                   what, envsync.shown_time(s.run_at), s.id)
        WHEN 'cancelled' THEN format('%s, scheduled for %s, was cancelled on %s.', what, envsync.shown_time(s.run_at),
                                     envsync.shown_time(s.finished_at))
        WHEN 'succeeded' THEN
            CASE WHEN s.test_import
                 THEN format('%s finished on %s. Nothing was saved; a synchronization would write: %s.', what,
                             envsync.shown_time(s.finished_at), envsync.shown_summary(s.summary))
                 ELSE format('%s finished on %s. The planned changes were applied: %s.', what,
                             envsync.shown_time(s.finished_at), envsync.shown_summary(s.summary)) END
        ELSE format('%s failed on %s: %s.%s Nothing was applied.', what, envsync.shown_time(s.finished_at),
                    rtrim(s.error, '.'), coalesce(' ' || s.error_hint, '')) END;
END
$$;
COMMENT ON FUNCTION envsync.run_texts(bigint) IS 'The title and body of a run''s message and the subject of its e-mail';

-- The message "Synchronization process" of a scheduled run, written when it is scheduled.
CREATE OR REPLACE FUNCTION envsync.announce_schedule(sync_id bigint) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO envsync.sync_messages (sync_id, recipient, title, body)
    SELECT s.id, s.scheduled_by, t.title, t.body
      FROM envsync.sync_runs s, envsync.run_texts(s.id) t WHERE s.id = $1
$$;
COMMENT ON FUNCTION envsync.announce_schedule(bigint) IS 'Writes the message of a scheduled run';

-- The outcome of a run: its message and the e-mail to whoever started it. Reverts have neither:
-- the operator who reverts sees the result at once.
CREATE OR REPLACE FUNCTION envsync.announce_outcome(sync_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.syncs := (SELECT x FROM envsync.syncs x WHERE x.id = sync_id);
    t record;
BEGIN
    IF s.reverts IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT * INTO t FROM envsync.run_texts(sync_id);
    IF s.status = 'cancelled' THEN
        UPDATE envsync.sync_messages m SET body = t.body, updated_at = now(), read = false WHERE m.sync_id = s.id;
        RETURN;
    END IF;
    INSERT INTO envsync.sync_messages (sync_id, recipient, title, body) VALUES (s.id, s.scheduled_by, t.title, t.body);
    PERFORM envsync.queue_mail(
            s.scheduled_by, CASE WHEN s.status = 'succeeded' THEN 'sync_succeeded' ELSE 'sync_failed' END, t.subject,
            jsonb_build_object('title', t.title, 'text', t.body, 'sync_id', s.id, 'comparison_id', s.comparison_id,
                               'source', s.source, 'target', s.target, 'test_import', s.test_import,
                               'scheduled_by', s.scheduled_by, 'finished_at', s.finished_at)
            || CASE WHEN s.status = 'succeeded' THEN jsonb_build_object('modules', coalesce(s.summary, '[]'))
                    ELSE jsonb_strip_nulls(jsonb_build_object('error', s.error, 'detail', s.error_detail,
                                                              'hint', s.error_hint)) END);
END
$$;
COMMENT ON FUNCTION envsync.announce_outcome(bigint) IS 'Writes the message and queues the e-mail of a run''s outcome';

-- The e-mail to whoever started a comparison, with its counts per module and kind.
CREATE OR REPLACE FUNCTION envsync.announce_comparison(comparison_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r envsync.compare_runs := (SELECT x FROM envsync.compare_runs x WHERE x.id = comparison_id);
    title text := format('Comparison %s finished: %s > %s', r.id, upper(r.source), upper(r.target));
    per_module jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.module), '[]') INTO per_module
      FROM (SELECT m.module,
                   count(c.change_id) FILTER (WHERE c.kind = 'new') AS new,
                   count(c.change_id) FILTER (WHERE c.kind = 'modified') AS modified,
                   count(c.change_id) FILTER (WHERE c.kind = 'deleted') AS deleted,
                   count(c.change_id) FILTER (WHERE c.kind = 'conflict') AS conflicts
              FROM unnest(r.modules) m(module)
              LEFT JOIN envsync.compare_changes c ON c.comparison_id = r.id AND c.module = m.module
             GROUP BY m.module) m;
    PERFORM envsync.queue_mail(r.started_by, 'comparison_finished', title,
                               jsonb_build_object('title', title, 'comparison_id', r.id, 'source', r.source,
                                                  'target', r.target, 'mode', r.mode, 'started_by', r.started_by,
                                                  'finished_at', r.finished_at, 'modules', per_module));
END
$$;
COMMENT ON FUNCTION envsync.announce_comparison(bigint) IS 'Queues the e-mail of a finished comparison';
