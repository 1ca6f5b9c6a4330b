-- Environments: this database (prod on the production database) and the others, reached
-- through postgres_fdw foreign servers. Credentials stay in the servers' user mappings.

-- Configuration and synchronization run on PROD only: the database whose own environment is prod.
CREATE OR REPLACE FUNCTION envsync.require_prod() RETURNS void
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
COMMENT ON FUNCTION envsync.require_prod() IS 'Refuses to configure or synchronize anywhere but in the production database';

-- Registers another environment: its link schema, checked against the envsync running there.
CREATE OR REPLACE FUNCTION envsync.add_remote_environment(env_name text, server text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- the schema of its foreign tables: named after it when that makes a plain identifier
    link name := 'envsync_env_' || CASE WHEN env_name ~ '^[a-z][a-z0-9_]{0,50}$' THEN env_name
                                        ELSE left(md5(env_name), 16) END;
    remote_version text;
    local_version text := (SELECT extversion FROM pg_extension WHERE extname = 'envsync');
    e_message text; e_detail text; e_hint text; e_context text;
BEGIN
    PERFORM envsync.require_prod();
    IF NOT EXISTS (SELECT FROM pg_foreign_server s
                     JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                    WHERE s.srvname = server AND w.fdwname = 'postgres_fdw') THEN
        RAISE EXCEPTION 'postgres_fdw server "%" does not exist', server
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host, port, dbname) and a USER MAPPING with the password of a role of that database.';
    END IF;
    PERFORM envsync.create_link(link, server);
    EXECUTE format('COMMENT ON SCHEMA %I IS %L', link, format('envsync: foreign tables reaching environment %s', env_name));
    BEGIN
        EXECUTE format('SELECT version FROM %I.about', link) INTO remote_version;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                                e_hint = PG_EXCEPTION_HINT, e_context = PG_EXCEPTION_CONTEXT;
        PERFORM envsync.raise_from_environment(env_name, SQLSTATE, e_message, e_detail, e_hint, e_context);
    END;
    IF remote_version IS DISTINCT FROM local_version THEN
        RAISE EXCEPTION 'environment "%" runs envsync %, this database %', env_name, remote_version, local_version
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the same envsync version in both databases (ALTER EXTENSION envsync UPDATE).';
    END IF;
    INSERT INTO envsync.environments (name, server, link_schema) VALUES (env_name, server, link);
END
$$;
COMMENT ON FUNCTION envsync.add_remote_environment(text, text) IS
    'Registers an environment reached through a postgres_fdw server, checked against its envsync';

CREATE OR REPLACE FUNCTION sync_add_environment(name text, server text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    env_name text := name;
    tracked record;
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
    PERFORM envsync.add_remote_environment(env_name, server);
    -- Tables already in modules are tracked there too, and must be the same there.
    FOR tracked IN SELECT t.relid FROM envsync.tracked_tables t
                     JOIN envsync.module_tables m USING (table_id) ORDER BY t.table_id LOOP
        PERFORM envsync.track_everywhere(tracked.relid);
    END LOOP;
END
$$;
COMMENT ON FUNCTION sync_add_environment(text, text) IS
    'Registers an environment: this database when server is NULL (prod on the production database), else the database behind a postgres_fdw server';

CREATE OR REPLACE FUNCTION sync_remove_environment(name text) RETURNS void
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

-- Which database each environment was at its last comparison.
CREATE TABLE IF NOT EXISTS envsync.environment_identities (
    environment text PRIMARY KEY REFERENCES envsync.environments ON DELETE CASCADE ON UPDATE CASCADE,
    identity    text NOT NULL,
    seen_at     timestamptz NOT NULL,
    since       timestamptz NOT NULL   -- the comparison that first saw this identity
);
COMMENT ON TABLE envsync.environment_identities IS 'Which database each environment was at its last comparison';
COMMENT ON COLUMN envsync.environment_identities.environment IS 'The environment';
COMMENT ON COLUMN envsync.environment_identities.identity IS 'System identifier/database oid/timeline, as envsync.about tells';
COMMENT ON COLUMN envsync.environment_identities.seen_at IS 'When';
COMMENT ON COLUMN envsync.environment_identities.since IS 'When a comparison first saw it this database (comparisons made before saw another)';
