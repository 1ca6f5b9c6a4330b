#!/usr/bin/env bash
# Comparison cost, PROD and TEST on the two local clusters, each measured in the same run:
#   row_hash     SELECT count(envsync.row_hash(t)) over PROD's tables: hashing one side, the
#                floor of a full comparison (both servers hash at once)
#   incremental  sync_compare() driven by change tracking (the normal case)
#   full         sync_compare(full_compare => true): every row hashed where it lives
#   pg_comparator  pg_comparator's best options (--folding-factor=5 --use-key
#                --checksum-function=fnv --aggregate=xor), table after table, when it is on PATH
#                with its pgcmp extension installed (it is a yardstick, not part of envsync)
#   naive        FULL JOIN of the local table with its postgres_fdw twin, IS DISTINCT FROM on
#                whole rows (every row crosses the network), the foreign table analyzed
#   floor        reading the differing records by key on each side, one round trip a side
#                (envsync.table_rows here, one read request to TEST): the incremental's floor
# At the large size the incremental comparison is timed again after 1,000,000 writes went
# through PROD's change log (taken in and compacted by a comparison).
# at two table sizes, rows of about 400 bytes, with 1,000 changes spread evenly on each side
# (2,000 differing records). Before the timing and after it, every method is checked to find
# exactly the records the naive join finds, in cumulative cases: no change, the changes spread
# evenly, 1,000 more updates in one key range, and 10 % of the rows changed. Each comparison
# runs in a transaction that is rolled back, so every repetition sees the same state; times are
# psql's \timing in a fresh session each (pg_comparator: wall clock), medians of the
# repetitions, ratios against the figures of the same run: of the medians, and (less swayed by
# the machine's drift) the median of each repetition's own ratio. Peak private memory of the
# backends is VmHWM - RssShmem (shared buffers touched are not a backend's own): PROD's
# session, and TEST's postgres_fdw session serving it.
#   test/bench/compare.sh [rows per side for the large run, default 1000000] [repetitions, default 3]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
large=${1:-1000000}
reps=${2:-3}
source "$repo/test/bench/lib.sh"

pgc=
if command -v pg_comparator >/dev/null &&
   [[ $(psql_prod -d postgres -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgcmp'") == 1 ]]; then
    pgc=$(command -v pg_comparator)
else
    echo "pg_comparator (with its pgcmp extension) is not installed: it is left out"
fi

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
    if [[ -n $pgc ]]; then
        psql_prod -c "CREATE EXTENSION pgcmp" >/dev/null
        psql_test -c "CREATE EXTENSION pgcmp" >/dev/null
    fi
    bench_link
    psql_prod -c "SELECT sync_add_module('bench', ARRAY['bench.pages', 'bench.files']::regclass[])" \
              -c "CREATE SCHEMA naive" \
              -c "IMPORT FOREIGN SCHEMA bench FROM SERVER bench_test INTO naive" \
              -c "ANALYZE naive.pages" -c "ANALYZE naive.files" >/dev/null
    psql_prod -c "SELECT sync_compare('test', 'prod')" >/dev/null   # the pair's first comparison
    checkpoint
}

checkpoint() {   # the load's writes are not measured
    "$cluster" psql prod -d "$db" -c "VACUUM ANALYZE bench.pages, bench.files" -c "CHECKPOINT" >/dev/null
    "$cluster" psql test -d "$db" -c "VACUUM ANALYZE bench.pages, bench.files" -c "CHECKPOINT" >/dev/null
}

spread() {   # 1,000 changes on each side spread over the tables: 400 + 200 updates, 100 + 100
             # inserts, 100 + 100 deletes (odd ids on TEST, even on PROD)
    local half=$(( $1 / 2 )) side
    for side in prod test; do
        local off=$([[ $side == prod ]] && echo 0 || echo 1) step=$(( half / 1000 ))
        "$cluster" psql "$side" -d "$db" -c "
            UPDATE bench.pages SET title = title || ' ($side)' WHERE id IN (SELECT g * $step + $off FROM generate_series(1, 400) g);
            INSERT INTO bench.pages SELECT $half + g * 2 + $off, 'New', NULL, NULL, 1, NULL, now() FROM generate_series(1, 100) g;
            DELETE FROM bench.pages WHERE id IN (SELECT g * $step + 2 + $off FROM generate_series(401, 500) g);
            UPDATE bench.files SET size = size + 1 WHERE id IN (SELECT g * $step + $off FROM generate_series(1, 200) g);
            INSERT INTO bench.files SELECT $half + g * 2 + $off, 1, 'new.png', 1, NULL, NULL, now() FROM generate_series(1, 100) g;
            DELETE FROM bench.files WHERE id IN (SELECT g * $step + 2 + $off FROM generate_series(401, 500) g);" >/dev/null
    done
    checkpoint
}

one_range() {   # 1,000 more updates on PROD, all in one key range of the pages
    local from=$(( $1 / 4 ))
    psql_prod -c "UPDATE bench.pages SET body = 'range' WHERE id BETWEEN $from AND $from + 999" >/dev/null
    checkpoint
}

tenth() {   # 10 % of each table's rows changed on TEST, every tenth id
    psql_test -c "UPDATE bench.pages SET price = price + 1 WHERE id % 10 = 3" \
              -c "UPDATE bench.files SET name = name || '~' WHERE id % 10 = 7" >/dev/null
    checkpoint
}

naive='SELECT count(*) FROM (
    SELECT coalesce(l.id, r.id) FROM bench.pages l FULL JOIN naive.pages r ON l.id = r.id
     WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)
    UNION ALL
    SELECT coalesce(l.id, r.id) FROM bench.files l FULL JOIN naive.files r ON l.id = r.id
     WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)) d'
