#!/usr/bin/env bash
# The change trigger under concurrent load: two clients writing a tracked table while another
# session keeps invalidating the table's cached description (ANALYZE): every write is logged
# once, and no backend dies. TAP: prove --exec bash test/e2e/tracking_concurrency_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/tap.sh"
cluster=$repo/test/cluster.sh
db=envsync_concurrency
"$cluster" start prod >/dev/null
eval "$("$cluster" env prod)"
export PGDATABASE=$db
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@" 2>&1; }
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT

sql -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
sql -c "SET client_min_messages = warning" -c "CREATE EXTENSION envsync CASCADE" \
    -c "SELECT sync_add_environment('prod')" -c "CREATE SCHEMA b" \
    -c "CREATE TABLE b.pages (id bigserial PRIMARY KEY, title text NOT NULL, body text, meta jsonb,
                              price numeric(12,2), tags text[], updated_at timestamptz NOT NULL DEFAULT now())" \
    -c "SELECT sync_add_module('pages', ARRAY['b.pages']::regclass[])" >/dev/null
cat >"$work/write.sql" <<'SQL'
INSERT INTO b.pages (title, body, meta, price, tags) VALUES ('New', repeat('x', 256), '{"new": true}', 9.99, '{new}');
UPDATE b.pages SET price = price + 1 WHERE id = (SELECT max(id) FROM b.pages);
SQL
server_log=${PGHOST%/run}/prod.log   # the cluster directory holds the socket directory and the logs
crashes() { grep -c 'terminated by signal' "$server_log" 2>/dev/null || true; }
crashes_before=$(crashes)
(for _ in $(seq 200); do psql -X -q -c "ANALYZE b.pages" >/dev/null 2>&1; done) &
analyzer=$!
out=$(pgbench -n -M prepared -c 2 -j 2 -T 8 -f "$work/write.sql" 2>&1)
status=$?
wait "$analyzer"
is "$status" "0" "pgbench's writes all succeed while the table's description keeps changing"
is "$(crashes)" "$crashes_before" "no backend died"
written=$(sql -c "SELECT count(*) FROM b.pages")
is "$(sql -c "SELECT count(*) FILTER (WHERE kind = 'I') || '/' || count(*) FILTER (WHERE kind = 'U') FROM envsync.row_log")" \
   "$written/$(( $(awk '/number of transactions actually processed/ {print $6}' <<<"$out") ))" \
   "every insert and every update is logged once"
done_testing
