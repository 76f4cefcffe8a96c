#!/usr/bin/env bash
# bench/agent/overhead.sh: what the profiling agent costs randomstring, per profile kind, three
# ways side by side in one run (issue 4 targets: CPU profile at 100 Hz <= 1%, heap sampling at
# 512 KiB <= 2%, block+mutex on <= 5%).
#   bench/agent/overhead.sh [--quick] [--rounds R] [--seconds S] [--conns C] [--calls N]
#                           [--build DIR] [--no-callgrind] [--with-cpu-script] [--keep]
# Configurations, each its own randomstring instance started at the beginning (same binary):
#   off       no agent (PROFAGENT_SOCKET unset, PROFAGENT_MEM_RATE=0, block/mutex rates 0)
#   cpu       agent socket, heap off, a /debug/pprof/profile?seconds=S+1 (100 Hz) fetched
#             across each of its runs (the profile is checked to be non-empty). Caution: on a
#             machine with more runnable threads than cores (load 10-20 on 2 cores here) the
#             process under a CPU profile was seen to get 1.5-4x the CPU share of the same
#             process without one (utime+stime over the same wrk run), so its req/s ratio is
#             far above 1 and its CPU per request, at the larger batches that throughput
#             brings, a few % below: neither is the profiler's cost there; the sample-cost
#             micro below is.
#   heap      agent socket, heap sampling at the default rate (PROFAGENT_MEM_RATE unset: 512 KiB)
#   lock1     agent socket, heap off, PROFAGENT_BLOCK_RATE=1 PROFAGENT_MUTEX_FRACTION=1
#   lockprod  agent socket, heap off, PROFAGENT_BLOCK_RATE=10000 PROFAGENT_MUTEX_FRACTION=10
# (a) throughput: R rounds (default 5; --quick 3), each running `wrk -t1 -cC -dSs` (C 32, S 5;
#     --quick 2) on GET /randomstring?n=64 against every instance, in an order rotated from
#     round to round; medians per configuration, ratio to off, and the spread (median, min and max of
#     the per-round ratios) to say how noisy. For off, lock1, lockprod also GET
#     /contend?threads=2&ms=S*1000 (two threads fighting for one mutex, where the lock hooks are
#     hot): acquisitions per second.
# (b) server CPU time per request (per acquisition for /contend): utime+stime of the process
#     (all threads, /proc/PID/stat) over the same runs, divided by wrk's request count; a busy
#     machine disturbs it much less than requests/s, which counts time spent waiting for a core.
# (c) instructions per request (callgrind; `perf stat -e instructions` is not supported on this
#     VM): each of off, heap, lock1, lockprod under valgrind --tool=callgrind, counters zeroed
#     after a warm-up, `ab -c 4 -n N` (N 2000; --quick 500) on /randomstring?n=64, then per
#     acquisition over one /contend?threads=2&ms=1000 (callgrind serialises threads: contention
#     there happens only at its thread switches, so this counts the hooks' uncontended paths
#     mostly). Deterministic up to the heap sampler's random intervals.
#     CPU profiling is left out of (c): SIGPROF timers under valgrind run on valgrind's own CPU
#     time. Instead bench/agent/cpu_sig_micro.c times the sample path directly (kernel signal
#     delivery + handler unwinding at a stack depth of 16 and 48 frames, and the agent's drain);
#     x 100 Hz = the fraction of a busy core.
# Per call: bench/agent/lock_micro.c, 1 and 2 threads taking one mutex, no agent vs the hooks
# at 0/0, 1/1 and 10000/10 (block rate / mutex fraction), process CPU per acquisition; and
# "2y", 2 threads with the holder yielding under the lock so that nearly every lock is
# contended even on an overloaded machine: the cost of the sampled (contended) path.
# --with-cpu-script also runs bench/agent/cpu_overhead.sh (its owner's CPU figures) if present.
# Default run ~8 minutes, --quick ~3 (more on a loaded machine). Not a ctest. Every process
# started here is killed by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=overhead.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build-abench}
rounds=5
secs=5
conns=32
calls=2000
callgrind=1
cpu_script=0
path="/randomstring?n=64"
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) rounds=3; secs=2; calls=500 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --conns) conns=$2; shift ;;
    --calls) calls=$2; shift ;;
    --build) build=$2; shift ;;
    --no-callgrind) callgrind=0 ;;
    --with-cpu-script) cpu_script=1 ;;
    --keep) keep=1 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) echo "overhead.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$rounds" -ge 1 ] && [ "$rounds" -le 30 ] || { echo "--rounds: 1..30" >&2; exit 2; }
