-- Remote access: how PROD reaches another environment's envsync through postgres_fdw (the
-- foreign tables of its link schema), where a table's hashes, rows and change log are read in
-- an environment, and how an error that came from there is told. Every remote name is quoted;
-- the remote session runs with search_path = pg_catalog, so every name there is qualified.

-- What this environment tells another about itself. snapshot: what this database's transaction
-- sees (postgres_fdw reads a remote database in one repeatable-read transaction, so it also
-- tells which logged changes the same reads see).
-- identity: which database this is, the system identifier of its cluster, its oid and the
-- cluster's timeline: a restore, a new cluster or a promoted standby under the same name has
-- another one (and another transaction id history, which sync points hold).
CREATE OR REPLACE VIEW envsync.about AS
    SELECT e.extversion AS version, current_database() AS database_name,
           pg_catalog.pg_current_snapshot() AS snapshot,
           pg_catalog.format('%s/%s/%s', (pg_catalog.pg_control_system()).system_identifier,
                             (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()),
                             (pg_catalog.pg_control_checkpoint()).timeline_id) AS identity
      FROM pg_catalog.pg_extension e WHERE e.extname = 'envsync';
COMMENT ON VIEW envsync.about IS 'envsync version installed in this database';
COMMENT ON COLUMN envsync.about.version IS 'The envsync version here';
COMMENT ON COLUMN envsync.about.database_name IS 'This database';
COMMENT ON COLUMN envsync.about.snapshot IS 'What this transaction sees (the change log it reads)';
COMMENT ON COLUMN envsync.about.identity IS 'Which database this is: system identifier/database oid/timeline';

-- The foreign tables reaching another environment's envsync, in its link schema.
CREATE OR REPLACE FUNCTION envsync.create_link(link name, server name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    relation record;
BEGIN
    EXECUTE format('CREATE SCHEMA %I', link);
    FOR relation IN SELECT * FROM (VALUES
        ('about', 'version text, database_name name, snapshot pg_snapshot, identity text', ''),
        ('track_requests', 'schema_name name, table_name name, filter_column name, filter_pattern text, '
                           'table_id integer, shape jsonb', ''),
        ('tracked_shapes', 'table_id integer, shape jsonb', ''),
        ('untrack_requests', 'table_id integer', ''),
        ('row_log', 'table_id integer, key text[], kind "char", applied boolean, xid xid8, at timestamptz',
                    ', fetch_size ''10000'''),
        -- asynchronous: the other server sums up its rows while this one sums up its own
        ('row_buckets', 'table_id integer, bits integer, bucket bigint, n bigint, digest bigint',
                        ', fetch_size ''10000'', async_capable ''true'''),
        ('bucket_requests', 'table_id integer, bits integer, buckets bigint[], keys text[], hashes bigint[]', ''),
        ('compact_requests', 'table_id integer, taken pg_snapshot[], most integer, forgotten bigint', ''),
        -- the answer comes as json text, parsed here once
        ('read_requests', 'table_id integer, keys text[], rows jsonb', ''),
        ('cascade_requests', 'table_id integer, keys text[], tables integer[], cascades jsonb', ''),
        -- an apply stages its records (envsync.copy_to_link), then one request writes them
        ('apply_stage', 'run bigint, table_id integer, key text[], op "char", expect_hash bigint, '
                        'new_row jsonb, new_hash bigint', ''),
        ('apply_requests', 'run bigint, environment text, move_sequences boolean, result jsonb, '
                           'requested_at timestamptz, run_info jsonb', '')
        ) AS r (name, columns, options) LOOP
        EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (schema_name ''envsync'', table_name %L%s)',
                       link, relation.name, relation.columns, server, relation.name, relation.options);
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.create_link(name, name) IS
    'Creates the schema of foreign tables that reach another environment''s envsync';

-- Streams the rows of an open cursor (their columns those of the foreign table) into the
-- relation a postgres_fdw foreign table stands for, with one COPY on the connection and in the
-- remote transaction postgres_fdw uses for it, as the current user (who needs the right to
-- INSERT into the foreign table). Returns how many rows went.
CREATE OR REPLACE FUNCTION envsync.copy_to_link(link_table regclass, records refcursor) RETURNS bigint
    AS 'MODULE_PATHNAME', 'envsync_copy_to_link' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.copy_to_link(regclass, refcursor) IS
    'Streams a cursor''s rows into the remote relation of a postgres_fdw foreign table, with COPY in its remote transaction';

