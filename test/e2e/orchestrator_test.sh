#!/usr/bin/env bash
# End-to-end test of envsync-orchestrator against the PROD cluster of test/cluster.sh and a real
# SMTP server (aiosmtpd) on loopback. TAP: prove --exec bash test/e2e/orchestrator_test.sh
#
# Starts PROD if needed and restarts it once (the daemon must survive that). Works in a database
# of its own on PROD, envsync_mail (dropped and recreated, then CREATE EXTENSION envsync CASCADE:
# the installed extension, `make install`), with the cluster-wide login role mailer, which gets
# exactly the grants the README asks for. Both are dropped again at the end.
#
# Environment: test/cluster.sh's (ENVSYNC_CLUSTER_DIR, ENVSYNC_PROD_PORT, ...), and
#   ENVSYNC_ORCHESTRATOR   the binary (default build/orchestrator/envsync-orchestrator, built
#                          with CMake when missing)
#   ENVSYNC_E2E_KEEP       when set, keep the temporary directory (logs, maildir) for debugging

# Checks are handed to ok/wait_for as commands or single-quoted code evaluated later.
# shellcheck disable=SC2016,SC2317
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/test/lib/tap.sh"
cluster=$repo/test/cluster.sh
HELPERS=$repo/test/e2e/orchestrator
PY=/usr/bin/python3  # the interpreter that has aiosmtpd, whatever PATH says
export PYTHONDONTWRITEBYTECODE=1  # keep the source tree clean
BIN=${ENVSYNC_ORCHESTRATOR:-$repo/build/orchestrator/envsync-orchestrator}

WORK=$(mktemp -d /tmp/envsync-orchestrator-e2e.XXXXXX)
MAILDIR=$WORK/maildir
HOLD=$WORK/hold  # where the SMTP sink says it holds a mail, and where the test releases it
mkdir "$HOLD"
unset PGPASSWORD PGSERVICE PGOPTIONS
SMTP_PID= ; DAEMON_A= ; DAEMON_B= ; ON_PROD=  # ON_PROD: PG* point at PROD

# teardown: drops what this test made in the cluster (role mailer, database envsync_mail), then
# prints "ROLES|DATABASES" still there, i.e. 0|0 when the cluster is clean. Runs twice on success
# (once as a test, once from cleanup); each step is a no-op when there is nothing to drop.
teardown() {
    local q=(psql -X -qAt -v ON_ERROR_STOP=1 -d postgres)
    if [ "$("${q[@]}" -c "SELECT count(*) FROM pg_database WHERE datname = 'envsync_mail'")" = 1 ]; then
        psql -X -q -v ON_ERROR_STOP=1 -d envsync_mail -c "DO \$\$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mailer') THEN DROP OWNED BY mailer; END IF;
        END \$\$"
    fi
    "${q[@]}" -c "DROP ROLE IF EXISTS mailer" -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS envsync_mail WITH (FORCE)" \
        -c "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'mailer') || '|' ||
                   (SELECT count(*) FROM pg_database WHERE datname = 'envsync_mail')"
}

cleanup() {
    local rc=$?
    for pid in $DAEMON_A $DAEMON_B $SMTP_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    if [ "$rc" != 0 ]; then
        for log in "$WORK"/*.log; do [ -f "$log" ] && diag "${log##*/}:" && diag "$(tail -n 30 "$log")"; done
    fi
    [ -n "$ON_PROD" ] && teardown >/dev/null 2>&1
    if [ -n "${ENVSYNC_E2E_KEEP:-}" ]; then diag "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- helpers --------------------------------------------------------------------------------
sql() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# insert KIND RECIPIENT SUBJECT PAYLOAD -> prints the new id. psql variables quote the values.
insert() {
    psql -X -qAt -v ON_ERROR_STOP=1 -v kind="$1" -v rcpt="$2" -v subject="$3" -v payload="$4" <<'SQL'
INSERT INTO envsync.outbox (kind, recipient, subject, payload)
VALUES (:'kind', :'rcpt', :'subject', :'payload') RETURNING id;
SQL
}

