# Shared start of the two-cluster benchmarks (compare.sh, apply.sh). Source it after setting
# repo; it starts the clusters and defines:
#   psql_prod ARGS..., psql_test ARGS...   psql -At in the bench database on PROD or TEST
#   bench_databases SQL                    (re)creates the bench database on both, runs SQL there
#   bench_link                             TEST's link role for schema bench, PROD's server
#                                          bench_test reaching it, and both environments
#   timed SQL                              server seconds (psql's \timing) of SQL in a fresh
#                                          session and a rolled-back transaction
#   median "N N N..."
#   bench_cleanup                          drops the databases and the link role (unless
#                                          ENVSYNC_BENCH_KEEP is set, for a closer look)
cluster=$repo/test/cluster.sh
db=envsync_bench
"$cluster" start >/dev/null
eval "$("$cluster" env prod)"; prod_port=$PGPORT
eval "$("$cluster" env test)"; test_port=$PGPORT
psql_prod() { PGOPTIONS='-c client_min_messages=warning' "$cluster" psql prod -d "$db" -At "$@"; }
psql_test() { "$cluster" psql test -d "$db" -At "$@"; }

bench_databases() {
    local side
    for side in prod test; do
        "$cluster" psql "$side" -d postgres -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
        "$cluster" psql "$side" -d "$db" -c "SET client_min_messages = warning" \
            -c "CREATE EXTENSION envsync CASCADE" -c "CREATE SCHEMA bench" -c "$1" -c "VACUUM ANALYZE" >/dev/null
    done
}

bench_link() {
    local pw
    pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "SET log_min_error_statement = panic;" \
        "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envsync_bench_link') THEN CREATE ROLE envsync_bench_link LOGIN; END IF; END \$\$;" \
        "ALTER ROLE envsync_bench_link PASSWORD '$pw';" \
        "GRANT USAGE ON SCHEMA bench TO envsync_bench_link;" \
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA bench TO envsync_bench_link;  -- the baselines write directly" \
        "SELECT sync_grant_link('envsync_bench_link', ARRAY(SELECT c.oid::regclass FROM pg_class c WHERE c.relnamespace = 'bench'::regnamespace AND c.relkind = 'r'));" | psql_test >/dev/null
    printf '%s\n' "SET log_min_error_statement = panic;" \
        "CREATE SERVER bench_test FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$test_port', dbname '$db');" \
        "CREATE USER MAPPING FOR PUBLIC SERVER bench_test OPTIONS (user 'envsync_bench_link', password '$pw');" | psql_prod >/dev/null
    psql_prod -c "SELECT sync_add_environment('prod')" -c "SELECT sync_add_environment('test', 'bench_test')" >/dev/null
}

timed() {
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

bench_cleanup() {
    [[ -n ${ENVSYNC_BENCH_KEEP:-} ]] && return 0
    local side
    for side in prod test; do
        "$cluster" psql "$side" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    done
    "$cluster" psql test -d postgres -c "DROP OWNED BY envsync_bench_link" -c "DROP ROLE envsync_bench_link" >/dev/null 2>&1 || true
}
