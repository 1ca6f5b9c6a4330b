#!/usr/bin/env bash
# sync_apply, test imports and sync_revert on the two clusters, both directions: the sample
# shop with the known differences of shop_fixture.diverge() on each side.
# TAP: prove --exec bash test/e2e/apply_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
trap '"$cluster" start >/dev/null 2>&1' EXIT   # a failed crash test must not leave TEST down

# The changes of a comparison, one line each: table key kind
changes() {
    prod -F ' ' -c "SELECT table_name, record_key::text, kind FROM envsync.changes WHERE comparison_id = $1
                     ORDER BY table_name::text COLLATE \"C\", key::text COLLATE \"C\""
}
summary() {   # the summary sync_apply returned, without its sync id: module inserted updated deleted
    cut -d'|' -f2- <<<"$1" | tr '|' ' '
}
fingerprint_prod() { prod -c "SELECT shop_fixture.fingerprint()"; }
fingerprint_test() { on_test -c "SELECT shop_fixture.fingerprint()"; }
log_size() { "$@" -c "SELECT count(*) FROM envsync.row_log"; }

on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" >/dev/null

# --- TEST > PROD: test import, then the real synchronization ----------------------------------------
id=$(prod -c "SELECT sync_compare('test', 'prod')")
before=$(fingerprint_prod)
log_before=$(log_size prod)
seq_before=$(prod -c "SELECT last_value FROM shop.cms_blocks_id_seq")
outbox_before=$(prod -c "SELECT count(*) FROM envsync.outbox")
expected_summary='catalogue 2 1 1
cms 2 0 0
gallery 1 0 1
menus 1 0 0
mobile_app 0 1 0
sliders 0 2 0'
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
is "$(summary "$dry")" "$expected_summary" "a test import returns what a synchronization would write, per module"
is "$(fingerprint_prod)|$(log_size prod)|$(prod -c "SELECT last_value FROM shop.cms_blocks_id_seq")" \
   "$before|$log_before|$seq_before" "and leaves no trace in PROD: content, change log and sequences as they were"
is "$(prod -c "SELECT kind, status, inserted, updated, deleted, scheduled_by FROM envsync.syncs WHERE comparison_id = $id")" \
   "test import|succeeded|6|4|2|postgres" "only the record of the test run stays, in envsync.syncs"
is "$(prod -c "SELECT kind, payload->>'test_import', subject FROM envsync.outbox ORDER BY id DESC LIMIT 1")" \
   "sync_succeeded|true|Success (test import): Synchronization process TEST > PROD" "with its e-mail"

real=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$real")" "$expected_summary" "the synchronization writes exactly what the test import announced"
sync1=$(cut -d'|' -f1 <<<"$real" | head -1)
is "$(prod -c "SELECT bool_and(by_envsync) FROM envsync.tracked_changes WHERE writes > 0")" "t" \
   "the writes are logged as envsync's own, not as edits made on PROD"
is "$(prod -c "SELECT kind, payload->>'sync_id', payload->'modules'->1 FROM envsync.outbox ORDER BY id DESC LIMIT 1")" \
   "sync_succeeded|$sync1|{\"module\": \"cms\", \"deleted\": 0, \"updated\": 0, \"inserted\": 2}" \
   "the operator's e-mail is queued with the counts per module"
is "$(changes "$(prod -c "SELECT sync_compare('test', 'prod')")")" \
   'shop.cms_pages {"id": 10000001} conflict
shop.products {"id": 10} conflict
shop.slides {"id": 6} conflict' "a new comparison shows only the conflicts left unselected"
is "$(changes "$(prod -c "SELECT sync_compare('prod', 'test')")")" \
   'shop.cms_pages {"id": 10000001} conflict
