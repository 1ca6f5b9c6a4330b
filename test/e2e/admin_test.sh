#!/usr/bin/env bash
# End-to-end test of envsync-admin, the web admin, in a real browser: headless Chromium driven
# by Selenium (test/e2e/admin/flow.py) against the two clusters, with pg_cron really running a
# scheduled synchronization. TAP: prove --exec bash test/e2e/admin_test.sh
#
# On a fresh sample shop with the differences diverge() makes on each side, hostile content on
# TEST (a <script> inside a CMS page, a module and a table with HTML in their names), it logs in
# an operator (a role of envsync_operator with a password, connecting over TCP like any user of
# the admin) and a role that is not one, and goes through the four screens: Synchronization,
# Changes review, Messages and History. Screenshots go to $ENVSYNC_TEST_OUTPUT/admin (default
# test/output/admin) for people to look at. About two minutes, most of it waiting for pg_cron.
#
# Roles anna_e2e and guest_e2e are made in the PROD cluster and dropped at the end.
# Environment: test/cluster.sh's, and
#   ENVSYNC_ADMIN        the binary (default build/orchestrator/envsync-admin, built when missing)
#   ENVSYNC_TEST_OUTPUT  where the screenshots go (under admin/)
#   ENVSYNC_E2E_KEEP     when set, keep the temporary directory (logs) for debugging
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
HELPERS=$repo/test/e2e/admin
PY=/usr/bin/python3   # Debian's, which has selenium
export PYTHONDONTWRITEBYTECODE=1
BIN=${ENVSYNC_ADMIN:-$repo/build/orchestrator/envsync-admin}
OUT=${ENVSYNC_TEST_OUTPUT:-$repo/test/output}/admin
WORK=$(mktemp -d /tmp/envsync-admin-e2e.XXXXXX)
ADMIN_PID=

# Roles belong to the whole cluster: only those this test made are dropped.
drop_roles() {
    prod -c "SET client_min_messages = warning" \
         -c "SELECT sync_remove_operator(r.rolname::regrole) FROM pg_roles r WHERE r.rolname = 'anna_e2e'" \
         -c "DROP ROLE IF EXISTS anna_e2e" -c "DROP ROLE IF EXISTS guest_e2e" >/dev/null
}

cleanup() {
    local rc=$?
    [[ -n $ADMIN_PID ]] && kill "$ADMIN_PID" 2>/dev/null && wait "$ADMIN_PID" 2>/dev/null
    if [[ $rc != 0 || $tap_failures != 0 ]]; then
        for log in "$WORK"/*.log "$WORK"/*.err; do
            [[ -s $log ]] && diag "${log##*/}:" && diag "$(tail -n 40 "$log")"
        done
    fi
    drop_roles
    if [[ -n ${ENVSYNC_E2E_KEEP:-} ]]; then diag "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [[ ! -x $BIN ]]; then
    { cmake -S "$repo" -B "$repo/build" && cmake --build "$repo/build" -j2 --target envsync-admin; } \
        >"$WORK/build.log" 2>&1 || bail "cannot build envsync-admin (build.log below)"
fi
rm -rf "$OUT" && mkdir -p "$OUT" || bail "cannot make $OUT"

# --- the shop: differences on both sides, hostile content on TEST ------------------------------------
on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" >/dev/null
# Never synced, on PROD: clicks on a product's category, removed with it (ON DELETE CASCADE). The
# category link TEST deleted would take one of them along: the review marks it.
prod -q <<'SQL' >/dev/null || bail "cannot make the cascading table on PROD"
CREATE TABLE shop.category_clicks (id integer PRIMARY KEY, product_id integer NOT NULL, category_id integer NOT NULL,
                                   FOREIGN KEY (product_id, category_id) REFERENCES shop.product_categories ON DELETE CASCADE);
INSERT INTO shop.category_clicks VALUES (1, 5, 9);
SQL
for side in prod test; do
    "$cluster" psql "$side" -q <<'SQL' || bail "cannot make the hostile table on $side"
