-- Modules: named sets of tables synchronized together, their dependencies, row filters and the
-- root table whose rows a user picks per run; and their tracking in every environment.

CREATE TABLE IF NOT EXISTS envsync.module_tables (
    table_id integer PRIMARY KEY REFERENCES envsync.tracked_tables ON DELETE CASCADE,
    module   text NOT NULL REFERENCES envsync.modules ON DELETE CASCADE,
    position integer NOT NULL
);
COMMENT ON TABLE envsync.module_tables IS 'The tables of each module (a table belongs to one module)';
COMMENT ON COLUMN envsync.module_tables.table_id IS 'The table (envsync.tracked_tables)';
COMMENT ON COLUMN envsync.module_tables.module IS 'Its module';
COMMENT ON COLUMN envsync.module_tables.position IS 'Its place in the module''s list';

-- The same table in every environment: its id in that environment's envsync.tracked_tables.
CREATE TABLE IF NOT EXISTS envsync.environment_tables (
    environment     text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    table_id        integer NOT NULL REFERENCES envsync.tracked_tables ON DELETE CASCADE,
    remote_table_id integer NOT NULL,
    PRIMARY KEY (environment, table_id)
);
COMMENT ON TABLE envsync.environment_tables IS 'Where each synced table is tracked, and under which id';
COMMENT ON COLUMN envsync.environment_tables.environment IS 'The environment';
COMMENT ON COLUMN envsync.environment_tables.table_id IS 'The table, by its id here';
COMMENT ON COLUMN envsync.environment_tables.remote_table_id IS 'Its id in that environment';

