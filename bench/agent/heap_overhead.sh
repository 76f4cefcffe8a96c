#!/usr/bin/env bash
# bench/agent/heap_overhead.sh: what heap sampling at Go's default rate (512 KiB) costs
# randomstring's throughput, against the same binary with heap sampling off
# (PROFAGENT_MEM_RATE=0), as issue 4 asks (target: <= 2%).
#   bench/agent/heap_overhead.sh [--runs N] [--seconds S] [--conns C] [--path P]
#                                [--build DIR] [--keep]
# Method: two randomstring instances start side by side, identical but for
# PROFAGENT_MEM_RATE (both with their agent socket, as in production), pinned to CPU 0 with
# wrk pinned to CPU 1 when there are at least 2 CPUs. N rounds (default 7); in each, `wrk -t1
# -cC -dSs` (default 32 connections, 5 s) runs against each instance in turn, the order
# alternating from round to round so that drift (thermal, other load) hits both alike. After a
# warm-up run each, the per-instance medians of Requests/sec are compared: ratio = on / off,
# overhead = 1 - ratio. Because throughput on a shared machine moves with everyone else's
# load, the server's own CPU time per request is measured too (/proc/PID/schedstat, ns on CPU,
# over each run, divided by wrk's request count): its median ratio on/off is the figure that
# load does not disturb. Every run's figures are printed. Also prints the sampler's own state
# (from /debug/pprof/heap?debug=1) to show it sampled during the run.
# Then the per-call cost: bench/agent/heap_micro.c (free + malloc of 16..4015 bytes, 5 M
# pairs, thread CPU time) with libprofagent LD_PRELOADed at 512 KiB, at 0, and without the
# agent, alternating, N rounds, medians; plus the cost of one sample (rate 1).
# Not a ctest. Every process started here is killed by PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=heap_overhead.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
runs=7
secs=5
conns=32
path="/randomstring?n=64"
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --conns) conns=$2; shift ;;
    --path) path=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "heap_overhead.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
[ "$secs" -ge 1 ] && [ "$secs" -le 60 ] || { echo "--seconds: 1..60" >&2; exit 2; }

"$src/scripts/install-deps.sh" bench
if [ -f "$build/CMakeCache.txt" ]; then
    bench_no_sanitizer "$build"
fi
bench_build "$build" randomstring profagent
bench_no_sanitizer "$build"

bench_workdir pg_heap_overhead

pin_srv=()
pin_wrk=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_srv=(taskset -c 0)
    pin_wrk=(taskset -c 1)
fi

declare -A port pid_of
for mode in on off; do
    port[$mode]=$(bench_free_port)
    rate=524288
    [ "$mode" = off ] && rate=0
    env PROFAGENT_MEM_RATE=$rate "${pin_srv[@]}" "$build/demo-upstream/randomstring" \
        --listen "127.0.0.1:${port[$mode]}" --agent-socket "$work/$mode.sock" \
        >"$work/$mode.log" 2>&1 &
    pids+=($!)
    pid_of[$mode]=$!
done
for mode in on off; do
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/${port[$mode]}") 2>/dev/null && break
        sleep 0.1
    done
done

cpu_ns() {
    awk '{ print $1 }' "/proc/${pid_of[$1]}/schedstat"
}

# one wrk run; prints "Requests/sec server-CPU-ns-per-request"
run() {
    local c0 c1
    c0=$(cpu_ns "$1")
    "${pin_wrk[@]}" wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:${port[$1]}$path" \
        >"$work/wrk.txt" 2>&1
    c1=$(cpu_ns "$1")
    if bench_wrk_failed "$work/wrk.txt"; then
        exit 1
    fi
    awk -v c="$((c1 - c0))" '/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
        END { printf "%s %.0f\n", rps, c / n }' "$work/wrk.txt"
}

echo "randomstring $path, wrk -t1 -c$conns -d${secs}s, $runs rounds, pinned: ${pin_srv[*]:-no}"
run on >/dev/null # warm-up
run off >/dev/null
: >"$work/on.rps"
: >"$work/off.rps"
: >"$work/on.cpu"
: >"$work/off.cpu"
for i in $(seq 1 "$runs"); do
    if [ $((i % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    line="round $i:"
    for mode in $order; do
        read -r rps cpu < <(run $mode)
        echo "$rps" >>"$work/$mode.rps"
        echo "$cpu" >>"$work/$mode.cpu"
        line="$line $mode=$rps req/s ${cpu} ns/req;"
    done
    echo "$line"
done
on=$(bench_median <"$work/on.rps")
off=$(bench_median <"$work/off.rps")
con=$(bench_median <"$work/on.cpu")
coff=$(bench_median <"$work/off.cpu")
awk -v on="$on" -v off="$off" -v con="$con" -v coff="$coff" 'BEGIN {
    printf "median req/s: heap sampling on (512 KiB) %.0f, off (PROFAGENT_MEM_RATE=0) %.0f\n", on, off
    printf "throughput ratio on/off %.4f (overhead %.2f%%)\n", on / off, (1 - on / off) * 100
    printf "median server CPU per request: on %.0f ns, off %.0f ns\n", con, coff
    printf "CPU per request ratio on/off %.4f (overhead %.2f%%)\n", con / coff, (con / coff - 1) * 100 }'
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sampler state of the 'on' instance:"
curl -s -m 10 --unix-socket "$work/on.sock" "http://agent/debug/pprof/heap?debug=1" |
    grep -E '^heap profile:|^# (SampleRate|Stacks|LiveSamples|Dropped)' || true

cc -O2 -o "$work/heap_micro" "$here/heap_micro.c"
lib=$build/agent-lib/libprofagent.so
micro() { # micro RATE|none: ns per free+malloc pair
    if [ "$1" = none ]; then
        "${pin_srv[@]}" "$work/heap_micro" 5000000
    else
        env LD_PRELOAD="$lib" PROFAGENT_MEM_RATE="$1" "${pin_srv[@]}" "$work/heap_micro" 5000000
    fi
}
: >"$work/m.on"
: >"$work/m.off"
: >"$work/m.none"
for i in $(seq 1 "$runs"); do
    a=$(micro 524288)
    b=$(micro 0)
    c=$(micro none)
    echo "$a" >>"$work/m.on"
    echo "$b" >>"$work/m.off"
    echo "$c" >>"$work/m.none"
    echo "micro round $i: ns per free+malloc: 512 KiB $a, rate 0 $b, no agent $c"
done
one=$(env LD_PRELOAD="$lib" PROFAGENT_MEM_RATE=1 "${pin_srv[@]}" "$work/heap_micro" 500000)
awk -v a="$(bench_median <"$work/m.on")" -v b="$(bench_median <"$work/m.off")" \
    -v c="$(bench_median <"$work/m.none")" -v one="$one" 'BEGIN {
    printf "median ns per free+malloc pair: 512 KiB %.2f, rate 0 %.2f, no agent %.2f\n", a, b, c
    printf "sampling at 512 KiB adds %.2f ns per pair (%.1f%%); the hooks at rate 0 add %.2f ns\n", a - b, (a / b - 1) * 100, b - c
    printf "every allocation sampled (rate 1): %.0f ns per pair\n", one }'
