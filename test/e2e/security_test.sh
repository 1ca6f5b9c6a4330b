#!/usr/bin/env bash
# No role gains a right through envsync. The attacks a DBA would try before installing it, on
# the two clusters with TEST set up as the README says (a link role that is no superuser), as an
# operator, as the link role logged in to TEST, as the owner of synced tables and as a role with
# no envsync rights; names of every spelling throughout. After each block: no role gained
# superuser or any other attribute or membership, on either server; nothing outside the synced
# modules changed; each refused attempt got a permission error (42501).
# TAP: prove --exec bash test/e2e/security_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"

op=$'Ops "Alice" O\'Hara; -- ü'         # an operator
nobody=$'Mallory; DROP ROLE postgres'   # a role with no envsync rights
owner=$'Table "Owner"; ü'              # owns synced tables, on both servers
link=envsync_link                        # the README's link role on TEST

as() { local side=$1 role=$2; shift 2; "$cluster" psql "$side" -At -U "$role" "$@" 2>&1; }
# SQL from stdin as the superuser, with the names as psql variables (:"op", :'op', ...)
named() { "$cluster" psql "$1" -At -v op="$op" -v nobody="$nobody" -v owner="$owner" "${@:2}" 2>&1; }
setup() { named "$1" -o /dev/null; }

# Every role's attributes and memberships, and the never-synced data (users, orders, ... and
# the system settings but the mobile app's), as one line per server.
state() {
    "$cluster" psql "$1" -At -c "
        SELECT string_agg(format('%s:%s%s%s%s%s', rolname, rolsuper::int, rolcreaterole::int, rolcreatedb::int,
                                 rolbypassrls::int, rolreplication::int), ' ' ORDER BY rolname) FROM pg_roles" -c "
        SELECT coalesce(string_agg(format('%s>%s', roleid::regrole, member::regrole), ' ' ORDER BY 1), '-')
          FROM pg_auth_members" -c "
        SELECT md5(string_agg(h, ' ' ORDER BY h)) FROM (
            SELECT 'users' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.users t UNION ALL
            SELECT 'orders' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.orders t UNION ALL
            SELECT 'items' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.order_items t UNION ALL
            SELECT 'reviews' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.reviews t UNION ALL
            SELECT 'promo' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.promo_codes t UNION ALL
            SELECT 'campaigns' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.campaigns t UNION ALL
            SELECT 'titles' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.titles t UNION ALL
            SELECT 'payment' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.payment_types t UNION ALL
            SELECT 'delivery' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.delivery_types t UNION ALL
            SELECT 'seo' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.seo_settings t UNION ALL
            SELECT 'translations' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM shop.translations t UNION ALL
            SELECT 'settings' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))
              FROM shop.system_settings t WHERE t.key NOT LIKE 'mobile_app.%') x (h)" | tr '\n' '/'
}
unchanged() {   # unchanged WHAT: both servers' state is still the baseline
    is "$(state prod)" "$prod_state" "$1: no role gained a right on PROD, never-synced data unchanged"
    is "$(state test)" "$test_state" "$1: no role gained a right on TEST, never-synced data unchanged"
}
denied() {   # denied DESC OUTPUT: the attempt failed with a permission error
    like "$2" 'ERROR:  (permission denied|.*not open to synchronization|only the selection)' "$1"
}

# --- Roles -------------------------------------------------------------------------------------------
for side in prod test; do
    setup "$side" <<'SQL'
SET client_min_messages = warning;
SELECT format('DROP OWNED BY %I; DROP ROLE %I', r, r) FROM unnest(ARRAY[:'op', :'nobody', :'owner']) r
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
SELECT format('CREATE ROLE %I LOGIN', :'op') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'nobody') \gexec
SELECT format('CREATE ROLE %I NOLOGIN', :'owner') \gexec
GRANT USAGE, CREATE ON SCHEMA shop TO :"owner", :"nobody";
SQL
done
setup prod <<'SQL'
GRANT envsync_operator TO :"op";
SELECT sync_set_operator(quote_ident(:'op')::regrole, 'alice@shop.example');
SQL
on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" >/dev/null
prod_state=$(state prod)
test_state=$(state test)
is "$(named prod <<'SQL'
SELECT format('%s %s', rolsuper, pg_has_role(rolname, 'envsync_operator', 'MEMBER')) FROM pg_roles WHERE rolname = :'op';
SQL
)" "f t" "the operator is a plain role, member of envsync_operator"

