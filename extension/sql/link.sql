-- The link: what another environment may do here. PROD's user mapping logs in to this database
-- as a link role; this database's administrator opens tables to it with sync_grant_link. The
-- link role has no privilege on those tables: it asks envsync (track, read, cascade and apply requests),
-- whose triggers read and write them as each table's owner.

CREATE TABLE IF NOT EXISTS envsync.link_roles (
    role_name name PRIMARY KEY
);
COMMENT ON TABLE envsync.link_roles IS 'Roles other environments reach this one as (sync_grant_link)';
COMMENT ON COLUMN envsync.link_roles.role_name IS 'The role of another environment''s user mapping';

-- The tables this environment's administrator opened to each link role (sync_grant_link): the
-- only ones another environment may track, read and write here.
CREATE TABLE IF NOT EXISTS envsync.link_tables (
    role_name name NOT NULL REFERENCES envsync.link_roles ON DELETE CASCADE,
    relid     regclass NOT NULL,
    PRIMARY KEY (role_name, relid)
);
COMMENT ON TABLE envsync.link_tables IS 'Tables opened to synchronization by each link role (sync_grant_link)';
COMMENT ON COLUMN envsync.link_tables.role_name IS 'The link role';
COMMENT ON COLUMN envsync.link_tables.relid IS 'A table it may have tracked, read and written';

-- Refuses a table not opened to the session's link role (any table to other roles: they reach
-- envsync's requests only as this database's own administrators).
CREATE OR REPLACE FUNCTION envsync.require_open_table(tbl regclass) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM envsync.link_roles l WHERE l.role_name = session_user)
       AND NOT EXISTS (SELECT FROM envsync.link_tables lt WHERE lt.role_name = session_user AND lt.relid = tbl) THEN
        RAISE EXCEPTION 'table % is not open to synchronization by role "%" in this database', tbl, session_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Here, run SELECT sync_grant_link(%L, ARRAY[%L]::regclass[]);', session_user, tbl::text);
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.require_open_table(regclass) IS
    'Refuses a table not opened to the session''s link role with sync_grant_link';

-- Run in every non-production environment, for the role its user mapping on PROD uses, with the
-- tables PROD may synchronize here (again for tables added later).
CREATE OR REPLACE FUNCTION sync_grant_link(role_name regrole, tables regclass[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link name := (SELECT r.rolname FROM pg_roles r WHERE r.oid = role_name);
    tbl regclass;
BEGIN
    IF link IS NULL THEN
        RAISE EXCEPTION 'a link role is required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO envsync.link_roles VALUES (link) ON CONFLICT DO NOTHING;
    EXECUTE format('GRANT SELECT ON envsync.about, envsync.tracked_shapes, envsync.row_hashes, envsync.row_buckets TO %I',
                   link);
    EXECUTE format('GRANT SELECT, DELETE ON envsync.row_log TO %I', link);
    EXECUTE format('GRANT SELECT, INSERT ON envsync.track_requests, envsync.apply_requests, envsync.read_requests, '
                   'envsync.bucket_requests, envsync.cascade_requests, envsync.compact_requests TO %I', link);
    EXECUTE format('GRANT INSERT ON envsync.untrack_requests TO %I', link);
    EXECUTE format('GRANT INSERT ON envsync.apply_stage TO %I', link);
    -- called by the views it reads
    EXECUTE format('GRANT EXECUTE ON FUNCTION envsync.table_shape(regclass), envsync.key_columns(regclass), '
                   'envsync.table_hashes(integer), envsync.table_buckets(integer, integer), '
                   'envsync.readable_table(integer, text) TO %I', link);
    FOREACH tbl IN ARRAY coalesce(tables, '{}') LOOP
        PERFORM envsync.check_trackable(tbl, NULL, NULL);
        INSERT INTO envsync.link_tables (role_name, relid) VALUES (link, tbl) ON CONFLICT DO NOTHING;
    END LOOP;
END
$$;
COMMENT ON FUNCTION sync_grant_link(regrole, regclass[]) IS
    'Lets the role of PROD''s user mapping reach envsync here and opens the given tables to synchronization (run in TEST)';
