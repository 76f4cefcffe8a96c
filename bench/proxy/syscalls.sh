#!/usr/bin/env bash
# bench/proxy/syscalls.sh: system calls per proxied request, profgate next to nginx and
# HAProxy, behind bench/proxy/fixed_upstream.c (1 worker each, configured as in run.sh).
#   bench/proxy/syscalls.sh [-n REQUESTS] [-c CONNECTIONS] [--build DIR] [--server-toml 'LINES']
# For each proxy: `strace -c -f -p PID` while `ab -k -c C -n REQUESTS` (C 64, REQUESTS 20000) runs
# through it, then every system call's count divided by REQUESTS. On loopback each write
# carries the whole TCP transmit and the receiver's softirq work, so calls per request is
# what the proxy's CPU cost mostly follows -- and unlike requests/s it does not depend on
# what else the machine is doing. strace slows the proxy down a lot: only the counts mean
# anything here. --server-toml adds LINES to profgate's [server] table (@WORK@: the run's temp
# dir), as in instructions.sh. Not a ctest; every process started is killed by PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=syscalls.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
server_toml=
nreq=20000
conc=64
while [ $# -gt 0 ]; do
    case "$1" in
    -n) nreq=$2; shift ;;
    -c) conc=$2; shift ;;
    --build) build=$2; shift ;;
    --server-toml) server_toml=$2; shift ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "syscalls.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
if ! command -v strace >/dev/null; then
    echo "syscalls.sh: strace is needed (apt-get install strace)" >&2
    exit 1
fi
bench_build "$build" profgate
bench_workdir pg_proxy_syscalls
bench_fixed_upstream

up=$(bench_free_port)
bench_start upstream "$work/fixed_upstream" --listen "127.0.0.1:$up"
bench_wait_http "http://127.0.0.1:$up/"

pg_port=$(bench_free_port)
bench_profgate_conf "$work/profgate.toml" 1 "$pg_port" "$up" "${server_toml//@WORK@/$work}"
bench_start profgate "$build/proxy/profgate" --config "$work/profgate.toml"
pg_pid=${pids[-1]}

ng_port=$(bench_free_port)
ng_conf=$(bench_nginx_conf 1 "$ng_port" "$up")
bench_start nginx nginx -p "$(dirname "$ng_conf")" -e "$(dirname "$ng_conf")/error.log" -c "$ng_conf"
ng_pid=${pids[-1]}

ha_port=$(bench_free_port)
bench_haproxy_conf "$work/haproxy.cfg" 1 "$ha_port" "$up"
bench_start haproxy haproxy -db -f "$work/haproxy.cfg"
ha_pid=${pids[-1]}

# count NAME PORT PID...: strace the PIDs (threads included) during ab
count() {
    local name=$1 port=$2 spid
    shift 2
    bench_wait_http "http://127.0.0.1:$port/"
    ab -k -c "$conc" -n 2000 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true # warm the pools
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    strace -c -f -o "$work/$name.strace" "${args[@]}" 2>/dev/null &
    spid=$!
    sleep 1
    ab -k -c "$conc" -n "$nreq" "http://127.0.0.1:$port/" >"$work/$name.ab" 2>&1 || true
    sleep 0.3
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    local failed
    failed=$(awk '/^Failed requests:/ { print $3 }' "$work/$name.ab")
    awk -v n="$nreq" -v name="$name" -v failed="${failed:-?}" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 {
            calls = $4; sc = $NF
            if (sc == "total") { total = calls; next }
            line[sc] = calls
        }
        END {
            printf "%s: %.2f system calls per request (ab failed requests: %s):", name,
                total / n, failed
            for (s in line) if (line[s] / n >= 0.01) printf " %s %.2f", s, line[s] / n
            printf "\n"
        }' "$work/$name.strace"
}

echo "# system calls per request, ab -k -c $conc -n $nreq, fixed 13-byte upstream, 1 worker each"
count profgate "$pg_port" "$pg_pid"
count nginx "$ng_port" $(ps -o pid= --ppid "$ng_pid")
count haproxy "$ha_port" "$ha_pid"
