#!/usr/bin/env bash
# bench/proxy/run.sh: profgate against nginx and HAProxy as reverse proxies, in the same run.
#   bench/proxy/run.sh [--quick] [--duration S] [--rounds R] [--connections C] [--threads T]
#                      [--upstreams fixed,randomstring] [--build DIR] [--compare DIR] [--keep]
# For each upstream (fixed_upstream.c: a fixed 13-byte response, so the proxy's own cost
# dominates; randomstring: the demo service, GET /randomstring, agent off) it starts the
# upstream and, listening on free 127.0.0.1 ports, nginx, HAProxy and profgate with 1 and 2
# workers (nginx worker_processes, HAProxy nbthread, profgate workers). Then, R rounds, each
# round measuring every target once with `wrk -tT -cC -dS --latency` in a rotated order (so
# no target always runs first or last, and load from elsewhere on the machine spreads
# over all of them). Reported: the median over rounds of requests/s and p99 latency, ratios
# to the upstream measured directly and to nginx with the same number of workers, and any
# non-2xx/3xx responses or socket errors (a proxy that answers 502 fast is not fast), and the
# CPU time the target's processes used per request (user + system from /proc/PID/stat, over
# the wrk run; for "direct" that is the upstream's): the figure least disturbed by other
# load on the machine, since it does not count time spent waiting for a core.
#
# Fairness: keep-alive to the upstream for every proxy (nginx: upstream block with
# `keepalive 64`, `proxy_http_version 1.1`, `proxy_set_header Connection ""`; HAProxy:
# `option http-keep-alive`, `http-reuse always`; profgate: its pool, pool_size default 64);
# access logs off for all; nginx keepalive_requests raised so it does not close wrk's and its
# upstream connections every 1000 requests (HAProxy and profgate have no such limit); nginx
# listens with reuseport like profgate. profgate runs with its defaults otherwise, which add
# X-Forwarded-For/-Proto/-Host and Via (nginx and HAProxy as configured here add nothing).
#
# CPU pinning: none. The machine has 2 cores: pinning wrk to one core and the servers to the
# other would make the 2-worker settings meaningless (and put proxy and upstream on one core);
# so wrk, the upstream and the proxy share both cores under the scheduler, the same for
# every target. The figures are therefore "what fits in 2 cores with the load generator
# included", and the ratios are what to read. The load average is printed per round: other
# processes on the machine add noise, which the rotation spreads evenly.
#
# --compare DIR adds targets "candidate-1" and "candidate-2": the profgate of another build
# directory (a patched tree, say), measured in the same rounds as the others.
#
# Default: 5 rounds x 10 s x 7 targets x 2 upstreams (~13 min). --quick: 3 rounds x 4 s
# (~3 min). Every process started here is killed by PID at exit. Not a ctest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${PG_BUILD_DIR:-$src/build-bench}
duration=10
rounds=5
conns=64
threads=2
upstreams=fixed,randomstring
keep=0
compare=

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) duration=4; rounds=3 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --connections) conns=$2; shift ;;
    --threads) threads=$2; shift ;;
    --upstreams) upstreams=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    --compare) compare=$2; shift ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
if [ -n "$compare" ] && [ ! -x "$compare/proxy/profgate" ]; then
    echo "run.sh: --compare $compare: no proxy/profgate there" >&2
    exit 2
fi

if [ ! -f "$build/CMakeCache.txt" ]; then # a build directory of its own source tree is used as it is
    echo "run.sh: configuring $build (RelWithDebInfo)"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# The tree is shared with people editing it: if it does not build right now, measure the
# binary already there (and say so) rather than nothing.
btargets=profgate
case ",$upstreams," in *,randomstring,*) btargets="profgate randomstring" ;; esac
# shellcheck disable=SC2086
if ! blog=$(cmake --build "$build" -j2 --target $btargets 2>&1); then
    if [ -x "$build/proxy/profgate" ]; then
        echo "run.sh: WARNING: the build failed; measuring the existing $build/proxy/profgate of $(stat -c %y "$build/proxy/profgate" | cut -d. -f1)" >&2
        echo "$blog" | grep -m3 -E 'error|Error' >&2 || true
    else
        echo "$blog" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/pg_proxy_bench.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    pids=()
    if [ "$keep" = 1 ]; then
        echo "run.sh: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# as many descriptors as allowed (the hard limit may be below 65536 in a container)
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"

cc=${CC:-cc}
# shellcheck disable=SC2046
"$cc" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/fixed_upstream" \
    "$here/fixed_upstream.c" $(pkg-config --cflags --libs libuv)

# A free port: random in 20000-59999, nothing listening on it, not handed out before.
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

