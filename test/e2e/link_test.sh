#!/usr/bin/env bash
# How an apply talks to TEST beyond postgres_fdw's foreign-table statements, on its connection
# and in its remote transaction: envsync.copy_to_link streams the records with one COPY, and
# envsync.send_to_link/answer_from_link have TEST write them while PROD keeps its bookkeeping.
# Values that COPY's text format escapes arrive as they were; the refusals are those an INSERT
# into the foreign table would meet; a failure on either side, or a cancel, leaves nothing
# staged or requested in TEST and the link usable in the same session.
# TAP: prove --exec bash test/e2e/link_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/shop_e2e.sh"

stage=envsync_env_test.apply_stage
# rows for the stage: N insertions of table id 1, keys 1..N
rows() { echo "SELECT 1::bigint, 1, ARRAY[g::text], 'I'::\"char\", NULL::bigint, jsonb_build_object('id', g), 0::bigint FROM generate_series(1, $1) g"; }
version=$(on_test -c "SELECT extversion FROM pg_extension WHERE extname = 'envsync'")
staged_in_test() { on_test -c "SELECT count(*) FROM envsync.apply_stage"; }
slow_down() {   # slow_down TABLE SECONDS: on TEST, every row inserted into TABLE waits that long
    on_test -c "CREATE FUNCTION public.slow_down() RETURNS trigger LANGUAGE plpgsql AS \$\$
                BEGIN PERFORM pg_sleep($2); RETURN NEW; END \$\$" \
            -c "CREATE TRIGGER slow_down BEFORE INSERT ON $1 FOR EACH ROW EXECUTE FUNCTION public.slow_down()" >/dev/null
}
speed_up() { on_test -c "DROP FUNCTION public.slow_down() CASCADE" >/dev/null; }
link_idle() {   # no session of PROD's link role runs a statement in TEST
    [[ $(on_test -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'envsync_link' AND state = 'active'") == 0 ]]
}

# --- Values COPY's text format escapes --------------------------------------------------------------
prod >/dev/null <<'SQL'
INSERT INTO shop.system_settings VALUES
    (E'mobile_app.odd\tkey \\N', jsonb_build_object('s', E'a\tb\nc\r\\d\n\\.\n\\N', 'u', 'żółw ☃'), now()),
    (E'mobile_app.second\nline, "quoted" {braced}', '"\\\\"', now());
UPDATE shop.cms_pages SET title = E'Tab\there', body = E'one\ntwo\r\n\\.\nthree \\N', meta = '{"q": "\"quoted\"\\t"}'
 WHERE id = 1;
SQL
id=$(prod -c "SELECT sync_compare('prod', 'test', ARRAY['cms', 'mobile_app'])")
is "$(prod -c "SELECT count(*) FROM envsync.changes WHERE comparison_id = $id AND selected")" 3 \
   "three records with tabs, newlines, carriage returns, backslashes, \\N and \\. in keys and values differ"
applied=$(prod -c "SELECT sum(inserted) || '/' || sum(updated) FROM sync_apply($id)")
is "$applied" "2/1" "they apply"
same_rows="SELECT md5(string_agg(s::text, '|' ORDER BY s.key)) FROM shop.system_settings s WHERE s.key LIKE 'mobile_app.%'
           UNION ALL SELECT md5(p::text) FROM shop.cms_pages p WHERE p.id = 1"
pinned=(-c "SET TimeZone = 'UTC'" -c "SET DateStyle = 'ISO, YMD'")   # the clusters' own settings differ
is "$(on_test "${pinned[@]}" -c "$same_rows")" "$(prod "${pinned[@]}" -c "$same_rows")" "and TEST holds exactly PROD's rows"
is "$(on_test -c "SELECT key FROM shop.system_settings WHERE value ->> 's' = E'a\\tb\\nc\\r\\\\d\\n\\\\.\\n\\\\N'")" \
   "$(printf 'mobile_app.odd\tkey \\N')" "a key and a value read back as written"

# --- Refusals ----------------------------------------------------------------------------------------
refused() {   # refused SQL...: the error of the last statement, in a rolled-back transaction
    prod -v VERBOSITY=verbose -c "BEGIN" "$@" | grep -m1 '^ERROR'
}
# on PROD, each statement run even after one failed
go_on() { prod -v ON_ERROR_STOP=0 "$@"; }
like "$(refused -c "DECLARE c CURSOR FOR $(rows 1)" -c "SELECT envsync.copy_to_link('shop.cms_pages', 'c')")" \
     '42809: "cms_pages" is not a foreign table' "a table that is not a foreign table is refused"
like "$(refused -c "SELECT envsync.copy_to_link('$stage', 'nothing')")" '34000: cursor "nothing" does not exist' \
     "a cursor that is not open is refused"
like "$(refused -c "DECLARE c CURSOR FOR SELECT 1, 2" -c "SELECT envsync.copy_to_link('$stage', 'c')")" \
     '42804: the rows of cursor "c" do not match the columns of foreign table apply_stage' \
     "rows whose columns are not the foreign table's are refused"
like "$(refused -c "ALTER FOREIGN TABLE $stage OPTIONS (ADD updatable 'false')" -c "DECLARE c CURSOR FOR $(rows 1)" \
                -c "SELECT envsync.copy_to_link('$stage', 'c')")" \
     '55000: foreign table "apply_stage" does not allow inserts' "a foreign table that does not allow inserts is refused"
like "$(refused -c "CREATE ROLE copy_tester" -c "GRANT USAGE ON SCHEMA envsync, envsync_env_test TO copy_tester" \
                -c "SET ROLE copy_tester" -c "DECLARE c CURSOR FOR $(rows 1)" -c "SELECT envsync.copy_to_link('$stage', 'c')")" \
     '42501: permission denied for function copy_to_link' "a role may not call it"
like "$(refused -c "CREATE ROLE copy_tester" -c "GRANT USAGE ON SCHEMA envsync, envsync_env_test TO copy_tester" \
                -c "GRANT EXECUTE ON FUNCTION envsync.copy_to_link(regclass, refcursor) TO copy_tester" \
                -c "SET ROLE copy_tester" -c "DECLARE c CURSOR FOR $(rows 1)" -c "SELECT envsync.copy_to_link('$stage', 'c')")" \
     '42501: permission denied for foreign table apply_stage' \
     "and one allowed to call it needs the right to INSERT into the foreign table"

# --- Failures and cancels: nothing staged, the link still answers ---------------------------------
# TEST refuses a row in the middle of the stream.
on_test >/dev/null <<'SQL'
CREATE FUNCTION public.refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.key = '{3000}' THEN
        RAISE EXCEPTION 'row % refused here', NEW.key USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER refuse_row BEFORE INSERT ON envsync.apply_stage FOR EACH ROW EXECUTE FUNCTION public.refuse_row();
SQL
out=$(go_on -v VERBOSITY=verbose -c "BEGIN" -c "DECLARE c NO SCROLL CURSOR FOR $(rows 20000)" \
           -c "SELECT envsync.copy_to_link('$stage', 'c')" -c "ROLLBACK" -c "SELECT version FROM envsync_env_test.about")
like "$out" '23514: row \{3000\} refused here' "TEST's error comes back with its SQLSTATE and message"
like "$out" "$version\$" "the same session reaches TEST again afterwards"
out=$(go_on -c "BEGIN" -c "DECLARE c NO SCROLL CURSOR FOR $(rows 20000)" -c "SAVEPOINT s" \
           -c "SELECT envsync.copy_to_link('$stage', 'c')" -c "ROLLBACK TO SAVEPOINT s" \
           -c "SELECT version FROM envsync_env_test.about" -c "COMMIT")
like "$out" "refused here.*$version" "also after a rollback to a savepoint, in the same transaction"
on_test -c "DROP TRIGGER refuse_row ON envsync.apply_stage" -c "DROP FUNCTION public.refuse_row()" >/dev/null
# This side fails while it streams.
out=$(go_on -c "BEGIN" \
           -c "DECLARE c NO SCROLL CURSOR FOR SELECT 1::bigint, 1, ARRAY[g::text], 'I'::\"char\", (100 / (g - 5000))::bigint, '{}'::jsonb, 0::bigint FROM generate_series(1, 20000) g" \
           -c "SELECT envsync.copy_to_link('$stage', 'c')" -c "ROLLBACK" -c "SELECT version FROM envsync_env_test.about")
like "$out" "division by zero.*$version" "an error of the rows streamed fails the COPY, and the link answers afterwards"
is "$(staged_in_test)" 0 "nothing is left staged in TEST"
# A cancel (statement_timeout) while TEST takes the rows in slowly.
slow_down envsync.apply_stage 0.001
start=$(date +%s)
out=$(go_on -v VERBOSITY=verbose -c "BEGIN" -c "DECLARE c NO SCROLL CURSOR FOR $(rows 200000)" -c "SET LOCAL statement_timeout = '1s'" \
           -c "SELECT envsync.copy_to_link('$stage', 'c')" -c "ROLLBACK" -c "SELECT version FROM envsync_env_test.about")
took=$(( $(date +%s) - start ))
like "$out" "57014: canceling statement due to statement timeout" "a statement timeout cancels the stream"
like "$out" "$version\$" "the same session reaches TEST again afterwards"
ok "without waiting for TEST to take in all 200,000 rows (took ${took} s; about 200 s otherwise)" test "$took" -lt 30
speed_up
is "$(staged_in_test)" 0 "nothing is left staged in TEST"
ok "TEST's link sessions are idle again" wait_for 10 link_idle

# --- A request TEST works on while PROD goes on ----------------------------------------------------
requests=envsync_env_test.apply_requests
request="'{\"run\": -1, \"environment\": \"test\", \"move_sequences\": false}'"
like "$(refused -c "SELECT envsync.answer_from_link('$requests')")" \
     '55000: no request to this foreign table awaits its answer' "an answer nobody asked for is refused"
like "$(refused -c "SELECT envsync.send_to_link('$requests', '{\"run\": -1, \"nothing\": 1}')")" \
     '42703: foreign table has no column "nothing"' "a request naming a column the foreign table lacks is refused"
like "$(refused -c "CREATE ROLE copy_tester" -c "GRANT USAGE ON SCHEMA envsync, envsync_env_test TO copy_tester" \
                -c "GRANT EXECUTE ON FUNCTION envsync.send_to_link(regclass, jsonb) TO copy_tester" \
                -c "SET ROLE copy_tester" -c "SELECT envsync.send_to_link('$requests', $request)")" \
     '42501: permission denied for foreign table apply_requests' "sending needs the right to INSERT into the foreign table"
is "$(prod -c "BEGIN" -c "SELECT envsync.send_to_link('$requests', $request)" -c "SELECT 'meanwhile'" \
          -c "SELECT envsync.answer_from_link('$requests') ->> 'result'" -c "ROLLBACK")" $'\nmeanwhile\n{}' "the answer is the row TEST inserted, its trigger's result included (nothing staged: nothing written)"
# TEST takes its time; PROD fails, or gives up waiting, meanwhile.
slow_down envsync.apply_requests 20
start=$(date +%s)
out=$(go_on -c "BEGIN" -c "SELECT envsync.send_to_link('$requests', $request)" -c "SELECT 1 / 0" -c "ROLLBACK" \
           -c "SELECT version FROM envsync_env_test.about")
like "$out" "division by zero.*$version\$" "an error on PROD while TEST works cancels the request; the link answers afterwards"
out=$(go_on -v VERBOSITY=verbose -c "BEGIN" -c "SET LOCAL statement_timeout = '1s'" -c "SELECT envsync.send_to_link('$requests', $request)" \
           -c "SELECT envsync.answer_from_link('$requests')" -c "ROLLBACK" -c "SELECT version FROM envsync_env_test.about")
like "$out" "57014: canceling statement due to statement timeout.*$version\$" "so does a timeout while PROD waits for the answer"
took=$(( $(date +%s) - start ))
ok "without waiting for TEST's request to end (took ${took} s; 40 s otherwise)" test "$took" -lt 15
speed_up
is "$(on_test -c "SELECT count(*) FROM envsync.apply_requests WHERE run = -1")" 0 "TEST kept no request"
ok "TEST's link sessions are idle" wait_for 10 link_idle

done_testing
