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
is "$(prod -c "SELECT tableoid::regclass::text, count(*) FROM shop.prices GROUP BY 1 ORDER BY 1")" "shop.prices_asia|2
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

# --- Foreign keys: cascades into data never synced, deferred checks, unique values moving ----------
# A schema as frameworks make it: every foreign key DEFERRABLE INITIALLY DEFERRED. The reader
# comments and the order lines are never synced.
for side in prod on_test; do
    migrate $side >/dev/null <<'SQL'
CREATE TABLE shop.authors (id integer PRIMARY KEY, name text NOT NULL UNIQUE DEFERRABLE);
CREATE TABLE shop.articles (id integer PRIMARY KEY, title text NOT NULL,
    author_id integer REFERENCES shop.authors DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE shop.article_comments (id integer PRIMARY KEY, body text,
    article_id integer NOT NULL REFERENCES shop.articles ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE shop.variants (id integer PRIMARY KEY, label text NOT NULL);
CREATE TABLE shop.order_lines (id integer PRIMARY KEY,
    variant_id integer NOT NULL REFERENCES shop.variants DEFERRABLE INITIALLY DEFERRED);
INSERT INTO shop.authors SELECT n, 'author ' || n FROM generate_series(1, 9) n;
INSERT INTO shop.articles SELECT n, 'article ' || n, n FROM generate_series(1, 9) n;
INSERT INTO shop.variants SELECT n, 'variant ' || n FROM generate_series(1, 5) n;
SQL
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.authors', 'shop.articles', 'shop.variants']::regclass[])" >/dev/null
prod -c "SELECT sync_add_module('blog', ARRAY['shop.authors', 'shop.articles']::regclass[])" \
     -c "SELECT sync_add_module('variants', ARRAY['shop.variants']::regclass[])" >/dev/null
prod -c "INSERT INTO shop.article_comments VALUES (1, 'great', 5), (2, 'thanks', 5), (3, 'hm', 6)" \
     -c "INSERT INTO shop.order_lines VALUES (1, 2)" >/dev/null
fingerprint() { "$@" -c "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (SELECT a::text FROM shop.authors a UNION ALL SELECT r::text FROM shop.articles r
                                      UNION ALL SELECT c::text FROM shop.article_comments c UNION ALL SELECT v::text FROM shop.variants v) x(x)"; }

on_test -c "DELETE FROM shop.articles WHERE id IN (5, 7)" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['blog'])")
is "$(prod -c "SELECT record_key->>'id', cascades FROM envsync.changes WHERE comparison_id = $id ORDER BY 1")" \
   '5|[{"table": "shop.article_comments", "action": "delete", "records": ["1", "2"], "constraint": "article_comments_article_id_fkey"}]
7|' "the review shows the never-synced records a deletion would cascade into"
before=$(fingerprint prod)
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
like "$dry" 'deleting records of table shop.articles in environment "prod" would delete 2 record\(s\) of table shop.article_comments that it does not synchronize' \
     "a deletion cascading into never-synced records: the test import fails, naming the tables"
like "$dry" 'Foreign key "article_comments_article_id_fkey" of table shop.article_comments \(ON DELETE CASCADE\): records 1; 2 of table shop.article_comments reference records 5 of table shop.articles' \
     "and the constraint and the records"
real=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(grep ERROR <<<"$real")" "$(grep ERROR <<<"$dry")" "the synchronization fails exactly the same way"
is "$(fingerprint prod)|$(prod -c "SELECT status, error_code FROM envsync.syncs WHERE comparison_id = $id ORDER BY id")" \
   "$before|failed|23503
failed|23503" "writing nothing; both runs recorded as failed"
prod -c "UPDATE envsync.changes SET selected = (record_key->>'id' = '7') WHERE comparison_id = $id" >/dev/null
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "blog 0 0 1" "the deletion without comments applies"
prod -c "DELETE FROM shop.article_comments WHERE article_id = 5" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['blog'])")
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "blog 0 0 1" "and so does the other, once its comments are gone"

