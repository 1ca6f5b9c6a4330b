-- Reverting a synchronization: its target written back from the before-images, the target
-- rows its comparison recorded; and how long those are kept (envsync.keep_before_images).

-- How long before-images are kept (setting envsync.keep_before_images, default 30 days).
CREATE OR REPLACE FUNCTION envsync.keep_before_images() RETURNS interval
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('envsync.keep_before_images', true), ''), '30 days')::interval
$$;
COMMENT ON FUNCTION envsync.keep_before_images() IS 'How long before-images are kept (setting envsync.keep_before_images)';

-- Forgets the record contents of comparisons synchronized longer ago than
-- envsync.keep_before_images: the lists of changes stay, their rows (the before-images) go.
CREATE OR REPLACE FUNCTION envsync.purge_before_images() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
-- Bypasses the guard on envsync.changes (keep_change), which lets users change only the selection.
SET session_replication_role = replica AS $$
DECLARE
    expired bigint[];
BEGIN
    WITH purged AS (
        UPDATE envsync.sync_runs s SET purged_at = now()
         WHERE s.purged_at IS NULL AND s.reverts IS NULL AND NOT s.test_import AND s.status = 'succeeded'
           AND s.finished_at < now() - envsync.keep_before_images()
        RETURNING s.comparison_id)
    SELECT array_agg(comparison_id) INTO expired FROM purged;
    IF expired IS NOT NULL THEN
        UPDATE envsync.compare_changes c SET source_row = NULL, target_row = NULL
         WHERE c.comparison_id = ANY (expired);
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.purge_before_images() IS 'Purges the before-images kept longer than envsync.keep_before_images';

-- The user-facing entry, for members of envsync_operator: runs as envsync's owner and records
-- the session's own role as the one who reverted.
CREATE OR REPLACE FUNCTION sync_revert(sync_id bigint)
RETURNS TABLE (revert_id bigint, module text, inserted bigint, updated bigint, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s envsync.syncs;
    undone bigint;
    run envsync.sync_runs;
BEGIN
    PERFORM envsync.require_prod();
    PERFORM envsync.purge_before_images();
    PERFORM envsync.recover_written_runs_of((SELECT r.comparison_id FROM envsync.sync_runs r WHERE r.id = sync_revert.sync_id));
    SELECT * INTO s FROM envsync.syncs x WHERE x.id = sync_revert.sync_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'synchronization % does not exist', sync_id
            USING ERRCODE = 'undefined_object', HINT = 'The synchronizations are listed in envsync.syncs.';
    END IF;
    IF s.kind <> 'synchronization' OR s.status <> 'succeeded' THEN
        RAISE EXCEPTION 'synchronization % cannot be reverted: it is a % that %', sync_id, s.kind,
                        CASE s.status WHEN 'succeeded' THEN 'succeeded' WHEN 'failed' THEN 'failed'
                                      WHEN 'cancelled' THEN 'was cancelled' ELSE 'has not finished' END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a synchronization that succeeded and wrote data can be reverted.';
    END IF;
    SELECT r.id INTO undone FROM envsync.sync_runs r
     WHERE r.reverts = s.id AND r.status IN ('pending', 'running', 'succeeded');
    IF FOUND THEN
        RAISE EXCEPTION 'synchronization % is already reverted (revert %)', sync_id, undone
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF s.revertible_until IS NULL THEN
        RAISE EXCEPTION 'synchronization % cannot be reverted any more', sync_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The records it overwrote were kept for %s (envsync.keep_before_images) and purged.',
                                  envsync.keep_before_images()),
                  HINT = 'Compare the environments the other way round and synchronize back what is wanted.';
    END IF;
    PERFORM envsync.require_current_comparison(s.comparison_id, 'a revert');
    run.comparison_id := s.comparison_id;
    run.reverts := s.id;
    run.test_import := false;
    run.scheduled_by := session_user;
    RETURN QUERY SELECT * FROM envsync.run_now(run);
END
$$;
COMMENT ON FUNCTION sync_revert(bigint) IS
    'Puts the target of a synchronization back as it was before it, all or nothing; refused if the target changed since';
