-- Review and selection: the comparisons and the changes they found, as the admin UI reads them
-- (envsync.comparisons, envsync.changes), the selection a synchronization will apply, and the
-- records a comparison's scope is picked from.

CREATE TABLE IF NOT EXISTS envsync.compare_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    target        text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    mode          text NOT NULL CHECK (mode IN ('all', 'new')),
    modules       text[] NOT NULL,
    added_modules text[] NOT NULL,
    scope         jsonb,
    full_compare  boolean NOT NULL,
    started_by    name NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    -- The change logs it took in: a record logged later changed since the comparison.
    source_snapshot pg_snapshot NOT NULL,
    target_snapshot pg_snapshot NOT NULL,
    -- The content hashes of its changes are this version's (envsync.require_current_comparison).
    envsync_version text NOT NULL
);
COMMENT ON TABLE envsync.compare_runs IS 'Every comparison of two environments';
COMMENT ON COLUMN envsync.compare_runs.id IS 'The comparison';
COMMENT ON COLUMN envsync.compare_runs.source IS 'The environment compared from (what would be written)';
COMMENT ON COLUMN envsync.compare_runs.target IS 'The environment compared to (where it would be written)';
COMMENT ON COLUMN envsync.compare_runs.mode IS 'all (new, modified, deleted) or new (only new records)';
COMMENT ON COLUMN envsync.compare_runs.modules IS 'The modules compared';
COMMENT ON COLUMN envsync.compare_runs.added_modules IS 'The modules added because others require them';
COMMENT ON COLUMN envsync.compare_runs.scope IS 'The records picked per module with a root table, {"gallery": [3, 7]}';
COMMENT ON COLUMN envsync.compare_runs.full_compare IS 'Whether every row was read';
COMMENT ON COLUMN envsync.compare_runs.started_by IS 'The login role that compared';
COMMENT ON COLUMN envsync.compare_runs.started_at IS 'When it started';
COMMENT ON COLUMN envsync.compare_runs.finished_at IS 'When it finished';
COMMENT ON COLUMN envsync.compare_runs.source_snapshot IS 'The source''s change log taken in: entries visible in this snapshot';
COMMENT ON COLUMN envsync.compare_runs.target_snapshot IS 'The target''s change log taken in';
COMMENT ON COLUMN envsync.compare_runs.envsync_version IS 'The envsync version that compared (and hashed the records)';

-- A comparison made by another envsync version (before an upgrade) hashed its records with that
-- version's content hash: writing or reverting from it would take every record for changed.
CREATE OR REPLACE FUNCTION envsync.require_current_comparison(comparison_id bigint, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    made_by text := (SELECT r.envsync_version FROM envsync.compare_runs r WHERE r.id = comparison_id);
    installed text := (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'envsync');
BEGIN
    IF made_by IS DISTINCT FROM installed THEN
        RAISE EXCEPTION 'comparison % was made by envsync %, and this is envsync %', comparison_id, made_by, installed
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its records were compared by the content hash of envsync %s; %s needs this version''s.',
                                  made_by, action),
                  HINT = 'Compare the environments again.';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.require_current_comparison(bigint, text) IS
    'Refuses a comparison made by another envsync version (before an upgrade)';

