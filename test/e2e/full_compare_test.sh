#!/usr/bin/env bash
# The full comparison's summaries on the two clusters: each server sums up a table keyed by one
# integer column per range of keys, hashing the values as stored. Values stored differently
# but equal (numeric scale, jsonb numbers, compression, enum OIDs, the session's time zone) are
# no difference; real differences are all found, in a partitioned table whose partitions lay
# their columns out differently, under a row filter, with a smallint key below zero, and with
# both directions of comparison.
# TAP: prove --exec bash test/e2e/full_compare_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"

changes() {   # the changes of a comparison, one line each: table key kind
    prod -F ' ' -c "SELECT table_name, record_key::text, kind FROM envsync.changes WHERE comparison_id = $1
                     ORDER BY table_name::text COLLATE \"C\", record_key::text COLLATE \"C\""
}
both() { prod "$@"; on_test "$@"; }

# TEST gets other enum OIDs (a type made before), lz4 instead of pglz and another time zone.
on_test -c "CREATE TYPE shop.unused AS ENUM ('x')" >/dev/null
for side in prod on_test; do
    compression=$([[ $side == prod ]] && echo pglz || echo lz4)
    $side >/dev/null <<SQL
SET TimeZone = '$([[ $side == prod ]] && echo UTC || echo Pacific/Auckland)';
CREATE TYPE shop.mood AS ENUM ('calm', 'busy');
CREATE TABLE shop.ledger (id bigint PRIMARY KEY, amount numeric, doc jsonb, mood shop.mood,
                          tags text[], at timestamptz, note text COMPRESSION $compression, page text);
INSERT INTO shop.ledger
SELECT g, CASE WHEN '$side' = 'prod' THEN 1.5 ELSE 1.50 END + g,
       CASE WHEN '$side' = 'prod' THEN '{"a": 1.5, "b": [1, 2]}' ELSE '{"b": [1, 2], "a": 1.50}' END::jsonb,
       CASE WHEN g % 2 = 0 THEN 'calm' ELSE 'busy' END::shop.mood, ARRAY['t' || g % 5],
       timestamptz '2026-03-01 12:00:00+00' + g * interval '1 hour',
       CASE WHEN g % 100 = 0 THEN repeat('long note ', 20000) ELSE 'note ' || g END, 'home'
  FROM generate_series(1, 3000) g;
CREATE TABLE shop.events (id integer, label text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE shop.events_low PARTITION OF shop.events FOR VALUES FROM (0) TO (1000);
SQL
done
# TEST's second partition has the columns the other way round and a dropped one.
prod -c "CREATE TABLE shop.events_high PARTITION OF shop.events FOR VALUES FROM (1000) TO (100000)" >/dev/null
on_test -c "CREATE TABLE shop.events_high (gone int, label text, id integer NOT NULL)" -c "ALTER TABLE shop.events_high DROP gone" \
        -c "ALTER TABLE shop.events ATTACH PARTITION shop.events_high FOR VALUES FROM (1000) TO (100000)" >/dev/null
both -c "INSERT INTO shop.events SELECT g, 'event ' || g FROM generate_series(1, 5000) g" >/dev/null
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.ledger', 'shop.events']::regclass[])" >/dev/null
is "$(prod -c "SELECT sync_add_module('ledger', ARRAY['shop.ledger', 'shop.events']::regclass[])")" "" "a module of range-keyed tables"

id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['ledger'])")
is "$(changes "$id")|$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $id")" "|t" \
   "equal values stored differently (numeric scale, jsonb, compression, enum OIDs, time zone) are no difference"

# Real differences, made with the change trigger disabled (as if they predated tracking): only
# a full comparison can find them.
untracked() {   # untracked SIDE SQL...: runs the SQL on SIDE with the tables' triggers disabled
    local side=$1; shift
    $side -c "ALTER TABLE shop.ledger DISABLE TRIGGER USER" -c "ALTER TABLE shop.events DISABLE TRIGGER USER" "$@" \
          -c "ALTER TABLE shop.ledger ENABLE TRIGGER USER" -c "ALTER TABLE shop.events ENABLE TRIGGER USER"
}
for side in prod on_test; do
    untracked $side -f - >/dev/null <<SQL
