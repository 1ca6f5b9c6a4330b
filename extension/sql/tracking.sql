-- Change tracking, in every environment: which tables are tracked, the change log the C++
-- trigger (change_trigger.cpp) appends to, and how tracking is switched on, also on request of
-- another environment.

CREATE TABLE IF NOT EXISTS envsync.tracked_tables (
    table_id       integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid          regclass NOT NULL UNIQUE,
    filter_column  name,     -- only rows whose filter_column LIKE filter_pattern are synced
    filter_pattern text,
    tracked_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((filter_column IS NULL) = (filter_pattern IS NULL))
);
COMMENT ON TABLE envsync.tracked_tables IS 'Tables whose writes this database records in envsync.row_log';
COMMENT ON COLUMN envsync.tracked_tables.table_id IS 'The table''s id in this database (another environment knows it by it)';
COMMENT ON COLUMN envsync.tracked_tables.relid IS 'The table';
COMMENT ON COLUMN envsync.tracked_tables.filter_column IS 'Only rows whose column is LIKE filter_pattern are synced (system settings)';
COMMENT ON COLUMN envsync.tracked_tables.filter_pattern IS 'The LIKE pattern of the row filter';
COMMENT ON COLUMN envsync.tracked_tables.tracked_at IS 'Since when its writes are tracked';

-- Appended to by envsync.track_change() straight to the heap and its indexes: plain indexes
-- only, no trigger, no default (the trigger checks). Entries are removed once every pair has
-- taken them in.
CREATE TABLE IF NOT EXISTS envsync.row_log (
    table_id integer NOT NULL,
    key      text[] NOT NULL,     -- the record's primary key, each column as text
    kind     "char" NOT NULL,     -- I inserted, U updated, D deleted
    applied  boolean NOT NULL,    -- written by envsync's apply, not by a user
    xid      xid8 NOT NULL,       -- writing transaction
    at       timestamptz NOT NULL -- start of the writing statement
);
COMMENT ON TABLE envsync.row_log IS 'One entry per write to a tracked table since the changes were last taken in by a comparison';
COMMENT ON COLUMN envsync.row_log.table_id IS 'The table written (envsync.tracked_tables)';
COMMENT ON COLUMN envsync.row_log.key IS 'The record''s primary key, each column as text';
COMMENT ON COLUMN envsync.row_log.kind IS 'I inserted, U updated, D deleted (a changed key: D of the old, I of the new)';
COMMENT ON COLUMN envsync.row_log.applied IS 'Written by envsync''s own apply, not by a user';
COMMENT ON COLUMN envsync.row_log.xid IS 'The writing transaction';
COMMENT ON COLUMN envsync.row_log.at IS 'Start of the writing statement';
-- A comparison reads, and a compaction removes, one table's entries of the transactions after a
-- snapshot: a range of this index, whatever the log held before (and how much of it is dead).
CREATE INDEX IF NOT EXISTS row_log_table_id_xid_idx ON envsync.row_log (table_id, xid);
COMMENT ON INDEX envsync.row_log_table_id_xid_idx IS 'A table''s log entries by writing transaction';

CREATE OR REPLACE FUNCTION envsync.track_change() RETURNS trigger
    AS 'MODULE_PATHNAME', 'envsync_track_change' LANGUAGE C;
COMMENT ON FUNCTION envsync.track_change() IS 'Change-tracking trigger installed by envsync on every synced table';

-- What PROD checks before comparing: is each table still the same here.
CREATE OR REPLACE VIEW envsync.tracked_shapes AS
    SELECT table_id, envsync.table_shape(relid) AS shape FROM envsync.tracked_tables;
COMMENT ON VIEW envsync.tracked_shapes IS 'Columns and key of each tracked table';
COMMENT ON COLUMN envsync.tracked_shapes.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.tracked_shapes.shape IS 'Its columns and key (envsync.table_shape)';

-- Refuses, with the reason, a table envsync cannot or must not synchronize.
CREATE OR REPLACE FUNCTION envsync.check_trackable(tbl regclass, filter_column name, filter_pattern text)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    denied text;
    bad_key record;
