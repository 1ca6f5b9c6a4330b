-- Reading a synced table where it lives, as its owner (table_read.cpp runs the query): every
-- row's hash, the full comparison's bucket summaries and the hashes of given buckets, the rows
-- of given keys, and the same for another environment (envsync.row_hashes, envsync.row_buckets,
-- envsync.bucket_requests, envsync.read_requests), which reaches only the tables opened to it.

-- Who may read which table, as whom, and the query. what: 'hashes' (the key's text and the
-- content hash of every synced row), 'rows' (key text[], hash and the row as JSON, of the rows
-- whose key texts are in $1; all rows when $1 is NULL), 'buckets' (per bucket of keys, its
-- number of rows and the XOR of their stored hashes; $1 bits make the bucket) or 'bucket
-- hashes' (key text and stored hash of the rows in the buckets $2, of $1 bits). A key of one
-- integer column is bucketed by range (the key shifted right by $1 bits): its summaries are
-- read without a query (table_read.cpp), the rows of a bucket through the primary key, and the
-- query is NULL; another key by $1 bits of its columns' texts hashed bytewise (COLLATE "C"), so
-- that both servers put a key in the same bucket. Rows outside the row filter are not read.
-- Also what the reads without a query need: the table, its range key column (NULL for other
-- keys) and its row filter.
CREATE OR REPLACE FUNCTION envsync.readable_table(table_id integer, what text, OUT owner oid, OUT query text,
                                                  OUT relid regclass, OUT range_column name,
                                                  OUT filter_column name, OUT filter_pattern text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t envsync.tracked_tables;
    k record;
    filter text;
    bucket text;
    by_range name;
BEGIN
    SELECT * INTO t FROM envsync.tracked_tables tt WHERE tt.table_id = readable_table.table_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table id % is not tracked in this database', table_id
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Compare the environments again.';
    END IF;
    PERFORM envsync.require_open_table(t.relid);
    owner := (SELECT c.relowner FROM pg_class c WHERE c.oid = t.relid);
    SELECT * INTO k FROM envsync.key_sql(t.relid, 1);
    filter := CASE WHEN t.filter_column IS NOT NULL
                   THEN format(' AND t.%I LIKE %L', t.filter_column, t.filter_pattern) ELSE '' END;
    by_range := envsync.range_key(t.relid);
    relid := t.relid;
    range_column := by_range;
    filter_column := t.filter_column;
    filter_pattern := t.filter_pattern;
    -- the key columns' texts hashed one by one (cheaper than the text of the key's array)
    SELECT format('((%s) & ((1::bigint << $1) - 1))',
                  string_agg(format('hashtextextended(t.%I::text COLLATE "C", %s)', kc.attname, kc.ord),
                             ' # ' ORDER BY kc.ord))
      INTO bucket FROM envsync.key_columns(t.relid) kc;
    -- Stored hashes: a bucket or a key whose hashes differ is only read closer, and its records
    -- compared by their content hashes, next.
    query := CASE
        WHEN what IN ('buckets', 'bucket hashes') AND by_range IS NOT NULL THEN NULL
        -- OFFSET 0: the aggregate gets (bucket, hash) only, in a hash table, instead of sorting whole rows
        WHEN what = 'buckets' THEN format('SELECT b.bucket, count(*) AS n, bit_xor(b.hash) AS digest '
                                          'FROM (SELECT %s AS bucket, envsync.stored_hash(t) AS hash FROM %s t WHERE true%s OFFSET 0) b '
                                          'GROUP BY b.bucket', bucket, t.relid, filter)
        -- IN (SELECT unnest): a hash lookup per row, not a search through the array
        WHEN what = 'bucket hashes' THEN format('SELECT %s AS key, envsync.stored_hash(t) AS hash FROM %s t '
                                                'WHERE %s IN (SELECT pg_catalog.unnest($2::bigint[]))%s',
                                                k.key_text, t.relid, bucket, filter)
        WHEN what = 'hashes' THEN format('SELECT %s AS key, envsync.row_hash(t) AS hash FROM %s t WHERE true%s',
                                         k.key_text, t.relid, filter)
        WHEN what = 'rows' THEN format('SELECT %s AS key, envsync.row_hash(t) AS hash, envsync.row_json(t) AS row '
                                       'FROM %s t WHERE ($1 IS NULL OR %s)%s', k.key_array, t.relid, k.key_match, filter) END;
END
$$;
COMMENT ON FUNCTION envsync.readable_table(integer, text) IS
    'Who may read a synced table (another environment only the tables opened to it), as which owner, with which query';