# PROD > TEST: TEST's own reader comments are as safe.
on_test -c "INSERT INTO shop.article_comments VALUES (10, 'test comment', 8)" >/dev/null
prod -c "DELETE FROM shop.articles WHERE id = 8" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['blog'])")
is "$(prod -c "SELECT record_key->>'id', cascades FROM envsync.changes WHERE comparison_id = $id ORDER BY 1")" \
   '8|[{"table": "shop.article_comments", "action": "delete", "records": ["10"], "constraint": "article_comments_article_id_fkey"}]' \
   "PROD > TEST: the review shows the never-synced records of TEST a deletion would cascade into, read there"
before=$(fingerprint on_test)
like "$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")" \
     'deleting records of table shop.articles in environment "test" would delete 1 record\(s\) of table shop.article_comments.*records 10 of table shop.article_comments reference records 8' \
     "PROD > TEST: the test import refuses a deletion cascading into TEST's never-synced records"
like "$(prod -c "SELECT * FROM sync_apply($id)")" 'would delete 1 record\(s\) of table shop.article_comments' "and so does the synchronization"
is "$(fingerprint on_test)" "$before" "TEST is as it was"
on_test -c "DELETE FROM shop.article_comments WHERE id = 10" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['blog'])")
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "blog 0 0 1" "without the comment, the deletion applies"

on_test -c "DELETE FROM shop.variants WHERE id = 2" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['variants'])")
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
like "$dry" 'ERROR:  update or delete on table "variants" violates foreign key constraint "order_lines_variant_id_fkey" on table "order_lines"' \
     "a deferred foreign key is checked within the test import"
like "$dry" 'HINT:  Select the changes of the records it names too, or first change the records of table shop.order_lines in environment "prod"' \
     "with envsync's hint"
real=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(head -3 <<<"$real")" "$(head -3 <<<"$dry")" "and within the synchronization, failing it the same way"
is "$(prod -c "SELECT status, error FROM envsync.syncs WHERE comparison_id = $id ORDER BY id")|$(prod -c "SELECT count(*) FROM shop.variants")" \
   'failed|update or delete on table "variants" violates foreign key constraint "order_lines_variant_id_fkey" on table "order_lines"
failed|update or delete on table "variants" violates foreign key constraint "order_lines_variant_id_fkey" on table "order_lines"|5' \
   "both recorded as failed, the variant still there"
on_test -c "INSERT INTO shop.order_lines VALUES (1, 3)" >/dev/null
prod -c "DELETE FROM shop.variants WHERE id = 3" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['variants'])")
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
like "$dry" 'ERROR:  environment "test": update or delete on table "variants" violates foreign key constraint "order_lines_variant_id_fkey" on table "order_lines".*HINT:  Select the changes of the records it names too, or first change the records of table shop.order_lines in environment "test"' \
     "PROD > TEST: the deferred foreign key fails the test import in TEST, with envsync's hint"
is "$(head -3 <<<"$(prod -c "SELECT * FROM sync_apply($id)")")" "$(head -3 <<<"$dry")" "and the synchronization the same way"
is "$(prod -c "SELECT status FROM envsync.syncs WHERE comparison_id = $id ORDER BY id")|$(on_test -c "SELECT count(*) FROM shop.variants")" "failed
failed|4" "recorded as failed, TEST unchanged"