BEGIN
    SELECT n.reason INTO denied FROM envsync.never_synced n
      JOIN pg_class c ON envsync.never_synced_match(c.relname, n.table_name) WHERE c.oid = tbl
     ORDER BY n.table_name LIMIT 1;
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
    -- A partition's rows are synchronized with its partitioned table, which tracks them all.
    IF (SELECT relispartition FROM pg_class WHERE oid = tbl) THEN
        RAISE EXCEPTION 'table "%" is a partition of table "%"', tbl,
                        (SELECT i.inhparent::regclass FROM pg_inherits i WHERE i.inhrelid = tbl)
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Synchronize the partitioned table: its partitions come with it.';
    END IF;
    -- Inheritance (not partitioning): a parent's reads would include its children's rows.
    IF EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE (i.inhparent = tbl OR i.inhrelid = tbl) AND NOT c.relispartition) THEN
        RAISE EXCEPTION 'table "%" takes part in table inheritance', tbl
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A parent''s rows and its children''s cannot be told apart by key.',
                  HINT = 'Synchronize tables without inheritance, or partitioned tables.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_index WHERE indrelid = tbl AND indisprimary) THEN
        RAISE EXCEPTION 'table "%" has no primary key', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Records are matched between environments by their primary key.',
                  HINT = 'Add a primary key to the table in every environment.';
    END IF;
    -- A key is compared as text, made with the session settings pinned (envsync.key_text):
    -- types whose text is one per value, read back exactly.
    SELECT k.attname, format_type(k.atttypid, k.atttypmod) AS type INTO bad_key
      FROM envsync.key_columns(tbl) k
     WHERE k.atttypid NOT IN ('int2', 'int4', 'int8', 'text', 'varchar', 'bpchar', 'uuid', 'numeric', 'bool',
                              'date', 'timestamp', 'timestamptz')
     ORDER BY k.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'primary key column "%" of table "%" has unsupported type %',
                        bad_key.attname, tbl, bad_key.type
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Key columns must be smallint, integer, bigint, numeric, boolean, text, varchar, char, uuid, date, timestamp or timestamptz.';
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
COMMENT ON FUNCTION envsync.check_trackable(regclass, name, text) IS
    'Refuses, with the reason, a table envsync cannot or must not synchronize';

-- The TRUNCATE trigger of a tracked table and of each of its partitions (a statement trigger
-- is not inherited by partitions; TRUNCATE of a partitioned table fires every partition's).
-- A new partition inherits the row trigger, which PostgreSQL allows only to a role that may
-- execute its function: the owner of a partitioned table may (it logs nothing for a table
-- envsync does not track).
CREATE OR REPLACE FUNCTION envsync.track_truncates(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part regclass;
    owner name := (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = tbl);
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) = 'p'
       AND NOT has_function_privilege(owner, 'envsync.track_change()', 'EXECUTE') THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION envsync.track_change() TO %I', owner);
    END IF;
    -- pg_partition_tree() lists nothing for a table that is not partitioned
    FOR part IN SELECT x.relid FROM (SELECT tbl AS relid, 0 AS level UNION
                                     SELECT p.relid, p.level FROM pg_partition_tree(tbl) p) x
                 ORDER BY x.level, x.relid LOOP
        -- checked one by one: the ALTER TABLE below runs envsync_track_new_partitions again
        CONTINUE WHEN EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = part AND g.tgname = 'envsync_track_truncate');
        EXECUTE format('CREATE TRIGGER envsync_track_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION envsync.track_change()', part);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER envsync_track_truncate', part);
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.track_truncates(regclass) IS
    'Installs the TRUNCATE tracking trigger on a tracked table and on each of its partitions';

