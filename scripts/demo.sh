#!/usr/bin/env bash
# Demonstration of qmux: starts an upstream kdb+ on 127.0.0.1:5001 (a real q when one is
# on PATH, otherwise the project's stand-in), qmux on 127.0.0.1:5010 with conf/qmux.conf,
# then runs a slow query, a large table and small queries from separate clients in
# parallel through qmux and prints each client's latency.
#
# It first installs missing Debian packages (scripts/install-deps.sh) and builds.
#
# Usage: scripts/demo.sh [--keep]
#   --keep   leave the upstream and qmux running afterwards (stop them with kill; their
#            process ids and logs are printed)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
keep=0
[ "${1:-}" = "--keep" ] && keep=1

if [ "${QMUX_DEMO_SKIP_BUILD:-0}" != 1 ]; then
    "$top/scripts/install-deps.sh"
    make -C "$top" --no-print-directory all
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/qmux-demo.XXXXXX")
upstream_pid=""
qmux_pid=""

cleanup() {
    if [ "$keep" -eq 0 ]; then
        [ -n "$qmux_pid" ] && kill "$qmux_pid" 2>/dev/null || true
        [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null || true
        wait 2>/dev/null || true
    fi
}
trap cleanup EXIT

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
    for _ in $(seq 1 100); do
        port_open "$1" && return 0
        sleep 0.1
    done
    echo "demo: nothing is listening on 127.0.0.1:$1 after 10 s; see the logs in $workdir" >&2
    exit 1
}

for port in 5001 5010; do
    if port_open "$port"; then
        echo "demo: port $port is already in use; stop what runs there (an earlier demo with" \
             "--keep?) and try again" >&2
        exit 1
    fi
done

if command -v q >/dev/null 2>&1; then
    echo "demo: starting kdb+ (q) on 127.0.0.1:5001"
    q "$top/tests/integration/standin.q" -p 5001 >"$workdir/upstream.log" 2>&1 </dev/null &
else
    echo "demo: no q on PATH; starting the stand-in kdb+ server on 127.0.0.1:5001"
    "$build/qmux-standin" -p 5001 >"$workdir/upstream.log" 2>&1 &
fi
upstream_pid=$!
wait_for_port 5001

echo "demo: starting qmux -c conf/qmux.conf (listening on 127.0.0.1:5010)"
"$build/qmux" -c "$top/conf/qmux.conf" 2>"$workdir/qmux.log" &
qmux_pid=$!
wait_for_port 5010

run_timed() {
    local label=$1 expr=$2 start end output
    start=$(date +%s%N)
    output=$("$build/qmux-client" -p 5010 "$expr" | head -c 60)
    end=$(date +%s%N)
    printf '  %-34s %8.1f ms   %s\n' "$label" "$(( (end - start) / 1000 ))e-3" "$output"
}

echo
echo "Three clients at once through qmux (pool of 4 upstream connections):"
{
    run_timed 'slow query: system "sleep 2"' 'system "sleep 2"' &
    sleep 0.1
    run_timed 'large table: 1,000,000 rows' '.standin.table 1000000' &
    sleep 0.1
    run_timed 'small query: til 10' 'til 10' &
    run_timed 'small query: 2+3' '2+3' &
    wait
}

echo
echo "The small queries return in milliseconds while the slow query still runs: each"
echo "client waits only for its own request, not for the ones queued before it."

if [ "$keep" -eq 1 ]; then
    echo
    echo "qmux (pid $qmux_pid) is still running on 127.0.0.1:5010, upstream pid $upstream_pid."
    echo "Connect from q with h:hopen \`:127.0.0.1:5010. Logs: $workdir"
    echo "Stop both with: kill $qmux_pid $upstream_pid"
    trap - EXIT
fi
