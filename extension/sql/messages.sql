-- Messages: what an operator reads about their synchronizations in the admin UI ("Synchronization
-- process" while pending, "Success: ..." or "FAILURE: ..." once finished), and the e-mail sent
-- with each outcome. Both are written in the transaction that records the event.

CREATE TABLE envsync.sync_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_id    bigint NOT NULL REFERENCES envsync.sync_runs ON DELETE CASCADE,
    recipient  name NOT NULL,   -- the role that started or scheduled the run
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    title      text NOT NULL,
    body       text NOT NULL,
    read       boolean NOT NULL DEFAULT false
);
CREATE INDEX sync_messages_recipient ON envsync.sync_messages (recipient, created_at DESC);
COMMENT ON TABLE envsync.sync_messages IS 'Messages about synchronizations, per operator';

-- Each operator sees their own messages (those of the session's role), newest first, and may
-- mark them read.
CREATE VIEW envsync.messages AS
    SELECT id, sync_id, created_at, updated_at, title, body, read
      FROM envsync.sync_messages
     WHERE recipient = session_user
     ORDER BY created_at DESC, id DESC;
COMMENT ON VIEW envsync.messages IS
    'The current operator''s messages about synchronizations, newest first; UPDATE read to mark them read';

-- An instant as users read it: date, hour and the UTC offset of this session's time zone.
CREATE FUNCTION envsync.shown_time(at timestamptz) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_char(at, 'YYYY-MM-DD HH24:MI') || ' (UTC' || to_char(at, 'TZH:TZM') || ')'
$$;

-- The counts of a summary, in words: "cms: 2 inserted, 1 updated; ..." (modules without changes left out).
CREATE FUNCTION envsync.shown_summary(summary jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(format('%s: %s inserted, %s updated, %s deleted', m ->> 'module',
                                      m ->> 'inserted', m ->> 'updated', m ->> 'deleted'), '; ' ORDER BY m ->> 'module'),
                    'no records changed')
      FROM jsonb_array_elements(coalesce(summary, '[]')) m
     WHERE (m ->> 'inserted')::bigint + (m ->> 'updated')::bigint + (m ->> 'deleted')::bigint > 0
$$;

-- The message "Synchronization process" of a scheduled run, written when it is scheduled.
CREATE FUNCTION envsync.announce_schedule(sync_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.syncs;
BEGIN
    SELECT * INTO s FROM envsync.syncs WHERE id = sync_id;
    INSERT INTO envsync.sync_messages (sync_id, recipient, title, body)
    VALUES (s.id, s.scheduled_by, 'Synchronization process',
            format('%s %s of %s > %s (comparison %s) is scheduled for %s. To cancel it: SELECT sync_cancel(%s);',
                   CASE WHEN s.test_import THEN 'Test import' ELSE 'Synchronization' END, s.id,
                   upper(s.source), upper(s.target), s.comparison_id, envsync.shown_time(s.run_at), s.id));
END
$$;

-- The outcome of a run: its message and the e-mail to whoever started it. Reverts have neither:
-- the operator who reverts sees the result at once.
CREATE FUNCTION envsync.announce_outcome(sync_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.syncs;
    v_what text;
BEGIN
    SELECT * INTO s FROM envsync.syncs WHERE id = sync_id;
    IF s.reverts IS NOT NULL THEN
        RETURN;
    END IF;
    v_what := format('%s %s of %s > %s (comparison %s)', CASE WHEN s.test_import THEN 'Test import' ELSE 'Synchronization' END,
                     s.id, upper(s.source), upper(s.target), s.comparison_id);
    IF s.status = 'cancelled' THEN
        UPDATE envsync.sync_messages m
           SET body = format('%s, scheduled for %s, was cancelled on %s.', v_what, envsync.shown_time(s.run_at),
                             envsync.shown_time(s.finished_at)),
               updated_at = now(), read = false
         WHERE m.sync_id = s.id;
        RETURN;
    END IF;
    INSERT INTO envsync.sync_messages (sync_id, recipient, title, body)
    VALUES (s.id, s.scheduled_by,
            CASE WHEN s.status = 'succeeded' THEN 'Success: Synchronization process' ELSE 'FAILURE: Synchronization process' END,
            CASE WHEN s.status = 'succeeded' AND s.test_import
                 THEN format('%s finished on %s. Nothing was saved; a synchronization would write: %s.', v_what,
                             envsync.shown_time(s.finished_at), envsync.shown_summary(s.summary))
                 WHEN s.status = 'succeeded'
                 THEN format('%s finished on %s. The planned changes were applied: %s.', v_what,
                             envsync.shown_time(s.finished_at), envsync.shown_summary(s.summary))
                 ELSE format('%s failed on %s: %s.%s Nothing was applied.', v_what, envsync.shown_time(s.finished_at),
                             rtrim(s.error, '.'), coalesce(' ' || s.error_hint, ''))
            END);

    PERFORM envsync.queue_mail(
            s.scheduled_by, CASE WHEN s.status = 'succeeded' THEN 'sync_succeeded' ELSE 'sync_failed' END,
            format('%s%s: Synchronization process %s > %s',
                   CASE WHEN s.status = 'succeeded' THEN 'Success' ELSE 'FAILURE' END,
                   CASE WHEN s.test_import THEN ' (test import)' ELSE '' END, upper(s.source), upper(s.target)),
            jsonb_build_object('sync_id', s.id, 'comparison_id', s.comparison_id, 'source', s.source,
                               'target', s.target, 'test_import', s.test_import,
                               'scheduled_by', s.scheduled_by, 'finished_at', s.finished_at)
            || CASE WHEN s.status = 'succeeded' THEN jsonb_build_object('modules', coalesce(s.summary, '[]'))
                    ELSE jsonb_strip_nulls(jsonb_build_object('error', s.error, 'detail', s.error_detail,
                                                              'hint', s.error_hint)) END);
END
$$;
