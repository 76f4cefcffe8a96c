#!/usr/bin/env bash
# integration.agent_trace_block: blocking events in /debug/pprof/trace. randomstring (agent on
# a unix socket, PROFAGENT_BLOCK_RATE unset: the trace records waits on its own) serves
# /contend?threads=8&ms=1000 and /block?ms=300 while a 5 s trace runs (asked for once the
# trace's timers exist). Read with python3's json: the trace parses; "cat":"block" complete
# events named pthread_mutex_lock sit on at least two contend worker threads (tids other than
# the main thread's) with args.caller rs_contend_worker, every block event has a positive
# duration of at least 10 us and lies in the trace's window (a wait begun before the trace
# may start before it); the condition wait of /block is a pthread_cond_timedwait event of
# 300 ms or more in rs_block_wait; otherData counts block events and drops. Under TSan,
# pthread_cond_timedwait never reaches the hooks (TSan calls glibc's directly): that check is
# skipped there, and args.caller is TSan's interceptor, so any thread's mutex waits count
# (the main thread's too, which a loaded machine shows). A sanitizer runtime that does not
# forward pthread_mutex_lock to the agent (the block profile then answers 500 naming it)
# records nothing: then only the parsing and otherData are checked.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET PROFAGENT_BLOCK_RATE PROFAGENT_MUTEX_FRACTION

pg_need "$RS" curl python3
SAN=$(pg_san "$RS")
port=$(pg_free_port) || exit 1
SOCK=$T/agent/rs.sock
pg_start rs "$RS" --listen 127.0.0.1:$port --agent-socket "$SOCK"
pg_wait_port "$port" && pg_wait_unix "$SOCK" || { pg_log rs; echo "FAIL: randomstring did not come up"; exit 1; }

code=$(curl -s -m 10 --unix-socket "$SOCK" -o "$T/block.probe" -w '%{http_code}' "http://agent/debug/pprof/block")
HOOKED=1
if [ "$code" != 200 ]; then
    if [ -n "$SAN" ]; then
        HOOKED=0
        echo "note: $SAN does not forward pthread_mutex_lock to libprofagent ($(head -c 160 "$T/block.probe")): no block events expected"
    else
        pg_fail "block profile probe: $code $(head -c 160 "$T/block.probe")"
    fi
fi
CONDS=1
CALLER=rs_contend_worker
if [[ "$SAN" == libtsan* ]]; then
    CONDS=0
    CALLER=
    echo "note: TSan calls glibc's pthread_cond_timedwait directly, not libprofagent's: the condition wait is not checked"
    echo "note: TSan's interceptor calls our pthread_mutex_lock: args.caller is the interceptor, not rs_contend_worker, and is not checked"
fi

curl -s -m 60 --unix-socket "$SOCK" -D "$T/trace.head" -o "$T/trace.json" \
    "http://agent/debug/pprof/trace?seconds=5" &
CURL=$!
# Wait until the trace runs (its SIGPROF timers show in /proc/PID/timers; the hooks record
# from microseconds later), however slow the machine: a wait that begins before the trace is
# not recorded, so a fixed sleep here lost the waits on a loaded machine.
PID=$(pg_pid rs)
for _ in $(seq 1 200); do
    grep -q '^signal: 27/' "/proc/$PID/timers" 2>/dev/null && break
    sleep 0.05
done
pg_check "the trace's CPU timers exist before the waits start" grep -q '^signal: 27/' "/proc/$PID/timers"
out=$(curl -s -m 20 "http://127.0.0.1:$port/contend?threads=8&ms=1000")
pg_check "GET /contend?threads=8&ms=1000 during the trace ($out)" bash -c "[[ '$out' == '8 threads contended'* ]]"
out=$(curl -s -m 20 "http://127.0.0.1:$port/block?ms=300")
pg_check "GET /block?ms=300 during the trace ($out)" bash -c "[[ '$out' == 'blocked'* ]]"
# A wait is recorded when it ends, if the trace still runs: say so plainly if it did not
pg_check "the trace was still running when both waits had ended" kill -0 $CURL
wait $CURL
pg_check "trace: 200" grep -q '^HTTP/1.1 200' "$T/trace.head"

python3 - "$T/trace.json" "$(pg_pid rs)" "$HOOKED" "$CONDS" "$CALLER" >"$T/check.txt" 2>&1 <<'PY'
import json, sys
path, pid, hooked, conds, caller = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1", sys.argv[5]
doc = json.load(open(path))
print("ok the trace parses as JSON")
ev = doc["traceEvents"]
od = doc["otherData"]
def check(ok, what):
    print(("ok " if ok else "FAIL ") + what)
blocks = [e for e in ev if e.get("cat") == "block"]
end = [e["ts"] for e in ev if e["ph"] == "i" and e["name"] == "trace end"][0]
check(int(od["block_events"]) == len(blocks), f"otherData.block_events {od['block_events']} == {len(blocks)} events")
check("block_events_dropped" in od and od["blocking"].startswith("recorded"), f"otherData says blocking is recorded, drops counted ({od['block_events_dropped']})")
check(all(e["ph"] == "X" and e["dur"] >= 10 and e["ts"] + e["dur"] > 0 and e["ts"] <= end + 1000 for e in blocks),
      "every block event: X, dur >= 10 us, inside the trace window")
if hooked:
    mx = [e for e in blocks if e["name"] == "pthread_mutex_lock" and (not caller or e["args"]["caller"] == caller)]
    tids = {e["tid"] for e in mx}
    # by caller, only the workers wait; without (TSan), the main thread may wait on a lock too
    check(len(tids - {pid}) >= 2 and (not caller or pid not in tids),
          f"pthread_mutex_lock waits {'in ' + caller if caller else ''} on >= 2 worker threads ({len(mx)} events on {sorted(tids)}, main {pid})")
    check(all(e["dur"] > 0 for e in mx) and mx, "contended waits have positive durations")
    if conds:
        # one wait until the 300 ms deadline (a spurious wake-up would split it in two)
        cw = [e for e in blocks if e["name"] == "pthread_cond_timedwait" and e["args"]["caller"] == "rs_block_wait"]
        check(cw and sum(e["dur"] for e in cw) >= 250e3, f"pthread_cond_timedwait in rs_block_wait, 300 ms in all ({[e['dur'] for e in cw]})")
PY
cat "$T/check.txt"
pg_check "every check above holds" \
    bash -c "grep -q '^ok ' '$T/check.txt' && ! grep -qv '^ok ' '$T/check.txt'"
# under TSan also: no report (exit 66), pa_cpu's thread rescan included
pg_stop_check rs "randomstring exits 0 on SIGTERM"
[ "$PG_FAILED" = 0 ] || pg_log rs
pg_done
