#!/usr/bin/env bash
# bench/agent/fork_wait.sh: how long a host's fork() waits for the agent while it builds
# profiles (the fork gate and its fork points, agent-lib/pa_agent.c), the method of
# bench/RESULTS.md "How long a host's fork() waits": tests/programs/agent_fork_latency keeps
# 4,096 (--stacks N, up to 8,192) live allocation stacks at PROFAGENT_MEM_RATE=1, runs one
# CPU-burning thread and forks every 2 ms for S seconds, timing each fork(); meanwhile
# /debug/pprof/heap (gzipped proto: snapshot, symbols, encoding, pack, gzip) is fetched back to
# back from its agent.
#   bench/agent/fork_wait.sh [--rounds R] [--seconds S] [--stacks N] [--build DIR]
#                            [--other-lib DIR] [--keep]
# R rounds (default 3) of S seconds (default 20). With --other-lib DIR (a directory holding
# another build's libprofagent.so.0, e.g. a copy taken before a change) each round runs both,
# alternating which goes first, the other library through LD_LIBRARY_PATH (it takes precedence
# over the program's RUNPATH; the script checks in /proc/PID/maps that it was the one loaded).
# Prints each run's "forks N median_ms p99_ms max_ms over_10ms" line and the heap profiles
# fetched, then the median over rounds of p99, max and the share of forks over 10 ms per
# library. Not a ctest; every process started here is stopped by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=fork_wait.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-abench}
rounds=3
secs=20
stacks=4096
other=""
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --stacks) stacks=$2; shift ;;
    --build) build=$2; shift ;;
    --other-lib) other=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) echo "$me: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$rounds" -ge 1 ] && [ "$rounds" -le 20 ] || { echo "--rounds: 1..20" >&2; exit 2; }
[ "$secs" -ge 2 ] && [ "$secs" -le 120 ] || { echo "--seconds: 2..120" >&2; exit 2; }
[ "$stacks" -ge 1 ] && [ "$stacks" -le 8192 ] || { echo "--stacks: 1..8192" >&2; exit 2; }
[ -z "$other" ] || [ -e "$other/libprofagent.so.0" ] || { echo "--other-lib: no $other/libprofagent.so.0" >&2; exit 2; }

bench_agent_build "$build" profagent agent_fork_latency
prog=$build/tests/programs/agent_fork_latency
bench_workdir fork_wait
echo "# $(bench_build_info "$build"); $stacks stacks; load $(cut -d' ' -f1-3 /proc/loadavg)"

# run LABEL LIBDIR: one run; appends "LABEL p99 max over10share" to $work/results
run()
{
    local label=$1 libdir=$2 sock=$work/agent.sock pid n=0 code line forks
    rm -f "$sock"
    if [ -n "$libdir" ]; then
        bench_start "host-$label" env LD_LIBRARY_PATH="$libdir" PROFAGENT_SOCKET="$sock" \
            PROFAGENT_MEM_RATE=1 "$prog" "$secs" 2 "$stacks" 1
    else
        bench_start "host-$label" env PROFAGENT_SOCKET="$sock" PROFAGENT_MEM_RATE=1 "$prog" "$secs" 2 "$stacks" 1
    fi
    pid=${pids[-1]}
    bench_poll 20 grep -qs '^ready' "$work/host-$label.log" || { cat "$work/host-$label.log"; exit 1; }
    bench_poll 10 test -S "$sock" || { echo "$me: no agent socket" >&2; exit 1; }
    if [ -n "$libdir" ] && ! grep -q "$libdir/libprofagent" "/proc/$pid/maps"; then
        echo "$me: $libdir/libprofagent.so.0 was not the library loaded" >&2
        exit 1
    fi
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 100000 ]; do
        code=$(curl -s -m 30 --unix-socket "$sock" -o /dev/null -w '%{http_code}' \
            "http://agent/debug/pprof/heap" || true)
        [ "$code" = 200 ] && n=$((n + 1))
    done
    bench_stop "$pid" || true
    line=$(grep '^forks' "$work/host-$label.log" || echo "forks 0")
    echo "$label: $line; heap profiles $n; $(grep '^children' "$work/host-$label.log")"
    forks=$(echo "$line" | awk '{print $2}')
    echo "$line" | awk -v l="$label" -v f="$forks" '{ printf "%s %s %s %.2f\n", l, $6, $8, (f > 0 ? 100 * $10 / f : 0) }' \
        >>"$work/results"
}

: >"$work/results"
for r in $(seq 1 "$rounds"); do
    if [ -n "$other" ] && [ $((r % 2)) = 0 ]; then
        run other "$other"
        run this ""
    else
        run this ""
        [ -z "$other" ] || run other "$other"
    fi
done
echo
for label in this other; do
    grep -q "^$label " "$work/results" || continue
    p99=$(awk -v l=$label '$1 == l {print $2}' "$work/results" | bench_median)
    max=$(awk -v l=$label '$1 == l {print $3}' "$work/results" | bench_median)
    over=$(awk -v l=$label '$1 == l {print $4}' "$work/results" | bench_median)
    lib=$build/agent-lib
    [ $label = other ] && lib=$other
    echo "$label ($lib): median of $rounds rounds: fork p99 $p99 ms, max $max ms, forks over 10 ms $over%"
done