CREATE TABLE shop."<b onclick=alert(1)>notes" (id integer PRIMARY KEY, "<i>text</i>" text NOT NULL);
SQL
done
on_test -q <<'SQL' >/dev/null || bail "cannot write the hostile content on TEST"
SELECT sync_grant_link('envsync_link', ARRAY['shop."<b onclick=alert(1)>notes"']::regclass[]);
INSERT INTO shop.cms_pages (id, slug, title, body, meta, published, published_at, updated_at)
VALUES (10000002, 'hostile', '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">',
        '<p>Spring</p><script>window.__pwned=6; document.title="pwned"</script>',
        '{"<img src=x onerror=window.__pwned=7>": "<svg onload=window.__pwned=8>"}', true,
        '2026-03-01 12:00+00', '2026-03-01 12:00+00');
SQL
prod -c "SELECT sync_add_module('<script>window.__pwned=4</script>', ARRAY['shop.\"<b onclick=alert(1)>notes\"']::regclass[])" \
    >/dev/null || bail "cannot add the module with a hostile name"
on_test -c "INSERT INTO shop.\"<b onclick=alert(1)>notes\" VALUES (1, '<img src=x onerror=window.__pwned=5>')" >/dev/null

# --- users: an operator with a password (logging in over TCP), and a role that is not one ------------
drop_roles
{ set +x; } 2>/dev/null
ANNA_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
GUEST_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "SET log_min_error_statement = panic;" \
    "CREATE ROLE anna_e2e LOGIN PASSWORD '$ANNA_PASSWORD' IN ROLE envsync_operator;" \
    "CREATE ROLE guest_e2e LOGIN PASSWORD '$GUEST_PASSWORD';" \
    "SELECT sync_set_operator('anna_e2e', 'anna@shop.example');" | "$cluster" psql prod -q -o /dev/null ||
    bail "cannot make the roles"
export ANNA_PASSWORD GUEST_PASSWORD

# --- the admin --------------------------------------------------------------------------------------
eval "$("$cluster" env prod)"   # PGHOST: the socket directory, PGPORT, PGDATABASE
export ADMIN_BIN=$BIN ADMIN_DB="host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE"
export ADMIN_SOCKET_DB="host=$PGHOST port=$PGPORT dbname=$PGDATABASE"
"$BIN" --db "$ADMIN_DB" --port 0 >"$WORK/admin.log" 2>&1 &
ADMIN_PID=$!
listening() { grep -q 'listening on http://127.0.0.1:[0-9]*/' "$WORK/admin.log"; }
wait_for 10 listening || bail "envsync-admin did not start"
ADMIN_URL=$(grep -o 'http://127.0.0.1:[0-9]*/' "$WORK/admin.log" | head -n 1)
export ADMIN_URL CLUSTER=$cluster OUT WORK
diag "envsync-admin at $ADMIN_URL; screenshots in $OUT"

# --- the browser flow: its checks become this test's -------------------------------------------------
ended=0
while IFS= read -r line; do
    case $line in
        "ok - "*) tap_result 1 "${line#ok - }" ;;
        "not ok - "*) tap_result 0 "${line#not ok - }" ;;
        END) ended=1 ;;
        *) echo "$line" ;;
    esac
done < <(timeout 400 "$PY" "$HELPERS/flow.py" 2>"$WORK/flow.err")
is "$ended" 1 "the browser flow ran to its end"
ok "envsync-admin is still running" kill -0 "$ADMIN_PID"
ok "no password in the admin's log" eval '! grep -qF -e "$ANNA_PASSWORD" -e "$GUEST_PASSWORD" "$WORK"/*.log'
kill -TERM "$ADMIN_PID"
wait "$ADMIN_PID"
is "$?" 0 "SIGTERM stops envsync-admin with status 0"
ADMIN_PID=
admin_sessions() { [[ $(prod -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'envsync-admin'") == 0 ]]; }
ok "once stopped, none of its connections is left" wait_for 5 admin_sessions

done_testing
