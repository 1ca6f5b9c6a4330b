-- envsync_operator: the role of those allowed to compare environments and choose what to
-- synchronize (grant it to people or to the admin UI's role). Roles belong to the whole
-- cluster, so it is created only if missing and stays when envsync is dropped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envsync_operator') THEN
        CREATE ROLE envsync_operator NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA envsync TO envsync_operator;
GRANT SELECT ON envsync.environments, envsync.synced_tables, envsync.comparisons, envsync.changes,
                envsync.mail_status, envsync.syncs, envsync.messages TO envsync_operator;
GRANT UPDATE (read) ON envsync.messages TO envsync_operator;
GRANT UPDATE (selected) ON envsync.changes TO envsync_operator;
-- What operators may call (the envsync.* ones run as envsync's owner); nobody else may.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'sync_compare(text, text, text[], text, jsonb, boolean)',
        'envsync.compare(text, text, text[], text, jsonb, boolean, name)',
        'sync_select(bigint, boolean, bigint[], text, text)',
        'sync_apply(bigint, boolean)', 'envsync.apply(bigint, boolean, name)',
        'sync_revert(bigint)', 'envsync.revert(bigint, name)',
        'sync_schedule(bigint, timestamptz, boolean)', 'envsync.schedule(bigint, timestamptz, boolean, name)',
        'sync_cancel(bigint)', 'envsync.cancel(bigint)']::regprocedure[] LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO envsync_operator', f);
    END LOOP;
END
$$;