# row_is ID EXPRESSION EXPECTED: EXPRESSION over the outbox row (psql -A output) equals EXPECTED.
row_is() { [ "$(sql "SELECT $2 FROM envsync.outbox WHERE id = $1")" = "$3" ]; }
# count_is CONDITION N: N outbox rows satisfy CONDITION.
count_is() { [ "$(sql "SELECT count(*) FROM envsync.outbox WHERE $1")" = "$2" ]; }

message_id_sql="'<envsync-outbox-' || id || '.' || floor(extract(epoch FROM created_at))::bigint || '@e2e.test>'"
message_id() { sql "SELECT $message_id_sql FROM envsync.outbox WHERE id = $1"; }
delivered_ids() { "$PY" "$HELPERS/maildir.py" ids "$MAILDIR"; }
copies_are() { [ "$(delivered_ids | grep -cxF "$(message_id "$1")")" = "$2" ]; }

# show ID KEY...: a field of the delivered message (parsed by Python's email package) as JSON,
# or as plain text when it is a string.
show() {
    local id=$1; shift
    "$PY" "$HELPERS/maildir.py" show "$MAILDIR" "$(message_id "$id")" >"$WORK/show.json"
    "$PY" - "$WORK/show.json" "$@" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value.get(key)
print(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
PY
}

# JSON read from stdin, normalised like show's output.
json_of() { "$PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin), ensure_ascii=False))'; }

smtp_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null; }

start_smtp() {
    ENVSYNC_SMTP_HOLD_DIR=$HOLD PYTHONPATH=$HELPERS "$PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
        -c smtp_handler.RejectingMailbox "$MAILDIR" >>"$WORK/smtp.log" 2>&1 &
    SMTP_PID=$!
    wait_for 10 smtp_listening || bail "aiosmtpd did not start"
}

stop_smtp() { kill "$SMTP_PID"; wait "$SMTP_PID" 2>/dev/null; SMTP_PID=; }

# start_daemon LOGNAME: the orchestrator in the background of this shell (so `wait` gets its
# exit status); its pid is in $!.
start_daemon() {
    "$BIN" --db "$DB" --smtp-url "smtp://127.0.0.1:$SMTP_PORT" --from envsync@e2e.test \
        --message-id-domain e2e.test --poll-interval 2 --backoff-base 1 --backoff-max 2 \
        --max-attempts 20 >>"$WORK/$1.log" 2>&1 &
}

stopped() { ! kill -0 "$1" 2>/dev/null; }

# terminate PID: SIGTERM, then its exit status (124 when it does not stop in time).
terminate() {
    kill -TERM "$1"
    wait_for 15 stopped "$1" || return 124
    wait "$1"
}

comparison_payload='{"comparison_id": 12, "source": "test", "target": "prod", "mode": "all",
  "started_by": "alice", "finished_at": "2026-11-24T17:00:00+00:00",
  "modules": [{"module": "cms", "new": 1, "modified": 2, "deleted": 0, "conflicts": 1},
              {"module": "catalog", "new": 3, "modified": 0, "deleted": 5, "conflicts": 0}]}'
sync_payload='{"sync_id": 3, "comparison_id": 12, "source": "test", "target": "prod",
  "test_import": false, "scheduled_by": "alice", "finished_at": "2026-11-24T17:05:00+00:00",
  "modules": [{"module": "cms", "inserted": 1, "updated": 2, "deleted": 0}]}'

# --- set up ---------------------------------------------------------------------------------
if [ ! -x "$BIN" ]; then
    { cmake -S "$repo" -B "$repo/build" && cmake --build "$repo/build" -j2 --target envsync-orchestrator; } \
        >"$WORK/build.log" 2>&1 || bail "cannot build the orchestrator (build.log below)"
fi

