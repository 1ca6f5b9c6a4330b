#!/usr/bin/env bash
# ALTER EXTENSION envsync UPDATE from the released 0.1.0: on two clusters of their own, in a
# private copy of the PostgreSQL installation, 0.1.0 is built from its release commit, set up
# with the sample shop of its day and used (comparisons, synchronizations, a test import, a
# revert, a failure, scheduled and cancelled runs, messages, queued e-mails). Then this version
# is installed, the servers restarted and both databases updated. The data must survive, the
# environments keep working, and each database's envsync objects must dump exactly as a fresh
# install's (pg_dump --schema-only, after detaching them from the extension).
# TAP: prove --exec bash test/e2e/upgrade_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/tap.sh"
release=45d41bdc7f8108d26af46b9b6dbf58ca5be99276   # tag v0.1.0
system_bin=${ENVSYNC_PGBIN:-/usr/lib/postgresql/15/bin}

work=$(mktemp -d /tmp/envsync-upgrade.XXXXXX) || bail "no temporary directory"
chmod 755 "$work"   # the postgres OS user runs the servers from here
# Ports of their own: ten above the main clusters' (ENVSYNC_UPGRADE_PORT to choose).
export ENVSYNC_CLUSTER_DIR=$work/clusters ENVSYNC_PROD_PORT=${ENVSYNC_UPGRADE_PORT:-$((${ENVSYNC_PROD_PORT:-55432} + 10))}
export ENVSYNC_TEST_PORT=$((ENVSYNC_PROD_PORT + 1))
cluster=$repo/test/cluster.sh
finish() { "$cluster" stop >/dev/null 2>&1; [[ -n ${ENVSYNC_KEEP_UPGRADE:-} ]] || rm -rf "$work"; }
trap finish EXIT
export PGOPTIONS="-c client_min_messages=warning"
prod() { "$cluster" psql prod -At "$@" 2>&1; }
on_test() { "$cluster" psql test -At "$@" 2>&1; }

# --- envsync 0.1.0, in a private PostgreSQL installation ---------------------------------------------
git -C "$repo" cat-file -e "$release^{commit}" 2>/dev/null ||
    bail "release 0.1.0 ($release) is not in this clone's history: clone with history (not --depth)"
pg=$work/pg
mkdir -p "$pg/usr/lib/postgresql" "$pg/usr/share/postgresql" "$pg/usr/include" "$work/old"
cp -a "$(dirname "$system_bin")" "$pg/usr/lib/postgresql/" &&
    cp -a /usr/share/postgresql/15 "$pg/usr/share/postgresql/" &&
    cp -a /usr/include/postgresql "$pg/usr/include/" || bail "cannot copy the PostgreSQL installation"
export ENVSYNC_PGBIN=$pg/usr/lib/postgresql/15/bin PG_CONFIG=$pg/usr/lib/postgresql/15/bin/pg_config
git -C "$repo" archive "$release" | tar -x -C "$work/old" || bail "cannot unpack release 0.1.0"
(make -C "$work/old" -s -j2 && make -C "$work/old" -s install) >"$work/build-0.1.0.log" 2>&1 ||
    bail "release 0.1.0 does not build: $(tail -5 "$work/build-0.1.0.log")"
"$cluster" start >/dev/null || bail "the clusters do not start"
ENVSYNC_PGBIN=$ENVSYNC_PGBIN bash "$work/old/test/setup_shop.sh" >/dev/null 2>&1 || bail "0.1.0's sample shop cannot be set up"
is "$(prod -c "SELECT extversion FROM pg_extension WHERE extname = 'envsync'")|$(on_test -c "SELECT extversion FROM pg_extension WHERE extname = 'envsync'")" \
   "0.1.0|0.1.0" "envsync 0.1.0 runs in both databases"

# --- Used as 0.1.0 --------------------------------------------------------------------------------------
# An operator whose role name needs quoting; comparisons each way; a synchronization into PROD
# and its revert; a test import; a failure (a record edited after its comparison); a run
# scheduled for next year and one cancelled; a message read.
on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" -c "CREATE ROLE \"Shop Admin\" LOGIN IN ROLE envsync_operator" \
     -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" \
     -c "SELECT sync_set_operator('\"Shop Admin\"', 'admin@shop.example')" >/dev/null
