# shellcheck shell=bash
# bench/lib/common.sh: what the benchmark scripts share. Sourced, not run:
#   me=run.sh; . "$(dirname "$0")/../lib/common.sh"
# $me names the script in messages. Sets BENCH_SRC (the source tree) and BENCH_HZ (clock
# ticks per second), and gives:
#   bench_workdir PREFIX      a new temp dir /tmp/PREFIX.XXXXXX in $work; at exit every PID in
#                             the array pids is stopped (TERM, up to 5 s, then KILL) and $work
#                             removed, unless keep=1 ("kept $work" is printed then)
#   bench_start NAME CMD...   CMD in the background, output in $work/NAME.log, PID appended to
#                             pids (and so ${pids[-1]} is its PID)
#   bench_stop PID            TERM, up to 5 s, KILL, reaped; PID leaves pids
#   bench_free_port           a TCP port in 20000..32767 (under the kernel's ephemeral range)
#                             that nothing uses now and that this script has not handed out
#                             (after bench_workdir; before it, only the first holds)
#   bench_wait_http URL [S]   until URL answers 2xx (S seconds at most, default 10)
#   bench_wait_port PORT [S]  until something accepts on 127.0.0.1:PORT (default 30 s)
#   bench_poll S CMD...       CMD every 0.1 s until it succeeds, S seconds at most (the two above)
#   bench_build DIR TARGET... configure DIR (RelWithDebInfo) if it has no CMakeCache.txt, build
#                             the targets; when that fails but every target's file is there,
#                             measure those (the tree is shared with people editing it) and say so
#   bench_build_info DIR      "DIR (type), source S at git C [+ uncommitted proxy/ changes]"
#   bench_no_sanitizer DIR    exit 2 when DIR is a sanitizer build
#   bench_raise_nofile        descriptor soft limit to the hard limit (at most 65536); prints it
#   bench_fixed_upstream      compiles bench/proxy/fixed_upstream.c to $work/fixed_upstream
#   bench_cpu_ticks PID       utime + stime of PID and its children (nginx's workers), in ticks
#   bench_wrk_failed FILE [WHAT]  true (and prints FILE) when wrk's output FILE has non-2xx
#                             answers or connect/read/write socket errors (wrk's "timeout"
#                             count is requests slower than 2 s on a starved machine, not failures)
#   bench_median              the median of the numbers on stdin, one a line ("nan" if none)
#   bench_usage               the script's opening comment (its --help)
#   bench_agent_build DIR TARGET...  install-deps bench, refuse a sanitizer build, bench_build
#   bench_pin                 pin_srv=(taskset -c 0), pin_wrk=(taskset -c 1) when there are 2+
#                             CPUs and taskset, else both empty (the on/off scripts)
#   bench_onoff_options ARG...  the on/off scripts' options: --runs N (default 7), --seconds S
#                             (5), --conns C (32), --path P (/randomstring?n=64), --build DIR
#                             ($PG_BUILD_DIR, else build-bench), --keep, and --hz HZ if $hz is
#                             set; sets runs, secs, conns, path, build, keep (hz)
#   bench_wrk_schedstat PID URL  one `wrk -t1 -c$conns -d${secs}s URL` (pinned by pin_wrk);
#                             prints "Requests/sec server-CPU-ns-per-request" (PID's
#                             /proc/PID/schedstat over the run / wrk's request count); exits 1
#                             when wrk saw errors
#   bench_onoff_rounds RUN    after a warm-up RUN on and RUN off, $runs rounds of both, the order
#                             alternating; RUN MODE prints "req/s ns/req [samples]"; prints each
#                             round, keeps the figures in $work/MODE.rps and $work/MODE.cpu
#   bench_onoff_summary ON OFF  the medians of those and their ratios, ON and OFF naming the modes
#   bench_profgate_conf FILE WORKERS PORT UPSTREAM_PORT [EXTRA_SERVER_LINE]
#   bench_nginx_conf WORKERS PORT UPSTREAM_PORT [OPTIONS]
#   bench_haproxy_conf FILE THREADS PORT UPSTREAM_PORT [MAXCONN] [KEEPALIVE_TIMEOUT]
#                             reverse-proxy configurations, the same for every script, keep-alive
#                             to the upstream for each (see bench/proxy/run.sh on fairness);
#                             bench_nginx_conf writes $work/nginx-WORKERS-PORT/nginx.conf
#                             (and its temp dirs there) and prints that path.
#                             Equal work: by default nginx and HAProxy are set up to do what
#                             profgate does with its defaults -- pass Host through, add
#                             X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host
#                             and Via to requests, Via to responses -- as a production
#                             reverse proxy would. BENCH_BARE=1 turns all that off in all
#                             three (profgate add_forwarded/add_via = false): each proxy then
#                             forwards the request as it came, minus hop-by-hop headers.
# Globals used: me, work, pids, keep. Every process a script starts is killed by PID, never
# by name. Works under `set -u` with or without `set -e`.

