-- Modules: named sets of tables synchronized together, their dependencies, row filters and the
-- root table whose rows a user picks per run.

CREATE TABLE envsync.module_tables (
    table_id integer PRIMARY KEY REFERENCES envsync.tracked_tables ON DELETE CASCADE,
    module   text NOT NULL REFERENCES envsync.modules ON DELETE CASCADE,
    position integer NOT NULL
);
COMMENT ON TABLE envsync.module_tables IS 'The tables of each module (a table belongs to one module)';

-- The same table in every environment: its id in that environment's envsync.tracked_tables.
CREATE TABLE envsync.environment_tables (
    environment     text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    table_id        integer NOT NULL REFERENCES envsync.tracked_tables ON DELETE CASCADE,
    remote_table_id integer NOT NULL,
    PRIMARY KEY (environment, table_id)
);
COMMENT ON TABLE envsync.environment_tables IS 'Where each synced table is tracked, and under which id';

-- Why two shapes (envsync.table_shape) differ, in words; NULL when they are the same.
CREATE FUNCTION envsync.shape_difference(a jsonb, b jsonb, a_env text, b_env text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH ca AS (SELECT c->>'name' AS name, c->>'type' AS type, n
                  FROM jsonb_array_elements(a->'columns') WITH ORDINALITY AS x(c, n)),
         cb AS (SELECT c->>'name' AS name, c->>'type' AS type, n
                  FROM jsonb_array_elements(b->'columns') WITH ORDINALITY AS x(c, n))
    SELECT coalesce(
        (SELECT string_agg(CASE
                    WHEN cb.name IS NULL THEN format('Column "%s" is missing in environment "%s".', ca.name, b_env)
                    WHEN ca.name IS NULL THEN format('Column "%s" is missing in environment "%s".', cb.name, a_env)
                    ELSE format('Column "%s" is %s in environment "%s" but %s in environment "%s".',
                                ca.name, ca.type, a_env, cb.type, b_env) END,
                  ' ' ORDER BY coalesce(ca.n, cb.n))
           FROM ca FULL JOIN cb ON ca.name = cb.name
          WHERE ca.type IS DISTINCT FROM cb.type),
        CASE WHEN a->'columns' <> b->'columns'
             THEN format('The columns are in a different order in environments "%s" and "%s".', a_env, b_env) END,
        CASE WHEN a->'key' IS DISTINCT FROM b->'key'
             THEN format('The primary key is (%s) in environment "%s" but (%s) in environment "%s".',
                         (SELECT string_agg(k, ', ') FROM jsonb_array_elements_text(a->'key') k), a_env,
                         (SELECT string_agg(k, ', ') FROM jsonb_array_elements_text(b->'key') k), b_env) END)
$$;

-- Tracks a table in this database and every other environment (keeping its row filter) and
-- checks that it is the same table everywhere. Returns its local table id.
CREATE FUNCTION envsync.track_everywhere(tbl regclass) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nsp name; rel name;
    f_column name; f_pattern text;
    local_id integer; local_shape jsonb;
    local_env text;
    remote_id integer; remote_shape jsonb;
    env record;
    difference text;
    e_state text; e_message text; e_detail text; e_hint text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    SELECT t.filter_column, t.filter_pattern INTO f_column, f_pattern
      FROM envsync.tracked_tables t WHERE t.relid = tbl;
    SELECT e.name INTO local_env FROM envsync.environments e WHERE e.server IS NULL;

    INSERT INTO envsync.track_requests (schema_name, table_name, filter_column, filter_pattern)
    VALUES (nsp, rel, f_column, f_pattern)
    RETURNING table_id, shape INTO local_id, local_shape;
    INSERT INTO envsync.environment_tables (environment, table_id, remote_table_id)
    VALUES (local_env, local_id, local_id) ON CONFLICT DO NOTHING;

    FOR env IN SELECT e.name, e.link_schema FROM envsync.environments e
                WHERE e.server IS NOT NULL ORDER BY e.name LOOP
        BEGIN
            EXECUTE format('INSERT INTO %I.track_requests (schema_name, table_name, filter_column, filter_pattern) '
                           'VALUES ($1, $2, $3, $4) RETURNING table_id, shape', env.link_schema)
               INTO remote_id, remote_shape USING nsp, rel, f_column, f_pattern;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
            PERFORM envsync.raise_from_environment(env.name, e_state, e_message, e_detail, e_hint);
        END;
        difference := envsync.shape_difference(local_shape, remote_shape, local_env, env.name);
        IF difference IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" differs between environments "%" and "%"', tbl, local_env, env.name
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = difference,
                      HINT = 'Make the table identical in every environment, then try again.';
        END IF;
        INSERT INTO envsync.environment_tables (environment, table_id, remote_table_id)
        VALUES (env.name, local_id, remote_id)
        ON CONFLICT (environment, table_id) DO UPDATE SET remote_table_id = EXCLUDED.remote_table_id;
    END LOOP;
    RETURN local_id;
END
$$;

CREATE FUNCTION envsync.require_module(module text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM envsync.modules m WHERE m.name = module) THEN
        RAISE EXCEPTION 'module "%" does not exist', module
            USING ERRCODE = 'undefined_object',
                  HINT = 'The modules are listed in envsync.synced_tables; add one with sync_add_module().';
    END IF;
END
$$;

CREATE FUNCTION sync_add_module(name text, tables regclass[], requires text[] DEFAULT '{}')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    module_name text := name;
    tbl regclass;
    other text;
    required text;
    cycle text[];
    pos integer := 0;
BEGIN
    PERFORM envsync.require_prod();
    PERFORM envsync.require_valid_name('module', module_name);
    IF tables IS NULL OR cardinality(tables) = 0 OR array_position(tables, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'module "%" needs at least one table, and no NULL', module_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT t) FROM unnest(tables) t) <> cardinality(tables) THEN
        RAISE EXCEPTION 'module "%" lists a table twice', module_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH required IN ARRAY coalesce(requires, '{}') LOOP
        IF required IS DISTINCT FROM module_name THEN
            PERFORM envsync.require_module(required);
        END IF;
    END LOOP;
    FOREACH tbl IN ARRAY tables LOOP
        PERFORM envsync.check_trackable(tbl, NULL, NULL);
        SELECT m.module INTO other FROM envsync.module_tables m
          JOIN envsync.tracked_tables t USING (table_id)
         WHERE t.relid = tbl AND m.module <> module_name;
        IF FOUND THEN
            RAISE EXCEPTION 'table "%" already belongs to module "%"', tbl, other
                USING ERRCODE = 'duplicate_object', HINT = 'A table belongs to one module.';
        END IF;
    END LOOP;

    -- Adding an existing module redefines it.
    INSERT INTO envsync.modules AS m (name) VALUES (module_name) ON CONFLICT (name) DO NOTHING;
    DELETE FROM envsync.module_requires r WHERE r.module = module_name;
    DELETE FROM envsync.module_tables t WHERE t.module = module_name;
    IF module_name = ANY (requires) THEN
        RAISE EXCEPTION 'module "%" cannot require itself', module_name
            USING ERRCODE = 'invalid_object_definition';
    END IF;
    INSERT INTO envsync.module_requires (module, requires)
    SELECT DISTINCT module_name, r FROM unnest(coalesce(requires, '{}')) r;
    WITH RECURSIVE reach(module, path) AS (
        SELECT r.requires, ARRAY[module_name, r.requires]
          FROM envsync.module_requires r WHERE r.module = module_name
        UNION ALL
        SELECT r.requires, reach.path || r.requires
          FROM reach JOIN envsync.module_requires r ON r.module = reach.module
         WHERE reach.module <> module_name)
    SELECT path INTO cycle FROM reach WHERE module = module_name LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'module "%" would depend on itself', module_name
            USING ERRCODE = 'invalid_object_definition',
                  DETAIL = 'Dependency cycle: ' || array_to_string(cycle, ' -> ') || '.',
                  HINT = 'Remove one of these requirements.';
    END IF;

    FOREACH tbl IN ARRAY tables LOOP
        pos := pos + 1;
        INSERT INTO envsync.module_tables (table_id, module, position)
        VALUES (envsync.track_everywhere(tbl), module_name, pos);
    END LOOP;
    UPDATE envsync.modules m SET root_table = NULL
     WHERE m.name = module_name AND m.root_table <> ALL (tables);