c1=$(prod -U "Shop Admin" -c "SELECT sync_compare('test', 'prod', ARRAY['sliders'])")
s1=$(prod -U "Shop Admin" -c "SELECT sync_id FROM sync_apply($c1) LIMIT 1")
r1=$(prod -c "SELECT revert_id FROM sync_revert($s1) LIMIT 1")
c2=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
t2=$(prod -c "SELECT sync_id FROM sync_apply($c2, test_import => true) LIMIT 1")
prod -c "UPDATE shop.cms_pages SET title = 'Edited after the comparison' WHERE id = 10000001" \
     -c "SELECT sync_select($c2, true)" >/dev/null   # the page created on both sides, selected: drift
prod -c "SELECT * FROM sync_apply($c2)" >/dev/null
c3=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['menus'])")
p3=$(prod -c "SELECT sync_schedule($c3, now() + interval '1 year')")
c4=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['catalogue'])")
p4=$(prod -U "Shop Admin" -c "SELECT sync_schedule($c4, now() + interval '1 day', test_import => true)")
prod -c "SELECT sync_cancel($p4)" -U "Shop Admin" >/dev/null
prod -U "Shop Admin" -c "UPDATE envsync.messages SET read = true WHERE sync_id = $s1" >/dev/null
like "$c1|$s1|$r1|$c2|$t2|$c3|$p3|$c4|$p4" '^[0-9]+(\|[0-9]+){8}$' "0.1.0 compared, synchronized, reverted, test-imported and scheduled"
is "$(prod -c "SELECT string_agg(status, ',' ORDER BY id) FROM envsync.sync_runs")" \
   "succeeded,succeeded,succeeded,failed,pending,cancelled" "its runs: a synchronization, its revert, a test import, a failure, a pending and a cancelled one"

# What must survive, table by table, over the columns both versions have.
contents() {   # contents prod|test: one line per table, its rows' digest
    "$cluster" psql "$1" -At <<'SQL'
SELECT 'compare_runs ' || md5(string_agg(row(id, source, target, mode, modules, added_modules, scope, full_compare,
       started_by, started_at, finished_at, source_snapshot, target_snapshot)::text, ';' ORDER BY id)) FROM envsync.compare_runs;
SELECT 'compare_changes ' || md5(string_agg(row(change_id, comparison_id, module, table_name, key, record_key, kind,
       conflict_reason, selected, changed_columns, source_row, target_row, source_hash, target_hash)::text, ';' ORDER BY change_id))
  FROM envsync.compare_changes;
SELECT 'sync_runs ' || md5(string_agg(row(id, comparison_id, reverts, test_import, status, run_at, scheduled_by, scheduled_at,
       started_at, finished_at, summary, error, error_code, error_detail, error_hint, purged_at)::text, ';' ORDER BY id)) FROM envsync.sync_runs;
SELECT 'sync_messages ' || md5(string_agg(m::text, ';' ORDER BY id)) FROM envsync.sync_messages m;
SELECT 'outbox ' || md5(string_agg(row(id, created_at, recipient, kind, subject, payload - 'title' - 'text', status,
       attempts)::text, ';' ORDER BY id)) FROM envsync.outbox;
SELECT 'environments ' || md5(string_agg(e::text, ';' ORDER BY name)) FROM envsync.environments e;
SELECT 'modules ' || md5(string_agg(m::text, ';' ORDER BY name)) FROM envsync.modules m;
SELECT 'module_tables ' || md5(string_agg(m::text, ';' ORDER BY table_id)) FROM envsync.module_tables m;
SELECT 'tracked_tables ' || md5(string_agg(t::text, ';' ORDER BY table_id)) FROM envsync.tracked_tables t;
SELECT 'row_log ' || count(*) || ' ' || md5(string_agg(row(table_id, key, kind, applied, xid, at)::text, ';' ORDER BY at, xid, key))
  FROM envsync.row_log;
SELECT 'sync_points ' || md5(string_agg(p::text, ';' ORDER BY env_a, env_b, table_id)) FROM envsync.sync_points p;
SELECT 'unsynced ' || md5(string_agg(u::text, ';' ORDER BY env_a, env_b, table_id, key)) FROM envsync.unsynced u;
SELECT 'shop ' || shop_fixture.fingerprint();
SQL
}
prod_before=$(contents prod) test_before=$(contents test)

