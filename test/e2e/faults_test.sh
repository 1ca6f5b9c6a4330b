#!/usr/bin/env bash
# Faults between the two servers, injected for real: a server process killed, a cluster stopped
# at once, concurrent edits, a database replaced, at the points where PROD and TEST can part.
# postgres_fdw commits TEST in PROD's pre-commit; to hold that moment open, a deferred
# constraint trigger on TEST sleeps at commit while the test kills PROD's backend (then TEST
# commits and PROD restarts without the transaction), or stops TEST (then neither commits).
# TAP: prove --exec bash test/e2e/faults_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
trap '"$cluster" start >/dev/null 2>&1; on_test -c "DROP FUNCTION IF EXISTS public.fault_hold() CASCADE" >/dev/null;
      prod -c "DROP FUNCTION IF EXISTS public.fault_hold() CASCADE" >/dev/null' EXIT

fingerprint_test() { on_test -c "SELECT shop_fixture.fingerprint()"; }
fingerprint_prod() { prod -c "SELECT shop_fixture.fingerprint()"; }
up() { prod -c "SELECT 1" | grep -qx 1 && on_test -c "SELECT 1" | grep -qx 1; }
sleeping() {   # sleeping prod|on_test: a backend sleeps in the hold
    [[ $("$@" -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") -gt 0 ]]
}
# hold prod|on_test TABLE EVENT [deferred]: the first such event of a transaction on TABLE sleeps
# (at commit when deferred) for 3 s.
hold() {
    local side=$1 table=$2 event=$3 kind=${4:-deferred} timing
    timing=$([[ $kind == deferred ]] && echo "DEFERRABLE INITIALLY DEFERRED" || echo "")
    $side -c "CREATE OR REPLACE FUNCTION public.fault_hold() RETURNS trigger LANGUAGE plpgsql AS \$\$
               BEGIN
                   IF current_setting('fault.held', true) IS DISTINCT FROM 'yes' THEN
                       PERFORM set_config('fault.held', 'yes', true);
                       PERFORM pg_sleep(3);
                   END IF;
                   RETURN NULL;
               END \$\$" \
          -c "CREATE CONSTRAINT TRIGGER fault_hold AFTER $event ON $table $timing
               FOR EACH ROW EXECUTE FUNCTION public.fault_hold()" >/dev/null
}
release() { $1 -c "DROP FUNCTION public.fault_hold() CASCADE" >/dev/null; }
# in_gap SQL: runs SQL on PROD (autocommit) and kills its backend while TEST sleeps at commit.
# Prints what the session printed.
in_gap() {
    local out=$(mktemp) pid
    "$cluster" psql prod -At -c "$1" >"$out" 2>&1 &
    local session=$!
    if wait_for 20 sleeping on_test; then
        pid=$(prod -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'
                         AND pid <> pg_backend_pid() AND query = \$q\$$1\$q\$")
        [[ -n $pid ]] && kill_deliberately KILL "$pid"
    fi
    wait "$session"
    wait_for 30 up
    wait_for 10 eval '! sleeping on_test'
    cat "$out"; rm -f "$out"
}
syncs_of() { prod -c "SELECT string_agg(status, ',' ORDER BY id) FROM envsync.syncs WHERE comparison_id = $1 AND NOT test_import"; }

# --- The commit gap of an apply, PROD > TEST: TEST committed, PROD lost the run -------------------------
prod -c "UPDATE shop.products SET name = 'Fault A' WHERE id = 3" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test')")
before=$(fingerprint_test)
hold on_test envsync.apply_requests INSERT
in_gap "SELECT * FROM sync_apply($id)" >/dev/null
release on_test
is "$(on_test -c "SELECT name FROM shop.products WHERE id = 3")|$(syncs_of "$id")" "Fault A|" \
   "PROD killed while TEST commits an apply: TEST kept the writes, PROD lost the run"
recovered=$(PGOPTIONS="-c client_min_messages=notice" "$cluster" psql prod -At -c "CALL envsync.run_due_syncs()" 2>&1)
like "$recovered" "was written in environment \"test\" but not recorded as succeeded here" \
     "the next scheduler run finds it there, saying so"
run=$(prod -c "SELECT id FROM envsync.syncs WHERE comparison_id = $id AND status = 'succeeded'")
is "$(prod -c "SELECT status, updated, revertible_until IS NOT NULL FROM envsync.syncs WHERE id = $run")" "succeeded|1|t" \
   "and records the truth: succeeded, what it wrote, revertible"
like "$(prod -c "SELECT * FROM sync_apply($id)")" "already synchronized by synchronization $run" \
     "applying the comparison again is refused"
hold on_test envsync.apply_requests INSERT
in_gap "SELECT * FROM sync_revert($run)" >/dev/null
release on_test
is "$(fingerprint_test)|$(prod -c "SELECT count(*) FROM envsync.syncs WHERE reverts = $run")" "$before|0" \
   "its revert, PROD killed while TEST commits it: TEST is back as it was, PROD lost the revert"
prod -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(prod -c "SELECT kind, status FROM envsync.syncs WHERE reverts = $run")|$(prod -c "SELECT revertible_until IS NULL FROM envsync.syncs WHERE id = $run")" \
   "revert|succeeded|t" "the next scheduler run records the revert too; the synchronization is reverted"
is "$(prod -c "SELECT count(*) FROM envsync.sync_runs WHERE id > $run") $(prod -c "SELECT nextval(pg_get_serial_sequence('envsync.sync_runs', 'id')) > $run + 1")" \
   "1 t" "no run id is given twice after the crash"

# --- The same for a scheduled run, marked running when PROD died -------------------------------------
prod -c "UPDATE shop.products SET name = 'Fault B' WHERE id = 3" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test')")
prod -c "INSERT INTO envsync.sync_runs (comparison_id, status, run_at, scheduled_by) VALUES ($id, 'pending', now(), 'postgres')" >/dev/null
hold on_test envsync.apply_requests INSERT
in_gap "CALL envsync.run_due_syncs()" >/dev/null
release on_test
is "$(on_test -c "SELECT name FROM shop.products WHERE id = 3")|$(syncs_of "$id")" "Fault B|running" \
   "PROD killed while TEST commits a scheduled run: PROD still shows it running"
prod -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(syncs_of "$id")|$(prod -c "SELECT count(*) FROM envsync.outbox WHERE kind = 'sync_failed' AND payload ->> 'sync_id' = (SELECT id FROM envsync.syncs WHERE comparison_id = $id)::text")" \
   "succeeded|0" "the next scheduler run records it succeeded, not interrupted"

# --- The same when PROD's commit fails after TEST's: SERIALIZABLE, cancelled at commit -------------
# A write skew with another serializable transaction, which commits first: PROD's transaction
# is found to be the pivot only at commit, after postgres_fdw committed TEST.
prod -c "CREATE TABLE public.fault_a (x integer)" -c "CREATE TABLE public.fault_b (x integer)" \
     -c "INSERT INTO public.fault_a VALUES (1)" -c "INSERT INTO public.fault_b VALUES (1)" \
     -c "UPDATE shop.products SET name = 'Fault S' WHERE id = 3" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test')")
out=$(mktemp)
"$cluster" psql prod -At -c "BEGIN ISOLATION LEVEL SERIALIZABLE" -c "SELECT count(*) FROM public.fault_a" \
    -c "UPDATE public.fault_b SET x = x + 1" -c "SELECT * FROM sync_apply($id)" -c "SELECT pg_sleep(2)" -c "COMMIT" >"$out" 2>&1 &
session=$!
wait_for 20 sleeping prod
prod -c "BEGIN ISOLATION LEVEL SERIALIZABLE" -c "SELECT count(*) FROM public.fault_b" -c "UPDATE public.fault_a SET x = x + 1" \
     -c "COMMIT" >/dev/null
wait "$session"
like "$(cat "$out")" "could not serialize access" "PROD's serializable transaction fails at commit, after TEST's"
rm -f "$out"
prod -c "DROP TABLE public.fault_a, public.fault_b" >/dev/null
is "$(on_test -c "SELECT name FROM shop.products WHERE id = 3")|$(syncs_of "$id")" "Fault S|" \
   "TEST kept the writes, PROD has no run"
out=$(PGOPTIONS="-c client_min_messages=notice" "$cluster" psql prod -At -c "SELECT sync_compare('prod', 'test')" 2>&1)
like "$out" "was written in environment \"test\" but not recorded as succeeded here" "the next comparison finds it there"
is "$(prod -c "SELECT status, revertible_until IS NOT NULL FROM envsync.syncs WHERE comparison_id = $id")" "succeeded|t" \
   "and records it succeeded, revertible"

# --- The commit gap of a comparison: TEST's change log compacted, PROD lost the comparison ------------
on_test -c "UPDATE shop.products SET description = 'edited on TEST first' WHERE id = 4" >/dev/null
prod -c "SELECT sync_compare('prod', 'test')" >/dev/null   # takes in the edit of product 4
on_test -c "UPDATE shop.products SET name = 'TEST edit' WHERE id = 5" >/dev/null
hold on_test envsync.row_log DELETE
in_gap "SELECT sync_compare('prod', 'test')" >/dev/null
release on_test
is "$(on_test -c "SELECT count(*) > 0 FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
                   WHERE t.relid = 'shop.products'::regclass AND l.key = '{5}'")" "t" \
   "PROD killed while TEST commits a comparison's compaction: TEST's edit is still logged"
prod -c "UPDATE shop.products SET name = 'PROD edit' WHERE id = 5" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test')")
is "$(prod -c "SELECT kind, selected FROM envsync.changes WHERE comparison_id = $id AND table_name = 'shop.products'::regclass AND record_key = '{\"id\": 5}'")" \
   "conflict|f" "so a later PROD edit of that record is a conflict, not selected"

# --- The other direction: TEST stopped while it commits an apply ----------------------------------
id=$(prod -c "SELECT sync_compare('prod', 'test')")
before=$(fingerprint_test)
hold on_test envsync.apply_requests INSERT
out=$(mktemp)
"$cluster" psql prod -At -c "SELECT * FROM sync_apply($id)" >"$out" 2>&1 &
session=$!
wait_for 20 sleeping on_test && "$cluster" crash test >/dev/null
wait "$session"
"$cluster" start >/dev/null
wait_for 30 up
release on_test
like "$(cat "$out")" "ERROR" "TEST stopped while it commits an apply: PROD's commit fails"
rm -f "$out"
is "$(fingerprint_test)|$(syncs_of "$id")|$(on_test -c "SELECT count(*) FROM envsync.apply_requests WHERE run_info ->> 'comparison_id' = '$id'")" \
   "$before||0" "neither side keeps the run"
prod -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(syncs_of "$id")" "" "and the scheduler finds nothing to recover"
like "$(prod -c "SELECT * FROM sync_apply($id)")" "^[0-9]+\|" "the comparison can be applied again"

# --- TEST > PROD: PROD killed at its commit, TEST stopped before ----------------------------------
on_test -c "UPDATE shop.products SET name = 'Fault D' WHERE id = 6" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod')")
before=$(fingerprint_prod)
hold prod envsync.sync_runs UPDATE
out=$(mktemp)
"$cluster" psql prod -At -c "SELECT * FROM sync_apply($id)" >"$out" 2>&1 &
session=$!
if wait_for 20 sleeping prod; then
    kill_deliberately KILL "$(prod -c "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' LIMIT 1")"
fi
wait "$session"; rm -f "$out"
wait_for 30 up
release prod
is "$(fingerprint_prod)|$(syncs_of "$id")" "$before|" "PROD killed while it commits an apply from TEST: nothing written, no run"
"$cluster" crash test >/dev/null
like "$(prod -c "SELECT * FROM sync_apply($id)")" "environment \"test\"" "TEST stopped: the apply from it fails, naming it"
is "$(fingerprint_prod)|$(syncs_of "$id")" "$before|failed" "nothing written, the run recorded as failed"
"$cluster" start >/dev/null
wait_for 30 up

# --- An edit of the target committed while a comparison runs ---------------------------------------
on_test -c "UPDATE shop.products SET name = 'TEST late' WHERE id = 7" -c "UPDATE shop.slides SET caption = 'TEST slide' WHERE id = 2" >/dev/null
hold prod envsync.compare_changes INSERT immediate   # the comparison stops at its first difference
out=$(mktemp)
"$cluster" psql prod -At -c "SELECT sync_compare('test', 'prod')" >"$out" 2>&1 &
session=$!
wait_for 20 sleeping prod
prod -c "UPDATE shop.slides SET caption = 'PROD edit meanwhile' WHERE id = 2" >/dev/null
wait "$session"
release prod
id=$(cat "$out"); rm -f "$out"
kind=$(prod -c "SELECT kind FROM envsync.changes WHERE comparison_id = $id AND table_name = 'shop.slides'::regclass AND record_key = '{\"id\": 2}'")
applied=$(prod -c "SELECT * FROM sync_apply($id)")
if [[ $kind == conflict ]]; then
    tap_result 1 "a PROD edit made during the comparison is in the review as a conflict"
else
    like "$applied" "shop.slides 2: changed" "a PROD edit made during the comparison is caught as drift when applying ($kind)"
fi
is "$(prod -c "SELECT caption FROM shop.slides WHERE id = 2")" "PROD edit meanwhile" "and is not overwritten"

# --- The selection changed while an apply runs ----------------------------------------------------
prod -c "UPDATE shop.products SET name = 'Fault F' WHERE id = 8" -c "UPDATE shop.products SET name = 'Fault F2' WHERE id = 9" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test')")
before=$(fingerprint_test)
selected=$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $id AND selected")
hold on_test envsync.apply_requests INSERT
out=$(mktemp)
"$cluster" psql prod -At -c "SELECT * FROM sync_apply($id)" >"$out" 2>&1 &
session=$!
wait_for 20 sleeping on_test
deselected=$(prod -c "SELECT sync_select($id, false)")
wait "$session"
release on_test
run=$(cut -d'|' -f1 "$out" | head -1); rm -f "$out"
is "$(prod -c "SELECT count(*) FROM envsync.compare_changes cc JOIN envsync.sync_runs s ON s.id = $run AND cc.change_id <@ s.selection")|$(prod -c "SELECT inserted + updated + deleted FROM envsync.syncs WHERE id = $run")" \
   "$selected|$selected" "a selection changed during an apply ($deselected deselected): the run records exactly what it wrote, the selection it started with"
prod -c "SELECT * FROM sync_revert($run)" >/dev/null
is "$(fingerprint_test)" "$before" "and its revert undoes exactly that"

# --- An environment replaced under the same name -----------------------------------------------------
prod -c "UPDATE shop.products SET name = 'Fault G' WHERE id = 11" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['catalogue'])")
(
    eval "$("$cluster" env test)"
    "$cluster" psql test -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$PGDATABASE' AND pid <> pg_backend_pid()" \
        -c "ALTER DATABASE \"$PGDATABASE\" RENAME TO \"${PGDATABASE}_replaced\"" \
        -c "CREATE DATABASE \"$PGDATABASE\" TEMPLATE \"${PGDATABASE}_replaced\"" \
        -c "DROP DATABASE \"${PGDATABASE}_replaced\"" >/dev/null
)
like "$(prod -c "SELECT * FROM sync_apply($id)")" "environment \"test\" is another database than when comparison $id was made" \
     "TEST made anew (another database under the same name): a comparison made before is not applied"
out=$(PGOPTIONS="-c client_min_messages=notice" "$cluster" psql prod -At -c "SELECT sync_compare('prod', 'test', ARRAY['cms'])" 2>&1)
like "$out" "environment \"test\" is another database than at its last comparison: every record is compared" \
     "the next comparison says why it reads everything"
is "$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $(tail -1 <<<"$out")")" "t" "and is full"
like "$(prod -c "SELECT * FROM sync_apply($id)")" "environment \"test\" is another database than when comparison $id was made" \
     "the comparison made before is still not applied once another comparison saw the new database"
is "$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $(prod -c "SELECT sync_compare('prod', 'test')")")" "t" \
   "a comparison of the other modules reads their tables whole too, once"
is "$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $(prod -c "SELECT sync_compare('prod', 'test')")")" "f" \
   "the one after it is incremental again"

