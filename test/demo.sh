#!/usr/bin/env bash
# The envsync demo on a fresh Debian 12 machine (the README's first command): installs the
# packages, builds envsync, starts two local clusters (PROD and TEST), loads the sample shop on
# both with differences made on each side, shows what envsync tracked, compares TEST with PROD,
# runs a test import, then the synchronization, compares again (nothing left), schedules a
# synchronization a minute ahead for pg_cron and shows the messages, and has the orchestrator
# deliver the operator's e-mails to a local SMTP sink. At the end it starts the web admin
# (envsync-admin) on the clusters, in the foreground, with a demo operator and a few more changes
# on TEST to synchronize; Ctrl-C stops it (ENVSYNC_DEMO_ADMIN_PORT, default 8080; ENVSYNC_DEMO_ADMIN=0
# skips it). The clusters keep running afterwards for a look around (test/cluster.sh psql prod;
# test/cluster.sh stop).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash test/install_deps.sh
bash test/build.sh
cluster=$repo/test/cluster.sh
"$cluster" start
bash test/setup_shop.sh 1
show() { echo; echo "== $1"; "$cluster" psql "$2" -P pager=off -P footer=off -c "$3"; }

show "Modules PROD synchronizes (mobile_app requires gallery; settings only mobile_app.%)" prod \
    "SELECT module, table_name, filter_column || ' LIKE ' || filter_pattern AS row_filter,
            is_root AS picked_per_run, module_requires, tracked_in
       FROM envsync.synced_tables ORDER BY module, position"

echo; echo "== Content is prepared on TEST; meanwhile PROD changes too (test/fixtures/shop_generate.sql, diverge())"
"$cluster" psql test -c "SELECT shop_fixture.diverge('test')" -o /dev/null
"$cluster" psql prod -c "SELECT shop_fixture.diverge('prod')" -o /dev/null

show "Tracked on PROD: envsync.tracked_changes" prod \
    "SELECT table_name, key, inserted, updated, deleted, by_envsync, writes
       FROM envsync.tracked_changes ORDER BY table_name::text, key"

show "Tracked on TEST, read from PROD through postgres_fdw" prod \
    "SELECT t.relid AS table_name, l.key, bool_or(l.kind = 'I') AS inserted, bool_or(l.kind = 'U') AS updated,
            bool_or(l.kind = 'D') AS deleted, count(*) AS writes
       FROM envsync_env_test.row_log l
       JOIN envsync.environment_tables et ON et.environment = 'test' AND et.remote_table_id = l.table_id
       JOIN envsync.tracked_tables t ON t.table_id = et.table_id
      GROUP BY 1, 2 ORDER BY t.relid::text, l.key"

echo; echo "== SELECT sync_compare('test', 'prod')   -- TEST > PROD, all records, every module"
"$cluster" psql prod -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" -o /dev/null
id=$("$cluster" psql prod -At -c "SELECT sync_compare('test', 'prod')")
show "Comparison $id (envsync.comparisons)" prod \
    "SELECT id, upper(source) || ' > ' || upper(target) AS direction, mode, status,
            conflicts, new, modified, deleted, selected FROM envsync.comparisons WHERE id = $id"
for kind in conflict new modified deleted; do
    title=$(case $kind in conflict) echo "Conflicts (not selected: ignore the conflict and overwrite by selecting one)";;
            new) echo "New records";; modified) echo "Modified records";; deleted) echo "Deleted records";; esac)
    show "$title" prod \
        "SELECT change_id, module, table_name, record_key,
                coalesce(conflict_reason, '') AS reason, array_to_string(changed_columns, ', ') AS changed,
                CASE WHEN selected THEN 'x' ELSE '' END AS selected
           FROM envsync.changes WHERE comparison_id = $id AND kind = '$kind'
          ORDER BY module, table_name::text, key::text"
done

echo; echo "== The operator overwrites the conflicts too: SELECT sync_select($id, true, kind => 'conflict')"
"$cluster" psql prod -At -c "SELECT sync_select($id, true, kind => 'conflict')" -o /dev/null
show "Test import: SELECT * FROM sync_apply($id, test_import => true)   -- everything done, then rolled back" prod \
    "SELECT module, inserted, updated, deleted FROM sync_apply($id, test_import => true)"
show "Synchronization: SELECT * FROM sync_apply($id)" prod \
    "SELECT module, inserted, updated, deleted FROM sync_apply($id)"
