#!/usr/bin/env bash
# integration.agent_heap_stress: the heap hooks under load while profiles are taken. The
# workload (tests/programs/agent_heap_live) runs 4 threads allocating and freeing as fast as
# they can (rate 4096: a sample every few allocations) while its main thread forks children
# that allocate, free and exit; meanwhile heap, allocs, heap?debug=1 and allocs?seconds=1 are
# fetched in a loop (bounded: 12 s and 400 requests). Checks: every response is 200, the
# protos parse (go tool pprof -raw), every forked child exits 0, the workload answers and exits
# 0 (no deadlock, no crash), and after everything is freed nothing is in use under
# heap_churn. Sanitizer builds compile the hooks out: skipped there (the sanitizer's own
# stress coverage is agent_threads_stress).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET PROFAGENT_MEM_RATE

LIVE=$BIN/tests/programs/agent_heap_live
pg_need "$LIVE" go curl
if [ -n "$(pg_san "$LIVE")" ]; then
    echo "sanitizer build: the heap hooks are compiled out (agent_heap checks the 501); skipped"
    pg_pass "skipped in a sanitizer build"
    pg_done
fi

mkfifo "$T/cmd"
pg_start live env PROFAGENT_SOCKET="$T/live.sock" PROFAGENT_MEM_RATE=4096 \
    bash -c 'exec "$0" <"$1"' "$LIVE" "$T/cmd"
exec 3>"$T/cmd"
pg_wait_unix "$T/live.sock" 30 || { pg_log live; echo "FAIL: the workload did not come up"; exit 1; }

echo "forkchurn 10" >&3
paths=(/debug/pprof/heap /debug/pprof/allocs "/debug/pprof/heap?debug=1" "/debug/pprof/allocs?seconds=1")
n=0
bad=0
end=$((SECONDS + 12))
while [ $SECONDS -lt $end ] && [ $n -lt 400 ]; do
    p=${paths[$((n % 4))]}
    code=$(curl -s -m 20 --unix-socket "$T/live.sock" -o "$T/r$((n % 8))" -w '%{http_code}' "http://agent$p")
    if [ "$code" != 200 ]; then
        bad=$((bad + 1))
        echo "$p -> $code"
    elif [ $((n % 4)) != 2 ] && [ $((n % 16)) -lt 4 ]; then
        go tool pprof -raw "$T/r$((n % 8))" >"$T/raw" 2>&1 || { bad=$((bad + 1)); echo "$p: -raw failed"; }
    fi
    n=$((n + 1))
    grep -q '^forkchurned' "$T/live.log" && break
done
pg_check "$n profiles fetched during the churn, all 200 and parsed ($bad bad)" \
    bash -c "[ $bad = 0 ] && [ $n -gt 4 ]"

for _ in $(seq 1 300); do
    grep -q '^forkchurned' "$T/live.log" && break
    sleep 0.1
done
line=$(grep '^forkchurned' "$T/live.log")
pg_check "the workload finished its churn ($line)" grep -q '^forkchurned forks=[1-9][0-9]* bad=0$' "$T/live.log"

echo free >&3
for _ in $(seq 1 100); do
    grep -q '^freed' "$T/live.log" && break
    sleep 0.1
done
curl -s -m 20 --unix-socket "$T/live.sock" -o "$T/after.pb.gz" "http://agent/debug/pprof/heap"
go tool pprof -raw "$T/after.pb.gz" >"$T/after.raw" 2>&1
GOT=$(awk '
    /^Samples:/ { sec = "s"; getline; next }
    /^Locations/ { sec = "l"; next }
    /^Mappings/ { sec = "" }
    sec == "s" && index($0, ":") {
        split($0, parts, ":"); split(parts[1], vals, " "); split(parts[2], locs, " ")
        n++; val[n] = vals[4]; leaf[n] = locs[1] + 0
    }
    sec == "l" && $1 ~ /^[0-9]+:$/ { name[$1 + 0] = $4 }
    END { for (j = 1; j <= n; j++) if (name[leaf[j]] == "heap_churn") s += val[j]; print s + 0 }' "$T/after.raw")
pg_check "after the churn, nothing in use under heap_churn (inuse_space $GOT)" [ "$GOT" = 0 ]

pid=$(pg_pid live)
echo quit >&3
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
pg_stop live
rc=$?
pg_check "the workload exits 0 (rc=$rc)" [ $rc = 0 ]
[ "$PG_FAILED" != 0 ] && pg_log live
pg_done