# --- An operator, with temporary objects shadowing the catalogs ------------------------------------------
# The issue's attack: a function that makes its caller superuser when it runs as one, and temp
# views named like the catalogs that call it. Definer code searches pg_temp last, so they are never
# read; pg_temp.pwned would record it if they were.
trap_catalogs='
CREATE TEMP TABLE pwned (who name, via text);
CREATE FUNCTION pg_temp.pwn(via text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO pg_temp.pwned VALUES (current_user, via);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE format($q$ALTER ROLE %I SUPERUSER$q$, session_user);
    END IF;
    RETURN true;
END $f$;
CREATE TEMP VIEW pg_class AS SELECT * FROM pg_catalog.pg_class WHERE pg_temp.pwn($v$pg_class$v$);
CREATE TEMP VIEW pg_index AS SELECT * FROM pg_catalog.pg_index WHERE pg_temp.pwn($v$pg_index$v$);
CREATE TEMP VIEW pg_constraint AS SELECT * FROM pg_catalog.pg_constraint WHERE pg_temp.pwn($v$pg_constraint$v$);
CREATE TEMP VIEW pg_namespace AS SELECT * FROM pg_catalog.pg_namespace WHERE pg_temp.pwn($v$pg_namespace$v$);
CREATE TEMP VIEW pg_attribute AS   -- every column but attmissingval, of a pseudo-type
    SELECT attrelid, attname, atttypid, attstattarget, attlen, attnum, attndims, attcacheoff, atttypmod, attbyval,
           attalign, attstorage, attcompression, attnotnull, atthasdef, atthasmissing, attidentity, attgenerated,
           attisdropped, attislocal, attinhcount, attcollation, attacl, attoptions, attfdwoptions
      FROM pg_catalog.pg_attribute WHERE pg_temp.pwn($v$pg_attribute$v$);
CREATE TEMP VIEW pg_trigger AS SELECT * FROM pg_catalog.pg_trigger WHERE pg_temp.pwn($v$pg_trigger$v$);
CREATE TEMP VIEW pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE pg_temp.pwn($v$pg_roles$v$);
CREATE TEMP VIEW pg_extension AS SELECT * FROM pg_catalog.pg_extension WHERE pg_temp.pwn($v$pg_extension$v$);
-- and tables named like envsync'"'"'s own temporary work tables, with a trigger that calls it
CREATE TEMP TABLE envsync_diff (key text[] PRIMARY KEY, source_hash bigint, target_hash bigint,
                                changed_columns text[], source_row jsonb, target_row jsonb);
CREATE TEMP TABLE envsync_staged_tables (table_id integer);
CREATE FUNCTION pg_temp.pwn_row() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM pg_temp.pwn(TG_TABLE_NAME); RETURN NEW; END $f$;
CREATE TRIGGER pwn BEFORE INSERT ON pg_temp.envsync_diff FOR EACH ROW EXECUTE FUNCTION pg_temp.pwn_row();
CREATE TRIGGER pwn BEFORE INSERT ON pg_temp.envsync_staged_tables FOR EACH ROW EXECUTE FUNCTION pg_temp.pwn_row();
'
out=$(as prod "$op" -c "$trap_catalogs" -c "SELECT sync_compare('test', 'prod')" -c "SELECT count(*) FROM pg_temp.pwned")
id=$(sed -n '1p' <<<"$out")
like "$id" '^[0-9]+$' "an operator with catalog-shadowing temp views and tables compares as usual"
is "$(sed -n '2p' <<<"$out")" "0" "envsync's code never read her temporary objects"
is "$(prod -c "SELECT started_by FROM envsync.comparisons WHERE id = $id")" "$op" "the comparison is hers, by her login role"
out=$(as prod "$op" -c "$trap_catalogs" \
      -c "UPDATE envsync.changes SET selected = true WHERE comparison_id = $id AND kind = 'conflict'" \
      -c "SELECT sync_id FROM sync_apply($id) LIMIT 1" -c "SELECT count(*) FROM pg_temp.pwned")
like "$out" $'^[0-9]+\n0$' "so does her selection (the definer trigger behind it) and her synchronization into PROD"
sync=$(sed -n '1p' <<<"$out")
is "$(prod -c "SELECT status, scheduled_by FROM envsync.syncs WHERE id = $sync")" "succeeded|$op" "recorded as hers"
unchanged "temp objects"

# --- An operator calling what is internal -------------------------------------------------------------------
internal=("envsync.write_run(1)" "envsync.run_now(NULL::envsync.sync_runs)" "envsync.attempt_run(NULL::envsync.sync_runs)"
          "envsync.record_failure(NULL::envsync.sync_runs, '{}')" "envsync.record_apart('{}')"
          "envsync.apply_staged(1, 'prod', false)" "envsync.run_as_owner(10, 'SELECT NULL::jsonb', 1)"
          "envsync.queue_mail('postgres', 'sync_failed', 'x', '{}')" "envsync.announce_outcome(1)"
          "envsync.diff_table('test', 'prod', 'pg_class')" "envsync.compact_log('test', 'pg_class', NULL)" "envsync.forget_entries(1, '{}', NULL)" "envsync.compact_logs()"
          "envsync.table_rows(1, NULL)" "envsync.purge_before_images()" "envsync.recover_interrupted_runs()"
          "envsync.track_everywhere('pg_class')" "envsync.table_hashes(1)"
          "sync_add_module('x', ARRAY['pg_class']::regclass[])" "sync_set_operator('postgres', 'me@evil.example')"
          "sync_grant_link('postgres', ARRAY['pg_class']::regclass[])" "sync_deny_table('x', 'y')"
          "sync_add_environment('evil', 'test_server')" "sync_remove_environment('test')")
refused=0
for f in "${internal[@]}"; do
    out=$(as prod "$op" -c "SELECT $f")
    if [[ $out == *"ERROR:  permission denied for function"* ]]; then refused=$((refused + 1)); else diag "$f: $out"; fi
done
is "$refused" "${#internal[@]}" "every internal and configuration function is refused to an operator (${#internal[@]} tried)"
# And by the catalog, every routine of envsync: an operator may execute the entry points, the two
# pure row functions and the retention setting the syncs view reads, nothing else.
is "$(prod -c "SELECT string_agg(p.oid::regprocedure::text, ' ' ORDER BY p.oid::regprocedure::text COLLATE \"C\")
                 FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'envsync'
                WHERE has_function_privilege('$(sed "s/'/''/g" <<<"$op")', p.oid, 'EXECUTE')")" \
   "envsync.keep_before_images() envsync.key_text(anyelement) envsync.row_hash(record) envsync.row_json(record) envsync.stored_hash(record) sync_apply(bigint,boolean) sync_cancel(bigint) sync_compare(text,text,text[],text,jsonb,boolean) sync_revert(bigint) sync_schedule(bigint,timestamp with time zone,boolean) sync_scope_choices(text,text) sync_select(bigint,boolean,bigint[],text,text)" \
   "of all envsync's routines, an operator may execute only the entry points and five harmless ones"
denied "and the scheduler's procedure" "$(as prod "$op" -c "CALL envsync.run_due_syncs()")"
denied "an operator cannot attach the tracking trigger to a table of hers" \
       "$(as prod "$op" -c "CREATE TEMP TABLE mine (id integer PRIMARY KEY)" \
              -c "CREATE TRIGGER forge AFTER INSERT ON mine FOR EACH ROW EXECUTE FUNCTION envsync.track_change()")"
denied "nor write the change log" "$(as prod "$op" -c "INSERT INTO envsync.row_log VALUES (1, '{1}', 'U', false, '1', now())")"
denied "nor mark her writes as envsync's own" "$(as prod "$op" -c "SELECT envsync.row_hash(ROW(1)) IS NULL" -c "SET envsync.applying = on")"
denied "nor record a run herself" \
       "$(as prod "$op" -c "INSERT INTO envsync.sync_runs (comparison_id, status, run_at, scheduled_by) VALUES ($id, 'succeeded', now(), 'postgres')")"
denied "nor read the outbox" "$(as prod "$op" -c "SELECT * FROM envsync.outbox")"
denied "nor change a change beyond its selection" \
       "$(as prod "$op" -c "UPDATE envsync.changes SET source_row = '{}' WHERE comparison_id = $id")"
is "$(as prod "$op" -c "SELECT count(*) FROM envsync.staged_rows")" "0" "the staged records show her nothing"
msgs=$(named prod <<<"SELECT count(*) FROM envsync.sync_messages WHERE recipient <> :'op';")
is "$(as prod "$op" -c "SELECT count(*) FROM envsync.messages WHERE sync_id <> $sync")|$(as prod "$op" -c "WITH m AS (UPDATE envsync.messages SET read = true WHERE sync_id <> $sync RETURNING 1) SELECT count(*) FROM m")" \
   "0|0" "she sees and marks only her own messages ($msgs others exist)"
unchanged "internal functions"

# --- The link role, logged in to TEST directly -------------------------------------------------------------------
out=$(as test "$link" -c "$trap_catalogs" \
      -c "INSERT INTO envsync.track_requests (schema_name, table_name) VALUES ('shop', 'cms_pages') RETURNING table_id IS NOT NULL" \
      -c "SELECT count(*) FROM pg_temp.pwned")
is "$out" $'t\n0' "the link role's track requests (a definer trigger) never read its temporary objects"
on_test -c "CREATE TABLE shop.notes (id integer PRIMARY KEY, body text)" -c "GRANT SELECT ON shop.notes TO $link" >/dev/null
denied "it may not have a table tracked that TEST's DBA did not open to it, even one it may read" \
       "$(as test "$link" -c "INSERT INTO envsync.track_requests (schema_name, table_name) VALUES ('shop', 'notes')")"
denied "nor a never-synced one" \
       "$(as test "$link" -c "INSERT INTO envsync.track_requests (schema_name, table_name) VALUES ('shop', 'users')")"
denied "it may not write the synced tables itself" "$(as test "$link" -c "UPDATE shop.cms_pages SET title = 'x'")"
denied "nor read the never-synced ones" "$(as test "$link" -c "SELECT count(*) FROM shop.users")"
denied "nor mark writes as envsync's own" "$(as test "$link" -c "SELECT envsync.row_hash(ROW(1)) IS NULL" -c "SET envsync.applying = on")"
denied "nor call the apply itself" "$(as test "$link" -c "SELECT envsync.apply_staged(1, 'test', false)")"
denied "nor run SQL as a table's owner" "$(as test "$link" -c "SELECT envsync.run_as_owner(10, 'SELECT NULL::jsonb', 1)")"
denied "nor attach the tracking trigger" \
       "$(as test "$link" -c "CREATE TEMP TABLE mine (id integer PRIMARY KEY)" \
              -c "CREATE TRIGGER forge AFTER INSERT ON mine FOR EACH ROW EXECUTE FUNCTION envsync.track_change()")"
like "$(as test "$link" -c "BEGIN" -c "INSERT INTO envsync.apply_stage VALUES (1, 999999, '{1}', 'I', NULL, '{}', 0)" \
        -c "INSERT INTO envsync.apply_requests (run, environment, move_sequences) VALUES (1, 'test', false)")" \
     'ERROR:  table id 999999 is not tracked in environment "test"' "its apply requests reach only tracked tables"
notes_id=$(on_test -c "INSERT INTO envsync.track_requests (schema_name, table_name) VALUES ('shop', 'notes') RETURNING table_id" | head -1)
denied "and only those opened to it, even when tracked" \
       "$(as test "$link" -c "BEGIN" -c "INSERT INTO envsync.apply_stage VALUES (1, $notes_id, '{1}', 'I', NULL, '{\"id\": 1}', 0)" \
              -c "INSERT INTO envsync.apply_requests (run, environment, move_sequences) VALUES (1, 'test', false)")"
denied "it reads no synced table itself (envsync reads them, as their owner)" "$(as test "$link" -c "SELECT count(*) FROM shop.cms_pages")"
on_test -c "DROP TABLE shop.notes" >/dev/null
unchanged "link role"

# --- The owner of synced tables: code that runs when envsync writes or reads them ----------------------------------
# On both servers the owner's trigger, CHECK constraint, index expression and domain check try to
# make the owner superuser when they run as one, and record who they ran as.
for side in prod test; do
    setup "$side" <<'SQL'
ALTER TABLE shop.cms_pages OWNER TO :"owner";
ALTER TABLE shop.cms_blocks OWNER TO :"owner";
SET ROLE :"owner";
CREATE TABLE shop.owner_audit (who name, what text);
CREATE FUNCTION shop.escalate(what text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO shop.owner_audit VALUES (current_user, what);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('ALTER ROLE %I SUPERUSER', (SELECT r.rolname FROM pg_catalog.pg_roles r
                                                    JOIN pg_catalog.pg_class c ON c.relowner = r.oid
                                                   WHERE c.oid = 'shop.cms_pages'::regclass));
    END IF;
    RETURN true;
END $f$;
CREATE FUNCTION shop.escalate_trigger() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM shop.escalate('trigger ' || TG_OP); RETURN NULL; END $f$;
CREATE TRIGGER escalate AFTER INSERT OR UPDATE OR DELETE ON shop.cms_pages
    FOR EACH ROW EXECUTE FUNCTION shop.escalate_trigger();
ALTER TABLE shop.cms_pages ADD CONSTRAINT escalate CHECK (shop.escalate('check'));
CREATE FUNCTION shop.escalate_immutable(what text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN RETURN shop.escalate(what); END $f$;
CREATE INDEX cms_pages_escalate ON shop.cms_pages ((shop.escalate_immutable('index') AND title IS NOT NULL));
CREATE DOMAIN shop.block_kind AS text CHECK (shop.escalate('domain'));
ALTER TABLE shop.cms_blocks ALTER COLUMN kind TYPE shop.block_kind;
-- and a cast to json on a type of the owner's: to_jsonb() of a row would run it
CREATE TYPE shop.mood AS ENUM ('calm', 'stormy');
CREATE FUNCTION shop.mood_json(shop.mood) RETURNS json LANGUAGE sql AS $f$
    SELECT CASE WHEN shop.escalate('cast') THEN to_json($1::text) END $f$;
CREATE CAST (shop.mood AS json) WITH FUNCTION shop.mood_json(shop.mood);
ALTER TABLE shop.cms_pages ADD COLUMN mood shop.mood;
TRUNCATE shop.owner_audit;
RESET ROLE;
SQL
done
# The content team's edits are made as the owner: a superuser writing the table would run the
# owner's code as superuser, which is PostgreSQL's rule and not envsync's doing.
as_owner() { named "$1" -c "SET ROLE \"$(sed 's/"/""/g' <<<"$owner")\"" "${@:2}"; }
as_owner test -c "UPDATE shop.cms_pages SET title = 'Edited on TEST', mood = 'stormy' WHERE id = 3" \
         -c "UPDATE shop.cms_blocks SET kind = 'banner' WHERE id = (SELECT min(id) FROM shop.cms_blocks WHERE page_id = 4)" >/dev/null
on_test -c "TRUNCATE shop.owner_audit" >/dev/null
id=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
audit() { "$@" -c "SELECT coalesce(string_agg(DISTINCT who || ':' || split_part(what, ' ', 1), ',' ORDER BY who || ':' || split_part(what, ' ', 1)), '-') FROM shop.owner_audit"; }
is "$(audit prod)|$(audit on_test)" "$owner:index|$owner:index" \
   "comparing the owner's tables runs of the owner's code only what planning a read runs (an index expression's constant part), as the owner; no cast to json, no check"
prod -c "TRUNCATE shop.owner_audit" >/dev/null
is "$(prod -c "SELECT source_row->>'mood' FROM envsync.changes WHERE comparison_id = $id AND key = '{3}'")" "stormy" \
   "and still shows the value"
prod -c "SELECT sync_select($id, false, kind => 'conflict')" >/dev/null
out=$(as prod "$op" -c "SELECT inserted + updated + deleted FROM sync_apply($id) WHERE module = 'cms'")
like "$out" '^[1-9][0-9]*$' "a synchronization into PROD writes the owner's tables"
is "$(audit prod)" \
   "$owner:check,$owner:domain,$owner:index,$owner:trigger" "and the owner's trigger, check, index expression and domain check ran as the owner, not as envsync"
as_owner prod -c "UPDATE shop.cms_pages SET title = 'Edited on PROD' WHERE id = 5" >/dev/null
on_test -c "TRUNCATE shop.owner_audit" >/dev/null
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['cms'])")
prod -c "SELECT sync_select($id, false, kind => 'conflict')" >/dev/null
sync=$(as prod "$op" -c "SELECT sync_id FROM sync_apply($id) LIMIT 1")
is "$(audit on_test)" \
   "$owner:check,$owner:index,$owner:trigger" "so they do in TEST, written through the link"
like "$(as prod "$op" -c "SELECT revert_id FROM sync_revert($sync) LIMIT 1")" '^[0-9]+$' "a revert writes as the owner too"
is "$(prod -c "SELECT reverted_by FROM envsync.syncs WHERE id = $sync")" "$op" "and says who reverted"
unchanged "table owner's code"

# Row security on TEST whose policy is the owner's code: the link role never evaluates it.
setup test <<'SQL'
SET ROLE :"owner";
CREATE POLICY escalate ON shop.cms_pages USING (shop.escalate('policy'));
ALTER TABLE shop.cms_pages ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
TRUNCATE shop.owner_audit;
RESET ROLE;
SQL
as_owner test -c "UPDATE shop.cms_pages SET title = 'Edited again on TEST' WHERE id = 3" >/dev/null
on_test -c "TRUNCATE shop.owner_audit" >/dev/null
out=$(prod -c "SELECT sync_compare('test', 'prod', ARRAY['cms'], full_compare => true)")
like "$out" 'row-level security' "a table with a row security policy the link role is subject to stops the comparison, naming the cause"
is "$(on_test -c "SELECT count(*) FROM shop.owner_audit")" "0" "and the policy never ran"
on_test -c "ALTER TABLE shop.cms_pages NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY" >/dev/null
unchanged "row security"

# --- A role with no envsync rights --------------------------------------------------------------------------------
denied "a role with no envsync rights cannot compare" "$(as prod "$nobody" -c "SELECT sync_compare('test', 'prod')")"
denied "nor read the review" "$(as prod "$nobody" -c "SELECT * FROM envsync.changes")"
denied "nor the messages" "$(as prod "$nobody" -c "SELECT * FROM envsync.messages")"
denied "nor ask for tracking" "$(as prod "$nobody" -c "INSERT INTO envsync.track_requests (schema_name, table_name) VALUES ('shop', 'users')")"
for side in prod test; do
    is "$(as "$side" "$nobody" -c "CREATE TABLE shop.scratch (i integer)" -c "DROP TABLE shop.scratch")" "" \
       "it creates and drops its own tables on $side as before"
done
# The setting set before envsync's library is loaded, then a write that loads it: still an edit.
on_test -c "GRANT SELECT, UPDATE ON shop.menus TO \"$(sed 's/"/""/g' <<<"$nobody")\"" -c "DELETE FROM envsync.row_log" >/dev/null
out=$(as test "$nobody" -c "SET envsync.applying = on" -c "UPDATE shop.menus SET name = name WHERE id = 1")
is "$out|$(on_test -c "SELECT string_agg(kind::text || ':' || applied, ',') FROM envsync.row_log")" \
   'WARNING:  permission denied to set parameter "envsync.applying"|U:false' \
   "a write after setting envsync.applying without the right to is logged as an edit, not as envsync's own"
unchanged "no envsync rights"

# --- Names of every spelling: environments, modules, schemas, tables, columns and roles ------------------------------
# A second pair of databases: schema, tables, columns, the other environment, its server, the
# module and both roles named with quotes, semicolons, mixed case, unicode and 63 bytes.
hostile_db=envsync_hostile
env=$'Tést "QA"; -- x'
module=$'Mödule "One"; DROP'
link2=$'Link "Role"; ü'
long=$(printf 't%.0s' $(seq 63))
for side in prod test; do
    "$cluster" psql "$side" -d postgres -c "DROP DATABASE IF EXISTS $hostile_db WITH (FORCE)" -c "CREATE DATABASE $hostile_db" >/dev/null
    "$cluster" psql "$side" -d "$hostile_db" -v long="$long" -o /dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION envsync CASCADE;
CREATE SCHEMA "Shop ""Ω""; x";
CREATE TABLE "Shop ""Ω""; x"."Pages; DROP TABLE x" ("Id ""Key""" integer PRIMARY KEY, "Title; --" text, "ünï ""cöde""" jsonb);
CREATE TABLE "Shop ""Ω""; x".:"long" (id text PRIMARY KEY, "Page" integer REFERENCES "Shop ""Ω""; x"."Pages; DROP TABLE x");
INSERT INTO "Shop ""Ω""; x"."Pages; DROP TABLE x" SELECT g, 'page ' || g, jsonb_build_object('n', g) FROM generate_series(1, 20) g;
INSERT INTO "Shop ""Ω""; x".:"long" SELECT 'k;' || g || '"', g FROM generate_series(1, 20) g;
SQL
done
pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
{ set +x; } 2>/dev/null
"$cluster" psql test -d "$hostile_db" -At -v link2="$link2" -v pw="$pw" -v long="$long" -o /dev/null <<'SQL'
SET log_min_error_statement = panic;
SET client_min_messages = warning;
SELECT format('DROP OWNED BY %I', :'link2') WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = :'link2') \gexec
SELECT format('DROP ROLE IF EXISTS %I', :'link2') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'link2', :'pw') \gexec
SELECT sync_grant_link(quote_ident(:'link2')::regrole, ARRAY[format('%I.%I', 'Shop "Ω"; x', 'Pages; DROP TABLE x'), format('%I.%I', 'Shop "Ω"; x', :'long')]::regclass[]);
SQL
eval "$("$cluster" env test)"
"$cluster" psql prod -d "$hostile_db" -At -v link2="$link2" -v pw="$pw" -v port="$PGPORT" -v env="$env" -v module="$module" \
    -v op="$op" -v long="$long" -o /dev/null <<'SQL'
SET log_min_error_statement = panic;
SET client_min_messages = warning;
CREATE SERVER "Test ""server""; ü" FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port :'port', dbname 'envsync_hostile');
CREATE USER MAPPING FOR PUBLIC SERVER "Test ""server""; ü" OPTIONS (user :'link2', password :'pw');
SELECT sync_add_environment('prod');
SELECT sync_add_environment(:'env', 'Test "server"; ü');
SELECT sync_add_module(:'module', ARRAY[format('%I.%I', 'Shop "Ω"; x', 'Pages; DROP TABLE x'), format('%I.%I', 'Shop "Ω"; x', :'long')]::regclass[]);
SELECT sync_set_operator(quote_ident(:'op')::regrole, 'alice@shop.example');
SQL
unset pw
eval "$("$cluster" env prod)"
hostile() { "$cluster" psql "$1" -d "$hostile_db" -At -U "${2:-postgres}" "${@:3}" 2>&1; }
hostile test postgres -c "UPDATE \"Shop \"\"Ω\"\"; x\".\"Pages; DROP TABLE x\" SET \"Title; --\" = 'edited \"on\" TEST;' WHERE \"Id \"\"Key\"\"\" = 2" \
        -c "INSERT INTO \"Shop \"\"Ω\"\"; x\".\"$long\" VALUES ('new;\"key\"', 2)" \
        -c "DELETE FROM \"Shop \"\"Ω\"\"; x\".\"$long\" WHERE \"Page\" = 20" >/dev/null
cmp=$(hostile prod "$op" -v env="$env" <<'SQL'
SELECT sync_compare(:'env', 'prod');
SQL
)
like "$cmp" '^[0-9]+$' "an operator with a hostile name compares an environment of a hostile name"
is "$(hostile prod postgres -c "SELECT module, table_name::text, record_key::text, kind, coalesce(array_to_string(changed_columns, ','), '-')
                                  FROM envsync.changes WHERE comparison_id = $cmp ORDER BY table_name::text, key::text")" \
   "$module|\"Shop \"\"Ω\"\"; x\".\"Pages; DROP TABLE x\"|{\"Id \\\"Key\\\"\": 2}|modified|Title; --
$module|\"Shop \"\"Ω\"\"; x\".$long|{\"id\": \"k;20\\\"\"}|deleted|-
$module|\"Shop \"\"Ω\"\"; x\".$long|{\"id\": \"new;\\\"key\\\"\"}|new|-" \
   "its changes name module, schema, table, key and column as they are spelled"
applied=$(hostile prod "$op" -c "SELECT module, inserted, updated, deleted FROM sync_apply($cmp)")
is "$applied" "$module|1|1|1" "the synchronization writes them"
again=$(hostile prod "$op" -v env="$env" <<'SQL'
SELECT sync_compare(:'env', 'prod');
SQL
)
is "$(hostile prod postgres -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $again")" "0" "after which both agree"
hostile prod postgres -c "UPDATE \"Shop \"\"Ω\"\"; x\".\"Pages; DROP TABLE x\" SET \"ünï \"\"cöde\"\"\" = '{\"ü\": \"<script>\"}' WHERE \"Id \"\"Key\"\"\" = 7" >/dev/null
back=$(hostile prod "$op" -v env="$env" <<'SQL'
SELECT sync_compare('prod', :'env');
SQL
)
sync=$(hostile prod "$op" -c "SELECT sync_id FROM sync_apply($back) LIMIT 1")
is "$(hostile test postgres -c "SELECT \"ünï \"\"cöde\"\"\"->>'ü' FROM \"Shop \"\"Ω\"\"; x\".\"Pages; DROP TABLE x\" WHERE \"Id \"\"Key\"\"\" = 7")" \
   "<script>" "and the other way round, into the environment of a hostile name"
