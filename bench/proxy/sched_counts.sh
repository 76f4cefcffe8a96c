#!/usr/bin/env bash
# bench/proxy/sched_counts.sh: what a proxy costs the service behind it in the scheduler, per
# request: randomstring (single-threaded, CPU-bound; or with --upstream fixed, the fixed 13-byte
# response of fixed_upstream.c) behind nginx and profgate with N workers.
#   bench/proxy/sched_counts.sh [--workers N] [--rounds R] [--duration S] [--build DIR]
#                               [--compare DIR] [--background N[:NICE]] [--upstream fixed]
# For each target in rotated order, R rounds of `wrk -t2 -c64` for S+2 s, counting over S s:
#   wakes   the wake-ups the upstream issues (perf stat -e sched:sched_waking -p UPSTREAM)
#   nvcs    the upstream's involuntary context switches (/proc/PID/status): how often a
#           woken thread took its CPU from it
#   resIPI  reschedule IPIs, all CPUs (irq_vectors:reschedule_entry)
#   idle    entries into cpuidle state 1 (halt), all CPUs: on a VM each is a vCPU that a
#           later wake-up has to kick through the hypervisor
#   up us   the upstream's CPU per request (perf task-clock)
#   psleep  the proxy's voluntary context switches (every thread of it and of its child
#           processes, /proc/PID/task/*/status): how often it blocked, so had to be woken
#   ppre    the proxy's involuntary ones, counted the same way: how often it lost its CPU
#           while it had work (to a thread woken there: wrk, the upstream)
# each divided by the requests wrk counted in the window, plus req/s and p99. Counts, unlike
# req/s, barely move with other load on the machine. --compare DIR adds "candidate", the
# profgate of another build, with BENCH_CAND_SERVER (environment) added to its [server]
# section (e.g. 'worker_sched = "batch"' with --compare build-bench); BENCH_PG_SERVER does
# the same for profgate. --background as in run.sh. Needs perf (linux-perf) and root (or
# perf_event_paranoid <= -1) for the tracepoints. Not a ctest; every process started is killed
# by PID at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=sched_counts.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-bench}
workers=2
rounds=3
secs=5
compare=
background=0
upstream=randomstring
while [ $# -gt 0 ]; do
    case "$1" in
    --workers) workers=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --duration) secs=$2; shift ;;
    --build) build=$2; shift ;;
    --compare) compare=$2; shift ;;
    --background) background=$2; shift ;;
    --upstream) upstream=$2; shift ;;
    -h | --help) bench_usage; exit 0 ;;
    *) echo "$me: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

"$src/scripts/install-deps.sh" bench
bench_build "$build" profgate randomstring
if ! perf stat -e sched:sched_waking -o /dev/null true 2>/dev/null; then
    echo "$me: perf cannot read the sched tracepoints (root, or perf_event_paranoid <= -1)" >&2
    exit 1
fi
bench_workdir pg_sched_counts
bench_background "$background"

up_port=$(bench_free_port)
case $upstream in
randomstring)
    bench_start upstream env -u PROFAGENT_SOCKET "$build/demo-upstream/randomstring" \
        --listen "127.0.0.1:$up_port"
    path=/randomstring ;;
fixed)
    bench_fixed_upstream
    bench_start upstream "$work/fixed_upstream" --listen "127.0.0.1:$up_port"
    path=/ ;;
*) echo "$me: --upstream is randomstring or fixed, not $upstream" >&2; exit 2 ;;
esac
up_pid=${pids[-1]}
bench_wait_http "http://127.0.0.1:$up_port$path"
np=$(bench_free_port)
bench_start nginx nginx -p "$work" -e "$work/nginx.error.log" \
    -c "$(bench_nginx_conf "$workers" "$np" "$up_port")"
