-- The content hash: equal by PostgreSQL's equality <=> equal hash, whatever the session says.
CREATE TABLE hash_probe (
    id    integer PRIMARY KEY,
    n     numeric,
    ts    timestamptz,
    d     date,
    iv    interval,
    f     double precision,
    j     jsonb,
    js    json,
    b     bytea,
    a     text[],
    t     text,
    p     point,
    m     money,
    pa    point[]
);
INSERT INTO hash_probe VALUES
    (1, 1.5, '2026-01-01 12:00:00+02', '2026-03-01', '1 day', 0.1, '{"b": 1, "a": [1, 2]}', '{"x": 1}',
        '\x00ff', '{a,NULL,c}', repeat('long text ', 2000), '(1,2)', 1234.56, '{"(0.1,2.5)"}'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 0, 'infinity', '-infinity', '-1 mon', 'NaN', '[]', '[]', '', '{}', '', '(0,0)', -0.01, '{}');

-- (and the stored hash, of the full comparison's summaries, likewise)
CREATE TEMP TABLE hashes_default AS
    SELECT id, envsync.row_hash(h) AS hash, envsync.stored_hash(h) AS stored FROM hash_probe h;

SET TimeZone = 'Asia/Kathmandu';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'postgres_verbose';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SET client_encoding = 'LATIN1';
SET lc_monetary = 'C';
SELECT h.id, envsync.row_hash(h) = d.hash AS same_hash_under_other_settings,
       envsync.stored_hash(h) = d.stored AS same_stored_hash
  FROM hash_probe h JOIN hashes_default d USING (id) ORDER BY h.id;
RESET ALL;

-- Values PostgreSQL holds equal hash alike.
SELECT envsync.row_hash(ROW(1.5::numeric)) = envsync.row_hash(ROW(1.50::numeric)) AS numeric_scale,
       envsync.row_hash(ROW('{"b": 1, "a": 2}'::jsonb)) = envsync.row_hash(ROW('{"a":2,"b":1}'::jsonb)) AS jsonb_key_order,
       envsync.row_hash(ROW('{"a": 1.0}'::jsonb)) = envsync.row_hash(ROW('{"a": 1.00}'::jsonb)) AS jsonb_numeric,
       envsync.row_hash(ROW('2026-01-01 12:00+02'::timestamptz)) = envsync.row_hash(ROW('2026-01-01 10:00+00'::timestamptz)) AS same_instant,
       envsync.row_hash(ROW('1 day'::interval)) = envsync.row_hash(ROW('24 hours'::interval)) AS interval_span,
       envsync.row_hash(ROW(0::float8)) = envsync.row_hash(ROW('-0'::float8)) AS signed_zero,
       envsync.row_hash(ROW(ARRAY[1.0, 2]::numeric[])) = envsync.row_hash(ROW(ARRAY[1, 2.00]::numeric[])) AS numeric_array,
       -- money by its int8 value, not by its text (which follows lc_monetary)
       envsync.row_hash(ROW('12.34'::money)) = envsync.row_hash(ROW(1234::bigint)) AS money_as_int8;

-- Values PostgreSQL holds different hash differently.
SELECT envsync.row_hash(ROW(NULL::text)) <> envsync.row_hash(ROW(''::text)) AS null_vs_empty,
       envsync.row_hash(ROW(NULL::text[])) <> envsync.row_hash(ROW('{}'::text[])) AS null_vs_empty_array,
       envsync.row_hash(ROW('a'::text, 'b'::text)) <> envsync.row_hash(ROW('b'::text, 'a'::text)) AS column_order,
       envsync.row_hash(ROW(NULL::int, 1)) <> envsync.row_hash(ROW(1, NULL::int)) AS null_position,
       envsync.row_hash(ROW(repeat('x', 100000) || 'a')) <> envsync.row_hash(ROW(repeat('x', 100000) || 'b')) AS toasted_tail,
       envsync.row_hash(ROW('\x00'::bytea)) <> envsync.row_hash(ROW(''::bytea)) AS bytea_zero_byte,
       envsync.row_hash(ROW('{"a": 1}'::json)) <> envsync.row_hash(ROW('{"a":1}'::json)) AS json_is_text;

-- A NULL row has no hash.
SELECT envsync.row_hash(NULL::hash_probe) IS NULL AS null_row;

-- The stored hash: the same however a value is compressed; values stored apart hash apart even
-- when equal.
CREATE TEMP TABLE pglz_notes (id integer, note text COMPRESSION pglz);
CREATE TEMP TABLE lz4_notes (id integer, note text COMPRESSION lz4);
INSERT INTO pglz_notes VALUES (1, repeat('compressed note ', 5000));
INSERT INTO lz4_notes VALUES (1, repeat('compressed note ', 5000));
SELECT envsync.stored_hash(p) = envsync.stored_hash(l) AS compression_plays_no_part
  FROM pglz_notes p, lz4_notes l;
SELECT envsync.stored_hash(ROW('2026-01-01 12:00+02'::timestamptz)) = envsync.stored_hash(ROW('2026-01-01 10:00+00'::timestamptz)) AS same_instant,
       envsync.stored_hash(ROW(1.5::numeric)) <> envsync.stored_hash(ROW(1.50::numeric)) AS scale_is_stored,
       envsync.stored_hash(ROW(NULL::text)) <> envsync.stored_hash(ROW(''::text)) AS null_vs_empty,
       envsync.stored_hash(ROW('a'::text, 'b'::text)) <> envsync.stored_hash(ROW('b'::text, 'a'::text)) AS column_order,
       envsync.stored_hash(ROW(repeat('x', 100000) || 'a')) <> envsync.stored_hash(ROW(repeat('x', 100000) || 'b')) AS toasted_tail,
       envsync.stored_hash(ROW('\x00'::bytea)) <> envsync.stored_hash(ROW(''::bytea)) AS bytea_zero_byte;
-- Every length and every last byte tells a value apart (the tail of a value is read in words).
SELECT count(DISTINCT envsync.stored_hash(ROW(repeat('a', g)))) AS lengths_0_to_100
  FROM generate_series(0, 100) g;
SELECT count(DISTINCT envsync.stored_hash(ROW(repeat('a', n) || chr(c)))) AS tails
  FROM generate_series(0, 40) n, generate_series(98, 99) c;
DROP TABLE hash_probe;
