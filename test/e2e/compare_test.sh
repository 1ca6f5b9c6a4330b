#!/usr/bin/env bash
# sync_compare on the two clusters: the sample shop with the known differences of
# shop_fixture.diverge() on each side (test/fixtures/shop_generate.sql lists them).
# TAP: prove --exec bash test/e2e/compare_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
# The changes of a comparison, one line each: table key kind [reason] [selected]
changes() {
    prod -F ' ' -c "SELECT table_name, record_key::text, kind, coalesce(conflict_reason, '-'), selected
                      FROM envsync.changes WHERE comparison_id = $1
                     ORDER BY table_name::text COLLATE \"C\", key::text COLLATE \"C\""
}

on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" >/dev/null

# --- TEST > PROD, all records ------------------------------------------------------------------
id=$(prod -c "SELECT sync_compare('test', 'prod')")
like "$id" '^[0-9]+$' "sync_compare('test', 'prod') returns the comparison's id"
expected='shop.cms_blocks {"id": 10000001} new - t
shop.cms_blocks {"id": 10000002} new - t
shop.cms_pages {"id": 10000001} conflict created on both sides f
shop.gallery_files {"id": 10000001} new - t
shop.gallery_files {"id": 17} deleted - t
shop.gallery_files {"id": 23} conflict deleted in source f
shop.menu_items {"id": 10000001} new - t
shop.menu_items {"id": 40} conflict deleted in target f
shop.menu_items {"id": 6} conflict changed on both sides f
shop.product_categories {"product_id": 10000001, "category_id": 2} new - t
shop.product_categories {"product_id": 5, "category_id": 9} deleted - t
shop.products {"id": 10000001} new - t
shop.products {"id": 10} conflict changed in target f
shop.products {"id": 3} modified - t
shop.sliders {"id": 1} modified - t
shop.slides {"id": 10000002} conflict created in target f
shop.slides {"id": 1} modified - t
shop.slides {"id": 6} conflict changed in target f
shop.system_settings {"key": "mobile_app.theme"} modified - t'
is "$(changes "$id")" "$expected" \
   "every difference is listed with its kind and conflict reason (all six of them); conflicts are not selected"
is "$(prod -c "SELECT conflicts, new, modified, deleted, selected, full_compare, status FROM envsync.comparisons WHERE id = $id")" \
   "7|6|4|2|12|t|ready" "envsync.comparisons counts each kind; the first comparison of the pair reads in full"
is "$(prod -c "SELECT source_row IS NULL, target_row->>'tags' FROM envsync.changes WHERE comparison_id = $id AND table_name = 'shop.gallery_files'::regclass AND key = '{23}'")" \
   "t|{retouched}" "a record deleted in the source and changed in the target is a conflict \"deleted in source\", with the target's row only"
is "$(prod -c "SELECT changed_columns, source_row->>'label', target_row->>'url' FROM envsync.changes WHERE comparison_id = $id AND table_name = 'shop.menu_items'::regclass AND key = '{6}'")" \
   "{label,url}|Gift ideas|/gifts" "a record changed on both sides names the columns either side changed"
is "$(prod -c "SELECT changed_columns FROM envsync.changes WHERE comparison_id = $id AND table_name = 'shop.products'::regclass AND key = '{3}'")" \
   "{price}" "a modified record names its changed columns"
is "$(prod -c "SELECT source_row->>'caption' FROM envsync.changes WHERE comparison_id = $id AND table_name = 'shop.slides'::regclass AND key = '{1}'")" \
   "Wiosenna wyprzedaż −30 %" "and carries the source row and the target row"
# The list above holds neither PROD's new user, order and order item nor TEST's shop.name, though
# they differ:
is "$(prod -c "SELECT count(*) FROM shop.users WHERE id = 10000001")|$(on_test -c "SELECT count(*) FROM shop.users WHERE id = 10000001")|$(on_test -c "SELECT value FROM shop.system_settings WHERE key = 'shop.name'")|$(prod -c "SELECT value FROM shop.system_settings WHERE key = 'shop.name'")" \
   '1|0|"Demo shop TEST"|"Demo shop"' "never-synced records and settings outside the row filter differ, and are not listed"
is "$(prod -c "SELECT kind, recipient, payload->>'source', payload->'modules'->1 FROM envsync.outbox WHERE payload->>'comparison_id' = '$id'")" \
   'comparison_finished|dba@shop.example|test|{"new": 2, "module": "cms", "deleted": 0, "modified": 0, "conflicts": 1}' \
   "the e-mail to the operator is queued with the summary per module"