shop.products {"id": 10} modified
shop.slides {"id": 6} modified' "nor are the applied records conflicts the other way round"
is "$(prod -c "SELECT price, name FROM shop.products WHERE id = 10000001")" "$(on_test -c "SELECT price, name FROM shop.products WHERE id = 10000001")" \
   "a new record arrives with its internal id"
like "$(prod -c "SELECT last_value FROM shop.cms_blocks_id_seq")" '^1000000[2-9]$' \
   "the target's sequence is moved past the highest id it received"
is "$(prod -c "SELECT pg_sequence_last_value(pg_get_serial_sequence('shop.products', 'id')::regclass)")" \
   "10000001" "and so is an identity column's"
like "$(prod -c "SELECT * FROM sync_apply($id)")" "comparison $id is already synchronized by synchronization $sync1" \
   "applying the same comparison twice is refused, saying so"
like "$(prod -c "UPDATE envsync.changes SET selected = false WHERE comparison_id = $id")" "its selection can no longer change" \
   "what a synchronization applied cannot be deselected afterwards"
stale=$(prod -c "SELECT max(id) FROM envsync.comparisons WHERE source = 'test'")
like "$(prod -c "SELECT * FROM sync_apply($stale, true)")" "comparison $stale is stale: comparison [0-9]+ of the same environments is newer" \
   "an older comparison than the pair's newest is refused"

# --- PROD > TEST: conflicts overwritten on purpose, written through postgres_fdw ---------------------
id=$(prod -c "SELECT sync_compare('prod', 'test')")
prod -c "SELECT sync_select($id, true, kind => 'conflict')" >/dev/null
test_before=$(fingerprint_test)
test_log=$(log_size on_test)
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
is "$(fingerprint_test)|$(log_size on_test)|$(on_test -c "SELECT count(*) FROM envsync.apply_requests")" "$test_before|$test_log|0" \
   "a test import into TEST leaves no trace there either"
real=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$real")" "$(summary "$dry")" "PROD > TEST writes what its test import announced"
is "$(summary "$real" | grep -v ' 0 0 0$')" 'catalogue 0 1 0
cms 0 1 0
sliders 0 1 0' "a selected conflict is overwritten"
sync2=$(cut -d'|' -f1 <<<"$real" | head -1)
is "$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $(prod -c "SELECT sync_compare('test', 'prod')")")" "0" \
   "the environments now agree"
is "$(on_test -c "SELECT title FROM shop.cms_pages WHERE id = 10000001")" "$(prod -c "SELECT title FROM shop.cms_pages WHERE id = 10000001")" \
   "TEST's page was overwritten with PROD's"
after_sync2=$(fingerprint_test)

# --- Revert ----------------------------------------------------------------------------------------
reverted=$(prod -c "SELECT * FROM sync_revert($sync2)")
is "$(fingerprint_test)" "$test_before" "a revert gives TEST back exactly its content before the synchronization"
revert_id=$(cut -d'|' -f1 <<<"$reverted" | head -1)
is "$(prod -c "SELECT kind, reverts, status, updated, scheduled_by FROM envsync.syncs WHERE id = $revert_id")|$(prod -c "SELECT reverted_by FROM envsync.syncs WHERE id = $sync2")" \
   "revert|$sync2|succeeded|3|postgres|postgres" "the revert is recorded, with who reverted"
like "$(prod -c "SELECT * FROM sync_revert($sync2)")" "already reverted" "a synchronization is reverted once"
is "$(changes "$(prod -c "SELECT sync_compare('prod', 'test')")" | wc -l)" "3" "the reverted records differ again"

