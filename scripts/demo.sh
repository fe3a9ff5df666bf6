#!/usr/bin/env bash
# Demonstration of qmux. kdb+ evaluates one request at a time per process, so three
# clients sharing one kdb+ directly wait for each other. The demo starts three upstream
# kdb+ processes on 127.0.0.1:5001..5003 (real q when one is on PATH, otherwise the
# project's stand-in) and qmux on 127.0.0.1:5010 in front of them, then runs a slow query,
# a large table and small queries from separate clients in parallel: first directly
# against one kdb+, then through qmux, printing each client's latency.
# It first installs missing Debian packages (scripts/install-deps.sh) and builds.
#
# Usage: scripts/demo.sh [--keep]
#   --keep   leave the upstreams and qmux running afterwards (their process ids and
#            logs are printed)
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
upstream_pids=()
qmux_pid=""

cleanup() {
    if [ "$keep" -eq 0 ]; then
        [ -n "$qmux_pid" ] && kill "$qmux_pid" 2>/dev/null || true
        for pid in "${upstream_pids[@]+"${upstream_pids[@]}"}"; do
            kill "$pid" 2>/dev/null || true
        done
        wait 2>/dev/null || true
        rm -rf "$workdir"
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

for port in 5001 5002 5003 5010; do
    if port_open "$port"; then
        echo "demo: port $port is already in use; stop what runs there (an earlier demo with" \
             "--keep?) and try again" >&2
        exit 1
    fi
done

upstream_ports=(5001 5002 5003)
if command -v q >/dev/null 2>&1; then
    echo "demo: starting kdb+ (q) on 127.0.0.1:${upstream_ports[*]}"
else
    echo "demo: no q on PATH; starting the stand-in kdb+ server on 127.0.0.1 ports ${upstream_ports[*]}"
fi
for port in "${upstream_ports[@]}"; do
    if command -v q >/dev/null 2>&1; then
        q "$top/tests/integration/standin.q" -p "$port" >"$workdir/upstream-$port.log" 2>&1 </dev/null &
    else
        "$build/qmux-standin" -p "$port" >"$workdir/upstream-$port.log" 2>&1 &
    fi
    upstream_pids+=("$!")
done
for port in "${upstream_ports[@]}"; do
    wait_for_port "$port"
done

# The sample configuration, with the three upstreams, two connections to each, and a
# users file with the one user demo (password demo).
config="$workdir/qmux.conf"
printf 'demo\n' | "$build/qmux-passwd" -i 1000 demo >"$workdir/users"
chmod 600 "$workdir/users"
sed -e 's/^upstreams = .*$/upstreams = ( { host = "127.0.0.1"; port = 5001; }, { host = "127.0.0.1"; port = 5002; }, { host = "127.0.0.1"; port = 5003; } );/' \
    -e 's/^    size = 4; /    size = 2; /' "$top/conf/qmux.conf" >"$config"

echo "demo: starting qmux on 127.0.0.1:5010 with conf/qmux.conf and the three upstreams"
"$build/qmux" -c "$config" 2>"$workdir/qmux.log" &
qmux_pid=$!
wait_for_port 5010

run_timed() {
    local port=$1 label=$2 expr=$3 start end output
    start=$(date +%s%N)
    output=$("$build/qmux-client" -p "$port" -u demo:demo "$expr" | head -c 60)
    end=$(date +%s%N)
    printf '  %-32s %8.1f ms   %s\n' "$label" "$(( (end - start) / 1000 ))e-3" "$output"
}

# Starts the three clients 100 ms apart and prints each as it finishes, then the total.
run_scenario() {
    local port=$1 start end clients=()
    start=$(date +%s%N)
    run_timed "$port" 'slow query: system "sleep 2"' 'system "sleep 2"' &
    clients+=("$!")
    sleep 0.1
    run_timed "$port" 'large table: 1,000,000 rows' '.standin.table 1000000' &
    clients+=("$!")
    sleep 0.1
    run_timed "$port" 'small query: til 10' 'til 10' &
    clients+=("$!")
    wait "${clients[@]}"
    end=$(date +%s%N)
    printf '  %-32s %8.1f ms\n' "all three clients done after" "$(( (end - start) / 1000 ))e-3"
}

echo
echo "Directly against one kdb+ (127.0.0.1:5001): each request waits for the ones before it."
run_scenario 5001

echo
echo "Through qmux (127.0.0.1:5010), pooled over three kdb+ processes:"
run_scenario 5010

echo
echo "Directly, the table and the small query waited for the slow query. Through qmux they"
echo "ran on other kdb+ processes of the pool and returned at once, and all three clients"
echo "were done when the slowest was."

if [ "$keep" -eq 1 ]; then
    echo
    echo "qmux (pid $qmux_pid) is still running on 127.0.0.1:5010, upstream pids ${upstream_pids[*]}."
    echo "Connect from q with h:hopen \`:127.0.0.1:5010:demo:demo, or run"
    echo "  build/qmux-client -p 5010 -u demo:demo 'til 10'"
    echo "Logs and the generated configuration: $workdir"
    echo "Stop them with: kill $qmux_pid ${upstream_pids[*]}"
    trap - EXIT
fi