id2=$(prod -c "SELECT sync_compare('test', 'prod')")
is "$(changes "$id2")" "$expected" "a second comparison, driven by change tracking, finds the same"
is "$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $id2")|$(prod -c "SELECT status FROM envsync.comparisons WHERE id = $id")" \
   "f|superseded" "it is incremental, and supersedes the first"
id3=$(prod -c "SELECT sync_compare('test', 'prod', full_compare => true)")
is "$(changes "$id3")" "$expected" "a forced full comparison finds the same too"

# --- Changes after a comparison are seen by the next one ------------------------------------------
prod -c "UPDATE shop.products SET description = (SELECT description FROM shop.products WHERE id = 11) WHERE id = 10" >/dev/null
on_test -c "UPDATE shop.products SET description = (SELECT description FROM shop.products WHERE id = 11) WHERE id = 10" \
        -c "UPDATE shop.menus SET name = 'Main menu (TEST)' WHERE id = 1" >/dev/null
id4=$(prod -c "SELECT sync_compare('test', 'prod')")
# The first list without products 10 (alike now), with menus 1 (edited on TEST).
expected4=$(grep -v '^shop.products {"id": 10} ' <<<"$expected" | sed 's/^\(shop.menu_items {"id": 6} .*\)$/\1\nshop.menus {"id": 1} modified - t/')
is "$(changes "$id4")" "$expected4" \
   "a record made alike on both sides is in sync again; an edit on TEST after the last comparison is found"
is "$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $id4")" "f" "by change tracking alone"

# --- No false differences -------------------------------------------------------------------------
# The same values written differently on TEST (its session has another TimeZone and DateStyle too).
on_test -c "UPDATE shop.products SET weight_kg = weight_kg::numeric(12,4) WHERE id BETWEEN 20 AND 40" \
        -c "UPDATE shop.cms_pages SET meta = (SELECT jsonb_object_agg(k, v) FROM jsonb_each(meta) AS e(k, v)) WHERE id = 2" \
        -c "SET TimeZone = 'Asia/Tokyo'" -c "UPDATE shop.slides SET valid_from = (valid_from AT TIME ZONE 'Asia/Tokyo')::timestamp WHERE id = 2" \
        -c "UPDATE shop.gallery_files SET tags = tags, width = width WHERE id = 3" >/dev/null
is "$(on_test -c "SELECT string_agg(format('%s:%s', table_name, n), ' ' ORDER BY table_name::text)
                    FROM (SELECT table_name, count(*) AS n FROM envsync.tracked_changes WHERE updated GROUP BY 1) t")" \
   "shop.cms_pages:1 shop.gallery_files:1 shop.menus:1 shop.products:22 shop.slides:1" \
   "the rewrites are tracked on TEST, so the next comparison reads those records again (the edits the last one took in stay logged until the next: PROD has recorded them only once it committed)"
idf=$(prod -c "SELECT sync_compare('test', 'prod')")
is "$(changes "$idf")" "$expected4" \
   "values equal to PostgreSQL (numeric scale, jsonb written anew, one instant in another zone, arrays with NULLs) are no difference"
is "$(on_test -c "SELECT count(*) FROM shop.products WHERE id BETWEEN 20 AND 40 AND (weight_kg IS NULL OR weight_kg::text LIKE '%.%000')")" "21" \
   "though their text differs on TEST"
like "$(on_test -c "SELECT sync_compare('test', 'prod')")" 'only from the production database' "TEST cannot start a comparison"

# --- Mode, modules, scope --------------------------------------------------------------------------
idn=$(prod -c "SELECT sync_compare('test', 'prod', mode => 'new')")
is "$(changes "$idn")" 'shop.cms_blocks {"id": 10000001} new - t
shop.cms_blocks {"id": 10000002} new - t
shop.cms_pages {"id": 10000001} conflict created on both sides f
shop.gallery_files {"id": 10000001} new - t
shop.menu_items {"id": 10000001} new - t
shop.product_categories {"product_id": 10000001, "category_id": 2} new - t
shop.products {"id": 10000001} new - t' "mode 'new' lists only new records and those created on both sides"
idm=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['mobile_app'])")
is "$(prod -c "SELECT modules, added_modules FROM envsync.comparisons WHERE id = $idm")" "{gallery,mobile_app}|{gallery}" \
   "mobile_app brings gallery along, and says so"
