-- A row as envsync reads it, the same in every environment: its content hash, its JSON form,
-- its key (the primary key, the record's "internal ID") and the table's shape. The C side is
-- row_shape.cpp; the text forms of a key are one: text[] of each key column's text, and where a
-- key travels inside an array of keys, the text of that text[] ('{42}').

CREATE OR REPLACE FUNCTION envsync.row_hash(record) RETURNS bigint
    AS 'MODULE_PATHNAME', 'envsync_row_hash' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION envsync.row_hash(record) IS
    'Content hash of a row by column names, types and values: equal rows (by PostgreSQL equality) hash alike, whatever the column order or the session settings';

-- The same row's hash by its stored values: cheaper, and equal for equal content, but content
-- row_hash finds equal may still hash apart (1.5 and 1.50). What tells two rows apart only for a
-- closer look (the full comparison's second step) uses it.
CREATE OR REPLACE FUNCTION envsync.stored_hash(record) RETURNS bigint
    AS 'MODULE_PATHNAME', 'envsync_stored_hash' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION envsync.stored_hash(record) IS
    'Hash of a row by its stored values (PostgreSQL''s own types) and text forms (other types): equal rows stored alike hash alike, whatever the column order, compression or session settings';

CREATE OR REPLACE FUNCTION envsync.row_json(record) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'envsync_row_json' LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION envsync.row_json(record) IS
    'A row as jsonb, keyed by column name (numbers, booleans and jsonb as JSON, other values as their text form): no cast, so no user code runs';

-- A key column's text as the change trigger logs it: with DateStyle, TimeZone and IntervalStyle
-- pinned, so a date or timestamp key reads the same in every session.
CREATE OR REPLACE FUNCTION envsync.key_text(anyelement) RETURNS text
    AS 'MODULE_PATHNAME', 'envsync_key_text' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION envsync.key_text(anyelement) IS
    'A key value''s text form as envsync logs it, whatever the session settings (date and time keys)';

-- The SQL expression of a key column's text (row alias t): its cast to text, unless the text
-- follows session settings (dates and times) or the cast differs from the output (char(n),
-- whose cast drops the padding).
CREATE OR REPLACE FUNCTION envsync.key_column_text(attname name, atttypid regtype) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN atttypid IN ('date', 'timestamp', 'timestamptz', 'bpchar') THEN format('envsync.key_text(t.%I)', attname)
                ELSE format('t.%I::text', attname) END
$$;
COMMENT ON FUNCTION envsync.key_column_text(name, regtype) IS 'The SQL expression of a key column''s text, as envsync logs it';

-- The primary key columns of a table, in key order.
CREATE OR REPLACE FUNCTION envsync.key_columns(tbl regclass)
RETURNS TABLE (attname name, atttypid regtype, atttypmod integer, ord bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.attname, a.atttypid, a.atttypmod, k.ord
      FROM pg_index i
     CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = tbl AND i.indisprimary
$$;
COMMENT ON FUNCTION envsync.key_columns(regclass) IS 'The primary key columns of a table, in key order';

-- SQL expressions of a row's key (row alias t): its text[] form, the text of that, and a
-- condition matching rows whose key texts are in the text[] parameter numbered param (each
-- key column by its index, = ANY of its values, then the exact keys).
CREATE OR REPLACE FUNCTION envsync.key_sql(tbl regclass, param integer,
                                           OUT key_array text, OUT key_text text, OUT key_match text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('ARRAY[%s]', string_agg(envsync.key_column_text(k.attname, k.atttypid), ', ' ORDER BY k.ord)),
           format('ARRAY[%s]::text', string_agg(envsync.key_column_text(k.attname, k.atttypid), ', ' ORDER BY k.ord)),
           string_agg(format('t.%I = ANY (ARRAY(SELECT (lit::text[])[%s]::%s FROM unnest($%s) AS lit))',
                             k.attname, k.ord, format_type(k.atttypid, -1), param), ' AND ' ORDER BY k.ord)
           || format(' AND ARRAY[%s]::text = ANY ($%s)',
                     string_agg(envsync.key_column_text(k.attname, k.atttypid), ', ' ORDER BY k.ord), param)
      FROM envsync.key_columns(tbl) k
$$;
COMMENT ON FUNCTION envsync.key_sql(regclass, integer) IS
    'SQL expressions of a row''s key: its text[] form, the text of that, and a condition matching given key texts';

-- Name, columns (name and type) and primary key of a table, to check that a table is the same
-- in two environments (and that an id there still names it). Types by name: OIDs differ
-- between servers.
CREATE OR REPLACE FUNCTION envsync.table_shape(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'table', (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl),
        'columns', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', a.attname,
                                                                 'type', format_type(a.atttypid, a.atttypmod))
                                              ORDER BY a.attnum), '[]')
                      FROM pg_attribute a
                     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped),
        'key', (SELECT jsonb_agg(k.attname ORDER BY k.ord) FROM envsync.key_columns(tbl) k))
$$;
COMMENT ON FUNCTION envsync.table_shape(regclass) IS 'Name, columns (name, type) and primary key of a table, as JSON';

-- Why two shapes (envsync.table_shape) differ, in words; NULL when they are the same. Columns
-- are matched by name: their order (and dropped columns) may differ between environments, as
-- every read, hash and write goes by column name.
CREATE OR REPLACE FUNCTION envsync.shape_difference(a jsonb, b jsonb, a_env text, b_env text) RETURNS text
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
        CASE WHEN a->'key' IS DISTINCT FROM b->'key'
             THEN format('The primary key is (%s) in environment "%s" but (%s) in environment "%s".',
                         (SELECT string_agg(k, ', ') FROM jsonb_array_elements_text(a->'key') k), a_env,
                         (SELECT string_agg(k, ', ') FROM jsonb_array_elements_text(b->'key') k), b_env) END)
$$;
COMMENT ON FUNCTION envsync.shape_difference(jsonb, jsonb, text, text) IS
    'Why two table shapes differ, in words, naming the columns and environments; NULL when they are the same';
