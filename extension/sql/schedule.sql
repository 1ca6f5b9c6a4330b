-- Scheduled synchronizations: sync_schedule() records a pending run; pg_cron calls
-- envsync.run_due_syncs() every minute, which claims the due runs one after another, attempts
-- each in its own transaction (envsync.attempt_run, runs.sql), and finds the runs a crash
-- interrupted. The schedule lives in envsync.sync_runs; cron.job holds only the one job that
-- calls the scheduler.

-- A run being executed by the scheduler holds this session lock: a run marked running whose
-- lock is free was interrupted (its backend or the server stopped).
CREATE OR REPLACE FUNCTION envsync.sync_lock_key(sync_id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (sync_id % 2147483647)::integer
$$;
COMMENT ON FUNCTION envsync.sync_lock_key(bigint) IS 'The session lock key of a run being executed by the scheduler';

CREATE OR REPLACE FUNCTION envsync.require_pg_cron() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Scheduled synchronizations are run by pg_cron; sync_apply() runs one now without it.',
                  HINT = format('In postgresql.conf set shared_preload_libraries = ''pg_cron'', cron.database_name = %L '
                                'and cron.host to the Unix socket directory, restart PostgreSQL, then run CREATE EXTENSION pg_cron here.',
                                current_database());
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.require_pg_cron() IS 'Refuses to schedule without pg_cron, saying how to install it';

-- The user-facing entries, for members of envsync_operator: they run as envsync's owner and
-- record the session's own role.
CREATE OR REPLACE FUNCTION sync_schedule(comparison_id bigint, run_at timestamptz DEFAULT now(), test_import boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM envsync.require_prod();
    IF comparison_id IS NULL OR run_at IS NULL OR test_import IS NULL THEN
        RAISE EXCEPTION 'a comparison id and a time are required' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'For example: sync_schedule(42, ''2026-12-01 22:00+01''), or sync_schedule(42) for the next minute.';
    END IF;
    PERFORM envsync.require_pg_cron();
    PERFORM envsync.check_applicable(comparison_id, test_import);
    INSERT INTO envsync.sync_runs (comparison_id, test_import, status, run_at, scheduled_by)
    VALUES (comparison_id, test_import, 'pending', run_at, session_user)
    RETURNING id INTO v_id;
    -- The job runs as envsync's owner (this function's user), who may run every synchronization.
    IF NOT EXISTS (SELECT FROM cron.job j WHERE j.jobname = 'envsync synchronizations' AND j.database = current_database()) THEN
        PERFORM cron.schedule('envsync synchronizations', '* * * * *', 'CALL envsync.run_due_syncs()');
    END IF;
    PERFORM envsync.announce_schedule(v_id);
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION sync_cancel(sync_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.syncs;
BEGIN
    PERFORM envsync.require_prod();
    UPDATE envsync.sync_runs r SET status = 'cancelled', finished_at = clock_timestamp(), cancelled_by = session_user
     WHERE r.id = sync_cancel.sync_id AND r.status = 'pending';
    IF FOUND THEN
        PERFORM envsync.announce_outcome(sync_id);
        RETURN;
    END IF;
    SELECT * INTO s FROM envsync.syncs x WHERE x.id = sync_cancel.sync_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'synchronization % does not exist', sync_id
            USING ERRCODE = 'undefined_object', HINT = 'The synchronizations are listed in envsync.syncs.';
    END IF;
    RAISE EXCEPTION 'synchronization % cannot be cancelled: it %', sync_id,
                    CASE s.status WHEN 'running' THEN format('has been running since %s', envsync.shown_time(s.started_at))
                                  WHEN 'cancelled' THEN 'is already cancelled'
                                  ELSE format('%s on %s', s.status, envsync.shown_time(s.finished_at)) END
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = CASE WHEN s.status = 'succeeded' AND s.kind = 'synchronization'
                          THEN format('To undo what it wrote: SELECT * FROM sync_revert(%s);', sync_id)
                          ELSE 'Only a pending synchronization can be cancelled.' END;
END
$$;

-- Runs found marked running with nobody running them: the server or their session stopped
-- before they finished, so their transaction, and every write, was rolled back.
CREATE OR REPLACE FUNCTION envsync.recover_interrupted_runs() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.sync_runs;
    n integer := 0;
BEGIN
    FOR s IN SELECT * FROM envsync.sync_runs r WHERE r.status = 'running' ORDER BY r.id FOR UPDATE SKIP LOCKED LOOP
        IF pg_try_advisory_xact_lock(hashtext('envsync sync'), envsync.sync_lock_key(s.id)) THEN
            PERFORM envsync.record_failure(s, jsonb_build_object(
                'error', format('the synchronization was interrupted at %s: the server or its session stopped before it finished',
                                envsync.shown_time(now())),
                'code', '57P01',
                'detail', 'Its writes were rolled back; nothing of it was applied.',
                'hint', 'Compare the environments again and schedule a new synchronization.'));
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION envsync.recover_interrupted_runs() IS 'Marks failed the runs a crash or a lost session interrupted';

-- The runs every other environment committed but PROD lost or failed (recover_written_runs,
-- runs.sql); an environment that cannot be reached now is tried again at the next tick.
CREATE OR REPLACE FUNCTION envsync.recover_lost_runs() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    env text;
    n integer := 0;
BEGIN
    FOR env IN SELECT e.name FROM envsync.environments e WHERE e.server IS NOT NULL ORDER BY e.name LOOP
        BEGIN
            n := n + envsync.recover_written_runs(env);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'runs written in environment "%" could not be looked for: %', env, SQLERRM
                USING HINT = 'The scheduler looks again at its next run.';
        END;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION envsync.recover_lost_runs() IS
    'Records the runs other environments committed but PROD lost or failed (the scheduler, each minute)';

-- How long envsync's history is kept: e-mails once sent or given up, messages, and the lists
-- of changes of comparisons a newer one superseded (setting envsync.keep_history, default 90
-- days). A comparison's own record stays.
CREATE OR REPLACE FUNCTION envsync.keep_history() RETURNS interval
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('envsync.keep_history', true), ''), '90 days')::interval
$$;
COMMENT ON FUNCTION envsync.keep_history() IS
    'How long sent e-mails, messages and superseded comparisons'' change lists are kept (setting envsync.keep_history)';