# --- FK order: deep trees, self references and a cycle ------------------------------------------------
for side in prod on_test; do
    $side -c "CREATE TABLE shop.banner_sets (id integer PRIMARY KEY, name text NOT NULL, cover_id integer)" \
          -c "CREATE TABLE shop.banners (id integer PRIMARY KEY, set_id integer NOT NULL REFERENCES shop.banner_sets, title text)" \
          -c "ALTER TABLE shop.banner_sets ADD FOREIGN KEY (cover_id) REFERENCES shop.banners" >/dev/null
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.banner_sets', 'shop.banners']::regclass[])" >/dev/null
prod -c "SELECT sync_add_module('banners', ARRAY['shop.banner_sets', 'shop.banners']::regclass[])" >/dev/null
on_test >/dev/null <<'SQL'
-- a gallery folder tree six levels deep with a file in each folder, a menu tree, a cycle
INSERT INTO shop.gallery_folders (id, parent_id, name, path)
SELECT 20000000 + n, CASE WHEN n > 1 THEN 20000000 + n - 1 END, 'level ' || n,
       '/deep' || repeat('/level', n) FROM generate_series(1, 6) n;
INSERT INTO shop.gallery_files (id, folder_id, file_name, mime_type, size_bytes, checksum, uploaded_at)
SELECT 20000000 + n, 20000000 + n, 'f' || n || '.png', 'image/png', n, '\x00', '2026-11-01 10:00+00'
  FROM generate_series(1, 6) n;
INSERT INTO shop.menus (id, name, location) VALUES (20000000, 'Deep menu', 'footer');
INSERT INTO shop.menu_items (id, menu_id, parent_id, position, label)
SELECT 20000000 + n, 20000000, CASE WHEN n > 1 THEN 20000000 + n - 1 END, 1, 'item ' || n FROM generate_series(1, 5) n;
INSERT INTO shop.banner_sets (id, name) VALUES (1, 'Spring');
INSERT INTO shop.banners (id, set_id, title) VALUES (1, 1, 'Cover');
UPDATE shop.banner_sets SET cover_id = 1 WHERE id = 1;
SQL
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'menus', 'banners'])")
prod -c "SELECT sync_select($id, false, kind => 'deleted')" >/dev/null
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")" | grep -v ' 0 0 0$')" 'banners 2 0 0
gallery 12 0 0
menus 6 0 0' "new trees (parents, children, self references, a cycle between two tables) are written in one go"
is "$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'menus', 'banners'])") AND kind <> 'deleted'")" \
   "0" "and arrive whole"
on_test -c "UPDATE shop.banner_sets SET cover_id = NULL" -c "DELETE FROM shop.banners" -c "DELETE FROM shop.banner_sets" \
        -c "DELETE FROM shop.gallery_files WHERE id > 20000000" -c "DELETE FROM shop.gallery_folders WHERE id > 20000000" \
        -c "DELETE FROM shop.menu_items WHERE id > 20000000" -c "DELETE FROM shop.menus WHERE id = 20000000" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'menus', 'banners'])")
prod -c "SELECT sync_select($id, false)" -c "SELECT sync_select($id, true, ARRAY(SELECT change_id FROM envsync.changes
          WHERE comparison_id = $id AND (key[1]::bigint >= 20000000 OR table_name::text LIKE 'shop.banner%')))" >/dev/null
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")" | grep -v ' 0 0 0$')" 'banners 0 0 2
gallery 0 0 12
menus 0 0 6' "deleted trees are removed children first, cycle included"

# --- Changes made after the comparison -------------------------------------------------------------
on_test -c "UPDATE shop.cms_pages SET title = 'Draft A' WHERE id = 5" -c "UPDATE shop.cms_pages SET title = 'Draft B' WHERE id = 6" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
prod -c "UPDATE shop.cms_pages SET title = 'Edited on PROD meanwhile' WHERE id = 5" >/dev/null
before=$(fingerprint_prod)
out=$(prod -c "SELECT * FROM sync_apply($id)")
like "$out" '1 record changed in environment "prod" since the comparison' "a record edited in the target after the comparison stops the synchronization"
like "$out" 'DETAIL:  shop.cms_pages 5: changed' "the error lists the record"
is "$(fingerprint_prod)" "$before" "and nothing is written, not even the records that did not change"
is "$(prod -c "SELECT status, error_code FROM envsync.syncs ORDER BY id DESC LIMIT 1")" "failed|55000" "the failed run is recorded"
is "$(prod -c "SELECT kind, payload->>'error' FROM envsync.outbox ORDER BY id DESC LIMIT 1")" \
   'sync_failed|1 record changed in environment "prod" since the comparison' "and its e-mail queued"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
