# Minimal TAP output for the bash end-to-end tests (run with: prove --exec bash test/e2e/*.sh).
#   ok DESC CMD...          passes when CMD succeeds
#   is GOT WANT DESC        passes when GOT = WANT
#   like GOT REGEX DESC     passes when GOT matches the extended regex
#   done_testing            prints the plan; exit status says whether all passed
#   diag MESSAGE...         prints MESSAGE as TAP comment lines ("# ..."), counts nothing
#   bail MESSAGE...         prints "Bail out! MESSAGE" and exits 1 (an EXIT trap still runs)
#   wait_for SECS CMD...    retries CMD every 0.1 s: succeeds once CMD does, fails after SECS
#   cluster_dir             prints the directory of test/cluster.sh's clusters (their logs)
#   kill_deliberately SIGNAL PID
#                           sends SIGNAL (KILL, SIGSEGV, 9...) to a server process of the test
#                           clusters on purpose: first records "PID SIGNAL-NUMBER" in the
#                           clusters' deliberate-kills, so that test/check_server_logs.sh (run by
#                           test/run_all.sh) does not report the "terminated by signal" it causes
tap_count=0
tap_failures=0

tap_result() {   # tap_result PASSED DESC [diagnostic]
    tap_count=$((tap_count + 1))
    if [[ $1 == 1 ]]; then
        echo "ok $tap_count - $2"
    else
        tap_failures=$((tap_failures + 1))
        echo "not ok $tap_count - $2"
        [[ -n ${3:-} ]] && sed 's/^/#   /' <<<"$3"
    fi
    return 0
}

ok() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then tap_result 1 "$desc"; else tap_result 0 "$desc" "$out"; fi
}

is() {
    if [[ $1 == "$2" ]]; then tap_result 1 "$3"
    else tap_result 0 "$3" "got:  $1"$'\n'"want: $2"; fi
}

like() {
    if [[ $1 =~ $2 ]]; then tap_result 1 "$3"
    else tap_result 0 "$3" "got:  $1"$'\n'"want match: $2"; fi
}

done_testing() {
    echo "1..$tap_count"
    [[ $tap_failures -eq 0 ]]
}

diag() {
    printf '%s\n' "$*" | sed 's/^/# /'
}

bail() {
    echo "Bail out! $*"
    exit 1
}

wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

cluster_dir() {
    if [[ -n ${ENVSYNC_CLUSTER_DIR:-} ]]; then echo "$ENVSYNC_CLUSTER_DIR"; return; fi
    local settings   # cluster.sh's default; the socket directory, run/, is inside it
    settings=$("$(dirname "${BASH_SOURCE[0]}")/../cluster.sh" env prod) || return 1
    (eval "$settings" && dirname "$PGHOST")
}

kill_deliberately() {
    local signal=$1 pid=$2 dir
    [[ $signal =~ ^[0-9]+$ ]] || signal=$(kill -l "$signal") || return 1
    dir=$(cluster_dir) || return 1
    echo "$pid $signal" >>"$dir/deliberate-kills" || return 1
    kill -s "$(kill -l "$signal")" "$pid"
}
