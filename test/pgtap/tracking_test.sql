-- Change tracking on the two clusters, seen from PROD (pgTAP; run with pg_prove on PROD after
-- test/setup_shop.sh). TEST is reached through postgres_fdw: its writes below go through a
-- foreign table, and everything is rolled back on both sides at the end.
BEGIN;
SELECT plan(16);

-- This session looks nothing like TEST's (nor like postgres_fdw's session there).
SET LOCAL TimeZone = 'Pacific/Chatham';
SET LOCAL DateStyle = 'German, DMY';
SET LOCAL IntervalStyle = 'sql_standard';
SET LOCAL extra_float_digits = -10;
SET LOCAL bytea_output = 'escape';

-- TEST is read and written through its administrator's connection (test_editor, made by
-- test/setup_shop.sh): the link role may not write there, and one connection sees its own writes.
CREATE SCHEMA tap_test_side;
IMPORT FOREIGN SCHEMA shop LIMIT TO (slides, menus) FROM SERVER test_editor INTO tap_test_side;
IMPORT FOREIGN SCHEMA envsync LIMIT TO (row_log, row_hashes) FROM SERVER test_editor INTO tap_test_side;
CREATE TEMP VIEW hashes_on_both_sides AS
    WITH p AS (SELECT et.table_id, h.key, h.hash FROM envsync.row_hashes h
                 JOIN envsync.environment_tables et ON et.environment = 'prod' AND et.remote_table_id = h.table_id),
         t AS (SELECT et.table_id, h.key, h.hash FROM tap_test_side.row_hashes h
                 JOIN envsync.environment_tables et ON et.environment = 'test' AND et.remote_table_id = h.table_id)
    SELECT table_id, key, p.hash AS prod_hash, t.hash AS test_hash FROM p FULL JOIN t USING (table_id, key);

SELECT cmp_ok((SELECT count(*) FROM hashes_on_both_sides), '>', 500::bigint,
              'every synced row of the generated shop is hashed on both servers');
SELECT is_empty($$SELECT * FROM hashes_on_both_sides WHERE prod_hash IS DISTINCT FROM test_hash$$,
                'identical content hashes alike on PROD and TEST, whatever either session says');
SELECT is((SELECT count(*) FROM envsync.row_hashes h JOIN envsync.tracked_tables t USING (table_id)
            WHERE t.relid = 'shop.system_settings'::regclass),
          (SELECT count(*) FROM shop.system_settings WHERE key LIKE 'mobile_app.%'),
          'only the mobile app settings are part of the synced content');

-- PROD's own writes.
DELETE FROM envsync.row_log;
INSERT INTO shop.cms_pages (id, slug, title, body) VALUES (9001, 'tracked', 'Tracked', repeat('long ', 5000));
UPDATE shop.cms_pages SET title = 'Tracked page' WHERE id = 9001;
INSERT INTO shop.cms_blocks (page_id, position, kind) VALUES (9001, 1, 'text');
DELETE FROM shop.cms_blocks WHERE page_id = 9001;
UPDATE shop.system_settings SET value = value WHERE key LIKE 'mobile_app.%';
SELECT bag_eq(
    $$SELECT t.relid::text, l.kind::text, l.applied FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
       WHERE t.relid IN ('shop.cms_pages'::regclass, 'shop.cms_blocks'::regclass)$$,
    $$VALUES ('shop.cms_pages', 'I', false), ('shop.cms_pages', 'U', false),
             ('shop.cms_blocks', 'I', false), ('shop.cms_blocks', 'D', false)$$,
    'each write to a synced table is logged as a user''s edit');
SELECT is((SELECT h.hash FROM envsync.row_hashes h JOIN envsync.tracked_tables t USING (table_id)
            WHERE t.relid = 'shop.cms_pages'::regclass AND h.key = '{9001}'),
          (SELECT envsync.row_hash(p) FROM shop.cms_pages p WHERE id = 9001),
          'a TOASTed row read as its owner hashes as the row itself');
SELECT ok((SELECT count(*) FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
            WHERE t.relid = 'shop.system_settings'::regclass) > 0,
          'settings writes are logged (the row filter applies when comparing)');
