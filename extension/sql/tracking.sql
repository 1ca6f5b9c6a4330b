-- Change tracking, in every environment: which tables are tracked, the change log the C++
-- trigger appends to, and the per-table row hashes a full comparison reads.

CREATE TABLE envsync.tracked_tables (
    table_id       integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid          regclass NOT NULL UNIQUE,
    filter_column  name,     -- only rows whose filter_column LIKE filter_pattern are synced
    filter_pattern text,
    tracked_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((filter_column IS NULL) = (filter_pattern IS NULL))
);
COMMENT ON TABLE envsync.tracked_tables IS 'Tables whose writes this database records in envsync.row_log';

-- Appended to by envsync.track_change() straight to the heap: no index, no trigger, no
-- default (the trigger checks). Entries are removed once every pair has taken them in.
CREATE TABLE envsync.row_log (
    table_id integer NOT NULL,
    key      text[] NOT NULL,     -- the record's primary key, each column as text
    kind     "char" NOT NULL,     -- I inserted, U updated, D deleted
    hash     bigint,              -- content hash of the new row (NULL for deletions)
    applied  boolean NOT NULL,    -- written by envsync's apply, not by a user
    xid      xid8 NOT NULL,       -- writing transaction
    at       timestamptz NOT NULL -- start of the writing statement
);
COMMENT ON TABLE envsync.row_log IS 'One entry per write to a tracked table since the changes were last taken in by a comparison';

CREATE FUNCTION envsync.track_change() RETURNS trigger
    AS 'MODULE_PATHNAME', 'envsync_track_change' LANGUAGE C;
COMMENT ON FUNCTION envsync.track_change() IS 'Change-tracking trigger installed by envsync on every synced table';

CREATE FUNCTION envsync.row_hash(record) RETURNS bigint
    AS 'MODULE_PATHNAME', 'envsync_row_hash' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION envsync.row_hash(record) IS
    'Content hash of a row: equal rows (by PostgreSQL equality) hash alike, whatever the session settings';

CREATE FUNCTION envsync.row_json(record) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'envsync_row_json' LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION envsync.row_json(record) IS
    'A row as jsonb, keyed by column name (numbers, booleans and jsonb as JSON, other values as their text form): no cast, so no user code runs';

-- The primary key columns of a table, in key order.
CREATE FUNCTION envsync.key_columns(tbl regclass)
RETURNS TABLE (attname name, atttypid regtype, atttypmod integer, ord bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.attname, a.atttypid, a.atttypmod, k.ord
      FROM pg_index i
     CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = tbl AND i.indisprimary
$$;

-- Columns (name and type, in order) and primary key of a table, to check that a table is the
-- same in two environments. Types by name: OIDs differ between servers.
CREATE FUNCTION envsync.table_shape(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'columns', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', a.attname,
                                                                 'type', format_type(a.atttypid, a.atttypmod))
                                              ORDER BY a.attnum), '[]')
                      FROM pg_attribute a
                     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped),
        'key', (SELECT jsonb_agg(k.attname ORDER BY k.ord) FROM envsync.key_columns(tbl) k))
$$;

-- What PROD checks before comparing: is each table still the same here.
CREATE VIEW envsync.tracked_shapes AS
    SELECT table_id, envsync.table_shape(relid) AS shape FROM envsync.tracked_tables;
COMMENT ON VIEW envsync.tracked_shapes IS 'Columns and key of each tracked table';

-- Refuses, with the reason, a table envsync cannot or must not synchronize.
CREATE FUNCTION envsync.check_trackable(tbl regclass, filter_column name, filter_pattern text)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    denied text;
    bad_key record;
