-- Privileges, last, over everything the script made: who may use what. envsync_operator is the
-- role of those allowed to compare environments and choose what to synchronize (grant it to
-- people). Roles belong to the whole cluster, so it is created only if missing and stays when
-- envsync is dropped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envsync_operator') THEN
        CREATE ROLE envsync_operator NOLOGIN;
    END IF;
END
$$;
-- Functions are executable by PUBLIC unless revoked: every function of envsync is revoked here,
-- but the content and stored hashes, the JSON form of a row and a key value's text, pure functions that the
-- reads and writes envsync makes as a table's owner call. What operators and link roles may call is
-- granted to them by name.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT d.objid::regprocedure FROM pg_depend d
              WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
                AND d.refclassid = 'pg_extension'::regclass
                AND d.refobjid = (SELECT e.oid FROM pg_extension e WHERE e.extname = 'envsync')
                AND d.objid NOT IN ('envsync.row_hash(record)'::regprocedure, 'envsync.stored_hash(record)'::regprocedure,
                                    'envsync.row_json(record)'::regprocedure,
                                    'envsync.key_text(anyelement)'::regprocedure) LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION envsync.keep_before_images() TO envsync_operator;   -- read by envsync.syncs
GRANT SELECT ON envsync.environments, envsync.synced_tables, envsync.comparisons, envsync.changes,
                envsync.mail_status, envsync.syncs, envsync.messages TO envsync_operator;
GRANT UPDATE (read) ON envsync.messages TO envsync_operator;
GRANT UPDATE (selected) ON envsync.changes TO envsync_operator;
-- What operators may call (they run as envsync's owner); nobody else may.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'sync_compare(text, text, text[], text, jsonb, boolean)',
        'sync_select(bigint, boolean, bigint[], text, text)',
        'sync_apply(bigint, boolean)', 'sync_revert(bigint)',
        'sync_schedule(bigint, timestamptz, boolean)', 'sync_cancel(bigint)',
        'sync_scope_choices(text, text)']::regprocedure[] LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO envsync_operator', f);
    END LOOP;
END
$$;