SELECT is((SELECT count(*)::int FROM envsync.tracked_changes WHERE table_name = 'shop.cms_pages'::regclass
              AND key = '{9001}' AND inserted AND updated AND NOT deleted AND NOT by_envsync),
          1, 'tracked_changes folds the writes of a record');
INSERT INTO shop.users (email, name, password_hash, created_at) VALUES ('new@shop.example', 'New', 'x', now());
SELECT is_empty($$SELECT * FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
                   WHERE t.relid = 'shop.users'::regclass$$,
                'writes to never-synced tables are not tracked');

-- envsync's own apply is told apart.
SET LOCAL envsync.applying = on;
UPDATE shop.cms_pages SET title = 'Applied' WHERE id = 9001;
SET LOCAL envsync.applying = off;
SELECT is((SELECT applied FROM envsync.row_log WHERE key = '{9001}' ORDER BY applied DESC LIMIT 1), true,
          'a write of the apply is marked as such');

-- TEST's writes, made through postgres_fdw by TEST's administrator: TEST's own trigger logs them.
SELECT is((SELECT count(*)::int FROM tap_test_side.row_log), 0, 'TEST has no tracked change yet');
UPDATE tap_test_side.slides SET caption = 'changed on TEST' WHERE id = (SELECT min(id) FROM tap_test_side.slides);
SELECT results_eq(
    $$SELECT l.kind::text, l.key, l.applied FROM tap_test_side.row_log l$$,
    $$SELECT 'U', ARRAY[min(id)::text], false FROM tap_test_side.slides$$,
    'an edit on TEST is logged on TEST, with its key');
SELECT is((SELECT l.table_id FROM tap_test_side.row_log l),
          (SELECT remote_table_id FROM envsync.environment_tables et JOIN envsync.tracked_tables t USING (table_id)
            WHERE et.environment = 'test' AND t.relid = 'shop.slides'::regclass),
          'under TEST''s id of the table, which PROD knows');
SELECT is((SELECT h.hash FROM tap_test_side.row_hashes h
            WHERE h.table_id = (SELECT l.table_id FROM tap_test_side.row_log l)
              AND h.key = (SELECT l.key::text FROM tap_test_side.row_log l)),
          (SELECT envsync.row_hash(s) FROM tap_test_side.slides s WHERE id = (SELECT min(id) FROM tap_test_side.slides)),
          'TEST hashes the edited row as PROD does');
SELECT is((SELECT test_hash <> prod_hash FROM hashes_on_both_sides h
             JOIN envsync.tracked_tables t USING (table_id)
            WHERE t.relid = 'shop.slides'::regclass AND h.key = (SELECT key::text FROM tap_test_side.row_log)),
          true, 'and the two sides now hash that row differently');
DELETE FROM tap_test_side.row_log;
TRUNCATE tap_test_side.menus CASCADE;
SELECT set_eq($$SELECT l.table_id, l.kind::text, count(*) FROM tap_test_side.row_log l GROUP BY 1, 2$$,
              $$SELECT et.remote_table_id, 'D', (SELECT count(*) FROM shop.menus)
                  FROM envsync.environment_tables et JOIN envsync.tracked_tables t USING (table_id)
                 WHERE et.environment = 'test' AND t.relid = 'shop.menus'::regclass
                UNION ALL
                SELECT et.remote_table_id, 'D', (SELECT count(*) FROM shop.menu_items)
                  FROM envsync.environment_tables et JOIN envsync.tracked_tables t USING (table_id)
                 WHERE et.environment = 'test' AND t.relid = 'shop.menu_items'::regclass$$,
              'TRUNCATE ... CASCADE on TEST logs a deletion of every row of both tables');
SELECT throws_ok($$SELECT sync_add_module('menus', ARRAY['shop.menus', 'shop.users']::regclass[])$$,
                 '22023', 'table "shop.users" is never synchronized',
                 'a never-synced table is refused before anything reaches TEST');

SELECT * FROM finish();
ROLLBACK;