is "$(changes "$idm")" 'shop.gallery_files {"id": 10000001} new - t
shop.gallery_files {"id": 17} deleted - t
shop.gallery_files {"id": 23} conflict deleted in source f
shop.system_settings {"key": "mobile_app.theme"} modified - t' "only the chosen modules are listed"
ids=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery'], scope => '{\"gallery\": [1]}')")
is "$(changes "$ids")" 'shop.gallery_files {"id": 10000001} new - t' "a scope keeps only the chosen gallery folders and their files"

# --- The other direction ---------------------------------------------------------------------------
idr=$(prod -c "SELECT sync_compare('prod', 'test')")
is "$(changes "$idr")" \
'shop.cms_blocks {"id": 10000001} conflict created in target f
shop.cms_blocks {"id": 10000002} conflict created in target f
shop.cms_pages {"id": 10000001} conflict created on both sides f
shop.gallery_files {"id": 10000001} conflict created in target f
shop.gallery_files {"id": 17} conflict deleted in target f
shop.gallery_files {"id": 23} conflict deleted in target f
shop.menu_items {"id": 10000001} conflict created in target f
shop.menu_items {"id": 40} deleted - t
shop.menu_items {"id": 6} conflict changed on both sides f
shop.menus {"id": 1} conflict changed in target f
shop.product_categories {"product_id": 10000001, "category_id": 2} conflict created in target f
shop.product_categories {"product_id": 5, "category_id": 9} conflict deleted in target f
shop.products {"id": 10000001} conflict created in target f
shop.products {"id": 3} conflict changed in target f
shop.sliders {"id": 1} conflict changed in target f
shop.slides {"id": 10000002} new - t
shop.slides {"id": 1} conflict changed in target f
shop.slides {"id": 6} modified - t
shop.system_settings {"key": "mobile_app.theme"} conflict changed in target f' \
   "PROD > TEST: TEST's own edits are conflicts (every reason again), PROD's edits are modifications"

# --- Selecting -------------------------------------------------------------------------------------
product=$(prod -c "SELECT change_id FROM envsync.changes WHERE comparison_id = $id2 AND table_name = 'shop.products'::regclass AND key = '{10000001}'")
link=$(prod -c "SELECT change_id FROM envsync.changes WHERE comparison_id = $id2 AND table_name = 'shop.product_categories'::regclass AND key = '{10000001,2}'")
out=$(prod -c "SELECT sync_select($id2, false, ARRAY[$product])")
like "$out" 'needs record \{"id": 10000001\} of shop.products, which is new and not selected' \
     "deselecting a new parent whose child stays selected is refused, naming both"
is "$(prod -c "SELECT sync_select($id2, false, ARRAY[$link, $product])")" "2" "deselecting both at once is fine"
catalogue() { prod -F ' ' -c "SELECT record_key::text, kind, selected FROM envsync.changes WHERE comparison_id = $id2 AND module = 'catalogue'
                                ORDER BY table_name::text COLLATE \"C\", key::text COLLATE \"C\""; }
is "$(catalogue)" '{"product_id": 10000001, "category_id": 2} new f
{"product_id": 5, "category_id": 9} deleted t
{"id": 10000001} new f
{"id": 10} conflict f
{"id": 3} modified t' "exactly those two are deselected"
out=$(prod -c "UPDATE envsync.changes SET selected = true WHERE change_id = $link")
like "$out" 'ERROR: +record \{"product_id": 10000001, "category_id": 2\} of shop.product_categories needs record \{"id": 10000001\} of shop.products' \
     "selecting the child alone is refused"
is "$(prod -c "SELECT selected FROM envsync.changes WHERE change_id = $link")" "f" "and leaves it unselected"
is "$(prod -c "SELECT sync_select($id2, true, module => 'catalogue')")" "3" "a whole module can be selected (its conflict too)"
is "$(catalogue | grep -c ' t$')" "5" "all five of its changes"
is "$(prod -c "SELECT sync_select($id2, false, kind => 'conflict')")" "1" "and a kind deselected (the one conflict selected)"
is "$(prod -c "SELECT string_agg(DISTINCT kind, ',') FROM envsync.changes WHERE comparison_id = $id2 AND NOT selected")" "conflict" \
   "so that every conflict, and only those, are unselected"
out=$(prod -c "UPDATE envsync.changes SET kind = 'deleted' WHERE change_id = $link")
like "$out" 'ERROR: +only the selection of a change can be altered' "nothing else of a change can be altered"
is "$(prod -c "SELECT kind FROM envsync.changes WHERE change_id = $link")" "new" "and it stays as it was"

