#!/usr/bin/env bash
# Soak (not CI): many tracked writes over many rounds of comparing and applying, both
# directions, to see that what envsync keeps stays bounded and a comparison costs the same in
# the last round as in the first. Each round writes WRITES/ROUNDS rows (half on PROD, half on
# TEST, in two disjoint halves of the table), compares (PROD > TEST on even rounds, TEST > PROD
# on odd), applies the comparison and runs the scheduler's housekeeping (CALL
# envsync.run_due_syncs()), with before-images and history kept 0 s so that their retention is
# exercised too. Per round it prints the comparison's and the apply's seconds, the change log's
# entries and the size of envsync's tables on each side (after a VACUUM ANALYZE, as autovacuum
# would in time) and the changes kept; then the last round's comparison time against round 2's.
#   test/bench/soak.sh [tracked writes, default 1000000] [rounds, default 20] [rows, default 100000]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
writes=${1:-1000000}
rounds=${2:-20}
rows=${3:-100000}
source "$repo/test/bench/lib.sh"
trap bench_cleanup EXIT

bench_databases "
    CREATE TABLE bench.items (id integer PRIMARY KEY, name text NOT NULL, n integer NOT NULL, note text);
    INSERT INTO bench.items SELECT g, 'item ' || g, 0, repeat(md5(g::text), 4) FROM generate_series(1, $rows) g;"
bench_link
psql_prod -c "SELECT sync_add_module('bench', ARRAY['bench.items']::regclass[])" >/dev/null
psql_prod -c "SELECT sync_compare('prod', 'test')" >/dev/null   # the pair's first comparison

per_side=$(( writes / rounds / 2 ))
half=$(( rows / 2 ))
(( per_side <= half )) || { echo "at most $half writes per side and round: use more rows or rounds" >&2; exit 1; }
sizes() {   # rows of the change log / total size of envsync's tables, in the bench database
    "$@" -c "SELECT (SELECT count(*) FROM envsync.row_log) || ' / ' ||
                    pg_size_pretty(sum(pg_total_relation_size(c.oid)))
               FROM pg_class c WHERE c.relnamespace = 'envsync'::regnamespace AND c.relkind = 'r'"
}
seconds() {   # seconds SQL: wall-clock seconds of SQL, committed
    local t0 t1
    t0=$(date +%s.%N)
    psql_prod -c "$1" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
printf '%5s %9s %9s %9s %24s %24s %9s\n' round writes compare apply "PROD log / envsync" "TEST log / envsync" changes
first= last= done_writes=0
for ((r = 1; r <= rounds; r++)); do
    # Each side rewrites per_side rows of its own half, a different stretch each round.
    start=$(( (r * per_side) % (half - per_side + 1) ))
    psql_prod -c "UPDATE bench.items SET n = n + 1 WHERE id > $start AND id <= $start + $per_side" >/dev/null
    psql_test -c "UPDATE bench.items SET n = n + 1 WHERE id > $half + $start AND id <= $half + $start + $per_side" >/dev/null
    done_writes=$(( done_writes + 2 * per_side ))
    if (( r % 2 == 0 )); then dir="'prod', 'test'"; else dir="'test', 'prod'"; fi
    t0=$(date +%s.%N)
    id=$(psql_prod -c "SELECT sync_compare($dir)")
    t1=$(date +%s.%N)
    compare=$(echo "$t1 - $t0" | bc)
    apply=$(seconds "SELECT * FROM sync_apply($id)")
    psql_prod -c "SET envsync.keep_before_images = '0'" -c "SET envsync.keep_history = '0'" -c "CALL envsync.run_due_syncs()" >/dev/null
    # what autovacuum does in time (vacuum, analyze), done now so that the sizes show what is kept
    for side in psql_prod psql_test; do $side -c "VACUUM ANALYZE envsync.row_log, envsync.compare_changes, envsync.unsynced, envsync.apply_requests, envsync.sync_points" >/dev/null 2>&1; done
    changes=$(psql_prod -c "SELECT count(*) FROM envsync.compare_changes")
    printf '%5d %9d %9.2f %9.2f %24s %24s %9s\n' "$r" "$done_writes" "$compare" "$apply" \
        "$(sizes psql_prod)" "$(sizes psql_test)" "$changes"
    (( r == 2 )) && first=$compare
    last=$compare
done
# Round 1 has a third fewer differences (nothing carried over yet): round 2 is the baseline.
printf 'comparison time, last round / round 2: %.2f\n' "$(echo "$last / $first" | bc -l)"
