-- Comparing two environments: the state kept per pair of environments, the comparisons and
-- their changes for review, and sync_compare() itself.

-- Progress of a long operation, for psql users and the admin UI: a NOTICE "step N of M: what",
-- SQLSTATE EV100, whose DETAIL is a JSON object (operation, step, steps, what, and more).
CREATE FUNCTION envsync.report_progress(operation text, step bigint, steps bigint, what text, more jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE NOTICE 'step % of %: %', step, steps, what
        USING ERRCODE = 'EV100',
              DETAIL = jsonb_build_object('operation', operation, 'step', step, 'steps', steps, 'what', what)
                       || coalesce(more, '{}');
END
$$;
COMMENT ON FUNCTION envsync.report_progress(text, bigint, bigint, text, jsonb) IS
    'Reports a step of a comparison or synchronization as a NOTICE (SQLSTATE EV100, JSON detail)';

-- Where an environment's row hashes, read requests and change log are read (quoted names: its
-- link schema's foreign tables, or envsync's own here), and the table's id there.
CREATE FUNCTION envsync.reading(env text, tbl regclass, OUT hashes_from text, OUT requests_from text,
                                OUT log_from text, OUT table_id integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments;
BEGIN
    SELECT * INTO e FROM envsync.environments WHERE name = env;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'environment "%" does not exist', env
            USING ERRCODE = 'undefined_object', HINT = 'The environments are listed in envsync.environments.';
    END IF;
    SELECT et.remote_table_id INTO table_id
      FROM envsync.environment_tables et JOIN envsync.tracked_tables t USING (table_id)
     WHERE et.environment = env AND t.relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not synchronized with environment "%"', tbl, env
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add it to a module with sync_add_module().';
    END IF;
    hashes_from := format('%I.row_hashes', coalesce(e.link_schema, 'envsync'));
    requests_from := CASE WHEN e.link_schema IS NOT NULL THEN format('%I.read_requests', e.link_schema) END;
    log_from := format('%I.row_log', coalesce(e.link_schema, 'envsync'));
END
$$;

-- The rows of a table in an environment with the given keys (all when NULL), read where they
-- live as the table's owner: the SQL of a FROM item giving key text[], hash and the row as JSON,
-- with the keys as the parameter numbered keys_param.
CREATE FUNCTION envsync.rows_sql(env text, tbl regclass, keys_param integer) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM envsync.reading(env, tbl);
    IF r.requests_from IS NULL THEN
        RETURN format('envsync.table_rows(%s, $%s)', r.table_id, keys_param);
    END IF;
    RETURN format('(SELECT ARRAY(SELECT jsonb_array_elements_text(e -> ''key'')) AS key, (e ->> ''hash'')::bigint AS hash,
                           e -> ''row'' AS row
                      FROM envsync.request_rows(%L, %s, $%s) AS e)', r.requests_from, r.table_id, keys_param);
END
$$;

-- Asks another environment for rows (its read_requests): one round trip, the answer a JSON array.
CREATE FUNCTION envsync.request_rows(requests_from text, table_id integer, keys text[]) RETURNS SETOF jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    answer jsonb;
BEGIN
    EXECUTE format('INSERT INTO %s (table_id, keys) VALUES ($1, $2) RETURNING rows', requests_from)
       INTO answer USING table_id, keys;
    RETURN QUERY SELECT jsonb_array_elements(answer);
END
$$;

CREATE FUNCTION envsync.diff_table(source text, target text, tbl regclass, keys text[] DEFAULT NULL)
RETURNS TABLE (key text[], source_hash bigint, target_hash bigint, changed_columns text[],
               source_row jsonb, target_row jsonb)
    AS 'MODULE_PATHNAME', 'envsync_diff_table'
    LANGUAGE C CALLED ON NULL INPUT SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION envsync.diff_table(text, text, regclass, text[]) IS
    'Records of a table whose content differs between two environments: all (keys NULL) or among the given keys (''{42}'')';

-- The sync point of a pair of environments, per table: the changes logged in each environment
-- that comparisons have taken in (those visible in these snapshots). env_a < env_b.
CREATE TABLE envsync.sync_points (
    env_a      text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    env_b      text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    table_id   integer NOT NULL REFERENCES envsync.tracked_tables ON DELETE CASCADE,
    snapshot_a pg_snapshot NOT NULL,
    snapshot_b pg_snapshot NOT NULL,
    taken_at   timestamptz NOT NULL,
    PRIMARY KEY (env_a, env_b, table_id),
    CHECK (env_a < env_b)
);
COMMENT ON TABLE envsync.sync_points IS 'Per pair of environments and table: how far their change logs were taken in';

-- Records of a pair not known to be in sync: they differed at the last comparison, or were
-- written since. The edits are users' writes in each environment since the record was last in
-- sync; an edit of the target makes a conflict.
CREATE TABLE envsync.unsynced (
    env_a       text NOT NULL,
    env_b       text NOT NULL,
    table_id    integer NOT NULL,
    key         text[] NOT NULL,
    a_created   boolean NOT NULL DEFAULT false,
    a_changed   boolean NOT NULL DEFAULT false,
    a_deleted   boolean NOT NULL DEFAULT false,
    a_edited_at timestamptz,
    b_created   boolean NOT NULL DEFAULT false,
    b_changed   boolean NOT NULL DEFAULT false,
    b_deleted   boolean NOT NULL DEFAULT false,
    b_edited_at timestamptz,
    PRIMARY KEY (env_a, env_b, table_id, key),
    FOREIGN KEY (env_a, env_b, table_id) REFERENCES envsync.sync_points ON DELETE CASCADE
);
COMMENT ON TABLE envsync.unsynced IS 'Records of a pair of environments not known to be in sync, with the edits made to them on each side';

CREATE TABLE envsync.compare_runs (
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
    target_snapshot pg_snapshot NOT NULL
);

CREATE TABLE envsync.compare_changes (
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
    UNIQUE (comparison_id, table_id, key),
    CHECK ((kind = 'conflict') = (conflict_reason IS NOT NULL))
);

CREATE VIEW envsync.comparisons AS
    SELECT r.id, r.source, r.target, r.mode, r.modules, r.added_modules, r.scope, r.full_compare,
           r.started_by, r.started_at, r.finished_at,
           CASE WHEN EXISTS (SELECT FROM envsync.compare_runs n
                              WHERE n.id > r.id AND least(n.source, n.target) = least(r.source, r.target)
                                AND greatest(n.source, n.target) = greatest(r.source, r.target))
                THEN 'superseded' ELSE 'ready' END AS status,
           count(c.change_id) FILTER (WHERE c.kind = 'conflict') AS conflicts,
           count(c.change_id) FILTER (WHERE c.kind = 'new') AS new,
           count(c.change_id) FILTER (WHERE c.kind = 'modified') AS modified,
           count(c.change_id) FILTER (WHERE c.kind = 'deleted') AS deleted,
           count(c.change_id) FILTER (WHERE c.selected) AS selected
      FROM envsync.compare_runs r
      LEFT JOIN envsync.compare_changes c ON c.comparison_id = r.id
     GROUP BY r.id;
COMMENT ON VIEW envsync.comparisons IS 'Every comparison: direction, mode, modules, who and when, status, counts per kind';

CREATE VIEW envsync.changes AS
    SELECT comparison_id, change_id, module, table_name, key, record_key, kind, conflict_reason,
           selected, changed_columns, source_row, target_row
      FROM envsync.compare_changes;
COMMENT ON VIEW envsync.changes IS
    'The records a comparison found different, by kind (conflict, new, modified, deleted); UPDATE selected to choose what a synchronization applies';

-- A selected record whose parent (by foreign key) is a new record of the same comparison must
-- take the parent along: refused otherwise, naming both, whatever the UPDATE selected.
CREATE FUNCTION envsync.check_selection() RETURNS trigger
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
CREATE TRIGGER check_selection AFTER UPDATE ON envsync.compare_changes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION envsync.check_selection();

-- Only the selection of a change can be altered.
CREATE FUNCTION envsync.keep_change() RETURNS trigger
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
CREATE TRIGGER keep_change BEFORE UPDATE ON envsync.compare_changes
    FOR EACH ROW EXECUTE FUNCTION envsync.keep_change();

-- Selects or deselects the changes of a comparison: some records (change ids), or a module, or
-- a kind, or all of them. Returns how many changed.
CREATE FUNCTION sync_select(comparison_id bigint, selected boolean, change_ids bigint[] DEFAULT NULL,
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

-- Reads the users' edits an environment logged for a table between two snapshots (the older
-- one NULL: all of them), one row per record.
CREATE FUNCTION envsync.logged_edits(env text, tbl regclass, since pg_snapshot, upto pg_snapshot)
RETURNS TABLE (key text[], created boolean, changed boolean, deleted boolean, edited_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id integer;
    log_from text;
BEGIN
    SELECT r.table_id, r.log_from INTO id, log_from FROM envsync.reading(env, tbl) r;
    RETURN QUERY EXECUTE format(
        'SELECT key, bool_or(kind = ''I'' AND NOT applied), bool_or(kind = ''U'' AND NOT applied),
                bool_or(kind = ''D'' AND NOT applied), max(at) FILTER (WHERE NOT applied)
           FROM %s
          WHERE table_id = $1 AND pg_visible_in_snapshot(xid, $2)
            AND ($3 IS NULL OR NOT pg_visible_in_snapshot(xid, $3))
          GROUP BY key', log_from)
    USING id, upto, since;
END
$$;

-- Forgets the log entries of an environment's table that every pair has taken in.
CREATE FUNCTION envsync.compact_log(env text, tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id integer;
    log_from text;
    taken pg_snapshot[];
BEGIN
    SELECT r.table_id, r.log_from INTO id, log_from FROM envsync.reading(env, tbl) r;
    SELECT array_agg(CASE WHEN sp.env_a = env THEN sp.snapshot_a ELSE sp.snapshot_b END) INTO taken
      FROM envsync.sync_points sp JOIN envsync.tracked_tables t USING (table_id)
     WHERE t.relid = tbl AND env IN (sp.env_a, sp.env_b);
    IF taken IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('DELETE FROM %s WHERE table_id = $1 AND xid < pg_snapshot_xmax($2[1]) %s', log_from,
                   (SELECT string_agg(format('AND pg_visible_in_snapshot(xid, $2[%s])', i), ' ')
                      FROM generate_subscripts(taken, 1) i))
    USING id, taken;
END
$$;

-- A table must still be the same in both environments when they are compared; the foreign
-- table reading it over there follows the table's current columns.
CREATE FUNCTION envsync.check_same_table(source text, target text, tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments;
    local_env text := (SELECT name FROM envsync.environments WHERE server IS NULL);
    local_shape jsonb := envsync.table_shape(tbl);
    remote_shape jsonb;
    difference text;
    e_state text; e_message text; e_detail text; e_hint text;
BEGIN
    FOR e IN SELECT * FROM envsync.environments WHERE name IN (source, target) AND server IS NOT NULL LOOP
        BEGIN
            EXECUTE format('SELECT shape FROM %I.tracked_shapes WHERE table_id = $1', e.link_schema)
               INTO remote_shape USING (SELECT r.table_id FROM envsync.reading(e.name, tbl) r);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
            PERFORM envsync.raise_from_environment(e.name, e_state, e_message, e_detail, e_hint);
        END;
        difference := envsync.shape_difference(local_shape, coalesce(remote_shape, '{}'), local_env, e.name);
        IF difference IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" differs between environments "%" and "%"', tbl, local_env, e.name
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = difference,
                      HINT = 'Make the table identical in every environment, then compare again.';
        END IF;
    END LOOP;
END
$$;

-- The modules of a comparison: those asked for (all when NULL) and those they require.
CREATE FUNCTION envsync.modules_with_requirements(asked text[])
RETURNS TABLE (module text, added boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE wanted(module) AS (
        SELECT m.name FROM envsync.modules m WHERE asked IS NULL OR m.name = ANY (asked)
        UNION
        SELECT r.requires FROM wanted JOIN envsync.module_requires r ON r.module = wanted.module)
    SELECT w.module, asked IS NOT NULL AND NOT w.module = ANY (asked) FROM wanted w
$$;

-- The user-facing entry: compares source with target (source, target order: what would be
-- written where) and returns the comparison's id. Runs as envsync's owner, whose user mappings
-- reach the other environments; callers need the envsync_operator role. It is recorded as
-- started by the session's own role.
CREATE FUNCTION sync_compare(source text, target text, modules text[] DEFAULT NULL,
                             mode text DEFAULT 'all', scope jsonb DEFAULT NULL,
                             full_compare boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_started_by name := session_user;
    v_source text := source;
    v_target text := target;
    v_mode text := coalesce(mode, 'all');
    v_all_modules text[];
    v_added text[];
    v_unknown text;
    v_env_a text := least(source, target);
    v_env_b text := greatest(source, target);
    v_source_is_a boolean := source < target;
    v_snap_a pg_snapshot;
    v_snap_b pg_snapshot;
    v_point envsync.sync_points;
    v_full boolean;
    v_any_full boolean := false;
    v_id bigint;
    v_started timestamptz := clock_timestamp();
    v_table record;
    v_keys text[];
    v_key_names text[];
    v_scope_key text;
    v_summary jsonb;
BEGIN
    PERFORM envsync.require_prod();
    IF v_source IS NULL OR v_target IS NULL THEN
        RAISE EXCEPTION 'source and target environments are required'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example: sync_compare(''test'', ''prod'').';
    END IF;
    SELECT x INTO v_unknown FROM unnest(ARRAY[v_source, v_target]) x
     WHERE NOT EXISTS (SELECT FROM envsync.environments e WHERE e.name = x) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'environment "%" does not exist', v_unknown
            USING ERRCODE = 'undefined_object', HINT = 'The environments are listed in envsync.environments.';
    END IF;
    IF v_source = v_target THEN
        RAISE EXCEPTION 'source and target are both environment "%"', v_source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Compare two different environments: sync_compare(''test'', ''prod'').';
    END IF;
    IF v_mode NOT IN ('all', 'new') THEN
        RAISE EXCEPTION 'unknown mode "%"', v_mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The mode is ''all'' (new, modified and deleted records) or ''new'' (only new records).';
    END IF;
    SELECT u INTO v_unknown FROM unnest(modules) u
     WHERE NOT EXISTS (SELECT FROM envsync.modules m WHERE m.name = u) LIMIT 1;
    IF FOUND THEN
        PERFORM envsync.require_module(v_unknown);
    END IF;
    SELECT array_agg(w.module ORDER BY w.module), coalesce(array_agg(w.module ORDER BY w.module) FILTER (WHERE w.added), '{}')
      INTO v_all_modules, v_added
      FROM envsync.modules_with_requirements(modules) w;
    IF v_all_modules IS NULL THEN
        RAISE EXCEPTION 'there is no module to compare' USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Define modules with sync_add_module().';
    END IF;
    IF scope IS NOT NULL THEN
        IF jsonb_typeof(scope) <> 'object' THEN
            RAISE EXCEPTION 'scope must be a JSON object of module names and lists of keys'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''{"gallery": [3, 7]}''.';
        END IF;
        FOR v_scope_key IN SELECT jsonb_object_keys(scope) LOOP
            IF NOT v_scope_key = ANY (v_all_modules) THEN
                RAISE EXCEPTION 'scope names module "%", which is not compared', v_scope_key
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF (SELECT root_table FROM envsync.modules WHERE name = v_scope_key) IS NULL THEN
                RAISE EXCEPTION 'module "%" has no records to pick', v_scope_key
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Only modules with a root table (sync_set_module_root) take a scope.';
            END IF;
            IF jsonb_typeof(scope -> v_scope_key) <> 'array'
               OR EXISTS (SELECT FROM jsonb_array_elements(scope -> v_scope_key) x
                           WHERE jsonb_typeof(x) NOT IN ('number', 'string')) THEN
                RAISE EXCEPTION 'scope of module "%" must be a list of keys', v_scope_key
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''{"gallery": [3, 7]}''.';
            END IF;
        END LOOP;
    END IF;

    -- One comparison or synchronization of a pair at a time.
    PERFORM pg_advisory_xact_lock(hashtext('envsync pair'), hashtext(v_env_a || '/' || v_env_b));
    v_snap_a := envsync.current_snapshot(v_env_a);
    v_snap_b := envsync.current_snapshot(v_env_b);

    INSERT INTO envsync.compare_runs (source, target, mode, modules, added_modules, scope, full_compare,
                                      started_by, started_at, finished_at, source_snapshot, target_snapshot)
    VALUES (v_source, v_target, v_mode, v_all_modules, v_added, scope, false, v_started_by, v_started, v_started,
            CASE WHEN v_source_is_a THEN v_snap_a ELSE v_snap_b END,
            CASE WHEN v_source_is_a THEN v_snap_b ELSE v_snap_a END)
    RETURNING id INTO v_id;

    -- The differing records of one table at a time. Made anew, never taken over: a relation
    -- the caller left in its temporary schema is not to be trusted.
    IF to_regclass('pg_temp.envsync_diff') IS NOT NULL THEN
        DROP TABLE pg_temp.envsync_diff;
    END IF;
    CREATE TEMP TABLE envsync_diff (key text[] PRIMARY KEY, source_hash bigint, target_hash bigint,
        changed_columns text[], source_row jsonb, target_row jsonb) ON COMMIT DROP;
    FOR v_table IN
        SELECT mt.module, t.table_id, t.relid, m.root_table,
               row_number() OVER (ORDER BY mt.module, mt.position) AS step, count(*) OVER () AS steps,
               (SELECT fk.conkey FROM pg_constraint fk
                 WHERE fk.conrelid = t.relid AND fk.contype = 'f' AND fk.confrelid = m.root_table
                   AND t.relid <> m.root_table LIMIT 1) AS root_fk
          FROM envsync.module_tables mt
          JOIN envsync.tracked_tables t USING (table_id)
          JOIN envsync.modules m ON m.name = mt.module
         WHERE mt.module = ANY (v_all_modules)
         ORDER BY mt.module, mt.position
    LOOP
        PERFORM envsync.report_progress('compare', v_table.step, v_table.steps,
                                        format('comparing %s (%s)', v_table.relid, v_table.module),
                                        jsonb_build_object('comparison_id', v_id, 'table', v_table.relid::text,
                                                           'module', v_table.module));
        SELECT * INTO v_point FROM envsync.sync_points sp
         WHERE sp.env_a = v_env_a AND sp.env_b = v_env_b AND sp.table_id = v_table.table_id;
        -- Without a sync point (the pair's first comparison) every row is read; a forced full
        -- comparison does so too, keeping the edits already taken in.
        v_full := full_compare OR NOT FOUND;
        v_any_full := v_any_full OR v_full;
        INSERT INTO envsync.sync_points AS sp (env_a, env_b, table_id, snapshot_a, snapshot_b, taken_at)
        VALUES (v_env_a, v_env_b, v_table.table_id, v_snap_a, v_snap_b, v_started)
        ON CONFLICT (env_a, env_b, table_id) DO UPDATE
           SET snapshot_a = EXCLUDED.snapshot_a, snapshot_b = EXCLUDED.snapshot_b, taken_at = EXCLUDED.taken_at;

        -- Take in the edits logged on each side since the last comparison of the pair.
        INSERT INTO envsync.unsynced AS u (env_a, env_b, table_id, key, a_created, a_changed, a_deleted,
                                           a_edited_at, b_created, b_changed, b_deleted, b_edited_at)
        SELECT v_env_a, v_env_b, v_table.table_id, coalesce(a.key, b.key),
               coalesce(a.created, false), coalesce(a.changed, false), coalesce(a.deleted, false), a.edited_at,
               coalesce(b.created, false), coalesce(b.changed, false), coalesce(b.deleted, false), b.edited_at
          FROM envsync.logged_edits(v_env_a, v_table.relid, v_point.snapshot_a, v_snap_a) a
          FULL JOIN envsync.logged_edits(v_env_b, v_table.relid, v_point.snapshot_b, v_snap_b) b ON a.key = b.key
        ON CONFLICT (env_a, env_b, table_id, key) DO UPDATE
           SET a_created = u.a_created OR EXCLUDED.a_created, a_changed = u.a_changed OR EXCLUDED.a_changed,
               a_deleted = u.a_deleted OR EXCLUDED.a_deleted,
               a_edited_at = greatest(u.a_edited_at, EXCLUDED.a_edited_at),
               b_created = u.b_created OR EXCLUDED.b_created, b_changed = u.b_changed OR EXCLUDED.b_changed,
               b_deleted = u.b_deleted OR EXCLUDED.b_deleted,
               b_edited_at = greatest(u.b_edited_at, EXCLUDED.b_edited_at);

        -- The records that differ: all of them read in full, or among the candidates.
        PERFORM envsync.check_same_table(v_source, v_target, v_table.relid);
        v_key_names := ARRAY(SELECT k.attname::text FROM envsync.key_columns(v_table.relid) k ORDER BY k.ord);
        TRUNCATE pg_temp.envsync_diff;
        IF v_full THEN
            INSERT INTO pg_temp.envsync_diff (key, source_hash, target_hash, changed_columns, source_row, target_row)
            SELECT d.key, d.source_hash, d.target_hash, d.changed_columns, d.source_row, d.target_row
              FROM envsync.diff_table(v_source, v_target, v_table.relid) d;
        ELSE
            SELECT array_agg(u.key::text) INTO v_keys FROM envsync.unsynced u
             WHERE u.env_a = v_env_a AND u.env_b = v_env_b AND u.table_id = v_table.table_id;
            INSERT INTO pg_temp.envsync_diff (key, source_hash, target_hash, changed_columns, source_row, target_row)
            SELECT d.key, d.source_hash, d.target_hash, d.changed_columns, d.source_row, d.target_row
              FROM envsync.diff_table(v_source, v_target, v_table.relid, coalesce(v_keys, '{}')) d;
        END IF;

        -- Records found alike are in sync: their edits are forgotten.
        DELETE FROM envsync.unsynced u
         WHERE u.env_a = v_env_a AND u.env_b = v_env_b AND u.table_id = v_table.table_id
           AND NOT EXISTS (SELECT FROM pg_temp.envsync_diff d WHERE d.key = u.key);
        IF v_full THEN   -- differences nobody logged (they predate tracking) join the candidates
            INSERT INTO envsync.unsynced (env_a, env_b, table_id, key)
            SELECT v_env_a, v_env_b, v_table.table_id, d.key FROM pg_temp.envsync_diff d
            ON CONFLICT DO NOTHING;
        END IF;

        INSERT INTO envsync.compare_changes (comparison_id, module, table_id, table_name, key, record_key,
                                             kind, conflict_reason, selected, changed_columns,
                                             source_row, target_row, source_hash, target_hash)
        SELECT v_id, v_table.module, v_table.table_id, v_table.relid, d.key,
               (SELECT jsonb_object_agg(k, coalesce(d.source_row, d.target_row) -> k) FROM unnest(v_key_names) k),
               c.kind, c.reason, c.kind <> 'conflict', d.changed_columns,
               d.source_row, d.target_row, d.source_hash, d.target_hash
          FROM pg_temp.envsync_diff d
          JOIN envsync.unsynced u
            ON u.env_a = v_env_a AND u.env_b = v_env_b AND u.table_id = v_table.table_id AND u.key = d.key
         CROSS JOIN LATERAL (
               SELECT CASE WHEN v_source_is_a THEN u.a_created ELSE u.b_created END AS s_created,
                      CASE WHEN v_source_is_a THEN u.a_created OR u.a_changed OR u.a_deleted
                           ELSE u.b_created OR u.b_changed OR u.b_deleted END AS s_edited,
                      CASE WHEN v_source_is_a THEN u.b_created ELSE u.a_created END AS t_created,
                      CASE WHEN v_source_is_a THEN u.b_created OR u.b_changed OR u.b_deleted
                           ELSE u.a_created OR u.a_changed OR u.a_deleted END AS t_edited) e
         CROSS JOIN LATERAL (
               SELECT CASE WHEN NOT e.t_edited THEN
                               CASE WHEN d.target_row IS NULL THEN 'new'
                                    WHEN d.source_row IS NULL THEN 'deleted'
                                    ELSE 'modified' END
                           ELSE 'conflict' END AS kind,
                      CASE WHEN NOT e.t_edited THEN NULL
                           WHEN d.target_row IS NULL THEN 'deleted in target'
                           WHEN e.t_created AND e.s_created THEN 'created on both sides'
                           WHEN e.t_created THEN 'created in target'
                           WHEN e.s_edited THEN 'changed on both sides'
                           ELSE 'changed in target' END AS reason) c
         WHERE (v_mode = 'all' OR c.kind = 'new' OR c.reason = 'created on both sides')
           AND (scope IS NULL OR NOT scope ? v_table.module
                OR (v_table.relid = v_table.root_table
                    AND d.key[1] IN (SELECT jsonb_array_elements_text(scope -> v_table.module)))
                OR (v_table.root_fk IS NOT NULL
                    AND coalesce(d.source_row, d.target_row) ->> (SELECT a.attname FROM pg_attribute a
                                                                   WHERE a.attrelid = v_table.relid
                                                                     AND a.attnum = v_table.root_fk[1])
                        IN (SELECT jsonb_array_elements_text(scope -> v_table.module)))
                OR (v_table.relid <> v_table.root_table AND v_table.root_fk IS NULL));

        PERFORM envsync.compact_log(v_env_a, v_table.relid);
        PERFORM envsync.compact_log(v_env_b, v_table.relid);
    END LOOP;

    DROP TABLE pg_temp.envsync_diff;
    UPDATE envsync.compare_runs SET full_compare = v_any_full, finished_at = clock_timestamp() WHERE id = v_id;

    -- The e-mail to whoever started it, in this same transaction.
    SELECT coalesce(jsonb_agg(to_jsonb(per_module) ORDER BY per_module.module), '[]') INTO v_summary
      FROM (SELECT m.module,
                   count(c.change_id) FILTER (WHERE c.kind = 'new') AS new,
                   count(c.change_id) FILTER (WHERE c.kind = 'modified') AS modified,
                   count(c.change_id) FILTER (WHERE c.kind = 'deleted') AS deleted,
                   count(c.change_id) FILTER (WHERE c.kind = 'conflict') AS conflicts
              FROM unnest(v_all_modules) m(module)
              LEFT JOIN envsync.compare_changes c ON c.comparison_id = v_id AND c.module = m.module
             GROUP BY m.module) per_module;
    PERFORM envsync.queue_mail(v_started_by, 'comparison_finished',
                               format('Comparison %s finished: %s > %s', v_id, upper(v_source), upper(v_target)),
                               jsonb_build_object('comparison_id', v_id, 'source', v_source, 'target', v_target,
                                                  'mode', v_mode, 'started_by', v_started_by,
                                                  'finished_at', r.finished_at, 'modules', v_summary))
       FROM envsync.compare_runs r WHERE r.id = v_id;
    RETURN v_id;
END
$$;

-- What an environment's transaction sees now. For another environment this is also the
-- snapshot of every later read of it in this transaction (postgres_fdw: repeatable read).
CREATE FUNCTION envsync.current_snapshot(env text) RETURNS pg_snapshot
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments;
    snap pg_snapshot;
    e_state text; e_message text; e_detail text; e_hint text;
BEGIN
    SELECT * INTO e FROM envsync.environments WHERE name = env;
    IF e.server IS NULL THEN
        RETURN pg_current_snapshot();
    END IF;
    BEGIN
        EXECUTE format('SELECT snapshot FROM %I.about', e.link_schema) INTO snap;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
                                e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
        PERFORM envsync.raise_from_environment(env, e_state, e_message, e_detail, e_hint);
    END;
    RETURN snap;
END
$$;

COMMENT ON FUNCTION sync_compare(text, text, text[], text, jsonb, boolean) IS
    'Compares the chosen modules of two environments (source first) and records every difference for review; returns the comparison id';

-- The records of a module's root table (gallery folders) in an environment, to pick a
-- comparison's scope from: their key as the scope takes it and the record as JSON.
CREATE FUNCTION sync_scope_choices(environment text, module text)
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
    'The records of a module''s root table (gallery folders) in an environment, to choose a comparison''s scope from';
