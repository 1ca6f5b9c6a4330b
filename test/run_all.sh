#!/usr/bin/env bash
# Every test of envsync, on two fresh local PostgreSQL clusters (the README's test command):
# the server-log check's own test, C++ unit tests (ctest; some against PROD and a real SMTP
# server), pg_regress, pgTAP (pg_prove) and the end-to-end tests (prove).
#
# Each suite runs even when an earlier one failed, and within a time limit of its own (about
# five times what it needs), so a hung test fails its suite instead of stalling CI. The exit
# status says whether all passed.
#
# A crash fails the run even if every test passed: at the end, test/check_server_logs.sh reads
# the server logs of both clusters and names every line where a server process was terminated
# by a signal, an assertion failed or a PANIC was logged. A test that kills a server process on
# purpose (fault injection) declares it: `kill_deliberately KILL "$pid"` (test/lib/tap.sh)
# records the PID and signal in the clusters' directory, and exactly that death is not reported.
# Stopping a cluster with `test/cluster.sh crash` (an immediate shutdown) needs no declaration.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash test/install_deps.sh || exit 1
bash test/build.sh || exit 1

source test/lib/tap.sh   # cluster_dir
export cluster=$repo/test/cluster.sh
# One directory for the clusters, their logs and the declared kills, whoever asks.
ENVSYNC_CLUSTER_DIR=$(cluster_dir) || exit 1
export ENVSYNC_CLUSTER_DIR
rm -f "$ENVSYNC_CLUSTER_DIR/deliberate-kills"   # declarations of an earlier run do not apply
"$cluster" destroy
"$cluster" start || exit 1
trap '"$cluster" stop' EXIT
eval "$("$cluster" env prod)"

passed=() failed=()
suite() {   # suite NAME SECONDS COMMAND...: COMMAND (a command or a function below), time-limited
    echo "=== $1"
    # timeout signals the whole process group: the suite's children stop with it.
    timeout -k 30 "$2" bash -c '"$@"' "$1" "${@:3}" </dev/null
    local rc=$?
    if [[ $rc -eq 0 ]]; then
        passed+=("$1")
    else
        [[ $rc -eq 124 || $rc -eq 137 ]] && echo "=== $1: stopped at its time limit of $2 s"
        failed+=("$1")
    fi
}
unit_tests() {   # the database tests use envsync_unit on PROD, made here for them
    "$cluster" psql prod -d postgres -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS envsync_unit WITH (FORCE)" -c "CREATE DATABASE envsync_unit" &&
        "$cluster" psql prod -d envsync_unit -c "SET client_min_messages = warning" \
            -c "CREATE EXTENSION envsync CASCADE" || return 1
    ENVSYNC_UNIT_DB="host=$PGHOST port=$PGPORT user=$PGUSER dbname=envsync_unit" \
        ctest --test-dir build --output-on-failure --no-tests=error
    local rc=$?
    "$cluster" psql prod -d postgres -c "DROP DATABASE envsync_unit WITH (FORCE)" || rc=1
    return $rc
}
regress() {
    PGDATABASE= make -s installcheck || { cat regression.diffs 2>/dev/null; return 1; }
}
pgtap() {
    bash test/setup_shop.sh &&
        "$cluster" psql prod -c "CREATE EXTENSION IF NOT EXISTS pgtap" &&
        pg_prove --failures test/pgtap/*.sql
}
export -f unit_tests regress pgtap

suite "server log check" 30 prove --exec bash test/check_server_logs_test.sh
suite "unit tests (ctest)" 300 unit_tests
suite "pg_regress" 120 regress
suite "pgTAP" 120 pgtap
suite "end-to-end" 600 prove --exec bash test/e2e/*.sh

# The logs are complete once both servers have shut down.
trap - EXIT
"$cluster" stop
suite "server logs" 30 bash test/check_server_logs.sh "$ENVSYNC_CLUSTER_DIR"

echo
echo "suites: ${#passed[@]} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[[ ${#failed[@]} -eq 0 ]]
