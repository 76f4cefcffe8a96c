#!/usr/bin/env bash
# bench/proxy/run.sh: profgate against nginx and HAProxy as reverse proxies, in the same run.
#   bench/proxy/run.sh [--quick | --smoke] [--duration S] [--rounds R] [--connections C]
#                      [--threads T] [--upstreams fixed,randomstring] [--targets LIST]
#                      [--build DIR] [--compare DIR] [--background N[:NICE]] [--keep]
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
# listens with reuseport like profgate. Equal work: profgate runs with its defaults, which
# pass Host through and add X-Forwarded-For/-Proto/-Host and Via, and nginx and HAProxy are
# configured to do the same (bench/lib/common.sh); BENCH_BARE=1 turns those headers off in
# all three. Each row also gives the upstream's CPU per request behind that target: in the
# upstream-bound setting (randomstring) that, not the proxy, sets the throughput.
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
# A second table gives per-round ratios: the median over rounds of profgate-N's (and
# candidate-N's) CPU per request, req/s and p99 divided by nginx-N's in the same round, and
# profgate-N's by candidate-N's, with quartiles and in how many rounds the target came out
# ahead: on a busy machine the way to see a difference of a few %.
#
# BENCH_PG_SERVER and BENCH_CAND_SERVER (environment): a line added to profgate's (candidate's)
# [server] section, e.g. BENCH_CAND_SERVER='event_coalesce_us = 100' with --compare build-bench
# to measure an option against the defaults of the same build.
#
# --background N[:NICE]: N CPU-bound loops (plain `sh` busy loops, at nice NICE, default 0,
# for at most an hour) run for the whole measurement: a host whose cores other work also
# wants, as a sidecar's host often is (NICE 19: batch jobs that take only idle time). Every
# target meets the same competition.
#
# --targets LIST (comma-separated, e.g. nginx-1,profgate-1,candidate-1) measures only those:
# an A/B of two builds against nginx in a few minutes.
#
# Default: 5 rounds x 10 s x 7 targets x 2 upstreams (~13 min). --quick: 3 rounds x 4 s
# (~3 min). --smoke: 1 round x 1 s, to check that the script works (~1 min; the figures mean
# nothing). Every process started here is killed by PID at exit. Not a ctest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=run.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
duration=10
rounds=5
conns=64
threads=2
upstreams=fixed,randomstring
compare=
only=
background=0

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) duration=4; rounds=3 ;;
    --smoke) duration=1; rounds=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --connections) conns=$2; shift ;;
    --threads) threads=$2; shift ;;
    --upstreams) upstreams=$2; shift ;;
    --targets) only=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    --compare) compare=$2; shift ;;
    --background) background=$2; shift ;;
    -h | --help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
if [ -n "$compare" ] && [ ! -x "$compare/proxy/profgate" ]; then
    echo "run.sh: --compare $compare: no proxy/profgate there" >&2
    exit 2
fi

btargets=profgate
case ",$upstreams," in *,randomstring,*) btargets="profgate randomstring" ;; esac
# shellcheck disable=SC2086
bench_build "$build" $btargets

bench_workdir pg_proxy_bench
# as many descriptors as allowed (the hard limit may be below 65536 in a container)
bench_raise_nofile >/dev/null
bench_fixed_upstream
hz=$BENCH_HZ
bench_background "$background"

# wrk_once URL PID UPSTREAM_PID -> "rps p99_ms non2xx sockerr cpu_us_per_request
# upstream_cpu_us_per_request" (CPU of PID's tree, and of the upstream's)
wrk_once() {
    local out t0 t1 u0 u1
    t0=$(bench_cpu_ticks "$2")
    u0=$(bench_cpu_ticks "$3")
    out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$1" 2>&1) || true
    t1=$(bench_cpu_ticks "$2")
    u1=$(bench_cpu_ticks "$3")
    echo "$out" >>"$work/wrk.log"
    echo "$out" | awk -v ticks=$((t1 - t0)) -v uticks=$((u1 - u0)) -v hz="$hz" '
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
            printf "%s %s %d %d %.2f %.2f\n", rps == "" ? 0 : rps, p99 == "" ? -1 : p99, bad, err,
                (n > 0 ? ticks * 1e6 / hz / n : -1), (n > 0 ? uticks * 1e6 / hz / n : -1)
        }'
}

