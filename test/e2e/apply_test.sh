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
sequences() {   # sequences prod|on_test: every sequence of schema shop and where it stands
    "$@" -c "SELECT string_agg(format('%s:%s', sequencename, coalesce(last_value::text, 'unused')), ' ' ORDER BY sequencename)
               FROM pg_sequences WHERE schemaname = 'shop'"
}

on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" >/dev/null

# --- TEST > PROD: test import, then the real synchronization ----------------------------------------
id=$(prod -c "SELECT sync_compare('test', 'prod')")
# What it lists (test/e2e/compare_test.sh checks the reasons): 12 changes, 7 conflicts.
expected_changes='shop.cms_blocks {"id": 10000001} new
shop.cms_blocks {"id": 10000002} new
shop.cms_pages {"id": 10000001} conflict
shop.gallery_files {"id": 10000001} new
shop.gallery_files {"id": 17} deleted
shop.gallery_files {"id": 23} conflict
shop.menu_items {"id": 10000001} new
shop.menu_items {"id": 40} conflict
shop.menu_items {"id": 6} conflict
shop.product_categories {"product_id": 10000001, "category_id": 2} new
shop.product_categories {"product_id": 5, "category_id": 9} deleted
shop.products {"id": 10000001} new
shop.products {"id": 10} conflict
shop.products {"id": 3} modified
shop.sliders {"id": 1} modified
shop.slides {"id": 10000002} conflict
shop.slides {"id": 1} modified
shop.slides {"id": 6} conflict
shop.system_settings {"key": "mobile_app.theme"} modified'
is "$(changes "$id")" "$expected_changes" "TEST > PROD: the comparison to synchronize"
before=$(fingerprint_prod)
log_before=$(log_size prod)
seq_before=$(sequences prod)
outbox_before=$(prod -c "SELECT coalesce(max(id), 0) FROM envsync.outbox")
expected_summary='catalogue 2 1 1
cms 2 0 0
gallery 1 0 1
menus 1 0 0
mobile_app 0 1 0
sliders 0 2 0'
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
is "$(summary "$dry")" "$expected_summary" "a test import returns what a synchronization would write, per module"
is "$(fingerprint_prod)|$(log_size prod)|$(sequences prod)" \
   "$before|$log_before|$seq_before" "and leaves no trace in PROD: content, change log and sequences as they were"
is "$(prod -c "SELECT kind, status, inserted, updated, deleted, scheduled_by FROM envsync.syncs WHERE comparison_id = $id")" \
   "test import|succeeded|6|4|2|postgres" "only the record of the test run stays, in envsync.syncs"
is "$(prod -c "SELECT kind, payload->>'test_import', subject FROM envsync.outbox WHERE id > $outbox_before ORDER BY id")" \
   "sync_succeeded|true|Success (test import): Synchronization process TEST > PROD" "with its e-mail, the only one queued"
# The test import wrote, then rolled back, the records it would synchronize: the pair's
# bookkeeping of what is in sync must be rolled back too, or a comparison driven by the change
# logs alone would no longer look at them.
again=$(prod -c "SELECT sync_compare('test', 'prod')")
is "$(changes "$again")|$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $again")" "$expected_changes|f" \
   "after a test import, a new comparison from the change logs finds the same records"
id=$again
outbox_before=$(prod -c "SELECT coalesce(max(id), 0) FROM envsync.outbox")

real=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$real")" "$expected_summary" "the synchronization writes exactly what the test import announced"
sync1=$(cut -d'|' -f1 <<<"$real" | head -1)
is "$(prod -c "SELECT count(*), bool_and(by_envsync) FROM envsync.tracked_changes")" "12|t" \
   "its 12 writes are logged as envsync's own, not as edits made on PROD"
is "$(prod -c "SELECT kind, payload->>'sync_id', payload->'modules'->1 FROM envsync.outbox WHERE id > $outbox_before ORDER BY id")" \
   "sync_succeeded|$sync1|{\"module\": \"cms\", \"deleted\": 0, \"updated\": 0, \"inserted\": 2}" \
   "the operator's e-mail, the only one, is queued with the counts per module"
is "$(changes "$(prod -c "SELECT sync_compare('test', 'prod')")")" \
   'shop.cms_pages {"id": 10000001} conflict
