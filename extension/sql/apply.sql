-- Writing a synchronization into the environment it targets (every environment has this part):
-- PROD stages the records to write here, then envsync.apply_staged() checks every one against
-- what was reviewed and writes them all, in one statement, as envsync's own writes.

-- Rows live only inside the applying transaction: unlogged, and removed by apply_staged().
CREATE UNLOGGED TABLE envsync.apply_stage (
    run         bigint NOT NULL,   -- the synchronization's id on PROD
    table_id    integer NOT NULL,  -- the table's id in this database (envsync.tracked_tables)
    key         text[] NOT NULL,
    op          "char" NOT NULL,   -- I insert, U update, D delete
    expect_hash bigint,            -- U, D: the content hash the record has now, as reviewed
    new_row     jsonb,             -- I: the record to write; U: the columns that change
    new_hash    bigint             -- I, U: the content hash of the record written
);
COMMENT ON TABLE envsync.apply_stage IS 'Records staged for envsync.apply_staged() within one transaction';

-- The columns of a table that an apply writes, and how a staged key matches its rows.
CREATE FUNCTION envsync.write_sql(tbl regclass, OUT match text, OUT key_columns text, OUT key_values text,
                                  OUT key_text text, OUT columns text, OUT from_record text,
                                  OUT set_columns text, OUT set_values text)
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT k.match, k.key_columns, k.key_values, k.key_text,
           string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('r.%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE u.updatable),
           string_agg(format('r.%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE u.updatable)
      FROM (SELECT string_agg(format('t.%I = s.key[%s]::%s', kc.attname, kc.ord, kc.atttypid), ' AND ' ORDER BY kc.ord) AS match,
                   string_agg(format('%I', kc.attname), ', ' ORDER BY kc.ord) AS key_columns,
                   string_agg(format('r.%I', kc.attname), ', ' ORDER BY kc.ord) AS key_values,
                   format('ARRAY[%s]', string_agg(format('t.%I::text', kc.attname), ', ' ORDER BY kc.ord)) AS key_text,
                   array_agg(kc.attname) AS names
              FROM envsync.key_columns(tbl) kc) k
     CROSS JOIN pg_attribute a
     CROSS JOIN LATERAL (SELECT a.attidentity <> 'a' AND a.attname <> ALL (k.names) AS updatable) u
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
     GROUP BY k.match, k.key_columns, k.key_values, k.key_text
$$;

-- Tables in the order writes reach them: a table after the tables it references (self
-- references and cycles aside, which the single write statement absorbs).
CREATE FUNCTION envsync.parents_first(tables regclass[]) RETURNS TABLE (relid regclass, depth integer)
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    WITH RECURSIVE edges AS (
        SELECT DISTINCT conrelid AS child, confrelid AS parent FROM pg_constraint
         WHERE contype = 'f' AND conrelid = ANY (tables) AND confrelid = ANY (tables) AND conrelid <> confrelid
    ), walk (relid, depth, path) AS (
        SELECT t, 0, ARRAY[t::oid] FROM unnest(tables) t
        UNION ALL
        SELECT e.child, w.depth + 1, w.path || e.child
          FROM walk w JOIN edges e ON e.parent = w.relid
         WHERE e.child <> ALL (w.path)
    )
    SELECT relid::regclass, max(depth) FROM walk GROUP BY relid ORDER BY 2, 1
$$;

-- Refuses to write records that changed since they were compared, listing them.
CREATE FUNCTION envsync.raise_drift(env text, drifted text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF cardinality(drifted) > 0 THEN
        RAISE EXCEPTION '% % changed in environment "%" since the comparison', cardinality(drifted),
                        CASE WHEN cardinality(drifted) = 1 THEN 'record' ELSE 'records' END, env
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = array_to_string(drifted[1:50], E'\n')
                           || CASE WHEN cardinality(drifted) > 50
                                   THEN format(E'\n... and %s more', cardinality(drifted) - 50) ELSE '' END,
                  HINT = 'Compare again and review the new differences.';
    END IF;
END
$$;

-- Applies the staged records of a run. One statement writes them all: deletions, insertions
-- and updates of every table, each only if the record is still as reviewed (its content hash),
-- so foreign keys are checked once everything is written (self-referencing trees and cycles
-- need no order) and the rows are read once. If any record was not as reviewed, nothing is
-- written and the error lists them all. Every written record is checked to hold exactly the
-- reviewed content. here: this environment's name, for the messages.
-- Returns per table id: inserted, updated, deleted.
CREATE FUNCTION envsync.apply_staged(run bigint, here text, move_sequences boolean) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET envsync.applying = on AS $$
DECLARE
    t record;
    seq record;
    drifted text[] := '{}';
    found text[];
    ctes text[] := '{}';
    counts text[] := '{}';
    result jsonb;
    top numeric;
    given numeric;
BEGIN
    IF to_regclass('pg_temp.envsync_staged_tables') IS NOT NULL THEN   -- an earlier run of this transaction
        DROP TABLE pg_temp.envsync_staged_tables;
    END IF;
    CREATE TEMP TABLE envsync_staged_tables ON COMMIT DROP AS
    SELECT s.table_id, tt.relid, 0 AS depth, s.n_i, s.n_u, s.n_d, ws.*
      FROM (SELECT st.table_id, count(*) FILTER (WHERE st.op = 'I') AS n_i, count(*) FILTER (WHERE st.op = 'U') AS n_u,
                   count(*) FILTER (WHERE st.op = 'D') AS n_d
              FROM envsync.apply_stage st WHERE st.run = apply_staged.run GROUP BY st.table_id) s
      LEFT JOIN envsync.tracked_tables tt USING (table_id)
      LEFT JOIN LATERAL envsync.write_sql(tt.relid) ws ON true;
    SELECT * INTO t FROM envsync_staged_tables WHERE relid IS NULL LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table id % is not tracked in environment "%"', t.table_id, here
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Compare the environments again.';
    END IF;
    -- A link role writes, through this function, only tables it may write itself.
    IF EXISTS (SELECT FROM envsync.link_roles l WHERE l.role_name = session_user) THEN
        SELECT * INTO t FROM envsync_staged_tables st
         WHERE NOT (has_table_privilege(session_user, st.relid, 'INSERT')
                    AND has_table_privilege(session_user, st.relid, 'UPDATE')
                    AND has_table_privilege(session_user, st.relid, 'DELETE'))
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'permission denied for table %', t.relid
                USING ERRCODE = 'insufficient_privilege',
                      HINT = format('In environment "%s", grant SELECT, INSERT, UPDATE, DELETE on it to %I.', here, session_user);
        END IF;
    END IF;
    UPDATE envsync_staged_tables st SET depth = p.depth
      FROM envsync.parents_first(ARRAY(SELECT relid FROM envsync_staged_tables)) p WHERE p.relid = st.relid;

    -- Deletions children first, insertions and updates parents first: the order a reader of
    -- the statement expects, though the checks wait for its end anyway.
    FOR t IN SELECT st.* FROM envsync_staged_tables st
              WHERE st.n_d > 0 ORDER BY st.depth DESC, st.relid LOOP
        ctes := ctes || format(
            'd%s AS (DELETE FROM %s t USING envsync.apply_stage s
                      WHERE s.run = $1 AND s.table_id = %s AND s.op = ''D'' AND %s AND envsync.row_hash(t) = s.expect_hash RETURNING 1)',
            t.table_id, t.relid, t.table_id, t.match);
    END LOOP;
    FOR t IN SELECT st.* FROM envsync_staged_tables st ORDER BY st.depth, st.relid LOOP
        IF t.n_i > 0 THEN
            ctes := ctes || format(
                'i%s AS (INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE
                         SELECT %s FROM envsync.apply_stage s, jsonb_populate_record(NULL::%s, s.new_row) r
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''I''
                         RETURNING %s AS key, envsync.row_hash(t) AS hash)',
                t.table_id, t.relid, t.columns, t.from_record, t.relid, t.table_id, t.key_text);
        END IF;
        IF t.n_u > 0 THEN
            ctes := ctes || format(
                'u%s AS (UPDATE %s t SET (%s) = (SELECT %s FROM jsonb_populate_record(t, s.new_row) r)
                           FROM envsync.apply_stage s
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''U'' AND %s AND envsync.row_hash(t) = s.expect_hash
                         RETURNING s.key, envsync.row_hash(t) IS DISTINCT FROM s.new_hash AS altered)',
                t.table_id, t.relid, coalesce(t.set_columns, t.key_columns), coalesce(t.set_values, t.key_values),
                t.table_id, t.match);
        END IF;
        counts := counts || format(
            '(%s, %s, %s, %s, %s)', t.table_id,
            CASE WHEN t.n_i > 0 THEN format('(SELECT count(*) FROM i%s)', t.table_id) ELSE '0' END,
            CASE WHEN t.n_u > 0 THEN format('(SELECT count(*) FROM u%s)', t.table_id) ELSE '0' END,
            CASE WHEN t.n_d > 0 THEN format('(SELECT count(*) FROM d%s)', t.table_id) ELSE '0' END,
            -- Inserted records as staged? Compared in bulk (sums of hashes), one by one if not.
            concat_ws(' || ', 'ARRAY[]::text[]',
                      CASE WHEN t.n_i > 0 THEN format(
                          'CASE WHEN (SELECT sum(w.hash::numeric) FROM i%s w) IS DISTINCT FROM
                                     (SELECT sum(s.new_hash::numeric) FROM envsync.apply_stage s
                                       WHERE s.run = $1 AND s.table_id = %s AND s.op = ''I'')
                           THEN ARRAY(SELECT array_to_string(w.key, '', '') FROM i%s w JOIN envsync.apply_stage s
                                         ON s.run = $1 AND s.table_id = %s AND s.op = ''I'' AND s.key = w.key
                                      WHERE w.hash IS DISTINCT FROM s.new_hash) END',
                          t.table_id, t.table_id, t.table_id, t.table_id) END,
                      CASE WHEN t.n_u > 0 THEN format(
                          'ARRAY(SELECT array_to_string(w.key, '', '') FROM u%s w WHERE w.altered)', t.table_id) END));
    END LOOP;
    IF cardinality(counts) = 0 THEN
        RETURN '{}';
    END IF;

    BEGIN
        EXECUTE 'WITH ' || array_to_string(ctes, ', ')
             || ' SELECT jsonb_object_agg(c.table_id, jsonb_build_object(''inserted'', c.i, ''updated'', c.u,'
             || ' ''deleted'', c.d, ''altered'', c.altered))'
             || ' FROM (VALUES ' || array_to_string(counts, ', ') || ') AS c (table_id, i, u, d, altered)'
        INTO result USING run;
        IF EXISTS (SELECT FROM envsync_staged_tables st
                    WHERE (result -> st.table_id::text ->> 'inserted')::bigint <> st.n_i
                       OR (result -> st.table_id::text ->> 'updated')::bigint <> st.n_u
                       OR (result -> st.table_id::text ->> 'deleted')::bigint <> st.n_d) THEN
            RAISE EXCEPTION 'records changed since the comparison' USING ERRCODE = 'EV001';
        END IF;
    EXCEPTION WHEN SQLSTATE 'EV001' OR unique_violation THEN
        -- Undone; now name every record that is not as reviewed (a record created meanwhile
        -- shows as a duplicate key).
        FOR t IN SELECT st.* FROM envsync_staged_tables st ORDER BY st.depth, st.relid LOOP
            EXECUTE format(
                'SELECT array_agg(format(''%%s %%s: %%s'', $3, array_to_string(s.key, '', ''),
                                         CASE WHEN s.op = ''I'' THEN ''created'' WHEN t IS NULL THEN ''deleted''
                                              ELSE ''changed'' END) ORDER BY s.key)
                   FROM envsync.apply_stage s LEFT JOIN %1$s t ON %2$s
                  WHERE s.run = $1 AND s.table_id = $2
                    AND CASE WHEN s.op = ''I'' THEN t IS NOT NULL ELSE envsync.row_hash(t) IS DISTINCT FROM s.expect_hash END',
                t.relid, t.match)
            INTO found USING run, t.table_id, t.relid::text;
            drifted := drifted || coalesce(found, '{}');
        END LOOP;
        IF cardinality(drifted) = 0 AND SQLSTATE = '23505' THEN
            RAISE;   -- a unique key other than the primary key: the error says which
        END IF;
        PERFORM envsync.raise_drift(here, drifted);
        RAISE EXCEPTION 'records changed in environment "%" during the synchronization', here
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Try again.';
    END;

    -- Written exactly as reviewed? A trigger or rule of this database could have changed it.
    SELECT st.relid, r.value -> 'altered' AS altered INTO t
      FROM envsync_staged_tables st, jsonb_each(result) r
     WHERE r.key = st.table_id::text AND jsonb_array_length(r.value -> 'altered') > 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'record % of table % was not written as compared in environment "%"', t.altered ->> 0, t.relid, here
            USING ERRCODE = 'triggered_data_change_violation',
                  DETAIL = format('%s record(s) differ once written.', jsonb_array_length(t.altered)),
                  HINT = format('A trigger or rule on table %s in environment "%s" changes the rows written; disable it for envsync''s writes (envsync.applying is on) or leave the table out.', t.relid, here);
    END IF;

    -- The target's own next insert must not collide with the ids it received.
    IF move_sequences THEN
        FOR seq IN SELECT st.table_id, a.attname, pg_get_serial_sequence(st.relid::text, a.attname) AS name
                     FROM envsync_staged_tables st
                     JOIN pg_attribute a ON a.attrelid = st.relid AND a.attnum > 0 AND NOT a.attisdropped
                    WHERE st.n_i > 0 AND pg_get_serial_sequence(st.relid::text, a.attname) IS NOT NULL LOOP
            SELECT max((s.new_row ->> seq.attname)::numeric) INTO top FROM envsync.apply_stage s
             WHERE s.run = apply_staged.run AND s.table_id = seq.table_id AND s.op = 'I';
            EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s', seq.name)
               INTO given;
            IF top > given THEN
                PERFORM setval(seq.name, top::bigint);
            END IF;
        END LOOP;
    END IF;
    -- The staged rows go: all at once if no other run is staging here now.
    BEGIN
        LOCK TABLE envsync.apply_stage IN ACCESS EXCLUSIVE MODE NOWAIT;
        TRUNCATE envsync.apply_stage;
    EXCEPTION WHEN lock_not_available THEN
        DELETE FROM envsync.apply_stage st WHERE st.run = apply_staged.run;
    END;
    RETURN (SELECT jsonb_object_agg(r.key, r.value - 'altered') FROM jsonb_each(result) r);
END
$$;
REVOKE EXECUTE ON FUNCTION envsync.apply_staged(bigint, text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION envsync.apply_staged(bigint, text, boolean) IS
    'Writes the records staged in envsync.apply_stage for a synchronization, all or none, after checking each is as reviewed';

-- PROD asks another environment to apply what it staged there by inserting a request; the
-- trigger answers in the returned row (RETURNING result), in PROD's remote transaction.
CREATE TABLE envsync.apply_requests (
    run            bigint NOT NULL,
    environment    text NOT NULL,     -- this database's name in PROD's catalog
    move_sequences boolean NOT NULL,
    result         jsonb,   -- answer: per table id, inserted, updated, deleted
    requested_at   timestamptz NOT NULL DEFAULT now(),
    requested_by   name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE envsync.apply_requests IS 'Synchronizations PROD applied to this database, with what each wrote';

CREATE FUNCTION envsync.apply_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.result := envsync.apply_staged(NEW.run, NEW.environment, NEW.move_sequences);
    RETURN NEW;
END
$$;
CREATE TRIGGER apply_request BEFORE INSERT ON envsync.apply_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.apply_request();