# --- A failed run recorded apart while the caller holds a lock the recorder needs ---------------------
# The caller waits for the recorder on a lock, so the deadlock is PostgreSQL's to find and end:
# either the caller gives way (and the failure is recorded once it rolled back) or the recorder
# does (and the error says the failure could not be recorded), within seconds, never a hang.
prod -c "UPDATE shop.products SET name = 'Fault H' WHERE id = 12" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test')")
on_test -c "UPDATE shop.products SET name = 'drift' WHERE id = 12" >/dev/null
out=$(timeout 60 "$cluster" psql prod -At -c "BEGIN" -c "LOCK TABLE envsync.sync_runs IN SHARE MODE" \
          -c "SELECT * FROM sync_apply($id)" -c "COMMIT" 2>&1)
like "$out" "deadlock detected|could not be recorded as failed" \
     "a failure recorded apart while the caller holds a lock the recorder needs: a deadlock PostgreSQL resolves"
if [[ $out =~ "could not be recorded as failed" ]]; then
    like "$out" "ERROR:  1 record changed" "the recorder gave way: the error says so, not a warning"
else
    wait_for 10 eval '[[ $(syncs_of "$id") == failed ]]'
    is "$(syncs_of "$id")" "failed" "the caller gave way: the recorder then records the failure"