pp=$(bench_free_port)
bench_profgate_conf "$work/profgate.toml" "$workers" "$pp" "$up_port" "${BENCH_PG_SERVER:-}"
bench_start profgate "$build/proxy/profgate" --config "$work/profgate.toml"
declare -A pid_of
pid_of[nginx]=${pids[-2]}
pid_of[profgate]=${pids[-1]}
targets=("nginx:$np" "profgate:$pp")
if [ -n "$compare" ]; then
    cp=$(bench_free_port)
    bench_profgate_conf "$work/candidate.toml" "$workers" "$cp" "$up_port" "${BENCH_CAND_SERVER:-}"
    bench_start candidate "$compare/proxy/profgate" --config "$work/candidate.toml"
    pid_of[candidate]=${pids[-1]}
    targets+=("candidate:$cp")
fi
for t in "${targets[@]}"; do
    bench_wait_http "http://127.0.0.1:${t#*:}$path"
done

echo "# sched_counts, $(date -u '+%Y-%m-%d %H:%M UTC'), upstream $upstream, $workers worker(s), $rounds rounds of ${secs} s"
echo "# profgate: $(bench_build_info "$build")"
[ -z "$compare" ] || echo "# candidate: $(bench_build_info "$compare") [server] ${BENCH_CAND_SERVER:-}"
[ -z "$bench_bg_desc" ] || echo "$bench_bg_desc"
printf '%-6s %-10s %9s %8s %7s %7s %7s %7s %7s %7s %7s\n' round target req/s p99 wakes nvcs resIPI idle "up us" psleep ppre
idle_sum() { cat /sys/devices/system/cpu/cpu*/cpuidle/state1/usage 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
nvcs() { awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "/proc/$up_pid/status"; }
# "VOLUNTARY INVOLUNTARY": the context switches of every thread of PID and of its children
# (nginx's workers)
pswitches() {
    local p all=$1
    for p in $(pgrep -P "$1" || true); do all="$all $p"; done
    for p in $all; do cat /proc/"$p"/task/*/status 2>/dev/null; done |
        awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 }
             END { print v + 0, n + 0 }'
}
nt=${#targets[@]}
for r in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((nt - 1))); do
        t=${targets[$(((i + r) % nt))]}
        name=${t%%:*}
        wrk -t2 -c64 -d$((secs + 2))s --latency "http://127.0.0.1:${t#*:}$path" >"$work/wrk.$name.$r" 2>&1 &
        wpid=$!
        sleep 1
        perf stat -x, -e sched:sched_waking,task-clock -p "$up_pid" -o "$work/up.$name.$r" -- sleep "$secs" &
        s1=$!
        perf stat -x, -a -e irq_vectors:reschedule_entry -o "$work/sys.$name.$r" -- sleep "$secs" &
        s2=$!
        i0=$(idle_sum)
        n0=$(nvcs)
        read -r p0 q0 < <(pswitches "${pid_of[$name]}")
        wait "$s1" "$s2" || true
        i1=$(idle_sum)
        n1=$(nvcs)
        read -r p1 q1 < <(pswitches "${pid_of[$name]}")
        wait "$wpid" || true
        awk -v r="$r" -v name="$name" -v secs="$secs" -v di=$((i1 - i0)) -v dn=$((n1 - n0)) -v dp=$((p1 - p0)) -v dq=$((q1 - q0)) \
            -v upf="$work/up.$name.$r" -v syf="$work/sys.$name.$r" '
            /Requests\/sec:/ { rps = $2 }
            /^ +99%/ { p99 = $2 }
            END {
                FS = ","
                while ((getline l < upf) > 0) { split(l, f, ","); v[f[3]] = f[1] }
                while ((getline l < syf) > 0) { split(l, f, ","); v[f[3]] = f[1] }
                n = rps * secs
                if (n <= 0) { printf "%-6s %-10s wrk failed\n", r, name; exit }
                printf "%-6s %-10s %9.0f %8s %7.3f %7.4f %7.3f %7.3f %7.1f %7.3f %7.3f\n", r, name,
                    rps, p99, v["sched:sched_waking"] / n, dn / n,
                    v["irq_vectors:reschedule_entry"] / n, di / n, v["task-clock"] * 1000 / n,
                    dp / n, dq / n
            }' "$work/wrk.$name.$r"
    done
done
