#!/usr/bin/env bash
# Peak memory of the backends for big records, TEST > PROD on the two local clusters; the peak
# resident memory (VmHWM) of PROD's backend and of TEST's postgres_fdw backend is read from
# /proc after each step:
#   one record of a bytea of SIZE MB and a text of SIZE/2 MB compared, applied and reverted,
#     against the same steps for a record of 1 kB (the ratio: the peak over the record's size);
#   a comparison of ROWS records of 1 MB each, all different, with envsync.batch_bytes at its
#     default (64 MB) against 4 GB (reads as large as before the setting; past about 250 such
#     records one read's answer exceeds jsonb's 256 MB and the comparison fails);
#   those records applied PROD > TEST, envsync.batch_bytes 4 GB (read for the stream into
#     TEST all at once, as before the setting bounded it) against its default.
#   test/bench/big_values.sh [size in MB, default 100] [rows, default 200: past about 250, the comparison at 4 GB fails as described]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
size=${1:-100}
rows=${2:-200}
source "$repo/test/bench/lib.sh"
bench_databases "CREATE TABLE bench.blobs (id integer PRIMARY KEY, data bytea, body text);
                 CREATE TABLE bench.pages (id integer PRIMARY KEY, body text);"
bench_link
psql_prod -c "SELECT sync_add_module('blobs', ARRAY['bench.blobs']::regclass[])" \
          -c "SELECT sync_add_module('pages', ARRAY['bench.pages']::regclass[])" >/dev/null
eval "$("$cluster" env test)"; test_host=$PGHOST

# run BYTES: inserts the row on TEST, then compares, applies and reverts it in one PROD session;
# prints the peak memory (MB) of both backends after each step.
run() {
    psql_test -c "TRUNCATE bench.blobs" \
              -c "INSERT INTO bench.blobs SELECT 1, decode(repeat(md5(random()::text), $1 / 16), 'hex'), repeat(md5(random()::text), $1 / 64)" >/dev/null
    cat >"$work/peaks.sh" <<PEAKS
prod=\$(awk '/VmHWM/ { print int(\$2 / 1024) }' /proc/\$PROD_PID/status)
test=\$(for p in \$(psql -h "$test_host" -p "$test_port" -U postgres -d "$db" -Atc "SELECT pid FROM pg_stat_activity WHERE application_name = 'postgres_fdw'"); do awk '/VmHWM/ { print int(\$2 / 1024) }' /proc/\$p/status; done | sort -n | tail -1)
echo "\$1 \$prod \$test"
PEAKS
    psql_prod <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv PROD_PID :pid
SELECT sync_compare('test', 'prod', ARRAY['blobs']) AS id \gset
\! bash $work/peaks.sh compare
SELECT sync_id AS sync FROM sync_apply(:id) LIMIT 1 \gset
\! bash $work/peaks.sh apply
SELECT count(*) AS reverted FROM sync_revert(:sync) \gset
\! bash $work/peaks.sh revert
SQL
}
work=$(mktemp -d)
trap 'rm -rf "$work"; bench_cleanup' EXIT
base=$(run 1024)
big=$(run $((size * 1024 * 1024)))
record=$((size + size / 2))
printf '%-8s %14s %14s %14s %14s\n' step "prod MB (1kB)" "test MB (1kB)" "prod MB (big)" "test MB (big)"
paste -d' ' <(echo "$base") <(echo "$big") | while read -r step p0 t0 _ p1 t1; do
    printf '%-8s %14s %14s %14s %14s\n' "$step" "$p0" "$t0" "$p1" "$t1"
done
read -r _ p t < <(tail -1 <<<"$big")
echo "record of $record MB: peak / record size = PROD $(awk "BEGIN { printf \"%.1f\", $p / $record }"), TEST $(awk "BEGIN { printf \"%.1f\", $t / $record }")"

# compare_pages SETTING: a full comparison of the pages (all different) in a fresh session
compare_pages() {
    psql_prod <<SQL | tail -1
SET envsync.batch_bytes = '$1';
SELECT pg_backend_pid() AS pid \gset
\setenv PROD_PID :pid
SELECT sync_compare('test', 'prod', ARRAY['pages'], full_compare => true) AS id \gset
SELECT count(*) AS n FROM envsync.changes WHERE comparison_id = :id \gset
\setenv FOUND :n
\! bash $work/peaks.sh "\$FOUND"
SQL
}
psql_prod -c "TRUNCATE bench.pages" -c "INSERT INTO bench.pages SELECT g, repeat('p', 1024 * 1024) FROM generate_series(1, $rows) g" >/dev/null
psql_test -c "TRUNCATE bench.pages" -c "INSERT INTO bench.pages SELECT g, repeat('t', 1024 * 1024) FROM generate_series(1, $rows) g" >/dev/null
read -r n0 p0 t0 < <(compare_pages 4GB)
read -r n1 p1 t1 < <(compare_pages 64MB)
echo "$rows records of 1 MB, all different ($n0 and $n1 found): peak MB PROD $p0 -> $p1, TEST $t0 -> $t1 (batch_bytes 4GB -> 64MB); ratio PROD $(awk "BEGIN { printf \"%.2f\", $p1 / $p0 }"), TEST $(awk "BEGIN { printf \"%.2f\", $t1 / $t0 }")"

# apply_pages SETTING: those records applied PROD > TEST in a fresh session (rolled back), the
# comparison made before in another one
apply_pages() {
    psql_prod <<SQL | tail -1
SET envsync.batch_bytes = '$1';
SELECT pg_backend_pid() AS pid \gset
\setenv PROD_PID :pid
BEGIN;
SELECT sum(updated) AS n FROM sync_apply($2) \gset
\setenv FOUND :n
\! bash $work/peaks.sh "\$FOUND"
ROLLBACK;
SQL
}
id=$(psql_prod -c "SELECT sync_compare('prod', 'test', ARRAY['pages'], full_compare => true)")
psql_prod -c "UPDATE envsync.changes SET selected = true WHERE comparison_id = $id" >/dev/null
read -r n0 p0 t0 < <(apply_pages 4GB "$id")
read -r n1 p1 t1 < <(apply_pages 64MB "$id")
echo "$rows records of 1 MB applied PROD > TEST ($n0 and $n1 written): peak MB PROD $p0 -> $p1, TEST $t0 -> $t1 (batch_bytes 4GB -> 64MB: read all at once -> in parts); ratio PROD $(awk "BEGIN { printf \"%.2f\", $p1 / $p0 }"), TEST $(awk "BEGIN { printf \"%.2f\", $t1 / $t0 }")"