echo "# profgate proxy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, no pinning"
echo "# profgate: $(bench_build_info "$build")"
echo "# $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | awk '{print "haproxy/" $3}'), $(wrk --version 2>&1 | head -1 | awk '{print $1 "/" $2}')"
echo "# wrk -t$threads -c$conns -d${duration}s --latency; $rounds rounds, medians"
[ -z "$bench_bg_desc" ] || echo "$bench_bg_desc"

results=$work/results.tsv
: >"$results"
targets=(direct nginx-1 nginx-2 haproxy-1 haproxy-2 profgate-1 profgate-2)
if [ -n "$compare" ]; then
    targets+=(candidate-1 candidate-2)
    echo "# candidate: $(bench_build_info "$compare")"
fi
if [ -n "$only" ]; then
    chosen=()
    for t in ${only//,/ }; do
        case " ${targets[*]} " in
        *" $t "*) chosen+=("$t") ;;
        *) echo "run.sh: --targets: no target $t (there are: ${targets[*]})" >&2; exit 2 ;;
        esac
    done
    targets=("${chosen[@]}")
fi

for upstream in ${upstreams//,/ }; do
    up_port=$(bench_free_port)
    case "$upstream" in
    fixed)
        bench_start upstream-fixed "$work/fixed_upstream" --listen "127.0.0.1:$up_port"
        path=/
        ;;
    randomstring)
        bench_start upstream-randomstring env -u PROFAGENT_SOCKET \
            "$build/demo-upstream/randomstring" --listen "127.0.0.1:$up_port"
        path=/randomstring
        ;;
    *) echo "run.sh: unknown upstream $upstream" >&2; exit 2 ;;
    esac
    upstream_pid=${pids[-1]}
    bench_wait_http "http://127.0.0.1:$up_port$path"

    declare -A url=()
    declare -A tpid=()
    url[direct]="http://127.0.0.1:$up_port$path"
    tpid[direct]=$upstream_pid
    proxy_pids=()
    for n in 1 2; do
        p=$(bench_free_port)
        bench_start "nginx-$n" nginx -p "$work" -e "$work/nginx-$n.error.log" -c "$(bench_nginx_conf "$n" "$p" "$up_port")"
        url[nginx-$n]="http://127.0.0.1:$p$path"
        tpid[nginx-$n]=${pids[-1]}
        proxy_pids+=("${pids[-1]}")
        p=$(bench_free_port)
        bench_haproxy_conf "$work/haproxy-$n-$p.cfg" "$n" "$p" "$up_port"
        bench_start "haproxy-$n" haproxy -db -f "$work/haproxy-$n-$p.cfg"
        url[haproxy-$n]="http://127.0.0.1:$p$path"
        tpid[haproxy-$n]=${pids[-1]}
        proxy_pids+=("${pids[-1]}")
        p=$(bench_free_port)
        bench_profgate_conf "$work/profgate-$n-$p.toml" "$n" "$p" "$up_port" "${BENCH_PG_SERVER:-}"
        bench_start "profgate-$n" "$build/proxy/profgate" --config "$work/profgate-$n-$p.toml"
        url[profgate-$n]="http://127.0.0.1:$p$path"
        tpid[profgate-$n]=${pids[-1]}
        proxy_pids+=("${pids[-1]}")
        if [ -n "$compare" ]; then
            p=$(bench_free_port)
            bench_profgate_conf "$work/candidate-$n-$p.toml" "$n" "$p" "$up_port" "${BENCH_CAND_SERVER:-}"
            bench_start "candidate-$n" "$compare/proxy/profgate" --config "$work/candidate-$n-$p.toml"
            url[candidate-$n]="http://127.0.0.1:$p$path"
            tpid[candidate-$n]=${pids[-1]}
            proxy_pids+=("${pids[-1]}")
        fi
    done
    for t in "${targets[@]}"; do
        bench_wait_http "${url[$t]}"
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
            read -r rps p99 bad err cpu upcpu <<<"$(wrk_once "${url[$t]}" "${tpid[$t]}" "$upstream_pid")"
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$upstream" "$t" "$((r + 1))" "$rps" "$p99" \
                "$bad" "$err" "$cpu" "$upcpu" | tee -a "$results"
            if ! kill -0 "${tpid[$t]}" 2>/dev/null; then
                echo "run.sh: $t exited during the run; its log:" >&2
                tail -20 "$work/$t.log" >&2
                exit 1
            fi
        done
    done

    # this upstream's processes go before the next upstream starts
    for p in "${proxy_pids[@]}" "$upstream_pid"; do
        bench_stop "$p"
    done
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
for up, t, rnd, rps, p99, bad, err, cpu, upcpu in rows:
    d = data.setdefault((up, t), {"rps": [], "p99": [], "cpu": [], "up": [], "bad": 0, "err": 0})
    d["rps"].append(float(rps)); d["p99"].append(float(p99)); d["cpu"].append(float(cpu))
    d["up"].append(float(upcpu))
    d["bad"] += int(bad); d["err"] += int(err)
