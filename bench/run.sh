#!/usr/bin/env bash
# bench/run.sh - runs the qmux benchmarks: starts stand-in kdb+ servers and qmux on free
# loopback ports with generated configurations, runs each scenario directly against the
# upstream and through qmux, and prints a table of both with their ratio. docs/benchmarks.md
# describes the scenarios and the targets.
#
# Usage: bench/run.sh           (as `make bench` runs it, after building)
# Environment:
#   QMUX_BUILD_DIR   folder with qmux, qmux-standin and qmux-bench (default: build)
#   BENCH_QUICK=1    one round of shorter runs (about 30 s) instead of two rounds
#   BENCH_LARGE=1    also a codec round trip of 4.5 GiB, past the 8-byte size field of
#                    messages of 4 GiB and more (needs about 12 GiB of free memory)
#   BENCH_ROUNDS=N   rounds; each round runs every scenario once directly and once
#                    through qmux, and even rounds run qmux first
#   BENCH_CALLGRIND=0  skip the instruction count under valgrind
#
# Writes build/bench/results.csv (one row per table row), build/bench/table.txt and the
# callgrind profile build/bench/callgrind-annotate.txt.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${QMUX_BUILD_DIR:-$top/build}
out=$build/bench
bench=$build/qmux-bench
quick=${BENCH_QUICK:-0}

if [ "$quick" = 1 ]; then
    rounds=${BENCH_ROUNDS:-1}
    duration=2
    warmup=0.5
    codec_mib=16
    callgrind_requests=2000
    s1_reps=3
    s1_duration=0.5
    s1_warmup=0.2
else
    rounds=${BENCH_ROUNDS:-2}
    duration=5
    warmup=1
    codec_mib=64
    callgrind_requests=10000
    s1_reps=5
    s1_duration=1
    s1_warmup=0.3
fi
idle_clients=10000
big_expr='til 134217728'          # 2^27 longs: a 1 GiB response
mixed_slow='system "sleep 1"'
mixed_table='.standin.table 1000000'
mixed_small='til 10'

for program in qmux qmux-standin qmux-bench; do
    if [ ! -x "$build/$program" ]; then
        echo "bench: $build/$program is missing; run make bench (or make all build/qmux-bench)" >&2
        exit 1
    fi
done

# 10,000 idle clients need 10,000 descriptors in qmux-bench and as many in the server.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_clients + 100)) ]; then
    echo "bench: the open-file hard limit is $(ulimit -Hn), below the $idle_clients idle" \
         "clients of scenario 4; raise it (ulimit -Hn, LimitNOFILE) and run again" >&2
    exit 1
fi

mkdir -p "$out"
run_started=$(date +%s)
workdir=$(mktemp -d "${TMPDIR:-/tmp}/qmux-bench.XXXXXX")
started_pids=()

# Stops every process this script started. The logs stay in $workdir after a failure.
cleanup() {
    local status=$?
    for pid in "${started_pids[@]+"${started_pids[@]}"}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$status" -eq 0 ]; then
        rm -rf "$workdir"
    else
        echo "bench: logs of the servers are in $workdir" >&2
    fi
}
trap cleanup EXIT

csv=$out/results.csv
table=$out/table.txt
echo "round,scenario,metric,unit,direct,qmux,ratio,target,result,load_direct,load_qmux" >"$csv"
: >"$table"

load1() {
    cut -d' ' -f1 /proc/loadavg
}

# Prints the value of key in a line of key=value pairs.
field() {
    local line=" $1" key=$2
    sed -n "s/.* $key=\([^ ]*\).*/\1/p" <<<"$line"
}

