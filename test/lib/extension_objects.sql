-- Everything the envsync extension owns in this database, one line per fact, in a stable order:
-- its members with their definitions, columns, constraints, indexes, triggers, policies, access
-- rights and comments. Two databases print the same lines exactly when the extension's objects
-- are the same (the upgrade test compares an upgraded database with a fresh install).
WITH members AS (
    SELECT d.classid, d.objid
      FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'envsync'
), rels AS (
    SELECT c.oid, c.oid::regclass::text AS name, c.relkind, c.relacl, c.relrowsecurity, c.reloptions
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
), facts(line) AS (
    SELECT format('function %s: %s acl=%s comment=%s', p.oid::regprocedure, pg_get_functiondef(p.oid),
                  p.proacl, obj_description(p.oid, 'pg_proc'))
      FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    SELECT format('relation %s kind=%s acl=%s rls=%s options=%s comment=%s view=%s', r.name, r.relkind,
                  r.relacl, r.relrowsecurity, r.reloptions, obj_description(r.oid, 'pg_class'),
                  CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(r.oid) END)
      FROM rels r
    UNION ALL
    SELECT format('column %s.%s %s notnull=%s default=%s identity=%s generated=%s acl=%s comment=%s',
                  r.name, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, a.attacl,
                  col_description(r.oid, a.attnum))
      FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT format('constraint %s %s', r.name, pg_get_constraintdef(k.oid))
      FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM rels r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
      FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s %s %s %s using=%s check=%s', r.name, p.polname, p.polcmd, p.polroles::regrole[],
                  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
      FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT format('type %s kind=%s', t.oid::regtype, t.typtype)
      FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT format('schema %s acl=%s comment=%s', n.nspname, n.nspacl, obj_description(n.oid, 'pg_namespace'))
      FROM members m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    UNION ALL
    SELECT format('event trigger %s on %s tags=%s function=%s', t.evtname, t.evtevent, t.evttags,
                  t.evtfoid::regproc)
      FROM members m JOIN pg_event_trigger t ON m.classid = 'pg_event_trigger'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT format('foreign server %s options=%s', s.srvname, s.srvoptions)
      FROM members m JOIN pg_foreign_server s ON m.classid = 'pg_foreign_server'::regclass AND s.oid = m.objid
    UNION ALL
    SELECT format('member of another kind %s', pg_describe_object(m.classid, m.objid, 0))
      FROM members m
     WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass,
                             'pg_namespace'::regclass, 'pg_event_trigger'::regclass,
                             'pg_foreign_server'::regclass)
)
SELECT line FROM facts ORDER BY line COLLATE "C";