shop.gallery_files {"id": 23} conflict
shop.menu_items {"id": 40} conflict
shop.menu_items {"id": 6} conflict
shop.products {"id": 10} conflict
shop.slides {"id": 10000002} conflict
shop.slides {"id": 6} conflict' "a new comparison shows only the conflicts left unselected"
is "$(changes "$(prod -c "SELECT sync_compare('prod', 'test')")")" \
   'shop.cms_pages {"id": 10000001} conflict
shop.gallery_files {"id": 23} conflict
shop.menu_items {"id": 40} deleted
shop.menu_items {"id": 6} conflict
shop.products {"id": 10} modified
shop.slides {"id": 10000002} new
shop.slides {"id": 6} modified' "nor are the applied records conflicts the other way round"
is "$(prod -c "SELECT price, name FROM shop.products WHERE id = 10000001")" "49.90|Spring bouquet" \
   "a new record arrives with its internal id"
is "$(prod -c "SELECT last_value FROM shop.cms_blocks_id_seq")" "10000002" \
   "the target's sequence is moved to the highest id it received"
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
test_seqs=$(sequences on_test)
# Selected conflicts overwrite TEST's page, TEST's deletion of gallery file 23, TEST's label of
# menu item 6; PROD's slide 10000002 is new there, and its deletion of menu item 40 reaches TEST.
expected_summary='catalogue 0 1 0
cms 0 1 0
gallery 1 0 0
menus 0 1 1
mobile_app 0 0 0
sliders 1 1 0'
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
is "$(summary "$dry")" "$expected_summary" "a test import into TEST returns what it would write there, inserting too"
is "$(fingerprint_test)|$(log_size on_test)|$(sequences on_test)|$(on_test -c "SELECT count(*) FROM envsync.apply_requests")" \
   "$test_before|$test_log|$test_seqs|0" "and leaves no trace there either: content, change log, sequences, requests"
real=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$real")" "$expected_summary" "PROD > TEST writes what its test import announced"
sync2=$(cut -d'|' -f1 <<<"$real" | head -1)
is "$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $(prod -c "SELECT sync_compare('test', 'prod')")")" "0" \
   "the environments now agree"
is "$(on_test -c "SELECT title FROM shop.cms_pages WHERE id = 10000001")|$(on_test -c "SELECT label, url FROM shop.menu_items WHERE id = 6")|$(on_test -c "SELECT tags FROM shop.gallery_files WHERE id = 23")" \
   "News from PROD|Item 1.1.2|/gifts|{retouched}" "TEST's own records were overwritten with PROD's, as selected"
is "$(on_test -c "SELECT last_value FROM shop.slides_id_seq")|$(grep -o 'slides_id_seq:[^ ]*' <<<"$test_seqs")" "10000002|slides_id_seq:12" \
   "the synchronization, not its test import, moved TEST's sequence past the slide it received"

# --- Revert ----------------------------------------------------------------------------------------
reverted=$(prod -c "SELECT * FROM sync_revert($sync2)")
is "$(fingerprint_test)" "$test_before" "a revert gives TEST back exactly its content before the synchronization"
revert_id=$(cut -d'|' -f1 <<<"$reverted" | head -1)
is "$(prod -c "SELECT kind, reverts, status, inserted, updated, deleted, scheduled_by FROM envsync.syncs WHERE id = $revert_id")|$(prod -c "SELECT reverted_by FROM envsync.syncs WHERE id = $sync2")" \
   "revert|$sync2|succeeded|1|4|2|postgres|postgres" "the revert is recorded, with who reverted"
like "$(prod -c "SELECT * FROM sync_revert($sync2)")" "synchronization $sync2 is already reverted \(revert $revert_id\)" \
     "a synchronization is reverted once"
# The records it put back differ again, as they did before: TEST's own edits that it restored
# are conflicts again.
is "$(changes "$(prod -c "SELECT sync_compare('prod', 'test')")")" \
   'shop.cms_pages {"id": 10000001} conflict