again=$("$cluster" psql prod -At -c "SELECT sync_compare('test', 'prod')")
show "A new comparison (SELECT sync_compare('test', 'prod')) finds nothing left to synchronize" prod \
    "SELECT id, upper(source) || ' > ' || upper(target) AS direction, conflicts, new, modified, deleted
       FROM envsync.comparisons WHERE id = $again"

echo; echo "== More content on TEST; compared and scheduled a minute ahead: SELECT sync_schedule(id, <next minute>)"
"$cluster" psql test -c "UPDATE shop.cms_pages SET title = 'Winter sale', published = true WHERE id = 3" -o /dev/null
id=$("$cluster" psql prod -At -c "SELECT sync_compare('test', 'prod', ARRAY['cms'])")
sync=$("$cluster" psql prod -At -c "SELECT sync_schedule($id, date_trunc('minute', now()) + interval '1 minute')")
show "envsync.syncs" prod "SELECT id, kind, upper(source) || ' > ' || upper(target) AS direction, status, run_at,
                                  inserted, updated, deleted FROM envsync.syncs ORDER BY id"
show "envsync.messages" prod "SELECT created_at, title, body FROM envsync.messages ORDER BY created_at DESC, id DESC"
echo; echo "== pg_cron runs it at its minute (waiting...)"
for _ in $(seq 150); do
    [[ $("$cluster" psql prod -At -c "SELECT status FROM envsync.syncs WHERE id = $sync") =~ ^(succeeded|failed)$ ]] && break
    sleep 1
done
show "envsync.syncs" prod "SELECT id, kind, status, run_at, started_at, inserted, updated, deleted, error
                             FROM envsync.syncs ORDER BY id"
show "envsync.messages (newest first)" prod "SELECT created_at, title, body FROM envsync.messages"
show "The e-mails queued for the operator (envsync.mail_status)" prod \
    "SELECT id, kind, recipient, subject, status FROM envsync.mail_status ORDER BY id"

echo; echo "== envsync-orchestrator delivers them to a local SMTP sink (aiosmtpd)"
mail=$(mktemp -d /tmp/envsync-demo-mail.XXXXXX)
/usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Mailbox "$mail/box" >/dev/null 2>&1 &
smtp=$!
trap 'kill $smtp 2>/dev/null' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && break; sleep 0.1; done
eval "$("$cluster" env prod)"
build/orchestrator/envsync-orchestrator --once --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER" \
    --smtp-url smtp://127.0.0.1:2525 --from envsync@shop.example
show "Delivered (envsync.mail_status)" prod "SELECT id, recipient, status, attempts, sent_at FROM envsync.mail_status ORDER BY id"
echo; echo "== The e-mails received (plain-text parts)"
/usr/bin/python3 - "$mail/box" <<'PY'
import email, email.policy, mailbox, sys
for raw in mailbox.Maildir(sys.argv[1], create=False):
    message = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
    print("From:", message["From"]); print("To:", message["To"]); print("Subject:", message["Subject"]); print()
    print(message.get_body(preferencelist=("plain",)).get_content())
    print("-" * 72)
PY
rm -rf "$mail"
kill "$smtp" 2>/dev/null
trap - EXIT

echo
echo "The clusters are running: test/cluster.sh psql prod   (or test); stop them with test/cluster.sh stop"
[[ ${ENVSYNC_DEMO_ADMIN:-1} == 0 ]] && exit 0

echo; echo "== The web admin, envsync-admin: System > Synchronization"
# A content team member of PROD, who logs in with her own role and password; and new content on TEST.
{ set +x; } 2>/dev/null
password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "SET log_min_error_statement = panic;" \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo') THEN CREATE ROLE demo LOGIN; END IF; END \$\$;" \
    "ALTER ROLE demo PASSWORD '$password'; GRANT envsync_operator TO demo;" \
    "SELECT sync_set_operator('demo', 'demo@shop.example');" | "$cluster" psql prod -q -o /dev/null
"$cluster" psql test -q -c "UPDATE shop.cms_pages SET title = 'Summer sale', published = true WHERE id = 4" \
    -c "UPDATE shop.products SET price = 19.90 WHERE id = 7" \
    -c "INSERT INTO shop.menu_items (menu_id, parent_id, position, label, url) VALUES (1, NULL, 9, 'Summer sale', '/summer-sale')"
port=${ENVSYNC_DEMO_ADMIN_PORT:-8080}
echo "Open http://127.0.0.1:$port/ and log in as demo, password $password"
echo "(Ctrl-C stops the admin; the clusters keep running.)"
exec build/orchestrator/envsync-admin --db "host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE" --port "$port"