[ "$secs" -ge 1 ] && [ "$secs" -le 30 ] || { echo "--seconds: 1..30" >&2; exit 2; }
[ "$calls" -ge 100 ] && [ "$calls" -le 100000 ] || { echo "--calls: 100..100000" >&2; exit 2; }

bench_agent_build "$build" randomstring profagent profagent_static
for tool in wrk curl ab; do
    command -v $tool >/dev/null || { echo "overhead.sh: $tool is needed" >&2; exit 1; }
done
if [ "$callgrind" = 1 ] && ! command -v callgrind_annotate >/dev/null; then
    echo "overhead.sh: valgrind not found: (c) skipped" >&2
    callgrind=0
fi
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")
rs=$build/demo-upstream/randomstring

bench_workdir pg_agent_overhead
# env_of CONFIG: the environment of that configuration (besides the socket)
env_of() {
    case "$1" in
    off) echo "PROFAGENT_MEM_RATE=0 PROFAGENT_BLOCK_RATE=0 PROFAGENT_MUTEX_FRACTION=0" ;;
    cpu) echo "PROFAGENT_MEM_RATE=0 PROFAGENT_CPU_HZ=100" ;;
    heap) echo "PROFAGENT_BLOCK_RATE=0" ;;
    lock1) echo "PROFAGENT_MEM_RATE=0 PROFAGENT_BLOCK_RATE=1 PROFAGENT_MUTEX_FRACTION=1" ;;
    lockprod) echo "PROFAGENT_MEM_RATE=0 PROFAGENT_BLOCK_RATE=10000 PROFAGENT_MUTEX_FRACTION=10" ;;
    esac
}
# start_rs CONFIG [wrapper...]: starts randomstring for CONFIG; sets port[CONFIG], pid_of[CONFIG]
declare -A port pid_of
start_rs() {
    local cfg=$1 sock=()
    shift
    port[$cfg]=$(bench_free_port)
    [ "$cfg" != off ] && sock=(--agent-socket "$work/$cfg.sock")
    # shellcheck disable=SC2046
    env -u PROFAGENT_SOCKET -u PROFAGENT_MEM_RATE $(env_of "$cfg") "$@" "$rs" \
        --listen "127.0.0.1:${port[$cfg]}" "${sock[@]}" >"$work/$cfg.log" 2>&1 &
    pids+=($!)
    pid_of[$cfg]=$!
}
cpu_ticks() { # utime + stime of the whole process, in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${pid_of[$1]}/stat"
}
hz=$(getconf CLK_TCK)

configs="off cpu heap lock1 lockprod"
for cfg in $configs; do
    start_rs "$cfg"
done
for cfg in $configs; do
    bench_wait_http "http://127.0.0.1:${port[$cfg]}/" 20
done

# cpu_profile_begin: a CPU profile over the next run of the cpu instance
cpu_profile_begin() {
    curl -s -m $((secs + 30)) -o "$work/cpu.pb.gz" -w '%{http_code}' --unix-socket "$work/cpu.sock" \
        "http://agent/debug/pprof/profile?seconds=$((secs + 1))" >"$work/cpu.code" 2>&1 &
    cpu_curl=$!
    pids+=($cpu_curl)
    sleep 0.3 # the agent arms its timers
}
cpu_profile_end() {
    wait "$cpu_curl" || true
    if [ "$(cat "$work/cpu.code")" != 200 ] || [ ! -s "$work/cpu.pb.gz" ]; then
        echo "overhead.sh: the CPU profile during the run failed (HTTP $(cat "$work/cpu.code"))" >&2
        exit 1
    fi
    cpu_profiles=$((cpu_profiles + 1))
}
cpu_profiles=0

