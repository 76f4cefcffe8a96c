#!/usr/bin/env bash
# integration.agent_dlopen_stress: CPU profiles of a process whose threads dlopen/dlclose in a
# loop (loader lock held almost all the time) while others malloc/free and burn CPU. The agent
# must neither hang the host nor itself: each profile arrives within a bound, parses with
# go tool pprof, and the workload's counters keep growing across profiles.
# ctest-timeout: 150
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"

PROG=$BIN/tests/programs/agent_dlopen_stress
SOCK=$T/agent/stress.sock
NPROF=${NPROF:-4}

PROFAGENT_SOCKET=$SOCK pg_start stress "$PROG" --threads 3 --seconds 120
pg_wait_unix "$SOCK" 10 || { pg_log stress; pg_fail "agent socket did not appear"; pg_done; }

counters()
{
    tail -n 1 "$T/stress.log" | sed -n 's/^loops=\([0-9]*\) work=\([0-9]*\)$/\1 \2/p'
}

sleep 0.5
read -r loops0 work0 <<<"$(counters)"
loader_seen=0
burn_seen=0
for i in $(seq 1 "$NPROF"); do
    out=$T/p$i.pb.gz
    # 3 s profile; 30 s is far beyond any honest answer, so a timeout means a hang
    code=$(timeout 30 curl -s --unix-socket "$SOCK" -o "$out" -w '%{http_code}' \
        "http://agent/debug/pprof/profile?seconds=3")
    pg_check "profile $i answered 200 within 30 s (got '${code:-timeout}')" test "$code" = 200
    pg_pprof_raw "profile $i parses with go tool pprof -raw" "$out" "$T/p$i.raw"
    grep -q 'in dynamic loader' "$T/p$i.raw" && loader_seen=$((loader_seen + 1))
    grep -q 'stress_alloc_burn' "$T/p$i.raw" && burn_seen=$((burn_seen + 1))
    read -r loops work <<<"$(counters)"
    pg_check "profile $i: dlopen loop progressed ($loops0 -> $loops)" test "${loops:-0}" -gt "${loops0:-0}"
    pg_check "profile $i: workers progressed ($work0 -> $work)" test "${work:-0}" -gt "${work0:-0}"
    loops0=$loops
    work0=$work
done

# While the loader thread is inside dlopen the handler must not unwind: samples then carry
# the [in dynamic loader] marker. Some sample must also have been unwound fully.
pg_check "[in dynamic loader] samples present in $loader_seen/$NPROF profiles" test "$loader_seen" -ge 1
pg_check "stress_alloc_burn present in $burn_seen/$NPROF profiles" test "$burn_seen" -ge 1

# a profile cut short by its client: the agent must stay usable
timeout 5 curl -s --unix-socket "$SOCK" -m 1 -o /dev/null "http://agent/debug/pprof/profile?seconds=20"
code=$(timeout 30 curl -s --unix-socket "$SOCK" -o "$T/after.pb.gz" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=1")
pg_check "after a client left mid-profile, a new profile is served (got '$code')" test "$code" = 200

pg_check "process still alive" kill -0 "$(pg_pid stress)"
timeout 20 bash -c "kill -TERM $(pg_pid stress); while kill -0 $(pg_pid stress) 2>/dev/null; do sleep 0.1; done"
pg_check "workload exits on SIGTERM within 20 s" grep -q '^done ' "$T/stress.log"
pg_stop stress
rc=$?
pg_check "workload exit status 0 (got $rc)" test "$rc" = 0
pg_check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$T/stress.log'"
pg_check "socket file removed at stop" test ! -e "$SOCK"
grep -q 'profagent:' "$T/stress.log" && { echo "agent said:"; grep 'profagent:' "$T/stress.log"; }
pg_done