# A name moves from one author to another (deleted, then created under a new id), two authors
# swap names (a DEFERRABLE unique constraint), and articles follow: both directions.
on_test >/dev/null <<'SQL'
DELETE FROM shop.articles WHERE author_id = 9;
DELETE FROM shop.authors WHERE id = 9;
INSERT INTO shop.authors VALUES (900, 'author 9');
INSERT INTO shop.articles VALUES (900, 'article 900', 900);
BEGIN;
SET CONSTRAINTS ALL DEFERRED;
UPDATE shop.authors SET name = CASE id WHEN 1 THEN 'author 2' ELSE 'author 1' END WHERE id IN (1, 2);
COMMIT;
SQL
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['blog'])")
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "blog 2 2 2" "TEST > PROD: a unique name moving to a new record, and two records swapping theirs, apply"
prod >/dev/null <<'SQL'
BEGIN;
SET CONSTRAINTS ALL DEFERRED;
UPDATE shop.authors SET name = CASE id WHEN 3 THEN 'author 4' ELSE 'author 3' END WHERE id IN (3, 4);
COMMIT;
SQL
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['blog'])")
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(on_test -c "SELECT string_agg(id || '=' || name, ' ' ORDER BY id) FROM shop.authors WHERE id < 5")" \
   "blog 0 2 0|1=author 2 2=author 1 3=author 4 4=author 3" "PROD > TEST too"

# Unique keys NOT deferrable (checked row by row): a swap is written as deletions and insertions
# in one statement when every foreign key referencing the table is NO ACTION (a never-synced
# table's here); with a CASCADE one it is refused, saying why.
for side in prod on_test; do
    migrate $side >/dev/null <<'SQL'
CREATE TABLE shop.labels (id integer PRIMARY KEY, code text NOT NULL UNIQUE, note text);
CREATE TABLE shop.label_uses (id integer PRIMARY KEY, label_id integer NOT NULL REFERENCES shop.labels);
CREATE TABLE shop.sizes (id integer PRIMARY KEY, code text NOT NULL UNIQUE);
CREATE TABLE shop.size_notes (id integer PRIMARY KEY, size_id integer REFERENCES shop.sizes ON DELETE CASCADE);
INSERT INTO shop.labels VALUES (1, 'X', 'one'), (2, 'Y', 'two'), (3, 'Z', 'three');
INSERT INTO shop.label_uses VALUES (1, 1), (2, 2);
INSERT INTO shop.sizes VALUES (1, 'S'), (2, 'M');
INSERT INTO shop.size_notes VALUES (1, 1);
SQL
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.labels', 'shop.sizes']::regclass[])" >/dev/null
prod -c "SELECT sync_add_module('labels', ARRAY['shop.labels']::regclass[])" -c "SELECT sync_add_module('sizes', ARRAY['shop.sizes']::regclass[])" >/dev/null
labels() { "$@" -c "SELECT string_agg(id || '=' || code || '/' || note, ' ' ORDER BY id) FROM shop.labels"; }
on_test -c "UPDATE shop.labels SET code = '-' WHERE id = 1" -c "UPDATE shop.labels SET code = 'X', note = 'TWO' WHERE id = 2" \
        -c "UPDATE shop.labels SET code = 'Y' WHERE id = 1" -c "UPDATE shop.labels SET note = 'THREE' WHERE id = 3" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['labels'])")
dry=$(prod -c "SELECT * FROM sync_apply($id, test_import => true)")
is "$(summary "$dry")|$(labels prod)" "labels 0 3 0|1=X/one 2=Y/two 3=Z/three" "a swap of values of a unique key not deferrable: the test import passes, writing nothing"
applied=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$applied")|$(labels prod)|$(prod -c "SELECT string_agg(label_id::text, ' ' ORDER BY id) FROM shop.label_uses")" \
   "labels 0 3 0|1=Y/one 2=X/TWO 3=Z/THREE|1 2" "TEST > PROD: it applies, the records referencing them untouched"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['labels'])")