-- Forgets what is kept longer than its retention: the before-images of synchronizations
-- (envsync.keep_before_images) and of comparisons never synchronized that a newer one of the
-- same pair and modules superseded (they can no longer be applied); e-mails sent or given up,
-- messages and the change lists of superseded comparisons (envsync.keep_history). The apply
-- requests of each environment are pruned there, as each new one arrives (envsync.apply_request).
-- Called by the scheduler each minute.
CREATE OR REPLACE FUNCTION envsync.purge_expired() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
-- Bypasses the guard on envsync.changes (keep_change), which lets users change only the selection.
SET session_replication_role = replica AS $$
BEGIN
    PERFORM envsync.purge_before_images();
    IF to_regclass('pg_temp.envsync_superseded') IS NOT NULL THEN   -- made anew, never taken over
        DROP TABLE pg_temp.envsync_superseded;
    END IF;
    CREATE TEMP TABLE envsync_superseded ON COMMIT DROP AS
    SELECT c.id, c.finished_at,
           EXISTS (SELECT FROM envsync.sync_runs s WHERE s.comparison_id = c.id AND s.reverts IS NULL
                      AND NOT s.test_import AND s.status IN ('pending', 'running', 'succeeded')) AS synchronized
      FROM envsync.compare_runs c
     WHERE c.finished_at < now() - least(envsync.keep_before_images(), envsync.keep_history())
       AND EXISTS (SELECT FROM envsync.compare_runs n
                    WHERE n.id > c.id AND least(n.source, n.target) = least(c.source, c.target)
                      AND greatest(n.source, n.target) = greatest(c.source, c.target) AND n.modules && c.modules)
       AND EXISTS (SELECT FROM envsync.compare_changes cc WHERE cc.comparison_id = c.id);
    UPDATE envsync.compare_changes cc SET source_row = NULL, target_row = NULL
      FROM pg_temp.envsync_superseded x
     WHERE cc.comparison_id = x.id AND NOT x.synchronized AND x.finished_at < now() - envsync.keep_before_images()
       AND (cc.source_row IS NOT NULL OR cc.target_row IS NOT NULL);
    -- a synchronized one keeps its list while it can be reverted
    DELETE FROM pg_temp.envsync_superseded x
     WHERE x.finished_at >= now() - envsync.keep_history()
        OR x.synchronized AND x.finished_at >= now() - envsync.keep_before_images();
    DELETE FROM envsync.compare_changes cc USING pg_temp.envsync_superseded x WHERE cc.comparison_id = x.id;
    DROP TABLE pg_temp.envsync_superseded;
    DELETE FROM envsync.outbox o
     WHERE o.status IN ('sent', 'failed') AND coalesce(o.sent_at, o.next_attempt_at, o.created_at) < now() - envsync.keep_history();
    DELETE FROM envsync.sync_messages m WHERE m.updated_at < now() - envsync.keep_history();
