#!/usr/bin/env bash
# Scheduled synchronizations on the two clusters, with pg_cron running on PROD: sync_schedule,
# sync_cancel, messages, e-mails. pg_cron itself runs the scheduler (envsync.run_due_syncs) at
# two minute boundaries. At the first: two runs of the pair overlapping in time (one waits for
# the other), a cancelled run, a failure, a comparison that became stale, and a run PROD crashes
# in. At the second: the recovery of the crashed run and a test import due then.
# TAP: prove --exec bash test/e2e/schedule_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"
# pg_cron runs a job at most once at a time: a second job calling the scheduler stands for a
# second scheduler (someone calling it by hand, say) starting at the same instant as the first.
second='envsync second scheduler (schedule test)'
# A failed crash test must not leave PROD down, nor a second scheduler behind.
trap '"$cluster" start >/dev/null 2>&1; prod -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '"'$second'"'" >/dev/null' EXIT

status() { prod -c "SELECT status FROM envsync.syncs WHERE id = $1"; }
statuses() { prod -c "SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM envsync.syncs WHERE id IN ($(tr ' ' , <<<"$*"))"; }
last_message() { prod -c "SELECT title || ' / ' || body FROM envsync.messages WHERE sync_id = $1 ORDER BY id DESC LIMIT 1"; }
failures() { prod -c "SELECT count(*) FROM envsync.messages WHERE sync_id = $1 AND title LIKE 'FAILURE%'"; }
tables() { prod -c "SELECT shop_fixture.fingerprint()" | tr ' ' '\n'; }
changed_since() { comm -13 <(sort <<<"$1") <(tables | sort) | cut -d: -f1 | paste -sd' '; }   # tables whose content changed
# The scheduler session executing a run holds that run's advisory lock; PROD and TEST's runs
# take the pair's lock while they write.
run_pid() { prod -c "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
                       AND classid = hashtext('envsync sync')::oid AND objid = $1::oid"; }
pair_lock() { prod -c "SELECT string_agg(pid || CASE WHEN granted THEN ' holds' ELSE ' waits' END, ', ' ORDER BY granted DESC, pid)
                         FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
                          AND classid = hashtext('envsync pair')::oid AND objid = hashtext('prod/test')::oid"; }
held() { local pid; pid=$(run_pid "$1"); [[ -n $pid && $(prod -c "SELECT wait_event FROM pg_stat_activity WHERE pid = $pid") == PgSleep ]]; }

on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" >/dev/null

# Writes into PROD that wait until the test opens their gate: so that a run is seen running,
# holding the pair, at a moment the test chooses.
prod >/dev/null <<'SQL'
CREATE TABLE shop_fixture.gates (name text PRIMARY KEY);
CREATE FUNCTION shop_fixture.wait_for_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1200 LOOP   -- two minutes at most
        EXIT WHEN EXISTS (SELECT FROM shop_fixture.gates WHERE name = TG_ARGV[0]);
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER wait_for_gate BEFORE UPDATE ON shop.cms_pages FOR EACH ROW
    WHEN (NEW.title LIKE '%(held)') EXECUTE FUNCTION shop_fixture.wait_for_gate('pair');
CREATE TRIGGER wait_for_gate BEFORE UPDATE ON shop.sliders FOR EACH ROW
    EXECUTE FUNCTION shop_fixture.wait_for_gate('pair');
CREATE TRIGGER wait_for_gate BEFORE UPDATE ON shop.system_settings FOR EACH ROW
    WHEN (NEW.key = 'mobile_app.theme') EXECUTE FUNCTION shop_fixture.wait_for_gate('never');
SQL
on_test -c "UPDATE shop.cms_pages SET title = 'Page 17 (held)' WHERE id = 17" >/dev/null

# --- Scheduled for the first minute boundary at least 30 s away (time to schedule them all) --------
m1=$(prod -c "SELECT date_trunc('minute', now() + interval '30 seconds') + interval '1 minute'")
m2=$(prod -c "SELECT '$m1'::timestamptz + interval '1 minute'")
before=$(tables)

# Two synchronizations of the pair due at once: cms (3 new records, page 17 held) and sliders.
a=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
sa=$(prod -c "SET TimeZone = 'Asia/Kolkata'" -c "SELECT sync_schedule($a, '$m1')")
like "$sa" '^[0-9]+$' "sync_schedule returns the synchronization's id"
is "$(prod -c "SELECT kind, status, run_at = '$m1', scheduled_by, started_at IS NULL FROM envsync.syncs WHERE id = $sa")" \
   "synchronization|pending|t|postgres|t" "envsync.syncs shows it pending, with its time and who scheduled it"
like "$(last_message "$sa")" "^Synchronization process / Synchronization $sa of TEST > PROD \(comparison $a\) is scheduled for [0-9-]+ [0-9:]+ \(UTC\+05:30\)\. To cancel it: SELECT sync_cancel\($sa\);$" \
     "the message says when, with the UTC offset of the scheduler's time zone, and how to cancel"
is "$(prod -c "SELECT count(*) FROM cron.job WHERE command = 'CALL envsync.run_due_syncs()' AND schedule = '* * * * *'")" "1" \
   "pg_cron holds the one job that runs the scheduler every minute"
like "$(prod -c "SELECT sync_schedule($a)")" "comparison $a is already synchronized by synchronization $sa \(pending\)" \
     "a comparison is scheduled once"
b=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['sliders'])")
sb=$(prod -c "SELECT sync_schedule($b, '$m1')")

# Menus: scheduled, then cancelled before its time; scheduled again, then a record changes on TEST.
m=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['menus'])")
sx=$(prod -c "SELECT sync_schedule($m, '$m1')")
prod -c "SELECT sync_cancel($sx)" >/dev/null
like "$(last_message "$sx")" "^Synchronization process / Synchronization $sx .* was cancelled on " "a cancelled synchronization's message says so"
like "$(prod -c "SELECT sync_cancel($sx)")" "ERROR:  synchronization $sx cannot be cancelled: it is already cancelled" "cancelling twice is refused"
like "$(prod -c "SELECT sync_cancel(999999)")" "ERROR:  synchronization 999999 does not exist" "an unknown synchronization is named"
sf=$(prod -c "SELECT sync_schedule($m, '$m1')")
on_test -c "UPDATE shop.menu_items SET label = 'Edited on TEST after the comparison' WHERE id = 10000001" >/dev/null