BEGIN
    SELECT n.reason INTO denied FROM envsync.never_synced n
      JOIN pg_class c ON c.relname = n.table_name WHERE c.oid = tbl;
    IF FOUND THEN
        RAISE EXCEPTION 'table "%" is never synchronized', tbl
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('It holds %s, which stay in each environment.', denied),
                  HINT = 'Leave it out of the module.';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = 'wrong_object_type', HINT = 'Only tables can be synchronized.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_index WHERE indrelid = tbl AND indisprimary) THEN
        RAISE EXCEPTION 'table "%" has no primary key', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Records are matched between environments by their primary key.',
                  HINT = 'Add a primary key to the table in every environment.';
    END IF;
    -- A key is compared as text; only types whose text form ignores session settings qualify.
    SELECT k.attname, format_type(k.atttypid, k.atttypmod) AS type INTO bad_key
      FROM envsync.key_columns(tbl) k
     WHERE k.atttypid NOT IN ('int2', 'int4', 'int8', 'text', 'varchar', 'uuid')
     ORDER BY k.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'primary key column "%" of table "%" has unsupported type %',
                        bad_key.attname, tbl, bad_key.type
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Key columns must be smallint, integer, bigint, text, varchar or uuid.';
    END IF;
    IF filter_column IS NOT NULL AND NOT EXISTS (
           SELECT FROM pg_attribute
            WHERE attrelid = tbl AND attname = filter_column AND NOT attisdropped
              AND atttypid IN ('text'::regtype, 'varchar'::regtype)) THEN
        RAISE EXCEPTION 'table "%" has no text column "%" to filter on', tbl, filter_column
            USING ERRCODE = 'undefined_column';
    END IF;
END
$$;

CREATE TABLE envsync.link_roles (
    role_name name PRIMARY KEY
);
COMMENT ON TABLE envsync.link_roles IS 'Roles other environments reach this one as (sync_grant_link)';

-- The tables this environment's administrator opened to each link role (sync_grant_link): the
-- only ones another environment may track, read and write here.
CREATE TABLE envsync.link_tables (
    role_name name NOT NULL REFERENCES envsync.link_roles ON DELETE CASCADE,
    relid     regclass NOT NULL,
    PRIMARY KEY (role_name, relid)
);
COMMENT ON TABLE envsync.link_tables IS 'Tables opened to synchronization by each link role (sync_grant_link)';