status_kib() {
    awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

# CPU time of a process (user + system) in microseconds.
cpu_us() {
    local ticks
    ticks=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    echo $((ticks * 1000000 / $(getconf CLK_TCK)))
}

# Starts a stand-in; sets standin_port and standin_pid.
start_standin() {
    local name=$1
    "$build/qmux-standin" -p 0 -q >"$workdir/$name.out" 2>"$workdir/$name.log" &
    standin_pid=$!
    started_pids+=("$standin_pid")
    for _ in $(seq 1 100); do
        if grep -q 'listening on' "$workdir/$name.out" 2>/dev/null; then
            standin_port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$workdir/$name.out")
            return 0
        fi
        sleep 0.05
    done
    echo "bench: the stand-in $name did not start; see $workdir/$name.log" >&2
    exit 1
}

# Starts qmux with pool.size $2 in front of the upstream ports $3...; sets qmux_port and
# qmux_pid. QMUX_WRAPPER (an array) may hold a command to run qmux under, such as valgrind.
start_qmux() {
    local name=$1 pool_size=$2
    shift 2
    local upstreams="" port
    for port in "$@"; do
        upstreams+="${upstreams:+, }{ host = \"127.0.0.1\"; port = $port; }"
    done
    qmux_port=$("$bench" port)
    cat >"$workdir/$name.conf" <<EOF
listen = { address = "127.0.0.1"; port = $qmux_port; anonymous = true; };
pool = { size = $pool_size; };
upstreams = ( $upstreams );
clients = { max_clients = 20000; };
log = { level = "info"; };
EOF
    "${QMUX_WRAPPER[@]+"${QMUX_WRAPPER[@]}"}" "$build/qmux" -c "$workdir/$name.conf" \
        2>"$workdir/$name.log" &
    qmux_pid=$!
    started_pids+=("$qmux_pid")

    local expected=$((pool_size * $#)) tries=${QMUX_START_TRIES:-200}
    for _ in $(seq 1 "$tries"); do
        if [ "$(grep -c 'connected, capability' "$workdir/$name.log" 2>/dev/null)" -ge "$expected" ]; then
            return 0
        fi
        if ! kill -0 "$qmux_pid" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    echo "bench: qmux $name did not log in to its $expected upstream connections; see" \
         "$workdir/$name.log" >&2
    exit 1
}

stop_process() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

ratio() {
    awk -v d="$1" -v q="$2" 'BEGIN {
        if (d + 0 > 0 && q != "" && q != "-") printf "%.2f", q / d; else printf "-" }'
}

# Adds one row to the table and the CSV: round scenario metric unit direct qmux target
# result load_direct load_qmux.
row() {
    local round=$1 scenario=$2 metric=$3 unit=$4 direct=$5 qmux=$6 target=$7 result=$8
    local load_direct=$9 load_qmux=${10} r
    r=$(ratio "$direct" "$qmux")
    printf '%-2s %-22s %-26s %12s %12s %7s  %-28s %-8s %s/%s\n' "$round" "$scenario" \
        "$metric ($unit)" "$direct" "$qmux" "$r" "$target" "$result" "$load_direct" \
        "$load_qmux" | tee -a "$table"
    echo "$round,$scenario,$metric,$unit,$direct,$qmux,$r,\"$target\",$result,$load_direct,$load_qmux" >>"$csv"
}

# Returns "met" or "MISSED" for an awk condition over d and q.
verdict() {
    awk -v d="$1" -v q="$2" "BEGIN { if ($3) print \"met\"; else print \"MISSED\" }"
}

# Runs qmux-bench with "$@" against the direct port and the qmux port in the order of the
# round; sets direct_line, qmux_line, load_direct, load_qmux, qmux_cpu_us.
run_pair() {
    local round=$1 direct_port=$2 via_port=$3
    shift 3
    local first second
    if [ $((round % 2)) -eq 1 ]; then first=direct; second=qmux; else first=qmux; second=direct; fi
    for path in $first $second; do
        if [ "$path" = direct ]; then
            load_direct=$(load1)
            direct_line=$("$bench" "$@" -p "$direct_port") ||
                echo "bench: direct run of qmux-bench $* reported failures (above)" >&2
        else
            load_qmux=$(load1)
            local cpu_before
            cpu_before=$(cpu_us "$pair_qmux_pid")
            qmux_line=$("$bench" "$@" -p "$via_port") ||
                echo "bench: qmux run of qmux-bench $* reported failures (above)" >&2
            qmux_cpu_us=$(( $(cpu_us "$pair_qmux_pid") - cpu_before ))
        fi
    done
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
        else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

set_affinity() {
    local cpus=$1 pid
    for pid in "$single_pid" "$pool4_pid" "$relay_pid"; do
        taskset -pc "$cpus" "$pid" >/dev/null
    done
}

# Scenario 1: one client sending `2+3` directly, through the minimal relay and through
# qmux, in s1_reps short runs whose order rotates. $3 is "" or "taskset -c 0", which pins
# qmux-bench and (for the runs) the stand-in, qmux and the relay to CPU 0.
measure_single_client() {
    local round=$1 name=$2 pin=$3 rep path line cpu_before
    local -A p50 p99 rps
    local qmux_cpu=0 qmux_requests=0 paths=(direct relay qmux)
    [ -n "$pin" ] && set_affinity 0
    local load_before
    load_before=$(load1)
    for rep in $(seq 1 "$s1_reps"); do
        for k in 0 1 2; do
            path=${paths[$(( (rep + k) % 3 ))]}
            case $path in
                direct) port=$single_port ;;
                relay) port=$relay_port ;;
                qmux) port=$pool4_port; cpu_before=$(cpu_us "$pool4_pid") ;;
            esac
            line=$($pin "$bench" load -p "$port" -c 1 -e '2+3' --expect-long 5 \
                -d "$s1_duration" -w "$s1_warmup") ||
                echo "bench: scenario 1 ($path) reported failures (above)" >&2
            p50[$path]+="$(field "$line" p50_us) "
            p99[$path]+="$(field "$line" p99_us) "
            rps[$path]+="$(field "$line" rps) "
            if [ "$path" = qmux ]; then
                qmux_cpu=$((qmux_cpu + $(cpu_us "$pool4_pid") - cpu_before))
                qmux_requests=$(awk -v n="$qmux_requests" -v r="$(field "$line" rps)" \
                    -v t="$(awk -v d="$s1_duration" -v w="$s1_warmup" 'BEGIN { print d + w }')" \
                    'BEGIN { printf "%.0f", n + r * t }')
            fi
        done
    done
    local load_after
    load_after=$(load1)
    [ -n "$pin" ] && set_affinity "0-$(($(nproc) - 1))"

    local d50 q50 r50 added
    d50=$(tr ' ' '\n' <<<"${p50[direct]}" | median)
    q50=$(tr ' ' '\n' <<<"${p50[qmux]}" | median)
    r50=$(tr ' ' '\n' <<<"${p50[relay]}" | median)
    added=$(awk -v d="$d50" -v q="$q50" 'BEGIN { printf "%.1f", q - d }')
    row "$round" "$name" "p50 latency" us "$d50" "$q50" "added <= 25 us" \
        "$(verdict "$d50" "$q50" 'q - d <= 25') (+$added)" "$load_before" "$load_after"
    row "$round" "$name" "p50 via minimal relay" us "$d50" "$r50" "- (reference)" \
        "+$(awk -v d="$d50" -v q="$r50" 'BEGIN { printf "%.1f", q - d }')" \
        "$load_before" "$load_after"
    row "$round" "$name" "p99 latency" us "$(tr ' ' '\n' <<<"${p99[direct]}" | median)" \
        "$(tr ' ' '\n' <<<"${p99[qmux]}" | median)" "-" "-" "$load_before" "$load_after"
    row "$round" "$name" "throughput" "req/s" "$(tr ' ' '\n' <<<"${rps[direct]}" | median)" \
        "$(tr ' ' '\n' <<<"${rps[qmux]}" | median)" "-" "-" "$load_before" "$load_after"
    row "$round" "$name" "qmux CPU per request" us "-" \
        "$(awk -v c="$qmux_cpu" -v n="$qmux_requests" 'BEGIN { printf "%.1f", (n > 0) ? c / n : 0 }')" \
        "-" "-" "$load_before" "$load_after"
}