# Gallery: a comparison older than the pair's newest cannot be scheduled; a newer one made while
# one is pending makes it stale. That newer one (gallery and mobile_app) runs last, held.
old=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery'])")
new=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery'])")
like "$(prod -c "SELECT sync_schedule($old)")" "comparison $old is stale: comparison $new of the same environments is newer" \
     "scheduling a comparison older than the pair's newest is refused"
ss=$(prod -c "SELECT sync_schedule($new, '$m1')")
stale_maker=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['gallery', 'mobile_app'])")
sc=$(prod -c "SELECT sync_schedule($stale_maker, '$m1')")

# Catalogue: a test import due at the second boundary.
k=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['catalogue'])")
st=$(prod -c "SELECT sync_schedule($k, '$m2', test_import => true)")

prod -c "SELECT cron.schedule('$second', '* * * * *', 'CALL envsync.run_due_syncs()')" >/dev/null
[[ $(prod -c "SELECT now() < '$m1'") == t ]] || bail "scheduling took until $m1, when the runs were due"
diag "waiting for pg_cron at $m1"

# --- First boundary: the two runs of the pair overlap; the second waits for the first ---------------
# Whichever takes the pair first is held at its gate while the other waits for the pair's lock.
overlapping() {
    local pa pb
    pa=$(run_pid "$sa") pb=$(run_pid "$sb")
    [[ -n $pa && -n $pb ]] || return 1
    if [[ $(pair_lock) == "$pa holds, $pb waits" ]] && held "$sa"; then first=$sa then=$sb
    elif [[ $(pair_lock) == "$pb holds, $pa waits" ]] && held "$sb"; then first=$sb then=$sa
    else return 1; fi
}
first= then=
if wait_for 150 overlapping; then
    tap_result 1 "pg_cron starts both at their minute; one holds the pair, the other waits for the pair's lock"
    is "$(statuses "$sa" "$sb")" "$sa:running $sb:running" "while it waits, envsync.syncs says both are running"
    like "$(prod -c "SELECT sync_cancel($first)")" "cannot be cancelled: it has been running since" "a running synchronization cannot be cancelled"
