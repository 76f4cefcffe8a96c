#!/usr/bin/env bash
# integration.demo_script: scripts/demo.sh, what `make demo` runs, on free ports
# (DEMO_PG_PORT, DEMO_RS_PORT, DEMO_AGENT_SOCK): both programs come up and the gateway serves
# the demo service and its CPU profile; Ctrl-C in the terminal (SIGINT to the whole process
# group, which randomstring and profgate receive too) and SIGTERM to the script alone each
# stop both with exit 0 and no ERROR; a demo service that is killed is reported by name,
# exit 1, and the gateway is stopped with it.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need curl setsid "$RS"
DEMO=$SRC/scripts/demo.sh

# demo_up N: scripts/demo.sh in a session of its own (its PID is its process group), output
# in $T/demo-N.out; waits for its "Ctrl-C stops both" and sets DPID, DPG_PID, DRS_PID, DPORT.
demo_up()
{
    local n=$1
    pg_ports DPORT DRS_PORT
    DEMO_PG_PORT=$DPORT DEMO_RS_PORT=$DRS_PORT DEMO_AGENT_SOCK=$T/agent-$n.sock \
        setsid bash "$DEMO" "$BIN" >"$T/demo-$n.out" 2>&1 &
    DPID=$!
    PG_PIDS[demo$n]=$DPID
    pg_poll 30 grep -q 'Ctrl-C stops both' "$T/demo-$n.out" ||
        { cat "$T/demo-$n.out"; pg_fail "demo $n did not come up"; pg_done; }
    DPG_PID=$(sed -n 's/^  profgate .*(pid \([0-9]*\),.*/\1/p' "$T/demo-$n.out")
    DRS_PID=$(sed -n 's/^  randomstring .*(pid \([0-9]*\),.*/\1/p' "$T/demo-$n.out")
}

# demo_exit N: waits up to 30 s for the script; its exit status in DRC
demo_exit()
{
    local i
    for i in $(seq 1 300); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    wait "$DPID"
    DRC=$?
    unset "PG_PIDS[demo$1]"
}

gone() { ! kill -0 "$1" 2>/dev/null; }

# 1: up and serving, then Ctrl-C
demo_up 1
pg_check "demo 1: pids of both printed ($DPG_PID, $DRS_PID)" test -n "$DPG_PID" -a -n "$DRS_PID"
pg_check "demo 1: says which config it runs" grep -q "config .*configs/demo.toml on ports $DPORT" "$T/demo-1.out"
pg_check "demo 1: /randomstring through the gateway" \
    bash -c "curl -sf -m 10 'http://127.0.0.1:$DPORT/randomstring' | grep -q ."
curl -s -m 20 -o "$T/cpu.pb.gz" "http://127.0.0.1:$DPORT/debug/pprof/profile?seconds=1"
pg_check "demo 1: a gzipped CPU profile through the gateway" \
    bash -c "head -c 2 '$T/cpu.pb.gz' | od -An -tx1 | grep -q '1f 8b'"
kill -INT -- "-$DPID"
demo_exit 1
pg_check "Ctrl-C (SIGINT to the process group): exit 0 (got $DRC)" test "$DRC" = 0
pg_check "Ctrl-C: says stopped" grep -q '^demo: stopped' "$T/demo-1.out"
pg_check "Ctrl-C: no ERROR" bash -c "! grep -q ERROR '$T/demo-1.out'"
pg_check "Ctrl-C: profgate gone" gone "$DPG_PID"
pg_check "Ctrl-C: randomstring gone" gone "$DRS_PID"
copy=$(sed -n 's/^  profgate .*config \([^,]*\.toml\), configs\/demo.toml on ports.*/\1/p' "$T/demo-1.out")
pg_check "Ctrl-C: its config copy ($copy) removed" test -n "$copy" -a ! -e "$copy"

# 2: SIGTERM to the script alone: its trap stops both
demo_up 2
kill -TERM "$DPID"
demo_exit 2
pg_check "SIGTERM to the script: exit 0 (got $DRC)" test "$DRC" = 0
pg_check "SIGTERM: says stopped, no ERROR" \
    bash -c "grep -q '^demo: stopped' '$T/demo-2.out' && ! grep -q ERROR '$T/demo-2.out'"
pg_check "SIGTERM: both gone" bash -c "! kill -0 $DPG_PID 2>/dev/null && ! kill -0 $DRS_PID 2>/dev/null"

# 3: the demo service dies: named, exit 1, the gateway stopped too
demo_up 3
kill -KILL "$DRS_PID"
demo_exit 3
pg_check "randomstring killed: exit 1 (got $DRC)" test "$DRC" = 1
pg_check "randomstring killed: named with its status" \
    grep -q 'ERROR: randomstring exited unexpectedly (status 137)' "$T/demo-3.out"
pg_check "randomstring killed: profgate stopped too" gone "$DPG_PID"

pg_done
