\echo Use "CREATE EXTENSION envsync CASCADE" to load this file. \quit

-- Internal tables and views live in schema envsync; the user-facing sync_* functions in the
-- extension's schema, so they are callable unqualified after CREATE EXTENSION.
CREATE SCHEMA envsync;
COMMENT ON SCHEMA envsync IS 'envsync: catalog, change tracking and review views';
-- Every role may look names up here (as in pg_catalog): an apply's write statement runs as the
-- owner of the tables it writes and names envsync.staged_rows and envsync.row_hash. What each
-- object allows is its own grant: nothing internal is open to PUBLIC (roles.sql).
GRANT USAGE ON SCHEMA envsync TO PUBLIC;

-- What a remote environment's envsync reports about itself (read by sync_add_environment).
-- snapshot: what this database's transaction sees (postgres_fdw reads a remote database in one
-- repeatable-read transaction, so it also tells which logged changes the same reads see).
CREATE VIEW envsync.about AS
    SELECT e.extversion AS version, current_database() AS database_name,
           pg_catalog.pg_current_snapshot() AS snapshot
      FROM pg_catalog.pg_extension e WHERE e.extname = 'envsync';
COMMENT ON VIEW envsync.about IS 'envsync version installed in this database';