-- Has another environment track a table (its track_requests): its id and shape there.
CREATE OR REPLACE FUNCTION envsync.track_there(env text, tbl regclass, OUT table_id integer, OUT shape jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link name := (SELECT e.link_schema FROM envsync.environments e WHERE e.name = env);
    t envsync.tracked_tables;
    e_message text; e_detail text; e_hint text; e_context text;
BEGIN
    SELECT * INTO t FROM envsync.tracked_tables tt WHERE tt.relid = tbl;
    EXECUTE format('INSERT INTO %I.track_requests (schema_name, table_name, filter_column, filter_pattern) '
                   'VALUES ($1, $2, $3, $4) RETURNING table_id, shape', link)
       INTO table_id, shape
      USING (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl),
            (SELECT c.relname FROM pg_class c WHERE c.oid = tbl), t.filter_column, t.filter_pattern;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_context = PG_EXCEPTION_CONTEXT;
    PERFORM envsync.raise_from_environment(env, SQLSTATE, e_message, e_detail, e_hint, e_context);
END
$$;
COMMENT ON FUNCTION envsync.track_there(text, regclass) IS
    'Has another environment track a table; returns its id and shape there';

-- Tracks a table in this database and every other environment (keeping its row filter) and
-- checks that it is the same table everywhere. Returns its local table id.
CREATE OR REPLACE FUNCTION envsync.track_everywhere(tbl regclass) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    local_env text := (SELECT e.name FROM envsync.environments e WHERE e.server IS NULL);
    local_id integer;
    there record;
    env text;
    difference text;
BEGIN
    local_id := envsync.track_table(tbl, (SELECT t.filter_column FROM envsync.tracked_tables t WHERE t.relid = tbl),
                                    (SELECT t.filter_pattern FROM envsync.tracked_tables t WHERE t.relid = tbl));
    INSERT INTO envsync.environment_tables (environment, table_id, remote_table_id)
    VALUES (local_env, local_id, local_id) ON CONFLICT DO NOTHING;
    FOR env IN SELECT e.name FROM envsync.environments e WHERE e.server IS NOT NULL ORDER BY e.name LOOP
        SELECT * INTO there FROM envsync.track_there(env, tbl);
        difference := envsync.shape_difference(envsync.table_shape(tbl), there.shape, local_env, env);
        IF difference IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" differs between environments "%" and "%"', tbl, local_env, env
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = difference,
                      HINT = 'Make the table identical in every environment, then try again.';
        END IF;
        INSERT INTO envsync.environment_tables (environment, table_id, remote_table_id)
        VALUES (env, local_id, there.table_id)
        ON CONFLICT (environment, table_id) DO UPDATE SET remote_table_id = EXCLUDED.remote_table_id;
    END LOOP;
    RETURN local_id;
END
$$;
COMMENT ON FUNCTION envsync.track_everywhere(regclass) IS
    'Tracks a table in every environment, checks it is the same table everywhere; returns its id here';

-- After TEST was rebuilt (pg_dump | pg_restore of PROD's shop schema, into the same or a new
-- database), the ids PROD knows TEST's tables by name nothing or other tables there. Then every
-- table of the environment is tracked there again, under the ids it now has, and the pairs with
-- it start afresh (their next comparison reads every row: nothing was logged of the rebuild).
-- Nothing of what the restored database may carry is taken for its tracking. And the table must
-- be the same table there, column for column, to be compared (one read of its shape there).
CREATE OR REPLACE FUNCTION envsync.check_tracking(env text, tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments := (SELECT x FROM envsync.environments x WHERE x.name = env);
    here text;
    local_shape jsonb;
    remote_shape jsonb;
    difference text;
    t record;
    there record;
    e_message text; e_detail text;
BEGIN
    IF e.server IS NULL THEN
        RETURN;
    END IF;
    here := (SELECT x.name FROM envsync.environments x WHERE x.server IS NULL);
    local_shape := envsync.table_shape(tbl);
    EXECUTE format('SELECT shape FROM %I.tracked_shapes WHERE table_id = $1', e.link_schema)
       INTO remote_shape USING (SELECT r.table_id FROM envsync.reading(env, tbl) r);
    IF remote_shape ->> 'table' IS DISTINCT FROM local_shape ->> 'table' THEN
        FOR t IN SELECT et.table_id, tt.relid FROM envsync.environment_tables et JOIN envsync.tracked_tables tt USING (table_id)
                  WHERE et.environment = env ORDER BY et.table_id LOOP
            BEGIN
                SELECT * INTO there FROM envsync.track_there(env, t.relid);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
                RAISE EXCEPTION 'table "%" is not tracked in environment "%"', t.relid, env
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = 'Tracking it there again failed: ' || e_message || coalesce(E'\n' || nullif(e_detail, ''), ''),
                          HINT = format('If environment "%s" was rebuilt, run sync_grant_link() there again for the synced tables; the next comparison tracks them again.', env);
            END;
            UPDATE envsync.environment_tables et SET remote_table_id = there.table_id
             WHERE et.environment = env AND et.table_id = t.table_id;
        END LOOP;
        DELETE FROM envsync.sync_points sp WHERE env IN (sp.env_a, sp.env_b);
        RAISE NOTICE 'the tables of environment "%" are tracked there again', env
            USING DETAIL = 'Its tracking was lost (the database was rebuilt?): the next comparison of each table reads every row.';
        EXECUTE format('SELECT shape FROM %I.tracked_shapes WHERE table_id = $1', e.link_schema)
           INTO remote_shape USING (SELECT r.table_id FROM envsync.reading(env, tbl) r);
    END IF;
    difference := envsync.shape_difference(local_shape, coalesce(remote_shape, '{}'), here, env);
    IF difference IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" differs between environments "%" and "%"', tbl, here, env
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = difference,
                  HINT = 'Make the table identical in every environment, then compare again.';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.check_tracking(text, regclass) IS
    'Tracks every table of an environment there again if the id of this one no longer names it there (TEST rebuilt); refuses to compare a table that differs there, naming the column';

CREATE OR REPLACE FUNCTION envsync.require_module(module text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM envsync.modules m WHERE m.name = module) THEN
        RAISE EXCEPTION 'module "%" does not exist', module
            USING ERRCODE = 'undefined_object',
                  HINT = 'The modules are listed in envsync.synced_tables; add one with sync_add_module().';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.require_module(text) IS 'Refuses an unknown module';

-- The modules of a comparison: those asked for (all when NULL) and those they require.
CREATE OR REPLACE FUNCTION envsync.modules_with_requirements(asked text[])
RETURNS TABLE (module text, added boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE wanted(module) AS (
        SELECT m.name FROM envsync.modules m WHERE asked IS NULL OR m.name = ANY (asked)
        UNION
        SELECT r.requires FROM wanted JOIN envsync.module_requires r ON r.module = wanted.module)
    SELECT w.module, asked IS NOT NULL AND NOT w.module = ANY (asked) FROM wanted w
$$;
COMMENT ON FUNCTION envsync.modules_with_requirements(text[]) IS
    'The modules asked for (all when NULL) and those they require, which are flagged as added';

-- Replaces the modules a module requires, refusing a dependency cycle.
CREATE OR REPLACE FUNCTION envsync.set_requirements(module_name text, requires text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cycle text[];
BEGIN
    IF module_name = ANY (requires) THEN
        RAISE EXCEPTION 'module "%" cannot require itself', module_name
            USING ERRCODE = 'invalid_object_definition';
    END IF;
    DELETE FROM envsync.module_requires r WHERE r.module = module_name;
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
END
$$;
COMMENT ON FUNCTION envsync.set_requirements(text, text[]) IS 'Replaces the modules a module requires, refusing a cycle';

-- Tables no module synchronizes any more are no longer tracked, here and in every other
-- environment (their triggers and log entries removed there too): what envsync keeps stays
-- bounded by what is synchronized.
CREATE OR REPLACE FUNCTION envsync.untrack_unused() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tt.table_id, tt.relid FROM envsync.tracked_tables tt
              WHERE NOT EXISTS (SELECT FROM envsync.module_tables mt WHERE mt.table_id = tt.table_id)
              ORDER BY tt.table_id LOOP
        PERFORM envsync.untrack_there(et.environment, et.remote_table_id)
           FROM envsync.environment_tables et JOIN envsync.environments e ON e.name = et.environment
          WHERE et.table_id = t.table_id AND e.server IS NOT NULL;
        PERFORM envsync.untrack_table(t.table_id);
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.untrack_unused() IS 'Stops tracking, in every environment, the tables no module synchronizes';

CREATE OR REPLACE FUNCTION envsync.untrack_there(env text, id integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e_message text; e_detail text; e_hint text; e_context text;
BEGIN
    EXECUTE format('INSERT INTO %I.untrack_requests (table_id) VALUES ($1)',
                   (SELECT e.link_schema FROM envsync.environments e WHERE e.name = env))
    USING id;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_context = PG_EXCEPTION_CONTEXT;
    PERFORM envsync.raise_from_environment(env, SQLSTATE, e_message, e_detail, e_hint, e_context);
END
$$;
COMMENT ON FUNCTION envsync.untrack_there(text, integer) IS 'Stops tracking a table in another environment (its untrack request)';

CREATE OR REPLACE FUNCTION sync_add_module(name text, tables regclass[], requires text[] DEFAULT '{}')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    module_name text := name;
    tbl regclass;
    other text;
    required text;
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
    DELETE FROM envsync.module_tables t WHERE t.module = module_name;
    PERFORM envsync.set_requirements(module_name, requires);
    FOREACH tbl IN ARRAY tables LOOP
        pos := pos + 1;
        INSERT INTO envsync.module_tables (table_id, module, position)
        VALUES (envsync.track_everywhere(tbl), module_name, pos);
    END LOOP;
    UPDATE envsync.modules m SET root_table = NULL
     WHERE m.name = module_name AND m.root_table <> ALL (tables);
    PERFORM envsync.untrack_unused();   -- the tables it no longer has
END
$$;

-- Removes a module (refused while another module requires it); the tables it had are no longer
-- tracked anywhere.
CREATE OR REPLACE FUNCTION sync_remove_module(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    module_name text := name;
    dependent text;
BEGIN
    PERFORM envsync.require_prod();
    PERFORM envsync.require_module(module_name);
    SELECT string_agg(r.module, ', ' ORDER BY r.module) INTO dependent
      FROM envsync.module_requires r WHERE r.requires = module_name AND r.module <> module_name;
    IF dependent IS NOT NULL THEN
        RAISE EXCEPTION 'module "%" is required by %', module_name, dependent
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Redefine those modules without it first (sync_add_module).';
    END IF;
    DELETE FROM envsync.modules m WHERE m.name = module_name;
    PERFORM envsync.untrack_unused();
END
$$;
COMMENT ON FUNCTION sync_remove_module(text) IS
    'Removes a module; its tables are no longer tracked in any environment (triggers and change log removed)';
COMMENT ON FUNCTION sync_add_module(text, regclass[], text[]) IS
    'Defines (or redefines) a module: its tables, tracked in every environment, and the modules it requires';

CREATE OR REPLACE FUNCTION sync_set_row_filter(tbl regclass, column_name name, pattern text) RETURNS void
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

CREATE OR REPLACE FUNCTION sync_set_module_root(module text, root regclass) RETURNS void
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

CREATE OR REPLACE VIEW envsync.synced_tables AS
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
COMMENT ON COLUMN envsync.synced_tables.module IS 'The module';
COMMENT ON COLUMN envsync.synced_tables.position IS 'The table''s place in the module';
COMMENT ON COLUMN envsync.synced_tables.table_name IS 'The table';
COMMENT ON COLUMN envsync.synced_tables.filter_column IS 'Its row filter''s column, if any';
COMMENT ON COLUMN envsync.synced_tables.filter_pattern IS 'Its row filter''s LIKE pattern';
COMMENT ON COLUMN envsync.synced_tables.is_root IS 'Whether its records are picked per comparison (the module''s root table)';
COMMENT ON COLUMN envsync.synced_tables.module_requires IS 'The modules always synchronized with this one';
COMMENT ON COLUMN envsync.synced_tables.tracked_in IS 'The environments tracking the table';
