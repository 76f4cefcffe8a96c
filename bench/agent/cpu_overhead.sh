#!/usr/bin/env bash
# bench/agent/cpu_overhead.sh: what a running CPU profile at 100 Hz (per-thread timers) costs
# randomstring's throughput, as issue 4 asks (target: <= 1%).
#   bench/agent/cpu_overhead.sh [--runs N] [--seconds S] [--conns C] [--path P] [--hz HZ]
#                               [--build DIR] [--keep]
# Method: one randomstring instance (agent linked in, socket on, as in production) pinned to
# CPU 0, wrk pinned to CPU 1 when there are at least 2 CPUs. N rounds (default 7); each round
# has an "on" run, where /debug/pprof/profile?seconds=S+1 is fetched from the agent's socket
# while `wrk -t1 -cC -dSs` (default 32 connections, 5 s) runs, and an "off" run with no profile,
# the order alternating from round to round so that drift hits both alike; same process, so
# nothing but the profile differs. After a warm-up run each, per-mode medians of Requests/sec
# give ratio = on / off, overhead = 1 - ratio; the server's own CPU time per request
# (/proc/PID/schedstat over each run / wrk's request count) gives a figure that other load on
# the machine disturbs less. Every run is printed, with each "on" profile's sample count (to
# show the profiler ran: about S x 100 x busy fraction). Not a ctest. Every process started
# here is killed by PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=cpu_overhead.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
runs=7
secs=5
conns=32
hz=100
path="/randomstring?n=64"
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --conns) conns=$2; shift ;;
    --path) path=$2; shift ;;
    --hz) hz=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "cpu_overhead.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
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

bench_workdir pg_cpu_overhead

pin_srv=()
pin_wrk=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_srv=(taskset -c 0)
    pin_wrk=(taskset -c 1)
fi

port=$(bench_free_port)
sock=$work/rs.sock
env PROFAGENT_CPU_HZ="$hz" "${pin_srv[@]}" "$build/demo-upstream/randomstring" \
    --listen "127.0.0.1:$port" --agent-socket "$sock" >"$work/rs.log" 2>&1 &
pids+=($!)
srv=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && [ -S "$sock" ] && break
    sleep 0.1
done

# one wrk run, with a CPU profile around it when $1 is "on";
# prints "Requests/sec server-CPU-ns-per-request profile-samples"
run() {
    local c0 c1 prof=0 curl_pid=
    if [ "$1" = on ]; then
        curl -s -m $((secs + 30)) --unix-socket "$sock" -o "$work/cpu.pb.gz" \
            "http://agent/debug/pprof/profile?seconds=$((secs + 1))" &
        curl_pid=$!
        sleep 0.3 # the profile is running before wrk starts
    fi
    c0=$(awk '{ print $1 }' "/proc/$srv/schedstat")
    "${pin_wrk[@]}" wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port$path" >"$work/wrk.txt" 2>&1
    c1=$(awk '{ print $1 }' "/proc/$srv/schedstat")
    if [ -n "$curl_pid" ]; then
        wait "$curl_pid"
        prof=$(go tool pprof -raw "$work/cpu.pb.gz" 2>/dev/null |
            awk '/^Samples:/ { s = 1; next } /^Locations/ { s = 0 } s && $1 ~ /^[0-9]+$/ { n += $1 } END { print n + 0 }')
    fi
    if bench_wrk_failed "$work/wrk.txt"; then
        exit 1
    fi
    awk -v c="$((c1 - c0))" -v p="$prof" '/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
        END { printf "%s %.0f %d\n", rps, c / n, p }' "$work/wrk.txt"
}

export HOME=$work PPROF_TMPDIR=$work
echo "randomstring $path, wrk -t1 -c$conns -d${secs}s, CPU profile at $hz Hz, $runs rounds, pinned: ${pin_srv[*]:-no}"
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
        read -r rps cpu prof < <(run $mode)
        echo "$rps" >>"$work/$mode.rps"
        echo "$cpu" >>"$work/$mode.cpu"
        line="$line $mode=$rps req/s ${cpu} ns/req"
        [ "$mode" = on ] && line="$line ($prof samples)"
        line="$line;"
    done
    echo "$line"
done
on=$(bench_median <"$work/on.rps")
off=$(bench_median <"$work/off.rps")
con=$(bench_median <"$work/on.cpu")
coff=$(bench_median <"$work/off.cpu")
awk -v on="$on" -v off="$off" -v con="$con" -v coff="$coff" -v hz="$hz" 'BEGIN {
    printf "median req/s: CPU profile at %d Hz %.0f, no profile %.0f\n", hz, on, off
    printf "throughput ratio on/off %.4f (overhead %.2f%%)\n", on / off, (1 - on / off) * 100
    printf "median server CPU per request: on %.0f ns, off %.0f ns\n", con, coff
    printf "CPU per request ratio on/off %.4f (overhead %.2f%%)\n", con / coff, (con / coff - 1) * 100 }'
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