me=${me:-bench}
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # for the scripts that source this
BENCH_HZ=$(getconf CLK_TCK)
pids=()
keep=${keep:-0}
work=

bench_stop()
{
    local p=$1 q rest=()
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 25); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for q in "${pids[@]}"; do
        [ "$q" = "$p" ] || rest+=("$q")
    done
    pids=("${rest[@]}")
}

bench_cleanup()
{
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
    pids=()
    [ -n "$work" ] || return 0
    if [ "$keep" = 1 ]; then
        echo "$me: kept $work"
    else
        rm -rf "$work"
    fi
}

bench_workdir()
{
    work=$(mktemp -d "/tmp/$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM HUP PIPE
}

bench_start()
{
    local name=$1
    shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
}

# bench_background N[:NICE]: start N CPU-bound loops (sh busy loops at nice NICE, default 0,
# each ended after an hour at most, and by PID at exit with the rest); sets bench_bg_desc to a
# header line describing them ("" for 0). --background of run.sh and sched_counts.sh.
bench_background()
{
    local n=${1%%:*} nice=0 i
    case $1 in *:*) nice=${1#*:} ;; esac
    bench_bg_desc=
    for i in $(seq 1 "$n"); do
        bench_start "background-$i" timeout 3600 nice -n "$nice" sh -c 'while :; do :; done'
    done
    [ "$n" -eq 0 ] || bench_bg_desc="# background: $n CPU-bound loop(s), nice $nice, for the whole run"
}

# Called as p=$(bench_free_port), a subshell: the ports handed out are remembered in a
# file of $work (a variable set there would be lost), so that a port picked for a server
# that has not bound it yet is not picked again.
bench_free_port()
{
    local p used=${work:+$work/ports.used}
    for _ in $(seq 1 500); do
        p=$((20000 + RANDOM % 12768))
        if [ -n "$used" ] && grep -qx "$p" "$used" 2>/dev/null; then
            continue
        fi
        if ! ss -Htan "sport = :$p" | grep -q .; then
            [ -z "$used" ] || echo "$p" >>"$used"
            echo "$p"
            return 0
        fi
    done
    echo "$me: no free port found" >&2
    return 1
}

# bench_poll SECS CMD...: CMD every 0.1 s until it succeeds, for SECS seconds at most
bench_poll()
{
    local end=$((SECONDS + $1))
    shift
    while [ "$SECONDS" -le "$end" ]; do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

bench_port_open()
{
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

bench_wait_http()
{
    bench_poll "${2:-10}" curl -sf -o /dev/null --max-time 2 "$1" && return 0
    echo "$me: $1 did not answer 200 within ${2:-10} s" >&2
    return 1
}

bench_wait_port()
{
    bench_poll "${2:-30}" bench_port_open "$1" && return 0
    echo "$me: nothing listening on 127.0.0.1:$1 after ${2:-30} s" >&2
    return 1
}

# the file a build target produces, relative to the build directory
bench_target_file()
{
    case "$1" in
    profgate) echo proxy/profgate ;;
    randomstring) echo demo-upstream/randomstring ;;
    profagent) echo agent-lib/libprofagent.so ;;
    profagent_static) echo agent-lib/libprofagent.a ;;
    *) echo "$1" ;;
    esac
}

