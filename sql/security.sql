-- The privilege rules every function and relation of the extension keeps, checked over all of
-- them (pg_depend), so that the next one added cannot break them unnoticed.
CREATE TEMP VIEW envsync_functions AS
    SELECT p.oid::regprocedure AS function, p.prosecdef, p.prokind, l.lanname, p.proconfig, p.proacl
      FROM pg_depend d
      JOIN pg_proc p ON p.oid = d.objid
      JOIN pg_language l ON l.oid = p.prolang
     WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
       AND d.refclassid = 'pg_extension'::regclass
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'envsync');
SELECT count(*) > 50 AS many_functions_checked FROM envsync_functions;

-- Every SECURITY DEFINER function pins search_path to pg_catalog, then pg_temp (searched last,
-- so that the caller's temporary objects cannot stand in for catalogs or envsync's tables).
SELECT function FROM envsync_functions
 WHERE prosecdef AND NOT 'search_path=pg_catalog, pg_temp' = ANY (coalesce(proconfig, '{}'))
 ORDER BY function::text;

-- So does every SQL and PL/pgSQL function, but for three that cannot carry a SET clause: two SQL
-- functions inlined into their callers (which pin it) and the scheduler's procedure, which commits.
SELECT function FROM envsync_functions
 WHERE lanname IN ('sql', 'plpgsql')
   AND NOT 'search_path=pg_catalog, pg_temp' = ANY (coalesce(proconfig, '{}'))
   AND function NOT IN ('envsync.run_writes(bigint)'::regprocedure, 'envsync.run_due_syncs()'::regprocedure,
                        'envsync.change_kind(boolean,boolean,boolean,boolean,boolean,boolean)'::regprocedure)
 ORDER BY function::text;

-- Nothing is executable by PUBLIC (an ACL of NULL means the default, which lets PUBLIC execute),
-- but the content and stored hashes and the JSON form of a row and a key value's text: pure functions, called by the reads
-- and writes envsync makes as the owners of the tables.
SELECT function FROM envsync_functions
 WHERE (proacl IS NULL OR EXISTS (SELECT FROM aclexplode(proacl) a
                                   WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
   AND function NOT IN ('envsync.row_hash(record)'::regprocedure, 'envsync.row_json(record)'::regprocedure,
                        'envsync.stored_hash(record)'::regprocedure, 'envsync.key_text(anyelement)'::regprocedure)
 ORDER BY function::text;

-- Operators may call exactly the operations of the product, nothing internal.
SELECT function FROM envsync_functions
 WHERE has_function_privilege('envsync_operator', function, 'EXECUTE')
 ORDER BY function::text;

-- No table, view or sequence is open to PUBLIC but the staged records, which show each role
-- only the rows of its own tables, and only inside the applying transaction.
SELECT c.oid::regclass AS relation, a.privilege_type
  FROM pg_depend d
  JOIN pg_class c ON c.oid = d.objid
 CROSS JOIN LATERAL aclexplode(c.relacl) a
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'envsync')
   AND a.grantee = 0 AND c.oid <> 'envsync.staged_rows'::regclass
 ORDER BY relation::text, privilege_type;
SELECT relname, relkind, reloptions FROM pg_class WHERE oid = 'envsync.staged_rows'::regclass;

-- The setting that marks writes as envsync's own can be changed by superusers only.
SELECT envsync.row_hash(ROW(1)) IS NOT NULL AS library_loaded;
CREATE ROLE envsync_regress_nobody;
SET ROLE envsync_regress_nobody;
SET envsync.applying = on;
RESET ROLE;
DROP ROLE envsync_regress_nobody;
