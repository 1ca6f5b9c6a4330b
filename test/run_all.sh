#!/usr/bin/env bash
# Every test of envsync, on two fresh local PostgreSQL clusters (the README's test command):
# C++ unit tests (ctest), pg_regress, pgTAP (pg_prove) and the end-to-end tests (prove).
# Each suite runs even when an earlier one failed; the exit status says whether all passed.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash test/install_deps.sh || exit 1
bash test/build.sh || exit 1

cluster=$repo/test/cluster.sh
"$cluster" destroy
"$cluster" start || exit 1
trap '"$cluster" stop' EXIT
eval "$("$cluster" env prod)"

passed=() failed=()
suite() {   # suite NAME COMMAND...
    echo "=== $1"
    if "${@:2}"; then passed+=("$1"); else failed+=("$1"); fi
}
regress() {
    PGDATABASE= make -s installcheck || { cat regression.diffs 2>/dev/null; return 1; }
}
pgtap() {
    bash test/setup_shop.sh &&
        "$cluster" psql prod -c "CREATE EXTENSION IF NOT EXISTS pgtap" &&
        pg_prove --failures test/pgtap/*.sql
}

suite "unit tests (ctest)" ctest --test-dir build --output-on-failure
suite "pg_regress" regress
suite "pgTAP" pgtap
suite "end-to-end" prove --exec bash test/e2e/*.sh

echo
echo "suites: ${#passed[@]} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[[ ${#failed[@]} -eq 0 ]]
