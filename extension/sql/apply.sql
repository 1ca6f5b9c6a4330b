-- Writing a synchronization into the environment it targets (every environment has this part):
-- PROD stages the records to write here, then envsync.apply_staged() checks every one against
-- what was reviewed and writes them all as envsync's own writes, as the tables' owners. The
-- order of the writes: one statement per owner of the tables written (envsync.write_statement):
-- deletions children first, then updates and insertions parents first, foreign keys checked at
-- the end of the statement.

-- Rows live only inside the applying transaction: unlogged, and removed by apply_staged().
CREATE UNLOGGED TABLE IF NOT EXISTS envsync.apply_stage (
    run         bigint NOT NULL,   -- the synchronization's id on PROD
    table_id    integer NOT NULL,  -- the table's id in this database (envsync.tracked_tables)
    key         text[] NOT NULL,
    op          "char" NOT NULL,   -- I insert, U update, D delete
    expect_hash bigint,            -- U, D: the content hash the record has now, as reviewed
    new_row     jsonb,             -- I: the record to write; U: the columns that change
    new_hash    bigint             -- I, U: the content hash of the record written
);
COMMENT ON TABLE envsync.apply_stage IS 'Records staged for envsync.apply_staged() within one transaction';
COMMENT ON COLUMN envsync.apply_stage.run IS 'The synchronization''s id on PROD';
COMMENT ON COLUMN envsync.apply_stage.table_id IS 'The table''s id in this database';
COMMENT ON COLUMN envsync.apply_stage.key IS 'The record''s primary key';
COMMENT ON COLUMN envsync.apply_stage.op IS 'I insert, U update, D delete';
COMMENT ON COLUMN envsync.apply_stage.expect_hash IS 'U, D: the content hash the record must have now, as reviewed';
COMMENT ON COLUMN envsync.apply_stage.new_row IS 'I: the record to write; U: the columns that change';
COMMENT ON COLUMN envsync.apply_stage.new_hash IS 'I, U: the content hash of the record once written';

-- The staged rows of the tables the current role owns. An apply's write statement runs as the
-- owner of the tables it writes and reads its records here; staged rows exist only inside the
-- applying transaction, and a role sees only those of its own tables (security barrier).
CREATE OR REPLACE VIEW envsync.staged_rows WITH (security_barrier) AS
    SELECT s.run, s.table_id, s.key, s.op, s.expect_hash, s.new_row, s.new_hash
      FROM envsync.apply_stage s
     -- ARRAY(...): the tables owned are looked up once, not once per staged row
     WHERE s.table_id = ANY (ARRAY(SELECT t.table_id
                                     FROM envsync.tracked_tables t
                                     JOIN pg_catalog.pg_class c ON c.oid = t.relid
                                     JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                                    WHERE r.rolname = CURRENT_USER));
GRANT SELECT ON envsync.staged_rows TO PUBLIC;
COMMENT ON VIEW envsync.staged_rows IS
    'Records staged for the apply, of the tables the current role owns (read by the write statement, which runs as the tables'' owner)';
COMMENT ON COLUMN envsync.staged_rows.run IS 'The synchronization''s id on PROD';
COMMENT ON COLUMN envsync.staged_rows.table_id IS 'The table''s id in this database';
COMMENT ON COLUMN envsync.staged_rows.key IS 'The record''s primary key';
COMMENT ON COLUMN envsync.staged_rows.op IS 'I insert, U update, D delete';
COMMENT ON COLUMN envsync.staged_rows.expect_hash IS 'The content hash the record must have now';
COMMENT ON COLUMN envsync.staged_rows.new_row IS 'The record, or the columns that change';
COMMENT ON COLUMN envsync.staged_rows.new_hash IS 'The content hash once written';

-- Runs one SELECT (returning a jsonb, $1 = run) as the given role, the way PostgreSQL's own
-- maintenance commands act for a table's owner: under SECURITY_RESTRICTED_OPERATION, with its
-- setting changes undone (run_as_owner.cpp).
CREATE OR REPLACE FUNCTION envsync.run_as_owner(owner oid, query text, run bigint) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'envsync_run_as_owner' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.run_as_owner(oid, text, bigint) IS
    'Runs an apply statement as the owner of the tables it writes, under SECURITY_RESTRICTED_OPERATION';

