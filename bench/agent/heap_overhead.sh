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
bench_onoff_options "$@"
bench_agent_build "$build" randomstring profagent
bench_workdir pg_heap_overhead
bench_pin

declare -A port pid_of
for mode in on off; do
    port[$mode]=$(bench_free_port)
    rate=524288
    [ "$mode" = off ] && rate=0
    bench_start "$mode" env PROFAGENT_MEM_RATE=$rate "${pin_srv[@]}" "$build/demo-upstream/randomstring" \
        --listen "127.0.0.1:${port[$mode]}" --agent-socket "$work/$mode.sock"
    pid_of[$mode]=${pids[-1]}
done
for mode in on off; do
    bench_wait_port "${port[$mode]}" 10 || exit 1
done

# one wrk run; prints "Requests/sec server-CPU-ns-per-request"
run() {
    bench_wrk_schedstat "${pid_of[$1]}" "http://127.0.0.1:${port[$1]}$path"
}

echo "randomstring $path, wrk -t1 -c$conns -d${secs}s, $runs rounds, pinned: ${pin_srv[*]:-no}"
bench_onoff_rounds run
bench_onoff_summary "heap sampling on (512 KiB)" "off (PROFAGENT_MEM_RATE=0)"
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
