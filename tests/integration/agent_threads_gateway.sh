#!/usr/bin/env bash
# integration.agent_threads_gateway: goroutine and threadcreate through the gateway, the way a
# user runs them: randomstring (agent linked in) behind profgate, `go tool pprof` pointed at
# <gateway>/debug/pprof/{goroutine,threadcreate}. After 3 x GET /spawn?n=5, threadcreate has
# exactly 15 creations under rs_spawn; goroutine has the event loop thread in uv_run and the
# agent's own thread; debug=1 and debug=2 pass through with their text.
# Sanitizer builds: the runtime binds pthread_create first and its interceptor calls ours
# next, so threadcreate is checked as in plain builds.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

pg_need "$RS" "$PG" go curl
SAN=$(pg_san "$RS")

pg_demo_start


for i in 1 2 3; do
    out=$(curl -s -m 10 "$GW/spawn?n=5")
    pg_check "GET /spawn?n=5 through the gateway ($out)" [ "$out" = "spawned and joined 5 threads" ]
done

# --- threadcreate, with go tool pprof against the gateway
pg_pprof_raw "go tool pprof -raw $GW/debug/pprof/threadcreate" "$GW/debug/pprof/threadcreate" "$T/tc.raw"
n=$(pg_raw_count "$T/tc.raw" rs_spawn)
pg_check "threadcreate: 15 creations under rs_spawn (got $n)" [ "$n" = 15 ]
curl -s -m 10 "$GW/debug/pprof/threadcreate?debug=1" >"$T/tc1.txt"
pg_check "threadcreate?debug=1 through the gateway: a record of 15 at rs_spawn" \
    bash -c "awk '/^15 @ /{r=1;next} r&&/^\$/{r=0} r' '$T/tc1.txt' | grep -Pq '^#\t0x[0-9a-f]+\trs_spawn\+0x'"

# --- threadcreate?seconds=3 through the gateway while 4 more threads are spawned: only they
curl -s -m 30 -o "$T/tcd.pb.gz" -w '%{http_code}' "$GW/debug/pprof/threadcreate?seconds=3" >"$T/tcd.code" &
CURL=$!
sleep 1
out=$(curl -s -m 10 "$GW/spawn?n=4")
pg_check "GET /spawn?n=4 inside the delta window ($out)" [ "$out" = "spawned and joined 4 threads" ]
wait $CURL
pg_check "threadcreate?seconds=3: 200 (got $(cat "$T/tcd.code"))" [ "$(cat "$T/tcd.code")" = 200 ]
if go tool pprof -raw "$T/tcd.pb.gz" >"$T/tcd.raw" 2>"$T/tcd.err"; then
    n=$(pg_raw_count "$T/tcd.raw" rs_spawn)
    pg_check "threadcreate?seconds=3: the 4 creations of the window under rs_spawn (got $n)" [ "$n" = 4 ]
else
    pg_fail "threadcreate?seconds=3 does not parse: $(head -c 300 "$T/tcd.err")"
fi

# --- goroutine
pg_pprof_raw "go tool pprof -raw $GW/debug/pprof/goroutine" "$GW/debug/pprof/goroutine" "$T/g.raw"
pg_check "goroutine: PeriodType goroutine count" grep -q '^PeriodType: goroutine count' "$T/g.raw"
if [[ "$SAN" == libtsan* ]]; then
    # TSan defers the agent's signal and runs the handler from its own trampoline, where the
    # unwinder stops: the other threads' stacks end there, so uv_run is not looked for; the
    # threads must still be listed with a stack each
    pg_check "goroutine under TSan: the threads are listed with stacks ($(grep '^Comment: threads' "$T/g.raw"))" \
        grep -Eq '^Comment: threads: [0-9]+ listed, [1-9][0-9]* with a stack' "$T/g.raw"
    echo "note: TSan's signal trampoline ends the threads' stacks: uv_run is not checked in this build"
else
    n=$(pg_raw_count "$T/g.raw" uv_run)
    pg_check "goroutine: the event loop thread is in uv_run (got $n)" [ "$n" -ge 1 ]
fi
n=$(pg_raw_count "$T/g.raw" pa_server_run)
pg_check "goroutine: the agent's own thread (got $n)" [ "$n" = 1 ]
curl -s -m 10 "$GW/debug/pprof/goroutine?debug=1" >"$T/g1.txt"
pg_check "goroutine?debug=1 through the gateway: header" grep -Eq '^goroutine profile: total [0-9]+$' "$T/g1.txt"
curl -s -m 10 "$GW/debug/pprof/goroutine?debug=2" >"$T/g2.txt"
pg_check "goroutine?debug=2 through the gateway: the main thread by name" \
    grep -Eq '^thread [0-9]+ \[randomstring, ' "$T/g2.txt"
pg_check "goroutine?debug=2 through the gateway: profagent listed" \
    grep -Eq '^thread [0-9]+ \[profagent, ' "$T/g2.txt"

pg_demo_stop "after the profiles"
[ "$PG_FAILED" = 0 ] || { pg_log rs; pg_log pg; cat "$T/g.err" "$T/tc.err" 2>/dev/null; }
pg_done
