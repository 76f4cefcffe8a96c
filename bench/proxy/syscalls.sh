#!/usr/bin/env bash
# bench/proxy/syscalls.sh: system calls per proxied request, profgate next to nginx and
# HAProxy, behind bench/proxy/fixed_upstream.c (1 worker each, configured as in run.sh).
#   bench/proxy/syscalls.sh [-n REQUESTS] [--build DIR]
# For each proxy: `strace -c -f -p PID` while `ab -k -c 64 -n REQUESTS` (default 20000) runs
# through it, then every system call's count divided by REQUESTS. On loopback each write
# carries the whole TCP transmit and the receiver's softirq work, so calls per request is
# what the proxy's CPU cost mostly follows -- and unlike requests/s it does not depend on
# what else the machine is doing. strace slows the proxy down a lot: only the counts mean
# anything here. Not a ctest; every process started is killed by PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${PG_BUILD_DIR:-$src/build-bench}
nreq=20000
while [ $# -gt 0 ]; do
    case "$1" in
    -n) nreq=$2; shift ;;
    --build) build=$2; shift ;;
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
if [ ! -f "$build/CMakeCache.txt" ]; then # a build directory of its own source tree is used as it is
    echo "syscalls.sh: configuring $build (RelWithDebInfo)"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# The tree is shared with people editing it: if it does not build right now, measure the
# binary already there (and say so) rather than nothing.
if ! blog=$(cmake --build "$build" -j2 --target profgate 2>&1); then
    if [ -x "$build/proxy/profgate" ]; then
        echo "syscalls.sh: WARNING: the build failed; measuring the existing $build/proxy/profgate of $(stat -c %y "$build/proxy/profgate" | cut -d. -f1)" >&2
        echo "$blog" | grep -m3 -E 'error|Error' >&2 || true
    else
        echo "$blog" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/pg_proxy_syscalls.XXXXXX)
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
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

cc=${CC:-cc}
# shellcheck disable=SC2046
"$cc" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/fixed_upstream" \
    "$here/fixed_upstream.c" $(pkg-config --cflags --libs libuv)

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
wait_http() {
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    echo "syscalls.sh: $1 did not answer 200 within 10 s" >&2
    return 1
}

up=$(free_port)
"$work/fixed_upstream" --listen "127.0.0.1:$up" 2>/dev/null &
pids+=($!)
wait_http "http://127.0.0.1:$up/"

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
"$build/proxy/profgate" --config "$work/profgate.toml" >"$work/profgate.log" 2>&1 &
pids+=($!)
pg_pid=$!

ng_port=$(free_port)
mkdir -p "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
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
        listen 127.0.0.1:$ng_port reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" \
    >"$work/nginx.log" 2>&1 &
pids+=($!)
ng_pid=$!

ha_port=$(free_port)
cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$ha_port
    default_backend be
backend be
    server up 127.0.0.1:$up
EOF
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
ha_pid=$!

# count NAME PORT PID...: strace the PIDs (threads included) during ab
count() {
    local name=$1 port=$2 spid
    shift 2
    wait_http "http://127.0.0.1:$port/"
    ab -k -c 64 -n 2000 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true # warm the pools
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    strace -c -f -o "$work/$name.strace" "${args[@]}" 2>/dev/null &
    spid=$!
    sleep 1
    ab -k -c 64 -n "$nreq" "http://127.0.0.1:$port/" >"$work/$name.ab" 2>&1 || true
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

echo "# system calls per request, ab -k -c 64 -n $nreq, fixed 13-byte upstream, 1 worker each"
count profgate "$pg_port" "$pg_pid"
count nginx "$ng_port" $(ps -o pid= --ppid "$ng_pid")
count haproxy "$ha_port" "$ha_pid"
