#!/usr/bin/env bash
# Synchronization cost, PROD > TEST on the two local clusters, each measured in the same run:
#   sync_apply   the selected changes of a comparison written into TEST (checked against the
#                comparison on both sides, staged, applied in one remote statement)
#   baseline     a plain INSERT INTO <postgres_fdw foreign table> SELECT ... of as many rows,
#                batch_size 1000, into the same table on TEST (new ids; tracked, as synced tables are)
# Changes: 40 % new, 40 % modified, 20 % deleted records of a table of about 400-byte rows.
# Each run is a transaction that is rolled back (on TEST too), so every repetition starts from
# the same state; times are the server's (psql \timing), in a fresh session each, rounds rotated.
# Afterwards one committed sync_apply must leave TEST's table row for row equal to PROD's, or
# the benchmark fails.
#   test/bench/apply.sh [changes, default 100000] [repetitions, default 5]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
changes=${1:-100000}
reps=${2:-5}
source "$repo/test/bench/lib.sh"
rows=$(( changes * 2 ))   # rows per side before the changes

bench_databases "
    CREATE TABLE bench.pages (id bigint PRIMARY KEY, title text NOT NULL, body text, meta jsonb,
                              price numeric(12,2), tags text[], updated_at timestamptz NOT NULL);
    INSERT INTO bench.pages
    SELECT g, 'Page ' || g, repeat(md5(g::text), 6), jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7)),
           (g % 1000) + 0.5, ARRAY['t' || g % 10, 'x'], timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
      FROM generate_series(1, $rows) g;"
bench_link
psql_prod -c "SELECT sync_add_module('bench', ARRAY['bench.pages']::regclass[])" \
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
    printf "sync_apply / baseline = %.2fx (median of rounds %.2fx; goal <= 1.3x)\n", o / b, r }'
printf 'per-round ratios: %s\n' "${ratios[*]}"

# The timed runs were rolled back. One committed run must leave TEST's table exactly as PROD's:
# every row's text (under the same session settings on both sides) in key order.
rows_of() {   # rows_of prod|test FILE: "id md5-of-the-row" per row
    "psql_$1" -c "SET TimeZone = 'UTC'" -c "SET DateStyle = 'ISO, YMD'" -c "SET extra_float_digits = 1" \
        -c "SELECT id || ' ' || md5(p::text) FROM bench.pages p ORDER BY id" >"$2"
}
wrong() { echo "WRONG: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
differing() {   # how many ids have a row on one side only or different rows on both
    comm -3 <(sort "$work/prod") <(sort "$work/test") | awk '{ print $1 }' | sort -u | wc -l
}
rows_of prod "$work/prod"; rows_of test "$work/test"
before=$(differing)
[[ $before == "$count" ]] || wrong "before the synchronization $before records differ, not the $count changes"
written=$(psql_prod -c "SELECT sum(inserted) || '/' || sum(updated) || '/' || sum(deleted) FROM sync_apply($id)")
[[ $written == "$new/$modified/$deleted" ]] || wrong "the committed synchronization wrote $written, not $new/$modified/$deleted"
rows_of prod "$work/prod"; rows_of test "$work/test"
if [[ $(differing) != 0 ]] || ! cmp -s "$work/prod" "$work/test"; then
    { diff "$work/prod" "$work/test" || true; } | head -n 20 >&2
    wrong "after the committed synchronization TEST differs from PROD (first differences above: id md5, < PROD, > TEST)"
fi
echo "committed sync_apply: the $before differing records are equal now; TEST equals PROD, row for row ($(wc -l <"$work/test") rows)"

bench_cleanup
