#!/usr/bin/env bash
# Change-tracking overhead: a mixed insert/update/delete pgbench workload on three identical
# tables in the same database and run: untracked, tracked by envsync's C++ trigger, and tracked
# by an equivalent PL/pgSQL trigger (the approach of trigger-based sync tools). Each round runs
# the three back to back, in rotated order; the ratios are taken within each round and their
# median reported, since absolute figures drift on shared machines.
# synchronous_commit is off: with it on, WAL flushes hide any trigger cost. Afterwards the
# tracked table's change log must hold exactly one entry per row written, or the benchmark fails.
# Each run's server CPU per transaction is reported too (every process of the cluster, exited or
# live, from /proc): the time stolen by other guests and the clients' own CPU do not count in it.
#
#   test/bench/trigger_overhead.sh [seconds per run, default 10] [rounds, default 6]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-10}
rounds=${2:-6}
rows=1000000   # large enough that the run's deletes barely shrink it: the workload stays the same
db=envsync_bench

"$repo/test/cluster.sh" start prod >/dev/null
eval "$("$repo/test/cluster.sh" env prod)"
export PGDATABASE=$db
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
ALTER DATABASE $db SET synchronous_commit = off;
CREATE EXTENSION envsync CASCADE;
SELECT sync_add_environment('prod');
CREATE SCHEMA bench;
SQL
variants="untracked tracked plpgsql"
for t in $variants; do
    psql -X -q -v ON_ERROR_STOP=1 -c "
        CREATE TABLE bench.$t (
            id bigserial PRIMARY KEY, title text NOT NULL, body text, meta jsonb,
            price numeric(12,2), tags text[], updated_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO bench.$t (title, body, meta, price, tags)
        SELECT 'Page ' || g, repeat(md5(g::text), 8), jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')),
               g % 1000 + 0.99, ARRAY['x', g::text]
          FROM generate_series(1, $rows) g;"
done
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SELECT sync_add_module('bench', ARRAY['bench.tracked']::regclass[]);

-- What envsync's trigger records, written the usual PL/pgSQL way.
CREATE TABLE bench.plpgsql_log (table_name text, key text[], kind "char", hash bigint,
                                applied boolean, xid xid8, at timestamptz);
CREATE FUNCTION bench.plpgsql_track() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO bench.plpgsql_log VALUES (TG_TABLE_NAME, ARRAY[OLD.id::text], 'D', NULL,
            coalesce(current_setting('envsync.applying', true), 'off')::boolean,
            pg_current_xact_id(), statement_timestamp());
    ELSE
        INSERT INTO bench.plpgsql_log VALUES (TG_TABLE_NAME, ARRAY[NEW.id::text], left(TG_OP, 1)::"char",
            hashtextextended(NEW::text, 0),
            coalesce(current_setting('envsync.applying', true), 'off')::boolean,
            pg_current_xact_id(), statement_timestamp());
    END IF;
    RETURN NULL;
END
\$\$;
CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON bench.plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench.plpgsql_track();
SQL
psql -X -q -c "VACUUM ANALYZE"

# Every row written to the tracked table must have exactly one change-log entry. The server
# counts the rows each statement really inserted, updated and deleted (an UPDATE or DELETE of a
# random id may find no row, or one another client just deleted): pg_stat_user_tables, whose
# counters also hold the initial load, made before tracking began.
written() {   # rows "inserted updated deleted" in bench.tracked since the load
    psql -X -At -c "SELECT (n_tup_ins - $rows) || ' ' || n_tup_upd || ' ' || n_tup_del
                      FROM pg_stat_user_tables WHERE relid = 'bench.tracked'::regclass"
}
logged() {    # change-log entries of bench.tracked, "inserted updated deleted"
    psql -X -At -c "SELECT count(*) FILTER (WHERE kind = 'I') || ' ' || count(*) FILTER (WHERE kind = 'U')
                           || ' ' || count(*) FILTER (WHERE kind = 'D')
                      FROM envsync.row_log JOIN envsync.tracked_tables USING (table_id)
                     WHERE relid = 'bench.tracked'::regclass"
}
# Backends report their counts when their transaction or session ends, a moment later.
settled() {   # settled WANT: waits up to 10 s for written() = WANT
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(written) == "$1" ]] && return 0
        sleep 0.1
    done
    return 1
}
settled "0 0 0" || { echo "WRONG: bench.tracked was written before the workload: $(written)" >&2; exit 1; }
[[ $(logged) == "0 0 0" ]] || { echo "WRONG: change-log entries before the workload: $(logged)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $variants; do
    cat > "$work/$t-update.sql" <<SQL
\set id random(1, $rows)
UPDATE bench.$t SET title = 'Edited ' || :id, price = price + 1, updated_at = now() WHERE id = :id;
SQL
    cat > "$work/$t-insert.sql" <<SQL
INSERT INTO bench.$t (title, body, meta, price, tags)
VALUES ('New page', repeat('x', 256), '{"new": true}', 9.99, '{new}');
SQL
    cat > "$work/$t-delete.sql" <<SQL
\set id random(1, $rows)
DELETE FROM bench.$t WHERE id = :id;
SQL
done

# Warm-up, not counted: caches, the first autovacuum rounds, the clients' first connections.
for t in $variants; do
    pgbench -n -M prepared -c 2 -j 2 -T 5 -f "$work/$t-update.sql@2" -f "$work/$t-insert.sql@1" \
        -f "$work/$t-delete.sql@1" >/dev/null
done
postmaster=$(head -n 1 "$(psql -X -At -c 'SHOW data_directory')/postmaster.pid")
server_ticks() {   # clock ticks of CPU the cluster used so far: its exited children and the live ones
    local f child total
    read -r -a f <"/proc/$postmaster/stat"
    total=$(( f[13] + f[14] + f[15] + f[16] ))
    for child in $(cat "/proc/$postmaster/task/$postmaster/children"); do
        read -r -a f <"/proc/$child/stat" 2>/dev/null || continue
        total=$(( total + f[13] + f[14] ))
    done
    echo "$total"
}
tick_us=$(( 1000000 / $(getconf CLK_TCK) ))
declare -A results cpu_results
ratio_untracked=() ratio_plpgsql=() cpu_ratio_untracked=()
order=($variants)
for round in $(seq "$rounds"); do
    declare -A tps=() cpu=()
    for t in "${order[@]}"; do
        sleep 1   # the previous run's backends are gone and counted
        before=$(server_ticks)
        out=$(pgbench -n -M prepared -c 2 -j 2 -T "$seconds" \
                -f "$work/$t-update.sql@2" -f "$work/$t-insert.sql@1" -f "$work/$t-delete.sql@1")
        sleep 1
        used=$(( $(server_ticks) - before ))
        tps[$t]=$(awk '/^tps = / {print $3; exit}' <<<"$out")
        cpu[$t]=$(awk -v used="$used" -v tick="$tick_us" '/^number of transactions actually processed/ {
                      split($NF, n, "/"); printf "%.2f", used * tick / n[1]; exit }' <<<"$out")
        results[$t]+="${tps[$t]} "
        cpu_results[$t]+="${cpu[$t]} "
        printf 'round %d  %-9s %10.0f tps  %6.2f us server CPU a transaction\n' "$round" "$t" "${tps[$t]}" "${cpu[$t]}"
    done
    # Ratios within a round compare runs made minutes apart at most.
    ratio_untracked+=("$(awk -v a="${tps[tracked]}" -v b="${tps[untracked]}" 'BEGIN { print a / b }')")
    ratio_plpgsql+=("$(awk -v a="${tps[tracked]}" -v b="${tps[plpgsql]}" 'BEGIN { print a / b }')")
    cpu_ratio_untracked+=("$(awk -v a="${cpu[untracked]}" -v b="${cpu[tracked]}" 'BEGIN { print a / b }')")
    order=("${order[@]:1}" "${order[0]}")   # rotate, so no variant always runs first
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
u=$(median "${results[untracked]}"); c=$(median "${results[tracked]}"); p=$(median "${results[plpgsql]}")
entries=$(logged)
echo
printf 'median tps: untracked %.0f, envsync C++ trigger %.0f, PL/pgSQL trigger %.0f\n' "$u" "$c" "$p"
printf 'tracked / untracked        = %.3f  median of the rounds'"'"' ratios: %s  (goal >= 0.93)\n' \
    "$(median "${ratio_untracked[*]}")" "${ratio_untracked[*]}"
printf 'tracked / PL/pgSQL trigger = %.3f  median of the rounds'"'"' ratios: %s  (goal > 1)\n' \
    "$(median "${ratio_plpgsql[*]}")" "${ratio_plpgsql[*]}"
printf 'median server CPU us a transaction: untracked %.2f, envsync C++ trigger %.2f, PL/pgSQL trigger %.2f\n' \
    "$(median "${cpu_results[untracked]}")" "$(median "${cpu_results[tracked]}")" "$(median "${cpu_results[plpgsql]}")"
printf 'untracked / tracked server CPU a transaction = %.3f  median of the rounds'"'"' ratios: %s\n' \
    "$(median "${cpu_ratio_untracked[*]}")" "${cpu_ratio_untracked[*]}"
if ! settled "$entries"; then
    echo "WRONG: rows written to the tracked table (inserted updated deleted): $(written);" \
         "change-log entries: $entries" >&2
    exit 1
fi
read -r ins upd del <<<"$entries"
echo "change log: one entry per row written to the tracked table ($ins inserted, $upd updated, $del deleted)"
psql -X -q -d postgres -c "DROP DATABASE $db"