CREATE TABLE IF NOT EXISTS envsync.compare_changes (
    change_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    comparison_id   bigint NOT NULL REFERENCES envsync.compare_runs ON DELETE CASCADE,
    module          text NOT NULL,
    table_id        integer NOT NULL,
    table_name      regclass NOT NULL,
    key             text[] NOT NULL,
    record_key      jsonb NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('conflict', 'new', 'modified', 'deleted')),
    conflict_reason text,
    selected        boolean NOT NULL,
    changed_columns text[],
    source_row      jsonb,
    target_row      jsonb,
    source_hash     bigint,
    target_hash     bigint,
    cascades        jsonb,
    UNIQUE (comparison_id, table_id, key),
    CHECK ((kind = 'conflict') = (conflict_reason IS NOT NULL))
);
COMMENT ON TABLE envsync.compare_changes IS 'The records each comparison found different (envsync.changes shows them)';
COMMENT ON COLUMN envsync.compare_changes.change_id IS 'The change';
COMMENT ON COLUMN envsync.compare_changes.comparison_id IS 'Its comparison';
COMMENT ON COLUMN envsync.compare_changes.module IS 'Its module';
COMMENT ON COLUMN envsync.compare_changes.table_id IS 'Its table, by id here';
COMMENT ON COLUMN envsync.compare_changes.table_name IS 'Its table';
COMMENT ON COLUMN envsync.compare_changes.key IS 'The record''s primary key (text[])';
COMMENT ON COLUMN envsync.compare_changes.record_key IS 'The primary key as a JSON object, {"id": 42}';
COMMENT ON COLUMN envsync.compare_changes.kind IS 'conflict, new, modified or deleted';
COMMENT ON COLUMN envsync.compare_changes.conflict_reason IS 'Why a conflict is one';
COMMENT ON COLUMN envsync.compare_changes.selected IS 'Whether a synchronization applies it';
COMMENT ON COLUMN envsync.compare_changes.changed_columns IS 'The columns that differ, for records present on both sides';
COMMENT ON COLUMN envsync.compare_changes.source_row IS 'The record in the source, as JSON (NULL: absent; purged after retention)';
COMMENT ON COLUMN envsync.compare_changes.target_row IS 'The record in the target, as JSON (the before-image a revert writes back)';
COMMENT ON COLUMN envsync.compare_changes.source_hash IS 'The source record''s content hash';
COMMENT ON COLUMN envsync.compare_changes.target_hash IS 'The target record''s content hash, as it must still be when applied';
COMMENT ON COLUMN envsync.compare_changes.cascades IS 'For a deletion: the records of tables outside the comparison that a foreign key''s action would change';

CREATE OR REPLACE VIEW envsync.comparisons AS
    SELECT r.id, r.source, r.target, r.mode, r.modules, r.added_modules, r.scope, r.full_compare,
           r.started_by, r.started_at, r.finished_at,
           CASE WHEN EXISTS (SELECT FROM envsync.compare_runs n
                              WHERE n.id > r.id AND least(n.source, n.target) = least(r.source, r.target)
                                AND greatest(n.source, n.target) = greatest(r.source, r.target))
                THEN 'superseded'
                WHEN r.envsync_version IS DISTINCT FROM (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'envsync')
                THEN 'outdated' ELSE 'ready' END AS status,
           count(c.change_id) FILTER (WHERE c.kind = 'conflict') AS conflicts,
           count(c.change_id) FILTER (WHERE c.kind = 'new') AS new,
           count(c.change_id) FILTER (WHERE c.kind = 'modified') AS modified,
           count(c.change_id) FILTER (WHERE c.kind = 'deleted') AS deleted,
           count(c.change_id) FILTER (WHERE c.selected) AS selected,
           r.envsync_version,
           (SELECT o.recipient FROM envsync.outbox o
             WHERE o.kind = 'comparison_finished' AND o.payload->>'comparison_id' = r.id::text
             ORDER BY o.id LIMIT 1) AS mailed_to
      FROM envsync.compare_runs r
      LEFT JOIN envsync.compare_changes c ON c.comparison_id = r.id
     GROUP BY r.id;
COMMENT ON VIEW envsync.comparisons IS 'Every comparison: direction, mode, modules, who and when, status, counts per kind';
COMMENT ON COLUMN envsync.comparisons.id IS 'The comparison';
COMMENT ON COLUMN envsync.comparisons.source IS 'The environment compared from';
COMMENT ON COLUMN envsync.comparisons.target IS 'The environment compared to';
COMMENT ON COLUMN envsync.comparisons.mode IS 'all or new';
COMMENT ON COLUMN envsync.comparisons.modules IS 'The modules compared';
COMMENT ON COLUMN envsync.comparisons.added_modules IS 'The modules added because others require them';
COMMENT ON COLUMN envsync.comparisons.scope IS 'The records picked per module with a root table';
COMMENT ON COLUMN envsync.comparisons.full_compare IS 'Whether every row was read';
COMMENT ON COLUMN envsync.comparisons.started_by IS 'Who compared';
COMMENT ON COLUMN envsync.comparisons.started_at IS 'When it started';
COMMENT ON COLUMN envsync.comparisons.finished_at IS 'When it finished';
COMMENT ON COLUMN envsync.comparisons.status IS 'ready, superseded by a newer comparison of the same environments, or outdated (made by another envsync version)';
COMMENT ON COLUMN envsync.comparisons.conflicts IS 'How many conflicts';
COMMENT ON COLUMN envsync.comparisons.new IS 'How many new records';
COMMENT ON COLUMN envsync.comparisons.modified IS 'How many modified records';
COMMENT ON COLUMN envsync.comparisons.deleted IS 'How many deleted records';
COMMENT ON COLUMN envsync.comparisons.selected IS 'How many changes are selected';
COMMENT ON COLUMN envsync.comparisons.envsync_version IS 'The envsync version that compared (a comparison made before an upgrade cannot be synchronized)';
COMMENT ON COLUMN envsync.comparisons.mailed_to IS 'The address the e-mail saying it finished went to (none when the comparer has no address)';