# --- This version installed; the servers restarted; both databases updated -------------------------------
make -C "$repo" -s install >"$work/install.log" 2>&1 || bail "this version does not install: $(tail -5 "$work/install.log")"
"$cluster" stop >/dev/null && "$cluster" start >/dev/null || bail "the clusters do not restart"
target=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$repo/extension/envsync.control")
out=$("$cluster" psql test -At -c "ALTER EXTENSION envsync UPDATE" -c "SELECT extversion FROM pg_extension WHERE extname = 'envsync'" 2>&1)
is "$out" "$target" "TEST: ALTER EXTENSION envsync UPDATE reaches $target"
out=$("$cluster" psql prod -At -c "SET client_min_messages = warning" -c "ALTER EXTENSION envsync UPDATE" \
      -c "SELECT extversion FROM pg_extension WHERE extname = 'envsync'" 2>&1)
like "$out" "WARNING:  scheduled synchronizations of comparisons made by envsync 0.1.0 will fail when due: $p3 \(comparison $c3, due " \
     "PROD: the update warns of the scheduled run that cannot run any more"
like "$out" "$target\$" "PROD: ALTER EXTENSION envsync UPDATE reaches $target"

is "$(contents prod)" "$prod_before" "PROD: comparisons, changes, runs, messages, e-mails, configuration and change log are as they were"
is "$(contents test)" "$test_before" "TEST: its configuration and change log are as they were"
is "$(prod -c "SELECT count(*) FILTER (WHERE payload ? 'title'), count(*) FILTER (WHERE payload ? 'text'), count(*) FILTER (WHERE kind <> 'comparison_finished') FROM envsync.outbox")" \
   "$(prod -c "SELECT count(*), count(*) FILTER (WHERE kind <> 'comparison_finished'), count(*) FILTER (WHERE kind <> 'comparison_finished') FROM envsync.outbox")" \
   "the queued e-mails gain envsync's heading, and the synchronizations' their text"
is "$(prod -c "SELECT payload ->> 'title' FROM envsync.outbox WHERE kind = 'sync_failed'")" "FAILURE: Synchronization process" \
   "the failure's heading is the message's"
is "$(prod -c "SELECT string_agg(role_name || ' ' || email, ', ' ORDER BY role_name) FROM envsync.operators")" \
   "Shop Admin admin@shop.example, postgres dba@shop.example" "operators are kept by role name now, not as quoted identifiers"
is "$(on_test -c "SELECT count(*) FROM envsync.link_tables l JOIN envsync.tracked_tables t ON t.relid = l.relid WHERE l.role_name = 'envsync_link'")|$(on_test -c "SELECT count(*) FROM envsync.tracked_tables")" \
   "$(on_test -c "SELECT count(*) FROM envsync.tracked_tables")|$(on_test -c "SELECT count(*) FROM envsync.tracked_tables")" \
   "TEST: the link role may synchronize the tables it could before (it held their privileges), no others"

# --- 0.1.0's comparisons cannot be applied; everything else works ------------------------------------------
is "$(prod -c "SELECT string_agg(id || ' ' || status || ' ' || envsync_version, ', ' ORDER BY id) FROM envsync.comparisons")" \
   "$c1 superseded 0.1.0, $c2 superseded 0.1.0, $c3 superseded 0.1.0, $c4 outdated 0.1.0" \
   "0.1.0's comparisons say so, the latest of the pair as outdated"
out=$(prod -c "SELECT * FROM sync_apply($c4)")
like "$out" "ERROR:  comparison $c4 was made by envsync 0.1.0, and this is envsync $target" "synchronizing it is refused, saying why"
like "$out" "HINT:  Compare the environments again." "and what to do"
like "$(prod -c "SELECT * FROM sync_revert($s1)")" "synchronization $s1 is already reverted" \
     "reverts keep their history"
