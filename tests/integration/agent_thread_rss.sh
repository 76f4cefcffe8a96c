#!/usr/bin/env bash
# integration.agent_thread_rss: the agent's per-thread unwind memory is bounded. libunwind's
# unw_backtrace gives each thread that calls it a 256 KiB trace cache, kept until the thread
# exits; only PROFAGENT_UNWIND_CACHES threads at once (default 64: 16 MiB) may have one, the
# others are unwound with unw_step. agent_thread_rss makes 300 threads that each burn 10 ms of
# CPU under a CPU profile at 1000 Hz and allocate 8 MiB (heap sampling at the default rate),
# then hold still. Checks:
#  - VmRSS grew by less than 48 MiB over the 300 threads (with a cache each: ~80 MiB; bounded:
#    16 MiB of caches plus the threads' own ~3 MiB; plain builds only, a sanitizer's own
#    per-thread memory is its business);
#  - the CPU profile (taken while every thread is alive) has the burn loop's samples, and every
#    one of them reaches the thread's start routine (whole stacks, most from the unw_step walk);
#  - the heap profile has the threads' allocation site, reached from the start routine too.
# Without the bound (PROFAGENT_UNWIND_CACHES=65536) the first check fails.
# ctest-timeout: 180
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

# raw_both RAW F G: the first values of the samples whose stack holds both F and G
raw_both()
{
    awk -v f="$2" -v g="$3" '
        /^Samples:/ { sec = "s"; next }
        /^Locations/ { sec = "l"; next }
        /^Mappings/ { sec = "" }
        sec == "s" && /^ *[0-9]+( +[0-9]+)*: / { n++; v[n] = $1 + 0; ids[n] = substr($0, index($0, ":") + 1) }
        sec == "l" && $1 ~ /^[0-9]+:$/ { for (i = 2; i <= NF; i++) { if ($i == f) hf[$1 + 0] = 1; if ($i == g) hg[$1 + 0] = 1 } }
        END {
            for (j = 1; j <= n; j++) {
                k = split(ids[j], a, " "); xf = 0; xg = 0
                for (i = 1; i <= k; i++) { if (a[i] + 0 in hf) xf = 1; if (a[i] + 0 in hg) xg = 1 }
                if (xf && xg) s += v[j]
            }
            print s + 0
        }' "$1"
}

P=$BIN/tests/programs/agent_thread_rss
pg_need "$P" go curl
SOCK=$T/agent/rss.sock
mkdir -p "$T/agent"
PROFAGENT_CPU_HZ=1000 pg_start rss "$P" --socket "$SOCK" --go "$T/go" --end "$T/end" \
    --threads 300 --burn-ms 10
pg_wait_unix "$SOCK" || { pg_log rss; echo "FAIL: agent socket did not come up"; exit 1; }
curl -s -m 90 --unix-socket "$SOCK" -o "$T/cpu.pb.gz" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=20" >"$T/cpu.code" &
CURL=$!
sleep 0.5
touch "$T/go"
pg_poll 120 grep -q '^threads=' "$T/rss.log"
line=$(grep '^threads=' "$T/rss.log")
echo "$line"
wait "$CURL"
code=$(curl -s -m 30 --unix-socket "$SOCK" -o "$T/heap.pb.gz" -w '%{http_code}' \
    "http://agent/debug/pprof/heap")
touch "$T/end"
pg_check "all 300 threads ran ($line)" grep -q '^threads=300 ' "$T/rss.log"
before=$(sed -n 's/.*rss_before_kib=\([0-9]*\).*/\1/p' <<<"$line")
after=$(sed -n 's/.*rss_after_kib=\([0-9]*\).*/\1/p' <<<"$line")
growth=$(( ${after:-0} - ${before:-0} ))
if [ -n "$(pg_san "$P")" ]; then
    echo "note: sanitizer build: RSS grew by $growth KiB over 300 threads (not checked)"
else
    pg_check "RSS grew by $growth KiB over 300 sampled threads (< 49152 KiB)" \
        [ -n "$before" -a -n "$after" -a "$growth" -lt 49152 ]
fi
pg_check "cpu profile: 200 (got $(cat "$T/cpu.code"))" [ "$(cat "$T/cpu.code")" = 200 ]
pg_pprof_raw "the cpu profile parses" "$T/cpu.pb.gz" "$T/cpu.raw"
burn=$(raw_both "$T/cpu.raw" thread_rss_burn thread_rss_burn)
burn_worker=$(raw_both "$T/cpu.raw" thread_rss_burn worker)
pg_check "the burn loop has samples ($burn >= 300)" [ "$burn" -ge 300 ]
pg_check "every burn sample reaches worker ($burn_worker of $burn)" [ "$burn_worker" = "$burn" ]
if [ -n "$(pg_san "$P")" ]; then
    echo "note: sanitizer build: the sanitizer owns malloc, no heap profile (got $code)"
else
    pg_check "heap profile: 200 (got $code)" [ "$code" = 200 ]
    pg_pprof_raw "the heap profile parses" "$T/heap.pb.gz" "$T/heap.raw"
    alloc=$(raw_both "$T/heap.raw" thread_rss_alloc thread_rss_alloc)
    alloc_worker=$(raw_both "$T/heap.raw" thread_rss_alloc worker)
    pg_check "heap samples in thread_rss_alloc ($alloc allocations) all reach worker ($alloc_worker)" \
        [ "$alloc" -ge 1 -a "$alloc_worker" = "$alloc" ]
fi
wait "$(pg_pid rss)"
rc=$?
unset "PG_PIDS[rss]"
pg_check "agent_thread_rss exits 0 once released (got $rc)" [ "$rc" = 0 ]
[ "$PG_FAILED" = 0 ] || pg_log rss
pg_done