$([[ $side == prod ]] && cat <<'PROD'
UPDATE shop.ledger SET amount = amount + 0.01 WHERE id = 123;
UPDATE shop.ledger SET note = note || '!' WHERE id = 1500;
UPDATE shop.ledger SET doc = '{"a": 1.5, "b": [1, 3]}' WHERE id = 7;
DELETE FROM shop.events WHERE id = 999;
PROD
)
$([[ $side == on_test ]] && cat <<'TEST'
UPDATE shop.ledger SET mood = 'calm' WHERE id = 55;
UPDATE shop.ledger SET at = at + interval '1 microsecond' WHERE id = 2000;
DELETE FROM shop.ledger WHERE id = 2999;
INSERT INTO shop.ledger VALUES (3001, 1, '{}', 'calm', NULL, now(), 'new', 'home');
UPDATE shop.events SET label = 'moved' WHERE id = 4321;
INSERT INTO shop.events VALUES (5001, 'new');
TEST
)
SQL
done
expected='shop.events {"id": 4321} modified
shop.events {"id": 5001} new
shop.events {"id": 999} new
shop.ledger {"id": 123} modified
shop.ledger {"id": 1500} modified
shop.ledger {"id": 2000} modified
shop.ledger {"id": 2999} deleted
shop.ledger {"id": 3001} new
shop.ledger {"id": 55} modified
shop.ledger {"id": 7} modified'
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['ledger'])")
is "$(changes "$id")" "" "differences made outside the change log are not seen by an incremental comparison"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['ledger'], full_compare => true)")
is "$(changes "$id")" "$expected" "a full comparison finds every one, in each partition, big values and enums included"
is "$(prod -c "SELECT changed_columns FROM envsync.changes WHERE comparison_id = $id AND key IN ('{55}', '{2000}', '{1500}') ORDER BY key::text")" \
   '{note}
{at}
{mood}' "naming the column that differs"
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['ledger'], full_compare => true)")
is "$(changes "$id" | sed 's/ new$/ X/; s/ deleted$/ new/; s/ X$/ deleted/')" "$expected" "and the same the other way round"

# A row filter on a range-keyed table: rows outside it differ and are not listed.
for side in prod on_test; do untracked $side -c "UPDATE shop.ledger SET page = 'elsewhere' WHERE id = 124" >/dev/null; done
is "$(prod -c "SELECT sync_set_row_filter('shop.ledger', 'page', 'home%')")" "" "a row filter on the ledger"
untracked on_test -c "UPDATE shop.ledger SET note = 'hidden' WHERE id = 124" \
                  -c "UPDATE shop.ledger SET note = 'seen' WHERE id = 125" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['ledger'], full_compare => true)")
is "$(changes "$id" | grep -c .)|$(changes "$id" | grep -c '{"id": 124}')|$(changes "$id" | grep -c '{"id": 125}')" "11|0|1" \
   "a record outside the filter is out of the comparison; one inside it that differs is found"

# A smallint key, negative keys included: the buckets of the second step are read through the
# primary key in every integer width, below zero too.
both -c "CREATE TABLE shop.badges (id smallint PRIMARY KEY, label text)" \
     -c "INSERT INTO shop.badges SELECT g, 'badge ' || g FROM generate_series(-3000, 3000) g" >/dev/null
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.badges']::regclass[])" >/dev/null
prod -c "SELECT sync_add_module('badges', ARRAY['shop.badges']::regclass[])" >/dev/null
prod -c "SELECT sync_compare('test', 'prod', ARRAY['badges'])" >/dev/null   # the first, full
untracked_badges() { $1 -c "ALTER TABLE shop.badges DISABLE TRIGGER USER" -c "$2" -c "ALTER TABLE shop.badges ENABLE TRIGGER USER" >/dev/null; }
untracked_badges prod "UPDATE shop.badges SET label = 'gold' WHERE id IN (-2999, -1, 2500)"
untracked_badges on_test "DELETE FROM shop.badges WHERE id IN (-3000, 0)"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['badges'], full_compare => true)")
is "$(changes "$id" | tr '\n' ',')" \
   'shop.badges {"id": -1} modified,shop.badges {"id": -2999} modified,shop.badges {"id": -3000} deleted,shop.badges {"id": 0} deleted,shop.badges {"id": 2500} modified,' \
   "a smallint key's differences are all found, below zero too"

# --- The change log after a burst of writes: a comparison compacts a slice, the scheduler the rest
log_entries() { $1 -c "SELECT count(*) FROM envsync.row_log l JOIN envsync.tracked_tables t USING (table_id)
                         WHERE t.relid = 'shop.ledger'::regclass"; }
for side in prod on_test; do
    for i in $(seq 10); do $side -c "UPDATE shop.ledger SET page = page" >/dev/null; done   # 30,000 entries
done
prod -c "SELECT sync_compare('test', 'prod', ARRAY['ledger'])" >/dev/null   # takes the 30,000 entries a side in
is "$(prod -c "SELECT count(*) FROM envsync.unsynced u JOIN envsync.tracked_tables t USING (table_id)
                WHERE t.relid = 'shop.ledger'::regclass")" "8" \
   "of the 3,000 records written on both sides, only the 8 that still differ are kept as not in sync"
before="$(log_entries prod) $(log_entries on_test)"
prod -c "SELECT sync_compare('test', 'prod', ARRAY['ledger'])" >/dev/null
after="$(log_entries prod) $(log_entries on_test)"
is "$(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " "); print x[1] - y[1], x[2] - y[2], (x[1] >= 30000 && x[2] >= 30000) }')" \
   "20000 20000 1" "the next comparison forgets 20,000 entries of the table's log on each side, not the whole burst"
prod -c "CALL envsync.run_due_syncs()" >/dev/null
is "$(log_entries prod) $(log_entries on_test)" "0 0" "the scheduler's tick forgets the rest, on PROD and on TEST"

done_testing
