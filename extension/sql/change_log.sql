-- Reading the change logs and compacting them. Per pair of environments and table, the sync
-- point says how far each side's log was taken in (the pg_snapshot of each side's log seen by
-- the last comparison); the records not known to be in sync carry the edits each side made
-- since they were last in sync. A log entry is removed once every pair has taken it in.

CREATE TABLE IF NOT EXISTS envsync.sync_points (
    env_a      text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    env_b      text NOT NULL REFERENCES envsync.environments ON DELETE CASCADE,
    table_id   integer NOT NULL REFERENCES envsync.tracked_tables ON DELETE CASCADE,
    snapshot_a pg_snapshot NOT NULL,
    snapshot_b pg_snapshot NOT NULL,
    taken_at   timestamptz NOT NULL,
    PRIMARY KEY (env_a, env_b, table_id),
    CHECK (env_a < env_b)
);
COMMENT ON TABLE envsync.sync_points IS 'Per pair of environments and table: how far their change logs were taken in';
COMMENT ON COLUMN envsync.sync_points.env_a IS 'One environment of the pair (the lesser name)';
COMMENT ON COLUMN envsync.sync_points.env_b IS 'The other environment (the greater name)';
COMMENT ON COLUMN envsync.sync_points.table_id IS 'The table';
COMMENT ON COLUMN envsync.sync_points.snapshot_a IS 'The log entries of env_a taken in: those visible in this snapshot';
COMMENT ON COLUMN envsync.sync_points.snapshot_b IS 'The log entries of env_b taken in';
COMMENT ON COLUMN envsync.sync_points.taken_at IS 'When';

-- Records of a pair not known to be in sync: they differed at the last comparison, or were
-- written since. The edits are users' writes in each environment since the record was last in
-- sync; an edit of the target makes a conflict.
CREATE TABLE IF NOT EXISTS envsync.unsynced (
    env_a       text NOT NULL,
    env_b       text NOT NULL,
    table_id    integer NOT NULL,
    key         text[] NOT NULL,
    a_created   boolean NOT NULL DEFAULT false,
    a_changed   boolean NOT NULL DEFAULT false,
    a_deleted   boolean NOT NULL DEFAULT false,
    a_edited_at timestamptz,
    b_created   boolean NOT NULL DEFAULT false,
    b_changed   boolean NOT NULL DEFAULT false,
    b_deleted   boolean NOT NULL DEFAULT false,
    b_edited_at timestamptz,
    PRIMARY KEY (env_a, env_b, table_id, key),
    FOREIGN KEY (env_a, env_b, table_id) REFERENCES envsync.sync_points ON DELETE CASCADE
);
COMMENT ON TABLE envsync.unsynced IS 'Records of a pair of environments not known to be in sync, with the edits made to them on each side';
COMMENT ON COLUMN envsync.unsynced.env_a IS 'One environment of the pair (the lesser name)';
COMMENT ON COLUMN envsync.unsynced.env_b IS 'The other environment';
COMMENT ON COLUMN envsync.unsynced.table_id IS 'The table';
COMMENT ON COLUMN envsync.unsynced.key IS 'The record''s primary key';
COMMENT ON COLUMN envsync.unsynced.a_created IS 'A user created it in env_a since it was last in sync';
COMMENT ON COLUMN envsync.unsynced.a_changed IS 'A user changed it in env_a';
COMMENT ON COLUMN envsync.unsynced.a_deleted IS 'A user deleted it in env_a';
COMMENT ON COLUMN envsync.unsynced.a_edited_at IS 'The last such edit in env_a';
COMMENT ON COLUMN envsync.unsynced.b_created IS 'A user created it in env_b since it was last in sync';
COMMENT ON COLUMN envsync.unsynced.b_changed IS 'A user changed it in env_b';
COMMENT ON COLUMN envsync.unsynced.b_deleted IS 'A user deleted it in env_b';
COMMENT ON COLUMN envsync.unsynced.b_edited_at IS 'The last such edit in env_b';