"$cluster" start prod || bail "the PROD cluster did not start"
if settings=$("$cluster" env prod); then eval "$settings"; else bail "no connection settings for PROD"; fi
export PGDATABASE=envsync_mail
ON_PROD=1
DB="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=mailer"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS envsync_mail WITH (FORCE)" -c "CREATE DATABASE envsync_mail" ||
    bail "cannot create database envsync_mail on PROD"
psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CREATE EXTENSION envsync CASCADE" ||
    bail "CREATE EXTENSION envsync failed (run make install?)"
# Exactly the privileges the README asks for: the test proves they are enough. Roles belong to
# the whole cluster: mailer is made only if missing, and dropped at the end.
sql "DO \$\$ BEGIN
         IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mailer') THEN CREATE ROLE mailer LOGIN; END IF;
     END \$\$;
     GRANT USAGE ON SCHEMA envsync TO mailer;
     GRANT SELECT, UPDATE ON envsync.outbox TO mailer;" >/dev/null || bail "cannot create role mailer"

SMTP_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_smtp

ok "orchestrator --help exits 0" eval '"$BIN" --help >/dev/null'

# --- a comparison arrives as a readable e-mail ----------------------------------------------
start_daemon daemon-a; DAEMON_A=$!
subject='Vergleich #12 abgeschlossen – test → prod (Größen ✓)'
id=$(insert comparison_finished ops@example.test "$subject" "$comparison_payload")
ok "comparison_finished row is sent with one attempt" wait_for 10 row_is "$id" "status, attempts" "sent|1"
wait_for 5 copies_are "$id" 1
is "$(show "$id" subject)" "$subject" "non-ASCII subject survives RFC 2047 encoding"
is "$(show "$id" content_type) $(show "$id" part_types) $(show "$id" part_charsets)" \
    'multipart/alternative ["text/plain", "text/html"] ["utf-8", "utf-8"]' \
    "multipart/alternative with UTF-8 text/plain and text/html"
is "$(show "$id" cells)" "$(json_of <<'JSON'
[["Mode", "all"], ["Started by", "alice"], ["Finished at", "2026-11-24T17:00:00+00:00"],
 ["Module", "New", "Modified", "Deleted", "Conflicts"],
 ["cms", "1", "2", "0", "1"], ["catalog", "3", "0", "5", "0"]]
JSON
)" "HTML tables hold the facts and module x new/modified/deleted/conflicts"
is "$(show "$id" text | sed -n '1p;8,11p')" \
    "$subject
Module   New  Modified  Deleted  Conflicts
-------  ---  --------  -------  ---------
cms        1         2        0          1
catalog    3         0        5          0" "text part has the heading (the subject, the payload having none) and an aligned table"
is "$(show "$id" message_id) | $(show "$id" date) | $(show "$id" to)" \
    "$(sql "SELECT $message_id_sql || ' | ' || to_char(created_at AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS')
               || ' +0000 | [\"ops@example.test\"]' FROM envsync.outbox WHERE id = $id")" \
    "Message-ID, Date and To come from the row"

# --- hostile values are escaped, headers cannot be injected ----------------------------------
hostile_payload=$(cat <<'JSON'
{"sync_id": 4, "comparison_id": 12, "source": "<b>test</b>", "target": "prod",
 "scheduled_by": "\"Bob\" & 'Eve'", "finished_at": "2026-11-24T18:00:00+00:00",
 "error": "duplicate key <script>alert(1)</script>", "hint": "a & b > c",
 "modules": [{"module": "<script>alert(\"x\")</script>", "inserted": "<img src=x onerror=alert(1)>"}]}
JSON
)
id=$(insert sync_failed ops@example.test $'Sync failed\r\nBcc: victim@example.test\r\n\r\n<b>body</b>' "$hostile_payload")
wait_for 10 row_is "$id" "status, attempts" "sent|1" && wait_for 5 copies_are "$id" 1
is "$(show "$id" subject) | $(show "$id" bcc)" "Sync failed  Bcc: victim@example.test    <b>body</b> | null" \
    "CR/LF in the subject injects no header"
ok "HTML has no live tag from the data" eval '! show "$id" html | grep -qi -e "<script" -e "<img" -e "<b>"'
is "$(show "$id" cells)" "$(json_of <<'JSON'
[["Comparison", "#12"], ["Test import", "-"], ["Scheduled by", "\"Bob\" & 'Eve'"],
 ["Finished at", "2026-11-24T18:00:00+00:00"], ["Error", "duplicate key <script>alert(1)</script>"],
 ["Hint", "a & b > c"], ["Module", "Inserted", "Updated", "Deleted"],
 ["<script>alert(\"x\")</script>", "<img src=x onerror=alert(1)>", "-", "-"]]
JSON
)" "HTML shows hostile values verbatim (escaped, not lost)"