-- Records the table as tracked and installs its triggers (once); returns its id here.
CREATE OR REPLACE FUNCTION envsync.track_table(tbl regclass, filter_column name, filter_pattern text)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id integer;
BEGIN
    PERFORM envsync.check_trackable(tbl, filter_column, filter_pattern);
    INSERT INTO envsync.tracked_tables AS t (relid, filter_column, filter_pattern)
    VALUES (tbl, filter_column, filter_pattern)
    ON CONFLICT (relid) DO UPDATE
       SET filter_column = EXCLUDED.filter_column, filter_pattern = EXCLUDED.filter_pattern
    RETURNING t.table_id INTO id;
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'envsync_track') THEN
        EXECUTE format('CREATE TRIGGER envsync_track AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION envsync.track_change()', tbl);
        -- ALWAYS: writes made with session_replication_role = replica are content changes too.
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER envsync_track', tbl);
    END IF;
    PERFORM envsync.track_truncates(tbl);
    RETURN id;
END
$$;
COMMENT ON FUNCTION envsync.track_table(regclass, name, text) IS
    'Tracks a table in this database (its triggers, its row filter) and returns its id here';

-- Tracking is switched on by inserting a request: PROD does so in its own database and, through
-- postgres_fdw, in every other environment's, so nobody has to log in to TEST to configure it.
-- The trigger answers through the returned row (RETURNING table_id, shape).
CREATE TABLE IF NOT EXISTS envsync.track_requests (
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
COMMENT ON COLUMN envsync.track_requests.request_id IS 'The request';
COMMENT ON COLUMN envsync.track_requests.schema_name IS 'The table''s schema';
COMMENT ON COLUMN envsync.track_requests.table_name IS 'The table''s name';
COMMENT ON COLUMN envsync.track_requests.filter_column IS 'Its row filter''s column, if any';
COMMENT ON COLUMN envsync.track_requests.filter_pattern IS 'Its row filter''s LIKE pattern';
COMMENT ON COLUMN envsync.track_requests.table_id IS 'Answer: the table''s id in this database';
COMMENT ON COLUMN envsync.track_requests.shape IS 'Answer: the table''s columns and key here';
COMMENT ON COLUMN envsync.track_requests.requested_at IS 'When';
COMMENT ON COLUMN envsync.track_requests.requested_by IS 'The role that asked (a link role, or this database''s own)';

-- The lock timeout turns a wait that nothing could end into an error: PROD's transaction may
-- hold these locks through another connection (two environments naming the same database).
CREATE OR REPLACE FUNCTION envsync.track_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '10s' AS $$
DECLARE
    tbl regclass := to_regclass(format('%I.%I', NEW.schema_name, NEW.table_name));
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table "%.%" does not exist', NEW.schema_name, NEW.table_name
            USING ERRCODE = 'undefined_table';
    END IF;
    PERFORM envsync.require_open_table(tbl);
    NEW.table_id := envsync.track_table(tbl, NEW.filter_column, NEW.filter_pattern);
    NEW.shape := envsync.table_shape(tbl);
    RETURN NEW;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'could not lock the tracking configuration of table "%"', tbl
        USING ERRCODE = 'lock_not_available',
              DETAIL = 'Another configuration change holds it: running now, or through another environment that names this same database.',
              HINT = 'Give each environment its own database; otherwise try again.';
END
$$;
COMMENT ON FUNCTION envsync.track_request() IS 'Answers a track request: tracks the table, returns its id and shape';
CREATE OR REPLACE TRIGGER track_request BEFORE INSERT ON envsync.track_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.track_request();

-- Stops tracking a table here: its triggers and its log entries go with its record.
CREATE OR REPLACE FUNCTION envsync.untrack_table(id integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass := (SELECT t.relid FROM envsync.tracked_tables t WHERE t.table_id = id);
BEGIN
    IF tbl IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS envsync_track ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS envsync_track_truncate ON %s', tbl);
    DELETE FROM envsync.row_log l WHERE l.table_id = id;
    DELETE FROM envsync.tracked_tables t WHERE t.table_id = id;
END
$$;
COMMENT ON FUNCTION envsync.untrack_table(integer) IS 'Stops tracking a table here: triggers, log entries and record removed';

-- Tracking is switched off the same way, once PROD synchronizes the table in no module; the
-- request is answered and not kept.
CREATE TABLE IF NOT EXISTS envsync.untrack_requests (
    table_id integer NOT NULL
);
COMMENT ON TABLE envsync.untrack_requests IS 'Requests to stop tracking a table in this database (answered by the insert trigger, not kept)';
COMMENT ON COLUMN envsync.untrack_requests.table_id IS 'The table''s id in this database';

CREATE OR REPLACE FUNCTION envsync.untrack_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '10s' AS $$
DECLARE
    tbl regclass := (SELECT t.relid FROM envsync.tracked_tables t WHERE t.table_id = NEW.table_id);
BEGIN
    IF tbl IS NOT NULL THEN
        PERFORM envsync.require_open_table(tbl);
        PERFORM envsync.untrack_table(NEW.table_id);
    END IF;
    RETURN NULL;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'could not lock table "%" to stop tracking it', tbl
        USING ERRCODE = 'lock_not_available', HINT = 'Another session holds a lock on it; try again.';
END
$$;
COMMENT ON FUNCTION envsync.untrack_request() IS 'Answers an untrack request: stops tracking the table here';
CREATE OR REPLACE TRIGGER untrack_request BEFORE INSERT ON envsync.untrack_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.untrack_request();

-- What was tracked, per record: the writes since a comparison last took the changes in.
CREATE OR REPLACE VIEW envsync.tracked_changes AS
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
COMMENT ON COLUMN envsync.tracked_changes.table_name IS 'The table';
COMMENT ON COLUMN envsync.tracked_changes.key IS 'The record''s primary key';
COMMENT ON COLUMN envsync.tracked_changes.inserted IS 'It was inserted';
COMMENT ON COLUMN envsync.tracked_changes.updated IS 'It was updated';
COMMENT ON COLUMN envsync.tracked_changes.deleted IS 'It was deleted';
COMMENT ON COLUMN envsync.tracked_changes.by_envsync IS 'Every write came from envsync''s own apply';
COMMENT ON COLUMN envsync.tracked_changes.writes IS 'How many writes';
COMMENT ON COLUMN envsync.tracked_changes.first_change_at IS 'The first write';
COMMENT ON COLUMN envsync.tracked_changes.last_change_at IS 'The last write';

-- A dropped table is no longer tracked: its module loses it. It runs for every role's DROP, so
-- it runs as envsync's owner: a role with no rights on envsync drops its own tables as always.
CREATE OR REPLACE FUNCTION envsync.forget_dropped_tables() RETURNS event_trigger
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
COMMENT ON FUNCTION envsync.forget_dropped_tables() IS 'Forgets the tracking of dropped tables (event trigger)';
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'envsync_forget_dropped_tables') THEN
        CREATE EVENT TRIGGER envsync_forget_dropped_tables ON sql_drop
            EXECUTE FUNCTION envsync.forget_dropped_tables();
    END IF;
END
$$;

-- A partition created or attached later is tracked with its partitioned table: its TRUNCATE
-- trigger is installed at once (the row trigger is inherited), and a new owner of the
-- partitioned table may give it partitions. It runs for every role's DDL,
-- as envsync's owner, like envsync_forget_dropped_tables.
CREATE OR REPLACE FUNCTION envsync.track_new_partitions() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass;
BEGIN
    IF to_regclass('envsync.tracked_tables') IS NULL THEN
        RETURN;
    END IF;
    FOR tbl IN SELECT t.relid FROM envsync.tracked_tables t JOIN pg_class c ON c.oid = t.relid
                WHERE c.relkind = 'p' LOOP
        PERFORM envsync.track_truncates(tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.track_new_partitions() IS 'Tracks the TRUNCATE of new partitions of tracked tables (event trigger)';
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'envsync_track_new_partitions') THEN
        CREATE EVENT TRIGGER envsync_track_new_partitions ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
            EXECUTE FUNCTION envsync.track_new_partitions();
    END IF;
END
$$;
