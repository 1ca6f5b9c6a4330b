#!/usr/bin/env bash
# Synchronization cost, PROD > TEST on the two local clusters, each measured in the same run:
#   sync_apply   the selected changes of a comparison written into TEST (checked against the
#                comparison on both sides, staged, applied in one remote statement)
#   baseline     a plain INSERT INTO <postgres_fdw foreign table> SELECT ... of as many rows,
#                batch_size 1000, into the same table on TEST (new ids; tracked, as synced tables are)
# Changes: 40 % new, 40 % modified, 20 % deleted records of a table of about 400-byte rows.
# Each run is a transaction that is rolled back (on TEST too), so every repetition starts from
# the same state; times are the server's (psql \timing), in a fresh session each, rounds rotated.
#   test/bench/apply.sh [changes, default 100000] [repetitions, default 5]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
changes=${1:-100000}
reps=${2:-5}
cluster=$repo/test/cluster.sh
db=envsync_bench
"$cluster" start >/dev/null
eval "$("$cluster" env test)"; test_port=$PGPORT
psql_prod() { PGOPTIONS='-c client_min_messages=warning' "$cluster" psql prod -d "$db" -At "$@"; }
psql_test() { "$cluster" psql test -d "$db" -At "$@"; }
rows=$(( changes * 2 ))   # rows per side before the changes

for side in prod test; do
    "$cluster" psql "$side" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
    "$cluster" psql "$side" -d "$db" -c "SET client_min_messages = warning" -c "
        CREATE EXTENSION envsync CASCADE;
        CREATE SCHEMA bench;
        CREATE TABLE bench.pages (id bigint PRIMARY KEY, title text NOT NULL, body text, meta jsonb,
                                  price numeric(12,2), tags text[], updated_at timestamptz NOT NULL);
        INSERT INTO bench.pages
        SELECT g, 'Page ' || g, repeat(md5(g::text), 6), jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7)),
               (g % 1000) + 0.5, ARRAY['t' || g % 10, 'x'], timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
          FROM generate_series(1, $rows) g;" -c "VACUUM ANALYZE" >/dev/null
done
pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "SET log_min_error_statement = panic;" \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envsync_bench_link') THEN CREATE ROLE envsync_bench_link LOGIN; END IF; END \$\$;" \
    "ALTER ROLE envsync_bench_link PASSWORD '$pw';" \
    "GRANT USAGE ON SCHEMA bench TO envsync_bench_link;" \
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA bench TO envsync_bench_link;" \
    "SELECT sync_grant_link('envsync_bench_link');" | psql_test >/dev/null
printf '%s\n' "SET log_min_error_statement = panic;" \
    "CREATE SERVER bench_test FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$test_port', dbname '$db');" \
    "CREATE USER MAPPING FOR PUBLIC SERVER bench_test OPTIONS (user 'envsync_bench_link', password '$pw');" | psql_prod >/dev/null
psql_prod -c "SELECT sync_add_environment('prod')" -c "SELECT sync_add_environment('test', 'bench_test')" \
          -c "SELECT sync_add_module('bench', ARRAY['bench.pages']::regclass[])" \
          -c "CREATE SCHEMA baseline" \
          -c "IMPORT FOREIGN SCHEMA bench LIMIT TO (pages) FROM SERVER bench_test INTO baseline" \
          -c "ALTER FOREIGN TABLE baseline.pages OPTIONS (ADD batch_size '1000')" >/dev/null
psql_prod -c "SELECT sync_compare('prod', 'test')" >/dev/null   # the pair's first comparison
new=$(( changes * 4 / 10 )) modified=$(( changes * 4 / 10 )) deleted=$(( changes - changes * 8 / 10 ))
psql_prod -c "
    INSERT INTO bench.pages SELECT $rows + g, 'New ' || g, repeat(md5((-g)::text), 6), jsonb_build_object('new', g),
           g % 100, ARRAY['n'], now() FROM generate_series(1, $new) g;
    UPDATE bench.pages SET title = title || ' (PROD)', price = price + 1 WHERE id <= $modified;
    DELETE FROM bench.pages WHERE id > $rows - $deleted AND id <= $rows;" -c "VACUUM ANALYZE" >/dev/null
id=$(psql_prod -c "SELECT sync_compare('prod', 'test')")
count=$(psql_prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $id AND selected")
echo "== $count changes selected ($new new, $modified modified, $deleted deleted) of a $rows-row table"
# The rows the baseline inserts: as many of PROD's records, under ids TEST does not have.
baseline="INSERT INTO baseline.pages SELECT id + 100000000, title, body, meta, price, tags, updated_at
            FROM bench.pages ORDER BY id DESC LIMIT $count"

timed() {   # timed SQL: server seconds (psql's \timing) of SQL in a rolled-back transaction
    psql_prod <<SQL | awk '/^Time: / { t = $2 } END { printf "%.3f", t / 1000 }'
BEGIN;
\\timing on
\\o /dev/null
$1;
\\o
\\timing off
ROLLBACK;
SQL
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

check=$(psql_prod <<SQL
BEGIN;
SELECT sum(inserted) || '/' || sum(updated) || '/' || sum(deleted) FROM sync_apply($id);
ROLLBACK;
SQL
)
echo "sync_apply writes (inserted/updated/deleted): $check"
[[ $check == "$new/$modified/$deleted" ]] || { echo "UNEXPECTED: the synchronization did not write every change" >&2; exit 1; }

ours=() base=() ratios=()
for r in $(seq "$reps"); do
    if (( r % 2 )); then
        o=$(timed "SELECT * FROM sync_apply($id)"); b=$(timed "$baseline")
    else
        b=$(timed "$baseline"); o=$(timed "SELECT * FROM sync_apply($id)")
    fi
    ours+=("$o") base+=("$b")
    ratios+=("$(awk -v o="$o" -v b="$b" 'BEGIN { printf "%.2f", o / b }')")
done
o=$(median "${ours[*]}"); b=$(median "${base[*]}")
printf 'median s: sync_apply %s, baseline %s  (runs: %s | %s)\n' "$o" "$b" "${ours[*]}" "${base[*]}"
awk -v o="$o" -v b="$b" -v r="$(median "${ratios[*]}")" 'BEGIN {
    printf "sync_apply / baseline = %.2fx (median of rounds %.2fx; goal <= 2x)\n", o / b, r }'
printf 'per-round ratios: %s\n' "${ratios[*]}"

[[ -n ${ENVSYNC_BENCH_KEEP:-} ]] && exit 0
for side in prod test; do
    "$cluster" psql "$side" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
"$cluster" psql test -d postgres -c "DROP OWNED BY envsync_bench_link" -c "DROP ROLE envsync_bench_link" >/dev/null 2>&1 || true
