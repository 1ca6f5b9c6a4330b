#!/usr/bin/env bash
# Scheduled synchronizations on the two clusters, with pg_cron running on PROD: sync_schedule,
# sync_cancel, the scheduler (envsync.run_due_syncs, called directly where that tests the same
# logic, and once by pg_cron itself), messages, e-mails, and a crash in the middle of a run.
# TAP: prove --exec bash test/e2e/schedule_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
trap '"$cluster" start >/dev/null 2>&1' EXIT   # a failed crash test must not leave PROD down

status() { prod -c "SELECT status FROM envsync.syncs WHERE id = $1"; }
tick() { prod -c "CALL envsync.run_due_syncs()" >/dev/null; }
fingerprint_prod() { prod -c "SELECT shop_fixture.fingerprint()"; }
last_message() { prod -c "SELECT title || ' / ' || body FROM envsync.messages WHERE sync_id = $1 ORDER BY id DESC LIMIT 1"; }

on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" >/dev/null

# --- pg_cron runs a synchronization scheduled a minute ahead -----------------------------------------
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms', 'sliders'])")
due=$(prod -c "SELECT date_trunc('minute', now()) + interval '1 minute'")
sync=$(prod -c "SET TimeZone = 'Asia/Kolkata'" -c "SELECT sync_schedule($id, '$due')")
like "$sync" '^[0-9]+$' "sync_schedule returns the synchronization's id"
is "$(prod -c "SELECT kind, status, run_at = '$due', scheduled_by, started_at IS NULL FROM envsync.syncs WHERE id = $sync")" \
   "synchronization|pending|t|postgres|t" "envsync.syncs shows it pending, with its time and who scheduled it"
like "$(last_message "$sync")" "^Synchronization process / Synchronization $sync of TEST > PROD \(comparison $id\) is scheduled for [0-9-]+ [0-9:]+ \(UTC\+05:30\)\. To cancel it: SELECT sync_cancel\($sync\);$" \
     "the message says when, with the UTC offset of the scheduler's time zone, and how to cancel"
is "$(prod -c "SELECT count(*) FROM cron.job WHERE command = 'CALL envsync.run_due_syncs()' AND schedule = '* * * * *'")" "1" \
   "pg_cron holds the one job that runs the scheduler every minute"
like "$(prod -c "SELECT sync_schedule($id)")" "comparison $id is already synchronized by synchronization $sync \(pending\)" \
     "a comparison is scheduled once"
ran_by_cron() { [[ $(status "$sync") == succeeded ]]; }
if wait_for 150 ran_by_cron; then tap_result 1 "pg_cron started it at its minute and it succeeded"
else tap_result 0 "pg_cron started it at its minute and it succeeded" "status: $(status "$sync")"; fi
is "$(prod -c "SELECT started_at >= run_at FROM envsync.syncs WHERE id = $sync")" "t" "not before its time"
like "$(last_message "$sync")" "^Success: Synchronization process / Synchronization $sync of TEST > PROD .* The planned changes were applied: cms: 3 inserted, 0 updated, 0 deleted; sliders: 0 inserted, 2 updated, 0 deleted\.$" \
     "the success message lists what was applied per module"
is "$(prod -c "SELECT kind, recipient, payload->>'sync_id' FROM envsync.outbox ORDER BY id DESC LIMIT 1")" \
   "sync_succeeded|dba@shop.example|$sync" "and the operator's e-mail is queued"
is "$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms', 'sliders'])") AND kind <> 'conflict'")" \
   "0" "its changes are in PROD"