# wrk_run CONFIG: one wrk run on /randomstring; appends req/s and CPU ns/request
wrk_run() {
    local cfg=$1 c0 c1
    [ "$cfg" = cpu ] && cpu_profile_begin
    c0=$(cpu_ticks "$cfg")
    wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:${port[$cfg]}$path" >"$work/wrk.txt" 2>&1
    c1=$(cpu_ticks "$cfg")
    [ "$cfg" = cpu ] && cpu_profile_end
    if bench_wrk_failed "$work/wrk.txt" "$cfg"; then
        exit 1
    fi
    awk -v c="$((c1 - c0))" -v hz="$hz" -v f="$work/$cfg" '
        /^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
        END { printf "%s\n", rps >> (f ".rps"); printf "%.0f\n", c * 1e9 / hz / n >> (f ".cpu") }' \
        "$work/wrk.txt"
}
# contend_run CONFIG: one /contend (2 threads, S seconds); appends acquisitions/s and CPU ns each
contend_run() {
    local cfg=$1 c0 c1 body
    c0=$(cpu_ticks "$cfg")
    body=$(curl -sf -m $((secs + 30)) "http://127.0.0.1:${port[$cfg]}/contend?threads=2&ms=$((secs * 1000))")
    c1=$(cpu_ticks "$cfg")
    echo "$body" | awk -v c="$((c1 - c0))" -v hz="$hz" -v s="$secs" -v f="$work/$cfg" '
        / acquisitions/ { a = $(NF - 1) }
        END { if (a <= 0) exit 1; printf "%.0f\n", a / s >> (f ".acq")
              printf "%.1f\n", c * 1e9 / hz / a >> (f ".acqcpu") }' ||
        { echo "overhead.sh: /contend on $cfg answered: $body" >&2; exit 1; }
}

echo "# agent overhead on randomstring ($btype build $build, git $(git -C "$src" rev-parse --short HEAD))"
echo "# (a)+(b): $rounds rounds, wrk -t1 -c$conns -d${secs}s GET $path on each of: $configs;"
echo "#          /contend?threads=2&ms=$((secs * 1000)) on off lock1 lockprod; order rotated per round; no pinning"
for cfg in $configs; do # warm-up
    wrk -t1 -c"$conns" -d1s "http://127.0.0.1:${port[$cfg]}$path" >/dev/null 2>&1
done
list=($configs off lock1 lockprod)
kinds=(w w w w w c c c)
n=${#list[@]}
for r in $(seq 1 "$rounds"); do
    line="round $r (load $(cut -d' ' -f1 /proc/loadavg)):"
    for k in $(seq 0 $((n - 1))); do
        i=$(((k + r - 1) % n))
        if [ "${kinds[$i]}" = w ]; then
            wrk_run "${list[$i]}"
            line="$line ${list[$i]}=$(tail -1 "$work/${list[$i]}.rps")"
        else
            contend_run "${list[$i]}"
            line="$line ${list[$i]}/contend=$(tail -1 "$work/${list[$i]}.acq")acq/s"
        fi
    done
    echo "$line"
done

# ratios per round (each configuration against off in the same round) for the spread
spread() { # spread FILE_A FILE_OFF: "median [min..max]" of per-round ratios a/off
    paste "$1" "$2" | awk '{ print $1 / $2 }' | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f [%.3f..%.3f]", m, v[1], v[NR] }'
}
echo
echo "## /randomstring?n=64: (a) requests/s and (b) server CPU per request, medians over $rounds rounds"
printf "%-9s %10s %8s %22s   %11s %8s %22s\n" config "req/s" "ratio" "per-round ratios" "CPU ns/req" "ratio" "per-round ratios"
off_rps=$(bench_median <"$work/off.rps")
off_cpu=$(bench_median <"$work/off.cpu")
for cfg in $configs; do
    printf "%-9s %10.0f %8.4f %22s   %11.0f %8.4f %22s\n" "$cfg" "$(bench_median <"$work/$cfg.rps")" \
        "$(awk -v a="$(bench_median <"$work/$cfg.rps")" -v b="$off_rps" 'BEGIN { print a / b }')" \
        "$(spread "$work/$cfg.rps" "$work/off.rps")" "$(bench_median <"$work/$cfg.cpu")" \
        "$(awk -v a="$(bench_median <"$work/$cfg.cpu")" -v b="$off_cpu" 'BEGIN { print a / b }')" \
        "$(spread "$work/$cfg.cpu" "$work/off.cpu")"
done
echo "(ratio: of the medians; per-round ratios: median [min..max] of each round against off in that round;
      throughput overhead = 1 - req/s ratio; CPU overhead = CPU ratio - 1; cpu: $cpu_profiles profiles fetched, all 200 and non-empty)"
