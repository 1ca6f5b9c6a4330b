-- The C++/PostgreSQL boundary, both directions, with the test suite's diagnostics library.
\set ECHO none
\i test/selftest/selftest.sql
\set ECHO all
-- A C++ exception thrown under live C++ objects becomes a PostgreSQL ERROR with its SQLSTATE.
SELECT selftest.throw_error('user');
SELECT selftest.throw_error('std');
SELECT selftest.throw_error('bad_alloc');
SELECT selftest.throw_error('other');
-- A PostgreSQL ERROR raised inside C++ code keeps its SQLSTATE, message and context.
SELECT selftest.pg_error('division_by_zero');
SELECT selftest.pg_error('sql');
-- pg_call() nests, and a C++ exception thrown inside one leaves the next ERROR to its own.
SELECT selftest.pg_error('nested');
SELECT selftest.pg_error('after_throw');
-- The SQLSTATE is the one a caller can catch.
DO $$
DECLARE
    state text;
BEGIN
    BEGIN
        PERFORM selftest.throw_error('user');
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE NOTICE 'caught C++ error as invalid_parameter_value';
    END;
    BEGIN
        PERFORM selftest.throw_error('bad_alloc');
    EXCEPTION WHEN out_of_memory THEN
        RAISE NOTICE 'caught std::bad_alloc as out_of_memory';
    END;
    BEGIN
        PERFORM selftest.pg_error('division_by_zero');
    EXCEPTION WHEN division_by_zero THEN
        RAISE NOTICE 'caught PostgreSQL error as division_by_zero';
    END;
    BEGIN
        PERFORM selftest.pg_error('sql');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
        RAISE NOTICE 'caught SPI error with SQLSTATE %', state;
    END;
END
$$;
-- Every C++ object was destroyed on the way out.
SELECT selftest.live_objects() AS live_objects;

-- Many errors in one backend: no C++ object, C++ heap or PostgreSQL memory left behind.
CREATE FUNCTION pg_temp.raise_many_errors(n integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        BEGIN
            PERFORM selftest.throw_error(CASE i % 4 WHEN 0 THEN 'user' WHEN 1 THEN 'std'
                                                      WHEN 2 THEN 'bad_alloc' ELSE 'other' END);
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
        BEGIN
            PERFORM selftest.pg_error(CASE i % 2 WHEN 0 THEN 'division_by_zero' ELSE 'sql' END);
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END LOOP;
END
$$;
CREATE TEMP TABLE before_errors (pid integer, heap_bytes bigint, context_bytes numeric);
INSERT INTO before_errors VALUES (0, 0, 0);
SELECT pg_temp.raise_many_errors(1000);  -- warm the caches first: they grow once, legitimately
UPDATE before_errors
   SET pid = pg_backend_pid(), heap_bytes = selftest.heap_bytes(),
       context_bytes = (SELECT sum(used_bytes) FROM pg_backend_memory_contexts);
SELECT pg_temp.raise_many_errors(10000);
SELECT pid = pg_backend_pid() AS same_backend,
       selftest.live_objects() AS live_objects,
       selftest.heap_bytes() - heap_bytes < 64 * 1024 AS malloc_heap_steady,
       (SELECT sum(used_bytes) FROM pg_backend_memory_contexts) - context_bytes < 256 * 1024 AS contexts_steady
  FROM before_errors;