# --- a recipient the server refuses ---------------------------------------------------------
id=$(insert sync_succeeded nobody@invalid.test "Sync succeeded" "$sync_payload")
ok "recipient refused with 550 is failed at once" wait_for 10 row_is "$id" "status, attempts" "failed|1"
like "$(sql "SELECT last_error FROM envsync.mail_status WHERE id = $id")" '^RCPT refused: 550 5\.1\.1 .*no such user$' \
    "mail_status shows the server's reason"

# --- SMTP server down, then back ------------------------------------------------------------
stop_smtp
id=$(insert sync_succeeded ops@example.test "Sync succeeded" "$sync_payload")
ok "SMTP down: row stays pending, attempt and error recorded" wait_for 10 \
    row_is "$id" "status, attempts >= 1, last_error IS NOT NULL" "pending|t|t"
start_smtp
ok "SMTP back: sent after more than one attempt" wait_for 15 row_is "$id" "status, attempts >= 2" "sent|t"
ok "SMTP back: delivered exactly once" wait_for 5 copies_are "$id" 1

# --- PostgreSQL restarted under the running daemon ------------------------------------------
"$cluster" restart prod || bail "PROD did not restart"
id=$(insert comparison_finished ops@example.test "After restart" '{"comparison_id": 13, "modules": []}')
ok "daemon reconnects and delivers a row inserted after the restart" \
    wait_for 20 row_is "$id" "status, attempts" "sent|1"
ok "daemon kept running and logged the reconnect" eval \
    'kill -0 "$DAEMON_A" && grep -q "reconnecting in" "$WORK/daemon-a.log"'

