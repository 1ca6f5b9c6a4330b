-- Classification: what each difference is for the review. The rule, in one place: a record
-- whose target copy was not edited since it was last in sync is new, modified or deleted;
-- otherwise it is a conflict, with the reason, and left unselected ("ignore the conflict and
-- overwrite" is selecting it).

-- No SET clause and a set of one row, so that it is inlined into the classification's query,
-- which pins search_path (its body names nothing to look up).
CREATE OR REPLACE FUNCTION envsync.change_kind(in_source boolean, in_target boolean,
                                               source_created boolean, source_edited boolean,
                                               target_created boolean, target_edited boolean)
RETURNS TABLE (kind text, reason text) LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN target_edited THEN 'conflict'
                WHEN NOT in_target THEN 'new'
                WHEN NOT in_source THEN 'deleted'
                ELSE 'modified' END,
           CASE WHEN NOT target_edited THEN NULL
                WHEN NOT in_target THEN 'deleted in target'
                WHEN target_created AND source_created THEN 'created on both sides'
                WHEN target_created THEN 'created in target'
                WHEN NOT in_source THEN 'deleted in source'
                WHEN source_edited THEN 'changed on both sides'
                ELSE 'changed in target' END
$$;
COMMENT ON FUNCTION envsync.change_kind(boolean, boolean, boolean, boolean, boolean, boolean) IS
    'The kind of a difference (conflict, new, modified, deleted) and a conflict''s reason, from the edits on each side';

-- The edits a change of a comparison stands for on each side: the rule above read backwards
-- (a revert gives the records back the edits they had before the synchronization).
CREATE OR REPLACE FUNCTION envsync.change_edits(kind text, reason text,
                                                OUT source_created boolean, OUT source_changed boolean,
                                                OUT source_deleted boolean, OUT target_created boolean,
                                                OUT target_changed boolean, OUT target_deleted boolean)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT kind = 'new' OR r = 'created on both sides',
           kind = 'modified' OR r = 'changed on both sides',
           kind = 'deleted' OR r = 'deleted in source',
           r IN ('created on both sides', 'created in target'),
           r IN ('changed on both sides', 'changed in target', 'deleted in source'),
           r = 'deleted in target'
      FROM (SELECT coalesce(reason, '') AS r) AS given   -- no reason: not a conflict
$$;
COMMENT ON FUNCTION envsync.change_edits(text, text) IS
    'The edits on each side a change stands for (the classification read backwards)';

-- Whether a difference of a table is in a comparison's scope: modules without a scope are whole;
-- in a module with one, the picked records of its root table and the rows referencing them.
CREATE OR REPLACE FUNCTION envsync.in_scope(scope jsonb, module text, tbl regclass, key text[], content jsonb)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT scope IS NULL OR NOT scope ? module
        OR CASE WHEN tbl = m.root_table THEN key[1] IN (SELECT jsonb_array_elements_text(scope -> module))
                WHEN fk.column_name IS NOT NULL
                THEN content ->> fk.column_name IN (SELECT jsonb_array_elements_text(scope -> module))
                ELSE true END   -- tables not referencing the root are whole
      FROM envsync.modules m
      LEFT JOIN LATERAL (SELECT a.attname AS column_name FROM pg_constraint c
                           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                          WHERE c.conrelid = tbl AND c.contype = 'f' AND c.confrelid = m.root_table
                            AND tbl <> m.root_table LIMIT 1) fk ON true
     WHERE m.name = module
$$;
COMMENT ON FUNCTION envsync.in_scope(jsonb, text, regclass, text[], jsonb) IS
    'Whether a record is in a comparison''s scope (the picked root records and the rows referencing them)';

-- Records the differences of one table (pg_temp.envsync_diff) as changes of a comparison: their
-- kind and reason from the edits the pair took in, filtered by the comparison's mode and scope.
CREATE OR REPLACE FUNCTION envsync.classify_differences(comparison envsync.compare_runs, module text, tbl regclass)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id integer := (SELECT t.table_id FROM envsync.tracked_tables t WHERE t.relid = tbl);
    source_is_a boolean := comparison.source < comparison.target;
    key_names text[] := ARRAY(SELECT k.attname::text FROM envsync.key_columns(tbl) k ORDER BY k.ord);
    compared regclass[] := ARRAY(SELECT t.relid FROM envsync.module_tables mt JOIN envsync.tracked_tables t USING (table_id)
                                  WHERE mt.module = ANY (comparison.modules));
BEGIN
    INSERT INTO envsync.compare_changes (comparison_id, module, table_id, table_name, key, record_key,
                                         kind, conflict_reason, selected, changed_columns,
                                         source_row, target_row, source_hash, target_hash)
    SELECT comparison.id, module, id, tbl, d.key,
           CASE WHEN cardinality(key_names) = 1   -- the common key, without a subquery per record
                THEN jsonb_build_object(key_names[1], coalesce(d.source_row, d.target_row) -> key_names[1])
                ELSE (SELECT jsonb_object_agg(k, coalesce(d.source_row, d.target_row) -> k) FROM unnest(key_names) k) END,
           c.kind, c.reason, c.kind <> 'conflict', d.changed_columns,
           d.source_row, d.target_row, d.source_hash, d.target_hash
      FROM pg_temp.envsync_diff d
      JOIN envsync.unsynced u
        ON u.env_a = least(comparison.source, comparison.target) AND u.env_b = greatest(comparison.source, comparison.target)
       AND u.table_id = id AND u.key = d.key
     CROSS JOIN LATERAL envsync.change_kind(
           d.source_row IS NOT NULL, d.target_row IS NOT NULL,
           CASE WHEN source_is_a THEN u.a_created ELSE u.b_created END,
           CASE WHEN source_is_a THEN u.a_created OR u.a_changed OR u.a_deleted
                ELSE u.b_created OR u.b_changed OR u.b_deleted END,
           CASE WHEN source_is_a THEN u.b_created ELSE u.a_created END,
           CASE WHEN source_is_a THEN u.b_created OR u.b_changed OR u.b_deleted
                ELSE u.a_created OR u.a_changed OR u.a_deleted END) c
     WHERE (comparison.mode = 'all' OR c.kind = 'new' OR c.reason = 'created on both sides')
       AND (comparison.scope IS NULL   -- no scope, no lookup per record
            OR envsync.in_scope(comparison.scope, module, tbl, d.key, coalesce(d.source_row, d.target_row)));
    -- Deletions: what they would cascade into outside the comparison in the target, for the
    -- review (read here, or asked of the target's envsync). Only records with cascades are
    -- updated, and only where a foreign key's action reaches outside the comparison: the
    -- common case costs no per-record work.
    IF (SELECT e.server IS NULL FROM envsync.environments e WHERE e.name = comparison.target) THEN
        IF EXISTS (SELECT FROM pg_constraint con
                    WHERE con.contype = 'f' AND con.confrelid = tbl AND con.confdeltype IN ('c', 'n', 'd')
                      AND con.conrelid <> ALL (compared)) THEN
            UPDATE envsync.compare_changes cc SET cascades = found.cascades
              FROM (SELECT d.change_id, envsync.cascades_of(tbl, d.target_row, compared) AS cascades
                      FROM envsync.compare_changes d
                     WHERE d.comparison_id = comparison.id AND d.table_id = id
                       AND d.source_row IS NULL AND d.target_row IS NOT NULL) found
             WHERE cc.change_id = found.change_id AND found.cascades IS NOT NULL;
        END IF;
    ELSE
        UPDATE envsync.compare_changes cc SET cascades = r.cascades
          FROM envsync.request_cascades(comparison, tbl) r
         WHERE cc.comparison_id = comparison.id AND cc.table_id = id AND cc.key = r.key;
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.classify_differences(envsync.compare_runs, text, regclass) IS
    'Records the differences of a table as changes of a comparison, classified, within its mode and scope';
