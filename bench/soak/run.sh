#!/usr/bin/env bash
# bench/soak/run.sh: profgate and an agent-linked service under mixed traffic and profile
# fetches for MINUTES (default 10, at most 120): nothing may fail and, after the warm-up,
# neither process's RSS may grow more than 5%. Not a ctest (issue 6; figures in bench/RESULTS.md).
#   bench/soak/run.sh [MINUTES]      (PG_BUILD_DIR: build directory, default build/;
#                                     SOAK_WARMUP: warm-up seconds, default a third of the run;
#                                     SOAK_LEAK=1: randomstring leaks on purpose, see below)
# Set-up: randomstring (its agent on a Unix socket, block and mutex profiling on) behind
# profgate (2 workers, metrics on), all on loopback, free ports. For the whole run, in parallel:
#   traffic   wrk -t2 -c16 in 30 s rounds, cycling /randomstring (n = 16..4096), /, /block,
#             /contend, /spawn, /alloc and /free (soak.lua); after each round, ab -c4 -n2000
#             without keep-alive on /randomstring?n=128 (a new connection per request);
#   profiles  one at a time through the gateway, round robin: profile?seconds=5, heap,
#             allocs, goroutine (debug=0/1/2), threadcreate, block, mutex, cmdline, symbol,
#             heap?debug=1, the deltas allocs?seconds=3, block?seconds=3, mutex?seconds=3, and
#             trace?seconds=2; each must answer 200 (protobuf ones gzip-compressed, trace JSON);
#   RSS       VmRSS of both processes every 5 s (rss.csv).
# Pass: wrk saw no socket error and no non-2xx answer, ab no failed request, every profile
# fetch 200, both processes alive at the end, and for each process RSS compared like with like:
# a traffic cycle is one wrk round plus its ab round (cycles.log), and RSS swings within a cycle
# (randomstring's /alloc blocks and its malloc arena are resident during wrk, trimmed during ab),
# so the first W whole cycles that start after the warm-up are compared with the last W
# whole cycles (W = 3, fewer in a short run): neither the peak (median of the per-cycle
# maxima) nor the median of all samples of the last window may exceed the first's by 5%. Warm-up: by default
# a third of the run, at least 30 s (the agent's tables and the arena fill during the first
# ~3 minutes, see bench/RESULTS.md). Exit 0 on pass.
# The check of the check: with SOAK_LEAK=1, bench/soak/leak_shim.c is compiled and
# LD_PRELOADed into randomstring, which then leaks 64 KiB per 10000 requests read (about
# 280 KiB per cycle; LEAK_KB and LEAK_EVERY change that); the run must FAIL.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=run.sh
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$here/../lib/common.sh"
src=$BENCH_SRC
build=${PG_BUILD_DIR:-$src/build}
minutes=${1:-10}
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ] || [ "$minutes" -gt 120 ]; then
    echo "run.sh: MINUTES must be a whole number in 1..120 (got \"$minutes\")" >&2
    exit 2
fi
PG=$build/proxy/profgate
RS=$build/demo-upstream/randomstring
for b in "$PG" "$RS"; do
    [ -x "$b" ] || { echo "run.sh: $b not built (make build, or set PG_BUILD_DIR)" >&2; exit 2; }
done
for t in wrk ab curl; do
    command -v "$t" >/dev/null || { echo "run.sh: $t is needed (scripts/install-deps.sh bench)" >&2; exit 2; }
done

keep=1 # the logs, rss.csv and profiles.log stay for a look afterwards
bench_workdir pg-soak