shop.gallery_files {"id": 23} conflict
shop.menu_items {"id": 40} deleted
shop.menu_items {"id": 6} conflict
shop.products {"id": 10} modified
shop.slides {"id": 10000002} new
shop.slides {"id": 6} modified' "the reverted records differ again, TEST's own edits among them conflicts again"

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
trees() {   # the changes of comparison $1 that the trees made, selected or not
    prod -c "SELECT string_agg(table_name || ' ' || kind || ' ' || n, ', ' ORDER BY table_name::text)
               FROM (SELECT table_name, kind, count(*) AS n FROM envsync.changes WHERE comparison_id = $1
                        AND (key[1]::bigint >= 20000000 OR table_name::text LIKE 'shop.banner%') GROUP BY 1, 2) t"
}
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'menus', 'banners'])")
is "$(trees "$id")" "shop.banner_sets new 1, shop.banners new 1, shop.gallery_files new 6, shop.gallery_folders new 6, shop.menu_items new 5, shop.menus new 1" \
   "the trees are new records"
prod -c "SELECT sync_select($id, false)" -c "SELECT sync_select($id, true, ARRAY(SELECT change_id FROM envsync.changes
          WHERE comparison_id = $id AND (key[1]::bigint >= 20000000 OR table_name::text LIKE 'shop.banner%')))" >/dev/null
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" 'banners 2 0 0
gallery 12 0 0
menus 6 0 0' "new trees (parents, children, self references, a cycle between two tables) are written in one go"
is "$(trees "$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'menus', 'banners'])")")" "" "and arrive whole"
on_test -c "UPDATE shop.banner_sets SET cover_id = NULL" -c "DELETE FROM shop.banners" -c "DELETE FROM shop.banner_sets" \
        -c "DELETE FROM shop.gallery_files WHERE id > 20000000" -c "DELETE FROM shop.gallery_folders WHERE id > 20000000" \
        -c "DELETE FROM shop.menu_items WHERE id > 20000000" -c "DELETE FROM shop.menus WHERE id = 20000000" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'menus', 'banners'])")
prod -c "SELECT sync_select($id, false)" -c "SELECT sync_select($id, true, ARRAY(SELECT change_id FROM envsync.changes
          WHERE comparison_id = $id AND (key[1]::bigint >= 20000000 OR table_name::text LIKE 'shop.banner%')))" >/dev/null
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" 'banners 0 0 2
gallery 0 0 12
menus 0 0 6' "deleted trees are removed children first, cycle included"
is "$(prod -c "SELECT count(*) FROM shop.banners")|$(prod -c "SELECT count(*) FROM shop.gallery_folders WHERE id > 20000000")|$(prod -c "SELECT count(*) FROM shop.menu_items WHERE id > 20000000")" \
   "0|0|0" "and are gone"

# --- Changes made after the comparison -------------------------------------------------------------
on_test -c "UPDATE shop.cms_pages SET title = 'Draft A' WHERE id = 5" -c "UPDATE shop.cms_pages SET title = 'Draft B' WHERE id = 6" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
prod -c "UPDATE shop.cms_pages SET title = 'Edited on PROD meanwhile' WHERE id = 5" >/dev/null
before=$(fingerprint_prod)
out=$(prod -c "SELECT * FROM sync_apply($id)")
like "$out" '1 record changed in environment "prod" since the comparison' "a record edited in the target after the comparison stops the synchronization"
like "$out" 'DETAIL:  shop.cms_pages 5: changed' "the error lists the record"
is "$(fingerprint_prod)" "$before" "and nothing is written, not even the records that did not change"
is "$(prod -c "SELECT comparison_id, status, error_code, error_detail FROM envsync.syncs ORDER BY id DESC LIMIT 1")" \
   "$id|failed|55000|shop.cms_pages 5: changed" "the failed run is recorded"
is "$(prod -c "SELECT kind, payload->>'error' FROM envsync.outbox ORDER BY id DESC LIMIT 1")" \
   'sync_failed|1 record changed in environment "prod" since the comparison' "and its e-mail queued"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
on_test -c "DELETE FROM shop.cms_pages WHERE id = 6 AND NOT EXISTS (SELECT FROM shop.cms_blocks WHERE page_id = 6)" \
        -c "UPDATE shop.cms_pages SET title = 'Draft B2' WHERE id = 6" >/dev/null