CREATE OR REPLACE VIEW envsync.changes AS
    SELECT comparison_id, change_id, module, table_name, key, record_key, kind, conflict_reason,
           selected, changed_columns, source_row, target_row, cascades
      FROM envsync.compare_changes;
COMMENT ON VIEW envsync.changes IS
    'The records a comparison found different, by kind (conflict, new, modified, deleted); UPDATE selected to choose what a synchronization applies';
COMMENT ON COLUMN envsync.changes.comparison_id IS 'The comparison';
COMMENT ON COLUMN envsync.changes.change_id IS 'The change';
COMMENT ON COLUMN envsync.changes.module IS 'Its module';
COMMENT ON COLUMN envsync.changes.table_name IS 'Its table';
COMMENT ON COLUMN envsync.changes.key IS 'The record''s primary key (text[])';
COMMENT ON COLUMN envsync.changes.record_key IS 'The primary key as a JSON object';
COMMENT ON COLUMN envsync.changes.kind IS 'conflict, new, modified or deleted';
COMMENT ON COLUMN envsync.changes.conflict_reason IS 'created on both sides, changed on both sides, changed in target, deleted in target or created in target';
COMMENT ON COLUMN envsync.changes.selected IS 'Whether a synchronization applies it (the only updatable column)';
COMMENT ON COLUMN envsync.changes.changed_columns IS 'The columns that differ, for records present on both sides';
COMMENT ON COLUMN envsync.changes.source_row IS 'The record in the source, as JSON (NULL where absent)';
COMMENT ON COLUMN envsync.changes.target_row IS 'The record in the target, as JSON (NULL where absent)';
COMMENT ON COLUMN envsync.changes.cascades IS
    'For a deletion in this database: the records of tables outside the comparison it would cascade into, [{"table", "constraint", "action", "records"}] (an apply including it is refused); NULL: none, or a target elsewhere (checked by the apply there)';

-- A selected record whose parent (by foreign key) is a new record of the same comparison must
-- take the parent along: refused otherwise, naming both, whatever the UPDATE selected.
CREATE OR REPLACE FUNCTION envsync.check_selection() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    orphan record;
BEGIN
    SELECT child.table_name AS child_table, child.record_key AS child_key,
           parent.table_name AS parent_table, parent.record_key AS parent_key
      INTO orphan
      FROM (SELECT DISTINCT comparison_id FROM changed) AS touched
      JOIN envsync.compare_changes child ON child.comparison_id = touched.comparison_id AND child.selected
      JOIN pg_constraint fk ON fk.conrelid = child.table_name AND fk.contype = 'f'
      JOIN envsync.compare_changes parent
        ON parent.comparison_id = child.comparison_id AND parent.table_name = fk.confrelid
       AND NOT parent.selected AND parent.source_row IS NOT NULL AND parent.target_row IS NULL
       AND parent.key = ARRAY(SELECT coalesce(child.source_row, child.target_row) ->> a.attname
                                FROM unnest(fk.conkey) WITH ORDINALITY AS k(attnum, n)
                                JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.attnum
                               ORDER BY k.n)
     WHERE child.source_row IS NOT NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'record % of % needs record % of %, which is new and not selected',
                        orphan.child_key, orphan.child_table, orphan.parent_key, orphan.parent_table
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Select the parent record too, or leave this record out.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION envsync.check_selection() IS
    'Refuses a selection that takes a record without the new parent record it needs';
CREATE OR REPLACE TRIGGER check_selection AFTER UPDATE ON envsync.compare_changes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION envsync.check_selection();