is "$(changes "$id")" "" "and PROD's change log, deletions and insertions of the same keys, holds no difference"
is "$(summary "$(prod -c "SELECT * FROM sync_revert($(cut -d'|' -f1 <<<"$applied" | head -1))")")|$(labels prod)" \
   "labels 0 3 0|1=X/one 2=Y/two 3=Z/three" "the revert swaps them back"
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['labels'])")
is "$(changes "$id")" 'shop.labels {"id": 1} conflict
shop.labels {"id": 2} conflict
shop.labels {"id": 3} conflict' "PROD's change log reads the records so written as changed (TEST changed them too since PROD > TEST last ran)"
prod -c "UPDATE envsync.changes SET selected = true WHERE comparison_id = $id" >/dev/null
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(labels on_test)" "labels 0 3 0|1=X/one 2=Y/two 3=Z/three" "PROD > TEST: the swap applies too"
on_test -c "UPDATE shop.sizes SET code = '-' WHERE id = 1" -c "UPDATE shop.sizes SET code = 'S' WHERE id = 2" \
        -c "UPDATE shop.sizes SET code = 'M' WHERE id = 1" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['sizes'])")
like "$(prod -c "SELECT * FROM sync_apply($id)")" 'ERROR:  duplicate key value violates unique constraint "sizes_code_key".*HINT:  .*Records swapping values need the constraint DEFERRABLE when a foreign key referencing the table has an action other than NO ACTION' \
     "a table referenced ON DELETE CASCADE: the swap is refused, saying what it needs"
is "$(prod -c "SELECT string_agg(id || '=' || code, ' ' ORDER BY id) FROM shop.sizes")|$(prod -c "SELECT count(*) FROM shop.size_notes")" "1=S 2=M|1" "PROD unchanged, nothing cascaded"

# --- TEST rebuilt from PROD by pg_dump | pg_restore; PROD carries dropped columns ------------------
for t in menus menu_items categories; do
    prod -c "ALTER TABLE shop.$t ADD gone integer" -c "ALTER TABLE shop.$t DROP gone" >/dev/null
done
prod -c "ALTER TABLE shop.menus ADD note text" >/dev/null   # after a dropped column: another position than TEST's
id=$(prod -c "SELECT sync_compare('prod', 'test')")
like "$(prod -c "SELECT sync_compare('prod', 'test')")" 'table "shop.menus" differs between environments "prod" and "test".*Column "note" is missing in environment "test"' \
     "a column only PROD has is named"
on_test -c "ALTER TABLE shop.menus ADD note text, ADD label_color text" -c "ALTER TABLE shop.menus DROP label_color" >/dev/null
prod -c "UPDATE shop.menus SET note = 'from PROD' WHERE id = 1" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['menus'])")
is "$(changes "$id")" 'shop.menus {"id": 1} modified' "dropped columns on each side, in other places: only the edited record differs"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(on_test -c "SELECT note FROM shop.menus WHERE id = 1")" "menus 0 1 0|from PROD" "and it applies"

# Rebuilt in the same database, envsync staying: TEST is PROD's copy (without PROD's dropped
# columns), its tables are new to envsync there.
dump=$(mktemp)
trap 'rm -f "$dump"' EXIT
(eval "$("$cluster" env prod)" && pg_dump -Fc -n shop -f "$dump") || bail "pg_dump failed"
rebuild_test() {   # rebuild_test [SQL run before the restore]
    on_test -c "SET client_min_messages = warning" -c "${1:-SELECT}" -c "DROP SCHEMA shop CASCADE" >/dev/null
    (eval "$("$cluster" env test)" && pg_restore -d "$PGDATABASE" "$dump" 2>&1) | grep -c 'ERROR' || true
}
is "$(rebuild_test)" "0" "pg_restore into TEST with envsync there: no error"
like "$(prod -c "SELECT sync_compare('test', 'prod')")" 'table "shop.cms_pages" is not tracked in environment "test".*not open to synchronization.*HINT:  If environment "test" was rebuilt, run sync_grant_link\(\) there again' \
     "until TEST opens its tables again, a comparison says the table is not tracked there, and what to do"
