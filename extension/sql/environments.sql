-- Environments: this database (prod on the production database) and the others, reached
-- through postgres_fdw foreign servers. Credentials stay in the servers' user mappings.

-- Configuration and synchronization run on PROD only: the database whose own environment is prod.
CREATE FUNCTION envsync.require_prod() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    local_name text;
BEGIN
    SELECT e.name INTO local_name FROM envsync.environments e WHERE e.server IS NULL;
    IF local_name IS DISTINCT FROM 'prod' THEN
        RAISE EXCEPTION 'synchronization is configured and started only from the production database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = CASE WHEN local_name IS NULL
                                THEN 'This database is not registered as an environment.'
                                ELSE format('This database is environment "%s".', local_name) END,
                  HINT = 'Connect to the PROD database. Register it there once with: SELECT sync_add_environment(''prod'');';
    END IF;
END
$$;

-- Re-raises an error that came from environment env, saying so, with its SQLSTATE and texts.
CREATE FUNCTION envsync.raise_from_environment(env text, state text, message text, detail text, hint text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF state LIKE '08%' OR state = '2F003' OR state = '42704' AND message LIKE 'user mapping not found%' THEN
        RAISE EXCEPTION 'cannot connect to environment "%"', env
            USING ERRCODE = state, DETAIL = message || coalesce(E'\n' || detail, ''),
                  HINT = format('Check the foreign server of environment "%s" (host, port, dbname) and its user mapping for role %I.',
                                env, current_user);
    END IF;
    RAISE EXCEPTION 'environment "%": %', env, message
        USING ERRCODE = state, DETAIL = coalesce(detail, ''), HINT = coalesce(hint, '');
END
$$;

CREATE FUNCTION sync_add_environment(name text, server text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    env_name text := name;
    link name;
    remote_version text;
    local_version text;
    tracked record;
    e_state text; e_message text; e_detail text; e_hint text;
BEGIN
    PERFORM envsync.require_valid_name('environment', env_name);
    IF EXISTS (SELECT FROM envsync.environments e WHERE e.name = env_name) THEN
        RAISE EXCEPTION 'environment "%" already exists', env_name USING ERRCODE = 'duplicate_object';
    END IF;

    IF server IS NULL THEN
        IF EXISTS (SELECT FROM envsync.environments e WHERE e.server IS NULL) THEN
            RAISE EXCEPTION 'this database is already registered as environment "%"',
                            (SELECT e.name FROM envsync.environments e WHERE e.server IS NULL)
                USING ERRCODE = 'duplicate_object';
        END IF;
        INSERT INTO envsync.environments (name) VALUES (env_name);
        RETURN;
    END IF;

    PERFORM envsync.require_prod();
    IF NOT EXISTS (SELECT FROM pg_foreign_server s
                     JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                    WHERE s.srvname = server AND w.fdwname = 'postgres_fdw') THEN
        RAISE EXCEPTION 'postgres_fdw server "%" does not exist', server
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host, port, dbname) and a USER MAPPING with the password of a role of that database.';
    END IF;

    -- The schema of its foreign tables: named after it when that makes a plain identifier.
    link := 'envsync_env_' || CASE WHEN env_name ~ '^[a-z][a-z0-9_]{0,50}$' THEN env_name
                                   ELSE left(md5(env_name), 16) END;
    EXECUTE format('CREATE SCHEMA %I', link);
    EXECUTE format('COMMENT ON SCHEMA %I IS %L', link,
                   format('envsync: foreign tables reaching environment %s', env_name));
    EXECUTE format('CREATE FOREIGN TABLE %I.about (version text, database_name name, snapshot pg_snapshot) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''about'')', link, server);
    EXECUTE format('CREATE FOREIGN TABLE %I.track_requests (schema_name name, table_name name, '
                   'filter_column name, filter_pattern text, table_id integer, shape jsonb) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''track_requests'')', link, server);
    EXECUTE format('CREATE FOREIGN TABLE %I.row_log (table_id integer, key text[], kind "char", '
                   'hash bigint, applied boolean, xid xid8, at timestamptz) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''row_log'', fetch_size ''10000'')',
                   link, server);
    EXECUTE format('CREATE FOREIGN TABLE %I.tracked_shapes (table_id integer, shape jsonb) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''tracked_shapes'')', link, server);
    -- Applying there: the records are staged in batches, then one request applies them.
    EXECUTE format('CREATE FOREIGN TABLE %I.apply_stage (run bigint, table_id integer, key text[], op "char", '
                   'expect_hash bigint, new_row jsonb, new_hash bigint) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''apply_stage'', batch_size ''1000'')',
                   link, server);
    EXECUTE format('CREATE FOREIGN TABLE %I.apply_requests (run bigint, environment text, move_sequences boolean, '
                   'result jsonb) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''apply_requests'')', link, server);
    -- Reading records there: the answer comes back in the returned row.
    EXECUTE format('CREATE FOREIGN TABLE %I.read_requests (table_id integer, keys text[], rows jsonb) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''read_requests'')', link, server);
    -- Asynchronous: the other server hashes its rows while this one hashes its own.
    EXECUTE format('CREATE FOREIGN TABLE %I.row_hashes (table_id integer, key text, hash bigint) '
                   'SERVER %I OPTIONS (schema_name ''envsync'', table_name ''row_hashes'', fetch_size ''10000'', '
                   'async_capable ''true'')',
                   link, server);

    BEGIN
        EXECUTE format('SELECT version FROM %I.about', link) INTO remote_version;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
                                e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
        IF e_state = '42P01' THEN
            RAISE EXCEPTION 'envsync is not installed in the database of environment "%"', env_name
                USING ERRCODE = 'undefined_object',
                      HINT = 'There, run CREATE EXTENSION envsync CASCADE and SELECT sync_grant_link(''<role of the user mapping>'').';
        ELSIF e_state = '42501' THEN
            RAISE EXCEPTION 'the role of the user mapping may not use envsync in environment "%"', env_name
                USING ERRCODE = 'insufficient_privilege', DETAIL = e_message,
                      HINT = 'There, run SELECT sync_grant_link(''<role of the user mapping>'').';
        END IF;
        PERFORM envsync.raise_from_environment(env_name, e_state, e_message, e_detail, e_hint);
    END;
    SELECT extversion INTO local_version FROM pg_extension WHERE extname = 'envsync';
    IF remote_version IS DISTINCT FROM local_version THEN
        RAISE EXCEPTION 'environment "%" runs envsync %, this database %', env_name, remote_version, local_version
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the same envsync version in both databases (ALTER EXTENSION envsync UPDATE).';
    END IF;

    INSERT INTO envsync.environments (name, server, link_schema) VALUES (env_name, server, link);
    -- Tables already in modules are tracked there too, and must be the same there.
    FOR tracked IN SELECT t.relid FROM envsync.tracked_tables t
                     JOIN envsync.module_tables m USING (table_id) ORDER BY t.table_id LOOP
        PERFORM envsync.track_everywhere(tracked.relid);
    END LOOP;
END
$$;
COMMENT ON FUNCTION sync_add_environment(text, text) IS
    'Registers an environment: this database when server is NULL (prod on the production database), else the database behind a postgres_fdw server';

-- Run in every non-production environment, for the role its user mapping on PROD uses, with the
-- tables PROD may synchronize here (again for tables added later). The role reaches only
-- envsync's relations here, and through them only these tables: it has them tracked, reads them
-- and has PROD's synchronizations written into them, every read and write made by envsync as
-- each table's owner. It needs no privilege on the tables themselves.
CREATE FUNCTION sync_grant_link(role_name regrole, tables regclass[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link name := (SELECT r.rolname FROM pg_roles r WHERE r.oid = role_name);
    tbl regclass;
BEGIN
    IF link IS NULL THEN
        RAISE EXCEPTION 'a link role is required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO envsync.link_roles VALUES (link) ON CONFLICT DO NOTHING;
    EXECUTE format('GRANT SELECT ON envsync.about, envsync.tracked_shapes, envsync.row_hashes TO %I', link);
    EXECUTE format('GRANT SELECT, DELETE ON envsync.row_log TO %I', link);
    EXECUTE format('GRANT SELECT, INSERT ON envsync.track_requests, envsync.apply_requests, envsync.read_requests TO %I',
                   link);
    EXECUTE format('GRANT INSERT ON envsync.apply_stage TO %I', link);
    -- called by the views it reads
    EXECUTE format('GRANT EXECUTE ON FUNCTION envsync.table_shape(regclass), envsync.key_columns(regclass), '
                   'envsync.table_hashes(integer), envsync.readable_table(integer, text) TO %I', link);
    FOREACH tbl IN ARRAY coalesce(tables, '{}') LOOP
        PERFORM envsync.check_trackable(tbl, NULL, NULL);
        INSERT INTO envsync.link_tables (role_name, relid) VALUES (link, tbl) ON CONFLICT DO NOTHING;
    END LOOP;
END
$$;
COMMENT ON FUNCTION sync_grant_link(regrole, regclass[]) IS
    'Lets the role of PROD''s user mapping reach envsync here and opens the given tables to synchronization (run in TEST)';

CREATE FUNCTION sync_remove_environment(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    env envsync.environments;
BEGIN
    SELECT * INTO env FROM envsync.environments e WHERE e.name = sync_remove_environment.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'environment "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    IF env.server IS NULL THEN
        RAISE EXCEPTION 'environment "%" is this database', name
            USING ERRCODE = 'object_in_use', HINT = 'Remove the other environments; this one stays.';
    END IF;
    PERFORM envsync.require_prod();
    -- Tracking stays installed over there: it costs little and keeps its history for a re-add.
    EXECUTE format('DROP SCHEMA %I CASCADE', env.link_schema);
    DELETE FROM envsync.environments e WHERE e.name = env.name;
END
$$;
COMMENT ON FUNCTION sync_remove_environment(text) IS
    'Forgets an environment reached through a foreign server (tracking stays installed there)';