header() {
    printf '%-2s %-22s %-26s %12s %12s %7s  %-28s %-8s %s\n' "rd" "scenario" "metric" \
        "direct" "qmux" "q/d" "target" "result" "load d/q"
}

echo "bench: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $rounds" \
     "round(s), ${duration} s per load run"
header | tee -a "$table"

# Scenarios 1 and 2 share one stand-in, reached directly or through qmux's 4 connections.
start_standin single
single_port=$standin_port
single_pid=$standin_pid
start_qmux pool4 4 "$single_port"
pool4_port=$qmux_port
pool4_pid=$qmux_pid
relay_port=$("$bench" port)
"$bench" relay -p "$relay_port" --to "$single_port" >"$workdir/relay.out" 2>"$workdir/relay.log" &
relay_pid=$!
started_pids+=("$relay_pid")
for _ in $(seq 1 100); do
    grep -q 'listening on' "$workdir/relay.out" 2>/dev/null && break
    sleep 0.05
done

# Scenario 5 uses three more stand-ins behind qmux with pool.size 2, as the README demo.
start_standin mixed1
mixed_ports=("$standin_port")
start_standin mixed2
mixed_ports+=("$standin_port")
start_standin mixed3
mixed_ports+=("$standin_port")
start_qmux mixed 2 "${mixed_ports[@]}"
mixed_qmux_port=$qmux_port
mixed_qmux_pid=$qmux_pid

