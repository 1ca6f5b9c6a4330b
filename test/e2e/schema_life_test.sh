#!/usr/bin/env bash
# A shop's ordinary schema life on the two clusters: migrations run by a non-superuser role
# (DDL, dropped columns, columns in another order), partitioned tables, cascading and deferred
# foreign keys, unique values moving between records, TEST rebuilt by pg_dump | pg_restore of
# PROD, and patterns in the never-synced list.
# TAP: prove --exec bash test/e2e/schema_life_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"

changes() {   # the changes of a comparison, one line each: table key kind
    prod -F ' ' -c "SELECT table_name, record_key::text, kind FROM envsync.changes WHERE comparison_id = $1
                     ORDER BY table_name::text COLLATE \"C\", record_key::text COLLATE \"C\""
}
summary() {   # what sync_apply returned, without its sync id, modules that wrote nothing left out
    cut -d'|' -f2- <<<"$1" | tr '|' ' ' | grep -v ' 0 0 0$'
}
both() { prod "$@"; on_test "$@"; }
# The migration role: owns the tables it creates, is no superuser and has no right on envsync.
migrate() { "$@" -c "SET ROLE migrator" -c "$(cat)"; }
for side in prod on_test; do
    $side -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator') THEN CREATE ROLE migrator; END IF; END \$\$" \
          -c "GRANT CREATE, USAGE ON SCHEMA shop TO migrator" >/dev/null
done

# --- DDL by a role that has nothing to do with envsync -----------------------------------------------
for side in prod on_test; do
    is "$(migrate $side <<'SQL'
CREATE TABLE shop.scratch (i int PRIMARY KEY, j int);
ALTER TABLE shop.scratch ADD k int;
ALTER TABLE shop.scratch DROP j;
CREATE TABLE shop.scratch_parts (i int, r text, PRIMARY KEY (i, r)) PARTITION BY LIST (r);
CREATE TABLE shop.scratch_a PARTITION OF shop.scratch_parts FOR VALUES IN ('a');
DROP TABLE shop.scratch, shop.scratch_parts;
SQL
)" "" "$side: a non-superuser role without rights on envsync creates, alters and drops its tables"
done

# --- Partitioned tables ------------------------------------------------------------------------------
for side in prod on_test; do
    migrate $side >/dev/null <<'SQL'
CREATE TABLE shop.prices (product_id integer, region text, amount numeric(10,2) NOT NULL,
                          PRIMARY KEY (product_id, region)) PARTITION BY LIST (region);
CREATE TABLE shop.prices_eu PARTITION OF shop.prices FOR VALUES IN ('eu');
CREATE TABLE shop.prices_us PARTITION OF shop.prices FOR VALUES IN ('us');
INSERT INTO shop.prices SELECT n, r, n FROM generate_series(1, 5) n, unnest(ARRAY['eu', 'us']) r;
SQL
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.prices']::regclass[])" >/dev/null
like "$(prod -c "SELECT sync_add_module('prices', ARRAY['shop.prices_eu']::regclass[])")" \
     'table "shop.prices_eu" is a partition of table "shop.prices"' "a partition alone is refused, naming its partitioned table"
is "$(prod -c "SELECT sync_add_module('prices', ARRAY['shop.prices']::regclass[])")" "" "a partitioned table is synchronized"
# A partition created later is tracked too, TRUNCATE of one included.
migrate on_test >/dev/null <<'SQL'
CREATE TABLE shop.prices_asia PARTITION OF shop.prices FOR VALUES IN ('asia');
INSERT INTO shop.prices VALUES (1, 'asia', 7);
UPDATE shop.prices SET amount = 11 WHERE product_id = 1 AND region = 'eu';
UPDATE shop.prices SET region = 'asia' WHERE product_id = 2 AND region = 'us';
TRUNCATE shop.prices_us;
SQL
migrate prod >/dev/null <<'SQL'
CREATE TABLE shop.prices_asia PARTITION OF shop.prices FOR VALUES IN ('asia');
SQL
is "$(on_test -c "SELECT kind, count(*) FROM envsync.row_log GROUP BY kind ORDER BY kind")" "D|5
I|2
U|1" "TEST logs the writes of every partition: an update, an insert, a row moved to another partition (deleted there, inserted here), a partition's TRUNCATE"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['prices'])")
is "$(changes "$id")" 'shop.prices {"region": "asia", "product_id": 1} new
shop.prices {"region": "asia", "product_id": 2} new
shop.prices {"region": "eu", "product_id": 1} modified
shop.prices {"region": "us", "product_id": 1} deleted
shop.prices {"region": "us", "product_id": 2} deleted
shop.prices {"region": "us", "product_id": 3} deleted
shop.prices {"region": "us", "product_id": 4} deleted
shop.prices {"region": "us", "product_id": 5} deleted' "the comparison sees them all"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "prices 2 1 5" "and applies them into PROD's partitions"
is "$(prod -c "SELECT tableoid::regclass, count(*) FROM shop.prices GROUP BY 1 ORDER BY 1::text")" "shop.prices_asia|2
shop.prices_eu|5" "each row in its partition"
prod -c "TRUNCATE shop.prices" >/dev/null
is "$(prod -c "SELECT 1")" "1" "TRUNCATE of a tracked partitioned table: PROD is still up"
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['prices'])")
is "$(prod -c "SELECT kind, count(*) FROM envsync.changes WHERE comparison_id = $id GROUP BY 1")" "deleted|7" \
   "and every row it emptied, in every partition, is a deletion"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(on_test -c "SELECT count(*) FROM shop.prices")" "prices 0 0 7|0" "applied into TEST"
migrate prod >/dev/null <<'SQL'
CREATE TABLE shop.legacy_pages (id integer PRIMARY KEY, title text);
CREATE TABLE shop.legacy_pages_archive () INHERITS (shop.legacy_pages);
SQL
like "$(prod -c "SELECT sync_add_module('legacy', ARRAY['shop.legacy_pages']::regclass[])")" \
     'table "shop.legacy_pages" takes part in table inheritance' "a table with inheritance children is refused, saying why"

done_testing
