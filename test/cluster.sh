#!/usr/bin/env bash
# Two throw-away PostgreSQL 15 clusters, PROD and TEST, for envsync's tests.
#
#   test/cluster.sh start [prod|test]     create on first use, then start (idempotent)
#   test/cluster.sh stop [prod|test]      fast stop (fine if not running)
#   test/cluster.sh restart [prod|test]
#   test/cluster.sh crash prod|test       immediate stop, i.e. a simulated crash
#   test/cluster.sh status                exit 0 only if both are running
#   test/cluster.sh psql prod|test [psql args...]
#   test/cluster.sh env prod|test         eval "$(test/cluster.sh env prod)"
#   test/cluster.sh destroy               stop and delete the clusters
#
# Environment: ENVSYNC_CLUSTER_DIR (default <repo>/.clusters, or /tmp/envsync-clusters for root when
# the postgres OS user cannot enter the checkout), ENVSYNC_PROD_PORT (55432),
# ENVSYNC_TEST_PORT (55433), ENVSYNC_DB (shop), ENVSYNC_PGBIN (/usr/lib/postgresql/15/bin).
# Ports and the database name are written into the clusters when they are created: change them
# only together with `destroy`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ENVSYNC_CLUSTER_DIR:-$repo/.clusters}
# As root, the clusters belong to the postgres OS user, which cannot enter a checkout under
# /root: then they live under /tmp instead, unless ENVSYNC_CLUSTER_DIR says otherwise.
if [[ -z ${ENVSYNC_CLUSTER_DIR:-} && $EUID -eq 0 ]] && ! (cd /tmp && runuser -u postgres -- test -x "$repo"); then
    dir=/tmp/envsync-clusters
fi
db=${ENVSYNC_DB:-shop}
bin=${ENVSYNC_PGBIN:-/usr/lib/postgresql/15/bin}
sock=$dir/run
ready=$dir/.created   # written last, so a half-made pair is recognised and remade

declare -A port=([prod]=${ENVSYNC_PROD_PORT:-55432} [test]=${ENVSYNC_TEST_PORT:-55433})

# initdb and pg_ctl refuse to run as root: then the clusters belong to the postgres OS user,
# which is also the superuser role. A normal user owns its clusters and is their superuser.
if [[ $EUID -eq 0 ]]; then
    superuser=postgres
    as_owner() { (cd /tmp && runuser -u postgres -- "$@"); }
else
    superuser=$(id -un)
    as_owner() { "$@"; }
fi

die() { echo "cluster.sh: $*" >&2; exit 1; }

pick() {   # pick [prod|test]: sets the clusters a command applies to
    case ${1:-} in
        '') clusters=(prod test) ;;
        prod | test) clusters=("$1") ;;
        *) die "unknown cluster \"$1\" (expected prod or test)" ;;
    esac
}

pick_one() {   # pick_one COMMAND prod|test: for commands that need exactly one cluster
    [[ ${2:-} == prod || ${2:-} == test ]] || die "usage: cluster.sh $1 prod|test${3:-}"
    clusters=("$2")
}

running() { [[ -d $dir/$1 ]] && as_owner "$bin/pg_ctl" status -D "$dir/$1" >/dev/null 2>&1; }

sql() {   # sql prod|test [psql args...]: superuser session, stops at the first error
    "$bin/psql" -v ON_ERROR_STOP=1 -X -q -h "$sock" -p "${port[$1]}" -U "$superuser" -d "$db" "${@:2}"
}

start() {
    local c
    for c in "$@"; do
        running "$c" || as_owner "$bin/pg_ctl" start -W -D "$dir/$c" -l "$dir/$c.log" >/dev/null
    done
    for c in "$@"; do   # both boot concurrently; wait for each to accept connections
        local i
        for ((i = 0; i < 300; i++)); do
            "$bin/pg_isready" -q -h "$sock" -p "${port[$c]}" -U "$superuser" -d postgres && continue 2
            sleep 0.1
        done
        tail -n 20 "$dir/$c.log" >&2
        die "$c did not accept connections within 30 s (log: $dir/$c.log)"
    done
}

stop() {   # stop fast|immediate clusters...
    local mode=$1 c
    for c in "${@:2}"; do
        running "$c" && as_owner "$bin/pg_ctl" stop -w -m "$mode" -D "$dir/$c" >/dev/null
    done
    return 0
}