CREATE OR REPLACE FUNCTION envsync.table_hashes(table_id integer) RETURNS TABLE (key text, hash bigint)
    AS 'MODULE_PATHNAME', 'envsync_table_hashes' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.table_hashes(integer) IS
    'Key (the text of its text[] form) and content hash of every synced row of a tracked table, read as the table''s owner';

CREATE OR REPLACE FUNCTION envsync.table_rows(table_id integer, keys text[])
RETURNS TABLE (key text[], hash bigint, "row" jsonb)
    AS 'MODULE_PATHNAME', 'envsync_table_rows' LANGUAGE C CALLED ON NULL INPUT;
COMMENT ON FUNCTION envsync.table_rows(integer, text[]) IS
    'The synced rows of a tracked table with the given keys (all if NULL), read as the table''s owner';

-- The key column of a table whose buckets are ranges of keys (a key of one integer column),
-- NULL for other keys.
CREATE OR REPLACE FUNCTION envsync.range_key(tbl regclass) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT min(kc.attname) FROM envsync.key_columns(tbl) kc
    HAVING count(*) = 1 AND bool_and(kc.atttypid IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype))
$$;
COMMENT ON FUNCTION envsync.range_key(regclass) IS
    'The key column of a table whose comparison buckets are ranges of keys (one integer column), else NULL';

-- How many bits make a bucket in a full comparison of a table: about 16 rows a bucket, so that
-- the summaries are a small part of the table and a differing bucket holds few rows, and at most
-- 2^18 buckets, so that the summaries of a table take a few MB however large it is. Only the
-- cost depends on it (both sides bucket alike): the density of a range key comes from this
-- server's statistics when it may read them, else keys are taken as dense.
CREATE OR REPLACE FUNCTION envsync.bucket_bits(tbl regclass) RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n float8;
    col name := envsync.range_key(tbl);
    bounds bigint[];
    schema_name name;
    table_name name;
    density float8 := 1;
BEGIN
    SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE pg_relation_size(c.oid) / 100 END, ns.nspname, c.relname
      INTO n, schema_name, table_name
      FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE c.oid = tbl;
    IF col IS NULL THEN
        RETURN least(18, greatest(6, ceil(log(2, (greatest(n, 1) / 16)::numeric))));
    END IF;
    -- pg_stats by its names, so that the view's own lookups are by them
    SELECT s.histogram_bounds::text::bigint[] INTO bounds
      FROM pg_stats s WHERE s.schemaname = schema_name AND s.tablename = table_name AND s.attname = col;
    IF bounds[array_upper(bounds, 1)] > bounds[1] THEN
        density := least(greatest(n, 1) / (bounds[array_upper(bounds, 1)]::float8 - bounds[1] + 1), 1);
    END IF;
    -- keys spanning n / density values: 2^bits of them a bucket
    RETURN least(62, greatest(0, ceil(log(2, greatest(16 / density, 1)::numeric)),
                              ceil(log(2, greatest(greatest(n, 1) / density / 262144, 1)::numeric))));
END
$$;
COMMENT ON FUNCTION envsync.bucket_bits(regclass) IS
    'How many bits make a bucket of keys in a full comparison of a table (about 16 rows a bucket, at most 2^18 buckets)';

CREATE OR REPLACE FUNCTION envsync.table_buckets(table_id integer, bits integer)
RETURNS TABLE (bucket bigint, n bigint, digest bigint)
    AS 'MODULE_PATHNAME', 'envsync_table_buckets' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.table_buckets(integer, integer) IS
    'Per bucket of keys (a range of keys, or the key''s hash, of bits bits) of a tracked table: its synced rows and the XOR of their hashes, read as the table''s owner';

CREATE OR REPLACE FUNCTION envsync.table_bucket_hashes(table_id integer, bits integer, buckets bigint[])
RETURNS TABLE (key text, hash bigint)
    AS 'MODULE_PATHNAME', 'envsync_table_bucket_hashes' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.table_bucket_hashes(integer, integer, bigint[]) IS
    'Key and stored hash (envsync.stored_hash) of the synced rows of a tracked table in the given buckets of keys, read as the table''s owner';

-- What another environment reads first in a full comparison: the summary of each bucket of keys,
-- computed here while it computes its own; only the buckets that differ are read further. A query
-- for one table_id and bits reads that table once (the filters come before the call).
CREATE OR REPLACE VIEW envsync.row_buckets AS
    SELECT t.table_id, b.bits, s.bucket, s.n, s.digest
      FROM envsync.tracked_tables t CROSS JOIN pg_catalog.generate_series(0, 62) b(bits)
     CROSS JOIN LATERAL envsync.table_buckets(t.table_id, b.bits) s;
