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
"$cluster" psql test -c "SELECT sync_grant_link('envsync_link')" -o /dev/null
"$cluster" psql prod -f "$fixtures/envsync_setup.sql" -o /dev/null
