#!/usr/bin/env bash
# Looks through the server logs of test/cluster.sh's clusters for signs of a crash: a server
# process terminated by a signal, a failed assertion (TRAP:) or a PANIC. Prints each such line
# as LOG:LINE: TEXT, with the DETAIL line that follows it (the statement that was running), and
# exits 1 if there is one; exits 0 when there is none, 2 when there is no log to read.
#
#   test/check_server_logs.sh CLUSTER_DIR    reads CLUSTER_DIR/prod.log and CLUSTER_DIR/test.log
#
# A test that kills a server process on purpose declares it with kill_deliberately (test/lib/
# tap.sh), which appends "PID SIGNAL" to CLUSTER_DIR/deliberate-kills before sending the
# signal. Each such line excuses one "(PID n) was terminated by signal s" of exactly that PID
# and signal number; any other signal, PID, or a second death of the same PID is reported.
# Immediate shutdowns (test/cluster.sh crash) log no such line and need no declaration.
set -uo pipefail
dir=${1:?usage: test/check_server_logs.sh CLUSTER_DIR}
logs=()
for c in prod test; do [[ -f $dir/$c.log ]] && logs+=("$dir/$c.log"); done
if [[ ${#logs[@]} -eq 0 ]]; then
    echo "no server log in $dir (prod.log, test.log)" >&2
    exit 2
fi
awk -v kills="$dir/deliberate-kills" '
    BEGIN {
        while ((getline line < kills) > 0) { split(line, f, " "); excused[f[1] " " f[2]]++ }
    }
    FNR == 1 { name = FILENAME; sub(/.*\//, "", name); last = 0 }
    last && FNR == last + 1 && /DETAIL:  / { print name ":" FNR ": " $0; next }
    { last = 0 }
    /terminated by signal [0-9]+/ {
        if (match($0, /\(PID [0-9]+\) was terminated by signal [0-9]+/)) {
            split(substr($0, RSTART, RLENGTH), w, " ")   # (PID, n), was, terminated, by, signal, s
            key = substr(w[2], 1, length(w[2]) - 1) " " w[7]
            if (excused[key] > 0) { excused[key]--; declared++; next }
        }
        report()
        next
    }
    /(^|[] ])PANIC:  / || /TRAP: [A-Za-z]+\(/ { report() }
    function report() { print name ":" FNR ": " $0; found++; last = FNR }
    END {
        printf "server logs: %d crash line%s, %d declared kill%s seen\n",
            found, found == 1 ? "" : "s", declared, declared == 1 ? "" : "s"
        exit (found > 0)
    }
' "${logs[@]}"
