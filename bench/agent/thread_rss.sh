#!/usr/bin/env bash
# thread_rss: VmRSS growth per sampled thread (tests/programs/agent_thread_rss), for the
# agent's per-thread unwind-cache memory (libunwind's unw_backtrace trace cache, 256 KiB per
# thread that has one). For each thread count N and each mode it runs the host once and
# prints its line:
#   none  PROFAGENT_MEM_RATE=0, no CPU profile: the threads' own cost
#   cpu   PROFAGENT_MEM_RATE=0, a CPU profile at PROFAGENT_CPU_HZ=1000 over the whole run
#   heap  heap sampling at the default rate, no CPU profile
#   both  the two
# BURN_MS: CPU milliseconds each thread burns (default 5). Extra environment (e.g. PROFAGENT_UNWIND_CACHES=N) is passed through.
#   bench/agent/thread_rss.sh [BUILD_DIR] [N...]     (default: build, 16 256 1000)
set -u
B=${1:-build}
shift || true
NS=${*:-16 256 1000}
P=$B/tests/programs/agent_thread_rss
[ -x "$P" ] || { echo "no $P: build first" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
unset PROFAGENT_SOCKET
for n in $NS; do
    for mode in none cpu heap both; do
        rm -f "$W/go" "$W/s.sock"
        case $mode in none | cpu) rate=0 ;; *) rate=524288 ;; esac
        PROFAGENT_CPU_HZ=1000 PROFAGENT_MEM_RATE=$rate \
            "$P" --socket "$W/s.sock" --go "$W/go" --threads "$n" --burn-ms "${BURN_MS:-5}" >"$W/out" 2>"$W/err" &
        pid=$!
        for _ in $(seq 100); do [ -S "$W/s.sock" ] && break; sleep 0.1; done
        curl_pid=
        if [ "$mode" = cpu ] || [ "$mode" = both ]; then
            curl -s -m 300 --unix-socket "$W/s.sock" -o /dev/null \
                "http://agent/debug/pprof/profile?seconds=240" &
            curl_pid=$!
            sleep 0.5
        fi
        touch "$W/go"
        wait "$pid"
        rc=$?
        [ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null && wait "$curl_pid" 2>/dev/null
        echo "mode=$mode $(cat "$W/out") rc=$rc $(head -c 300 "$W/err")"
    done
done