-- The users' edits an environment logged for a table between two snapshots (the older one NULL:
-- all of them), one row per record.
CREATE OR REPLACE FUNCTION envsync.logged_edits(env text, tbl regclass, since pg_snapshot, upto pg_snapshot)
RETURNS TABLE (key text[], created boolean, changed boolean, deleted boolean, edited_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM envsync.reading(env, tbl);
    RETURN QUERY EXECUTE format(
        'SELECT key, bool_or(kind = ''I'' AND NOT applied), bool_or(kind = ''U'' AND NOT applied),
                bool_or(kind = ''D'' AND NOT applied), max(at) FILTER (WHERE NOT applied)
           FROM %s
          WHERE table_id = $1 AND pg_visible_in_snapshot(xid, $2)
            AND ($3 IS NULL OR NOT pg_visible_in_snapshot(xid, $3))
            -- the same bounds, as a range of the log''s index
            AND xid < pg_snapshot_xmax($2) AND xid >= coalesce(pg_snapshot_xmin($3), ''0'')
          GROUP BY key', r.log_from)
    USING r.table_id, upto, since;
END
$$;
COMMENT ON FUNCTION envsync.logged_edits(text, regclass, pg_snapshot, pg_snapshot) IS
    'The users'' edits an environment logged for a table between two snapshots, one row per record';

-- Takes in the edits both sides of a pair logged for a table since its sync point, into
-- pg_temp.envsync_edits (made by the comparison; take_in_differences keeps those of the records
-- that still differ), and moves the sync point to the given snapshots. Returns whether the table
-- had no sync point yet (the pair's first comparison of it).
CREATE OR REPLACE FUNCTION envsync.take_in_edits(env_a text, env_b text, tbl regclass, snap_a pg_snapshot,
                                                 snap_b pg_snapshot, at timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id integer := (SELECT t.table_id FROM envsync.tracked_tables t WHERE t.relid = tbl);
    point envsync.sync_points;
BEGIN
    SELECT * INTO point FROM envsync.sync_points sp
     WHERE sp.env_a = take_in_edits.env_a AND sp.env_b = take_in_edits.env_b AND sp.table_id = id;
    INSERT INTO envsync.sync_points AS sp (env_a, env_b, table_id, snapshot_a, snapshot_b, taken_at)
    VALUES (env_a, env_b, id, snap_a, snap_b, at)
    ON CONFLICT ON CONSTRAINT sync_points_pkey DO UPDATE
       SET snapshot_a = EXCLUDED.snapshot_a, snapshot_b = EXCLUDED.snapshot_b, taken_at = EXCLUDED.taken_at;
    TRUNCATE pg_temp.envsync_edits;
    INSERT INTO pg_temp.envsync_edits
    SELECT coalesce(a.key, b.key),
           coalesce(a.created, false), coalesce(a.changed, false), coalesce(a.deleted, false), a.edited_at,
           coalesce(b.created, false), coalesce(b.changed, false), coalesce(b.deleted, false), b.edited_at
      FROM envsync.logged_edits(env_a, tbl, point.snapshot_a, snap_a) a
      FULL JOIN envsync.logged_edits(env_b, tbl, point.snapshot_b, snap_b) b ON a.key = b.key;
    RETURN point IS NULL;
END
$$;
COMMENT ON FUNCTION envsync.take_in_edits(text, text, regclass, pg_snapshot, pg_snapshot, timestamptz) IS
    'Takes in the edits a pair logged for a table since its sync point (into pg_temp.envsync_edits) and moves the sync point';

-- Forgets at most most (NULL: all) of the log entries of a table here (by its id here) that
-- every given snapshot sees, oldest first; returns how many.
CREATE OR REPLACE FUNCTION envsync.forget_entries(table_id integer, taken pg_snapshot[], most integer) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (
        DELETE FROM envsync.row_log l
         WHERE l.ctid = ANY (ARRAY(
                   SELECT x.ctid FROM envsync.row_log x
                    WHERE x.table_id = forget_entries.table_id AND x.xid < pg_snapshot_xmax(taken[1])
                      AND NOT EXISTS (SELECT FROM unnest(taken) s WHERE NOT pg_visible_in_snapshot(x.xid, s))
                    ORDER BY x.xid LIMIT most))
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION envsync.forget_entries(integer, pg_snapshot[], integer) IS
    'Forgets at most so many of the log entries of a table here that every given snapshot sees, oldest first';

-- What another environment asks to compact its log: the entries of a table every given snapshot
-- sees, at most so many, answered with how many were forgotten. Nothing is stored: it is a view.
CREATE OR REPLACE VIEW envsync.compact_requests AS
    SELECT NULL::integer AS table_id, NULL::pg_snapshot[] AS taken, NULL::integer AS most,
           NULL::bigint AS forgotten WHERE false;
COMMENT ON VIEW envsync.compact_requests IS
    'Requests to forget the change log entries of a table that every given snapshot sees, answered in the returned row (nothing is stored)';
COMMENT ON COLUMN envsync.compact_requests.table_id IS 'The table''s id here';
COMMENT ON COLUMN envsync.compact_requests.taken IS 'The snapshots every pair took the log in with';
COMMENT ON COLUMN envsync.compact_requests.most IS 'How many entries at most (NULL: all)';
COMMENT ON COLUMN envsync.compact_requests.forgotten IS 'Answer: how many were forgotten';

CREATE OR REPLACE FUNCTION envsync.compact_request() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.forgotten := envsync.forget_entries(NEW.table_id, NEW.taken, NEW.most);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION envsync.compact_request() IS 'Answers a compact request';
CREATE OR REPLACE TRIGGER compact_request INSTEAD OF INSERT ON envsync.compact_requests
    FOR EACH ROW EXECUTE FUNCTION envsync.compact_request();

-- Forgets the log entries of an environment's table that every pair has taken in: at most
-- most of them (NULL: all), so that a comparison after a burst of writes pays a bounded part
-- and the scheduler the rest. Returns how many.
CREATE OR REPLACE FUNCTION envsync.compact_log(env text, tbl regclass, most integer) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e envsync.environments := (SELECT x FROM envsync.environments x WHERE x.name = env);
    r record;
    taken pg_snapshot[];
    forgotten bigint;
BEGIN
    SELECT * INTO r FROM envsync.reading(env, tbl);
    SELECT array_agg(CASE WHEN sp.env_a = env THEN sp.snapshot_a ELSE sp.snapshot_b END) INTO taken
      FROM envsync.sync_points sp JOIN envsync.tracked_tables t USING (table_id)
     WHERE t.relid = tbl AND env IN (sp.env_a, sp.env_b);
    IF taken IS NULL THEN
        RETURN 0;
    END IF;
    IF e.link_schema IS NULL THEN
        RETURN envsync.forget_entries(r.table_id, taken, most);
    END IF;
    EXECUTE format('INSERT INTO %I.compact_requests (table_id, taken, most) VALUES ($1, $2, $3) RETURNING forgotten',
                   e.link_schema)
       INTO forgotten USING r.table_id, taken, most;
    RETURN forgotten;
END
$$;
COMMENT ON FUNCTION envsync.compact_log(text, regclass, integer) IS
    'Forgets at most so many of the log entries of an environment''s table that every pair has taken in';

-- The scheduler's part: every table's log compacted in full in every environment. An
-- environment that cannot be reached now is left for the next time.
CREATE OR REPLACE FUNCTION envsync.compact_logs() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    x record;
BEGIN
    FOR x IN SELECT e.name, t.relid FROM envsync.environments e
               JOIN envsync.tracked_tables t
                 ON e.server IS NULL OR EXISTS (SELECT FROM envsync.environment_tables et
                                                 WHERE et.environment = e.name AND et.table_id = t.table_id)
              ORDER BY e.name, t.table_id LOOP
        BEGIN
            PERFORM envsync.compact_log(x.name, x.relid, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'the change log of table % in environment "%" was not compacted: %', x.relid, x.name, SQLERRM;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION envsync.compact_logs() IS
    'Compacts the change log of every table in every environment (the scheduler, each minute)';