else
    tap_result 0 "pg_cron starts both at their minute; one holds the pair, the other waits for the pair's lock" \
               "statuses: $(statuses "$sa" "$sb"); pair lock: $(pair_lock)"
fi
prod -c "INSERT INTO shop_fixture.gates VALUES ('pair')" >/dev/null

# Then the failure, the stale one, and the gallery run, held at its gate until PROD crashes.
m1_done() { [[ $(statuses "$sa" "$sb" "$sx" "$sf" "$ss" "$sc") == "$sa:succeeded $sb:succeeded $sx:cancelled $sf:failed $ss:failed $sc:running" ]] && held "$sc"; }
if wait_for 60 m1_done; then
    tap_result 1 "the first synchronizations finish; the last one is running"
    like "$(prod -c "SELECT sync_cancel($sc)")" "cannot be cancelled: it has been running since" "and cannot be cancelled"
    "$cluster" crash prod >/dev/null
    "$cluster" start prod >/dev/null
    restarted=$(prod -c "SELECT now()")
else
    tap_result 0 "the first synchronizations finish; the last one is running" "statuses: $(statuses "$sa" "$sb" "$sx" "$sf" "$ss" "$sc")"
    restarted=$(prod -c "SELECT now()")
fi

if [[ -n $first ]]; then
    is "$(prod -c "SELECT (SELECT finished_at FROM envsync.syncs WHERE id = $first) <= (SELECT started_at FROM envsync.syncs WHERE id = $then)")" \
       "t" "the second starts writing once the first has finished: never interleaved"
fi
is "$(prod -c "SELECT bool_and(started_at >= run_at AND started_at < run_at + interval '1 minute') FROM envsync.syncs WHERE id IN ($sa, $sb)")" \
   "t" "both ran within their minute, not before"
like "$(last_message "$sa")" "^Success: Synchronization process / Synchronization $sa of TEST > PROD .* The planned changes were applied: cms: 3 inserted, 1 updated, 0 deleted\.$" \
     "the success message lists what was applied per module"
like "$(last_message "$sb")" "^Success: Synchronization process / Synchronization $sb .* The planned changes were applied: sliders: 0 inserted, 2 updated, 0 deleted\.$" \
     "for each of the two"
is "$(prod -c "SELECT string_agg(kind || ' ' || recipient, ', ' ORDER BY id) FROM envsync.outbox WHERE payload->>'sync_id' IN ('$sa', '$sb')")" \
   "sync_succeeded dba@shop.example, sync_succeeded dba@shop.example" "and the operator's e-mails are queued"
is "$(changed_since "$before")" "cms_blocks cms_pages sliders slides" \
   "PROD holds their writes and nothing else: the cancelled, failed, stale and crashed runs wrote nothing"
like "$(prod -c "SELECT sync_cancel($sa)")" "cannot be cancelled: it succeeded on .*HINT:  To undo what it wrote: SELECT \* FROM sync_revert\($sa\);" \
     "cancelling a finished synchronization is refused, pointing to the revert"
like "$(last_message "$sx")" "^Synchronization process / Synchronization $sx .* was cancelled on " "the cancelled one never ran"
like "$(last_message "$sf")" "^FAILURE: Synchronization process / Synchronization $sf .* failed on .*: 1 record changed in environment \"test\" since the comparison\. Compare again and review the new differences\. Nothing was applied\.$" \
     "the FAILURE message gives the reason in words a user acts on"