# --- Cancelled before its time: never runs -----------------------------------------------------------
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['menus'])")
sync=$(prod -c "SELECT sync_schedule($id, now() + interval '1 hour')")
before=$(fingerprint_prod)
prod -c "SELECT sync_cancel($sync)" -c "UPDATE envsync.sync_runs SET run_at = now() - interval '5 minutes' WHERE id = $sync" >/dev/null
tick
is "$(status "$sync")|$(fingerprint_prod)" "cancelled|$before" "a cancelled synchronization never runs"
like "$(last_message "$sync")" "^Synchronization process / Synchronization $sync .* was cancelled on " "its message says it was cancelled"
like "$(prod -c "SELECT sync_cancel($sync)")" "cannot be cancelled: it is already cancelled" "cancelling twice is refused"
done_sync=$(prod -c "SELECT min(id) FROM envsync.syncs WHERE status = 'succeeded'")
like "$(prod -c "SELECT sync_cancel($done_sync)")" "cannot be cancelled: it succeeded on .*HINT:  To undo what it wrote: SELECT \* FROM sync_revert\($done_sync\);" \
     "cancelling a finished synchronization is refused, pointing to the revert"
like "$(prod -c "SELECT sync_cancel(999999)")" "synchronization 999999 does not exist" "an unknown synchronization is named"

# --- A scheduled test import changes nothing ---------------------------------------------------------
sync=$(prod -c "SELECT sync_schedule($id, test_import => true)")
tick
is "$(status "$sync")|$(fingerprint_prod)" "succeeded|$before" "a scheduled test import succeeds and changes no data"
like "$(last_message "$sync")" "^Success: Synchronization process / Test import $sync .* Nothing was saved; a synchronization would write: menus: 1 inserted" \
     "its message says what a synchronization would write"

# --- A failing synchronization -------------------------------------------------------------------------
sync=$(prod -c "SELECT sync_schedule($id)")
on_test -c "UPDATE shop.menu_items SET label = 'Edited on TEST after the comparison' WHERE id = 10000001" >/dev/null
tick
is "$(status "$sync")|$(fingerprint_prod)" "failed|$before" "a synchronization whose records changed since the comparison fails, writing nothing"
like "$(last_message "$sync")" "^FAILURE: Synchronization process / Synchronization $sync .* failed on .*: 1 record changed in environment \"test\" since the comparison\. Compare again and review the new differences\. Nothing was applied\.$" \
     "the FAILURE message gives the reason in words a user acts on"
is "$(prod -c "SELECT kind, payload->>'error' FROM envsync.outbox ORDER BY id DESC LIMIT 1")" \
   'sync_failed|1 record changed in environment "test" since the comparison' "and the failure e-mail is queued"
is "$(prod -c "SELECT error_detail FROM envsync.syncs WHERE id = $sync")" "shop.menu_items 10000001: changed" "envsync.syncs keeps the error"

# --- Stale comparisons, pg_cron missing ------------------------------------------------------------------
old=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery'])")
new=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery'])")
like "$(prod -c "SELECT sync_schedule($old)")" "comparison $old is stale: comparison $new of the same environments is newer" \
     "scheduling a comparison older than the pair's newest is refused"
sync=$(prod -c "SELECT sync_schedule($new, now() + interval '1 hour')")
stale_maker=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'mobile_app'])")
prod -c "UPDATE envsync.sync_runs SET run_at = now() WHERE id = $sync" >/dev/null
tick
is "$(status "$sync")|$(prod -c "SELECT error FROM envsync.syncs WHERE id = $sync")" \
   "failed|comparison $new is stale: comparison $stale_maker of the same environments is newer" \
   "one that became stale while pending fails instead of running"
prod -c "SELECT cron.unschedule('envsync synchronizations')" -c "DROP EXTENSION pg_cron" >/dev/null
out=$(prod -c "SELECT sync_schedule($stale_maker)")
like "$out" "ERROR:  pg_cron is not installed in this database" "without pg_cron, sync_schedule fails"
like "$out" "shared_preload_libraries = 'pg_cron', cron.database_name = 'shop'" "with a hint telling how to enable it"
like "$(prod -c "SELECT * FROM sync_apply($stale_maker, true)")" "gallery" "sync_apply still works"
prod -c "CREATE EXTENSION pg_cron" >/dev/null

# --- One synchronization of a pair at a time -----------------------------------------------------------
on_test -c "UPDATE shop.cms_pages SET title = title || ' (TEST)' WHERE id BETWEEN 10 AND 15" \
        -c "UPDATE shop.sliders SET name = name || ' (TEST)' WHERE id = 2" >/dev/null