# --- two daemons, fifty rows ----------------------------------------------------------------
start_daemon daemon-b; DAEMON_B=$!
first=$(sql "INSERT INTO envsync.outbox (kind, recipient, subject, payload)
             SELECT 'sync_succeeded', 'ops@example.test', 'Bulk ' || i, '$sync_payload'::jsonb
               FROM generate_series(1, 50) AS i RETURNING id" | head -n 1)
bulk="id BETWEEN $first AND $((first + 49))"
ok "two daemons: all 50 rows sent with one attempt each" \
    wait_for 30 count_is "$bulk AND status = 'sent' AND attempts = 1" 50
sql "SELECT $message_id_sql FROM envsync.outbox WHERE $bulk" >"$WORK/bulk-ids"
is "$(delivered_ids | grep -xF -f "$WORK/bulk-ids" | sort | uniq -c | awk '$1 == 1' | wc -l)" 50 \
    "two daemons: each of the 50 Message-IDs is in the maildir exactly once"
diag "sync mails sent by daemon a: $(grep -c 'sent sync_succeeded' "$WORK/daemon-a.log"), by daemon b: $(grep -c 'sent sync_succeeded' "$WORK/daemon-b.log")"

# --- SIGTERM while a message is in flight ---------------------------------------------------
# The sink holds its reply to DATA for held@... (smtp_handler.py): once $HOLD/held names the
# mail, it is provably in flight, and it stays so until $HOLD/release exists.
held_is() { [ "$(cat "$HOLD/held" 2>/dev/null)" = "$(message_id "$1")" ]; }
running() { local n=0 pid; for pid; do kill -0 "$pid" 2>/dev/null && n=$((n + 1)); done; echo "$n"; }
id=$(insert comparison_finished held@example.test "Held" "$comparison_payload")
ok "the held mail is in flight: the SMTP server has it and holds its reply" wait_for 10 held_is "$id"
kill -TERM "$DAEMON_A" "$DAEMON_B"
ok "SIGTERM: the idle daemon stops" wait_for 15 eval '[ "$(running "$DAEMON_A" "$DAEMON_B")" = 1 ]'
is "$(running "$DAEMON_A" "$DAEMON_B") $(sql "SELECT status FROM envsync.outbox WHERE id = $id")" "1 pending" \
    "SIGTERM: the daemon sending the held mail keeps waiting for the server's reply"
touch "$HOLD/release"
wait_for 15 eval '[ "$(running "$DAEMON_A" "$DAEMON_B")" = 0 ]'
wait "$DAEMON_A"; status_a=$?
wait "$DAEMON_B"; status_b=$?
DAEMON_A= ; DAEMON_B=
is "$status_a $status_b" "0 0" "SIGTERM: both daemons exit with status 0"
ok "SIGTERM: the mail in flight was finished, recorded as sent and delivered once" eval \
    'row_is "$id" "status, attempts, sent_at IS NOT NULL" "sent|1|t" && copies_are "$id" 1'
ok "SIGTERM: the daemon logged the mail as sent before it stopped" eval \
    'grep -h -A1 "outbox $id: sent" "$WORK/daemon-a.log" "$WORK/daemon-b.log" | grep -q ": stopped$"'
is "$(sql "SELECT (SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = 'envsync-orchestrator' AND datname = current_database())
               || ' ' || (SELECT count(*) FROM envsync.outbox WHERE status = 'pending')")" "0 0" \
    "SIGTERM: no session or claimed row left behind"

# --- killed after the SMTP server accepted a mail, before the commit ------------------------
# A trigger makes the daemon's UPDATE to 'sent' of one row sleep: the mail is in the maildir
# while its row is still pending in the daemon's open transaction. Then the daemon is killed.
# client_connection_check_interval lets the server notice the dead client during the sleep.
sql "CREATE TABLE public.stalled_mail (id bigint PRIMARY KEY);
     CREATE FUNCTION public.stall_sent() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
         SET search_path = pg_catalog, pg_temp AS \$\$
     BEGIN
         IF NEW.status = 'sent' AND EXISTS (SELECT FROM public.stalled_mail WHERE id = NEW.id) THEN
             PERFORM pg_sleep(300);
         END IF;
         RETURN NEW;
     END \$\$;
     CREATE TRIGGER stall_sent BEFORE UPDATE ON envsync.outbox
         FOR EACH ROW EXECUTE FUNCTION public.stall_sent();" || bail "cannot install the stalling trigger"
orchestrator_sessions() {
    sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE wait_event = 'PgSleep')
           FROM pg_stat_activity WHERE application_name = 'envsync-orchestrator' AND datname = current_database()"
}
PGOPTIONS='-c client_connection_check_interval=100' start_daemon daemon-c; DAEMON_A=$!
id=$(psql -X -qAt -v ON_ERROR_STOP=1 -v payload="$comparison_payload" <<'SQL'
WITH mail AS (INSERT INTO envsync.outbox (kind, recipient, subject, payload)
              VALUES ('comparison_finished', 'ops@example.test', 'Crash before commit', :'payload')
              RETURNING id)
INSERT INTO public.stalled_mail SELECT id FROM mail RETURNING id;
SQL
)
crashed=$id
ok "the SMTP server accepted the mail; the daemon is inside its transaction, not committed" \
    wait_for 10 eval 'copies_are "$id" 1 && [ "$(orchestrator_sessions)" = "1 1" ]'
kill -KILL "$DAEMON_A"; wait "$DAEMON_A" 2>/dev/null; DAEMON_A=
ok "with the daemon killed, its transaction is rolled back: the row is pending, no attempt counted" \
    wait_for 10 eval '[ "$(orchestrator_sessions)" = "0 0" ] && row_is "$id" "status, attempts" "pending|0"'
