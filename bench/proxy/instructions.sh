#!/usr/bin/env bash
# bench/proxy/instructions.sh: user-space instructions per proxied request (valgrind
# callgrind), profgate next to nginx, behind bench/proxy/fixed_upstream.c, 1 worker each.
#   bench/proxy/instructions.sh [-n REQUESTS] [--build DIR] [--top N] [--no-nginx]
# Each proxy runs under `valgrind --tool=callgrind`; `ab -k -c 16 -n 1000` warms it up, the
# counters are zeroed, `ab -k -c 16 -n REQUESTS` (default 10000) runs, the counters are
# dumped. Printed: instructions (Ir) per request, and for profgate where they go: the top N
# (default 30) functions by self cost and the top profgate functions by inclusive cost, each
# per request. Instruction counts do not depend on what else runs on the machine (unlike
# requests/s), so two builds compare exactly; what the kernel does is not counted here
# (bench/proxy/syscalls.sh counts the system calls). nginx (Debian's, no symbols) gives the
# total only. PG_BENCH_KEEP=1 keeps the callgrind files (callgrind_annotate --tree=caller
# on profgate.out.1 says who calls what). Not a ctest; every process started is killed by
# PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${PG_BUILD_DIR:-$src/build-bench}
nreq=10000
top=30
with_nginx=1
while [ $# -gt 0 ]; do
    case "$1" in
    -n) nreq=$2; shift ;;
    --build) build=$2; shift ;;
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
if [ ! -f "$build/CMakeCache.txt" ]; then # a build directory of its own source tree is used as it is
    echo "instructions.sh: configuring $build (RelWithDebInfo)"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# The tree is shared with people editing it: if it does not build right now, measure the
# binary already there (and say so) rather than nothing.
if ! blog=$(cmake --build "$build" -j2 --target profgate 2>&1); then
    if [ -x "$build/proxy/profgate" ]; then
        echo "instructions.sh: WARNING: the build failed; measuring the existing $build/proxy/profgate of $(stat -c %y "$build/proxy/profgate" | cut -d. -f1)" >&2
        echo "$blog" | grep -m3 -E 'error|Error' >&2 || true
    else
        echo "$blog" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/pg_proxy_instr.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 25); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "${PG_BENCH_KEEP:-0}" = 1 ]; then echo "instructions.sh: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

cc=${CC:-cc}
# shellcheck disable=SC2046
"$cc" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/fixed_upstream" \
    "$here/fixed_upstream.c" $(pkg-config --cflags --libs libuv)

# build_info DIR: its build type and the source it was built from (git commit, and whether
# proxy/ had uncommitted changes: the tree is shared with people editing it)
build_info() {
    local s t
    s=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null)
    t=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$1/CMakeCache.txt" 2>/dev/null)
    if git -C "${s:-/nonexistent}" rev-parse --short HEAD >/dev/null 2>&1; then
        echo "$1 (${t:-?}), source $s at git $(git -C "$s" rev-parse --short HEAD)$(git -C "$s" diff --quiet HEAD -- proxy 2>/dev/null || echo ' + uncommitted proxy/ changes')"
    else
        echo "$1 (${t:-?}), source ${s:-?} (not a git checkout)"
    fi
}

used_ports=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        case "$used_ports" in *" $p "*) continue ;; esac
        if ! ss -Htan "sport = :$p" | grep -q .; then
            used_ports="$used_ports$p "
            echo "$p"
            return
        fi
    done
}
wait_http() { # under valgrind start-up takes a while: 60 s
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null --max-time 2 "$1" && return 0
        sleep 0.2
    done
    echo "instructions.sh: $1 did not answer 200 within 60 s" >&2
    return 1
}

up=$(free_port)
"$work/fixed_upstream" --listen "127.0.0.1:$up" 2>/dev/null &
pids+=($!)
wait_http "http://127.0.0.1:$up/"

# measure NAME PORT PID: Ir per request of PID over ab -n $nreq; the dump is $work/NAME.out.1
measure() {
    local name=$1 port=$2 pid=$3 total
    wait_http "http://127.0.0.1:$port/"
    ab -k -c 16 -n 1000 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    callgrind_control -z "$pid" >/dev/null 2>&1
    ab -k -c 16 -n "$nreq" "http://127.0.0.1:$port/" >"$work/$name.ab" 2>&1 || true
    callgrind_control -d "$pid" >/dev/null 2>&1
    total=$(callgrind_annotate "$work/$name.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    echo "$name: $(awk -v t="$total" -v n="$nreq" 'BEGIN { printf "%.0f", t / n }') instructions per request (user space; ab failed requests: $(awk '/^Failed requests:/ { print $3 }' "$work/$name.ab"))"
}

pg_port=$(free_port)
cat >"$work/profgate.toml" <<EOF
[server]
listen  = "127.0.0.1:$pg_port"
workers = 1

[[upstream]]
name    = "bench"
address = "127.0.0.1:$up"

[[route]]
prefix   = "/"
upstream = "bench"
EOF
valgrind --tool=callgrind --callgrind-out-file="$work/profgate.out" \
    "$build/proxy/profgate" --config "$work/profgate.toml" >"$work/profgate.log" 2>&1 &
pids+=($!)
pg_pid=$!

echo "# user-space instructions per request (callgrind), ab -k -c 16 -n $nreq, fixed 13-byte upstream, 1 worker"
echo "# profgate: $(build_info "$build")"
measure profgate "$pg_port" "$pg_pid"

if [ "$with_nginx" = 1 ]; then
    ng_port=$(free_port)
    mkdir -p "$work/nginx/tmp"
    cat >"$work/nginx/nginx.conf" <<EOF
master_process off;
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$up;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$ng_port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    valgrind --tool=callgrind --callgrind-out-file="$work/nginx.out" \
        nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" \
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