conf() {   # conf prod|test lines...: appended settings override initdb's
    printf '%s\n' "${@:2}" >>"$dir/$1/postgresql.conf"
}

create() {
    # Leftovers of an interrupted creation are discarded; a finished pair is never touched.
    stop immediate prod test
    rm -rf "$dir/prod" "$dir/test" "$dir/prod.log" "$dir/test.log"
    mkdir -p "$sock"
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$dir" "$sock"
        as_owner test -w "$dir" ||
            die "the postgres OS user cannot enter $dir: choose ENVSYNC_CLUSTER_DIR outside /root"
    fi

    local c
    for c in prod test; do
        as_owner "$bin/initdb" -D "$dir/$c" -U "$superuser" -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
        conf "$c" "" "# envsync test cluster \"$c\"" "port = ${port[$c]}" \
            "listen_addresses = '127.0.0.1'" "unix_socket_directories = '$sock'"
    done
    # The two clusters differ in TimeZone, DateStyle and extra_float_digits on purpose:
    # comparisons between them must not depend on these.
    conf prod "TimeZone = 'Europe/Warsaw'" "DateStyle = 'ISO, YMD'" "extra_float_digits = 1" \
        "shared_preload_libraries = 'pg_cron'" "cron.database_name = '$db'" \
        "cron.host = '$sock'  # the default, localhost, would need a password"
    conf test "TimeZone = 'America/New_York'" "DateStyle = 'SQL, DMY'" "extra_float_digits = 0"

    start prod test
    for c in prod test; do
        sql "$c" -d postgres -c "CREATE DATABASE \"$db\""
    done

    # PROD reaches TEST through postgres_fdw as a non-superuser with a password. The password
    # is only piped to psql (never in argv or a file) and the session does not log statements
    # that fail, so PostgreSQL's catalogs are the only place that holds it.
    local pw
    { set +x; } 2>/dev/null   # even under bash -x
    pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "SET log_min_error_statement = panic;" \
        "CREATE ROLE envsync_link LOGIN PASSWORD '$pw';" | sql test
    printf '%s\n' "SET log_min_error_statement = panic;" \
        "CREATE EXTENSION postgres_fdw;" \
        "CREATE SERVER test_server FOREIGN DATA WRAPPER postgres_fdw
             OPTIONS (host '127.0.0.1', port '${port[test]}', dbname '$db');" \
        "CREATE USER MAPPING FOR PUBLIC SERVER test_server
             OPTIONS (user 'envsync_link', password '$pw');" \
        "CREATE EXTENSION pg_cron;" | sql prod
    unset pw
    touch "$ready"
}

case ${1:-} in
    start)
        pick "${2:-}"
        [[ -f $ready ]] || create
        start "${clusters[@]}"
        ;;
    stop)
        pick "${2:-}"
        stop fast "${clusters[@]}"
        ;;
    restart)
        pick "${2:-}"
        [[ -f $ready ]] || die "no clusters in $dir: run start"
        stop fast "${clusters[@]}"
        start "${clusters[@]}"
        ;;
    crash)
        pick_one crash "${2:-}"
        stop immediate "${clusters[@]}"
        ;;
    status)
        rc=0
        for c in prod test; do
            if [[ ! -f $ready ]]; then state="not created" rc=3
            elif running "$c"; then state=running
            else state=stopped rc=3
            fi
            echo "$c: $state (port ${port[$c]}, socket $sock, database $db)"
        done
        exit $rc
        ;;
    psql)
        pick_one psql "${2:-}" " [psql args...]"
        sql "$2" "${@:3}"
        ;;
    env)
        pick_one env "${2:-}"
        printf 'export PGHOST=%q PGPORT=%q PGUSER=%q PGDATABASE=%q\n' \
            "$sock" "${port[$2]}" "$superuser" "$db"
        ;;
    destroy)
        # Only our own entries are removed, in case the directory holds something else too.
        stop immediate prod test
        rm -rf "$dir/prod" "$dir/test" "$sock" "$dir/prod.log" "$dir/test.log" "$ready"
        rmdir "$dir" 2>/dev/null || true
        ;;
    *)
        sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
esac
