-- The comparison: sync_compare() checks the request, locks the pair, reads where each side's
-- change log stands, then compares table by table (intake.sql, classification.sql) and queues
-- the operator's e-mail, all in one transaction: a failed comparison leaves nothing behind.

-- The modules of a comparison request (those asked for and those they require), or the reason
-- it cannot be made.
CREATE OR REPLACE FUNCTION envsync.compare_request(source text, target text, modules text[], mode text,
                                                   OUT all_modules text[], OUT added_modules text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    unknown text;
BEGIN
    IF source IS NULL OR target IS NULL THEN
        RAISE EXCEPTION 'source and target environments are required'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example: sync_compare(''test'', ''prod'').';
    END IF;
    SELECT x INTO unknown FROM unnest(ARRAY[source, target]) x
     WHERE NOT EXISTS (SELECT FROM envsync.environments e WHERE e.name = x) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'environment "%" does not exist', unknown
            USING ERRCODE = 'undefined_object', HINT = 'The environments are listed in envsync.environments.';
    END IF;
    IF source = target THEN
        RAISE EXCEPTION 'source and target are both environment "%"', source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Compare two different environments: sync_compare(''test'', ''prod'').';
    END IF;
    IF mode NOT IN ('all', 'new') THEN
        RAISE EXCEPTION 'unknown mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The mode is ''all'' (new, modified and deleted records) or ''new'' (only new records).';
    END IF;
    SELECT u INTO unknown FROM unnest(modules) u
     WHERE NOT EXISTS (SELECT FROM envsync.modules m WHERE m.name = u) LIMIT 1;
    IF FOUND THEN
        PERFORM envsync.require_module(unknown);
    END IF;
    SELECT array_agg(w.module ORDER BY w.module), coalesce(array_agg(w.module ORDER BY w.module) FILTER (WHERE w.added), '{}')
      INTO all_modules, added_modules
      FROM envsync.modules_with_requirements(modules) w;
    IF all_modules IS NULL THEN
        RAISE EXCEPTION 'there is no module to compare' USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Define modules with sync_add_module().';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.compare_request(text, text, text[], text) IS
    'Checks a comparison request; returns its modules, with those added because others require them';

-- Refuses a scope that is not a list of records per module with a root table.
CREATE OR REPLACE FUNCTION envsync.check_scope(scope jsonb, modules text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    module text;
BEGIN
    IF scope IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(scope) <> 'object' THEN
        RAISE EXCEPTION 'scope must be a JSON object of module names and lists of keys'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''{"gallery": [3, 7]}''.';
    END IF;
    FOR module IN SELECT jsonb_object_keys(scope) LOOP
        IF NOT module = ANY (modules) THEN
            RAISE EXCEPTION 'scope names module "%", which is not compared', module
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (SELECT m.root_table FROM envsync.modules m WHERE m.name = module) IS NULL THEN
            RAISE EXCEPTION 'module "%" has no records to pick', module
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Only modules with a root table (sync_set_module_root) take a scope.';
        END IF;
        IF jsonb_typeof(scope -> module) <> 'array'
           OR EXISTS (SELECT FROM jsonb_array_elements(scope -> module) x WHERE jsonb_typeof(x) NOT IN ('number', 'string')) THEN
            RAISE EXCEPTION 'scope of module "%" must be a list of keys', module
                USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''{"gallery": [3, 7]}''.';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.check_scope(jsonb, text[]) IS 'Refuses a comparison scope that is not a list of records per module with a root table';

-- Compares one table for a comparison: the edits both sides logged are taken in, the records
-- that differ are read (all of them on the pair's first comparison of the table, or when a full
-- read is asked for, or when a side was replaced since, keeping the edits taken in) and
-- classified; both logs compacted beforehand.
-- Returns whether every row was read.
CREATE OR REPLACE FUNCTION envsync.compare_table(comparison envsync.compare_runs, module text, tbl regclass,
                                                 full_read boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    env_a text := least(comparison.source, comparison.target);
    env_b text := greatest(comparison.source, comparison.target);
    source_is_a boolean := comparison.source < comparison.target;
    first_time boolean;
    -- a side replaced since (envsync.check_identity): its log says nothing of what differs
    reset boolean := EXISTS (SELECT FROM envsync.sync_points sp JOIN envsync.tracked_tables t USING (table_id)
                              WHERE sp.env_a = least(comparison.source, comparison.target)
                                AND sp.env_b = greatest(comparison.source, comparison.target) AND t.relid = tbl
                                AND '1'::xid8 IN (pg_snapshot_xmax(sp.snapshot_a), pg_snapshot_xmax(sp.snapshot_b)));
BEGIN
    PERFORM envsync.check_tracking(comparison.source, tbl);
    PERFORM envsync.check_tracking(comparison.target, tbl);
    -- Compacted first, up to what earlier comparisons durably recorded as taken in: the other
    -- server commits before this one, so what this comparison takes in is not yet kept anywhere.
    -- A slice only (the scheduler compacts the rest): a burst of writes costs no comparison more
    -- than that.
    PERFORM envsync.compact_log(env_a, tbl, 20000);
    PERFORM envsync.compact_log(env_b, tbl, 20000);
    first_time := envsync.take_in_edits(env_a, env_b, tbl,
                                        CASE WHEN source_is_a THEN comparison.source_snapshot ELSE comparison.target_snapshot END,
                                        CASE WHEN source_is_a THEN comparison.target_snapshot ELSE comparison.source_snapshot END,
                                        comparison.started_at);
    PERFORM envsync.take_in_differences(comparison.source, comparison.target, tbl, full_read OR first_time OR reset);
    PERFORM envsync.classify_differences(comparison, module, tbl);
    RETURN full_read OR first_time OR reset;
END
$$;
COMMENT ON FUNCTION envsync.compare_table(envsync.compare_runs, text, regclass, boolean) IS
    'Compares one table for a comparison; returns whether every row was read';

-- The user-facing entry: compares source with target (source, target order: what would be
-- written where) and returns the comparison's id. Runs as envsync's owner, whose user mappings
-- reach the other environments; callers need the envsync_operator role. It is recorded as
-- started by the session's own role.
CREATE OR REPLACE FUNCTION sync_compare(source text, target text, modules text[] DEFAULT NULL,
                                        mode text DEFAULT 'all', scope jsonb DEFAULT NULL,
                                        full_compare boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    request record;
    comparison envsync.compare_runs;
    t record;
    any_full boolean := false;
    e_message text; e_detail text; e_hint text; e_context text;
BEGIN
    PERFORM envsync.require_prod();
    SELECT * INTO request FROM envsync.compare_request(source, target, modules, coalesce(mode, 'all'));
    PERFORM envsync.check_scope(scope, request.all_modules);
    PERFORM envsync.lock_pair(source, target);
    PERFORM envsync.recover_written_runs(source);
    PERFORM envsync.recover_written_runs(target);
    -- a replaced side's tables are then read whole, in this comparison or the next of each
    PERFORM envsync.check_identity(source);
    PERFORM envsync.check_identity(target);
    INSERT INTO envsync.compare_runs (source, target, mode, modules, added_modules, scope, full_compare, started_by,
                                      started_at, finished_at, source_snapshot, target_snapshot, envsync_version)
    VALUES (source, target, coalesce(mode, 'all'), request.all_modules, request.added_modules, scope, false, session_user,
            clock_timestamp(), clock_timestamp(), envsync.current_snapshot(source), envsync.current_snapshot(target),
            (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'envsync'))
    RETURNING * INTO comparison;

    -- The edits taken in and the differing records of one table at a time. Made anew, never
    -- taken over: a relation the caller left in its temporary schema is not to be trusted.
    IF to_regclass('pg_temp.envsync_diff') IS NOT NULL THEN
        DROP TABLE pg_temp.envsync_diff;
    END IF;
    IF to_regclass('pg_temp.envsync_edits') IS NOT NULL THEN
        DROP TABLE pg_temp.envsync_edits;
    END IF;
    CREATE TEMP TABLE envsync_diff (key text[] PRIMARY KEY, source_hash bigint, target_hash bigint,
        changed_columns text[], source_row jsonb, target_row jsonb) ON COMMIT DROP;
    CREATE TEMP TABLE envsync_edits (key text[] PRIMARY KEY, a_created boolean, a_changed boolean,
        a_deleted boolean, a_edited_at timestamptz, b_created boolean, b_changed boolean,
        b_deleted boolean, b_edited_at timestamptz) ON COMMIT DROP;
    FOR t IN SELECT mt.module, tt.relid, row_number() OVER (ORDER BY mt.module, mt.position) AS step,
                    count(*) OVER () AS steps
               FROM envsync.module_tables mt JOIN envsync.tracked_tables tt USING (table_id)
              WHERE mt.module = ANY (request.all_modules) ORDER BY mt.module, mt.position LOOP
        PERFORM envsync.report_progress('compare', t.step, t.steps, format('comparing %s (%s)', t.relid, t.module),
                                        jsonb_build_object('comparison_id', comparison.id, 'table', t.relid::text,
                                                           'module', t.module));
        any_full := envsync.compare_table(comparison, t.module, t.relid, full_compare) OR any_full;
    END LOOP;
    DROP TABLE pg_temp.envsync_diff, pg_temp.envsync_edits;
    UPDATE envsync.compare_runs r SET full_compare = any_full, finished_at = clock_timestamp() WHERE r.id = comparison.id;
    PERFORM envsync.announce_comparison(comparison.id);
    RETURN comparison.id;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_context = PG_EXCEPTION_CONTEXT;
    PERFORM envsync.raise_from_environment(
        (SELECT e.name FROM envsync.environments e WHERE e.name IN (source, target) AND e.server IS NOT NULL
          ORDER BY e.name LIMIT 1),
        SQLSTATE, e_message, e_detail, e_hint, e_context);
END
$$;
COMMENT ON FUNCTION sync_compare(text, text, text[], text, jsonb, boolean) IS
    'Compares the chosen modules of two environments (source first) and records every difference for review; returns the comparison id';