ups = list(dict.fromkeys(r[0] for r in rows))
targets = list(dict.fromkeys(r[1] for r in rows))
print("| upstream | target | req/s (median) | min..max | p99 ms (median) | req/s vs direct "
      "| req/s vs nginx | p99 vs nginx | CPU us/req | CPU vs nginx | upstream CPU us/req "
      "| non-2xx | sock err |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
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
              f"| {statistics.median(d['up']):.1f} | {d['bad']} | {d['err']} |")

# Per-round ratios: each round's target against a reference of the same round --
# profgate-N and candidate-N against nginx-N, and profgate-N against candidate-N. Rounds run
# seconds apart, so a busy machine moves both alike; the median of these per-round ratios
# resolves a difference of a few % that the medians above, each spread over the whole run,
# do not. "lower CPU in": in how many rounds the target used less CPU per request.
by_round = {(up, t, int(rnd)): (float(rps), float(p99), float(cpu))
            for up, t, rnd, rps, p99, bad, err, cpu, upcpu in rows}
pairs = []
for up in ups:
    for t in targets:
        kind, _, w = t.partition("-")
        for ref in (["nginx-" + w] if kind in ("profgate", "candidate") else []) + \
                   (["candidate-" + w] if kind == "profgate" else []):
            if (up, t) in data and (up, ref) in data:
                pairs.append((up, t, ref))
if pairs:
    print()
    print("| upstream | target / reference, same round | rounds | CPU/req ratio, median "
          "[quartiles] | lower CPU in | req/s ratio, median [quartiles] | more req/s in "
          "| p99 ratio | lower p99 in |")
    print("|---|---|---:|---|---:|---|---:|---:|---:|")

def quart(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"{statistics.median(xs):.3f} [{q[0]:.3f}..{q[2]:.3f}]"

for up, t, ref in pairs:
    r_cpu, r_rps, r_p99 = [], [], []
    for (u, tt, rnd), a in sorted(by_round.items()):
        b = by_round.get((u, ref, rnd))
        if u != up or tt != t or b is None or min(a[2], b[2], b[0]) <= 0:
            continue
        r_cpu.append(a[2] / b[2])
        r_rps.append(a[0] / b[0])
        if a[1] > 0 and b[1] > 0:
            r_p99.append(a[1] / b[1])
    if not r_cpu:
        continue
    p99r = f"{statistics.median(r_p99):.3f}" if r_p99 else "-"
    print(f"| {up} | {t} / {ref} | {len(r_cpu)} | {quart(r_cpu)} "
          f"| {sum(1 for x in r_cpu if x < 1)} of {len(r_cpu)} | {quart(r_rps)} "
          f"| {sum(1 for x in r_rps if x > 1)} of {len(r_rps)} | {p99r} "
          f"| {sum(1 for x in r_p99 if x < 1)} of {len(r_p99)} |")
EOF