sql "DELETE FROM public.stalled_mail"
start_daemon daemon-d; DAEMON_A=$!
ok "a restarted daemon sends it again and marks it sent once" \
    wait_for 10 row_is "$id" "status, attempts, sent_at IS NOT NULL" "sent|1|t"
ok "the mail arrived a second time, with the same Message-ID" wait_for 5 copies_are "$id" 2
terminate "$DAEMON_A"; DAEMON_A=
sql "DROP TRIGGER stall_sent ON envsync.outbox; DROP FUNCTION public.stall_sent(); DROP TABLE public.stalled_mail"

# --- --once, and secrets kept off the command line and out of logs -------------------------
for i in 1 2 3; do insert comparison_finished ops@example.test "Once $i" "$comparison_payload" >/dev/null; done
ok "--once delivers what is due and exits 0" eval \
    '"$BIN" --once --db "$DB" --smtp-url "smtp://127.0.0.1:$SMTP_PORT" --from envsync@e2e.test \
         --message-id-domain e2e.test >"$WORK/once.log" 2>&1 &&
     count_is "subject LIKE '"'Once %'"' AND status = '"'sent'"'" 3'
ok "a password flag is refused (exit 2) without echoing it" eval \
    '"$BIN" --db "$DB" --smtp-url "smtp://127.0.0.1:$SMTP_PORT" --from envsync@e2e.test \
         --smtp-password=hunter2 >"$WORK/refused.log" 2>&1; [ $? = 2 ] && ! grep -q hunter2 "$WORK/refused.log"'
id=$(insert comparison_finished ops@example.test "Credentials" "$comparison_payload")
ok "credentials over smtp:// without STARTTLS are refused (exit 2), naming the flag, nothing sent" eval \
    'ENVSYNC_SMTP_USER=smtpuser ENVSYNC_SMTP_PASSWORD=hunter2 "$BIN" --once --db "$DB" \
         --smtp-url "smtp://127.0.0.1:$SMTP_PORT" --from envsync@e2e.test >"$WORK/plaintext.log" 2>&1
     [ $? = 2 ] && grep -q "refusing to send SMTP credentials without TLS.*--smtp-allow-plaintext-auth" \
         "$WORK/plaintext.log" && ! grep -q hunter2 "$WORK/plaintext.log" &&
     row_is "$id" "status, attempts" "pending|0"'
# The sink offers no AUTH, so libcurl delivers without authenticating: the flag is what lets
# the daemon start at all with credentials on a plain connection.
ok "with --smtp-allow-plaintext-auth it delivers; userinfo of the SMTP URL is not logged" eval \
    'ENVSYNC_SMTP_URL="smtp://smtpuser:hunter2@127.0.0.1:$SMTP_PORT" "$BIN" --once --db "$DB" \
         --from envsync@e2e.test --message-id-domain e2e.test --smtp-allow-plaintext-auth \
         >"$WORK/userinfo.log" 2>&1 &&
     grep -q "delivering via smtp://127.0.0.1:$SMTP_PORT" "$WORK/userinfo.log" &&
     grep -q "SMTP credentials go without TLS" "$WORK/userinfo.log" &&
     ! grep -q -e hunter2 -e smtpuser "$WORK/userinfo.log" && row_is "$id" "status, attempts" "sent|1"'

is "$(delivered_ids | grep -cvxF "$(message_id "$crashed")") $(delivered_ids | sort -u | wc -l)" \
    "$(sql "SELECT count(*) - 1 || ' ' || count(*) FROM envsync.outbox WHERE status = 'sent'")" \
    "maildir holds exactly one message per sent row (two for the one killed before its commit)"

# --- the cluster is left as it was ----------------------------------------------------------
is "$(teardown 2>&1)" "0|0" "role mailer and database envsync_mail are dropped again"

done_testing