like "$(prod -c "SELECT * FROM sync_apply($id)")" '1 record changed in environment "test" since the comparison.*DETAIL:  shop.cms_pages 6: changed' \
     "so does a record changed in the source"

# --- A failing constraint rolls everything back -----------------------------------------------------
# PROD's order items (never synchronized) still reference product 10, which TEST deletes.
on_test -c "DELETE FROM shop.order_items WHERE product_id = 10" -c "DELETE FROM shop.product_categories WHERE product_id = 10" \
        -c "DELETE FROM shop.products WHERE id = 10" \
        -c "INSERT INTO shop.categories (id, name, slug) VALUES (30000001, 'Outlet', 'outlet')" >/dev/null
prod -c "INSERT INTO shop.categories (id, name, slug) VALUES (30000002, 'Outlet PROD', 'outlet')" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['catalogue'])")
# Product 10 is a conflict (deleted in the source, changed in PROD by the revert above): overwritten.
prod -c "SELECT sync_select($id, false, kind => 'new')" \
     -c "SELECT sync_select($id, true, ARRAY(SELECT change_id FROM envsync.changes WHERE comparison_id = $id
                                              AND table_name = 'shop.products'::regclass AND key = '{10}'))" >/dev/null
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
is "$(prod -c "SELECT kind, status, error_code FROM envsync.syncs WHERE comparison_id = $id ORDER BY id")" "test import|failed|23503
synchronization|failed|23503" "both runs are recorded as failed"
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
# (Page 10000001 differs since the revert above; pages 5 and 6 since the refused runs.)
expected_changes='shop.cms_pages {"id": 10000001} conflict
shop.cms_pages {"id": 40000001} new
shop.cms_pages {"id": 40000002} new
shop.cms_pages {"id": 5} conflict
shop.cms_pages {"id": 6} conflict
shop.cms_pages {"id": 7} modified'
is "$(changes "$id")" "$expected_changes" "PROD > TEST: two new pages, one of them slow to write on TEST"
test_before=$(fingerprint_test)
prod_before=$(fingerprint_prod)
prod -c "SELECT * FROM sync_apply($id)" >"$repo/.apply_crash.out" &
applying=$!
sleeping() { [[ -n $(on_test -c "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'") ]]; }
if wait_for 30 sleeping; then
    "$cluster" crash test >/dev/null
    wait $applying
    like "$(cat "$repo/.apply_crash.out")" 'ERROR:  lost the connection to environment "test".DETAIL:  server closed the connection unexpectedly' \
         "TEST stopped mid-apply: the synchronization fails, naming TEST and what happened"
    "$cluster" start test >/dev/null
    is "$(fingerprint_test)" "$test_before" "TEST, restarted, holds none of the synchronization's writes"
    is "$(fingerprint_prod)" "$prod_before" "PROD is unchanged"
    is "$(prod -c "SELECT comparison_id, status, error_code FROM envsync.syncs ORDER BY id DESC LIMIT 1")" "$id|failed|08006" \
       "the run is recorded as failed"
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
prod -c "SELECT sync_select($id, false)" -c "SELECT sync_select($id, true, ARRAY(SELECT change_id FROM envsync.changes
          WHERE comparison_id = $id AND table_name = 'shop.slides'::regclass AND key[1] IN ('2', '3', '50000001')))" >/dev/null
before=$(fingerprint_prod)
sync4=$(prod -c "SELECT sync_id FROM sync_apply($id) LIMIT 1")
is "$(prod -c "SELECT inserted, updated, deleted FROM envsync.syncs WHERE id = $sync4")|$(prod -c "SELECT caption FROM shop.slides WHERE id = 2")" \
   "1|1|1|Reverted soon" "TEST > PROD: new, modified and deleted slides"
is "$(prod -c "SELECT revert_id = $sync4 + 1, module, inserted, updated, deleted FROM sync_revert($sync4)")" "t|sliders|1|1|1" \
   "reverted: the new slide deleted, the modified one put back, the deleted one inserted again"
is "$(fingerprint_prod)" "$before" "PROD holds exactly what it held before"

