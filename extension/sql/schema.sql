\echo Use "CREATE EXTENSION envsync CASCADE" to load this file. \quit

-- envsync's catalog, change tracking and review views live in schema envsync; the user-facing
-- sync_* functions in the extension's schema, so they are callable unqualified after
-- CREATE EXTENSION. The Architecture section of the README says which file holds each step.
CREATE SCHEMA IF NOT EXISTS envsync;
COMMENT ON SCHEMA envsync IS 'envsync: catalog, change tracking and review views';
-- Every role may look names up here (as in pg_catalog): the reads and writes envsync makes as a
-- synced table's owner name envsync.staged_rows, envsync.row_hash and envsync.row_json. What each
-- object allows is its own grant: nothing internal is open to PUBLIC (privileges.sql).
GRANT USAGE ON SCHEMA envsync TO PUBLIC;