rss_kb()
{
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

P=$(bench_free_port)
R=$(bench_free_port)
SOCK=$work/run/rs.sock
base=http://127.0.0.1:$P
cat >"$work/pg.toml" <<EOF
[server]
listen       = "127.0.0.1:$P"
workers      = 2
metrics_path = "/metrics"

[[upstream]]
name    = "rs"
address = "127.0.0.1:$R"
agent   = "unix:$SOCK"

[[route]]
prefix   = "/"
upstream = "rs"
EOF
cat >"$work/soak.lua" <<'EOF'
-- each wrk thread cycles through these; /alloc holds 32 KiB until a /free (bounded)
local paths = {
    "/randomstring?n=16", "/randomstring?n=4096", "/", "/randomstring", "/block?ms=2",
    "/randomstring?n=256", "/contend?threads=2&ms=2", "/spawn?n=2", "/alloc?kb=32",
    "/randomstring?n=1024", "/free",
}
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", paths[(i % #paths) + 1])
end
EOF

preload=
if [ "${SOAK_LEAK:-0}" = 1 ]; then
    preload=$work/leak_shim.so
    cc -shared -fPIC -O2 -o "$preload" "$here/leak_shim.c" -ldl || exit 2
    echo "soak: SOAK_LEAK=1: randomstring leaks ${LEAK_KB:-64} KiB per ${LEAK_EVERY:-10000} reads"
fi
PROFAGENT_BLOCK_RATE=1000 PROFAGENT_MUTEX_FRACTION=5 env ${preload:+LD_PRELOAD="$preload"} \
    "$RS" --listen "127.0.0.1:$R" --agent-socket "$SOCK" >"$work/rs.log" 2>&1 &
rspid=$!
pids+=("$rspid")
bench_wait_port "$R" || { echo "run.sh: randomstring did not start"; cat "$work/rs.log"; exit 1; }
"$PG" --config "$work/pg.toml" >"$work/pg.log" 2>&1 &
pgpid=$!
pids+=("$pgpid")
bench_wait_port "$P" || { echo "run.sh: profgate did not start"; cat "$work/pg.log"; exit 1; }

total=$((minutes * 60))
warm=${SOAK_WARMUP:-$((total / 3))}
[ "$warm" -lt 30 ] && warm=30
if [ "$warm" -gt $((total - 60)) ]; then
    echo "run.sh: SOAK_WARMUP=$warm leaves under a minute of samples in a $total s run" >&2
    exit 2
fi
start=$(date +%s)
deadline=$((start + total))
echo "soak: $minutes min ($warm s warm-up), profgate pid $pgpid on :$P, randomstring pid $rspid on :$R"
echo "soak: build $build; work dir $work; load average $(cut -d' ' -f1-3 /proc/loadavg) at start"

# RSS sampler
(
    echo "t,profgate_kb,randomstring_kb"
    while [ "$(date +%s)" -lt "$deadline" ]; do
        echo "$(($(date +%s) - start)),$(rss_kb "$pgpid"),$(rss_kb "$rspid")"
        sleep 5
    done
) >"$work/rss.csv" &
pids+=($!)

# profile fetches, one at a time
(
    kinds=("profile?seconds=5" heap allocs goroutine "goroutine?debug=1" "goroutine?debug=2"
        threadcreate block mutex cmdline symbol "heap?debug=1" "allocs?seconds=3"
        "block?seconds=3" "mutex?seconds=3" "trace?seconds=2")
    i=0
    while [ "$(date +%s)" -lt $((deadline - 8)) ]; do
        k=${kinds[$((i % ${#kinds[@]}))]}
        i=$((i + 1))
        code=$(curl -s -m 60 -o "$work/prof.out" -w '%{http_code}' "$base/debug/pprof/$k")
        ok=1
        [ "$code" = 200 ] || ok=0
        case "$k" in
        cmdline | symbol | *debug=[12]*) ;;
        trace*) [ "$(head -c 1 "$work/prof.out")" = "{" ] || ok=0 ;;
        *) [ "$(head -c 2 "$work/prof.out" | od -An -tx1 | tr -d ' ')" = 1f8b ] || ok=0 ;;
        esac
        echo "$(($(date +%s) - start)) $k $code $(stat -c %s "$work/prof.out") $ok"
        sleep 1
    done
) >"$work/profiles.log" &
profpid=$!
pids+=("$profpid")

# traffic rounds
round=0
: >"$work/wrk.all"
: >"$work/ab.all"
: >"$work/cycles.log"
while true; do
    left=$((deadline - $(date +%s)))
    [ "$left" -lt 5 ] && break
    d=30
    [ "$left" -lt 40 ] && d=$((left - 3))
    round=$((round + 1))
    cstart=$(($(date +%s) - start))
    timeout $((d + 30)) wrk -t2 -c16 -d "${d}s" --timeout 10s -s "$work/soak.lua" "$base/" \
        >"$work/wrk.$round" 2>&1
    echo "wrk round $round rc $?" >>"$work/wrk.all"
    cat "$work/wrk.$round" >>"$work/wrk.all"
    [ $((deadline - $(date +%s))) -lt 15 ] && break
    timeout 60 ab -s 10 -c 4 -n 2000 "$base/randomstring?n=128" >"$work/ab.$round" 2>&1
    echo "ab round $round rc $?" >>"$work/ab.all"
    cat "$work/ab.$round" >>"$work/ab.all"
    # a whole cycle: a full-length wrk round and its ab round (start and end, s since start)
    [ "$d" = 30 ] && echo "$round $cstart $(($(date +%s) - start))" >>"$work/cycles.log"
done
wait "$profpid"
sleep 5 # the sampler's last sample

# ---- figures ----
fail=0
alive=1
for p in "$pgpid" "$rspid"; do kill -0 "$p" 2>/dev/null || alive=0; done
wrk_reqs=$(awk '/requests in/ { s += $1 } END { print s + 0 }' "$work/wrk.all")
wrk_rc=$(grep -c '^wrk round .* rc [1-9]' "$work/wrk.all")
wrk_sockerr=$(awk '/Socket errors:/ { gsub(",", ""); s += $4 + $6 + $8 + $10 } END { print s + 0 }' "$work/wrk.all")
wrk_non2xx=$(awk '/Non-2xx or 3xx responses:/ { s += $5 } END { print s + 0 }' "$work/wrk.all")
ab_done=$(awk '/^Complete requests:/ { s += $3 } END { print s + 0 }' "$work/ab.all")
ab_failed=$(awk '/^Failed requests:/ { s += $3 } END { print s + 0 }' "$work/ab.all")
ab_non2xx=$(awk '/^Non-2xx responses:/ { s += $3 } END { print s + 0 }' "$work/ab.all")
ab_rc=$(grep -c '^ab round .* rc [1-9]' "$work/ab.all")
prof_n=$(wc -l <"$work/profiles.log")
prof_bad=$(awk '$5 != 1' "$work/profiles.log" | wc -l)
echo
echo "soak: $round traffic rounds in $(($(date +%s) - start)) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "  wrk: $wrk_reqs requests (mixed endpoints, 16 keep-alive connections), socket errors $wrk_sockerr, non-2xx $wrk_non2xx, bad exits $wrk_rc"
echo "  ab:  $ab_done requests (a connection each), failed $ab_failed, non-2xx $ab_non2xx, bad exits $ab_rc"
echo "  profiles: $prof_n fetched through the gateway, $prof_bad not 200/valid; by kind:"
awk '{ n[$2]++; if ($5 != 1) b[$2]++ } END { for (k in n) printf "    %-20s %4d fetched, %d bad\n", k, n[k], b[k] + 0 }' \
    "$work/profiles.log" | sort
[ "$prof_bad" -gt 0 ] && awk '$5 != 1 { print "    bad: " $0 }' "$work/profiles.log" | head -5
[ "$wrk_sockerr" -eq 0 ] && [ "$wrk_non2xx" -eq 0 ] && [ "$wrk_rc" -eq 0 ] && [ "$wrk_reqs" -gt 0 ] || fail=1
[ "$ab_failed" -eq 0 ] && [ "$ab_non2xx" -eq 0 ] && [ "$ab_rc" -eq 0 ] && [ "$ab_done" -gt 0 ] || fail=1
[ "$prof_bad" -eq 0 ] && [ "$prof_n" -gt 0 ] || fail=1
[ "$alive" = 1 ] || { echo "  a process died"; fail=1; }

# RSS, like with like: the first W whole cycles starting at or after the warm-up against the
# last W whole cycles. Within a window, "peak" is the median of the cycles' maxima (a lone
# spike while a profile is built does not decide it) and "median" that of all its samples;
# each may grow 5% at most.
rss_line()  # rss_line COLUMN NAME
{
    awk -F, -v c="$1" -v w="$warm" -v name="$2" -v cf="$work/cycles.log" '
        function med(a, k,   i, j, x) {  # median of a[0..k-1] (insertion sort; k is small)
            for (i = 1; i < k; i++) { x = a[i]; for (j = i - 1; j >= 0 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
            return (k % 2) ? a[int(k / 2)] : (a[k/2 - 1] + a[k/2]) / 2
        }
        function window(first, last, tag,   i, j, k, a, p, mx) {  # cycles first..last
            k = 0
            for (j = first; j <= last; j++) {
                mx = 0
                for (i = 0; i < n; i++) if (t[i] >= cs[j] && t[i] < ce[j]) { a[k++] = v[i]; if (v[i] > mx) mx = v[i] }
                p[j - first] = mx
            }
            wk[tag] = k; wmax[tag] = med(p, last - first + 1); wmed[tag] = k ? med(a, k) : 0
        }
        BEGIN { n = 0; nc = 0 }
        FILENAME == cf { split($0, f, " "); if (f[2] >= w) { cs[nc] = f[2]; ce[nc] = f[3]; nc++ } next }
        FNR > 1 && $c != "" { t[n] = $1; v[n] = $c; n++ }
        END {
            W = int(nc / 2); if (W > 3) W = 3
            if (W < 1) { printf "  %-13s too few whole traffic cycles after the warm-up (%d)\n", name, nc; exit 1 }
            window(0, W - 1, "a"); window(nc - W, nc - 1, "b")
            if (wk["a"] < 3 || wk["b"] < 3) { printf "  %-13s too few samples in a window\n", name; exit 1 }
            gmax = (wmax["b"] - wmax["a"]) * 100 / wmax["a"]
            gmed = (wmed["b"] - wmed["a"]) * 100 / wmed["a"]
            printf "  %-13s RSS over cycles %d-%d (t %d-%d s): peak %d KiB, median %.0f KiB; over cycles %d-%d (t %d-%d s): peak %d KiB (%+.2f%%), median %.0f KiB (%+.2f%%); first sample %d KiB, %d samples, %d whole cycles after the warm-up\n",
                name, 1, W, cs[0], ce[W-1], wmax["a"], wmed["a"], nc - W + 1, nc, cs[nc-W], ce[nc-1],
                wmax["b"], gmax, wmed["b"], gmed, v[0], n, nc
            exit (gmax > 5.0 || gmed > 5.0) ? 1 : 0
        }' "$work/cycles.log" "$work/rss.csv"
}
rss_line 2 profgate || fail=1
rss_line 3 randomstring || fail=1
if [ "$fail" -eq 0 ]; then
    echo "soak: PASS (no failure; RSS growth after warm-up within 5%)"
else
    echo "soak: FAIL (see above)"
fi
echo "soak: logs, rss.csv (t s, profgate KiB, randomstring KiB) and profiles.log kept in $work"
exit "$fail"