# --- A trigger in the target that alters what is written ---------------------------------------------
# The banner tables are empty on both sides since the trees above. Set 7 is made alike on both
# (a comparison takes that in); then each direction updates it and inserts a set.
prod -c "INSERT INTO shop.banner_sets (id, name) VALUES (7, 'Autumn')" >/dev/null
on_test -c "INSERT INTO shop.banner_sets (id, name) VALUES (7, 'Autumn')" >/dev/null
is "$(changes "$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['banners'])")")" "" "banner set 7 is alike on both sides"
for direction in "test prod 8 Autumn (test), New on test" "prod test 9 Autumn (prod), New on test, New on prod"; do
    read -r source target new_set written <<<"$direction"
    src=$([[ $source == prod ]] && echo prod || echo on_test)
    tgt=$([[ $target == prod ]] && echo prod || echo on_test)
    $tgt >/dev/null <<'SQL'
CREATE FUNCTION shop.stamp() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.name := NEW.name || ' (stamped)'; RETURN NEW; END $$;
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON shop.banner_sets FOR EACH ROW EXECUTE FUNCTION shop.stamp();
SQL
    $src -c "UPDATE shop.banner_sets SET name = 'Autumn ($source)' WHERE id = 7" \
         -c "INSERT INTO shop.banner_sets (id, name) VALUES ($new_set, 'New on $source')" >/dev/null
    id=$(prod -c "SELECT sync_compare('$source', '$target', ARRAY['banners'])")
    before=$($tgt -c "SELECT shop_fixture.fingerprint()")
    out=$(prod -c "SELECT * FROM sync_apply($id)")
    like "$out" "ERROR:  record 7 of table shop.banner_sets was not written as compared in environment \"$target\"" \
         "${source^^} > ${target^^}: a trigger in the target altering the written records fails the synchronization"
    like "$out" "DETAIL:  2 record\(s\) differ once written.*HINT:  A trigger or rule on table shop.banner_sets in environment \"$target\"" \
         "counting the inserted one too, and saying what to do"
    is "$(prod -c "SELECT status, error_code FROM envsync.syncs ORDER BY id DESC LIMIT 1")|$($tgt -c "SELECT shop_fixture.fingerprint()")" \
       "failed|27000|$before" "recorded as failed (27000); nothing is written"
    # A trigger that leaves envsync's own writes alone (envsync.applying) lets them through.
    $tgt -c "CREATE OR REPLACE FUNCTION shop.stamp() RETURNS trigger LANGUAGE plpgsql AS
             \$\$ BEGIN IF current_setting('envsync.applying', true) IS DISTINCT FROM 'on' THEN NEW.name := NEW.name || ' (stamped)'; END IF; RETURN NEW; END \$\$" >/dev/null
    id=$(prod -c "SELECT sync_compare('$source', '$target', ARRAY['banners'])")
    is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$($tgt -c "SELECT string_agg(name, ', ' ORDER BY id) FROM shop.banner_sets")" \
       "banners 1 1 0|$written" "one that skips envsync's writes lets the synchronization write them as compared"
    $tgt -c "DROP TRIGGER stamp ON shop.banner_sets" -c "DROP FUNCTION shop.stamp()" >/dev/null
done

# --- Who may synchronize ----------------------------------------------------------------------------
prod -c "DROP ROLE IF EXISTS shop_admin" -c "CREATE ROLE shop_admin LOGIN IN ROLE envsync_operator" -c "CREATE ROLE shop_guest LOGIN" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['sliders'])")
# (The slides edited on TEST above, differing again since the revert; those the revert of the
# PROD > TEST synchronization put back are PROD's own edits again, conflicts left unselected.)
like "$(prod -c "SET ROLE shop_admin" -c "SELECT * FROM sync_apply($id, true)")" "^[0-9]+\|sliders\|1\|1\|1$" "a member of envsync_operator may synchronize"
like "$(prod -c "SET ROLE shop_guest" -c "SELECT * FROM sync_apply($id, true)")" "permission denied for function sync_apply" "others may not"
like "$(on_test -c "SELECT * FROM sync_apply(1)")" "only from the production database" "TEST cannot start a synchronization"
like "$(prod -c "SELECT * FROM sync_apply(999999)")" "comparison 999999 does not exist" "an unknown comparison is named"
prod -c "DROP ROLE shop_admin" -c "DROP ROLE shop_guest" >/dev/null

done_testing
