#!/usr/bin/env bash
# Environments and tracking across the two clusters, where the clusters themselves are part of
# the test: schema differences, unreachable or misconfigured environments, edits made on TEST.
# Starts from a fresh sample shop (test/setup_shop.sh). TAP: prove --exec bash test/e2e/environments_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
test_port=${ENVSYNC_TEST_PORT:-55433}
db=${ENVSYNC_DB:-shop}

# A second login role on TEST with a password of this test's own, for extra foreign servers.
on_test -c "DROP ROLE IF EXISTS envsync_probe" -c "CREATE ROLE envsync_probe LOGIN PASSWORD 'probe-only-for-tests'" >/dev/null
on_test -d postgres -c "DROP DATABASE IF EXISTS plain" -c "CREATE DATABASE plain" \
        -c "DROP DATABASE IF EXISTS staging" -c "CREATE DATABASE staging" >/dev/null
on_test -d staging -c "SET client_min_messages = warning" -f "$repo/test/fixtures/shop_schema.sql" \
        -c "CREATE EXTENSION envsync CASCADE" >/dev/null
add_server() {   # add_server NAME DBNAME PASSWORD
    prod -c "DROP SERVER IF EXISTS $1 CASCADE" \
         -c "CREATE SERVER $1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$test_port', dbname '$2')" \
         -c "CREATE USER MAPPING FOR PUBLIC SERVER $1 OPTIONS (user 'envsync_probe', password '$3')" >/dev/null
}

# --- Edits on TEST are tracked there and read from PROD -------------------------------------
on_test -c "DELETE FROM envsync.row_log" -c "SELECT shop_fixture.diverge('test')" >/dev/null
is "$(prod -c "SELECT count(*) > 5, bool_or(applied) FROM envsync_env_test.row_log")" "t|f" \
   "content prepared on TEST is tracked on TEST as users' edits"
is "$(prod -c "SELECT count(*) FROM envsync_env_test.row_log l
                 WHERE NOT EXISTS (SELECT FROM envsync.environment_tables et
                                    WHERE et.environment = 'test' AND et.remote_table_id = l.table_id)")" "0" \
   "PROD knows every table TEST logs changes for"
is "$(prod -c "SELECT count(*) FROM envsync.row_log")" "0" "nothing was logged on PROD"

# --- A table that differs between the environments ------------------------------------------
on_test -c "ALTER TABLE shop.menus ADD COLUMN icon text" >/dev/null
out=$(prod -c "SELECT sync_add_module('menus', ARRAY['shop.menus', 'shop.menu_items']::regclass[])")
like "$out" 'table "shop.menus" differs between environments "prod" and "test"' "a column added on TEST stops the module"
like "$out" 'Column "icon" is missing in environment "prod"' "and the error names the column"
on_test -c "ALTER TABLE shop.menus DROP COLUMN icon" -c "ALTER TABLE shop.menus ALTER COLUMN location TYPE varchar(40)" >/dev/null
out=$(prod -c "SELECT sync_add_module('menus', ARRAY['shop.menus', 'shop.menu_items']::regclass[])")
like "$out" 'Column "location" is text in environment "prod" but character varying\(40\) in environment "test"' \
     "a column of another type is named with both types"
on_test -c "ALTER TABLE shop.menus ALTER COLUMN location TYPE text" -c "ALTER TABLE shop.menu_items RENAME TO menu_entries" >/dev/null
out=$(prod -c "SELECT sync_add_module('menus', ARRAY['shop.menus', 'shop.menu_items']::regclass[])")
like "$out" 'environment "test": table "shop.menu_items" does not exist' "a table missing on TEST is named"
on_test -c "ALTER TABLE shop.menu_entries RENAME TO menu_items" >/dev/null
ok "once TEST matches again (a dropped column left behind is fine), the module is accepted" \
   prod -v ON_ERROR_STOP=1 -c "SELECT sync_add_module('menus', ARRAY['shop.menus', 'shop.menu_items']::regclass[])"
is "$(prod -c "SELECT count(*) FROM envsync.synced_tables WHERE module = 'menus' AND tracked_in = '{prod,test}'")" "2" \
   "and tracked in both environments"

# --- Environments that cannot be used -------------------------------------------------------
add_server wrong_password "$db" "not-the-password"
out=$(prod -c "SELECT sync_add_environment('staging', 'wrong_password')")
like "$out" 'cannot connect to environment "staging"' "wrong credentials: cannot connect"
like "$out" 'password authentication failed' "with the server's reason"
like "$out" 'HINT: +Check the foreign server of environment "staging"' "and what to check"
[[ $out == *probe-only-for-tests* || $out == *not-the-password* ]] && leaked=yes || leaked=no
is "$leaked" "no" "no password appears in the error"
is "$(prod -c "SELECT count(*) FROM envsync.environments WHERE name = 'staging'")|$(prod -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'envsync_env_staging'")" \
   "0|0" "and nothing is left half-made"

