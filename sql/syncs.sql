-- Synchronizations and their schedule: bad calls, unknown ids, pg_cron missing (this database
-- has none), and how messages show times and counts.
\set SHOW_CONTEXT never
SELECT name FROM envsync.environments WHERE server IS NULL;
SELECT * FROM sync_apply(NULL);
SELECT * FROM sync_apply(424242);
SELECT * FROM sync_apply(424242, test_import => true);
SELECT * FROM sync_revert(424242);
SELECT sync_cancel(424242);
SELECT sync_schedule(424242);
SELECT sync_schedule(NULL);
SELECT count(*) FROM envsync.syncs;
SELECT count(*) FROM envsync.messages;
-- An instant with the offset of the reader's time zone; counts of the modules that changed.
SET TimeZone = 'Asia/Kolkata';
SELECT envsync.shown_time('2026-12-01 22:00+01');
RESET TimeZone;
SELECT envsync.shown_summary('[{"module": "menus", "inserted": 0, "updated": 0, "deleted": 0},
                               {"module": "cms", "inserted": 2, "updated": 0, "deleted": 1}]');
SELECT envsync.shown_summary('[]');