grant_test() {
    on_test -v link_role=envsync_link -f "$repo/test/fixtures/envsync_link.sql" \
            -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.prices', 'shop.authors', 'shop.articles', 'shop.variants', 'shop.labels', 'shop.sizes']::regclass[])" >/dev/null
}
grant_test
id=$(prod -c "SELECT sync_compare('test', 'prod')")
is "$(changes "$id")|$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $id")" "|t" \
   "then the comparison tracks the tables there again and reads every row: TEST is PROD's copy"
is "$(on_test -c "SELECT count(*) FROM envsync.tracked_tables")" "18" "TEST tracks every synced table"
on_test -c "UPDATE shop.menus SET name = 'TEST menu' WHERE id = 2" -c "INSERT INTO shop.prices VALUES (8, 'eu', 8)" >/dev/null
prod -c "UPDATE shop.menu_items SET label = 'PROD item' WHERE id = 3" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['menus', 'prices'])")
is "$(changes "$id")" 'shop.menu_items {"id": 3} conflict
shop.menus {"id": 2} modified
shop.prices {"region": "eu", "product_id": 8} new' "TEST's writes are tracked again (and PROD's edit is a conflict)"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "menus 0 1 0
prices 1 0 0" "TEST > PROD applies"
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['menus'])")
is "$(changes "$id")|$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" 'shop.menu_items {"id": 3} modified|menus 0 1 0' "and PROD > TEST"

# Rebuilt with envsync created after the restore (the dump's tracking triggers cannot be made).
(eval "$("$cluster" env prod)" && pg_dump -Fc -n shop -f "$dump") || bail "pg_dump failed"
is "$(rebuild_test "DROP EXTENSION envsync CASCADE")" "$(pg_restore -l "$dump" | grep -c 'TRIGGER shop [a-z_]* envsync_track')" \
   "pg_restore into TEST without envsync: only the tracking triggers fail"
on_test -c "SET client_min_messages = warning" -c "CREATE EXTENSION envsync CASCADE" >/dev/null
grant_test
id=$(prod -c "SELECT sync_compare('prod', 'test')")
is "$(changes "$id")|$(prod -c "SELECT full_compare FROM envsync.comparisons WHERE id = $id")" '|t' "the comparison tracks TEST again"
on_test -c "DELETE FROM shop.prices WHERE product_id = 8" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['prices'])")
is "$(changes "$id")|$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" 'shop.prices {"region": "eu", "product_id": 8} deleted|prices 0 0 1' \
   "and its writes are tracked, its triggers made anew"

# --- Columns in another order; the never-synced list's patterns -------------------------------------
migrate prod >/dev/null <<'SQL'
CREATE TABLE shop.badges (id integer PRIMARY KEY, label text, color text);
CREATE TABLE shop.product_translation (id integer PRIMARY KEY, body text);
CREATE TABLE shop.orderxitems (id integer PRIMARY KEY);
INSERT INTO shop.badges VALUES (1, 'new', 'red');
SQL
migrate on_test >/dev/null <<'SQL'
CREATE TABLE shop.badges (color text, label text, id integer PRIMARY KEY);
CREATE TABLE shop.product_translation (id integer PRIMARY KEY, body text);
CREATE TABLE shop.orderxitems (id integer PRIMARY KEY);
INSERT INTO shop.badges VALUES ('blue', 'new', 1), ('green', 'sale', 2);
SQL
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.badges', 'shop.orderxitems']::regclass[])" >/dev/null
is "$(prod -c "SELECT sync_add_module('badges', ARRAY['shop.badges', 'shop.orderxitems']::regclass[])")" "" \
   "a table whose columns are in another order in TEST is synchronized (and order_items is no pattern)"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['badges'])")
is "$(changes "$id")|$(prod -c "SELECT changed_columns FROM envsync.changes WHERE comparison_id = $id AND kind = 'modified'")" \
   'shop.badges {"id": 1} modified