-- A request to another environment that runs there while this server goes on: send_to_link
-- inserts a row (a JSON object by column name) into the relation a postgres_fdw foreign table
-- stands for, as the current user (who needs the right to INSERT into the foreign table), in
-- postgres_fdw's remote transaction; answer_from_link waits for it and returns the row inserted
-- there (RETURNING, as JSON). In between the link serves nothing else.
CREATE OR REPLACE FUNCTION envsync.send_to_link(link_table regclass, "row" jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'envsync_send_to_link' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.send_to_link(regclass, jsonb) IS
    'Sends the insertion of a row into the remote relation of a postgres_fdw foreign table, without waiting for it';
CREATE OR REPLACE FUNCTION envsync.answer_from_link(link_table regclass) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'envsync_answer_from_link' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.answer_from_link(regclass) IS
    'Waits for the insertion sent by envsync.send_to_link and returns the row inserted there';

-- Where an environment's read requests and change log are (quoted names: its link schema's
-- foreign tables, or envsync's own here), and the table's id there.
CREATE OR REPLACE FUNCTION envsync.reading(env text, tbl regclass, OUT requests_from text,
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
    requests_from := CASE WHEN e.link_schema IS NOT NULL THEN format('%I.read_requests', e.link_schema) END;
    log_from := format('%I.row_log', coalesce(e.link_schema, 'envsync'));
END
$$;
COMMENT ON FUNCTION envsync.reading(text, regclass) IS
    'Where an environment''s read requests and change log of a table are read, and the table''s id there';

-- The rows of a table in an environment with the given keys (all when NULL), read where they
-- live as the table's owner: the SQL of a FROM item giving key text[], hash and the row as JSON,
-- with the keys as the parameter numbered keys_param.
CREATE OR REPLACE FUNCTION envsync.rows_sql(env text, tbl regclass, keys_param integer) RETURNS text
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
COMMENT ON FUNCTION envsync.rows_sql(text, regclass, integer) IS
    'The FROM item reading the rows of given keys of a table in an environment, where they live';

-- The full comparison's reads of a table in an environment, where it lives, as the table's
-- owner: the SQL of a FROM item giving, for what 'buckets', each bucket's summary (bucket, n,
-- digest) of $1 bits (envsync.table_buckets), or for what 'bucket hashes', the key text and hash
-- of the rows in the buckets $2. Another environment summarizes its rows while this one does (an
-- asynchronous foreign scan); its bucket hashes come in one round trip.
CREATE OR REPLACE FUNCTION envsync.buckets_sql(env text, tbl regclass, what text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    link name := (SELECT e.link_schema FROM envsync.environments e WHERE e.name = env);
BEGIN
    SELECT * INTO r FROM envsync.reading(env, tbl);
    RETURN CASE WHEN what = 'buckets' AND link IS NULL THEN format('envsync.table_buckets(%s, $1)', r.table_id)
                WHEN what = 'buckets' THEN format('(SELECT bucket, n, digest FROM %I.row_buckets WHERE table_id = %s AND bits = $1)',
                                                  link, r.table_id)
                WHEN link IS NULL THEN format('envsync.table_bucket_hashes(%s, $1, $2)', r.table_id)
                ELSE format('envsync.request_bucket_hashes(%L, %s, $1, $2)', format('%I.bucket_requests', link), r.table_id) END;
END
$$;
COMMENT ON FUNCTION envsync.buckets_sql(text, regclass, text) IS
    'The FROM items of a full comparison reading a table in an environment: its buckets'' summaries, or the hashes of given buckets';

-- Asks another environment for the keys and hashes of the rows in given buckets (its
-- bucket_requests): one round trip.
CREATE OR REPLACE FUNCTION envsync.request_bucket_hashes(requests_from text, table_id integer, bits integer,
                                                         buckets bigint[]) RETURNS TABLE (key text, hash bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys text[];
    hashes bigint[];
BEGIN
    EXECUTE format('INSERT INTO %s (table_id, bits, buckets) VALUES ($1, $2, $3) RETURNING keys, hashes', requests_from)
       INTO keys, hashes USING table_id, bits, buckets;
    RETURN QUERY SELECT * FROM unnest(keys, hashes);
END
$$;
COMMENT ON FUNCTION envsync.request_bucket_hashes(text, integer, integer, bigint[]) IS
    'Asks another environment for the keys and hashes of the rows in given buckets of a table';

-- Asks another environment for rows (its read_requests): one round trip, the answer a JSON array.
CREATE OR REPLACE FUNCTION envsync.request_rows(requests_from text, table_id integer, keys text[]) RETURNS SETOF jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    answer jsonb;
BEGIN
    EXECUTE format('INSERT INTO %s (table_id, keys) VALUES ($1, $2) RETURNING rows', requests_from)
       INTO answer USING table_id, keys;
    RETURN QUERY SELECT jsonb_array_elements(answer);
END
$$;
COMMENT ON FUNCTION envsync.request_rows(text, integer, text[]) IS 'Asks another environment for the rows of given keys';

-- What an environment's transaction sees now. For another environment this is also the
-- snapshot of every later read of it in this transaction (postgres_fdw: repeatable read).
CREATE OR REPLACE FUNCTION envsync.current_snapshot(env text) RETURNS pg_snapshot
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments;
    snap pg_snapshot;
BEGIN
    SELECT * INTO e FROM envsync.environments WHERE name = env;
    IF e.server IS NULL THEN
        RETURN pg_current_snapshot();
    END IF;
    EXECUTE format('SELECT snapshot FROM %I.about', e.link_schema) INTO snap;
    RETURN snap;
END
$$;
COMMENT ON FUNCTION envsync.current_snapshot(text) IS 'What an environment''s transaction sees now (its change log up to there)';

-- Which database an environment is now (envsync.about.identity there).
CREATE OR REPLACE FUNCTION envsync.current_identity(env text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments := (SELECT x FROM envsync.environments x WHERE x.name = env);
    id text;
BEGIN
    EXECUTE format('SELECT identity FROM %I.about', coalesce(e.link_schema, 'envsync')) INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION envsync.current_identity(text) IS 'Which database an environment is now (system identifier/database oid/timeline)';

-- Recognises an environment replaced under the same name since its last comparison (restored,
-- a new cluster, a promoted standby), with a NOTICE: the sync points hold transaction ids of
-- another history, so its side of each is reset to nothing taken in ('1:1:'), and the next
-- comparison of each of its tables reads every record (envsync.compare_table). Returns whether
-- it was replaced.
CREATE OR REPLACE FUNCTION envsync.check_identity(env text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now_id text := envsync.current_identity(env);
    was text := (SELECT i.identity FROM envsync.environment_identities i WHERE i.environment = env);
BEGIN
    INSERT INTO envsync.environment_identities AS i (environment, identity, seen_at, since) VALUES (env, now_id, now(), now())
    ON CONFLICT (environment) DO UPDATE
       SET identity = EXCLUDED.identity, seen_at = EXCLUDED.seen_at,
           since = CASE WHEN i.identity = EXCLUDED.identity THEN i.since ELSE EXCLUDED.since END;
    IF was IS NULL OR was = now_id THEN
        RETURN false;
    END IF;
    UPDATE envsync.sync_points sp SET snapshot_a = '1:1:' WHERE sp.env_a = env;
    UPDATE envsync.sync_points sp SET snapshot_b = '1:1:' WHERE sp.env_b = env;
    RAISE NOTICE 'environment "%" is another database than at its last comparison: every record is compared', env
        USING DETAIL = format('It was %s, it is %s (system identifier/database oid/timeline): restored, a new cluster or a promoted standby.',
                              was, now_id);
    RETURN true;
END
$$;
COMMENT ON FUNCTION envsync.check_identity(text) IS
    'Recognises an environment replaced under the same name since its last comparison (then compared in full)';

-- Refuses to write with an environment that is another database than when the comparison was
-- made (found now, or by a later comparison): the comparison's snapshots hold transaction ids
-- of another history, so its change log cannot tell what changed since.
CREATE OR REPLACE FUNCTION envsync.require_same_database(env text, comparison_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seen envsync.environment_identities := (SELECT i FROM envsync.environment_identities i WHERE i.environment = env);
    made timestamptz := (SELECT c.started_at FROM envsync.compare_runs c WHERE c.id = comparison_id);
    now_id text := envsync.current_identity(env);
BEGIN
    IF seen.identity IS DISTINCT FROM now_id AND seen.identity IS NOT NULL OR seen.since > made THEN
        RAISE EXCEPTION 'environment "%" is another database than when comparison % was made', env, comparison_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is %s (system identifier/database oid/timeline), seen since %s: restored, a new cluster or a promoted standby.',
                                  now_id, CASE WHEN seen.identity = now_id THEN envsync.shown_time(seen.since) ELSE 'now' END),
                  HINT = 'Compare the environments again (the next comparison reads every record).';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.require_same_database(text, bigint) IS
    'Refuses to write with an environment replaced since its last comparison';

-- Raises an error with its SQLSTATE and texts, those that are NULL left out.
CREATE OR REPLACE FUNCTION envsync.raise_error(state text, message text, detail text, hint text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF nullif(detail, '') IS NULL AND nullif(hint, '') IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = message, ERRCODE = state;
    ELSIF nullif(hint, '') IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = message, ERRCODE = state, DETAIL = detail;
    ELSIF nullif(detail, '') IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = message, ERRCODE = state, HINT = hint;
    END IF;
    RAISE EXCEPTION USING MESSAGE = message, ERRCODE = state, DETAIL = detail, HINT = hint;
END
$$;
COMMENT ON FUNCTION envsync.raise_error(text, text, text, text) IS 'Raises an error with its SQLSTATE, message, detail and hint (NULL ones left out)';

-- Tells an error met while talking to environment env (its SQLSTATE, texts and context), as
-- coming from there: connection problems say what to check, a missing envsync or grant there
-- says what to run there. Errors that did not come from there are raised again as they were.
CREATE OR REPLACE FUNCTION envsync.raise_from_environment(env text, state text, message text, detail text,
                                                          hint text, context text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF state IN ('08001', '08004') OR state = '2F003' OR state = '42704' AND message LIKE 'user mapping not found%' THEN
        RAISE EXCEPTION 'cannot connect to environment "%"', env
            USING ERRCODE = state, DETAIL = message || coalesce(E'\n' || detail, ''),
                  HINT = format('Check the foreign server of environment "%s" (host, port, dbname) and its user mapping for role %I.',
                                env, current_user);
    ELSIF state LIKE '08%' THEN
        RAISE EXCEPTION 'lost the connection to environment "%"', env
            USING ERRCODE = state, DETAIL = message || coalesce(E'\n' || detail, ''),
                  HINT = format('The server of environment "%s" went away while envsync talked to it; nothing of this was kept there. Try again once it is back.', env);
    ELSIF env IS NULL OR coalesce(context, '') NOT LIKE '%remote SQL command%'
          OR message LIKE format('%%environment "%s"%%', env) THEN
        PERFORM envsync.raise_error(state, message, detail, hint);
    ELSIF state = '42P01' AND message LIKE 'relation "envsync.%' THEN
        RAISE EXCEPTION 'envsync is not installed in the database of environment "%"', env
            USING ERRCODE = 'undefined_object',
                  HINT = 'There, run CREATE EXTENSION envsync CASCADE and SELECT sync_grant_link(''<role of the user mapping>'').';
    ELSIF state = '42501' AND message NOT LIKE '%not open to synchronization%' THEN
        RAISE EXCEPTION 'the role of the user mapping may not use envsync in environment "%"', env
            USING ERRCODE = 'insufficient_privilege', DETAIL = message,
                  HINT = 'There, run SELECT sync_grant_link(''<role of the user mapping>'').';
    END IF;
    PERFORM envsync.raise_error(state, format('environment "%s": %s', env, message), detail, hint);
END
$$;
COMMENT ON FUNCTION envsync.raise_from_environment(text, text, text, text, text, text) IS
    'Raises an error met while talking to an environment as coming from there, with what to check or run';

-- One comparison or synchronization of a pair of environments at a time.
CREATE OR REPLACE FUNCTION envsync.lock_pair(a text, b text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    -- '/' never occurs in an environment's name (envsync.valid_name)
    SELECT pg_advisory_xact_lock(hashtext('envsync pair'), hashtext(least(a, b) || '/' || greatest(a, b)))
$$;
COMMENT ON FUNCTION envsync.lock_pair(text, text) IS 'Waits for the lock of a pair of environments (for this transaction)';
