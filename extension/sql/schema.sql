\echo Use "CREATE EXTENSION envsync CASCADE" to load this file. \quit

-- Internal tables and views live in schema envsync; the user-facing sync_* functions in the
-- extension's schema, so they are callable unqualified after CREATE EXTENSION.
CREATE SCHEMA envsync;
COMMENT ON SCHEMA envsync IS 'envsync: catalog, change tracking and review views';
REVOKE ALL ON SCHEMA envsync FROM PUBLIC;

-- What a remote environment's envsync reports about itself (read by sync_add_environment).
-- snapshot: what this database's transaction sees (postgres_fdw reads a remote database in one
-- repeatable-read transaction, so it also tells which logged changes the same reads see).
CREATE VIEW envsync.about AS
    SELECT e.extversion AS version, current_database() AS database_name,
           pg_catalog.pg_current_snapshot() AS snapshot
      FROM pg_catalog.pg_extension e WHERE e.extname = 'envsync';
COMMENT ON VIEW envsync.about IS 'envsync version installed in this database';