on_test -c "DELETE FROM shop.cms_pages WHERE id = 6 AND NOT EXISTS (SELECT FROM shop.cms_blocks WHERE page_id = 6)" \
        -c "UPDATE shop.cms_pages SET title = 'Draft B2' WHERE id = 6" >/dev/null
like "$(prod -c "SELECT * FROM sync_apply($id)")" '1 record changed in environment "test" since the comparison' \
     "so does a record changed in the source"

# --- A failing constraint rolls everything back -----------------------------------------------------
# PROD's order items (never synchronized) still reference product 10, which TEST deletes.
on_test -c "DELETE FROM shop.order_items WHERE product_id = 10" -c "DELETE FROM shop.product_categories WHERE product_id = 10" \
        -c "DELETE FROM shop.products WHERE id = 10" \
        -c "INSERT INTO shop.categories (id, name, slug) VALUES (30000001, 'Outlet', 'outlet')" >/dev/null
prod -c "INSERT INTO shop.categories (id, name, slug) VALUES (30000002, 'Outlet PROD', 'outlet')" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['catalogue'])")
prod -c "SELECT sync_select($id, false, kind => 'new')" >/dev/null
before=$(fingerprint_prod)
out=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
like "$out" 'violates foreign key constraint "order_items_product_id_fkey" on table "order_items"' \
     "a test import reports the error the synchronization would meet"
out=$(prod -c "SELECT * FROM sync_apply($id)")
like "$out" 'ERROR:  update or delete on table "products" violates foreign key constraint "order_items_product_id_fkey"' \
     "a foreign key from never-synced data names the table and the constraint"
like "$out" 'Key \(id\)=\(10\) is still referenced' "and the record"
like "$out" 'Nothing was written; synchronization [0-9]+ is recorded as failed' "and says nothing was written"
is "$(fingerprint_prod)" "$before" "PROD is exactly as it was"
is "$(prod -c "SELECT kind, status FROM envsync.syncs ORDER BY id DESC LIMIT 2")" "synchronization|failed
test import|failed" "both runs are recorded as failed"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['catalogue'])")
prod -c "SELECT sync_select($id, false)" -c "SELECT sync_select($id, true, ARRAY(SELECT change_id FROM envsync.changes WHERE comparison_id = $id AND key = '{30000001}'))" >/dev/null
like "$(prod -c "SELECT * FROM sync_apply($id)")" 'duplicate key value violates unique constraint "categories_slug_key".*Key \(slug\)=\(outlet\)' \
     "a unique violation names the constraint and the value"
is "$(fingerprint_prod)" "$before" "and writes nothing"

# --- TEST stopped in the middle of a synchronization --------------------------------------------------
on_test >/dev/null <<'SQL'
CREATE FUNCTION shop.slow_down() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN IF NEW.slug = 'slow' THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$;
CREATE TRIGGER slow_down BEFORE INSERT ON shop.cms_pages FOR EACH ROW EXECUTE FUNCTION shop.slow_down();
SQL
prod -c "INSERT INTO shop.cms_pages (id, slug, title) VALUES (40000001, 'fast', 'Fast'), (40000002, 'slow', 'Slow')" \
     -c "UPDATE shop.cms_pages SET title = 'Renamed on PROD' WHERE id = 7" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['cms'])")
