#!/usr/bin/env bash
# Installs the Debian 12 packages envsync is built, tested and demonstrated with (as root, or
# through sudo). Does nothing when they are all there already.
set -euo pipefail
packages=(g++ make cmake pkg-config
          postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl
          libfmt-dev libpq-dev libcurl4-openssl-dev libgtest-dev python3-aiosmtpd
          libcpp-httplib-dev nlohmann-json3-dev openssl chromium chromium-driver python3-selenium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=
[[ $EUID -eq 0 ]] || sudo=sudo
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
# The package's own cluster (15/main) is not used: envsync's tests and demo run their own.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