# wait_http URL: until it answers 200 (10 s at most).
wait_http() {
    local i
    for i in $(seq 1 100); do
        if curl -sf -o /dev/null --max-time 1 "$1"; then
            return 0
        fi
        sleep 0.1
    done
    echo "run.sh: $1 did not answer 200 within 10 s" >&2
    return 1
}

start() { # start NAME CMD...: run in the background, log in $work/NAME.log
    local name=$1
    shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
}

nginx_conf() { # nginx_conf WORKERS PORT UPSTREAM_PORT
    local d=$work/nginx-$1-$2
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
worker_processes $1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$3;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$2 reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    echo "$d/nginx.conf"
}

haproxy_conf() { # haproxy_conf THREADS PORT UPSTREAM_PORT
    local f=$work/haproxy-$1-$2.cfg
    cat >"$f" <<EOF
global
    nbthread $1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$2
    default_backend be
backend be
    server up 127.0.0.1:$3
EOF
    echo "$f"
}

profgate_conf() { # profgate_conf WORKERS PORT UPSTREAM_PORT
    local f=$work/profgate-$1-$2.toml
    cat >"$f" <<EOF
[server]
listen  = "127.0.0.1:$2"
workers = $1

[[upstream]]
name    = "bench"
address = "127.0.0.1:$3"

[[route]]
prefix   = "/"
upstream = "bench"
EOF
    echo "$f"
}

# cpu_ticks PID: user + system CPU clock ticks of PID and its children (nginx's workers)
cpu_ticks() {
    local t=0 p v
    for p in "$1" $(ps -o pid= --ppid "$1"); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)

# wrk_once URL PID -> "rps p99_ms non2xx sockerr cpu_us_per_request" (CPU of PID's tree)
wrk_once() {
    local out t0 t1
    t0=$(cpu_ticks "$2")
    out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$1" 2>&1) || true
    t1=$(cpu_ticks "$2")
    echo "$out" >>"$work/wrk.log"
    echo "$out" | awk -v ticks=$((t1 - t0)) -v hz="$hz" '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return -1
        }
        /Requests\/sec:/ { rps = $2 }
        / requests in / { n = $1 }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ {
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(/,/, "", v); err += v }
        }
        END {
            printf "%s %s %d %d %.2f\n", rps == "" ? 0 : rps, p99 == "" ? -1 : p99, bad, err,
                (n > 0 ? ticks * 1e6 / hz / n : -1)
        }'
}

echo "# profgate proxy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, no pinning"
echo "# profgate: $(build_info "$build")"
echo "# $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | awk '{print "haproxy/" $3}'), $(wrk --version 2>&1 | head -1 | awk '{print $1 "/" $2}')"
echo "# wrk -t$threads -c$conns -d${duration}s --latency; $rounds rounds, medians"

results=$work/results.tsv
: >"$results"
targets=(direct nginx-1 nginx-2 haproxy-1 haproxy-2 profgate-1 profgate-2)
if [ -n "$compare" ]; then
    targets+=(candidate-1 candidate-2)
    echo "# candidate: $(build_info "$compare")"
fi