END
$$;
COMMENT ON FUNCTION envsync.purge_expired() IS
    'Purges what is kept longer than its retention: before-images, change lists, e-mails, messages (the scheduler, each minute)';

-- Takes the next due run (oldest run_at first), marks it running and holds its session lock
-- until envsync.release_run(); NULL when none is due.
CREATE OR REPLACE FUNCTION envsync.claim_due_run() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT r.id INTO v_id FROM envsync.sync_runs r
     WHERE r.status = 'pending' AND r.run_at <= now()
     ORDER BY r.run_at, r.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_lock(hashtext('envsync sync'), envsync.sync_lock_key(v_id));
    UPDATE envsync.sync_runs SET status = 'running', started_at = clock_timestamp() WHERE id = v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION envsync.claim_due_run() IS 'Claims the next due run for the scheduler; NULL when none is due';

-- Released once the run's outcome is committed.
CREATE OR REPLACE FUNCTION envsync.release_run(sync_id bigint) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_advisory_unlock(hashtext('envsync sync'), envsync.sync_lock_key(sync_id)) AND true
$$;
COMMENT ON FUNCTION envsync.release_run(bigint) IS 'Releases the session lock of a run once its outcome is committed';

-- The scheduler's tick, called by pg_cron every minute (CALL envsync.run_due_syncs()) as
-- envsync's owner, or by hand; the functions it calls run with its caller's rights. Each due run
-- is claimed (committed as running), attempted, and its outcome committed;
-- a failed run's writes are rolled back before its failure is recorded. A procedure: it
-- commits between runs, so it has no SET clause and names everything in full.
CREATE OR REPLACE PROCEDURE envsync.run_due_syncs()
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_outcome jsonb;
BEGIN
    PERFORM envsync.recover_lost_runs();   -- first: a run marked running may have been written there
    COMMIT;
    PERFORM envsync.recover_interrupted_runs();
    PERFORM envsync.purge_expired();
    COMMIT;
    PERFORM envsync.compact_logs();
    COMMIT;
    LOOP
        v_id := envsync.claim_due_run();
        COMMIT;
        EXIT WHEN v_id IS NULL;
        v_outcome := envsync.attempt_run((SELECT r FROM envsync.sync_runs r WHERE r.id = v_id));
        IF v_outcome ? 'error' THEN
            ROLLBACK;   -- also ends a remote transaction left unusable by a lost connection
            PERFORM envsync.record_failure((SELECT r FROM envsync.sync_runs r WHERE r.id = v_id), v_outcome);
        END IF;
        COMMIT;
        PERFORM envsync.release_run(v_id);
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE envsync.run_due_syncs() IS
    'Runs the synchronizations that are due (pg_cron calls it every minute) and fails those a crash interrupted';

COMMENT ON FUNCTION sync_schedule(bigint, timestamptz, boolean) IS
    'Schedules the synchronization (or test import) of a comparison for a time; pg_cron starts it within the minute after; returns its id';

COMMENT ON FUNCTION sync_cancel(bigint) IS 'Cancels a pending synchronization';
