#!/usr/bin/env bash
# integration.agent_fork_points: a host forks every 2 ms while its agent builds profiles. The
# agent thread lets a waiting fork go ahead at fork points between the steps of a profile
# build (pa_agent.h), not only when parked in poll(); at such a point it must hold no lock
# (malloc's, ASan's allocator's, the loader's, stdio's, ours), or a child would inherit it
# held and hang. Every child of agent_fork_latency allocates blocks of every size class up to
# 1 MiB, calls dladdr and fopen, and exits 0; the host counts children that hang (killed
# after 10 s) or fail. Meanwhile heap, allocs (4096 live stacks at PROFAGENT_MEM_RATE=1),
# goroutine, threadcreate and 1-second CPU profiles are fetched back to back for 10 s, in
# proto and text forms: every answer must be its usual status, and no child may hang.
# Sanitizer builds: heap and allocs answer 501 (as integration.agent_heap checks), threadcreate
# 200 as in plain builds; the forks and children are checked the same.
# ctest-timeout: 120
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

PROG=$BIN/tests/programs/agent_fork_latency
[ -x "$PROG" ] || { echo "FAIL: $PROG not built"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not installed"; exit 1; }
SAN=$(ldd "$PROG" | grep -Eo 'lib[at]san[^ ]*' | head -n 1)
SOCK=$T/agent.sock

PROFAGENT_SOCKET=$SOCK PROFAGENT_MEM_RATE=1 pg_start host "$PROG" 14 2 4096 1
pg_wait_unix "$SOCK" 20 || { pg_log host; echo "FAIL: the agent did not come up"; exit 1; }
for _ in $(seq 1 100); do
    grep -q '^ready' "$T/host.log" && break
    sleep 0.1
done
pg_check "host ready: $(grep '^ready' "$T/host.log")" grep -q '^ready' "$T/host.log"

# want NAME: the status NAME (path?query) answers in this build
want()
{
    case "$1" in
    heap* | allocs*) [ -n "$SAN" ] && echo 501 || echo 200 ;;
    *) echo 200 ;;
    esac
}

paths="heap allocs?debug=1 goroutine goroutine?debug=2 threadcreate?debug=1 heap?debug=1 profile?seconds=1"
declare -A got=() bad=()
end=$((SECONDS + 10))
for round in $(seq 1 200); do
    [ $SECONDS -ge $end ] && break
    for p in $paths; do
        code=$(curl -s -m 30 --unix-socket "$SOCK" -o /dev/null -w '%{http_code}' \
            "http://agent/debug/pprof/$p")
        got[$p]=$((${got[$p]:-0} + 1))
        [ "$code" = "$(want "$p")" ] || bad[$p]="${bad[$p]:-} $code"
    done
done
for p in $paths; do
    pg_check "$p: ${got[$p]:-0} answers, each $(want "$p") (others:${bad[$p]:-} none)" \
        bash -c "[ ${got[$p]:-0} -ge 1 ] && [ -z '${bad[$p]:-}' ]"
done

timeout 60 tail --pid="$(pg_pid host)" -f /dev/null
pg_stop host
rc=$?
summary=$(grep -E '^forks|^children' "$T/host.log" | tr '\n' ' ')
echo "host: $summary"
forks=$(sed -n 's/^forks \([0-9]*\) .*/\1/p' "$T/host.log")
pg_check "the host forked throughout (got ${forks:-0} forks, want >= 100)" [ "${forks:-0}" -ge 100 ]
pg_check "no child hung or failed: $(grep '^children' "$T/host.log")" \
    grep -q '^children hung 0 failed 0$' "$T/host.log"
pg_check "host exited 0 (got $rc)" [ "$rc" = 0 ]
pg_done
