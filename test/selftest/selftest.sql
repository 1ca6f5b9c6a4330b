-- The boundary diagnostics of test/selftest/selftest.cpp, for the pg_regress test "boundary".
CREATE SCHEMA selftest;
CREATE FUNCTION selftest.throw_error(kind text) RETURNS void
    AS '$libdir/envsync_selftest', 'envsync_selftest_throw' LANGUAGE C STRICT;
CREATE FUNCTION selftest.pg_error(kind text) RETURNS integer
    AS '$libdir/envsync_selftest', 'envsync_selftest_pg_error' LANGUAGE C STRICT;
CREATE FUNCTION selftest.live_objects() RETURNS integer
    AS '$libdir/envsync_selftest', 'envsync_selftest_live_objects' LANGUAGE C STRICT;
CREATE FUNCTION selftest.heap_bytes() RETURNS bigint
    AS '$libdir/envsync_selftest', 'envsync_selftest_heap_bytes' LANGUAGE C STRICT;
