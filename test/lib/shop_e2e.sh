# Shared start of the end-to-end tests on the sample shop: TAP helpers, the two clusters, and
# a fresh shop (test/setup_shop.sh). Source it after setting repo.
#   prod ARGS..., on_test ARGS...   psql -At on PROD or TEST (errors on stdout, for the checks)
source "$repo/test/lib/tap.sh"
cluster=$repo/test/cluster.sh
# Progress NOTICEs are left out: the checks read results and errors.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
prod() { "$cluster" psql prod -At "$@" 2>&1; }
on_test() { "$cluster" psql test -At "$@" 2>&1; }
bash "$repo/test/setup_shop.sh" >/dev/null || bail "the sample shop could not be set up"