add_server no_envsync plain "probe-only-for-tests"
out=$(prod -c "SELECT sync_add_environment('staging', 'no_envsync')")
like "$out" 'envsync is not installed in the database of environment "staging"' "envsync missing over there is said so"
like "$out" 'CREATE EXTENSION envsync CASCADE' "with the command that fixes it"

add_server not_granted "$db" "probe-only-for-tests"
out=$(prod -c "SELECT sync_add_environment('staging', 'not_granted')")
like "$out" 'may not use envsync in environment "staging"' "a link role without the grant is refused"
like "$out" "sync_grant_link" "with the grant to run"
on_test -v link_role=envsync_probe -f "$repo/test/fixtures/envsync_link.sql" >/dev/null
out=$(prod -c "SELECT sync_add_environment('staging', 'not_granted')")
like "$out" 'could not lock the tracking configuration of table' \
     "two environments naming the same database fail clearly instead of waiting forever"
add_server staging_server staging "probe-only-for-tests"
on_test -d staging -v link_role=envsync_probe -f "$repo/test/fixtures/envsync_link.sql" >/dev/null
ok "with sync_grant_link in its own database, an environment is added and its tables tracked" \
   prod -v ON_ERROR_STOP=1 -c "SELECT sync_add_environment('staging', 'staging_server')"
is "$(prod -c "SELECT count(*) FROM envsync.environment_tables WHERE environment = 'staging'")" \
   "$(prod -c "SELECT count(*) FROM envsync.module_tables")" "every module table is tracked in the new environment"
ok "an environment can be removed" prod -v ON_ERROR_STOP=1 -c "SELECT sync_remove_environment('staging')"
is "$(prod -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'envsync_env_staging'")" "0" "with its foreign tables"

# --- TEST down ------------------------------------------------------------------------------
"$cluster" stop test >/dev/null
out=$(prod -c "SELECT sync_add_module('banners', ARRAY['shop.campaigns']::regclass[])")
like "$out" 'never synchronized' "a refused table is reported even with TEST down"
out=$(prod -c "SELECT sync_set_row_filter('shop.system_settings', 'key', 'mobile_app.v2.%')")
like "$out" 'cannot connect to environment "test"' "TEST down: configuration fails clearly"
is "$(prod -c "SELECT filter_pattern FROM envsync.tracked_tables WHERE relid = 'shop.system_settings'::regclass")" \
   "mobile_app.%" "and PROD's catalog is unchanged"
"$cluster" start test >/dev/null

# --- Only PROD configures ---------------------------------------------------------------------
out=$(on_test -c "SELECT sync_add_module('cms', ARRAY['shop.cms_pages']::regclass[])")
like "$out" 'only from the production database' "TEST cannot configure synchronization"

# --- pg_dump and restore keep configuration and tracking -------------------------------------
on_test -d postgres -c "DROP DATABASE IF EXISTS restored" -c "CREATE DATABASE restored" >/dev/null
eval "$("$cluster" env test)"
pg_dump -Fc -d "$db" -f "${TMPDIR:-/tmp}/envsync-e2e.dump" && pg_restore -d restored "${TMPDIR:-/tmp}/envsync-e2e.dump" >/dev/null 2>&1
is "$?" "0" "a dump of TEST restores without errors"
is "$(on_test -d restored -c "SELECT count(*) FROM envsync.tracked_tables")|$(on_test -d restored -c "SELECT count(*) FROM pg_trigger WHERE tgname = 'envsync_track'")" \
   "12|12" "the restored database tracks the same tables"
is "$(on_test -d restored -c "SELECT count(*) FROM envsync.row_log")" "$(on_test -c "SELECT count(*) FROM envsync.row_log")" \
   "with the changes tracked so far"
on_test -d restored -c "UPDATE shop.menus SET name = name || '!' WHERE id = 1" >/dev/null
is "$(on_test -d restored -c "SELECT kind FROM envsync.row_log WHERE key = '{1}' AND table_id = (SELECT table_id FROM envsync.tracked_tables WHERE relid = 'shop.menus'::regclass)")" \
   "U" "and goes on tracking"
is "$(on_test -d restored -c "SELECT has_table_privilege('envsync_link', 'envsync.row_hashes', 'SELECT')")" "t" \
   "and PROD's link role still reads its row hashes"
on_test -d postgres -c "DROP DATABASE restored" >/dev/null
rm -f "${TMPDIR:-/tmp}/envsync-e2e.dump"

prod -c "DROP SERVER IF EXISTS wrong_password, no_envsync, not_granted, staging_server CASCADE" >/dev/null
on_test -d postgres -c "DROP DATABASE plain" -c "DROP DATABASE staging" >/dev/null
on_test -c "DROP OWNED BY envsync_probe" -c "DROP ROLE envsync_probe" >/dev/null
done_testing