shop.badges {"id": 2} new|{color}' "its columns are matched by name"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(prod -c "SELECT string_agg(b::text, ' ' ORDER BY id) FROM shop.badges b")" \
   "badges 1 1 0|(1,new,blue) (2,sale,green)" "and written by name"
prod -c "SELECT sync_deny_table('%translation', 'translations of content')" >/dev/null
like "$(prod -c "SELECT sync_add_module('texts', ARRAY['shop.product_translation']::regclass[])")" \
     'table "shop.product_translation" is never synchronized.*It holds translations of content' "a pattern of the never-synced list refuses the tables it matches"

# --- Table kinds and column types ---------------------------------------------------------------------
for side in prod on_test; do
    migrate $side >/dev/null <<'SQL'
CREATE DOMAIN shop.positive AS integer CHECK (VALUE > 0);
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE shop.size AS (w integer, h integer);
CREATE UNLOGGED TABLE shop.kinds (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, qty shop.positive, mood shop.mood, size shop.size,
    span int4range, tags text[], doubled integer GENERATED ALWAYS AS (qty * 2) STORED);
ALTER TABLE shop.kinds ENABLE ROW LEVEL SECURITY;
CREATE POLICY nobody ON shop.kinds USING (false);
SQL
    $side -c "CREATE TABLE shop.wide (id integer PRIMARY KEY, $(seq -s, -f 'c%g integer' 1 199))" -c "ALTER TABLE shop.wide OWNER TO migrator" >/dev/null
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.kinds', 'shop.wide']::regclass[])" >/dev/null
is "$(prod -c "SELECT sync_add_module('kinds', ARRAY['shop.kinds', 'shop.wide']::regclass[])")" "" \
   "an unlogged table with row security, identity, generated, domain, enum, composite, range and array columns, and a table of 200 columns"
on_test -c "INSERT INTO shop.kinds (qty, mood, size, span, tags) VALUES (3, 'happy', '(2,3)', '[1,5)', '{a,b}'), (4, 'sad', NULL, 'empty', '{}')" \
        -c "INSERT INTO shop.wide (id, c1, c199) VALUES (1, 1, 199)" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['kinds'])")
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")" "kinds 3 0 0" "TEST > PROD"
is "$(prod -c "SELECT string_agg(k::text, ' ' ORDER BY id) FROM shop.kinds k")|$(prod -c "SELECT c199 FROM shop.wide")" \
   '(1,3,happy,"(2,3)","[1,5)","{a,b}",6) (2,4,sad,,empty,{},8)|199' "every value arrives, the generated column computed by PROD"
prod -c "UPDATE shop.kinds SET mood = 'ok', size = '(5,5)' WHERE id = 1" -c "UPDATE shop.wide SET c100 = 100" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['kinds'])")
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(on_test -c "SELECT mood, size FROM shop.kinds WHERE id = 1")" "kinds 0 2 0|ok|(5,5)" "and PROD > TEST"

# --- Keys of other types: dates and times (whatever the session's settings), numeric, char(n), ---
# --- mixed composite keys, bigint near 2^63 ----------------------------------------------------------
for side in prod on_test; do
    migrate $side >/dev/null <<'SQL'
CREATE TABLE shop.rates (day date, at timestamptz, amount numeric, code char(3), local_at timestamp, rate text,
                         PRIMARY KEY (day, at, amount, code, local_at));
CREATE TABLE shop.big_ids (id bigint PRIMARY KEY, label text);
CREATE TABLE shop.float_keyed (x double precision PRIMARY KEY);
SQL
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.rates', 'shop.big_ids']::regclass[])" >/dev/null
like "$(prod -c "SELECT sync_add_module('floats', ARRAY['shop.float_keyed']::regclass[])")" \
     'primary key column "x" of table "shop.float_keyed" has unsupported type double precision' "a key of another type is refused, naming it"
