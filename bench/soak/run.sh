#!/usr/bin/env bash
# bench/soak/run.sh: profgate and an agent-linked service under mixed traffic and profile
# fetches for MINUTES (default 10, at most 120): nothing may fail and, after the warm-up,
# neither process's RSS may grow more than 5%. Not a ctest (issue 6; figures in bench/RESULTS.md).
#   bench/soak/run.sh [MINUTES]      (PG_BUILD_DIR: build directory, default build/;
#                                     SOAK_WARMUP: warm-up seconds, default a fifth of the run)
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
# fetch 200, both processes alive at the end, and for each process the mean RSS of the last 3
# samples is within 5% of the mean of the first 3 samples after the warm-up (by default the
# first fifth of the run; at least 30 s). The peak after the warm-up is printed beside it. Exit 0 on pass.
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

PROFAGENT_BLOCK_RATE=1000 PROFAGENT_MUTEX_FRACTION=5 \
    "$RS" --listen "127.0.0.1:$R" --agent-socket "$SOCK" >"$work/rs.log" 2>&1 &
rspid=$!
pids+=("$rspid")
bench_wait_port "$R" || { echo "run.sh: randomstring did not start"; cat "$work/rs.log"; exit 1; }
"$PG" --config "$work/pg.toml" >"$work/pg.log" 2>&1 &
pgpid=$!
pids+=("$pgpid")
bench_wait_port "$P" || { echo "run.sh: profgate did not start"; cat "$work/pg.log"; exit 1; }

total=$((minutes * 60))
warm=${SOAK_WARMUP:-$((total / 5))}
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
while true; do
    left=$((deadline - $(date +%s)))
    [ "$left" -lt 5 ] && break
    d=30
    [ "$left" -lt 40 ] && d=$((left - 3))
    round=$((round + 1))
    timeout $((d + 30)) wrk -t2 -c16 -d "${d}s" --timeout 10s -s "$work/soak.lua" "$base/" \
        >"$work/wrk.$round" 2>&1
    echo "wrk round $round rc $?" >>"$work/wrk.all"
    cat "$work/wrk.$round" >>"$work/wrk.all"
    [ $((deadline - $(date +%s))) -lt 15 ] && break
    timeout 60 ab -s 10 -c 4 -n 2000 "$base/randomstring?n=128" >"$work/ab.$round" 2>&1
    echo "ab round $round rc $?" >>"$work/ab.all"
    cat "$work/ab.$round" >>"$work/ab.all"
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

# RSS: baseline = mean of the first 3 samples at or after the warm-up, final = mean of the last 3
rss_line()  # rss_line COLUMN NAME
{
    awk -F, -v c="$1" -v w="$warm" -v name="$2" '
        BEGIN { n = 0 }
        NR > 1 && $c != "" { t[n] = $1; v[n] = $c; n++ }
        END {
            for (i = 0; i < n && t[i] < w; i++) ;
            if (n - i < 6) { printf "  %-13s too few samples after the warm-up\n", name; exit 1 }
            b = (v[i] + v[i+1] + v[i+2]) / 3
            f = (v[n-1] + v[n-2] + v[n-3]) / 3
            pk = 0; for (j = i; j < n; j++) if (v[j] > pk) pk = v[j]
            g = (f - b) * 100 / b
            printf "  %-13s RSS at warm-up %.0f KiB, at end %.0f KiB (%+.2f%%), peak after warm-up %d KiB (%+.2f%%), first sample %d KiB, %d samples\n",
                name, b, f, g, pk, (pk - b) * 100 / b, v[0], n
            exit (g > 5.0) ? 1 : 0
        }' "$work/rss.csv"
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
