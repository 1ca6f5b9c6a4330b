#!/usr/bin/env bash
# Comparison cost, PROD and TEST on the two local clusters, each measured in the same run:
#   incremental  sync_compare() driven by change tracking (the normal case)
#   full         sync_compare(full_compare => true): every row hashed where it lives
#   naive        FULL JOIN of the local table with its postgres_fdw twin, IS DISTINCT FROM on
#                whole rows (every row crosses the network)
# at two table sizes, with the same 1,000 changes on each side; rows of about 400 bytes. Each comparison runs in a
# transaction that is rolled back, so every repetition sees the same state; times are the
# server's (psql \timing), in a fresh session each. The differing keys
# found by the three are checked to be the same. Peak private memory of the backend is
# VmHWM - RssShmem (shared buffers touched are not the backend's own).
#   test/bench/compare.sh [rows per side for the large run, default 1000000] [repetitions, default 3]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
large=${1:-1000000}
reps=${2:-3}
source "$repo/test/bench/lib.sh"

setup() {   # setup ROWS: identical tables on both sides, half pages and half files
    local rows=$1 half=$(( $1 / 2 ))
    bench_databases "
        CREATE TABLE bench.pages (id bigint PRIMARY KEY, title text NOT NULL, body text, meta jsonb,
                                  price numeric(12,2), tags text[], updated_at timestamptz NOT NULL);
        CREATE TABLE bench.files (id integer PRIMARY KEY, folder integer NOT NULL, name text NOT NULL,
                                  size bigint, checksum bytea, exif jsonb, uploaded_at timestamptz);
        INSERT INTO bench.pages
        SELECT g, 'Page ' || g, repeat(md5(g::text), 6), jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7)),
               (g % 1000) + 0.5, ARRAY['t' || g % 10, 'x'], timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
          FROM generate_series(1, $half) g;
        INSERT INTO bench.files
        SELECT g, g % 100, 'file-' || g || '.png', g * 17, decode(md5(g::text), 'hex'),
               jsonb_build_object('camera', 'Model ' || g % 13, 'note', repeat(md5((g + 1)::text), 7)),
               timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
          FROM generate_series(1, $half) g;"
    bench_link
    psql_prod -c "SELECT sync_add_module('bench', ARRAY['bench.pages', 'bench.files']::regclass[])" \
              -c "CREATE SCHEMA naive" \
              -c "IMPORT FOREIGN SCHEMA bench FROM SERVER bench_test INTO naive" \
              -c "ANALYZE naive.pages" -c "ANALYZE naive.files" >/dev/null
    psql_prod -c "SELECT sync_compare('test', 'prod')" >/dev/null   # the pair's first comparison
    # 1,000 changes on each side, spread over the tables: 400 + 200 updates, 100 + 100 inserts,
    # 100 + 100 deletes (odd ids on TEST, even on PROD).
    for side in prod test; do
        local off=$([[ $side == prod ]] && echo 0 || echo 1) step=$(( half / 1000 ))
        "$cluster" psql "$side" -d "$db" -c "
            UPDATE bench.pages SET title = title || ' ($side)' WHERE id IN (SELECT g * $step + $off FROM generate_series(1, 400) g);
            INSERT INTO bench.pages SELECT $half + g * 2 + $off, 'New', NULL, NULL, 1, NULL, now() FROM generate_series(1, 100) g;
            DELETE FROM bench.pages WHERE id IN (SELECT g * $step + 2 + $off FROM generate_series(401, 500) g);
            UPDATE bench.files SET size = size + 1 WHERE id IN (SELECT g * $step + $off FROM generate_series(1, 200) g);
            INSERT INTO bench.files SELECT $half + g * 2 + $off, 1, 'new.png', 1, NULL, NULL, now() FROM generate_series(1, 100) g;
            DELETE FROM bench.files WHERE id IN (SELECT g * $step + 2 + $off FROM generate_series(401, 500) g);" >/dev/null
        "$cluster" psql "$side" -d "$db" -c "CHECKPOINT"   # the load's writes are not measured
    done
}


peak_kb() {   # peak private memory (kB) of a backend running SQL
    psql_prod <<SQL
BEGIN;
\\o /dev/null
$1;
\\o
SELECT substring(s FROM 'VmHWM:\\s*(\\d+)')::int - substring(s FROM 'RssShmem:\\s*(\\d+)')::int
  FROM pg_read_file('/proc/self/status') s;
ROLLBACK;
SQL
}
naive='SELECT count(*) FROM (
    SELECT coalesce(l.id, r.id) FROM bench.pages l FULL JOIN naive.pages r ON l.id = r.id
     WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)
    UNION ALL
    SELECT coalesce(l.id, r.id) FROM bench.files l FULL JOIN naive.files r ON l.id = r.id
     WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)) d'
keys_ours() {   # keys_ours true|false: the records a comparison lists (rolled back)
    psql_prod <<SQL
BEGIN;
SELECT sync_compare('test', 'prod', full_compare => $1) AS id \\gset
SELECT string_agg(table_name::text || key::text, ',' ORDER BY table_name::text, key::text)
  FROM envsync.changes WHERE comparison_id = :id;
ROLLBACK;
SQL
}
keys_naive="SELECT string_agg(k, ',' ORDER BY k) FROM (
    SELECT 'bench.pages{' || coalesce(l.id, r.id) || '}' AS k FROM bench.pages l FULL JOIN naive.pages r ON l.id = r.id
     WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)
    UNION ALL
    SELECT 'bench.files{' || coalesce(l.id, r.id) || '}' FROM bench.files l FULL JOIN naive.files r ON l.id = r.id
     WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)) d"

for rows in $(( large / 4 )) "$large"; do
    echo "== $rows rows per side (bench.pages + bench.files), 1,000 changes on each side"
    setup "$rows"
    ours_inc=$(keys_ours false)
    ours_full=$(keys_ours true)
    base=$(psql_prod -c "$keys_naive" | sed 's/{\([0-9]*\)}/{\1}/g')
    if [[ $ours_inc == "$base" && $ours_full == "$base" ]]; then
        echo "same records found by all three: $(tr ',' '\n' <<<"$base" | grep -c .)"
    else
        echo "MISMATCH between the comparisons and the naive baseline" >&2
        exit 1
    fi
    inc=() full=() nv=()
    for r in $(seq "$reps"); do
        inc+=("$(timed "SELECT sync_compare('test', 'prod')")")
        full+=("$(timed "SELECT sync_compare('test', 'prod', full_compare => true)")")
        nv+=("$(timed "$naive")")
    done
    i=$(median "${inc[*]}"); f=$(median "${full[*]}"); n=$(median "${nv[*]}")
    mi=$(peak_kb "SELECT sync_compare('test', 'prod')")
    mf=$(peak_kb "SELECT sync_compare('test', 'prod', full_compare => true)")
    mn=$(peak_kb "$naive")
    printf 'median s: incremental %s, full %s, naive %s  (runs: %s | %s | %s)\n' "$i" "$f" "$n" "${inc[*]}" "${full[*]}" "${nv[*]}"
    awk -v i="$i" -v f="$f" -v n="$n" 'BEGIN {
        printf "full / incremental = %.1fx  (goal >= 20x)\n", f / i
        printf "naive / full       = %.2fx  (goal >= 2x)\n", n / f }'
    printf 'peak private memory kB: incremental %s, full %s, naive %s\n' "$mi" "$mf" "$mn"
done
bench_cleanup
