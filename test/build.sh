#!/usr/bin/env bash
# Builds and installs the extension (and the boundary tests' library) into the system
# PostgreSQL 15, and builds the orchestrator and its unit tests under build/.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
sudo=
[[ $EUID -eq 0 ]] || sudo=sudo
make -s -j2
$sudo make -s install >/dev/null
# The boundary tests' functions live in a library of their own, never in the product.
make -s -C test/selftest
$sudo make -s -C test/selftest install >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
