#!/usr/bin/env bash
# integration.agent_trace: /debug/pprof/trace?seconds=N is a Chrome trace-event JSON timeline
# (Perfetto, chrome://tracing) of per-thread CPU samples. agent_cpu_share runs threads
# "cpu-heavy" and "cpu-light" burning 3:1; a 2 s trace is fetched and read with python3's
# json: served as application/json; thread_name metadata for both threads by their tids; CPU
# sample events ("ph":"X") on both, inside the trace's window, stacks through the thread's own
# function (heavy's mostly in cpu_share_burn), more on heavy than on light; start/end
# instants, the end not before the seconds asked for (otherData.seconds); a CPU profile asked
# for while the trace runs gets Go's 500; no seconds means 1 s (Go's default). No upper bound
# on durations: a loaded machine may answer late.
# Blocking events ("cat":"block") are checked by integration.agent_trace_block; here
# otherData says they are recorded and counts them.
# ctest-timeout: 120
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

P=$BIN/tests/programs/agent_cpu_share
pg_need "$P" curl python3
SOCK=$T/agent/trace.sock
pg_start share "$P" --socket "$SOCK" --seconds 30
pg_wait_unix "$SOCK" || { pg_log share; echo "FAIL: agent socket did not come up"; exit 1; }
for _ in $(seq 1 50); do grep -q '^light ' "$T/share.log" && break; sleep 0.1; done
curl -s -m 30 --unix-socket "$SOCK" -D "$T/trace.head" -o "$T/trace.json" \
    "http://agent/debug/pprof/trace?seconds=2" &
CURL=$!
# wait until the trace runs (its SIGPROF timers show in /proc/PID/timers), so that the CPU
# profile below is surely the second one, however slow the machine
PID=$(pg_pid share)
if [ -r "/proc/$PID/timers" ]; then
    for _ in $(seq 1 100); do
        grep -q '^signal: 27/' "/proc/$PID/timers" && break
        sleep 0.1
    done
else
    sleep 1
fi
code=$(curl -s -m 10 --unix-socket "$SOCK" -o "$T/busy.txt" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=1")
pg_check "a CPU profile during the trace: 500 (got $code: $(cat "$T/busy.txt"))" \
    bash -c "[ $code = 500 ] && grep -q 'cpu profiling already in use' '$T/busy.txt'"
wait $CURL
pg_check "trace: 200" grep -q '^HTTP/1.1 200' "$T/trace.head"
pg_check "trace: Content-Type application/json" grep -qi '^Content-Type: application/json' "$T/trace.head"
HT=$(awk '$1 == "heavy" { print $2 }' "$T/share.log")
LT=$(awk '$1 == "light" { print $2 }' "$T/share.log")
python3 - "$T/trace.json" "$HT" "$LT" >"$T/check.txt" 2>&1 <<'PY'
import json, sys
path, ht, lt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
doc = json.load(open(path))
ev = doc["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
xs = [e for e in ev if e["ph"] == "X" and e.get("cat") == "cpu"]
by = lambda t: [e for e in xs if e["tid"] == t]
heavy, light = by(ht), by(lt)
ends = [e for e in ev if e["ph"] == "i" and e["name"] == "trace end"]
def check(ok, what):
    print(("ok " if ok else "FAIL ") + what)
check(names.get(ht) == "cpu-heavy", f"thread_name of {ht} is cpu-heavy ({names.get(ht)})")
check(names.get(lt) == "cpu-light", f"thread_name of {lt} is cpu-light ({names.get(lt)})")
check(len(heavy) >= 5 and len(light) >= 2, f"samples on both threads (heavy {len(heavy)}, light {len(light)})")
check(len(heavy) > len(light), f"more samples on heavy than on light ({len(heavy)} > {len(light)})")
# Nearly all of heavy's CPU is in cpu_share_burn, but not all: the barrier between rounds costs
# some (a loaded machine once put one of the first 50 samples in pthread_barrier_wait), so
# every sample is on cpu_share_heavy's thread stack and most go through cpu_share_burn.
burn = [e for e in heavy if "cpu_share_burn" in e["args"]["stack"]]
check(all("cpu_share_heavy" in e["args"]["stack"] for e in heavy) and 2 * len(burn) > len(heavy),
      f"heavy's samples unwind to cpu_share_heavy, most through cpu_share_burn ({len(burn)} of {len(heavy)})")
check(all("cpu_share_light" in e["args"]["stack"] for e in light) and light, "light's samples are in cpu_share_light")
# the end instant is when recording stopped: not before the 2 s asked for (later when loaded)
check(doc["otherData"]["seconds"] == "2", f"otherData.seconds is 2 ({doc['otherData'].get('seconds')})")
check(len(ends) == 1 and ends[0]["ts"] >= 1.9e6, f"one trace end instant, at 2 s or later ({[e['ts'] for e in ends]})")
end = ends[0]["ts"] if ends else 0
check(all(-20000 <= e["ts"] and e["ts"] + e["dur"] <= end + 1000 and e["dur"] > 0 for e in xs),
      "every sample lies inside the trace window with a positive duration")
check(any(e["ph"] == "i" and e["name"] == "trace start" for e in ev), "trace start instant")
check(doc["otherData"]["blocking"].startswith("recorded") and int(doc["otherData"]["block_events"]) == len([e for e in ev if e.get("cat") == "block"]),
      "otherData says blocking events are recorded and counts them")
check(doc["otherData"]["cpu_timer"].startswith("cpu timer: per-thread"), "per-thread CPU timer named")
PY
cat "$T/check.txt"
pg_check "the trace parses as JSON and every check above holds" \
    bash -c "grep -q '^ok ' '$T/check.txt' && ! grep -qv '^ok ' '$T/check.txt'"
curl -s -m 30 --unix-socket "$SOCK" -o "$T/t1.json" "http://agent/debug/pprof/trace"
one=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["otherData"]["seconds"], [e["ts"] for e in d["traceEvents"] if e["name"] == "trace end"][0])' "$T/t1.json" 2>&1)
pg_check "trace without seconds lasts 1 s, as Go's (seconds, end in us: $one)" \
    python3 -c "import sys; s, e = '$one'.split(); sys.exit(0 if s == '1' and float(e) >= 0.9e6 else 1)"
pg_stop_check share "agent_cpu_share exits 0 on SIGTERM"
[ "$PG_FAILED" = 0 ] || pg_log share
pg_done
