#!/usr/bin/env bash
# Peak memory of the backends for one big record, TEST > PROD on the two local clusters: a row
# of a bytea of SIZE MB and a text of SIZE/2 MB is compared, applied and reverted; the peak
# resident memory (VmHWM) of PROD's backend and of TEST's postgres_fdw backend is read from
# /proc after each step. The baseline, measured in the same run, is the same steps for a row of
# 1 kB; the ratio is the big run's peak over the record's size.
#   test/bench/big_values.sh [size in MB, default 100]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
size=${1:-100}
source "$repo/test/bench/lib.sh"
bench_databases "CREATE TABLE bench.blobs (id integer PRIMARY KEY, data bytea, body text);"
bench_link
psql_prod -c "SELECT sync_add_module('blobs', ARRAY['bench.blobs']::regclass[])" >/dev/null
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
SELECT sync_compare('test', 'prod') AS id \gset
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
