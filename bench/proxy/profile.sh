#!/usr/bin/env bash
# bench/proxy/profile.sh: where profgate's time goes under load, behind the fixed-response
# upstream (bench/proxy/fixed_upstream.c), so that the proxy's own cost is what is sampled.
#   bench/proxy/profile.sh [--tool perf|agent|both] [--workers N] [--seconds S] [--build DIR]
#                          [--keep]
# Starts fixed_upstream and profgate (N workers, default 1, otherwise its defaults), drives
# `wrk -t2 -c64` for S+4 seconds (default S=10) and, during it, profiles profgate for S s:
#   perf:  `perf record -g` on profgate's PID (frame pointers: our code is built with
#          -fno-omit-frame-pointer; Debian's libuv and libc are not, so callers above them
#          may be cut), then `perf report` flat (self) and with children, top entries;
#   agent: profgate started with build-bench/agent-lib/libprofagent.so LD_PRELOADed and
#          PROFAGENT_SOCKET set; `curl --unix-socket SOCK http://agent/debug/pprof/profile
#          ?seconds=S` fetches a CPU profile, printed with `go tool pprof -top` (flat, then
#          -cum). The agent samples at PROFAGENT_CPU_HZ (default 100 Hz).
# The wrk figures of the profiled run are printed too (they are lowered by the profiler).
# Not a ctest. Every process started here is killed by PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=profile.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
tool=both
workers=1
secs=10
while [ $# -gt 0 ]; do
    case "$1" in
    --tool) tool=$2; shift ;;
    --workers) workers=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
case "$tool" in perf | both)
    if ! command -v perf >/dev/null; then
        echo "profile.sh: perf is needed for --tool perf (apt-get install linux-perf), or use --tool agent" >&2
        exit 1
    fi ;;
esac
if [ "$tool" != perf ] && ! command -v go >/dev/null; then
    echo "profile.sh: go (golang-go) is needed for go tool pprof" >&2
    exit 1
fi
bench_build "$build" profgate profagent
bench_workdir pg_proxy_profile
bench_fixed_upstream

up_port=$(bench_free_port)
bench_start upstream "$work/fixed_upstream" --listen "127.0.0.1:$up_port"
bench_wait_http "http://127.0.0.1:$up_port/"

# run_one TOOL: start profgate (with the agent for TOOL=agent), load it, profile it
run_one() {
    local t=$1 port pg sock
    port=$(bench_free_port)
    bench_profgate_conf "$work/profgate-$t.toml" "$workers" "$port" "$up_port"
    if [ "$t" = agent ]; then
        sock=$work/agent.sock
        env LD_PRELOAD="$build/agent-lib/libprofagent.so" PROFAGENT_SOCKET="$sock" \
            "$build/proxy/profgate" --config "$work/profgate-$t.toml" >"$work/profgate-$t.log" 2>&1 &
    else
        "$build/proxy/profgate" --config "$work/profgate-$t.toml" >"$work/profgate-$t.log" 2>&1 &
    fi
    pg=$!
    pids+=("$pg")
    bench_wait_http "http://127.0.0.1:$port/"
    wrk -t2 -c64 -d$((secs + 4))s --latency "http://127.0.0.1:$port/" >"$work/wrk-$t.txt" 2>&1 &
    local wpid=$!
    pids+=("$wpid")
    sleep 2
    echo "## profgate ($workers worker(s)) under wrk -t2 -c64, profiled with $t for $secs s"
    if [ "$t" = perf ]; then
        perf record -g -F 999 -o "$work/perf.data" -p "$pg" -- sleep "$secs" >"$work/perf-record.log" 2>&1
        wait "$wpid" || true
        echo "### perf report --no-children (self time), top 40"
        perf report -i "$work/perf.data" --no-children --stdio --percent-limit 0.7 \
            --sort symbol,dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 || true
        echo "### perf report --sort dso (self time by library)"
        perf report -i "$work/perf.data" --no-children --stdio --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -12 || true
        echo "### perf report --children (inclusive), top 45"
        perf report -i "$work/perf.data" --children --stdio --percent-limit 2 \
            --sort symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45 || true
        echo "### perf report, user-space self time only (profgate, libuv, libc), top 30"
        perf report -i "$work/perf.data" --no-children --stdio --sort symbol,dso -g none \
            --dsos profgate,libuv.so.1.0.0,libc.so.6 2>/dev/null | grep -v '^#' | grep -v '^$' |
            head -30 || true
    else
        curl -sf --max-time $((secs + 20)) --unix-socket "$sock" \
            -o "$work/cpu.pb.gz" "http://agent/debug/pprof/profile?seconds=$secs"
        wait "$wpid" || true
        echo "### go tool pprof -top (flat)"
        go tool pprof -top -nodecount=35 "$work/cpu.pb.gz" 2>/dev/null || true
        echo "### go tool pprof -top -cum"
        go tool pprof -top -cum -nodecount=35 "$work/cpu.pb.gz" 2>/dev/null | tail -n +6 || true
    fi
    echo "### wrk during the profile"
    grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors' "$work/wrk-$t.txt" || true
    bench_stop "$pg"
}

case "$tool" in
perf) run_one perf ;;
agent) run_one agent ;;
both) run_one perf; run_one agent ;;
*) echo "profile.sh: --tool perf|agent|both" >&2; exit 2 ;;
esac