prod -c "UPDATE envsync.sync_runs SET run_at = now() WHERE id = $p3" -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(prod -c "SELECT status, error FROM envsync.syncs WHERE id = $p3")" \
   "failed|comparison $c3 was made by envsync 0.1.0, and this is envsync $target" "the scheduled run fails when due, with that reason"
is "$(prod -U "Shop Admin" -c "SELECT string_agg(sync_id || ' ' || read, ', ' ORDER BY sync_id) FROM envsync.messages")" \
   "$s1 true, $p4 false" "the operator still reads her messages (the one read stays read)"
c5=$(prod -U "Shop Admin" -c "SELECT sync_compare('test', 'prod')")
like "$c5" '^[0-9]+$' "she compares TEST and PROD after the update"
is "$(prod -c "SELECT recipient FROM envsync.outbox WHERE payload->>'comparison_id' = '$c5'")" "admin@shop.example" \
   "and the e-mail goes to her"
applied=$(prod -U "Shop Admin" -c "SELECT sum(inserted + updated + deleted) FROM sync_apply($c5)")
like "$applied" '^[1-9][0-9]*$' "she synchronizes what it found into PROD"
c6=$(prod -c "SELECT sync_compare('test', 'prod')")
is "$(prod -c "SELECT count(*) FILTER (WHERE kind <> 'conflict'), count(*) FILTER (WHERE selected) FROM envsync.changes WHERE comparison_id = $c6")" \
   "0|0" "after which TEST and PROD differ only by the conflicts left unselected"
c7=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['menus'])")
like "$(prod -c "SELECT sum(inserted + updated + deleted) FROM sync_apply($c7)")" '^[0-9]+$' "PROD > TEST synchronizes too"

# --- The catalog equals a fresh install's -------------------------------------------------------------------
# Each database's envsync objects are detached from the extension (so that pg_dump shows them)
# and dumped, schema only; a new database with envsync just created is dumped the same way.
detach() {   # detach prod|test DATABASE
    "$cluster" psql "$1" -d "$2" -At -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT format('ALTER EXTENSION envsync DROP %s %s', o.type, o.identity)
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'envsync',
       pg_identify_object(d.classid, d.objid, 0) o
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' \gexec
SQL
}
dump() {   # dump prod|test DATABASE: envsync's schema and the sync_* functions
    # Left out: comments, blank lines, the dump's random \restrict key and schema public itself.
    (eval "$("$cluster" env "$1")" && "$ENVSYNC_PGBIN/pg_dump" --schema-only -n envsync -n public "$2" 2>&1) |
        grep -Ev '^(--.*|\\(un)?restrict .*|)$' | grep -Ev '^(CREATE|ALTER|COMMENT ON) SCHEMA public\b'
}
for side in prod test; do
    "$cluster" psql "$side" -c "DROP DATABASE IF EXISTS envsync_fresh" -c "CREATE DATABASE envsync_fresh" >/dev/null
    "$cluster" psql "$side" -d envsync_fresh -c "SET client_min_messages = warning" -c "CREATE EXTENSION envsync CASCADE" >/dev/null
done
"$cluster" psql test -d envsync_fresh -c "SELECT sync_grant_link('envsync_link')" >/dev/null   # the same link role's grants
for side in prod test; do
    detach "$side" shop && detach "$side" envsync_fresh
    dump "$side" shop >"$work/$side-upgraded.sql"
    dump "$side" envsync_fresh >"$work/$side-fresh.sql"
    difference=$(diff "$work/$side-upgraded.sql" "$work/$side-fresh.sql")
    is "$difference" "" "${side^^}: the upgraded envsync dumps exactly as a fresh install ($(grep -c '^CREATE' "$work/$side-fresh.sql") objects)"
done

# --- No server crashed ------------------------------------------------------------------------------
"$cluster" stop >/dev/null
out=$(bash "$repo/test/check_server_logs.sh" "$ENVSYNC_CLUSTER_DIR" 2>&1)
is "$?" "0" "no server process died on the way${out:+: $out}"
done_testing