END
$$;
COMMENT ON FUNCTION sync_add_module(text, regclass[], text[]) IS
    'Defines (or redefines) a module: its tables, tracked in every environment, and the modules it requires';

CREATE FUNCTION sync_set_row_filter(tbl regclass, column_name name, pattern text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM envsync.require_prod();
    IF NOT EXISTS (SELECT FROM envsync.module_tables m JOIN envsync.tracked_tables t USING (table_id)
                    WHERE t.relid = tbl) THEN
        RAISE EXCEPTION 'table "%" is in no module', tbl
            USING ERRCODE = 'undefined_object', HINT = 'Add it to a module with sync_add_module() first.';
    END IF;
    IF (column_name IS NULL) <> (pattern IS NULL) THEN
        RAISE EXCEPTION 'a row filter needs both a column and a pattern'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass NULL for both to remove the filter.';
    END IF;
    PERFORM envsync.check_trackable(tbl, column_name, pattern);
    UPDATE envsync.tracked_tables t SET filter_column = column_name, filter_pattern = pattern
     WHERE t.relid = tbl;
    PERFORM envsync.track_everywhere(tbl);
END
$$;
COMMENT ON FUNCTION sync_set_row_filter(regclass, name, text) IS
    'Synchronizes only the rows of a table whose column is LIKE the pattern (system settings: key LIKE ''mobile_app.%'')';

CREATE FUNCTION sync_set_module_root(module text, root regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM envsync.require_prod();
    PERFORM envsync.require_module(module);
    IF root IS NOT NULL AND NOT EXISTS (
           SELECT FROM envsync.module_tables m JOIN envsync.tracked_tables t USING (table_id)
            WHERE m.module = sync_set_module_root.module AND t.relid = root) THEN
        RAISE EXCEPTION 'table "%" is not in module "%"', root, module
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE envsync.modules m SET root_table = root WHERE m.name = module;
END
$$;
COMMENT ON FUNCTION sync_set_module_root(text, regclass) IS
    'Lets a synchronization pick rows of this table (gallery folders), their dependent rows following by foreign key';

CREATE FUNCTION sync_deny_table(table_name name, reason text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO envsync.never_synced (table_name, reason) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT never_synced_pkey DO UPDATE SET reason = EXCLUDED.reason;
$$;
COMMENT ON FUNCTION sync_deny_table(name, text) IS
    'Adds a table name to the shop data that is never synchronized';

CREATE VIEW envsync.synced_tables AS
    SELECT m.module, mt.position, t.relid AS table_name, t.filter_column, t.filter_pattern,
           md.root_table = t.relid AS is_root,
           ARRAY(SELECT r.requires FROM envsync.module_requires r
                  WHERE r.module = m.module ORDER BY r.requires) AS module_requires,
           ARRAY(SELECT et.environment FROM envsync.environment_tables et
                  WHERE et.table_id = t.table_id ORDER BY et.environment) AS tracked_in
      FROM envsync.module_tables mt
      JOIN envsync.modules md ON md.name = mt.module
      JOIN envsync.tracked_tables t USING (table_id)
      CROSS JOIN LATERAL (SELECT mt.module) m;
COMMENT ON VIEW envsync.synced_tables IS 'Each module''s tables, row filters, root table and the environments tracking them';