echo
echo "## /contend?threads=2&ms=$((secs * 1000)): (a) acquisitions/s and (b) CPU ns per acquisition, medians"
printf "%-9s %12s %8s %22s   %11s %8s %22s\n" config "acq/s" "ratio" "per-round ratios" "CPU ns/acq" "ratio" "per-round ratios"
off_acq=$(bench_median <"$work/off.acq")
off_acqcpu=$(bench_median <"$work/off.acqcpu")
for cfg in off lock1 lockprod; do
    printf "%-9s %12.0f %8.4f %22s   %11.1f %8.4f %22s\n" "$cfg" "$(bench_median <"$work/$cfg.acq")" \
        "$(awk -v a="$(bench_median <"$work/$cfg.acq")" -v b="$off_acq" 'BEGIN { print a / b }')" \
        "$(spread "$work/$cfg.acq" "$work/off.acq")" "$(bench_median <"$work/$cfg.acqcpu")" \
        "$(awk -v a="$(bench_median <"$work/$cfg.acqcpu")" -v b="$off_acqcpu" 'BEGIN { print a / b }')" \
        "$(spread "$work/$cfg.acqcpu" "$work/off.acqcpu")"
done
# what the samplers recorded, to show they ran: records and the sum of their counts
records() { # records CONFIG KIND
    curl -s -m 10 --unix-socket "$work/$1.sock" "http://agent/debug/pprof/$2?debug=1" |
        awk '$3 == "@" { n++; c += $2 } END { printf "%d stacks, %d events (estimated: counts as scaled)", n, c }'
}
for cfg in lock1 lockprod; do
    echo "$cfg recorded: block $(records "$cfg" block); mutex $(records "$cfg" mutex)"
done
echo "heap sampler: $(curl -s -m 10 --unix-socket "$work/heap.sock" "http://agent/debug/pprof/heap?debug=1" | grep -m1 '^heap profile:' || echo '?')"

# the wrk instances are no longer needed
for cfg in $configs; do
    kill -TERM "${pid_of[$cfg]}" 2>/dev/null || true
done

echo
echo "## CPU profile sample cost (bench/agent/cpu_sig_micro.c, thread CPU time, medians of $rounds)"
b=$build
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -DUNW_LOCAL_ONLY -O2 -g -Wall -Wextra -I"$src/agent-lib" -I"$b/proto" \
    -I"$src/common" -o "$work/cpu_sig_micro" "$here/cpu_sig_micro.c" "$b/agent-lib/libprofagent.a" \
    $(pkg-config --libs libunwind libprotobuf-c zlib) -lpthread -ldl
nmicro=100000
[ "$rounds" -le 3 ] && nmicro=30000
for depth in 16 48; do
    : >"$work/m$depth"
    for _ in $(seq 1 "$rounds"); do
        env -u PROFAGENT_SOCKET PROFAGENT_MEM_RATE=0 "$work/cpu_sig_micro" "$nmicro" "$depth" >>"$work/m$depth"
    done
    field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" "$work/m$depth" | bench_median; }
    dh=$(field deliver_handler_ns)
    do_=$(field deliver_only_ns)
    hd=$(field handler_direct_ns)
    dr=$(field drain_ns)
    awk -v d="$depth" -v dh="$dh" -v do_="$do_" -v hd="$hd" -v dr="$dr" 'BEGIN {
        printf "depth %2d: per sample %.0f ns (signal delivery + handler; delivery with an empty handler %.0f, handler called without a signal frame, so with its unw_step fallback, %.0f) + drain %.0f ns\n", d, dh, do_, hd, dr
        printf "          at 100 Hz: %.3f%% of each busy core\n", (dh + dr) * 100 / 1e9 * 100 }'
done

