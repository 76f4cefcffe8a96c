#!/usr/bin/env bash
# bench/proxy/instructions.sh: user-space instructions per proxied request (valgrind
# callgrind), profgate next to nginx, behind bench/proxy/fixed_upstream.c, 1 worker each.
#   bench/proxy/instructions.sh [-n REQUESTS] [--build DIR] [--top N] [--no-nginx]
#                               [--server-toml 'LINES']
# Each proxy runs under `valgrind --tool=callgrind`; `ab -k -c 16 -n 1000` warms it up, the
# counters are zeroed, `ab -k -c 16 -n REQUESTS` (default 10000) runs, the counters are
# dumped. Printed: instructions (Ir) per request, and for profgate where they go: the top N
# (default 30) functions by self cost and the top profgate functions by inclusive cost, each
# per request. Instruction counts do not depend on what else runs on the machine (unlike
# requests/s), so two builds compare exactly; what the kernel does is not counted here
# (bench/proxy/syscalls.sh counts the system calls). nginx (Debian's, no symbols) gives the
# total only. PG_BENCH_KEEP=1 keeps the callgrind files (callgrind_annotate --tree=caller
# on profgate.out.1 says who calls what). Not a ctest; every process started is killed by
# PID at exit. --server-toml adds LINES to profgate's [server] table (@WORK@ stands for the
# run's temp dir), e.g. 'access_log = "@WORK@/access.log"' to count the access log's cost.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=instructions.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
server_toml=
nreq=10000
top=30
with_nginx=1
keep=${PG_BENCH_KEEP:-0}
while [ $# -gt 0 ]; do
    case "$1" in
    -n) nreq=$2; shift ;;
    --build) build=$2; shift ;;
    --server-toml) server_toml=$2; shift ;;
    --top) top=$2; shift ;;
    --no-nginx) with_nginx=0 ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "instructions.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    echo "instructions.sh: valgrind is needed (apt-get install valgrind)" >&2
    exit 1
fi
bench_build "$build" profgate
bench_workdir pg_proxy_instr
bench_fixed_upstream

up=$(bench_free_port)
bench_start upstream "$work/fixed_upstream" --listen "127.0.0.1:$up"
bench_wait_http "http://127.0.0.1:$up/"

# measure NAME PORT PID: Ir per request of PID over ab -n $nreq; the dump is $work/NAME.out.1
measure() {
    local name=$1 port=$2 pid=$3 total
    bench_wait_http "http://127.0.0.1:$port/" 60 # under valgrind start-up takes a while
    ab -k -c 16 -n 1000 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    callgrind_control -z "$pid" >/dev/null 2>&1
    ab -k -c 16 -n "$nreq" "http://127.0.0.1:$port/" >"$work/$name.ab" 2>&1 || true
    callgrind_control -d "$pid" >/dev/null 2>&1
    total=$(callgrind_annotate "$work/$name.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    echo "$name: $(awk -v t="$total" -v n="$nreq" 'BEGIN { printf "%.0f", t / n }') instructions per request (user space; ab failed requests: $(awk '/^Failed requests:/ { print $3 }' "$work/$name.ab"))"
}

pg_port=$(bench_free_port)
bench_profgate_conf "$work/profgate.toml" 1 "$pg_port" "$up" "${server_toml//@WORK@/$work}"
valgrind --tool=callgrind --callgrind-out-file="$work/profgate.out" \
    "$build/proxy/profgate" --config "$work/profgate.toml" >"$work/profgate.log" 2>&1 &
pids+=($!)
pg_pid=$!

echo "# user-space instructions per request (callgrind), ab -k -c 16 -n $nreq, fixed 13-byte upstream, 1 worker"
echo "# profgate: $(bench_build_info "$build")"
measure profgate "$pg_port" "$pg_pid"

if [ "$with_nginx" = 1 ]; then
    ng_port=$(bench_free_port)
    ng_conf=$(bench_nginx_conf 1 "$ng_port" "$up" "single noreuseport")
    valgrind --tool=callgrind --callgrind-out-file="$work/nginx.out" \
        nginx -p "$(dirname "$ng_conf")" -e "$(dirname "$ng_conf")/error.log" -c "$ng_conf" \
        >"$work/nginx.log" 2>&1 &
    pids+=($!)
    measure nginx "$ng_port" "$!"
fi

per_req() { # callgrind_annotate lines "  1,234 ( 5.6%)  file:function [obj]" -> per request
    awk -v n="$nreq" '$1 ~ /^[0-9,]+$/ && $0 ~ /%\) / {
        v = $1; gsub(",", "", v); line = $0
        sub(/^[^%]*%\) +/, "", line); sub(/ \[.*\]$/, "", line)
        printf "%8.0f  %s\n", v / n, line }'
}
echo
echo "## profgate: self instructions per request, top $top"
callgrind_annotate --threshold=100 --auto=no "$work/profgate.out.1" 2>/dev/null |
    sed -n '/file:function/,$p' | per_req | grep -v -E 'worker_main|start_thread|clone' |
    head -"$top" || true
echo
echo "## profgate: inclusive instructions per request, its own functions and calls out of it"
callgrind_annotate --threshold=100 --auto=no --inclusive=yes "$work/profgate.out.1" 2>/dev/null |
    sed -n '/file:function/,$p' | per_req |
    grep -E '/proxy/|snprintf|inet_ntop|uv_timer_start|uv_write2|uv_try_write|malloc|free' |
    head -"$top" || true
