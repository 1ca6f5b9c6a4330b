#!/usr/bin/env bash
# Test of test/check_server_logs.sh and of kill_deliberately (test/lib/tap.sh), on server logs
# written here, in the format PostgreSQL 15 logs crashes in. TAP: prove --exec bash THIS
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/test/lib/tap.sh"
scan=$repo/test/check_server_logs.sh
dir=$(mktemp -d /tmp/envsync-log-scan.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export ENVSYNC_CLUSTER_DIR=$dir

# scan: the scanner's output, then its exit status on a line of its own.
scan() { bash "$scan" "$dir" 2>&1; echo "exit $?"; }
at() { echo "2026-12-01 21:44:20.023 UTC [17788] $*"; }

is "$(scan)" "no server log in $dir (prod.log, test.log)
exit 2" "no log at all is an error, not a clean bill"

{
    at "LOG:  database system is ready to accept connections"
    at "LOG:  received immediate shutdown request"
    at "LOG:  database system was not properly shut down; automatic recovery in progress"
    at 'LOG:  background worker "pg_cron launcher" (PID 12780) exited with exit code 1'
    at "STATEMENT:  SELECT 'PANIC:  not a severity'"
} >"$dir/prod.log"
is "$(scan)" "server logs: 0 crash lines, 0 declared kills seen
exit 0" "a log with immediate shutdowns, recovery and ordinary exits is clean"

sleep 60 &
victim=$!
ok "kill_deliberately sends the signal" kill_deliberately KILL "$victim"
{ wait "$victim"; } 2>/dev/null   # without bash's "Killed" notice
is "$?" 137 "the process died of SIGKILL"
is "$(cat "$dir/deliberate-kills")" "$victim 9" "and the kill is declared with PID and signal number"

{
    at "LOG:  server process (PID $victim) was terminated by signal 9: Killed"
    at "DETAIL:  Failed process was running: SELECT pg_sleep(30)"
} >>"$dir/prod.log"
{
    at "LOG:  server process (PID 4242) was terminated by signal 11: Segmentation fault"
    at "DETAIL:  Failed process was running: SELECT envsync.crash()"
    at "LOG:  terminating any other active server processes"
} >"$dir/test.log"
is "$(scan)" "test.log:1: 2026-12-01 21:44:20.023 UTC [17788] LOG:  server process (PID 4242) was terminated by signal 11: Segmentation fault
test.log:2: 2026-12-01 21:44:20.023 UTC [17788] DETAIL:  Failed process was running: SELECT envsync.crash()
server logs: 1 crash line, 1 declared kill seen
exit 1" "a segfault fails the scan, named with its statement; the declared kill does not"

: >"$dir/test.log"
is "$(scan)" "server logs: 0 crash lines, 1 declared kill seen
exit 0" "the declared kill alone passes"

{
    at "LOG:  server process (PID $victim) was terminated by signal 9: Killed"
    at "LOG:  server process (PID ${victim}0) was terminated by signal 9: Killed"
    at "LOG:  background worker \"envsync\" (PID $victim) was terminated by signal 6: Aborted"
} >>"$dir/test.log"
like "$(scan)" "^test.log:1: .*\(PID $victim\) was terminated by signal 9: Killed
test.log:2: .*\(PID ${victim}0\) was terminated by signal 9: Killed
test.log:3: .*\(PID $victim\) was terminated by signal 6: Aborted
server logs: 3 crash lines, 1 declared kill seen
exit 1$" "a declaration excuses one death of that PID by that signal: not a second one, another PID or signal"

printf '%s\n' 'TRAP: FailedAssertion("tupdesc != NULL", File: "track.cpp", Line: 42, PID: 5150)' \
    "$(at "PANIC:  could not write to file \"pg_wal/xlogtemp.17788\": No space left on device")" >"$dir/test.log"
like "$(scan)" "^test.log:1: TRAP: FailedAssertion.*
test.log:2: .* PANIC:  could not write .*
server logs: 2 crash lines, 1 declared kill seen
exit 1$" "a failed assertion and a PANIC fail the scan"

rm "$dir/prod.log"
like "$(scan)" "exit 1$" "without prod.log, test.log is still read"

done_testing