for upstream in ${upstreams//,/ }; do
    up_port=$(free_port)
    case "$upstream" in
    fixed)
        start upstream-fixed "$work/fixed_upstream" --listen "127.0.0.1:$up_port"
        path=/
        ;;
    randomstring)
        start upstream-randomstring env -u PROFAGENT_SOCKET \
            "$build/demo-upstream/randomstring" --listen "127.0.0.1:$up_port"
        path=/randomstring
        ;;
    *) echo "run.sh: unknown upstream $upstream" >&2; exit 2 ;;
    esac
    upstream_pid=${pids[-1]}
    wait_http "http://127.0.0.1:$up_port$path"

    declare -A url=()
    declare -A tpid=()
    url[direct]="http://127.0.0.1:$up_port$path"
    tpid[direct]=$upstream_pid
    proxy_pids=()
    for n in 1 2; do
        p=$(free_port)
        start "nginx-$n" nginx -p "$work" -e "$work/nginx-$n.error.log" -c "$(nginx_conf "$n" "$p" "$up_port")"
        url[nginx-$n]="http://127.0.0.1:$p$path"
        tpid[nginx-$n]=${pids[-1]}
        proxy_pids+=("${pids[-1]}")
        p=$(free_port)
        start "haproxy-$n" haproxy -db -f "$(haproxy_conf "$n" "$p" "$up_port")"
        url[haproxy-$n]="http://127.0.0.1:$p$path"
        tpid[haproxy-$n]=${pids[-1]}
        proxy_pids+=("${pids[-1]}")
        p=$(free_port)
        start "profgate-$n" "$build/proxy/profgate" --config "$(profgate_conf "$n" "$p" "$up_port")"
        url[profgate-$n]="http://127.0.0.1:$p$path"
        tpid[profgate-$n]=${pids[-1]}
        proxy_pids+=("${pids[-1]}")
        if [ -n "$compare" ]; then
            p=$(free_port)
            start "candidate-$n" "$compare/proxy/profgate" --config "$(profgate_conf "$n" "$p" "$up_port")"
            url[candidate-$n]="http://127.0.0.1:$p$path"
            tpid[candidate-$n]=${pids[-1]}
            proxy_pids+=("${pids[-1]}")
        fi
    done
    for t in "${targets[@]}"; do
        wait_http "${url[$t]}"
        # the same answer through every proxy: a proxy answering errors fast is not measured
        body=$(curl -sf --max-time 2 "${url[$t]}" | wc -c)
        echo "# $upstream $t ${url[$t]} -> 200, $body body bytes"
    done
    # warm-up: every target once, 1 s (connections, pools, page cache)
    for t in "${targets[@]}"; do
        wrk -t"$threads" -c"$conns" -d1s "${url[$t]}" >/dev/null 2>&1 || true
    done

    for ((r = 0; r < rounds; r++)); do
        echo "# $upstream round $((r + 1))/$rounds, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
        nt=${#targets[@]}
        for ((i = 0; i < nt; i++)); do
            t=${targets[$(((i + r * 3) % nt))]}
            read -r rps p99 bad err cpu <<<"$(wrk_once "${url[$t]}" "${tpid[$t]}")"
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n' "$upstream" "$t" "$((r + 1))" "$rps" "$p99" \
                "$bad" "$err" "$cpu" | tee -a "$results"
            if ! kill -0 "${tpid[$t]}" 2>/dev/null; then
                echo "run.sh: $t exited during the run; its log:" >&2
                tail -20 "$work/$t.log" >&2
                exit 1
            fi
        done
    done

    # this upstream's processes go before the next upstream starts
    for p in "${proxy_pids[@]}" "$upstream_pid"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${proxy_pids[@]}" "$upstream_pid"; do
        wait "$p" 2>/dev/null || true
    done
    keep_pids=()
    for p in "${pids[@]}"; do
        case " ${proxy_pids[*]} $upstream_pid " in *" $p "*) ;; *) keep_pids+=("$p") ;; esac
    done
    pids=("${keep_pids[@]}")
    if [ "$upstream" = fixed ]; then
        echo "# $(tail -1 "$work/upstream-fixed.log")"
    fi
    unset url tpid
done

echo
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
data = {}
for up, t, rnd, rps, p99, bad, err, cpu in rows:
    d = data.setdefault((up, t), {"rps": [], "p99": [], "cpu": [], "bad": 0, "err": 0})
    d["rps"].append(float(rps)); d["p99"].append(float(p99)); d["cpu"].append(float(cpu))
    d["bad"] += int(bad); d["err"] += int(err)
ups = list(dict.fromkeys(r[0] for r in rows))
targets = list(dict.fromkeys(r[1] for r in rows))
print("| upstream | target | req/s (median) | min..max | p99 ms (median) | req/s vs direct "
      "| req/s vs nginx | p99 vs nginx | CPU us/req | CPU vs nginx | non-2xx | sock err |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for up in ups:
    med = {t: (statistics.median(data[(up, t)]["rps"]), statistics.median(data[(up, t)]["p99"]),
               statistics.median(data[(up, t)]["cpu"]))
           for t in targets if (up, t) in data}
    for t in targets:
        if (up, t) not in data:
            continue
        d = data[(up, t)]
        rps, p99, cpu = med[t]
        direct = med.get("direct", (0, 0))[0]
        ng = "nginx-" + t.split("-")[1] if "-" in t else None
        vs_direct = f"{rps / direct:.2f}" if direct else "-"
        if ng and ng in med and med[ng][0] and t != ng:
            vs_ng = f"{rps / med[ng][0]:.2f}"
            p99_ng = f"{p99 / med[ng][1]:.2f}" if med[ng][1] > 0 else "-"
            cpu_ng = f"{cpu / med[ng][2]:.2f}" if med[ng][2] > 0 else "-"
        else:
            vs_ng = p99_ng = cpu_ng = "-"
        print(f"| {up} | {t} | {rps:,.0f} | {min(d['rps']):,.0f}..{max(d['rps']):,.0f} "
              f"| {p99:.2f} | {vs_direct} | {vs_ng} | {p99_ng} | {cpu:.1f} | {cpu_ng} "
              f"| {d['bad']} | {d['err']} |")
EOF