bench_build()
{
    local dir=$1 blog t have=1
    shift
    if [ ! -f "$dir/CMakeCache.txt" ]; then # a build directory of its own source tree is used as it is
        echo "$me: configuring $dir (RelWithDebInfo)"
        cmake -S "$BENCH_SRC" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    if blog=$(cmake --build "$dir" -j2 --target "$@" 2>&1); then
        return 0
    fi
    for t in "$@"; do
        [ -e "$dir/$(bench_target_file "$t")" ] || have=0
    done
    if [ "$have" = 0 ]; then
        echo "$blog" >&2
        exit 1
    fi
    echo "$me: WARNING: the build failed; measuring the existing $dir/$(bench_target_file "$1") of $(stat -c %y "$dir/$(bench_target_file "$1")" | cut -d. -f1)" >&2
    echo "$blog" | grep -m3 -E 'error|Error' >&2 || true
}

bench_build_info()
{
    local s t
    s=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null)
    t=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$1/CMakeCache.txt" 2>/dev/null)
    if git -C "${s:-/nonexistent}" rev-parse --short HEAD >/dev/null 2>&1; then
        echo "$1 (${t:-?}), source $s at git $(git -C "$s" rev-parse --short HEAD)$(git -C "$s" diff --quiet HEAD -- proxy 2>/dev/null || echo ' + uncommitted proxy/ changes')"
    else
        echo "$1 (${t:-?}), source ${s:-?} (not a git checkout)"
    fi
}

bench_no_sanitizer()
{
    if grep -q '^PG_SANITIZE:STRING=.\+' "$1/CMakeCache.txt"; then
        echo "$me: $1 is a sanitizer build (no hooks, other costs); use another" >&2
        exit 2
    fi
}

bench_raise_nofile()
{
    local hard
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
    ulimit -n "$hard"
    echo "$hard"
}

bench_fixed_upstream()
{
    # shellcheck disable=SC2046
    "${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/fixed_upstream" \
        "$BENCH_SRC/bench/proxy/fixed_upstream.c" $(pkg-config --cflags --libs libuv)
}

bench_cpu_ticks()
{
    local t=0 p v
    for p in "$1" $(ps -o pid= --ppid "$1"); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

bench_wrk_failed()
{
    if grep -q 'Non-2xx' "$1" || grep -Eq 'Socket errors: connect [1-9]|read [1-9]|write [1-9]' "$1"; then
        echo "$me: wrk saw errors${2:+ on $2}:" >&2
        cat "$1" >&2
        return 0
    fi
    return 1
}

bench_median()
{
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench_profgate_conf()
{
    local bare=
    [ "${BENCH_BARE:-0}" = 1 ] && bare=$'add_forwarded = false\nadd_via = false'
    cat >"$1" <<EOF
[server]
listen  = "127.0.0.1:$3"
workers = $2
$bare
${5:-}

[[upstream]]
name    = "bench"
address = "127.0.0.1:$4"

[[route]]
prefix   = "/"
upstream = "bench"
EOF
}

# OPTIONS, space-separated: single (no master process: one process to trace or count),
# noreuseport, conns=N (worker_connections, default 4096), nofile=N (worker_rlimit_nofile),
# no_keepalive_requests (nginx's default of 1000 requests per connection, both sides).
bench_nginx_conf()
{
    local d=$work/nginx-$1-$2 opts=" ${4:-} " conns=4096 main='' listen_opt=" reuseport" kar='' o
    for o in $opts; do
        case "$o" in
        single) main="${main}master_process off;"$'\n' ;;
        noreuseport) listen_opt= ;;
        conns=*) conns=${o#conns=} ;;
        nofile=*) main="${main}worker_rlimit_nofile ${o#nofile=};"$'\n' ;;
        no_keepalive_requests) kar=none ;;
        *) echo "$me: bench_nginx_conf: unknown option $o" >&2; return 2 ;;
        esac
    done
    mkdir -p "$d/tmp"
    {
        printf '%s' "$main"
        cat <<EOF
worker_processes $1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $conns; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
EOF
        [ -n "$kar" ] || echo "    keepalive_requests 1000000;"
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$3;
        keepalive 64;
EOF
        [ -n "$kar" ] || echo "        keepalive_requests 1000000;"
        cat <<EOF
    }
    server {
        listen 127.0.0.1:$2$listen_opt;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
EOF
        [ "${BENCH_BARE:-0}" = 1 ] || cat <<'EOF'
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header Via "1.1 nginx";
            add_header Via "1.1 nginx" always;
EOF
        cat <<EOF
        }
    }
}
EOF
    } >"$d/nginx.conf"
    echo "$d/nginx.conf"
}

