#!/usr/bin/env bash
# integration.agent_threads_stress: the thread and lock profiles under load, for a bounded
# time. randomstring (block and mutex profiling on) spawns threads, contends on a mutex and
# waits on condition variables in loops driven by curl, while goroutine (debug 0, 1, 2),
# threadcreate, block and mutex are fetched round-robin from the agent. Every fetch must answer
# 200 within 10 s (a hang fails), every proto must parse with go tool pprof, the workload
# must keep being served, and the service must exit cleanly (no sanitizer report in its log).
# Sanitizer builds: block and mutex, whose hooks a runtime may shadow, may answer 500 naming
# it; that answer is accepted for them and nothing else (threadcreate must answer 200: the
# runtime's pthread_create interceptor calls the hook next).
# ctest-timeout: 150
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

pg_need "$RS" go
SAN=$(pg_san "$RS")
SECONDS_LOAD=${SECONDS_LOAD:-20}

RS_PORT=$(pg_free_port) || exit 1
SOCK=$T/agent/rs.sock
PROFAGENT_BLOCK_RATE=10000 PROFAGENT_MUTEX_FRACTION=2 \
    pg_start rs "$RS" --listen 127.0.0.1:$RS_PORT --agent-socket "$SOCK"
pg_wait_port "$RS_PORT" && pg_wait_unix "$SOCK" || { pg_log rs; echo "FAIL: randomstring did not come up"; exit 1; }
URL=http://127.0.0.1:$RS_PORT

# load loops, each bounded by count and by time
load()
{
    local path=$1 end=$((SECONDS + SECONDS_LOAD)) n=0
    while [ $SECONDS -lt $end ] && [ $n -lt 100000 ]; do
        curl -s -m 10 -o /dev/null "$URL$path" && n=$((n + 1))
    done
    echo "$n" >"$T/load$(echo "$path" | tr -c 'a-z' '_').n"
}
load "/spawn?n=8" &
L1=$!
load "/contend?threads=4&ms=20" &
L2=$!
load "/block?ms=2" &
L3=$!
load "/randomstring?n=32" &
L4=$!

kinds=("goroutine" "goroutine?debug=1" "goroutine?debug=2" "threadcreate" "block" "mutex" \
    "threadcreate?debug=1" "block?debug=1" "mutex?debug=1")
end=$((SECONDS + SECONDS_LOAD))
fetched=0
bad=0
parsed=0
unparsed=0
i=0
while [ $SECONDS -lt $end ] && [ $i -lt 5000 ]; do
    k=${kinds[$((i % ${#kinds[@]}))]}
    out=$T/f.out
    code=$(curl -s -m 10 --unix-socket "$SOCK" -o "$out" -w '%{http_code}' "http://agent/debug/pprof/$k")
    i=$((i + 1))
    if [ "$code" = 200 ]; then
        fetched=$((fetched + 1))
        if [[ "$k" != *debug* ]]; then
            if go tool pprof -raw "$out" >/dev/null 2>"$T/parse.err"; then
                parsed=$((parsed + 1))
            else
                unparsed=$((unparsed + 1))
                echo "does not parse: $k: $(head -c 200 "$T/parse.err")"
            fi
        fi
    elif [ -n "$SAN" ] && [ "$code" = 500 ] && grep -q "is bound to .*san" "$out" &&
        [[ "$k" == block* || "$k" == mutex* ]]; then
        fetched=$((fetched + 1))
    else
        bad=$((bad + 1))
        echo "fetch $k: '${code:-timeout}' $(head -c 200 "$out" 2>/dev/null)"
    fi
done
wait $L1 $L2 $L3 $L4
pg_check "$fetched profiles fetched under load, none failed or hung ($bad bad)" \
    bash -c "[ $bad = 0 ] && [ $fetched -ge ${#kinds[@]} ]"
pg_check "$parsed protos parsed with go tool pprof ($unparsed did not)" \
    bash -c "[ $unparsed = 0 ] && [ $parsed -ge 2 ]"
for f in "$T"/load*.n; do
    pg_check "load loop $(basename "$f" .n) made progress ($(cat "$f") requests)" [ "$(cat "$f")" -ge 5 ]
done
pg_rs_serving "$URL"
pg_stop_check rs "randomstring exits 0 on SIGTERM after the load"
pg_check "no sanitizer report in randomstring's log" \
    bash -c "! grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:' '$T/rs.log'"
[ "$PG_FAILED" = 0 ] || pg_log rs 60
pg_done