is "$(hostile prod "$op" -c "SELECT title FROM envsync.messages WHERE sync_id = $sync")" "Success: Synchronization process" \
   "her messages name the synchronization"
is "$(hostile prod "$op" -v env="$env" <<SQL
SELECT strpos(body, 'PROD > ' || upper(:'env')) > 0 FROM envsync.messages WHERE sync_id = $sync;
SQL
)" "t" "with the environment as it is spelled"
like "$(hostile prod "$op" -c "SELECT revert_id FROM sync_revert($sync) LIMIT 1")" '^[0-9]+$' "and she reverts it"
is "$(hostile prod postgres -c "SELECT count(*) FROM envsync.outbox WHERE recipient = 'alice@shop.example'")" "5" \
   "every comparison and outcome mailed her (the revert has no mail)"
for side in prod test; do
    "$cluster" psql "$side" -d postgres -c "DROP DATABASE $hostile_db WITH (FORCE)" >/dev/null
done
on_test -v link2="$link2" -o /dev/null <<'SQL'
SELECT format('DROP ROLE %I', :'link2') \gexec
SQL
unchanged "hostile names"

# --- Clean up the roles ---------------------------------------------------------------------------------------
setup prod <<'SQL'
SELECT sync_remove_operator(quote_ident(:'op')::regrole);
SQL
for side in prod test; do
    setup "$side" <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA shop CASCADE;
DROP OWNED BY :"op", :"nobody", :"owner";
DROP ROLE :"op", :"nobody", :"owner";
SQL
done

done_testing