is "$(prod -c "SELECT kind, payload->>'error' FROM envsync.outbox WHERE payload->>'sync_id' = '$sf'")" \
   'sync_failed|1 record changed in environment "test" since the comparison' "and the failure e-mail is queued"
is "$(prod -c "SELECT error_code, error_detail FROM envsync.syncs WHERE id = $sf")" "55000|shop.menu_items 10000001: changed" "envsync.syncs keeps the error"
is "$(prod -c "SELECT error FROM envsync.syncs WHERE id = $ss")" "comparison $new is stale: comparison $stale_maker of the same environments is newer" \
   "one that became stale while pending fails instead of running"
is "$(status "$st")" "pending" "the test import due at the next minute has not started"

# --- Second boundary: the crashed run is failed, once; the test import runs ------------------------
after_crash=$(tables)
m2_done() { [[ $(statuses "$sc" "$st") == "$sc:failed $st:succeeded" ]]; }
wait_for 150 m2_done
is "$(statuses "$sc" "$st")" "$sc:failed $st:succeeded" "after PROD's restart, pg_cron's next run fails the crashed one and runs the test import"
is "$(prod -c "SELECT date_trunc('minute', finished_at) = date_trunc('minute', '$restarted'::timestamptz) + interval '1 minute' FROM envsync.syncs WHERE id = $sc")" \
   "t" "at the first minute after the restart"
like "$(last_message "$sc")" "^FAILURE: Synchronization process / .* the synchronization was interrupted at .* Compare the environments again and schedule a new synchronization\. Nothing was applied\.$" \
     "with a message"
both_ran() { [[ $(prod -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details
                             WHERE status = 'succeeded'
                               AND date_trunc('minute', start_time) = date_trunc('minute', '$restarted'::timestamptz) + interval '1 minute'") == 2 ]]; }
ok "both schedulers ran at that minute" wait_for 10 both_ran
is "$(failures "$sc")" "1" "the crashed run is failed once, though two schedulers looked at the same time"
# A later scheduler run finds nothing to recover: called by hand, as pg_cron's next minute would,
# a minute sooner.
prod -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(failures "$sc")|$(status "$sc")" "1|failed" "and only once"
is "$(prod -c "SELECT started_at >= run_at FROM envsync.syncs WHERE id = $st")|$(changed_since "$after_crash")" "t|" \
   "the test import ran at its time and changed no data"
like "$(last_message "$st")" "^Success: Synchronization process / Test import $st .* Nothing was saved; a synchronization would write: catalogue: 2 inserted, 1 updated, 1 deleted\.$" \
     "its message says what a synchronization would write"
is "$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms', 'sliders'])")")" \
   "0" "the two synchronizations' changes are in PROD"

prod -c "SELECT cron.unschedule('$second')" -c "DROP TABLE shop_fixture.gates" \
     -c "DROP TRIGGER wait_for_gate ON shop.cms_pages" -c "DROP TRIGGER wait_for_gate ON shop.sliders" \
     -c "DROP TRIGGER wait_for_gate ON shop.system_settings" -c "DROP FUNCTION shop_fixture.wait_for_gate()" >/dev/null

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

# --- pg_cron missing ---------------------------------------------------------------------------------------
prod -c "SELECT cron.unschedule('envsync synchronizations')" -c "DROP EXTENSION pg_cron" >/dev/null
out=$(prod -c "SELECT sync_schedule($stale_maker)")
like "$out" "ERROR:  pg_cron is not installed in this database" "without pg_cron, sync_schedule fails"
like "$out" "shared_preload_libraries = 'pg_cron', cron.database_name = 'shop'" "with a hint telling how to enable it"
like "$(prod -c "SELECT * FROM sync_apply($stale_maker, true)")" "^[0-9]+\|gallery\|1\|0\|2
[0-9]+\|mobile_app\|0\|1\|0$" "sync_apply still works"
prod -c "CREATE EXTENSION pg_cron" >/dev/null

done_testing
