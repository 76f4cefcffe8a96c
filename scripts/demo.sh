#!/usr/bin/env bash
# demo.sh BUILD_DIR: what `make demo` runs after installing and building. Starts the demo
# service randomstring (127.0.0.1:9000, agent on /tmp/profgate/randomstring.sock) and the
# gateway profgate (127.0.0.1:8080, configs/demo.toml) in the foreground, checks that both came
# up, prints the commands to try, and stops both on Ctrl-C / SIGTERM (exit 0).
# Exits non-zero, naming the program and the reason, when either cannot start or dies.
# DEMO_PG_PORT, DEMO_RS_PORT and DEMO_AGENT_SOCK (environment) move it elsewhere, e.g. when
# 8080 is taken: then it runs a copy of configs/demo.toml with those values.
set -u

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: scripts/demo.sh BUILD_DIR}
case "$BUILD" in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
CONFIG=$SRC/configs/demo.toml
CONFIG_SHOWN=configs/demo.toml
RS_BIN=$BUILD/demo-upstream/randomstring
PG_BIN=$BUILD/proxy/profgate
RS_PORT=${DEMO_RS_PORT:-9000}
PG_PORT=${DEMO_PG_PORT:-8080}
AGENT_SOCK=${DEMO_AGENT_SOCK:-/tmp/profgate/randomstring.sock}
CONFIG_COPY=
STARTUP_SECS=10

RS_PID=
PG_PID=
STOPPING=0

say()
{
    echo "demo: $*" >&2
}

# stop PID NAME: SIGTERM, then up to STOP_SECS to exit (profgate drains requests in flight,
# e.g. a running CPU profile, for up to 10 s), then SIGKILL. Only PIDs this script started.
STOP_SECS=15
stop()
{
    local pid=$1 name=$2 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null
        return 0
    }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 $((STOP_SECS * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$i" = 20 ] && say "waiting for $name (pid $pid) to finish what is in flight"
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) did not stop within $STOP_SECS s of SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
}

stop_all()
{
    stop "$PG_PID" profgate
    PG_PID=
    stop "$RS_PID" randomstring
    RS_PID=
    [ -z "$CONFIG_COPY" ] || rm -f "$CONFIG_COPY"
}

# fail MESSAGE: stop what was started and exit 1.
fail()
{
    say "ERROR: $*"
    stop_all
    exit 1
}

on_signal()
{
    STOPPING=1
    echo >&2
    say "stopping profgate and randomstring"
    stop_all
    say "stopped"
    exit 0
}
trap on_signal INT TERM

listening()
{
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# who_listens PORT: the process holding a port, when ss can say.
who_listens()
{
    local who
    who=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n 1)
    [ -n "$who" ] && echo " ($who)"
}