is "$(prod -c "SELECT sync_add_module('rates', ARRAY['shop.rates', 'shop.big_ids']::regclass[])")" "" "date, timestamptz, numeric, char(3) and timestamp keys are accepted"
PGOPTIONS="$PGOPTIONS -c TimeZone=Asia/Tokyo -c DateStyle=SQL,DMY" on_test \
    -c "INSERT INTO shop.rates VALUES ('2026-03-04', '2026-03-04 10:00+00', 1.50, 'EU', '2026-03-04 11:00', 'x'), ('2026-03-05', '2026-03-05 10:00+00', 2, 'USD', '2026-03-05 11:00', 'y')" \
    -c "INSERT INTO shop.big_ids VALUES (9223372036854775807, 'max'), (-9223372036854775808, 'min'), (9223372036854775806, 'near')" >/dev/null
export PGOPTIONS="$PGOPTIONS -c TimeZone=America/New_York -c DateStyle=German"
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['rates'])")
is "$(prod -c "SELECT string_agg(key::text, ' ' ORDER BY key::text) FROM envsync.changes WHERE comparison_id = $id")" \
   '{-9223372036854775808} {2026-03-04,"2026-03-04 10:00:00+00",1.50,"EU ","2026-03-04 11:00:00"} {2026-03-05,"2026-03-05 10:00:00+00",2,USD,"2026-03-05 11:00:00"} {9223372036854775806} {9223372036854775807}' \
   "the keys, read in sessions of other time zones and date styles, are the change log's, every digit kept"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(prod -c "SELECT count(*) FROM shop.rates")|$(prod -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM shop.big_ids")" \
   "rates 5 0 0|2|-9223372036854775808 9223372036854775806 9223372036854775807" "TEST > PROD applies them"
prod -c "UPDATE shop.rates SET rate = 'z' WHERE code = 'EU'" -c "DELETE FROM shop.big_ids WHERE id = 9223372036854775806" \
     -c "UPDATE shop.big_ids SET label = 'MAX' WHERE id = 9223372036854775807" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['rates'])")
is "$(prod -c "SELECT table_name, kind, count(*) FROM envsync.changes WHERE comparison_id = $id GROUP BY 1, 2 ORDER BY table_name::text, kind")" \
   "shop.big_ids|deleted|1
shop.big_ids|modified|1
shop.rates|modified|1" "PROD's edits of them are tracked under the same keys"
is "$(summary "$(prod -c "SELECT * FROM sync_apply($id)")")|$(on_test -c "SELECT rate FROM shop.rates WHERE code = 'EU'")" "rates 0 2 1|z" "and PROD > TEST applies them"

# Values hashed by their text (no stable binary form: point, composites) or, money, by its int8
# value: the same records, written and compared in sessions of other settings, are equal.
for side in prod on_test; do
    migrate $side >/dev/null <<<"CREATE TABLE shop.amounts (id integer PRIMARY KEY, price money, at point, path point[], size shop.size)"
done
PGOPTIONS="$PGOPTIONS -c lc_monetary=C -c extra_float_digits=-3 -c TimeZone=Asia/Tokyo" on_test \
    -c "INSERT INTO shop.amounts VALUES (1, 1234.56, '(0.1,2.5)', '{\"(1e-7,3.3333333333)\"}', '(2,3)')" >/dev/null
prod -c "INSERT INTO shop.amounts VALUES (1, 1234.56, '(0.1,2.5)', '{\"(1e-7,3.3333333333)\"}', '(2,3)')" >/dev/null
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.amounts']::regclass[])" >/dev/null
prod -c "SELECT sync_add_module('amounts', ARRAY['shop.amounts']::regclass[])" >/dev/null
id=$(PGOPTIONS="$PGOPTIONS -c lc_monetary=C.UTF-8 -c extra_float_digits=3" prod -c "SELECT sync_compare('prod', 'test', ARRAY['amounts'], full_compare => true)")
is "$(changes "$id")" "" "money, point, point[] and composite values hash alike under other lc_monetary, DateStyle, extra_float_digits and TimeZone"