for round in $(seq 1 "$rounds"); do
    # 1. One client, `2+3`: latency added per request, unpinned and then with every process
    # on CPU 0. Each is a series of short runs that rotate between the paths, and the
    # medians of the runs count.
    measure_single_client "$round" "1 one client 2+3" ""
    if [ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null; then
        measure_single_client "$round" "1 pinned to CPU 0" "taskset -c 0"
    fi

    # 2. 64 and 1,000 clients, one stand-in: directly, or through qmux's pool of 4.
    pair_qmux_pid=$pool4_pid
    for clients in 64 1000; do
        run_pair "$round" "$single_port" "$pool4_port" load -c "$clients" -e '2+3' \
            --expect-long 5 -d "$duration" -w "$warmup" --timeout 300
        name="2 $clients clients 2+3"
        d=$(field "$direct_line" rps); q=$(field "$qmux_line" rps)
        if [ "$clients" = 64 ]; then
            row "$round" "$name" "throughput" "req/s" "$d" "$q" "q/d >= 0.8" \
                "$(verdict "$d" "$q" 'q / d >= 0.8')" "$load_direct" "$load_qmux"
            # The minimal relay, one upstream connection per client, as a reference.
            load_relay=$(load1)
            relay_line=$("$bench" load -p "$relay_port" -c "$clients" -e '2+3' \
                --expect-long 5 -d "$duration" -w "$warmup") ||
                echo "bench: the run through the minimal relay reported failures (above)" >&2
            row "$round" "$name" "throughput via relay" "req/s" "$d" \
                "$(field "$relay_line" rps)" "- (reference)" "-" "$load_direct" "$load_relay"
        else
            row "$round" "$name" "throughput" "req/s" "$d" "$q" "-" "-" "$load_direct" "$load_qmux"
        fi
        row "$round" "$name" "p50 latency" us "$(field "$direct_line" p50_us)" \
            "$(field "$qmux_line" p50_us)" "-" "-" "$load_direct" "$load_qmux"
        d99=$(field "$direct_line" p99_us); q99=$(field "$qmux_line" p99_us)
        if [ "$clients" = 1000 ]; then
            q50=$(field "$qmux_line" p50_us)
            row "$round" "$name" "p99 latency" us "$d99" "$q99" "qmux p99 <= 3 x p50" \
                "$(verdict "$q50" "$q99" 'q <= 3 * d') ($(ratio "$q50" "$q99")x)" \
                "$load_direct" "$load_qmux"
        else
            row "$round" "$name" "p99 latency" us "$d99" "$q99" "-" "-" "$load_direct" "$load_qmux"
        fi
        row "$round" "$name" "p99.9 latency" us "$(field "$direct_line" p999_us)" \
            "$(field "$qmux_line" p999_us)" "-" "-" "$load_direct" "$load_qmux"
        row "$round" "$name" "qmux CPU per request" us "-" \
            "$(awk -v c="$qmux_cpu_us" -v r="$q" -v d="$duration" -v w="$warmup" \
                'BEGIN { printf "%.1f", (r > 0) ? c / (r * (d + w)) : 0 }')" "-" "-" \
            "$load_direct" "$load_qmux"
    done

    # 3. One 1 GiB response, through a fresh qmux so its VmHWM covers this run only.
    start_standin "big$round"
    big_port=$standin_port
    big_standin_pid=$standin_pid
    start_qmux "big$round" 4 "$big_port"
    pair_qmux_pid=$qmux_pid
    run_pair "$round" "$big_port" "$qmux_port" load -n 1 -e "$big_expr" --timeout 300
    d=$(field "$direct_line" mbps); q=$(field "$qmux_line" mbps)
    row "$round" "3 one 1 GiB response" "throughput" "MB/s" "$d" "$q" "q/d >= 0.9" \
        "$(verdict "$d" "$q" 'q / d >= 0.9')" "$load_direct" "$load_qmux"
    hwm_standin=$(status_kib "$big_standin_pid" VmHWM)
    hwm_qmux=$(status_kib "$qmux_pid" VmHWM)
    row "$round" "3 one 1 GiB response" "peak RSS VmHWM" KiB "$hwm_standin" "$hwm_qmux" \
        "qmux < 64 MiB" "$(verdict 0 "$hwm_qmux" 'q < 65536')" "$load_direct" "$load_qmux"
    stop_process "$qmux_pid"
    stop_process "$big_standin_pid"

    # 4. 10,000 idle clients: RSS per client, of qmux and (for comparison) the stand-in.
    start_standin "idle$round"
    idle_standin_pid=$standin_pid
    idle_standin_port=$standin_port
    start_qmux "idle$round" 4 "$idle_standin_port"
    load_direct=$(load1)
    direct_line=$("$bench" idle -p "$idle_standin_port" -c "$idle_clients" \
        --pid "$idle_standin_pid") || echo "bench: idle clients: failures (above)" >&2
    load_qmux=$(load1)
    qmux_line=$("$bench" idle -p "$qmux_port" -c "$idle_clients" --pid "$qmux_pid") ||
        echo "bench: idle clients through qmux: failures (above)" >&2
    q=$(field "$qmux_line" rss_per_client_bytes)
    row "$round" "4 $idle_clients idle clients" "RSS per client" bytes \
        "$(field "$direct_line" rss_per_client_bytes)" "$q" "qmux <= 4096 bytes" \
        "$(verdict 0 "$q" 'q <= 4096')" "$load_direct" "$load_qmux"
    row "$round" "4 $idle_clients idle clients" "clients logged in" count \
        "$(field "$direct_line" connected)" "$(field "$qmux_line" connected)" "-" "-" \
        "$load_direct" "$load_qmux"
    stop_process "$qmux_pid"
    stop_process "$idle_standin_pid"

    # 5. The README demo: slow query, large table and three small queries from separate
    # clients. Directly they share one stand-in; through qmux, three stand-ins.
    jobs=(-j "0:$mixed_slow" -j "20:$mixed_table" -j "40:$mixed_small"
          -j "40:$mixed_small" -j "40:$mixed_small")
    pair_qmux_pid=$mixed_qmux_pid
    run_pair "$round" "${mixed_ports[0]}" "$mixed_qmux_port" mixed "${jobs[@]}"
    # Each path alone through qmux: its start delay plus its latency without other clients.
    alone_slow=$(field "$("$bench" mixed -p "$mixed_qmux_port" -j "0:$mixed_slow")" job1_ms)
    alone_table=$(field "$("$bench" mixed -p "$mixed_qmux_port" -j "0:$mixed_table")" job1_ms)
    alone_small=$(field "$("$bench" mixed -p "$mixed_qmux_port" -j "0:$mixed_small")" job1_ms)
    slowest=$(awk -v a="$alone_slow" -v b="$alone_table" -v c="$alone_small" \
        'BEGIN { m = a; if (20 + b > m) m = 20 + b; if (40 + c > m) m = 40 + c; printf "%.1f", m }')
    sum=$(awk -v a="$alone_slow" -v b="$alone_table" -v c="$alone_small" \
        'BEGIN { printf "%.1f", a + b + 3 * c }')
    d=$(field "$direct_line" total_ms); q=$(field "$qmux_line" total_ms)
    row "$round" "5 mixed (demo)" "all clients done" ms "$d" "$q" \
        "q <= 1.1 x slowest $slowest" "$(verdict "$slowest" "$q" 'q <= 1.1 * d')" \
        "$load_direct" "$load_qmux"
    row "$round" "5 mixed (demo)" "sum of paths alone" ms "-" "$sum" "-" "-" "$load_direct" "$load_qmux"
    row "$round" "5 mixed (demo)" "slow query latency" ms "$(field "$direct_line" job1_ms)" \
        "$(field "$qmux_line" job1_ms)" "-" "-" "$load_direct" "$load_qmux"
    row "$round" "5 mixed (demo)" "table latency" ms "$(field "$direct_line" job2_ms)" \
        "$(field "$qmux_line" job2_ms)" "-" "-" "$load_direct" "$load_qmux"
    for job in 3 4 5; do
        row "$round" "5 mixed (demo)" "small query $((job - 2)) latency" ms \
            "$(field "$direct_line" job${job}_ms)" "$(field "$qmux_line" job${job}_ms)" "-" "-" \
            "$load_direct" "$load_qmux"
    done

    # 6. The codec alone, in this process: no direct/qmux pair.
    load_codec=$(load1)
    while read -r line; do
        payload=$(field "$line" payload)
        row "$round" "6 codec $payload" "compress" "MB/s" "-" "$(field "$line" compress_mbps)" \
            "-" "-" "-" "$load_codec"
        dmbps=$(field "$line" decompress_mbps)
        if [ "$dmbps" = na ]; then
            row "$round" "6 codec $payload" "decompress" "MB/s" "-" "-" \
                "incompressible: not sent" "-" "-" "$load_codec"
        else
            row "$round" "6 codec $payload" "decompress" "MB/s" "-" "$dmbps" ">= 1000 MB/s" \
                "$(verdict 0 "$dmbps" 'q >= 1000')" "-" "$load_codec"
        fi
        row "$round" "6 codec $payload" "compressed/original" ratio "-" "$(field "$line" ratio)" \
            "-" "-" "-" "$load_codec"
    done < <("$bench" codec -s "$codec_mib")
done

if [ "${BENCH_LARGE:-0}" = 1 ]; then
    echo "codec round trip of 4.5 GiB (BENCH_LARGE=1):"
    "$bench" codec -s 4608 -r 1
fi

# Instructions qmux executes per small request, from two runs under callgrind that differ
# only in the request count, so start-up, login and shutdown cancel out. Callgrind counts
# user-space instructions only, not the kernel's work in the socket calls.
total_ir() {
    sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$1" | head -1
}

if [ "${BENCH_CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
    irs=()
    for requests in 1000 $((1000 + callgrind_requests)); do
        QMUX_WRAPPER=(valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$requests.out")
        QMUX_START_TRIES=600 start_qmux "callgrind$requests" 1 "$single_port"
        unset QMUX_WRAPPER
        load_qmux=$(load1)
        "$bench" load -p "$qmux_port" -c 1 -n "$requests" -e '2+3' --expect-long 5 >/dev/null ||
            echo "bench: the callgrind run reported failures (above)" >&2
        stop_process "$qmux_pid"
        irs+=("$(total_ir "$out/callgrind.$requests.out")")
    done
    per_request=$(awk -v a="${irs[0]}" -v b="${irs[1]}" -v n="$callgrind_requests" \
        'BEGIN { printf "%.0f", (b - a) / n }')
    callgrind_annotate "$out/callgrind.$((1000 + callgrind_requests)).out" \
        >"$out/callgrind-annotate.txt" 2>/dev/null || true
    row "-" "instructions (callgrind)" "per 2+3 request" instr "-" "$per_request" "-" "-" \
        "-" "$load_qmux"
elif [ "${BENCH_CALLGRIND:-1}" = 1 ]; then
    echo "bench: valgrind is missing; skipping the instruction count (scripts/install-deps.sh" \
         "installs it)" >&2
fi

echo
echo "Summary (ratio = qmux / direct; load = 1-minute load average before the direct and"
echo "the qmux run; MB = 10^6 bytes):"
header
cat "$table" | tail -n +2
echo
echo "bench: wrote $csv and $table in $(( $(date +%s) - run_started )) s"
