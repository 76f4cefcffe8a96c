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
src=$(cd "$here/../.." && pwd)
build=${PG_BUILD_DIR:-$src/build-bench}
nconns=10000
hold=10
keep=0
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
if [ ! -f "$build/CMakeCache.txt" ]; then # a build directory of its own source tree is used as it is
    echo "run.sh: configuring $build (RelWithDebInfo)"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# The tree is shared with people editing it: if it does not build right now, measure the
# binary already there (and say so) rather than nothing.
if ! blog=$(cmake --build "$build" -j2 --target profgate 2>&1); then
    if [ -x "$build/proxy/profgate" ]; then
        echo "run.sh: WARNING: the build failed; measuring the existing $build/proxy/profgate of $(stat -c %y "$build/proxy/profgate" | cut -d. -f1)" >&2
        echo "$blog" | grep -m3 -E 'error|Error' >&2 || true
    else
        echo "$blog" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/pg_mem_bench.XXXXXX)
pids=()
stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 25); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local p
    for p in "${pids[@]}"; do
        stop_pid "$p"
    done
    if [ "$keep" = 1 ]; then echo "run.sh: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"
if [ "$hard" -lt $((nconns + 64)) ]; then
    echo "run.sh: the descriptor hard limit ($hard) is too low for $nconns connections" >&2
    exit 1
fi

cc=${CC:-cc}
# shellcheck disable=SC2046
"$cc" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/fixed_upstream" \
    "$src/bench/proxy/fixed_upstream.c" $(pkg-config --cflags --libs libuv)
"$cc" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/hold_conns" "$here/hold_conns.c"

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
wait_http() {
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    echo "run.sh: $1 did not answer 200 within 10 s" >&2
    return 1
}
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

up_port=$(free_port)
"$work/fixed_upstream" --listen "127.0.0.1:$up_port" 2>"$work/upstream.log" &
pids+=($!)
wait_http "http://127.0.0.1:$up_port/"

echo "# profgate memory benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'); $nconns idle keep-alive connections held $hold s"
echo "# profgate: $(build_info "$build"); descriptor limit $hard"
echo
echo "| server | idle RSS MiB | after load RSS MiB | $nconns conns RSS MiB | peak (HWM) MiB | Pss MiB | bytes/conn | served | open after ${hold}s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"

measure() { # measure NAME URL PID
    local name=$1 url=$2 pid=$3 idle load held hwm pss line after served per
    wait_http "$url"
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
    port=$(free_port)
    cat >"$work/profgate-$n.toml" <<EOF
[server]
listen  = "127.0.0.1:$port"
workers = $n
${PG_MAX_CONNECTIONS:+max_connections = $PG_MAX_CONNECTIONS}

[[upstream]]
name    = "bench"
address = "127.0.0.1:$up_port"

[[route]]
prefix   = "/"
upstream = "bench"
EOF
    "$build/proxy/profgate" --config "$work/profgate-$n.toml" >"$work/profgate-$n.log" 2>&1 &
    pids+=($!)
    measure "profgate-$n" "http://127.0.0.1:$port/" "${pids[-1]}"
    stop_pid "${pids[-1]}"
    unset 'pids[-1]'
done

port=$(free_port)
d=$work/nginx
mkdir -p "$d/tmp"
cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile $hard;
events { worker_connections $((nconns + 1024)); }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    upstream backend {
        server 127.0.0.1:$up_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$work/nginx.log" 2>&1 &
pids+=($!)
measure nginx-1 "http://127.0.0.1:$port/" "${pids[-1]}"
stop_pid "${pids[-1]}"
unset 'pids[-1]'

# HAProxy reserves two descriptors per connection (client and server side) up front.
if [ $((nconns * 2 + 100)) -gt "$hard" ]; then
    echo "# haproxy-1: not measured: $nconns connections need $((nconns * 2 + 100)) descriptors at its start, the limit is $hard"
    exit 0
fi
port=$(free_port)
cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $nconns
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:$port
    default_backend be
backend be
    server up 127.0.0.1:$up_port
EOF
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
measure haproxy-1 "http://127.0.0.1:$port/" "${pids[-1]}"
stop_pid "${pids[-1]}"
unset 'pids[-1]'