COMMENT ON VIEW envsync.row_buckets IS 'Per tracked table and bucket of keys: its synced rows and the XOR of their hashes';
COMMENT ON COLUMN envsync.row_buckets.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.row_buckets.bits IS 'How many bits make the bucket (0 to 62): of the key''s hash, or the range of keys';
COMMENT ON COLUMN envsync.row_buckets.bucket IS 'The bucket';
COMMENT ON COLUMN envsync.row_buckets.n IS 'How many synced rows it holds';
COMMENT ON COLUMN envsync.row_buckets.digest IS 'The XOR of their stored hashes (envsync.stored_hash)';

-- What another environment reads then: the keys and hashes of the buckets that differ, asked by
-- inserting the table's id and the buckets, answered in the returned row. Nothing is stored.
CREATE OR REPLACE VIEW envsync.bucket_requests AS
    SELECT NULL::integer AS table_id, NULL::integer AS bits, NULL::bigint[] AS buckets,
           NULL::text[] AS keys, NULL::bigint[] AS hashes WHERE false;
COMMENT ON VIEW envsync.bucket_requests IS
    'Requests for the keys and hashes of the synced rows in given buckets of keys, answered in the returned row (nothing is stored)';
COMMENT ON COLUMN envsync.bucket_requests.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.bucket_requests.bits IS 'How many bits make the bucket';
COMMENT ON COLUMN envsync.bucket_requests.buckets IS 'The buckets wanted';
COMMENT ON COLUMN envsync.bucket_requests.keys IS 'Answer: the keys of their rows (text of the text[] form)';
COMMENT ON COLUMN envsync.bucket_requests.hashes IS 'Answer: the stored hashes (envsync.stored_hash) of the same rows, in the same order';

CREATE OR REPLACE FUNCTION envsync.bucket_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT coalesce(array_agg(h.key), '{}'), coalesce(array_agg(h.hash), '{}') INTO NEW.keys, NEW.hashes
      FROM envsync.table_bucket_hashes(NEW.table_id, NEW.bits, NEW.buckets) h;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION envsync.bucket_request() IS 'Answers a bucket request with the keys and hashes asked for';
CREATE OR REPLACE TRIGGER bucket_request INSTEAD OF INSERT ON envsync.bucket_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.bucket_request();

-- Every synced row's key and hash, for a DBA comparing by hand. A query for one table_id reads
-- that table only; nothing here depends on the synced tables themselves.
CREATE OR REPLACE VIEW envsync.row_hashes AS
    SELECT t.table_id, h.key, h.hash
      FROM envsync.tracked_tables t CROSS JOIN LATERAL envsync.table_hashes(t.table_id) h;
COMMENT ON VIEW envsync.row_hashes IS 'Key and content hash of every synced row, by tracked table';
COMMENT ON COLUMN envsync.row_hashes.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.row_hashes.key IS 'The record''s key, as the text of its text[] form';
COMMENT ON COLUMN envsync.row_hashes.hash IS 'Its content hash (envsync.row_hash)';

-- What another environment reads of particular records: it inserts the table's id and the keys,
-- and the trigger answers in the returned row (RETURNING rows: a JSON array of {key, hash, row}).
-- Nothing is stored: it is a view. The answer is json, built as text: it only travels, and the
-- asking side's jsonb column parses it once (a jsonb array made here took four times as long).
CREATE OR REPLACE VIEW envsync.read_requests AS
    SELECT NULL::integer AS table_id, NULL::text[] AS keys, NULL::json AS rows WHERE false;
COMMENT ON VIEW envsync.read_requests IS
    'Requests for the synced rows of a table with given keys, answered in the returned row (nothing is stored)';
COMMENT ON COLUMN envsync.read_requests.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.read_requests.keys IS 'The keys wanted, each the text of its text[] form; NULL: all rows';
COMMENT ON COLUMN envsync.read_requests.rows IS 'Answer: a JSON array of {key, hash, row}';

CREATE OR REPLACE FUNCTION envsync.read_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- each row's fields named as the asking side reads them; json_agg of the records copies a
    -- big row's text once less than building an object per row would
    NEW.rows := (SELECT coalesce(json_agg(r), '[]')
                   FROM (SELECT t.key AS key, t.hash AS hash, t.row AS row
                           FROM envsync.table_rows(NEW.table_id, NEW.keys) t) r);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION envsync.read_request() IS 'Answers a read request with the rows asked for';
CREATE OR REPLACE TRIGGER read_request INSTEAD OF INSERT ON envsync.read_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.read_request();
