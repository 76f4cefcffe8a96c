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
hz=100
bench_onoff_options "$@"
bench_agent_build "$build" randomstring profagent
bench_workdir pg_cpu_overhead
bench_pin

port=$(bench_free_port)
sock=$work/rs.sock
bench_start rs env PROFAGENT_CPU_HZ="$hz" "${pin_srv[@]}" "$build/demo-upstream/randomstring" \
    --listen "127.0.0.1:$port" --agent-socket "$sock"
srv=${pids[-1]}
bench_wait_port "$port" 10 && bench_poll 10 test -S "$sock" ||
    { echo "$me: randomstring did not start (see $work/rs.log)" >&2; exit 1; }

# one wrk run, with a CPU profile around it when $1 is "on";
# prints "Requests/sec server-CPU-ns-per-request profile-samples"
run() {
    local out prof=0 curl_pid=
    if [ "$1" = on ]; then
        curl -s -m $((secs + 30)) --unix-socket "$sock" -o "$work/cpu.pb.gz" \
            "http://agent/debug/pprof/profile?seconds=$((secs + 1))" &
        curl_pid=$!
        sleep 0.3 # the profile is running before wrk starts
    fi
    out=$(bench_wrk_schedstat "$srv" "http://127.0.0.1:$port$path")
    if [ -n "$curl_pid" ]; then
        wait "$curl_pid"
        prof=$(go tool pprof -raw "$work/cpu.pb.gz" 2>/dev/null |
            awk '/^Samples:/ { s = 1; next } /^Locations/ { s = 0 } s && $1 ~ /^[0-9]+$/ { n += $1 } END { print n + 0 }')
    fi
    echo "$out${curl_pid:+ $prof}"
}

export HOME=$work PPROF_TMPDIR=$work
echo "randomstring $path, wrk -t1 -c$conns -d${secs}s, CPU profile at $hz Hz, $runs rounds, pinned: ${pin_srv[*]:-no}"
bench_onoff_rounds run
bench_onoff_summary "CPU profile at $hz Hz" "no profile"
