#!/usr/bin/env bash
# The whole path of the e-mail that says a comparison finished: sync_compare on the sample shop
# queues it, envsync-orchestrator delivers it to a real SMTP server (aiosmtpd) on loopback.
# TAP: prove --exec bash test/e2e/comparison_mail_test.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
helpers=$repo/test/e2e/orchestrator
py=/usr/bin/python3   # the interpreter that has aiosmtpd, whatever PATH says
bin=${ENVSYNC_ORCHESTRATOR:-$repo/build/orchestrator/envsync-orchestrator}
# A port the kernel has free now: a fixed one can be held by another program's connection.
smtp_port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

work=$(mktemp -d /tmp/envsync-mail-e2e.XXXXXX)
smtp_pid=
cleanup() { [[ -n $smtp_pid ]] && kill "$smtp_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

[[ -x $bin ]] || { echo "Bail out! build the orchestrator first (test/build.sh)"; exit 1; }
source "$repo/test/lib/shop_e2e.sh"
on_test -c "SELECT shop_fixture.diverge('test')" >/dev/null
prod -c "SELECT shop_fixture.diverge('prod')" -c "SELECT sync_set_operator('postgres', 'dba@shop.example')" >/dev/null

PYTHONDONTWRITEBYTECODE=1 "$py" -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$work/maildir" \
    >"$work/smtp.log" 2>&1 &
smtp_pid=$!
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null; }
wait_for 10 listening || { diag "$(cat "$work/smtp.log")"; bail "aiosmtpd did not start on port $smtp_port"; }

id=$(prod -c "SELECT sync_compare('test', 'prod')")
is "$(prod -c "SELECT status FROM envsync.mail_status WHERE subject LIKE 'Comparison $id %'")" "pending" \
   "the comparison queued its e-mail"
is "$(prod -c "SELECT mailed_to FROM envsync.comparisons WHERE id = $id")" "dba@shop.example" \
   "the comparison says where its e-mail went"
eval "$("$cluster" env prod)"
ok "the orchestrator delivers what is due" \
   "$bin" --once --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER" \
   --smtp-url "smtp://127.0.0.1:$smtp_port" --from envsync@shop.example
is "$(prod -c "SELECT status, attempts FROM envsync.mail_status WHERE subject LIKE 'Comparison $id %'")" "sent|1" \
   "and marks it sent"
message_id=$(PYTHONPATH=$helpers "$py" "$helpers/maildir.py" ids "$work/maildir")
is "$(wc -l <<<"$message_id")" "1" "one e-mail arrived"
PYTHONPATH=$helpers "$py" "$helpers/maildir.py" show "$work/maildir" "$message_id" >"$work/mail.json"
field() { "$py" -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print(v if isinstance(v, str) else json.dumps(v))' "$work/mail.json" "$1"; }
is "$(field subject)" "Comparison $id finished: TEST > PROD" "its subject names the comparison and the direction"
is "$(field to)" '["dba@shop.example"]' "it goes to the operator who started the comparison"
cells=$(field cells)
like "$cells" '\["Module", "New", "Modified", "Deleted", "Conflicts"\]' "the summary is a table of modules and kinds"
like "$cells" '\["cms", "2", "0", "0", "1"\]' "CMS: the two new blocks and the page created on both sides"
like "$cells" '\["catalogue", "2", "1", "1", "1"\]' "catalogue: as the comparison found"
like "$(field text)" "Comparison $id finished: TEST > PROD" "the plain-text part says it too, in envsync's words"
like "$(field text)" 'cms +2 +0 +0 +1' "with the same table"
done_testing
