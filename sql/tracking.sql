\set SHOW_CONTEXT never
-- The change-tracking trigger (catalog.sql registered prod and the modules).
-- Hashing the table's rows first must not change what the trigger knows of the table's key.
SELECT count(envsync.row_hash(p)) FROM shop.cms_pages p;
INSERT INTO shop.cms_pages (id, slug, title, body) VALUES (1, 'home', 'Home', 'Welcome'), (2, 'about', 'About', NULL);
UPDATE shop.cms_pages SET title = 'Start' WHERE id = 1;
UPDATE shop.cms_pages SET title = title WHERE id = 2;     -- a write, even without a change
DELETE FROM shop.cms_pages WHERE id = 2;
UPDATE shop.cms_pages SET id = 10 WHERE id = 1;           -- a new internal ID: one gone, one new
INSERT INTO shop.product_categories VALUES (5, 7, 1);
INSERT INTO shop.system_settings VALUES ('mobile_app.theme', '{"dark": true}'), ('shop.currency', '"EUR"');
SELECT t.relid AS table_name, l.key, l.kind, l.applied
  FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
 ORDER BY l.xid, l.table_id, l.key, l.kind;

-- Per record: how and by whom it was written.
SELECT table_name, key, inserted, updated, deleted, by_envsync, writes
  FROM envsync.tracked_changes ORDER BY table_name::text, key;

-- envsync's own apply marks its writes; users cannot claim to be the apply.
BEGIN;
SET LOCAL envsync.applying = on;
INSERT INTO shop.cms_pages (id, slug, title) VALUES (3, 'faq', 'FAQ');
COMMIT;
SELECT key, kind, applied FROM envsync.row_log WHERE key = '{3}';
CREATE ROLE envsync_regress_editor;
GRANT USAGE ON SCHEMA shop TO envsync_regress_editor;
GRANT ALL ON shop.cms_pages TO envsync_regress_editor;
SET ROLE envsync_regress_editor;
SET envsync.applying = on;
UPDATE shop.cms_pages SET title = 'Questions' WHERE id = 3;   -- tracked without any right on envsync
RESET ROLE;
SELECT key, kind, applied FROM envsync.row_log WHERE key = '{3}' ORDER BY kind;
-- No user can forge entries: the log is not writable to them.
SET ROLE envsync_regress_editor;
INSERT INTO envsync.row_log VALUES (1, '{99}', 'I', true, '1', now());
RESET ROLE;

-- Writes under session_replication_role = replica are still tracked.
SET session_replication_role = replica;
UPDATE shop.cms_pages SET body = 'replica write' WHERE id = 3;
RESET session_replication_role;
SELECT count(*) AS replica_write_logged FROM envsync.row_log WHERE key = '{3}' AND kind = 'U';

-- TRUNCATE logs a deletion of every row.
DELETE FROM envsync.row_log;
TRUNCATE shop.system_settings;
SELECT key, kind FROM envsync.row_log ORDER BY key;

-- The trigger refuses to run where envsync did not install it, and a tampered log.
CREATE TABLE shop.misc (id integer PRIMARY KEY);
CREATE TRIGGER wrong BEFORE INSERT ON shop.misc FOR EACH ROW EXECUTE FUNCTION envsync.track_change('1');
INSERT INTO shop.misc VALUES (1);
DROP TRIGGER wrong ON shop.misc;
SELECT envsync.track_change();
CREATE INDEX row_log_key ON envsync.row_log ((key[1]));
INSERT INTO shop.cms_pages (id, slug) VALUES (4, 'x');
DROP INDEX envsync.row_log_key;
-- A plain index made on the log while this session writes it gets the entries written after it
-- (the trigger keeps the log's indexes between writes, until they change).
CREATE INDEX row_log_kind ON envsync.row_log (kind, key);
INSERT INTO shop.cms_pages (id, slug) VALUES (6, 'z');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT key, kind FROM envsync.row_log WHERE kind = 'I' AND key = '{6}';
SELECT key, kind FROM envsync.row_log WHERE kind = 'I' AND key = '{6}';
RESET enable_seqscan;
DELETE FROM shop.cms_pages WHERE id = 6;
DELETE FROM envsync.row_log WHERE key = '{6}';
DROP INDEX envsync.row_log_kind;

-- The ad hoc diff refuses a NULL key instead of reading it.
SELECT * FROM envsync.diff_table('prod', 'prod', 'shop.cms_pages', ARRAY[NULL]::text[]);

-- Dropping a tracked table (nothing of envsync's depends on it) forgets it; the other tables
-- stay tracked.
DROP TABLE shop.product_categories;
SELECT module, table_name FROM envsync.synced_tables WHERE module = 'catalogue';
SELECT count(*) AS hashes_of_dropped_table FROM envsync.row_hashes h
 WHERE NOT EXISTS (SELECT FROM envsync.tracked_tables t WHERE t.table_id = h.table_id);
INSERT INTO shop.cms_pages (id, slug) VALUES (5, 'y');
SELECT count(*) FROM envsync.row_log WHERE key = '{5}';

REVOKE ALL ON shop.cms_pages FROM envsync_regress_editor;
REVOKE ALL ON SCHEMA shop FROM envsync_regress_editor;
DROP ROLE envsync_regress_editor;
