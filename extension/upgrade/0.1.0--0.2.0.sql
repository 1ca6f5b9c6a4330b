\echo Use "ALTER EXTENSION envsync UPDATE TO '0.2.0'" to load this file. \quit

-- envsync 0.1.0 -> 0.2.0. The install script of 0.2.0 goes where "@install script@" stands: it
-- creates what is missing and replaces every function, view and trigger of envsync. Around it,
-- what it cannot do by itself: before it, drop what 0.2.0 no longer has or has with another
-- signature, and add the columns its views read; after it, convert the data and the objects
-- made at run time (the link schemas, the link roles' grants).

-- Views are made anew (some gain columns); a shop's own view over one of them stops the upgrade
-- here, named, rather than being dropped along.
DROP VIEW envsync.about, envsync.changes, envsync.comparisons, envsync.mail_status, envsync.messages,
          envsync.synced_tables, envsync.syncs, envsync.tracked_changes, envsync.tracked_shapes;
-- In a non-production environment, 0.1.0 made this view at run time (outside the extension).
DROP VIEW IF EXISTS envsync.row_hashes;

-- Replaced by other functions in 0.2.0: the entry points now run as envsync's owner themselves,
-- the run chain has one name per step, the selftests are a test library.
DROP FUNCTION envsync.apply(bigint, boolean, name), envsync.cancel(bigint),
              envsync.compact_log(text, regclass), envsync.compare(text, text, text[], text, jsonb, boolean, name),
              envsync.execute_run(envsync.sync_runs), envsync.execute_scheduled(bigint),
              envsync.link_table(text, regclass), envsync.raise_from_environment(text, text, text, text, text),
              envsync.rebuild_row_hashes(), envsync.record_scheduled_failure(bigint, jsonb),
              envsync.recover_interrupted_syncs(), envsync.release_sync(bigint), envsync.revert(bigint, name),
              envsync.run_sync(bigint), envsync.schedule(bigint, timestamptz, boolean, name),
              envsync.selftest_heap_bytes(), envsync.selftest_live_objects(), envsync.selftest_pg_error(text),
              envsync.selftest_throw(text), envsync.start_due_sync(), sync_grant_link(regrole);
-- Its result columns changed.
DROP FUNCTION envsync.reading(text, regclass);
-- The comparison checks a table's shape where it checks its tracking now.
DROP FUNCTION envsync.check_same_table(text, text, regclass);

-- Columns 0.2.0's views read. Comparisons made so far hashed their records with 0.1.0's content
-- hash, which 0.2.0 no longer computes: they are marked as 0.1.0's and cannot be synchronized.
ALTER TABLE envsync.compare_runs ADD COLUMN envsync_version text NOT NULL DEFAULT '0.1.0';
ALTER TABLE envsync.compare_runs ALTER COLUMN envsync_version DROP DEFAULT;
ALTER TABLE envsync.sync_runs ADD COLUMN cancelled_by name;   -- unknown for runs cancelled before
ALTER TABLE envsync.sync_runs ADD COLUMN selection int8multirange;
ALTER TABLE envsync.compare_changes ADD COLUMN cascades jsonb;   -- unknown for comparisons made before
-- Applies record their run where they write, to be found after PROD lost it (unknown before).
ALTER TABLE envsync.apply_requests ADD COLUMN run_info jsonb;
-- The trigger no longer hashes each written row (only the tests read it).
ALTER TABLE envsync.row_log DROP COLUMN hash;

-- @install script@

-- A synchronization's selection is copied when it starts now; that of the synchronizations
-- made so far could no longer change once they ran.
UPDATE envsync.sync_runs s
   SET selection = (SELECT coalesce(range_agg(int8range(cc.change_id, cc.change_id + 1)), '{}')
                      FROM envsync.compare_changes cc WHERE cc.comparison_id = s.comparison_id AND cc.selected)
 WHERE s.reverts IS NULL AND NOT s.test_import AND s.status = 'succeeded';

-- The name and e-mail checks are one function each now.
ALTER TABLE envsync.environments DROP CONSTRAINT environment_name_format,
    ADD CONSTRAINT environment_name_format CHECK (envsync.valid_name(name));
ALTER TABLE envsync.modules DROP CONSTRAINT module_name_format,
    ADD CONSTRAINT module_name_format CHECK (envsync.valid_name(name));
ALTER TABLE envsync.operators DROP CONSTRAINT operator_email_format,
    ADD CONSTRAINT operator_email_format CHECK (envsync.valid_email(email));

-- Roles are kept by name now; 0.1.0 kept them as quoted identifiers ("Shop Admin").
UPDATE envsync.operators o SET role_name = r.rolname
  FROM pg_roles r WHERE r.oid = to_regrole(o.role_name) AND o.role_name <> r.rolname;
UPDATE envsync.link_roles l SET role_name = r.rolname
  FROM pg_roles r WHERE r.oid = to_regrole(l.role_name) AND l.role_name <> r.rolname;

-- PROD reads another environment's tables through that environment's envsync now, not through
-- a foreign table per synced table: each link schema is made anew. Without CASCADE, so that a
-- shop's own object in it stops the upgrade, named.
ALTER TABLE envsync.environment_tables DROP COLUMN link_shape;
DO $$
DECLARE
    e envsync.environments;
    foreign_tables text;
BEGIN
    FOR e IN SELECT * FROM envsync.environments WHERE server IS NOT NULL ORDER BY name LOOP
        SELECT string_agg(c.oid::regclass::text, ', ') INTO foreign_tables
          FROM pg_class c WHERE c.relnamespace = e.link_schema::regnamespace AND c.relkind = 'f';
        IF foreign_tables IS NOT NULL THEN
            EXECUTE 'DROP FOREIGN TABLE ' || foreign_tables;
        END IF;
        EXECUTE format('DROP SCHEMA %I', e.link_schema);
        PERFORM envsync.create_link(e.link_schema, e.server);
    END LOOP;
END
$$;

-- In a non-production environment, a link role reaches its tables through envsync's requests
-- now, which read and write them as their owner; 0.1.0 needed it to hold SELECT, INSERT, UPDATE
-- and DELETE on each. The tables it could so synchronize are opened to it, no others.
-- (Those privileges are the shop's own grants, left as they were; it no longer needs them.)
DO $$
DECLARE
    link name;
BEGIN
    FOR link IN SELECT l.role_name FROM envsync.link_roles l JOIN pg_roles r ON r.rolname = l.role_name
                 ORDER BY l.role_name LOOP
        PERFORM sync_grant_link(link::regrole, ARRAY(
            SELECT t.relid FROM envsync.tracked_tables t
             WHERE has_table_privilege(link, t.relid, 'SELECT') AND has_table_privilege(link, t.relid, 'INSERT')
               AND has_table_privilege(link, t.relid, 'UPDATE') AND has_table_privilege(link, t.relid, 'DELETE')
             ORDER BY t.table_id));
    END LOOP;
END
$$;

-- Every role may look names up in schema envsync now (install script); the operators' and link
-- roles' own grants of 0.1.0 are covered by it.
REVOKE USAGE ON SCHEMA envsync FROM envsync_operator;
DO $$
DECLARE
    link name;
BEGIN
    FOR link IN SELECT l.role_name FROM envsync.link_roles l JOIN pg_roles r ON r.rolname = l.role_name LOOP
        EXECUTE format('REVOKE USAGE ON SCHEMA envsync FROM %I', link);
    END LOOP;
END
$$;

-- E-mails still queued get the heading and text 0.2.0's carry (the orchestrator writes no
-- words of its own any more).
UPDATE envsync.outbox o SET payload = o.payload || jsonb_build_object('title', t.title, 'text', t.body)
  FROM envsync.sync_runs s, envsync.run_texts(s.id) t
 WHERE o.status = 'pending' AND o.kind IN ('sync_succeeded', 'sync_failed') AND s.id = (o.payload ->> 'sync_id')::bigint;
UPDATE envsync.outbox o SET payload = o.payload || jsonb_build_object('title', o.subject)
 WHERE o.status = 'pending' AND o.kind = 'comparison_finished';

-- Scheduled runs of comparisons made before the upgrade fail when due; say so now.
DO $$
DECLARE
    pending text;
BEGIN
    SELECT string_agg(format('%s (comparison %s, due %s)', s.id, s.comparison_id, s.run_at), ', ' ORDER BY s.id)
      INTO pending
      FROM envsync.sync_runs s JOIN envsync.compare_runs c ON c.id = s.comparison_id
     WHERE s.status = 'pending' AND c.envsync_version <> '0.2.0';
    IF pending IS NOT NULL THEN
        RAISE WARNING 'scheduled synchronizations of comparisons made by envsync 0.1.0 will fail when due: %', pending
            USING HINT = 'Cancel them (sync_cancel), compare the environments again and schedule the new comparisons.';
    END IF;
END
$$;
