# tests/integration/lib/common.sh: helpers every integration scenario sources.
#   . "$(dirname "$0")/lib/common.sh"
# Gives: $T (a private temp dir, removed at exit unless PG_KEEP_TMP=1), $BIN (build dir),
# pg_free_port, pg_wait_port, pg_wait_unix, pg_start NAME CMD... (background, PID recorded,
# output in $T/NAME.log; every started PID is killed at exit), pg_stop NAME, pg_fail MSG,
# pg_check DESC CMD... (counts passes/failures), pg_done (prints "N passed, M failed", exits).
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