-- Only the selection of a change can be altered.
CREATE OR REPLACE FUNCTION envsync.keep_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (NEW.comparison_id, NEW.module, NEW.table_id, NEW.key, NEW.kind, NEW.conflict_reason,
        NEW.changed_columns, NEW.source_row, NEW.target_row, NEW.source_hash, NEW.target_hash)
       IS DISTINCT FROM
       (OLD.comparison_id, OLD.module, OLD.table_id, OLD.key, OLD.kind, OLD.conflict_reason,
        OLD.changed_columns, OLD.source_row, OLD.target_row, OLD.source_hash, OLD.target_hash) THEN
        RAISE EXCEPTION 'only the selection of a change can be altered'
            USING ERRCODE = 'insufficient_privilege', HINT = 'UPDATE envsync.changes SET selected = ...';
    END IF;
    -- What a synchronization applied stays as it was (its revert undoes exactly that).
    IF NEW.selected IS DISTINCT FROM OLD.selected AND EXISTS (
           SELECT FROM envsync.sync_runs s
            WHERE s.comparison_id = NEW.comparison_id AND s.reverts IS NULL AND NOT s.test_import
              AND s.status IN ('running', 'succeeded')) THEN
        RAISE EXCEPTION 'comparison % is synchronized: its selection can no longer change', NEW.comparison_id
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Compare again to synchronize more.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION envsync.keep_change() IS
    'Refuses any change to a change but its selection, and a selection change once synchronized';
CREATE OR REPLACE TRIGGER keep_change BEFORE UPDATE ON envsync.compare_changes
    FOR EACH ROW EXECUTE FUNCTION envsync.keep_change();

-- Selects or deselects the changes of a comparison: some records (change ids), or a module, or
-- a kind, or all of them. Returns how many changed.
CREATE OR REPLACE FUNCTION sync_select(comparison_id bigint, selected boolean, change_ids bigint[] DEFAULT NULL,
                            module text DEFAULT NULL, kind text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM envsync.comparisons r WHERE r.id = sync_select.comparison_id) THEN
        RAISE EXCEPTION 'comparison % does not exist', comparison_id USING ERRCODE = 'undefined_object';
    END IF;
    IF kind IS NOT NULL AND kind NOT IN ('conflict', 'new', 'modified', 'deleted') THEN
        RAISE EXCEPTION 'unknown kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Kinds are conflict, new, modified and deleted.';
    END IF;
    UPDATE envsync.changes c SET selected = sync_select.selected
     WHERE c.comparison_id = sync_select.comparison_id
       AND (change_ids IS NULL OR c.change_id = ANY (change_ids))
       AND (sync_select.module IS NULL OR c.module = sync_select.module)
       AND (sync_select.kind IS NULL OR c.kind = sync_select.kind)
       AND c.selected IS DISTINCT FROM sync_select.selected;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION sync_select(bigint, boolean, bigint[], text, text) IS
    'Selects or deselects changes of a comparison by record, module or kind; a conflict selected is overwritten';

-- The records of a module's root table (gallery folders) in an environment, to pick a
-- comparison's scope from: their key as the scope takes it and the record as JSON.
CREATE OR REPLACE FUNCTION sync_scope_choices(environment text, module text)
RETURNS TABLE (key text, record_key jsonb, record jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    root regclass;
    key_names text[];
BEGIN
    PERFORM envsync.require_prod();
    PERFORM envsync.require_module(module);
    SELECT m.root_table INTO root FROM envsync.modules m WHERE m.name = sync_scope_choices.module;
    IF root IS NULL THEN
        RAISE EXCEPTION 'module "%" has no records to pick', module
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Only modules with a root table (sync_set_module_root) take a scope.';
    END IF;
    key_names := ARRAY(SELECT k.attname::text FROM envsync.key_columns(root) k ORDER BY k.ord);
    RETURN QUERY EXECUTE format(
        'SELECT r.row ->> $1[1], (SELECT jsonb_object_agg(k, r.row -> k) FROM unnest($1) k), r.row
           FROM %s AS r ORDER BY r.row -> $1[1]', envsync.rows_sql(environment, root, 2))
    USING key_names, NULL::text[];
END
$$;
COMMENT ON FUNCTION sync_scope_choices(text, text) IS
    'The records of a module''s root table (gallery folders) in an environment, to pick a comparison''s scope from';
