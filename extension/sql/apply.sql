-- Writing a synchronization into the environment it targets (every environment has this part):
-- PROD stages the records to write here, then envsync.apply_staged() checks every one against
-- what was reviewed and writes them all, in one statement, as envsync's own writes.

-- Rows live only inside the applying transaction: unlogged, and removed by apply_staged().
CREATE UNLOGGED TABLE envsync.apply_stage (
    run         bigint NOT NULL,   -- the synchronization's id on PROD
    table_id    integer NOT NULL,  -- the table's id in this database (envsync.tracked_tables)
    key         text[] NOT NULL,
    op          "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
    expect_hash bigint,            -- U, D: the content hash the record has now, as reviewed
    new_row     jsonb,             -- I, U: the content to write
    new_hash    bigint,            -- I, U: its content hash
    CHECK ((op = 'I') = (expect_hash IS NULL)),
    CHECK ((op = 'D') = (new_row IS NULL))
);
COMMENT ON TABLE envsync.apply_stage IS 'Records staged for envsync.apply_staged() within one transaction';

-- The columns of a table that an apply writes, and how a staged key matches its rows.
CREATE FUNCTION envsync.write_sql(tbl regclass, OUT match text, OUT columns text, OUT from_record text,
                                  OUT set_columns text, OUT set_values text)
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT (SELECT string_agg(format('t.%I = s.key[%s]::%s', k.attname, k.ord, k.atttypid), ' AND ' ORDER BY k.ord)
              FROM envsync.key_columns(tbl) k),
           string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('r.%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE updatable),
           string_agg(format('r.%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE updatable)
      FROM pg_attribute a
     CROSS JOIN LATERAL (SELECT a.attidentity <> 'a'
                                AND a.attname NOT IN (SELECT k.attname FROM envsync.key_columns(tbl) k)
                         AS updatable) u
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
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

-- Applies the staged records of a run: every record is first locked and checked to be as
-- reviewed (else nothing is written and the error lists them all); then deletions, insertions
-- and updates go in one statement, so that foreign keys are checked once all are written
-- (self-referencing trees and cycles need no order); then every written record is checked to
-- hold exactly the reviewed content. here: this environment's name, for the messages.
-- Returns per table id: inserted, updated, deleted.
CREATE FUNCTION envsync.apply_staged(run bigint, here text, move_sequences boolean) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET envsync.applying = on AS $$
DECLARE
    t record;
    w record;
    seq record;
    drifted text[] := '{}';
    found text[];
    deletes text[] := '{}';
    writes text[] := '{}';
    counts text[] := '{}';
    n integer := 0;
    top numeric;
    given numeric;
    result jsonb;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS envsync_staged_tables (table_id integer, relid regclass, depth integer,
        has_i boolean, has_u boolean, has_d boolean) ON COMMIT DROP;
    TRUNCATE envsync_staged_tables;
    INSERT INTO envsync_staged_tables
    SELECT s.table_id, tt.relid, 0, s.has_i, s.has_u, s.has_d
      FROM (SELECT st.table_id, bool_or(st.op = 'I') AS has_i, bool_or(st.op = 'U') AS has_u,
                   bool_or(st.op = 'D') AS has_d
              FROM envsync.apply_stage st WHERE st.run = apply_staged.run GROUP BY st.table_id) s
      LEFT JOIN envsync.tracked_tables tt USING (table_id);
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
    IF (SELECT count(*) FROM envsync.apply_stage st WHERE st.run = apply_staged.run) > 1000 THEN
        ANALYZE envsync.apply_stage;   -- planned as the large join it is, not as an empty table
    END IF;

    -- Each record as reviewed? Locked, so nobody changes it until this transaction ends.
    FOR t IN SELECT st.*, ws.* FROM envsync_staged_tables st, envsync.write_sql(st.relid) ws ORDER BY st.depth, st.relid LOOP
        EXECUTE format(
            'WITH now AS (SELECT s.key, envsync.row_hash(t) AS hash FROM envsync.apply_stage s JOIN %1$s t ON %2$s
                           WHERE s.run = $1 AND s.table_id = $2 FOR UPDATE OF t)
             SELECT array_agg(format(''%%s %%s: %%s'', $3, array_to_string(s.key, '', ''),
                                     CASE WHEN s.op = ''I'' THEN ''created'' WHEN now.key IS NULL THEN ''deleted''
                                          ELSE ''changed'' END) ORDER BY s.key)
               FROM envsync.apply_stage s LEFT JOIN now ON now.key = s.key
              WHERE s.run = $1 AND s.table_id = $2
                AND CASE WHEN s.op = ''I'' THEN now.key IS NOT NULL ELSE now.hash IS DISTINCT FROM s.expect_hash END',
            t.relid, t.match)
        INTO found USING run, t.table_id, t.relid::text;
        drifted := drifted || coalesce(found, '{}');
    END LOOP;
    PERFORM envsync.raise_drift(here, drifted);

    -- The writes: children's deletions first, then parents' insertions and updates first.
    FOR t IN SELECT st.*, ws.* FROM envsync_staged_tables st, envsync.write_sql(st.relid) ws ORDER BY st.depth DESC, st.relid LOOP
        IF t.has_d THEN
            deletes := deletes || format(
                'd%s AS (DELETE FROM %s t USING envsync.apply_stage s
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''D'' AND %s RETURNING 1)',
                t.table_id, t.relid, t.table_id, t.match);
        END IF;
    END LOOP;
    FOR t IN SELECT st.*, ws.* FROM envsync_staged_tables st, envsync.write_sql(st.relid) ws ORDER BY st.depth, st.relid LOOP
        IF t.has_i THEN
            writes := writes || format(
                'i%s AS (INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE
                         SELECT %s FROM envsync.apply_stage s, jsonb_populate_record(NULL::%s, s.new_row) r
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''I'' RETURNING 1)',
                t.table_id, t.relid, t.columns, t.from_record, t.relid, t.table_id);
        END IF;
        -- A table of key columns only has nothing to update: equal keys, equal records.
        IF t.has_u AND t.set_columns IS NOT NULL THEN
            writes := writes || format(
                'u%s AS (UPDATE %s t SET (%s) = ROW(%s)
                           FROM envsync.apply_stage s, jsonb_populate_record(NULL::%s, s.new_row) r
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''U'' AND %s RETURNING 1)',
                t.table_id, t.relid, t.set_columns, t.set_values, t.relid, t.table_id, t.match);
        END IF;
        counts := counts || format('(%s, %s, %s, %s)', t.table_id,
                                   CASE WHEN t.has_i THEN format('(SELECT count(*) FROM i%s)', t.table_id) ELSE '0' END,
                                   CASE WHEN t.has_u AND t.set_columns IS NOT NULL
                                        THEN format('(SELECT count(*) FROM u%s)', t.table_id)
                                        WHEN t.has_u THEN format('(SELECT count(*) FROM envsync.apply_stage s WHERE s.run = $1 AND s.table_id = %s AND s.op = ''U'')', t.table_id)
                                        ELSE '0' END,
                                   CASE WHEN t.has_d THEN format('(SELECT count(*) FROM d%s)', t.table_id) ELSE '0' END);
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RETURN '{}';
    END IF;
    EXECUTE CASE WHEN cardinality(deletes || writes) > 0
                 THEN 'WITH ' || array_to_string(deletes || writes, ', ') ELSE '' END
         || ' SELECT jsonb_object_agg(c.table_id, jsonb_build_object(''inserted'', c.i, ''updated'', c.u, ''deleted'', c.d))'
         || ' FROM (VALUES ' || array_to_string(counts, ', ') || ') AS c (table_id, i, u, d)'
    INTO result USING run;

    -- Written exactly as reviewed? A trigger or rule of this database could have changed it.
    FOR t IN SELECT st.*, ws.* FROM envsync_staged_tables st, envsync.write_sql(st.relid) ws
              WHERE st.has_i OR st.has_u ORDER BY st.depth, st.relid LOOP
        EXECUTE format(
            'SELECT array_agg(array_to_string(s.key, '', '') ORDER BY s.key) FROM envsync.apply_stage s LEFT JOIN %s t ON %s
              WHERE s.run = $1 AND s.table_id = $2 AND s.op <> ''D'' AND envsync.row_hash(t) IS DISTINCT FROM s.new_hash',
            t.relid, t.match)
        INTO found USING run, t.table_id;
        IF found IS NOT NULL THEN
            RAISE EXCEPTION 'record % of table % was not written as compared in environment "%"', found[1], t.relid, here
                USING ERRCODE = 'triggered_data_change_violation',
                      DETAIL = format('%s record(s) differ once written: %s.', cardinality(found), array_to_string(found[1:20], '; ')),
                      HINT = format('A trigger or rule on table %s in environment "%s" changes the rows written; disable it for envsync''s writes (envsync.applying is on) or leave the table out.', t.relid, here);
        END IF;
    END LOOP;

    -- The target's own next insert must not collide with the ids it received.
    IF move_sequences THEN
        FOR seq IN SELECT st.relid, st.table_id, a.attname, pg_get_serial_sequence(st.relid::text, a.attname) AS name
                     FROM envsync_staged_tables st
                     JOIN pg_attribute a ON a.attrelid = st.relid AND a.attnum > 0 AND NOT a.attisdropped
                    WHERE st.has_i AND pg_get_serial_sequence(st.relid::text, a.attname) IS NOT NULL LOOP
            EXECUTE format('SELECT max((s.new_row ->> %L)::numeric) FROM envsync.apply_stage s
                             WHERE s.run = $1 AND s.table_id = $2 AND s.op = ''I''', seq.attname)
               INTO top USING run, seq.table_id;
            EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s', seq.name)
               INTO given;
            IF top > given THEN
                PERFORM setval(seq.name, top::bigint);
            END IF;
        END LOOP;
    END IF;

    DELETE FROM envsync.apply_stage s WHERE s.run = apply_staged.run;
    RETURN result;
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