# --- A big record: a 100 MB bytea and a 50 MB text ------------------------------------------------
for side in prod on_test; do
    migrate $side >/dev/null <<<"CREATE TABLE shop.attachments (id integer PRIMARY KEY, data bytea, body text)"
done
on_test -c "SELECT sync_grant_link('envsync_link', ARRAY['shop.attachments']::regclass[])" >/dev/null
prod -c "SELECT sync_add_module('attachments', ARRAY['shop.attachments']::regclass[])" >/dev/null
on_test -c "INSERT INTO shop.attachments SELECT 1, decode(repeat(md5('x'), 6553600), 'hex'), repeat(md5('y'), 1638400)" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['attachments'])")
is "$(changes "$id")" 'shop.attachments {"id": 1} new' "a record of a 100 MB bytea and a 50 MB text compares"
applied=$(prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$applied")|$(prod -c "SELECT length(data), length(body), md5(data) = md5(decode(repeat(md5('x'), 6553600), 'hex')) FROM shop.attachments")" \
   "attachments 1 0 0|104857600|52428800|t" "applies whole"
is "$(summary "$(prod -c "SELECT * FROM sync_revert($(cut -d'|' -f1 <<<"$applied" | head -1))")")|$(prod -c "SELECT count(*) FROM shop.attachments")" \
   "attachments 0 0 1|0" "and reverts"

# 300 records of 1 MB, all different: the reads are bounded in bytes (envsync.batch_bytes), so
# no answer meets jsonb's limit of 256 MB, as reads of up to 5,000 records did.
prod -c "INSERT INTO shop.attachments SELECT g, NULL, repeat('p', 1024 * 1024) FROM generate_series(1, 300) g" >/dev/null
on_test -c "INSERT INTO shop.attachments SELECT g, NULL, repeat('t', 1024 * 1024) FROM generate_series(1, 300) g" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['attachments'], full_compare => true)")
is "$(prod -c "SELECT kind, count(*) FROM envsync.changes WHERE comparison_id = $id GROUP BY 1")" "conflict|300" \
   "300 records of 1 MB, all different, compare"

# And they apply, streamed into TEST's stage by one COPY (PROD reads them in parts of about
# envsync.batch_bytes): each statement run there is counted by a statement trigger on the stage.
on_test >/dev/null <<'SQL'
CREATE TABLE public.stage_parts (n bigint, bytes bigint);
GRANT INSERT ON public.stage_parts TO PUBLIC;
CREATE FUNCTION public.count_stage_part() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.stage_parts SELECT count(*), sum(octet_length(new_row::text)) FROM staged;
    RETURN NULL;
END
$$;
CREATE TRIGGER count_stage_part AFTER INSERT ON envsync.apply_stage REFERENCING NEW TABLE AS staged
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_stage_part();
SQL
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['attachments'], full_compare => true)")
prod -c "UPDATE envsync.changes SET selected = (key[1]::integer <= 40) WHERE comparison_id = $id" >/dev/null
applied=$(PGOPTIONS="$PGOPTIONS -c envsync.batch_bytes=8MB" prod -c "SELECT * FROM sync_apply($id)")
is "$(summary "$applied")|$(on_test -c "SELECT count(*) FROM shop.attachments WHERE body LIKE 'p%'")" "attachments 39 1 0|40" "PROD > TEST applies 40 of them"
is "$(on_test -c "SELECT count(*), sum(n), sum(bytes) > 40 * 1024 * 1024 FROM public.stage_parts")" "1|40|t" \
   "staged whole by one statement, under envsync.batch_bytes = 8MB"
on_test -c "DROP TRIGGER count_stage_part ON envsync.apply_stage" -c "DROP FUNCTION public.count_stage_part()" -c "DROP TABLE public.stage_parts" >/dev/null

done_testing
