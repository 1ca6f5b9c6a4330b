#!/usr/bin/env bash
# (Re)loads the sample shop into both clusters and configures envsync from PROD:
# schema and generated content (identical on both sides), envsync in both databases, TEST's
# grant for PROD's link role, then PROD's environments and modules (fixtures/envsync_setup.sql).
#   test/setup_shop.sh [scale, default 1]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scale=${1:-1}
cluster=$repo/test/cluster.sh
fixtures=$repo/test/fixtures

"$cluster" start >/dev/null
# A fresh shop has no scheduler job: one left by an earlier test (pg_cron keeps it past DROP
# EXTENSION envsync) would run envsync.run_due_syncs() every minute, amid the next test's checks.
"$cluster" psql prod -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'envsync synchronizations'" -o /dev/null
for side in prod test; do
    "$cluster" psql "$side" <<'SQL'
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS envsync CASCADE;
DROP SCHEMA IF EXISTS shop, shop_fixture CASCADE;
DO $$
DECLARE
    link name;
BEGIN
    FOR link IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'envsync\_env\_%' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', link);
    END LOOP;
END
$$;
SQL
    "$cluster" psql "$side" -f "$fixtures/shop_schema.sql" -f "$fixtures/shop_generate.sql" \
        -c "SELECT shop_fixture.generate($scale)" -o /dev/null
    "$cluster" psql "$side" -c "SET client_min_messages = warning" -c "CREATE EXTENSION envsync CASCADE"
done
"$cluster" psql test -v link_role=envsync_link -f "$fixtures/envsync_link.sql" -o /dev/null
"$cluster" psql prod -f "$fixtures/envsync_setup.sql" -o /dev/null

# TEST's administrator, whom PROD's tests (pgTAP) reach through foreign server test_editor to
# edit TEST and read its change log in one remote transaction. envsync's own link role may only
# read there.
{ set +x; } 2>/dev/null
pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
eval "$("$cluster" env test)"
printf '%s\n' "SET log_min_error_statement = panic;" \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_admin_tests') THEN CREATE ROLE shop_admin_tests LOGIN SUPERUSER; END IF; END \$\$;" \
    "ALTER ROLE shop_admin_tests PASSWORD '$pw';" | "$cluster" psql test -o /dev/null
printf '%s\n' "SET log_min_error_statement = panic;" "SET client_min_messages = warning;" \
    "DROP SERVER IF EXISTS test_editor CASCADE;" \
    "CREATE SERVER test_editor FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$PGPORT', dbname '$PGDATABASE');" \
    "CREATE USER MAPPING FOR CURRENT_USER SERVER test_editor OPTIONS (user 'shop_admin_tests', password '$pw');" | "$cluster" psql prod -o /dev/null
unset pw