echo
echo "## lock hooks per acquisition (bench/agent/lock_micro.c, LD_PRELOAD libprofagent.so, stack depth 16, medians of $rounds)"
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -o "$work/lock_micro" "$here/lock_micro.c" -lpthread
nlock=2000000
[ "$rounds" -le 3 ] && nlock=500000
lib=$build/agent-lib/libprofagent.so
lock_micro() { # lock_micro THREADS none|BLOCK/FRACTION N [yield]
    if [ "$2" = none ]; then
        "$work/lock_micro" "$1" "$3" 16 ${4:-}
    else
        env -u PROFAGENT_SOCKET LD_PRELOAD="$lib" PROFAGENT_MEM_RATE=0 PROFAGENT_BLOCK_RATE="${2%/*}" \
            PROFAGENT_MUTEX_FRACTION="${2#*/}" "$work/lock_micro" "$1" "$3" 16 ${4:-}
    fi
}
# "2y": 2 threads, the holder yields under the lock, so that nearly every lock is contended
for t in 1 2 2y; do
    for set in none 0/0 1/1 10000/10; do
        : >"$work/lk.$t.${set//\//_}"
    done
    for _ in $(seq 1 "$rounds"); do
        for set in none 0/0 1/1 10000/10; do
            if [ "$t" = 2y ]; then
                lock_micro 2 "$set" $((nlock / 50)) yield >>"$work/lk.$t.${set//\//_}"
            else
                lock_micro "$t" "$set" "$nlock" >>"$work/lk.$t.${set//\//_}"
            fi
        done
    done
    for set in none 0/0 1/1 10000/10; do
        f=$work/lk.$t.${set//\//_}
        printf "threads %-2s %-22s CPU %8.1f ns/acquisition, contended %6.2f%% of locks\n" "$t" \
            "$([ "$set" = none ] && echo "no agent" || echo "block/mutex $set")" \
            "$(sed -n 's/.* cpu_ns_per_acq=\([0-9.]*\).*/\1/p' "$f" | bench_median)" \
            "$(sed -n 's/.* contended_pct=\([0-9.]*\).*/\1/p' "$f" | bench_median)"
    done
done

if [ "$callgrind" = 1 ]; then
    echo
    echo "## (c) instructions (callgrind, user space): /randomstring?n=64 ab -c 4 -n $calls, /contend?threads=2&ms=1000"
    printf "%-9s %12s %8s   %16s %8s\n" config "Ir/request" "ratio" "Ir/acquisition" "ratio"
    for cfg in off heap lock1 lockprod; do
        start_rs "$cfg" valgrind --tool=callgrind --callgrind-out-file="$work/cg.$cfg"
        vpid=${pid_of[$cfg]}
        url="http://127.0.0.1:${port[$cfg]}"
        bench_wait_http "$url/" 60
        ab -c 4 -n 200 "$url$path" >/dev/null 2>&1 || true
        callgrind_control -z "$vpid" >/dev/null 2>&1
        ab -c 4 -n "$calls" "$url$path" >"$work/cg.$cfg.ab" 2>&1 || true
        callgrind_control -d "$vpid" >/dev/null 2>&1
        body=$(curl -sf -m 120 "$url/contend?threads=2&ms=1000")
        callgrind_control -d "$vpid" >/dev/null 2>&1
        kill -TERM "$vpid" 2>/dev/null || true
        failed=$(awk '/^Failed requests:/ { print $3 }' "$work/cg.$cfg.ab")
        [ "${failed:-x}" = 0 ] || { echo "overhead.sh: ab under callgrind ($cfg) failed: $(tail -3 "$work/cg.$cfg.ab")" >&2; exit 1; }
        ir1=$(callgrind_annotate "$work/cg.$cfg.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        ir2=$(callgrind_annotate "$work/cg.$cfg.2" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        acq=$(echo "$body" | awk '/ acquisitions/ { print $(NF - 1) }')
        echo "$cfg $(awk -v t="$ir1" -v n="$calls" 'BEGIN { print t / n }') $(awk -v t="$ir2" -v a="$acq" 'BEGIN { print t / a }') $acq" >>"$work/cg.table"
    done
    awk 'NR == 1 { r0 = $2; a0 = $3 }
        { printf "%-9s %12.0f %8.4f   %16.1f %8.4f   (%s acquisitions)\n", $1, $2, $2 / r0, $3, $3 / a0, $4 }' "$work/cg.table"
fi

if [ "$cpu_script" = 1 ]; then
    echo
    if [ -x "$here/cpu_overhead.sh" ]; then
        echo "## bench/agent/cpu_overhead.sh (its owner's figures)"
        PG_BUILD_DIR=$build timeout 600 "$here/cpu_overhead.sh" || echo "cpu_overhead.sh failed ($?)"
    else
        echo "## bench/agent/cpu_overhead.sh: not present"
    fi
fi
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
