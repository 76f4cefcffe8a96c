# tests/integration/lib/common.sh: helpers every integration scenario sources.
#   . "$(dirname "$0")/lib/common.sh"
# Gives: $T (a private temp dir, removed at exit unless PG_KEEP_TMP=1), $BIN (build dir),
# pg_free_port, pg_wait_port, pg_wait_unix, pg_up, pg_start NAME CMD... (background, PID recorded,
# output in $T/NAME.log; every started PID is killed at exit), pg_stop NAME, pg_fail MSG,
# pg_check DESC CMD... (counts passes/failures), pg_done (prints "N passed, M failed", exits),
# pg_gateway_config and pg_demo_start (randomstring with its agent behind profgate).
set -u

BIN=${PG_BUILD_DIR:?PG_BUILD_DIR must point at the build directory}
SRC=${PG_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
T=$(mktemp -d "${TMPDIR:-/tmp}/pg-itest.XXXXXX")
export HOME=$T PPROF_TMPDIR=$T/pprof GOCACHE=$T/gocache GOFLAGS=-mod=mod
mkdir -p "$PPROF_TMPDIR"

declare -A PG_PIDS=()
PG_PASSED=0
PG_FAILED=0

pg_cleanup()
{
    local name pid
    for name in "${!PG_PIDS[@]}"; do
        pid=${PG_PIDS[$name]}
        kill "$pid" 2>/dev/null
    done
    for name in "${!PG_PIDS[@]}"; do
        pid=${PG_PIDS[$name]}
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null
    done
    if [ "${PG_KEEP_TMP:-0}" = 1 ]; then
        echo "kept $T"
    else
        rm -rf "$T"
    fi
}
trap pg_cleanup EXIT

# A TCP port on 127.0.0.1 that nothing listens on now (random, so parallel tests rarely meet;
# below 32768, the kernel's ephemeral range, so a parallel test's outgoing connection never holds it).
pg_free_port()
{
    local p
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % 22000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# pg_wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
pg_wait_port()
{
    local port=$1 secs=${2:-30} i
    for i in $(seq 1 $((secs * 10))); do
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listening on 127.0.0.1:$port after ${secs}s" >&2
    return 1
}

# pg_wait_unix PATH [SECONDS]: until PATH is a socket.
pg_wait_unix()
{
    local path=$1 secs=${2:-30} i
    for i in $(seq 1 $((secs * 10))); do
        [ -S "$path" ] && return 0
        sleep 0.1
    done
    echo "no socket at $path after ${secs}s" >&2
    return 1
}

# pg_up NAME PORT [SOCKET] [SECONDS]: until NAME (started by pg_start) accepts on
# 127.0.0.1:PORT and SOCKET exists; fails at once when NAME has exited, else after SECONDS (30).
pg_up()
{
    local pid=${PG_PIDS[$1]} secs=${4:-30}
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && { [ -z "${3:-}" ] || [ -S "$3" ]; }; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# pg_start NAME CMD...: run CMD in the background, output to $T/NAME.log.
pg_start()
{
    local name=$1
    shift
    "$@" >"$T/$name.log" 2>&1 &
    PG_PIDS[$name]=$!
}

pg_pid()
{
    echo "${PG_PIDS[$1]}"
}

# pg_stop NAME [SIGNAL]: signal it and wait for it to exit; prints its exit status.
pg_stop()
{
    local name=$1 sig=${2:-TERM} pid=${PG_PIDS[$1]} rc
    kill -"$sig" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    unset "PG_PIDS[$name]"
    return $rc
}

pg_log()
{
    echo "--- $1 log:"
    tail -n "${2:-40}" "$T/$1.log" 2>/dev/null
}

pg_fail()
{
    echo "FAIL: $*"
    PG_FAILED=$((PG_FAILED + 1))
}

pg_pass()
{
    echo "ok: $*"
    PG_PASSED=$((PG_PASSED + 1))
}

# pg_check DESC CMD...: run CMD; pass if it exits 0.
pg_check()
{
    local desc=$1
    shift
    if "$@"; then
        pg_pass "$desc"
    else
        pg_fail "$desc"
    fi
}

# pg_done: the closing line, and the exit status.
pg_done()
{
    echo "$PG_PASSED passed, $PG_FAILED failed"
    [ "$PG_FAILED" -eq 0 ] && [ "$PG_PASSED" -gt 0 ]
    exit $?
}

# pg_gateway_config PG_PORT UPSTREAM_ADDR AGENT_SOCKET [NAME]: on stdout, the one-service
# gateway config most scenarios use (1 worker, route "/", loopback-only pprof, max 60 s);
# lines in $PG_PPROF_EXTRA are added to its [pprof] table.
pg_gateway_config()
{
    cat <<CONF
[server]
listen  = "127.0.0.1:$1"
workers = 1

[[upstream]]
name    = "${4:-randomstring}"
address = "$2"
agent   = "unix:$3"

[[route]]
prefix   = "/"
upstream = "${4:-randomstring}"

[pprof]
path        = "/debug/pprof"
allow       = ["127.0.0.0/8", "::1/128"]
max_seconds = 60
${PG_PPROF_EXTRA:-}
CONF
}

# pg_demo_start [--name N] [NAME=VALUE...]: randomstring (pg_start name "rs", agent on $SOCK,
# with the NAME=VALUE environment) behind profgate (name "pg", config $T/profgate.toml from
# pg_gateway_config), both up or the scenario fails. Sets RS_PORT, PG_PORT, SOCK and GW.
# With --name N (for several pairs in one scenario): names rs-N and pg-N, socket
# $T/agent/N.sock, config $T/N.toml.
pg_demo_start()
{
    local rs=rs pg=pg conf=$T/profgate.toml attempt
    SOCK=$T/agent/randomstring.sock
    if [ "${1:-}" = --name ]; then
        rs=rs-$2 pg=pg-$2 conf=$T/$2.toml SOCK=$T/agent/$2.sock
        shift 2
    fi
    # a port free when picked can be taken before the bind by a parallel test: pick again
    for attempt in 1 2 3; do
        RS_PORT=$(pg_free_port) || exit 1
        PG_PORT=$RS_PORT
        while [ "$PG_PORT" = "$RS_PORT" ]; do PG_PORT=$(pg_free_port) || exit 1; done
        GW=http://127.0.0.1:$PG_PORT
        pg_gateway_config "$PG_PORT" "127.0.0.1:$RS_PORT" "$SOCK" >"$conf"
        pg_start $rs env "$@" "$BIN/demo-upstream/randomstring" --listen "127.0.0.1:$RS_PORT" \
            --agent-socket "$SOCK"
        if ! pg_up $rs "$RS_PORT" "$SOCK"; then
            pg_stop $rs
            [ $attempt -lt 3 ] && grep -qi 'address already in use' "$T/$rs.log" && continue
            pg_log $rs
            echo "FAIL: randomstring did not come up"
            exit 1
        fi
        pg_start $pg "$BIN/proxy/profgate" --config "$conf"
        pg_up $pg "$PG_PORT" && return 0
        pg_stop $pg
        pg_stop $rs
        [ $attempt -lt 3 ] && grep -qi 'address already in use' "$T/$pg.log" && continue
        pg_log $pg
        echo "FAIL: profgate did not come up"
        exit 1
    done
}
