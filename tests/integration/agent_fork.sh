#!/usr/bin/env bash
# integration.agent_fork: a forked child starts without the parent's agent, can start its own
# on another socket, and its exit leaves the parent's agent and socket alone.
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"

PSOCK=$T/parent.sock
CSOCK=$T/child.sock

PROFAGENT_SOCKET=$PSOCK pg_start fork "$BIN/tests/programs/agent_fork" "$CSOCK" 3
pg_wait_unix "$PSOCK" 10
pg_wait_unix "$CSOCK" 10
cmd_of()  # cmd_of SOCK: the agent's cmdline, NULs as spaces
{
    timeout 10 curl -s --unix-socket "$1" http://agent/debug/pprof/cmdline | tr '\0' ' '
}
pg_check "parent agent answers" test -n "$(cmd_of "$PSOCK")"
pg_check "child agent answers on its own socket" test -n "$(cmd_of "$CSOCK")"
pg_check "child did not inherit the agent" grep -q '^child inherited (none)$' "$T/fork.log"
for _ in $(seq 1 100); do
    grep -q '^child exit' "$T/fork.log" && break
    sleep 0.1
done
pg_check "child exited 0" grep -q '^child exit 0$' "$T/fork.log"
pg_check "child's socket removed at its stop" test ! -e "$CSOCK"
pg_check "parent's socket still there after the child's exit" test -S "$PSOCK"
code=$(timeout 30 curl -s --unix-socket "$PSOCK" -o "$T/p.pb.gz" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=1")
pg_check "parent still profiles after the fork ($code)" test "$code" = 200
timeout 15 tail --pid="$(pg_pid fork)" -f /dev/null
pg_check "parent exits by itself after its agent stops" bash -c "! kill -0 $(pg_pid fork) 2>/dev/null"
pg_check "parent's socket removed at its stop" test ! -e "$PSOCK"
pg_done
