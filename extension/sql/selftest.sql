-- Diagnostics proving the C++/PostgreSQL boundary (used by the test suite; superuser only).
CREATE FUNCTION envsync.selftest_throw(kind text) RETURNS void
    AS 'MODULE_PATHNAME', 'envsync_selftest_throw' LANGUAGE C STRICT;
CREATE FUNCTION envsync.selftest_pg_error(kind text) RETURNS integer
    AS 'MODULE_PATHNAME', 'envsync_selftest_pg_error' LANGUAGE C STRICT;
CREATE FUNCTION envsync.selftest_live_objects() RETURNS integer
    AS 'MODULE_PATHNAME', 'envsync_selftest_live_objects' LANGUAGE C STRICT;
CREATE FUNCTION envsync.selftest_heap_bytes() RETURNS bigint
    AS 'MODULE_PATHNAME', 'envsync_selftest_heap_bytes' LANGUAGE C STRICT;