bench_haproxy_conf()
{
    cat >"$1" <<EOF
global
    nbthread $2
    maxconn ${5:-4096}
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
${6:+    timeout http-keep-alive $6}
frontend fe
    bind 127.0.0.1:$3
    default_backend be
backend be
    server up 127.0.0.1:$4
EOF
    [ "${BENCH_BARE:-0}" = 1 ] || cat >>"$1" <<'EOF'
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request add-header Via "1.1 haproxy"
    http-response add-header Via "1.1 haproxy"
EOF
}

bench_usage()
{
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"
}

bench_agent_build()
{
    local dir=$1
    "$BENCH_SRC/scripts/install-deps.sh" bench
    if [ -f "$dir/CMakeCache.txt" ]; then
        bench_no_sanitizer "$dir"
    fi
    bench_build "$@"
    bench_no_sanitizer "$dir"
}

bench_pin()
{
    pin_srv=()
    pin_wrk=()
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        pin_srv=(taskset -c 0)
        pin_wrk=(taskset -c 1)
    fi
}

bench_onoff_options()
{
    runs=7
    secs=5
    conns=32
    path="/randomstring?n=64"
    build=${PG_BUILD_DIR:-$BENCH_SRC/build-bench}
    while [ $# -gt 0 ]; do
        case "$1" in
        --runs) runs=$2; shift ;;
        --seconds) secs=$2; shift ;;
        --conns) conns=$2; shift ;;
        --path) path=$2; shift ;;
        --hz) [ -n "${hz:-}" ] || { echo "$me: unknown option $1 (see --help)" >&2; exit 2; }
            hz=$2; shift ;;
        --build) build=$2; shift ;;
        --keep) keep=1 ;;
        -h | --help) bench_usage; exit 0 ;;
        *) echo "$me: unknown option $1 (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
    [ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
    [ "$secs" -ge 1 ] && [ "$secs" -le 60 ] || { echo "--seconds: 1..60" >&2; exit 2; }
}

bench_wrk_schedstat()
{
    local c0 c1
    c0=$(awk '{ print $1 }' "/proc/$1/schedstat")
    "${pin_wrk[@]}" wrk -t1 -c"$conns" -d"${secs}s" "$2" >"$work/wrk.txt" 2>&1
    c1=$(awk '{ print $1 }' "/proc/$1/schedstat")
    if bench_wrk_failed "$work/wrk.txt"; then
        exit 1
    fi
    awk -v c="$((c1 - c0))" '/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
        END { printf "%s %.0f\n", rps, c / n }' "$work/wrk.txt"
}

bench_onoff_rounds()
{
    local run=$1 i mode order line rps cpu samples
    "$run" on >/dev/null # warm-up
    "$run" off >/dev/null
    : >"$work/on.rps"
    : >"$work/off.rps"
    : >"$work/on.cpu"
    : >"$work/off.cpu"
    for i in $(seq 1 "$runs"); do
        if [ $((i % 2)) = 1 ]; then order="on off"; else order="off on"; fi
        line="round $i:"
        for mode in $order; do
            read -r rps cpu samples < <("$run" $mode) || true
            [ -n "${cpu:-}" ] || { echo "$me: the $mode run failed" >&2; exit 1; }
            echo "$rps" >>"$work/$mode.rps"
            echo "$cpu" >>"$work/$mode.cpu"
            line="$line $mode=$rps req/s ${cpu} ns/req"
            [ -n "$samples" ] && line="$line ($samples samples)"
            line="$line;"
        done
        echo "$line"
    done
}

bench_onoff_summary()
{
    awk -v on="$(bench_median <"$work/on.rps")" -v off="$(bench_median <"$work/off.rps")" \
        -v con="$(bench_median <"$work/on.cpu")" -v coff="$(bench_median <"$work/off.cpu")" \
        -v a="$1" -v b="$2" 'BEGIN {
    printf "median req/s: %s %.0f, %s %.0f\n", a, on, b, off
    printf "throughput ratio on/off %.4f (overhead %.2f%%)\n", on / off, (1 - on / off) * 100
    printf "median server CPU per request: on %.0f ns, off %.0f ns\n", con, coff
    printf "CPU per request ratio on/off %.4f (overhead %.2f%%)\n", con / coff, (con / coff - 1) * 100 }'
    echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
}