# --- Who may compare -------------------------------------------------------------------------------
prod -c "DROP ROLE IF EXISTS envsync_regress_alice" -c "CREATE ROLE envsync_regress_alice LOGIN" >/dev/null
out=$(prod -U envsync_regress_alice -c "SELECT sync_compare('test', 'prod')")
like "$out" 'permission denied for function sync_compare' "a role without envsync_operator cannot compare"
prod -c "GRANT envsync_operator TO envsync_regress_alice" -c "SELECT sync_set_operator('envsync_regress_alice', 'alice@shop.example')" >/dev/null
ida=$(prod -U envsync_regress_alice -c "SELECT sync_compare('test', 'prod')")
like "$(prod -c "SET ROLE envsync_regress_alice" -c "SELECT started_by FROM envsync.comparisons WHERE id = $(prod -c "SET ROLE envsync_regress_alice" -c "SELECT sync_compare('test', 'prod')")")" \
     '^postgres$' "a comparison is recorded as started by the session's own role, whatever SET ROLE says"
is "$(prod -c "SELECT started_by FROM envsync.comparisons WHERE id = $ida")|$(prod -c "SELECT recipient FROM envsync.outbox WHERE payload->>'comparison_id' = '$ida'")" \
   "envsync_regress_alice|alice@shop.example" "an operator compares, and the e-mail goes to that operator"
is "$(prod -U envsync_regress_alice -c "SELECT count(*) > 0 FROM envsync.changes WHERE comparison_id = $ida")" "t" \
   "and reads the changes"
prod -c "SELECT sync_remove_operator('envsync_regress_alice')" -c "DROP ROLE envsync_regress_alice" >/dev/null

# --- Errors leave no comparison behind ---------------------------------------------------------------
before=$(prod -c "SELECT count(*) FROM envsync.comparisons")
like "$(prod -c "SELECT sync_compare('stage', 'prod')")" 'environment "stage" does not exist' "an unknown environment is named"
like "$(prod -c "SELECT sync_compare('prod', 'prod')")" 'source and target are both environment "prod"' "source = target is refused"
like "$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['blog'])")" 'module "blog" does not exist' "an unknown module is named"
like "$(prod -c "SELECT sync_compare('test', 'prod', mode => 'some')")" 'unknown mode "some"' "a bad mode is refused"
like "$(prod -c "SELECT sync_compare('test', 'prod', scope => '{\"cms\": [1]}')")" 'module "cms" has no records to pick' "a bad scope is refused"
on_test -c "ALTER TABLE shop.slides ADD COLUMN alt_text text" >/dev/null
out=$(prod -c "SELECT sync_compare('test', 'prod')")
like "$out" 'table "shop.slides" differs between environments "prod" and "test"' "a table changed on TEST stops the comparison"
like "$out" 'Column "alt_text" is missing in environment "prod"' "naming the column"
on_test -c "ALTER TABLE shop.slides DROP COLUMN alt_text" >/dev/null
"$cluster" stop test >/dev/null
like "$(prod -c "SELECT sync_compare('test', 'prod')")" 'cannot connect to environment "test"' "TEST unreachable: a clear error"
"$cluster" start test >/dev/null
# Wrong credentials: the user mapping's password no longer matches; then both get a new one.
wrong=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
printf "ALTER USER MAPPING FOR PUBLIC SERVER test_server OPTIONS (SET password '%s');\n" "$wrong" | prod >/dev/null
out=$(prod -c "SELECT sync_compare('test', 'prod')")
like "$out" 'cannot connect to environment "test"' "wrong credentials: a clear error"
like "$out" 'password authentication failed' "with the server's reason"
[[ $out == *"$wrong"* ]] && leaked=yes || leaked=no
is "$leaked" "no" "and no password in it"
fresh=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf "SET log_min_error_statement = panic;\nALTER ROLE envsync_link PASSWORD '%s';\n" "$fresh" | "$cluster" psql test >/dev/null
printf "ALTER USER MAPPING FOR PUBLIC SERVER test_server OPTIONS (SET password '%s');\n" "$fresh" | prod >/dev/null
is "$(prod -c "SELECT count(*) FROM envsync.comparisons")" "$before" "and no comparison is left half-written"
like "$(prod -c "SELECT sync_compare('test', 'prod')")" '^[0-9]+$' "with the credentials right again, comparing works"
done_testing