fi

# --- Bounded: tracking removed with the table, retention purged by the scheduler -------------------
tracking() {   # tracking prod|on_test TABLE: its envsync triggers, tracked record, log entries
    "$1" -c "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = '$2'::regclass AND tgname LIKE 'envsync%')
                    || '/' || (SELECT count(*) FROM envsync.tracked_tables WHERE relid = '$2'::regclass)
                    || '/' || (SELECT count(*) FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
                                WHERE t.relid = '$2'::regclass)"
}
on_test -c "UPDATE shop.slides SET caption = 'logged' WHERE id = 3" >/dev/null
prod -c "UPDATE shop.slides SET caption = 'logged' WHERE id = 4" >/dev/null
prod -c "SELECT sync_add_module('sliders', ARRAY['shop.sliders']::regclass[])" >/dev/null
is "$(tracking prod shop.slides) $(tracking on_test shop.slides)" "0/0/0 0/0/0" \
   "a table left out of its module is no longer tracked in either environment: triggers, record, log entries"
prod -c "SELECT sync_remove_module('sliders')" >/dev/null
is "$(tracking prod shop.sliders) $(tracking on_test shop.sliders)" "0/0/0 0/0/0" "nor are a removed module's tables"
prod -c "UPDATE envsync.outbox SET status = 'sent', sent_at = now() - interval '100 days' WHERE id = (SELECT min(id) FROM envsync.outbox)" >/dev/null
kept=$(prod -c "SELECT count(*) FROM envsync.compare_changes WHERE source_row IS NOT NULL OR target_row IS NOT NULL")
prod -c "SET envsync.keep_before_images = '0'" -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(prod -c "SELECT count(*) FROM envsync.outbox WHERE sent_at < now() - interval '90 days'")|$((kept > 0))|$(prod -c "SELECT count(*) FROM envsync.compare_changes c
      WHERE (c.source_row IS NOT NULL OR c.target_row IS NOT NULL)
        AND c.comparison_id < (SELECT max(id) FROM envsync.compare_runs)")" "0|1|0" \
   "the scheduler purges what outlived its retention: sent e-mails, before-images of synchronized and superseded comparisons"

done_testing