-- The columns of a table that an apply writes, and how a staged key matches its rows.
CREATE OR REPLACE FUNCTION envsync.write_sql(tbl regclass, OUT match text, OUT key_columns text, OUT key_values text,
                                             OUT key_text text, OUT columns text, OUT from_record text,
                                             OUT set_columns text, OUT set_values text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.match, k.key_columns, k.key_values, (SELECT ks.key_array FROM envsync.key_sql(tbl, 1) ks),
           string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('r.%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE u.updatable),
           string_agg(format('r.%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE u.updatable)
      FROM (SELECT string_agg(format('t.%I = s.key[%s]::%s', kc.attname, kc.ord, format_type(kc.atttypid, -1)), ' AND ' ORDER BY kc.ord) AS match,
                   string_agg(format('%I', kc.attname), ', ' ORDER BY kc.ord) AS key_columns,
                   string_agg(format('r.%I', kc.attname), ', ' ORDER BY kc.ord) AS key_values,
                   array_agg(kc.attname) AS names
              FROM envsync.key_columns(tbl) kc) k
     CROSS JOIN pg_attribute a
     CROSS JOIN LATERAL (SELECT a.attidentity <> 'a' AND a.attname <> ALL (k.names) AS updatable) u
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
     GROUP BY k.match, k.key_columns, k.key_values
$$;
COMMENT ON FUNCTION envsync.write_sql(regclass) IS 'The SQL pieces of an apply''s writes into a table';

-- Tables in the order writes reach them: a table after the tables it references (self
-- references and cycles aside, which the single write statement absorbs).
CREATE OR REPLACE FUNCTION envsync.parents_first(tables regclass[]) RETURNS TABLE (relid regclass, depth integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION envsync.parents_first(regclass[]) IS 'Tables by depth: each after the tables it references';

-- Refuses to write records that changed since they were compared, listing them.
CREATE OR REPLACE FUNCTION envsync.raise_drift(env text, drifted text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION envsync.raise_drift(text, text[]) IS 'Refuses records that changed since they were compared, listing them';

-- The write statement of one step of an apply: the data-modifying CTEs of the given operations
-- (D, I, U) on the staged tables of one owner, executed in this order: deletions children
-- first, then updates and insertions parents first. Foreign keys are checked at the end of the
-- statement, so trees and cycles need no further order; values freed by a deletion can be
-- taken by an insertion or an update. Returns, per table and operation, the records written and
-- those not written as staged ("altered": a trigger or rule changed them).
CREATE OR REPLACE FUNCTION envsync.write_statement(owner oid, ops text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    ctes text[] := '{}';
    value_rows text[] := '{}';
BEGIN
    FOR t IN SELECT st.*, o.op FROM pg_temp.envsync_staged_tables st
               CROSS JOIN LATERAL (VALUES ('D', 1, st.n_d), ('U', 2, st.n_u), ('I', 3, st.n_i)) AS o (op, phase, n)
              WHERE st.owner = write_statement.owner AND o.n > 0 AND strpos(ops, o.op) > 0
              ORDER BY o.phase, CASE WHEN o.op = 'D' THEN -st.depth ELSE st.depth END, st.relid LOOP
        IF t.op = 'D' THEN
            ctes := ctes || format(
                'd%s AS (DELETE FROM %s t USING envsync.staged_rows s
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''D'' AND %s AND envsync.row_hash(t) = s.expect_hash RETURNING 1)',
                t.table_id, t.relid, t.table_id, t.match);
            value_rows := value_rows || format('(%s, %s, ''D'', (SELECT count(*) FROM d%s), NULL::text[])',
                                   cardinality(value_rows), t.table_id, t.table_id);
        ELSIF t.op = 'U' THEN
            ctes := ctes || format(
                'u%s AS (UPDATE %s t SET (%s) = (SELECT %s FROM jsonb_populate_record(t, s.new_row) r)
                           FROM envsync.staged_rows s
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''U'' AND %s AND envsync.row_hash(t) = s.expect_hash%s
                         RETURNING s.key, envsync.row_hash(t) IS DISTINCT FROM s.new_hash AS altered)',
                t.table_id, t.relid, coalesce(t.set_columns, t.key_columns), coalesce(t.set_values, t.key_values),
                t.table_id, t.match,
                CASE WHEN t.unique_columns IS NOT NULL THEN format(' AND NOT s.new_row ?| %L::text[]', t.unique_columns) ELSE '' END);
            value_rows := value_rows || format('(%s, %s, ''U'', (SELECT count(*) FROM u%s),
                                     ARRAY(SELECT array_to_string(w.key, '', '') FROM u%s w WHERE w.altered))',
                                   cardinality(value_rows), t.table_id, t.table_id, t.table_id);
            -- Updates of unique values checked row by row: deleted, then inserted as updated, so
            -- that the values are unique again at every row inserted (two records swapping
            -- theirs): the sort reads every deletion before the first insertion. The foreign
            -- keys referencing the table, all NO ACTION, are checked at the end of the
            -- statement, when each key is back.
            IF t.unique_columns IS NOT NULL THEN
                ctes := ctes || format(
                    'x%s AS (DELETE FROM %s t USING envsync.staged_rows s
                              WHERE s.run = $1 AND s.table_id = %s AND s.op = ''U'' AND s.new_row ?| %L::text[] AND %s
                                AND envsync.row_hash(t) = s.expect_hash
                             RETURNING s.key, s.new_row, s.new_hash, t AS old),
                     y%s AS (INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE
                             SELECT %s FROM x%s x, jsonb_populate_record(x.old, x.new_row) r ORDER BY x.key
                             RETURNING %s AS key, envsync.row_hash(t) AS hash)',
                    t.table_id, t.relid, t.table_id, t.unique_columns, t.match,
                    t.table_id, t.relid, t.columns, t.from_record, t.table_id, t.key_text);
                value_rows := value_rows || format('(%s, %s, ''U'', (SELECT count(*) FROM y%s),
                                         ARRAY(SELECT array_to_string(y.key, '', '') FROM y%s y JOIN x%s x ON x.key = y.key
                                                WHERE y.hash IS DISTINCT FROM x.new_hash))',
                                       cardinality(value_rows), t.table_id, t.table_id, t.table_id, t.table_id);
            END IF;
        ELSE
            ctes := ctes || format(
                'i%s AS (INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE
                         SELECT %s FROM envsync.staged_rows s, jsonb_populate_record(NULL::%s, s.new_row) r
                          WHERE s.run = $1 AND s.table_id = %s AND s.op = ''I''
                         RETURNING %s AS key, envsync.row_hash(t) AS hash)',
                t.table_id, t.relid, t.columns, t.from_record, t.relid, t.table_id, t.key_text);
            -- Inserted records as staged? Compared in bulk (sums of hashes), one by one if not.
            value_rows := value_rows || format(
                '(%s, %s, ''I'', (SELECT count(*) FROM i%s),
                  CASE WHEN (SELECT sum(w.hash::numeric) FROM i%s w) IS DISTINCT FROM
                            (SELECT sum(s.new_hash::numeric) FROM envsync.staged_rows s
                              WHERE s.run = $1 AND s.table_id = %s AND s.op = ''I'')
                       THEN ARRAY(SELECT array_to_string(w.key, '', '') FROM i%s w JOIN envsync.staged_rows s
                                     ON s.run = $1 AND s.table_id = %s AND s.op = ''I'' AND s.key = w.key
                                  WHERE w.hash IS DISTINCT FROM s.new_hash) END)',
                cardinality(value_rows), t.table_id, t.table_id, t.table_id, t.table_id, t.table_id, t.table_id);
        END IF;
    END LOOP;
    IF cardinality(value_rows) = 0 THEN
        RETURN NULL;
    END IF;
    -- The VALUES rows are evaluated in order, and each runs its CTE to completion.
    RETURN 'WITH ' || array_to_string(ctes, ', ')
        || ' SELECT jsonb_agg(jsonb_build_object(''table_id'', v.table_id, ''op'', v.op, ''n'', v.n, ''altered'', v.altered) ORDER BY v.ord)'
        || ' FROM (VALUES ' || array_to_string(value_rows, ', ') || ') AS v (ord, table_id, op, n, altered)';