a=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
b=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['sliders'])")
sa=$(prod -c "SELECT sync_schedule($a)")
sb=$(prod -c "SELECT sync_schedule($b)")
tick & tick & wait
is "$(prod -c "SELECT string_agg(status || ' ' || inserted || '/' || updated || '/' || deleted, ', ' ORDER BY id) FROM envsync.syncs WHERE id IN ($sa, $sb)")" \
   "succeeded 0/6/0, succeeded 0/1/0" "two synchronizations of one pair due at once, run by two schedulers at once, both succeed"
is "$(prod -c "SELECT (SELECT finished_at FROM envsync.syncs WHERE id = $sa) <= (SELECT started_at FROM envsync.syncs WHERE id = $sb)
                   OR (SELECT finished_at FROM envsync.syncs WHERE id = $sb) <= (SELECT started_at FROM envsync.syncs WHERE id = $sa)")" \
   "t" "one after the other, never interleaved" 

# --- A crash while a synchronization runs -----------------------------------------------------------------
prod >/dev/null <<'SQL'
CREATE FUNCTION shop.slow_down() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN IF NEW.title LIKE '%(slow)' THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$;
CREATE TRIGGER slow_down BEFORE UPDATE ON shop.cms_pages FOR EACH ROW EXECUTE FUNCTION shop.slow_down();
SQL
on_test -c "UPDATE shop.cms_pages SET title = 'Page (slow)' WHERE id = 17" -c "UPDATE shop.cms_pages SET title = 'Quick' WHERE id = 16" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
sync=$(prod -c "SELECT sync_schedule($id)")
before=$(fingerprint_prod)
tick &
sleeping() { [[ -n $(prod -c "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'") ]]; }
if wait_for 30 sleeping; then
    is "$(status "$sync")" "running" "while it runs, envsync.syncs says running"
    like "$(prod -c "SELECT sync_cancel($sync)")" "cannot be cancelled: it has been running since" "and it cannot be cancelled"
    "$cluster" crash prod >/dev/null
    wait
    "$cluster" start prod >/dev/null
    tick   # (or pg_cron's own, if a minute starts meanwhile)
    is "$(status "$sync")|$(fingerprint_prod)" "failed|$before" "after a crash, the next scheduler run marks it failed; nothing of it was applied"
    like "$(last_message "$sync")" "^FAILURE: Synchronization process / .* the synchronization was interrupted at .* Compare the environments again and schedule a new synchronization\. Nothing was applied\.$" \
         "with a message"
    tick
    is "$(prod -c "SELECT count(*) FROM envsync.messages WHERE sync_id = $sync AND title LIKE 'FAILURE%'")" "1" "and only once"
else
    tap_result 0 "the synchronization reached the slow trigger"
fi
prod -c "DROP TRIGGER slow_down ON shop.cms_pages" >/dev/null

# --- Messages per operator --------------------------------------------------------------------------------
prod -c "DROP ROLE IF EXISTS shop_admin" -c "CREATE ROLE shop_admin LOGIN IN ROLE envsync_operator" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
sync=$(prod -U shop_admin -c "SELECT sync_schedule($id, now() + interval '1 day', test_import => true)")
is "$(prod -U shop_admin -c "SELECT count(*), bool_and(NOT read) FROM envsync.messages")" "1|t" \
   "an operator sees their own messages, unread"
prod -U shop_admin -c "UPDATE envsync.messages SET read = true WHERE sync_id = $sync" >/dev/null
is "$(prod -U shop_admin -c "SELECT bool_and(read) FROM envsync.messages")" "t" "and marks them read"
prod -U shop_admin -c "SELECT sync_cancel($sync)" >/dev/null
is "$(status "$sync")|$(prod -c "SELECT cancelled_by FROM envsync.syncs WHERE id = $sync")" "cancelled|shop_admin" \
   "and may cancel what they scheduled; envsync.syncs says who cancelled it"
prod -c "DELETE FROM envsync.sync_messages WHERE recipient = 'shop_admin'" -c "DROP ROLE shop_admin" >/dev/null

done_testing