# wait_up NAME PID PORT [SOCKET]: until PORT accepts (and SOCKET exists), or NAME exits.
wait_up()
{
    local name=$1 pid=$2 port=$3 sock=${4:-} rc
    for _ in $(seq 1 $((STARTUP_SECS * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            rc=$?
            fail "$name exited during start-up (exit status $rc); its messages are above"
        fi
        if listening "$port" && { [ -z "$sock" ] || [ -S "$sock" ]; }; then
            return 0
        fi
        sleep 0.1
    done
    if ! listening "$port"; then
        fail "$name (pid $pid) is running but not listening on 127.0.0.1:$port after ${STARTUP_SECS}s"
    fi
    fail "$name (pid $pid) listens on 127.0.0.1:$port but its agent socket $sock did not appear after ${STARTUP_SECS}s"
}

for bin in "$RS_BIN" "$PG_BIN"; do
    [ -x "$bin" ] || { say "ERROR: $bin is not built (run: make build BUILD=$1)"; exit 1; }
done
[ -r "$CONFIG" ] || { say "ERROR: $CONFIG is missing"; exit 1; }
if [ "$PG_PORT:$RS_PORT:$AGENT_SOCK" != 8080:9000:/tmp/profgate/randomstring.sock ]; then
    CONFIG_COPY=$(mktemp "${TMPDIR:-/tmp}/profgate-demo.XXXXXX.toml") || exit 1
    sed -e "s#\"127.0.0.1:8080\"#\"127.0.0.1:$PG_PORT\"#" -e "s#\"127.0.0.1:9000\"#\"127.0.0.1:$RS_PORT\"#" \
        -e "s#\"unix:/tmp/profgate/randomstring.sock\"#\"unix:$AGENT_SOCK\"#" "$CONFIG" >"$CONFIG_COPY"
    CONFIG=$CONFIG_COPY
    CONFIG_SHOWN="$CONFIG_COPY, configs/demo.toml on ports $PG_PORT and $RS_PORT"
fi

# Check before starting, so that the message names the port rather than a bind error.
if listening "$RS_PORT"; then
    say "ERROR: cannot start randomstring: port $RS_PORT on 127.0.0.1 is busy$(who_listens $RS_PORT)"
    say "       (another demo still running? stop it, free the port, or choose others:"
    say "       DEMO_PG_PORT=8081 DEMO_RS_PORT=9001 make demo)"
    exit 1
fi
if listening "$PG_PORT"; then
    say "ERROR: cannot start profgate: port $PG_PORT on 127.0.0.1 is busy$(who_listens $PG_PORT)"
    say "       (another demo still running? stop it, free the port, or choose others:"
    say "       DEMO_PG_PORT=8081 DEMO_RS_PORT=9001 make demo)"
    exit 1
fi

if ! "$PG_BIN" --check --config "$CONFIG" >/dev/null 2>"${TMPDIR:-/tmp}/profgate-demo-check.$$"; then
    cat "${TMPDIR:-/tmp}/profgate-demo-check.$$" >&2
    rm -f "${TMPDIR:-/tmp}/profgate-demo-check.$$"
    say "ERROR: profgate rejects $CONFIG (messages above)"
    stop_all
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/profgate-demo-check.$$"

mkdir -p "$(dirname "$AGENT_SOCK")"
# The agent's own PROFAGENT_SOCKET must not compete with --agent-socket.
env -u PROFAGENT_SOCKET "$RS_BIN" --listen "127.0.0.1:$RS_PORT" --agent-socket "$AGENT_SOCK" &
RS_PID=$!
wait_up randomstring "$RS_PID" "$RS_PORT" "$AGENT_SOCK"

"$PG_BIN" --config "$CONFIG" &
PG_PID=$!
wait_up profgate "$PG_PID" "$PG_PORT"

cat >&2 <<EOF

  profgate     http://127.0.0.1:$PG_PORT  (pid $PG_PID, config $CONFIG_SHOWN)
  randomstring http://127.0.0.1:$RS_PORT  (pid $RS_PID, agent $AGENT_SOCK)

  Try, in other terminals (the seed's workflow):
    go tool pprof -seconds 30 http://localhost:$PG_PORT/debug/pprof/profile
    ab -k -c 8 -n 100000 "http://localhost:$PG_PORT/randomstring"
  then at the (pprof) prompt: top, or web.

  Or just look:
    curl http://localhost:$PG_PORT/randomstring
    curl http://localhost:$PG_PORT/debug/pprof/
    curl http://localhost:$PG_PORT/            (the demo service's other endpoints)

  Ctrl-C stops both.

EOF

# Stay in the foreground until a signal (the trap exits 0) or until one of them dies.
# A Ctrl-C in the terminal goes to the whole process group: randomstring and profgate stop on
# it themselves, with status 0, and bash, seeing its child handle the SIGINT, does not run
# the trap. So a program that exited 0 was asked to stop: stop the other one too, exit 0.
while true; do
    done_pid=
    wait -n -p done_pid "$RS_PID" "$PG_PID"
    rc=$?
    [ "$STOPPING" = 1 ] && exit 0
    case $done_pid in
    "$RS_PID") name=randomstring RS_PID= ;;
    "$PG_PID") name=profgate PG_PID= ;;
    *) continue ;; # not one of them (wait interrupted)
    esac
    [ "$rc" = 0 ] || fail "$name exited unexpectedly (status $rc)"
    echo >&2
    say "$name stopped (Ctrl-C, or a SIGTERM); stopping the other"
    stop_all
    say "stopped"
    exit 0
done
