#!/usr/bin/env bash
# bench/memory/run.sh: profgate's memory, idle and holding many idle keep-alive client
# connections, next to nginx's (and HAProxy's) in the same setting.
#   bench/memory/run.sh [-n N] [--hold S] [--build DIR] [--keep]
# Behind every server: bench/proxy/fixed_upstream.c. For each of profgate (1 and 2 workers),
# nginx (1 worker, upstream keepalive pool as in bench/proxy/run.sh) and HAProxy (1 thread):
#   idle        VmRSS right after it answers its first request;
#   after load  VmRSS after 2 s of wrk -t2 -c64 (buffer pools and caches warmed up);
#   N conns     hold_conns.c opens N (default 10000) keep-alive connections, one request
#               each, and holds them idle: VmRSS and VmHWM (peak) meanwhile, and how many
#               connections the server served and kept open for the hold (default 10 s).
# RSS is read from /proc/PID/status; for nginx (master + workers) it is the sum over its
# processes, and the proportional set size (Pss, shared pages split) is shown beside it.
# Targets (issue 5): profgate idle <= 16 MiB, N=10000 idle connections <= 64 MiB.
# profgate runs with its defaults (max_connections 10000, idle_timeout 60 s) unless
# PG_MAX_CONNECTIONS is set, in which case server.max_connections is that (one limit shared
# by all workers). A connection still waiting in a kernel accept queue is reported "pending". The descriptor
# limit is raised to the hard limit (10000 connections need ~10020 descriptors). Not a ctest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=run.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
nconns=10000
hold=10
while [ $# -gt 0 ]; do
    case "$1" in
    -n) nconns=$2; shift ;;
    --hold) hold=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
bench_build "$build" profgate
bench_workdir pg_mem_bench

hard=$(bench_raise_nofile)
if [ "$hard" -lt $((nconns + 64)) ]; then
    echo "run.sh: the descriptor hard limit ($hard) is too low for $nconns connections" >&2
    exit 1
fi

bench_fixed_upstream
"${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/hold_conns" "$here/hold_conns.c"

kib() { # kib PID FIELD: VmRSS/VmHWM in KiB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
procs() { # procs PID: PID and its children (nginx workers)
    echo "$1"
    ps -o pid= --ppid "$1" | tr -d ' ' || true
}
sum_field() { # sum_field PID FIELD: FIELD summed over PID and its children, KiB
    local t=0 p v
    for p in $(procs "$1"); do
        v=$(kib "$p" "$2") || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
sum_pss() {
    local t=0 p v
    for p in $(procs "$1"); do
        v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

up_port=$(bench_free_port)
bench_start upstream "$work/fixed_upstream" --listen "127.0.0.1:$up_port"
bench_wait_http "http://127.0.0.1:$up_port/"

echo "# profgate memory benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'); $nconns idle keep-alive connections held $hold s"
echo "# profgate: $(bench_build_info "$build"); descriptor limit $hard"
echo
echo "| server | idle RSS MiB | after load RSS MiB | $nconns conns RSS MiB | peak (HWM) MiB | Pss MiB | bytes/conn | served | open after ${hold}s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"

measure() { # measure NAME URL PID
    local name=$1 url=$2 pid=$3 idle load held hwm pss line after served per
    bench_wait_http "$url"
    sleep 1
    idle=$(sum_field "$pid" VmRSS)
    wrk -t2 -c64 -d2s "$url" >/dev/null 2>&1 || true
    sleep 1
    load=$(sum_field "$pid" VmRSS)
    local hostport=${url#http://}
    hostport=${hostport%%/*}
    "$work/hold_conns" --connect "$hostport" -n "$nconns" --hold "$hold" \
        >"$work/hold-$name.log" 2>&1 &
    local hpid=$!
    for _ in $(seq 1 900); do
        grep -q '^held:' "$work/hold-$name.log" && break
        kill -0 "$hpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2
    held=$(sum_field "$pid" VmRSS)
    hwm=$(sum_field "$pid" VmHWM)
    pss=$(sum_pss "$pid")
    wait "$hpid" || true
    line=$(grep '^held:' "$work/hold-$name.log" || echo "held: ? served")
    served=$(echo "$line" | awk '{ print $2 }')
    after=$(grep '^after' "$work/hold-$name.log" | awk '{ print $4 }')
    per=$(awk -v a="$held" -v b="$load" -v n="$nconns" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
    echo "| $name | $(mib "$idle") | $(mib "$load") | $(mib "$held") | $(mib "$hwm") | $(mib "$pss") | $per | $served | ${after:-?} |"
    if [ "$served" != "$nconns" ] || [ "${after:-0}" != "$nconns" ]; then
        echo "#   $name: $(tr '\n' ' ' <"$work/hold-$name.log")" >&2
    fi
}

for n in 1 2; do
    port=$(bench_free_port)
    bench_profgate_conf "$work/profgate-$n.toml" "$n" "$port" "$up_port" \
        "${PG_MAX_CONNECTIONS:+max_connections = $PG_MAX_CONNECTIONS}"
    bench_start "profgate-$n" "$build/proxy/profgate" --config "$work/profgate-$n.toml"
    measure "profgate-$n" "http://127.0.0.1:$port/" "${pids[-1]}"
    bench_stop "${pids[-1]}"
done

port=$(bench_free_port)
ng_conf=$(bench_nginx_conf 1 "$port" "$up_port" "nofile=$hard conns=$((nconns + 1024)) no_keepalive_requests")
bench_start nginx nginx -p "$(dirname "$ng_conf")" -e "$(dirname "$ng_conf")/error.log" -c "$ng_conf"
measure nginx-1 "http://127.0.0.1:$port/" "${pids[-1]}"
bench_stop "${pids[-1]}"

# HAProxy reserves two descriptors per connection (client and server side) up front.
if [ $((nconns * 2 + 100)) -gt "$hard" ]; then
    echo "# haproxy-1: not measured: $nconns connections need $((nconns * 2 + 100)) descriptors at its start, the limit is $hard"
    exit 0
fi
port=$(bench_free_port)
bench_haproxy_conf "$work/haproxy.cfg" 1 "$port" "$up_port" "$nconns" 60s
bench_start haproxy haproxy -db -f "$work/haproxy.cfg"
measure haproxy-1 "http://127.0.0.1:$port/" "${pids[-1]}"
bench_stop "${pids[-1]}"