expected_changes=$(changes "$id")
test_before=$(fingerprint_test)
prod_before=$(fingerprint_prod)
prod -c "SELECT * FROM sync_apply($id)" >"$repo/.apply_crash.out" &
applying=$!
sleeping() { [[ -n $(on_test -c "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'") ]]; }
if wait_for 30 sleeping; then
    "$cluster" crash test >/dev/null
    wait $applying
    like "$(cat "$repo/.apply_crash.out")" 'environment "test"' "TEST stopped mid-apply: the synchronization fails, naming TEST"
    "$cluster" start test >/dev/null
    is "$(fingerprint_test)" "$test_before" "TEST, restarted, holds none of the synchronization's writes"
    is "$(fingerprint_prod)" "$prod_before" "PROD is unchanged"
    is "$(prod -c "SELECT status FROM envsync.syncs ORDER BY id DESC LIMIT 1")" "failed" "the run is recorded as failed"
    is "$(changes "$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['cms'])")")" "$expected_changes" \
       "and a new comparison finds the same differences to synchronize"
else
    tap_result 0 "the synchronization reached TEST's slow trigger"
    kill $applying
fi
rm -f "$repo/.apply_crash.out"
on_test -c "DROP TRIGGER slow_down ON shop.cms_pages" >/dev/null

# --- Revert refused when the target changed; before-images purged --------------------------------------
id=$(prod -c "SELECT max(id) FROM envsync.comparisons")
prod -c "SELECT sync_select($id, false, kind => 'new')" >/dev/null
sync3=$(prod -c "SELECT sync_id FROM sync_apply($id) LIMIT 1")
on_test -c "UPDATE shop.cms_pages SET title = 'Changed after the sync' WHERE id = 7" >/dev/null
out=$(prod -c "SELECT * FROM sync_revert($sync3)")
like "$out" '1 record changed in environment "test" since the comparison' "a revert is refused if the target changed since the synchronization"
like "$out" 'shop.cms_pages 7: changed' "listing the records"
like "$(prod -c "SET envsync.keep_before_images = '0'" -c "SELECT * FROM sync_revert($sync3)")" "cannot be reverted any more" \
     "before-images are purged after envsync.keep_before_images"

# --- Revert into PROD -----------------------------------------------------------------------------------
on_test -c "UPDATE shop.slides SET caption = 'Reverted soon' WHERE id = 2" -c "DELETE FROM shop.slides WHERE id = 3" \
        -c "INSERT INTO shop.slides (id, slider_id, position, image, valid_from) VALUES (50000001, 1, 9, '\\x01', now())" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['sliders'])")
before=$(fingerprint_prod)
sync4=$(prod -c "SELECT sync_id FROM sync_apply($id) LIMIT 1")
is "$(prod -c "SELECT inserted, updated > 0, deleted FROM envsync.syncs WHERE id = $sync4")" "1|t|1" "TEST > PROD: new, modified and deleted slides"
prod -c "SELECT * FROM sync_revert($sync4)" >/dev/null
is "$(fingerprint_prod)" "$before" "reverted, PROD holds exactly what it held before"

# --- Who may synchronize ----------------------------------------------------------------------------
prod -c "DROP ROLE IF EXISTS shop_admin" -c "CREATE ROLE shop_admin LOGIN IN ROLE envsync_operator" -c "CREATE ROLE shop_guest LOGIN" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['sliders'])")
like "$(prod -c "SET ROLE shop_admin" -c "SELECT * FROM sync_apply($id, true)")" "sliders" "a member of envsync_operator may synchronize"
like "$(prod -c "SET ROLE shop_guest" -c "SELECT * FROM sync_apply($id, true)")" "permission denied for function sync_apply" "others may not"
like "$(on_test -c "SELECT * FROM sync_apply(1)")" "only from the production database" "TEST cannot start a synchronization"
like "$(prod -c "SELECT * FROM sync_apply(999999)")" "comparison 999999 does not exist" "an unknown comparison is named"
prod -c "DROP ROLE shop_admin" -c "DROP ROLE shop_guest" >/dev/null

done_testing