END
$$;
COMMENT ON FUNCTION envsync.write_statement(oid, text) IS 'The write statement of one step of an apply, for one owner''s tables';

-- The tables a run staged here (pg_temp.envsync_staged_tables, made anew): counts per operation,
-- owner, depth and the SQL pieces of their writes. Refuses a table not tracked here, or one
-- another environment may not write (not opened to its link role).
CREATE OR REPLACE FUNCTION envsync.staged_tables(run bigint, here text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    IF to_regclass('pg_temp.envsync_staged_tables') IS NOT NULL THEN
        DROP TABLE pg_temp.envsync_staged_tables;
    END IF;
    CREATE TEMP TABLE envsync_staged_tables ON COMMIT DROP AS
    SELECT s.table_id, tt.relid, c.relowner AS owner, 0 AS depth, s.n_i, s.n_u, s.n_d, ws.*, u.unique_columns
      FROM (SELECT st.table_id, count(*) FILTER (WHERE st.op = 'I') AS n_i, count(*) FILTER (WHERE st.op = 'U') AS n_u,
                   count(*) FILTER (WHERE st.op = 'D') AS n_d
              FROM envsync.apply_stage st WHERE st.run = staged_tables.run GROUP BY st.table_id) s
      LEFT JOIN envsync.tracked_tables tt USING (table_id)
      LEFT JOIN pg_class c ON c.oid = tt.relid
      LEFT JOIN LATERAL envsync.write_sql(tt.relid) ws ON true
      -- The columns of unique keys checked row by row (not deferrable; all columns for a key on
      -- expressions), if every foreign key referencing the table is NO ACTION: an update
      -- changing them is written as a deletion and an insertion in one statement, so that
      -- records can swap values (see write_statement).
      LEFT JOIN LATERAL (
          SELECT array_agg(DISTINCT a.attname::text) AS unique_columns
            FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0 AND NOT a.attisdropped
                               AND (a.attnum = ANY (i.indkey) OR 0 = ANY (i.indkey))
           WHERE i.indrelid = tt.relid AND i.indisunique AND i.indimmediate AND NOT i.indisprimary
             AND NOT EXISTS (SELECT FROM pg_constraint con
                              WHERE con.contype = 'f' AND con.confrelid = tt.relid
                                AND (con.confdeltype <> 'a' OR con.confupdtype <> 'a'))) u ON true;
    SELECT * INTO t FROM pg_temp.envsync_staged_tables WHERE relid IS NULL LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table id % is not tracked in environment "%"', t.table_id, here
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Compare the environments again.';
    END IF;
    FOR t IN SELECT st.relid FROM pg_temp.envsync_staged_tables st LOOP
        PERFORM envsync.require_open_table(t.relid);
    END LOOP;
    UPDATE pg_temp.envsync_staged_tables st SET depth = p.depth
      FROM envsync.parents_first(ARRAY(SELECT relid FROM pg_temp.envsync_staged_tables)) p WHERE p.relid = st.relid;
END
$$;
COMMENT ON FUNCTION envsync.staged_tables(bigint, text) IS 'Sums up, checks and orders the tables a run staged here';

-- The deferrable constraints of the tables written (theirs, their partitions', those that
-- reference them) are checked at the end of each write statement, never at COMMIT: a violation
-- fails the run, and its test import (which never commits) alike. (A deferred check cannot even
-- be queued where the writes run, as the tables' owners.) A deferrable unique key lets two
-- records swap their values. Other constraints keep their mode: a caller's own deferred work,
-- or whatever else runs at this transaction's commit, is not checked early.
CREATE OR REPLACE FUNCTION envsync.check_constraints_at_once(relids regclass[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    names text;
BEGIN
    SELECT string_agg(DISTINCT format('%I.%I', n.nspname, c.conname), ', ') INTO names
      FROM (SELECT unnest(relids) UNION SELECT p.relid FROM unnest(relids) r, pg_partition_tree(r) p) t(relid)
      JOIN pg_constraint c ON t.relid IN (c.conrelid, c.confrelid)
      JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE c.condeferrable;
    IF names IS NOT NULL THEN
        EXECUTE 'SET CONSTRAINTS ' || names || ' IMMEDIATE';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.check_constraints_at_once(regclass[]) IS
    'Makes the deferrable constraints of the tables an apply writes immediate for the rest of the transaction';

-- Writes the staged records, each only if it is still as reviewed (its content hash), as the
-- tables' owners: one statement per owner (the usual case: all in one), or with several owners
-- the deletions of each (children first), then the insertions and updates of each (parents
-- first). Returns per table id: inserted, updated, deleted, and the records not written as
-- staged ("altered").
CREATE OR REPLACE FUNCTION envsync.write_staged(run bigint) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    step record;
    step_sql text;
    parts jsonb := '[]';
BEGIN
    FOR step IN
        WITH owners AS (SELECT st.owner, min(st.depth) AS top, max(st.depth) AS bottom,
                               bool_or(st.n_d > 0) AS deletes, bool_or(st.n_i + st.n_u > 0) AS writes
                          FROM pg_temp.envsync_staged_tables st GROUP BY st.owner)
        SELECT o.owner, 'DUI' AS ops, 0 AS phase, 0 AS depth FROM owners o WHERE (SELECT count(*) FROM owners) = 1
        UNION ALL
        SELECT o.owner, 'D', 1, -o.bottom FROM owners o WHERE (SELECT count(*) FROM owners) > 1 AND o.deletes
        UNION ALL
        SELECT o.owner, 'UI', 2, o.top FROM owners o WHERE (SELECT count(*) FROM owners) > 1 AND o.writes
        ORDER BY phase, depth, owner
    LOOP
        step_sql := envsync.write_statement(step.owner, step.ops);
        IF step_sql IS NOT NULL THEN
            parts := parts || envsync.run_as_owner(step.owner, step_sql, run);
        END IF;
    END LOOP;
    RETURN (SELECT coalesce(jsonb_object_agg(x.table_id, jsonb_build_object('inserted', x.i, 'updated', x.u,
                                                                            'deleted', x.d, 'altered', x.altered)), '{}')
              FROM (SELECT p.table_id, coalesce(sum(p.n) FILTER (WHERE p.op = 'I'), 0) AS i,
                           coalesce(sum(p.n) FILTER (WHERE p.op = 'U'), 0) AS u,
                           coalesce(sum(p.n) FILTER (WHERE p.op = 'D'), 0) AS d,
                           (SELECT coalesce(jsonb_agg(a.key), '[]')
                              FROM jsonb_to_recordset(parts) AS q (table_id integer, altered jsonb),
                                   jsonb_array_elements(coalesce(q.altered, '[]')) AS a (key)
                             WHERE q.table_id = p.table_id) AS altered
                      FROM jsonb_to_recordset(parts) AS p (table_id integer, op text, n bigint)
                     GROUP BY p.table_id) x);
END
$$;
COMMENT ON FUNCTION envsync.write_staged(bigint) IS 'Writes the staged records still as reviewed, as the tables'' owners';

-- The staged records of a run that are not as reviewed here (as the tables' owners read them):
-- "table key: changed|deleted|created", created meaning a new record whose key exists already.
CREATE OR REPLACE FUNCTION envsync.drifted_records(run bigint) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    drifted text[] := '{}';
BEGIN
    FOR t IN SELECT st.* FROM pg_temp.envsync_staged_tables st ORDER BY st.depth, st.relid LOOP
        drifted := drifted || ARRAY(SELECT jsonb_array_elements_text(coalesce(envsync.run_as_owner(t.owner, format(
            'SELECT to_jsonb(array_agg(format(''%%s %%s: %%s'', %L, array_to_string(s.key, '', ''),
                                     CASE WHEN s.op = ''I'' THEN ''created'' WHEN t IS NULL THEN ''deleted''
                                          ELSE ''changed'' END) ORDER BY s.key))
               FROM envsync.staged_rows s LEFT JOIN %s t ON %s
              WHERE s.run = $1 AND s.table_id = %s
                AND CASE WHEN s.op = ''I'' THEN t IS NOT NULL ELSE envsync.row_hash(t) IS DISTINCT FROM s.expect_hash END',
            t.relid::text, t.relid, t.match, t.table_id), run), '[]')));
    END LOOP;
    RETURN drifted;
END
$$;
COMMENT ON FUNCTION envsync.drifted_records(bigint) IS 'The staged records of a run that are no longer as reviewed here';

-- An apply never changes data it does not synchronize, not even by a foreign key's action:
-- refuses the run if deleting a staged record (or changing a referenced column of one) would
-- cascade, set NULL or set a default in records not staged themselves (in tables outside the
-- synchronization above all: reader comments referencing an article). The referenced values
-- are read as the staged table's owner, the referencing records as theirs.
CREATE OR REPLACE FUNCTION envsync.check_cascades(run bigint, here text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fk record;
    referenced jsonb;
    touched jsonb;
    child_key text;
    child_id integer;
BEGIN
    FOR fk IN
        SELECT st.table_id, st.relid, st.owner, con.conname, con.conrelid::regclass AS child, c.relowner AS child_owner,
               o.op, CASE WHEN o.op = 'D' THEN con.confdeltype ELSE con.confupdtype END AS action,
               ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS ref_columns,
               ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS fk_columns
          FROM pg_temp.envsync_staged_tables st
          JOIN pg_constraint con ON con.contype = 'f' AND con.confrelid = st.relid
          JOIN pg_class c ON c.oid = con.conrelid
         CROSS JOIN LATERAL (VALUES ('D', st.n_d), ('U', st.n_u)) o (op, n)
         WHERE o.n > 0 AND CASE WHEN o.op = 'D' THEN con.confdeltype ELSE con.confupdtype END IN ('c', 'n', 'd')
         ORDER BY st.relid, con.conname, o.op
    LOOP
        -- the referenced values of the records staged (an update: only if it changes them)
        referenced := envsync.run_as_owner(fk.owner, format(
            'SELECT jsonb_agg(jsonb_build_object(''key'', s.key, ''ref'', ARRAY[%s])) FROM envsync.staged_rows s JOIN %s t ON %s
              WHERE s.run = $1 AND s.table_id = %s AND s.op = %L%s',
            (SELECT string_agg(format('t.%I::text', r), ', ') FROM unnest(fk.ref_columns) r), fk.relid,
            (SELECT w.match FROM envsync.write_sql(fk.relid) w), fk.table_id, fk.op,
            CASE WHEN fk.op = 'U' THEN format(' AND s.new_row ?| %L::text[]', fk.ref_columns) ELSE '' END), run);
        CONTINUE WHEN referenced IS NULL;
        child_id := (SELECT st.table_id FROM pg_temp.envsync_staged_tables st WHERE st.relid = fk.child);
        child_key := CASE WHEN EXISTS (SELECT FROM pg_index i WHERE i.indrelid = fk.child AND i.indisprimary)
                          THEN (SELECT k.key_array FROM envsync.key_sql(fk.child, 1) k) ELSE 'ARRAY[t.ctid::text]' END;
        touched := envsync.run_as_owner(fk.child_owner, format(
            'SELECT jsonb_build_object(''n'', count(DISTINCT %s), ''keys'', (array_agg(DISTINCT array_to_string(%s, '', '')))[1:20],
                                       ''of'', (array_agg(DISTINCT array_to_string(r.key, '', '')))[1:20])
               FROM %s t JOIN jsonb_to_recordset(%L::jsonb) AS r (key text[], ref text[]) ON r.ref = ARRAY[%s]
              WHERE true%s
             HAVING count(*) > 0',
            child_key, child_key, fk.child, referenced,
            (SELECT string_agg(format('t.%I::text', f), ', ') FROM unnest(fk.fk_columns) f),
            CASE WHEN child_id IS NOT NULL
                 THEN format(' AND NOT EXISTS (SELECT FROM envsync.staged_rows s WHERE s.run = $1 AND s.table_id = %s AND s.key = %s)',
                             child_id, child_key) ELSE '' END), run);
        IF touched IS NOT NULL THEN
            RAISE EXCEPTION '% of table % in environment "%" would % % record(s) of table % that it does not synchronize',
                            CASE WHEN fk.op = 'D' THEN 'deleting records' ELSE 'changing records' END, fk.relid, here,
                            CASE fk.action WHEN 'c' THEN CASE WHEN fk.op = 'D' THEN 'delete' ELSE 'change' END
                                           WHEN 'n' THEN 'set NULL in' ELSE 'set defaults in' END,
                            touched ->> 'n', fk.child
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Foreign key "%s" of table %s (ON %s %s): records %s of table %s reference records %s of table %s.',
                                      fk.conname, fk.child, CASE WHEN fk.op = 'D' THEN 'DELETE' ELSE 'UPDATE' END,
                                      CASE fk.action WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END,
                                      (SELECT string_agg(k, '; ') FROM jsonb_array_elements_text(touched -> 'keys') k), fk.child,
                                      (SELECT string_agg(k, '; ') FROM jsonb_array_elements_text(touched -> 'of') k), fk.relid),
                      HINT = format('Deselect these records, or first change the records referencing them in environment "%s": a synchronization never changes data it does not synchronize.', here);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.check_cascades(bigint, text) IS
    'Refuses a run whose deletions or key changes would cascade into records it does not write';

-- For the review, in the database a comparison's deletions would be applied to: the records of
-- tables outside the comparison (others than tables) that deleting this record would change
-- by a foreign key's action (CASCADE, SET NULL, SET DEFAULT), read as their owners; NULL if none.
-- row: the record as the comparison read it (envsync.row_json), whose referenced columns the
-- referencing records are matched with.
CREATE OR REPLACE FUNCTION envsync.cascades_of(tbl regclass, "row" jsonb, tables regclass[]) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fk record;
    found_keys jsonb;
    result jsonb := '[]';
BEGIN
    FOR fk IN
        SELECT con.conname, con.conrelid::regclass AS child, c.relowner AS owner, con.confdeltype AS action,
               (SELECT string_agg(format('t.%I = %L::%s', a.attname, "row" ->> r.attname, format_type(a.atttypid, -1)), ' AND ' ORDER BY k.i)
                  FROM unnest(con.conkey, con.confkey) WITH ORDINALITY k(child_col, parent_col, i)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.child_col
                  JOIN pg_attribute r ON r.attrelid = con.confrelid AND r.attnum = k.parent_col) AS match,
               EXISTS (SELECT FROM pg_index i WHERE i.indrelid = con.conrelid AND i.indisprimary) AS has_key
          FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
         WHERE con.contype = 'f' AND con.confrelid = tbl AND con.confdeltype IN ('c', 'n', 'd')
           AND con.conrelid <> ALL (tables)
         ORDER BY con.conrelid::regclass::text, con.conname
    LOOP
        found_keys := envsync.run_as_owner(fk.owner, format(
            'SELECT jsonb_agg(array_to_string(%s, '', '') ORDER BY %s) FROM %s t WHERE %s',
            CASE WHEN fk.has_key THEN (SELECT k.key_array FROM envsync.key_sql(fk.child, 1) k) ELSE 'ARRAY[t.ctid::text]' END,
            CASE WHEN fk.has_key THEN (SELECT k.key_text FROM envsync.key_sql(fk.child, 1) k) ELSE 't.ctid' END,
            fk.child, fk.match), 0);
        IF found_keys IS NOT NULL THEN
            result := result || jsonb_build_object('table', fk.child::text, 'constraint', fk.conname,
                                                   'action', CASE fk.action WHEN 'c' THEN 'delete'
                                                                            WHEN 'n' THEN 'set null' ELSE 'set default' END,
                                                   'records', found_keys);
        END IF;
    END LOOP;
    RETURN nullif(result, '[]');
END
$$;
COMMENT ON FUNCTION envsync.cascades_of(regclass, jsonb, regclass[]) IS
    'The records of tables outside a comparison that deleting a record would change by a foreign key''s action';

-- What another environment asks of the records its comparison would delete here: their
-- envsync.cascades_of (keys: the texts of their keys; tables: the ids here of the compared
-- tables), answered in the returned row (RETURNING cascades: a JSON array of {key, cascades},
-- records without any left out). Nothing is stored: it is a view.
CREATE OR REPLACE VIEW envsync.cascade_requests AS
    SELECT NULL::integer AS table_id, NULL::text[] AS keys, NULL::integer[] AS tables, NULL::jsonb AS cascades WHERE false;
COMMENT ON VIEW envsync.cascade_requests IS
    'Requests for what deleting records here would change by foreign keys'' actions, answered in the returned row (nothing is stored)';
COMMENT ON COLUMN envsync.cascade_requests.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.cascade_requests.keys IS 'The records to be deleted, each key the text of its text[] form';
COMMENT ON COLUMN envsync.cascade_requests.tables IS 'The ids here of the tables compared (their records are no cascade)';
COMMENT ON COLUMN envsync.cascade_requests.cascades IS 'Answer: a JSON array of {key, cascades}';

CREATE OR REPLACE FUNCTION envsync.cascade_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass := (SELECT t.relid FROM envsync.tracked_tables t WHERE t.table_id = NEW.table_id);
    tables regclass[] := ARRAY(SELECT t.relid FROM envsync.tracked_tables t WHERE t.table_id = ANY (NEW.tables));
BEGIN
    PERFORM envsync.readable_table(NEW.table_id, 'rows');   -- tracked and open to the link role
    NEW.cascades := '[]';
    -- the records are read only if a foreign key's action reaches outside the comparison
    IF EXISTS (SELECT FROM pg_constraint con
                WHERE con.contype = 'f' AND con.confrelid = tbl AND con.confdeltype IN ('c', 'n', 'd')
                  AND con.conrelid <> ALL (tables)) THEN
        NEW.cascades := (SELECT coalesce(jsonb_agg(jsonb_build_object('key', r.key, 'cascades', c.found)), '[]')
                           FROM envsync.table_rows(NEW.table_id, NEW.keys) r
                          CROSS JOIN LATERAL envsync.cascades_of(tbl, r.row, tables) AS c (found)
                          WHERE c.found IS NOT NULL);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION envsync.cascade_request() IS 'Answers a cascade request with what deleting the records would change';
CREATE OR REPLACE TRIGGER cascade_request INSTEAD OF INSERT ON envsync.cascade_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.cascade_request();

-- For the review of a comparison whose target is another environment: what its deletions of
-- a table's records would change there (envsync.cascades_of, asked of its envsync), by key.
CREATE OR REPLACE FUNCTION envsync.request_cascades(comparison envsync.compare_runs, tbl regclass)
RETURNS TABLE (key text[], cascades jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys text[] := ARRAY(SELECT cc.key::text FROM envsync.compare_changes cc JOIN envsync.tracked_tables t USING (table_id)
                          WHERE cc.comparison_id = comparison.id AND t.relid = tbl
                            AND cc.source_row IS NULL AND cc.target_row IS NOT NULL);
    answer jsonb;
BEGIN
    IF cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    EXECUTE format('INSERT INTO %I.cascade_requests (table_id, keys, tables) VALUES ($1, $2, $3) RETURNING cascades',
                   (SELECT e.link_schema FROM envsync.environments e WHERE e.name = comparison.target))
       INTO answer
      USING (SELECT r.table_id FROM envsync.reading(comparison.target, tbl) r), keys,
            ARRAY(SELECT et.remote_table_id FROM envsync.module_tables mt
                    JOIN envsync.environment_tables et ON et.table_id = mt.table_id AND et.environment = comparison.target
                   WHERE mt.module = ANY (comparison.modules));
    RETURN QUERY SELECT ARRAY(SELECT jsonb_array_elements_text(e -> 'key')), e -> 'cascades' FROM jsonb_array_elements(answer) e;
END
$$;
COMMENT ON FUNCTION envsync.request_cascades(envsync.compare_runs, regclass) IS
    'What a comparison''s deletions of a table''s records would change in the target environment, asked of it';

-- A trigger or rule of this database could have changed a record written: refused (27000).
CREATE OR REPLACE FUNCTION envsync.check_written(result jsonb, here text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    SELECT st.relid, r.value -> 'altered' AS altered INTO t
      FROM pg_temp.envsync_staged_tables st, jsonb_each(result) r
     WHERE r.key = st.table_id::text AND jsonb_array_length(r.value -> 'altered') > 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'record % of table % was not written as compared in environment "%"', t.altered ->> 0, t.relid, here
            USING ERRCODE = 'triggered_data_change_violation',
                  DETAIL = format('%s record(s) differ once written.', jsonb_array_length(t.altered)),
                  HINT = format('A trigger or rule on table %s in environment "%s" changes the rows written; disable it for envsync''s writes (envsync.applying is on) or leave the table out.', t.relid, here);
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.check_written(jsonb, text) IS 'Refuses records that were not written exactly as reviewed';

-- The target's own next insert must not collide with the ids it received.
CREATE OR REPLACE FUNCTION envsync.move_sequences(run bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seq record;
    top numeric;
    given numeric;
BEGIN
    FOR seq IN SELECT st.table_id, a.attname, pg_get_serial_sequence(st.relid::text, a.attname) AS name
                 FROM pg_temp.envsync_staged_tables st
                 JOIN pg_attribute a ON a.attrelid = st.relid AND a.attnum > 0 AND NOT a.attisdropped
                WHERE st.n_i > 0 AND pg_get_serial_sequence(st.relid::text, a.attname) IS NOT NULL LOOP
        SELECT max((s.new_row ->> seq.attname)::numeric) INTO top FROM envsync.apply_stage s
         WHERE s.run = move_sequences.run AND s.table_id = seq.table_id AND s.op = 'I';
        EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s', seq.name)
           INTO given;
        IF top > given THEN
            PERFORM setval(seq.name, top::bigint);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.move_sequences(bigint) IS 'Moves sequences and identity columns past the ids a run inserted';

-- Applies the staged records of a run, all or none: if any record was not as reviewed, nothing
-- is written and the error lists them all. here: this environment's name, for the messages.
-- Returns per table id: inserted, updated, deleted.
CREATE OR REPLACE FUNCTION envsync.apply_staged(run bigint, here text, move_sequences boolean) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET envsync.applying = on AS $$
DECLARE
    result jsonb;
    drifted text[];
    e_message text; e_detail text; e_table text; e_schema text;
BEGIN
    PERFORM envsync.staged_tables(run, here);
    PERFORM envsync.check_cascades(run, here);
    BEGIN
        PERFORM envsync.check_constraints_at_once(ARRAY(SELECT st.relid FROM pg_temp.envsync_staged_tables st));
        result := envsync.write_staged(run);
        IF EXISTS (SELECT FROM pg_temp.envsync_staged_tables st
                    WHERE (result -> st.table_id::text ->> 'inserted')::bigint <> st.n_i
                       OR (result -> st.table_id::text ->> 'updated')::bigint <> st.n_u
                       OR (result -> st.table_id::text ->> 'deleted')::bigint <> st.n_d) THEN
            RAISE EXCEPTION USING ERRCODE = 'EV001';   -- undoes the writes, to name what changed
        END IF;
    EXCEPTION WHEN SQLSTATE 'EV001' OR unique_violation THEN
        -- a record created meanwhile shows as a duplicate key
        drifted := envsync.drifted_records(run);
        IF cardinality(drifted) = 0 AND SQLSTATE = '23505' THEN   -- a unique key other than the primary key
            GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION USING MESSAGE = e_message, ERRCODE = 'unique_violation', DETAIL = e_detail,
                  HINT = format('Another record in environment "%s" holds the value: select its change too. Records swapping values need the constraint DEFERRABLE when a foreign key referencing the table has an action other than NO ACTION.', here);
        END IF;
        PERFORM envsync.raise_drift(here, drifted);
        RAISE EXCEPTION 'records changed in environment "%" during the synchronization', here
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Try again.';
    WHEN foreign_key_violation THEN
        GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                                e_table = TABLE_NAME, e_schema = SCHEMA_NAME;
        RAISE EXCEPTION USING MESSAGE = e_message, ERRCODE = 'foreign_key_violation', DETAIL = e_detail,
              HINT = format('Select the changes of the records it names too, or first change the records of table %s.%s in environment "%s".',
                            quote_ident(e_schema), quote_ident(e_table), here);
    END;
    PERFORM envsync.check_written(result, here);
    IF move_sequences THEN
        PERFORM envsync.move_sequences(run);
    END IF;
    -- The staged rows go: all at once if no other run is staging here now.
    BEGIN
        LOCK TABLE envsync.apply_stage IN ACCESS EXCLUSIVE MODE NOWAIT;
        TRUNCATE envsync.apply_stage;
    EXCEPTION WHEN lock_not_available THEN
        DELETE FROM envsync.apply_stage st WHERE st.run = apply_staged.run;
    END;
    DROP TABLE pg_temp.envsync_staged_tables;
    RETURN coalesce((SELECT jsonb_object_agg(r.key, r.value - 'altered') FROM jsonb_each(result) r), '{}');
END
$$;
COMMENT ON FUNCTION envsync.apply_staged(bigint, text, boolean) IS
    'Writes the records staged in envsync.apply_stage for a synchronization, all or none, after checking each is as reviewed';

-- PROD asks another environment to apply what it staged there by inserting a request; the
-- trigger answers in the returned row (RETURNING result), in PROD's remote transaction.
CREATE TABLE IF NOT EXISTS envsync.apply_requests (
    run            bigint NOT NULL,
    environment    text NOT NULL,     -- this database's name in PROD's catalog
    move_sequences boolean NOT NULL,
    result         jsonb,   -- answer: per table id, inserted, updated, deleted
    requested_at   timestamptz NOT NULL DEFAULT now(),
    requested_by   name NOT NULL DEFAULT session_user,
    -- the run as PROD knows it, written here in the same transaction as its records: should
    -- PROD lose or fail the run after this database committed, PROD finds it here
    run_info       jsonb
);
COMMENT ON TABLE envsync.apply_requests IS 'Synchronizations PROD applied to this database, with what each wrote';
COMMENT ON COLUMN envsync.apply_requests.run IS 'The synchronization''s id on PROD';
COMMENT ON COLUMN envsync.apply_requests.environment IS 'This database''s name in PROD''s catalog';
COMMENT ON COLUMN envsync.apply_requests.move_sequences IS 'Whether sequences move past the inserted ids (not in a test import)';
COMMENT ON COLUMN envsync.apply_requests.result IS 'Answer: per table id, inserted, updated, deleted';
COMMENT ON COLUMN envsync.apply_requests.requested_at IS 'When';
COMMENT ON COLUMN envsync.apply_requests.requested_by IS 'The link role that asked';
COMMENT ON COLUMN envsync.apply_requests.run_info IS
    'The run as PROD records it (comparison_id, reverts, scheduled_by, run_at, selection: the change ids as an int8multirange), committed with its writes here';

CREATE OR REPLACE FUNCTION envsync.apply_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.result := envsync.apply_staged(NEW.run, NEW.environment, NEW.move_sequences);
    -- Kept as long as its run can be reverted: PROD may need it to find a run it lost.
    DELETE FROM envsync.apply_requests r WHERE r.requested_at < now() - envsync.keep_before_images();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION envsync.apply_request() IS 'Answers an apply request: writes the staged records here';
CREATE OR REPLACE TRIGGER apply_request BEFORE INSERT ON envsync.apply_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.apply_request();
