-- Scheduled synchronizations: sync_schedule() records a pending run; pg_cron calls
-- envsync.run_due_syncs() every minute, which runs the due ones one after another, each in its
-- own transaction, and finds runs a crash interrupted. The schedule lives in envsync.sync_runs;
-- cron.job holds only the one job that calls the scheduler.

-- A run being executed by the scheduler holds this session lock: a run marked running whose
-- lock is free was interrupted (its backend or the server stopped).
CREATE FUNCTION envsync.sync_lock_key(sync_id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (sync_id % 2147483647)::integer
$$;

CREATE FUNCTION envsync.require_pg_cron() RETURNS void
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

-- The user-facing entries, for members of envsync_operator: they run as envsync's owner and
-- record the session's own role.
CREATE FUNCTION sync_schedule(comparison_id bigint, run_at timestamptz DEFAULT now(), test_import boolean DEFAULT false)
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

CREATE FUNCTION sync_cancel(sync_id bigint) RETURNS void
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
CREATE FUNCTION envsync.recover_interrupted_syncs() RETURNS integer
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

-- Takes the next due run (oldest run_at first), marks it running and holds its session lock
-- until envsync.release_sync(); NULL when none is due.
CREATE FUNCTION envsync.start_due_sync() RETURNS bigint
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

-- Runs a started run in this transaction; returns its outcome as envsync.execute_run() does.
-- A comparison made stale since it was scheduled is not applied.
CREATE FUNCTION envsync.execute_scheduled(sync_id bigint) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    run envsync.sync_runs;
    e_state text; e_message text; e_detail text; e_hint text;
BEGIN
    SELECT * INTO run FROM envsync.sync_runs r WHERE r.id = execute_scheduled.sync_id;
    IF run.reverts IS NULL THEN
        BEGIN
            PERFORM envsync.check_applicable(run.comparison_id, true);   -- stale? (it is this run's own already)
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
            RETURN jsonb_build_object('error', e_message, 'code', e_state,
                                      'detail', nullif(e_detail, ''), 'hint', nullif(e_hint, ''));
        END;
    END IF;
    RETURN envsync.execute_run(run);
END
$$;

CREATE FUNCTION envsync.record_scheduled_failure(sync_id bigint, failure jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    run envsync.sync_runs;
BEGIN
    SELECT * INTO run FROM envsync.sync_runs r WHERE r.id = record_scheduled_failure.sync_id;
    PERFORM envsync.record_failure(run, failure);
END
$$;

-- Released once the run's outcome is committed.
CREATE FUNCTION envsync.release_sync(sync_id bigint) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_advisory_unlock(hashtext('envsync sync'), envsync.sync_lock_key(sync_id)) AND true
$$;

-- The scheduler's tick, called by pg_cron every minute (CALL envsync.run_due_syncs()) as
-- envsync's owner, or by hand; the functions it calls run with its caller's rights. Each due run is started (committed as running), executed, and its outcome committed;
-- a failed run's writes are rolled back before its failure is recorded. A procedure: it
-- commits between runs, so it has no SET clause and names everything in full.
CREATE PROCEDURE envsync.run_due_syncs()
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_outcome jsonb;
BEGIN
    PERFORM envsync.recover_interrupted_syncs();
    COMMIT;
    LOOP
        v_id := envsync.start_due_sync();
        COMMIT;
        EXIT WHEN v_id IS NULL;
        v_outcome := envsync.execute_scheduled(v_id);
        IF v_outcome ? 'error' THEN
            ROLLBACK;   -- also ends a remote transaction left unusable by a lost connection
            PERFORM envsync.record_scheduled_failure(v_id, v_outcome);
        END IF;
        COMMIT;
        PERFORM envsync.release_sync(v_id);
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE envsync.run_due_syncs() IS
    'Runs the synchronizations that are due (pg_cron calls it every minute) and fails those a crash interrupted';

COMMENT ON FUNCTION sync_schedule(bigint, timestamptz, boolean) IS
    'Schedules the synchronization (or test import) of a comparison for a time; pg_cron starts it within the minute after; returns its id';

COMMENT ON FUNCTION sync_cancel(bigint) IS 'Cancels a pending synchronization';