-- Reading a synced table (table_read.cpp runs the query as the table's owner): who may read
-- which table, as whom, and the query. Another environment's link role reads only the tables
-- opened to it. what: 'hashes' (key as text: a single key column's, else the text[] form, and
-- content hash of every synced row) or 'rows' (key text[], hash and the row as JSON, of the rows
-- whose keys, each the text of its text[] form, are in $1; all rows when $1 is NULL).
CREATE FUNCTION envsync.readable_table(table_id integer, what text, OUT owner oid, OUT query text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t envsync.tracked_tables;
    key_text text;
    key_array text;
    key_match text;
    filter text;
BEGIN
    SELECT * INTO t FROM envsync.tracked_tables tt WHERE tt.table_id = readable_table.table_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table id % is not tracked in this database', table_id
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Compare the environments again.';
    END IF;
    IF EXISTS (SELECT FROM envsync.link_roles l WHERE l.role_name = session_user)
       AND NOT EXISTS (SELECT FROM envsync.link_tables lt WHERE lt.role_name = session_user AND lt.relid = t.relid) THEN
        RAISE EXCEPTION 'table % is not open to synchronization by role "%" in this database', t.relid, session_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Here, run SELECT sync_grant_link(%L, ARRAY[%L]::regclass[]);', session_user, t.relid::text);
    END IF;
    owner := (SELECT c.relowner FROM pg_class c WHERE c.oid = t.relid);
    SELECT CASE WHEN count(*) = 1 THEN format('t.%I::text', min(k.attname))
                ELSE format('ARRAY[%s]::text', string_agg(format('t.%I::text', k.attname), ', ' ORDER BY k.ord)) END,
           format('ARRAY[%s]', string_agg(format('t.%I::text', k.attname), ', ' ORDER BY k.ord)),
           -- each key column by the index (= ANY of its values), then the exact keys
           string_agg(format('t.%I = ANY (ARRAY(SELECT (lit::text[])[%s]::%s FROM unnest($1) AS lit))',
                             k.attname, k.ord, format_type(k.atttypid, -1)), ' AND ' ORDER BY k.ord)
      INTO key_text, key_array, key_match
      FROM envsync.key_columns(t.relid) k;
    filter := CASE WHEN t.filter_column IS NOT NULL
                   THEN format(' AND t.%I LIKE %L', t.filter_column, t.filter_pattern) ELSE '' END;
    query := CASE what
        WHEN 'hashes' THEN format('SELECT %s AS key, envsync.row_hash(t) AS hash FROM %s t WHERE true%s',
                                  key_text, t.relid, filter)
        WHEN 'rows' THEN format('SELECT %s AS key, envsync.row_hash(t) AS hash, envsync.row_json(t) AS row FROM %s t '
                                'WHERE ($1 IS NULL OR %s AND %s::text = ANY ($1))%s',
                                key_array, t.relid, key_match, key_array, filter) END;
END
$$;
COMMENT ON FUNCTION envsync.readable_table(integer, text) IS
    'Who may read a synced table (another environment only the tables opened to it), as which owner, with which query';

CREATE FUNCTION envsync.table_hashes(table_id integer) RETURNS TABLE (key text, hash bigint)
    AS 'MODULE_PATHNAME', 'envsync_table_hashes' LANGUAGE C STRICT;
COMMENT ON FUNCTION envsync.table_hashes(integer) IS
    'Key and content hash of every synced row of a tracked table, read as the table''s owner';

CREATE FUNCTION envsync.table_rows(table_id integer, keys text[]) RETURNS TABLE (key text[], hash bigint, "row" jsonb)
    AS 'MODULE_PATHNAME', 'envsync_table_rows' LANGUAGE C CALLED ON NULL INPUT;
COMMENT ON FUNCTION envsync.table_rows(integer, text[]) IS
    'The synced rows of a tracked table with the given keys (all if NULL), read as the table''s owner';

-- What another environment reads in a full comparison: each server hashes its own rows. A query
-- for one table_id reads that table only; nothing here depends on the synced tables themselves.
CREATE VIEW envsync.row_hashes AS
    SELECT t.table_id, h.key, h.hash
      FROM envsync.tracked_tables t CROSS JOIN LATERAL envsync.table_hashes(t.table_id) h;
COMMENT ON VIEW envsync.row_hashes IS 'Key and content hash of every synced row, by tracked table';

-- What another environment reads of particular records: it inserts the table's id and the keys,
-- and the trigger answers in the returned row (RETURNING rows: a JSON array of {key, hash, row}).
-- Nothing is stored: it is a view.
CREATE VIEW envsync.read_requests AS
    SELECT NULL::integer AS table_id, NULL::text[] AS keys, NULL::jsonb AS rows WHERE false;
COMMENT ON VIEW envsync.read_requests IS
    'Requests for the synced rows of a table with given keys, answered in the returned row (nothing is stored)';
CREATE FUNCTION envsync.read_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.rows := (SELECT coalesce(jsonb_agg(jsonb_build_object('key', r.key, 'hash', r.hash, 'row', r.row)), '[]')
                   FROM envsync.table_rows(NEW.table_id, NEW.keys) r);
    RETURN NEW;
END
$$;
CREATE TRIGGER read_request INSTEAD OF INSERT ON envsync.read_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.read_request();

-- Tracking is switched on by inserting a request: PROD does so in its own database and, through
-- postgres_fdw, in every other environment's, so nobody has to log in to TEST to configure it.
-- The trigger answers through the returned row (RETURNING table_id, shape).
CREATE TABLE envsync.track_requests (
    request_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name    name NOT NULL,
    table_name     name NOT NULL,
    filter_column  name,
    filter_pattern text,
    table_id       integer,  -- answer: the table's id in this database
    shape          jsonb,    -- answer: envsync.table_shape() of the table here
    requested_at   timestamptz NOT NULL DEFAULT now(),
    requested_by   name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE envsync.track_requests IS 'Requests to track a table in this database, answered by the insert trigger';

-- The lock timeout turns a wait that nothing could end into an error: PROD's transaction may
-- hold these locks through another connection (two environments naming the same database).
CREATE FUNCTION envsync.track_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '10s' AS $$
DECLARE
    tbl regclass := to_regclass(format('%I.%I', NEW.schema_name, NEW.table_name));
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table "%.%" does not exist', NEW.schema_name, NEW.table_name
            USING ERRCODE = 'undefined_table';
    END IF;
    -- Another environment tracks here only the tables opened to it (sync_grant_link).
    IF EXISTS (SELECT FROM envsync.link_roles l WHERE l.role_name = session_user)
       AND NOT EXISTS (SELECT FROM envsync.link_tables lt WHERE lt.role_name = session_user AND lt.relid = tbl) THEN
        RAISE EXCEPTION 'table % is not open to synchronization by role "%" in this database', tbl, session_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Here, run SELECT sync_grant_link(%L, ARRAY[%L]::regclass[]);', session_user, tbl::text);
    END IF;
    PERFORM envsync.check_trackable(tbl, NEW.filter_column, NEW.filter_pattern);
    INSERT INTO envsync.tracked_tables AS t (relid, filter_column, filter_pattern)
    VALUES (tbl, NEW.filter_column, NEW.filter_pattern)
    ON CONFLICT (relid) DO UPDATE
       SET filter_column = EXCLUDED.filter_column, filter_pattern = EXCLUDED.filter_pattern
    RETURNING t.table_id INTO NEW.table_id;
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'envsync_track') THEN
        EXECUTE format('CREATE TRIGGER envsync_track AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION envsync.track_change()', tbl);
        EXECUTE format('CREATE TRIGGER envsync_track_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION envsync.track_change()', tbl);
        -- ALWAYS: writes made with session_replication_role = replica are content changes too.
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER envsync_track, '
                       'ENABLE ALWAYS TRIGGER envsync_track_truncate', tbl);
    END IF;
    NEW.shape := envsync.table_shape(tbl);
    RETURN NEW;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'could not lock the tracking configuration of table "%"', tbl
        USING ERRCODE = 'lock_not_available',
              DETAIL = 'Another configuration change holds it: running now, or through another environment that names this same database.',
              HINT = 'Give each environment its own database; otherwise try again.';
END
$$;
CREATE TRIGGER track_request BEFORE INSERT ON envsync.track_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.track_request();

-- What was tracked, per record: the writes since a comparison last took the changes in.
CREATE VIEW envsync.tracked_changes AS
    SELECT t.relid AS table_name,
           l.key,
           bool_or(l.kind = 'I') AS inserted,
           bool_or(l.kind = 'U') AS updated,
           bool_or(l.kind = 'D') AS deleted,
           bool_and(l.applied) AS by_envsync,   -- every write came from envsync's own apply
           count(*) AS writes,
           min(l.at) AS first_change_at,
           max(l.at) AS last_change_at
      FROM envsync.row_log l
      JOIN envsync.tracked_tables t USING (table_id)
     GROUP BY t.relid, l.key;
COMMENT ON VIEW envsync.tracked_changes IS
    'Records written since their changes were last taken in: how (inserted, updated, deleted), when, and whether by users or by envsync';

-- A dropped table is no longer tracked: its module loses it.
-- It runs for every role's DROP, so it runs as envsync's owner: a role with no rights on envsync
-- drops its own tables as it always could.
CREATE FUNCTION envsync.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('envsync.tracked_tables') IS NULL THEN  -- envsync itself is being dropped
        RETURN;
    END IF;
    DELETE FROM envsync.link_tables t
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.relid;
    DELETE FROM envsync.tracked_tables t
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.relid;
END
$$;
CREATE EVENT TRIGGER envsync_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION envsync.forget_dropped_tables();