row_hash='SELECT count(envsync.row_hash(t)) FROM bench.pages t UNION ALL SELECT count(envsync.row_hash(t)) FROM bench.files t'

# Peak private memory (kB) of PROD's backend running SQL, and of TEST's postgres_fdw backend
# serving it (none when SQL does not reach TEST).
peak_kb() {
    psql_prod <<SQL | tr '\n' ' '
BEGIN;
\\o /dev/null
$1;
\\o
SELECT substring(s FROM 'VmHWM:\\s*(\\d+)')::int - substring(s FROM 'RssShmem:\\s*(\\d+)')::int
  FROM pg_read_file('/proc/self/status') s;
\\! for p in \$("$cluster" psql test -d postgres -At -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'postgres_fdw'"); do awk '/^VmHWM/ { h = \$2 } /^RssShmem/ { s = \$2 } END { print h - s }' /proc/\$p/status; done
ROLLBACK;
SQL
}

keys_ours() {   # keys_ours true|false: the records a comparison lists (rolled back)
    psql_prod <<SQL
BEGIN;
SELECT sync_compare('test', 'prod', full_compare => $1) AS id \\gset
SELECT string_agg(table_name::text || key::text, ',' ORDER BY table_name::text || key::text)
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

pgc_url() { echo "pgsql://postgres@:$1/$db/bench.$2"; }
pgc_run() {   # pg_comparator on both tables: one line per differing record. It hashes the
              # values' text forms: both sessions need the same TimeZone, DateStyle and
              # extra_float_digits (the clusters differ in them on purpose).
    local t
    for t in pages files; do
        PGOPTIONS='-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1' "$pgc" --folding-factor=5 --use-key --checksum-function=fnv --aggregate=xor --max-ratio=2.0 \
            "$(pgc_url "$prod_port" $t)" "$(pgc_url "$test_port" $t)" | sed "s/^/$t /"
    done
}
keys_pgc() {
    pgc_run | awk '$2 ~ /^(INSERT|UPDATE|DELETE)$/ { print "bench." $1 "{" $3 "}" }' | LC_ALL=C sort | paste -sd,
}
pgc_timed() {
    local t0 t1
    t0=$(date +%s.%N); pgc_run >/dev/null; t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

check() {   # check CASE: every method lists exactly the naive join's records
    local base inc full p n
    base=$(psql_prod -c "$keys_naive")
    inc=$(keys_ours false); full=$(keys_ours true)
    # sort orders: the SQL sides use the database's collation (C.UTF-8), as does the sort here
    base=$(tr ',' '\n' <<<"$base" | LC_ALL=C sort | paste -sd,)
    inc=$(tr ',' '\n' <<<"$inc" | LC_ALL=C sort | paste -sd,)
    full=$(tr ',' '\n' <<<"$full" | LC_ALL=C sort | paste -sd,)
    n=$(tr ',' '\n' <<<"$base" | grep -c . || true)
    [[ $inc == "$base" ]] || { echo "MISMATCH ($1): incremental comparison and the naive join differ" >&2; exit 1; }
    [[ $full == "$base" ]] || { echo "MISMATCH ($1): full comparison and the naive join differ" >&2; exit 1; }
    if [[ -n $pgc ]]; then
        p=$(keys_pgc)
        [[ $p == "$base" ]] || { echo "MISMATCH ($1): pg_comparator and the naive join differ" >&2; exit 1; }
    fi
    echo "$1: every method finds the same $n records"
}

floor_sql() {   # floor_sql: reading the records the naive join finds by key, on each side
    local t id rid keys parts=()
    for t in pages files; do
        id=$(psql_prod -c "SELECT table_id FROM envsync.tracked_tables WHERE relid = 'bench.$t'::regclass")
        rid=$(psql_prod -c "SELECT remote_table_id FROM envsync.environment_tables et JOIN envsync.tracked_tables t USING (table_id)
                             WHERE t.relid = 'bench.$t'::regclass AND et.environment = 'test'")
        keys=$(psql_prod -c "SELECT coalesce(array_agg(ARRAY[coalesce(l.id, r.id)::text]::text), '{}')
                               FROM bench.$t l FULL JOIN naive.$t r ON l.id = r.id
                              WHERE l.id IS NULL OR r.id IS NULL OR (l.*) IS DISTINCT FROM (r.*)")
        parts+=("SELECT count(*) FROM envsync.table_rows($id, '$keys')"
                "SELECT count(*) FROM envsync.request_rows('envsync_env_test.read_requests', $rid, '$keys')")
    done
    local IFS=$'\n'
    sed '2,$s/^/UNION ALL /' <<<"${parts[*]}"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "inf" }'; }
# pair_ratios "A1 A2..." "B1 B2...": the median of A_i / B_i, each pair timed in one repetition,
# minutes apart at most, and the ratios themselves: robust to the machine's drift over the run
pair_ratios() {
    local a=($1) b=($2) r=() i
    for i in "${!a[@]}"; do r+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
    printf '%s  (repetitions: %s)' "$(median "${r[*]}")" "${r[*]}"
}

for rows in $(( large / 4 )) "$large"; do
    echo "== $rows rows per side (bench.pages + bench.files)"
    setup "$rows"
    check "no change"
    spread "$rows"
    check "1,000 changes spread evenly on each side"
    floor=$(floor_sql)
    hs=() inc=() fl=() full=() pc=() nv=()
    for r in $(seq "$reps"); do
        hs+=("$(timed "$row_hash")")
        inc+=("$(timed "SELECT sync_compare('test', 'prod')")")
        fl+=("$(timed "$floor")")
        full+=("$(timed "SELECT sync_compare('test', 'prod', full_compare => true)")")
        [[ -z $pgc ]] || pc+=("$(pgc_timed)")
        nv+=("$(timed "$naive")")
    done
    h=$(median "${hs[*]}"); i=$(median "${inc[*]}"); f=$(median "${full[*]}"); n=$(median "${nv[*]}")
    fm=$(median "${fl[*]}")
    printf 'median s: row_hash %s, incremental %s, floor %s, full %s, naive %s\n' "$h" "$i" "$fm" "$f" "$n"
    printf '  runs: row_hash %s | incremental %s | floor %s | full %s | naive %s\n' \
        "${hs[*]}" "${inc[*]}" "${fl[*]}" "${full[*]}" "${nv[*]}"
    printf 'full / row_hash          = %sx  (goal <= 1.25x); per repetition: median %s\n' \
        "$(ratio "$f" "$h")" "$(pair_ratios "${full[*]}" "${hs[*]}")"
    printf 'incremental / floor      = %sx  (goal <= 3x); per repetition: median %s\n' \
        "$(ratio "$i" "$fm")" "$(pair_ratios "${inc[*]}" "${fl[*]}")"
    printf 'naive / full             = %sx\n' "$(ratio "$n" "$f")"
    printf 'full / incremental       = %sx\n' "$(ratio "$f" "$i")"
    if [[ -n $pgc ]]; then
        p=$(median "${pc[*]}")
        printf 'median s: pg_comparator best %s  (runs: %s)\n' "$p" "${pc[*]}"
        printf 'pg_comparator / full        = %sx  (goal >= 3x); per repetition: median %s\n' \
            "$(ratio "$p" "$f")" "$(pair_ratios "${pc[*]}" "${full[*]}")"
        printf 'pg_comparator / incremental = %sx  (goal >= 80x); per repetition: median %s\n' \
            "$(ratio "$p" "$i")" "$(pair_ratios "${pc[*]}" "${inc[*]}")"
    fi
    printf 'peak private memory kB (PROD backend, TEST fdw backend): incremental %s; full %s; naive %s\n' \
        "$(peak_kb "SELECT sync_compare('test', 'prod')")" \
        "$(peak_kb "SELECT sync_compare('test', 'prod', full_compare => true)")" "$(peak_kb "$naive")"
    if [[ $rows == "$large" ]]; then
        # 1,000,000 writes through PROD's log (two updates of 500,000 files), taken in and
        # compacted by a comparison that is kept; the differing records stay the same.
        psql_prod -c "UPDATE bench.files SET size = size WHERE id <= 500000" \
                  -c "UPDATE bench.files SET size = size WHERE id <= 500000" >/dev/null
        psql_prod -c "SELECT sync_compare('test', 'prod')" >/dev/null
        checkpoint
        inc=()
        for r in $(seq "$reps"); do inc+=("$(timed "SELECT sync_compare('test', 'prod')")"); done
        printf 'median s: incremental after 1,000,000 writes through the log %s (runs: %s), / before = %sx\n' \
            "$(median "${inc[*]}")" "${inc[*]}" "$(ratio "$(median "${inc[*]}")" "$i")"
    fi
    one_range "$rows"
    check "1,000 more updates in one key range"
    tenth
    check "10 % of the rows changed"
    printf 'peak private memory kB with 10 %% changed (PROD backend, TEST fdw backend): full %s\n' \
        "$(peak_kb "SELECT sync_compare('test', 'prod', full_compare => true)")"
done
bench_cleanup
