-- Comparison intake: what enters a comparison for one table. The edits both sides logged are
-- taken in first (change_log.sql); then the records that differ are read (diff_table,
-- table_diff.cpp): all rows in a full read, else only the candidates, the records not known to
-- be in sync and those just edited. Those found alike are in sync again. The differences are left in
-- pg_temp.envsync_diff for the classification (classification.sql).

CREATE OR REPLACE FUNCTION envsync.diff_table(source text, target text, tbl regclass, keys text[] DEFAULT NULL)
RETURNS TABLE (key text[], source_hash bigint, target_hash bigint, changed_columns text[],
               source_row jsonb, target_row jsonb)
    AS 'MODULE_PATHNAME', 'envsync_diff_table'
    LANGUAGE C CALLED ON NULL INPUT SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION envsync.diff_table(text, text, regclass, text[]) IS
    'Records of a table whose content differs between two environments: all (keys NULL) or among the given keys (''{42}'')';

-- The differing records of a table, read in full or among the candidates (the records not known
-- to be in sync and those the edits just taken in name), into pg_temp.envsync_diff (made by the
-- comparison); the pair's bookkeeping follows them. Only the edits of records that still differ
-- enter envsync.unsynced: a burst of writes leaves no trail of rows there.
CREATE OR REPLACE FUNCTION envsync.take_in_differences(source text, target text, tbl regclass, full_read boolean)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pair_a text := least(source, target);
    pair_b text := greatest(source, target);
    id integer := (SELECT t.table_id FROM envsync.tracked_tables t WHERE t.relid = tbl);
    candidates text[];
BEGIN
    TRUNCATE pg_temp.envsync_diff;
    IF NOT full_read THEN
        candidates := ARRAY(SELECT u.key::text FROM envsync.unsynced u
                             WHERE u.env_a = pair_a AND u.env_b = pair_b AND u.table_id = id
                            UNION
                            SELECT e.key::text FROM pg_temp.envsync_edits e);
    END IF;
    INSERT INTO pg_temp.envsync_diff (key, source_hash, target_hash, changed_columns, source_row, target_row)
    SELECT d.key, d.source_hash, d.target_hash, d.changed_columns, d.source_row, d.target_row
      FROM envsync.diff_table(source, target, tbl, candidates) d;
    -- Records found alike are in sync: their edits are forgotten.
    DELETE FROM envsync.unsynced u
     WHERE u.env_a = pair_a AND u.env_b = pair_b AND u.table_id = id
       AND NOT EXISTS (SELECT FROM pg_temp.envsync_diff d WHERE d.key = u.key);
    -- The others keep their edits and add those taken in now; records not there yet join, with
    -- theirs, and on a full read those nobody logged (they predate tracking). An update, then
    -- plain inserts: the pair is locked, nobody else writes its rows.
    UPDATE envsync.unsynced u
       SET a_created = u.a_created OR e.a_created, a_changed = u.a_changed OR e.a_changed,
           a_deleted = u.a_deleted OR e.a_deleted, a_edited_at = greatest(u.a_edited_at, e.a_edited_at),
           b_created = u.b_created OR e.b_created, b_changed = u.b_changed OR e.b_changed,
           b_deleted = u.b_deleted OR e.b_deleted, b_edited_at = greatest(u.b_edited_at, e.b_edited_at)
      FROM pg_temp.envsync_edits e
     WHERE u.env_a = pair_a AND u.env_b = pair_b AND u.table_id = id AND u.key = e.key;
    INSERT INTO envsync.unsynced (env_a, env_b, table_id, key, a_created, a_changed, a_deleted,
                                  a_edited_at, b_created, b_changed, b_deleted, b_edited_at)
    SELECT pair_a, pair_b, id, d.key, coalesce(e.a_created, false), coalesce(e.a_changed, false),
           coalesce(e.a_deleted, false), e.a_edited_at, coalesce(e.b_created, false),
           coalesce(e.b_changed, false), coalesce(e.b_deleted, false), e.b_edited_at
      FROM pg_temp.envsync_diff d LEFT JOIN pg_temp.envsync_edits e ON e.key = d.key
     WHERE (full_read OR e.key IS NOT NULL)
       AND NOT EXISTS (SELECT FROM envsync.unsynced u
                        WHERE u.env_a = pair_a AND u.env_b = pair_b AND u.table_id = id AND u.key = d.key);
END
$$;
COMMENT ON FUNCTION envsync.take_in_differences(text, text, regclass, boolean) IS
    'Reads the records of a table that differ (all rows, or the candidates) and keeps the pair''s bookkeeping';
