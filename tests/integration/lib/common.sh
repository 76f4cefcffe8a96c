# tests/integration/lib/common.sh: helpers every integration scenario sources.
#   . "$(dirname "$0")/lib/common.sh"
# Gives: $T (a private temp dir, removed at exit unless PG_KEEP_TMP=1), $BIN (build dir),
# $PG, $RS, $UP (profgate, randomstring, tests/programs/pg_test_upstream in $BIN), and
#  - set-up: pg_need (binaries built, tools installed, else the scenario ends), pg_free_port,
#    pg_ports, pg_poll, pg_wait_port, pg_wait_unix, pg_up, pg_start NAME CMD... (background, PID
#    recorded, output in $T/NAME.log; every started PID is killed at exit), pg_stop NAME,
#    pg_upstreams (test upstreams up), pg_ready and pg_gateway (profgate up, or the scenario
#    ends), pg_two_upstreams_config, pg_gateway_config, pg_demo_start (randomstring with its
#    agent behind profgate), pg_san (the sanitizer runtime a binary links, if any);
#  - checks: pg_fail MSG, pg_check DESC CMD... (counts passes/failures), pg_done (prints "N
#    passed, M failed", exits), pg_stop_check, pg_rs_serving and pg_demo_stop (closing checks);
#  - `go tool pprof -raw`: pg_pprof_raw (parses, a check), pg_raw_count, pg_leaf_sum,
#    pg_within10 (reading its output).
set -u

BIN=${PG_BUILD_DIR:?PG_BUILD_DIR must point at the build directory}
PG=$BIN/proxy/profgate
RS=$BIN/demo-upstream/randomstring
UP=$BIN/tests/programs/pg_test_upstream
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
        if ! pg_port_open "$p"; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# pg_ports VAR...: a free port (pg_free_port) in each variable named, none of them one that
# pg_ports has handed out before in this scenario (so two servers never get the same one).
PG_PORTS_TAKEN=" "
pg_ports()
{
    local var p
    for var in "$@"; do
        p=$(pg_free_port) || exit 1
        while [[ $PG_PORTS_TAKEN == *" $p "* ]]; do p=$(pg_free_port) || exit 1; done
        PG_PORTS_TAKEN+="$p "
        printf -v "$var" '%s' "$p"
    done
}

# pg_poll SECONDS CMD...: CMD every 0.1 s until it succeeds; false after SECONDS.
pg_poll()
{
    local secs=$1
    shift
    for _ in $(seq 1 $((secs * 10))); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

pg_port_open()
{
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
pg_wait_port()
{
    pg_poll "${2:-30}" pg_port_open "$1" && return 0
    echo "nothing listening on 127.0.0.1:$1 after ${2:-30}s" >&2
    return 1
}

# pg_wait_unix PATH [SECONDS]: until PATH is a socket.
pg_wait_unix()
{
    pg_poll "${2:-30}" test -S "$1" && return 0
    echo "no socket at $1 after ${2:-30}s" >&2
    return 1
}

# pg_up NAME PORT [SOCKET] [SECONDS]: until NAME (started by pg_start) accepts on
# 127.0.0.1:PORT and SOCKET exists; fails at once when NAME has exited, else after SECONDS (30).
pg_up()
{
    local pid=${PG_PIDS[$1]} secs=${4:-30}
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if pg_port_open "$2" && { [ -z "${3:-}" ] || [ -S "$3" ]; }; then
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

# pg_need [--or-skip] WHAT...: what the scenario cannot run without; the first missing WHAT ends
# it, named. A WHAT with a "/" is a file the build makes, any other a command on PATH. Missing:
# a failure (exit 1), so that CI without a tool fails rather than passes having run nothing;
# with --or-skip (for the scenarios that say "# ctest-skip-code: 77") a command missing is a
# skip (exit 77). A file the build should have made is never a skip.
pg_need()
{
    local what skip=0
    [ "${1:-}" = --or-skip ] && { skip=1; shift; }
    for what in "$@"; do
        if [[ $what == */* ]]; then
            [ -x "$what" ] || { [[ $what == *.so ]] && [ -e "$what" ]; } && continue
            echo "FAIL: $what not built"
            exit 1
        fi
        command -v "$what" >/dev/null && continue
        if [ $skip = 1 ]; then
            echo "SKIP: $what not installed"
            exit 77
        fi
        echo "FAIL: $what not installed (scripts/install-deps.sh test)"
        exit 1
    done
}

# pg_san BINARY: the sanitizer runtime (libasan.so.8, libtsan.so.2) BINARY links, or nothing.
pg_san()
{
    ldd "$1" | grep -Eo 'lib[at]san[^ ]*' | head -n 1
}

# pg_full_upstream NAME PORT: an upstream on 127.0.0.1:PORT whose connects never complete (run
# as pg_start NAME, for 120 s): a listener with backlog 0 that never accepts, its queue filled
# by two connections of its own, so that a further connect waits for a SYN-ACK that does not
# come. Returns once the queue is full; one that does not get there is a failure.
pg_full_upstream()
{
    pg_start "$1" python3 -c '
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(0)
held = []
for _ in range(2):
    c = socket.socket(); c.setblocking(False)
    c.connect_ex(("127.0.0.1", port)); held.append(c)
print("ready", flush=True)
time.sleep(120)
' "$2"
    pg_poll 5 grep -q ready "$T/$1.log" || pg_fail "$1: the never-accepting upstream did not start"
}

# pg_upstreams NAME ADDRESS [NAME ADDRESS...]: a tests/programs/pg_test_upstream for each (run
# as pg_start NAME, its answers naming NAME), ADDRESS 127.0.0.1:PORT or unix:PATH; all started,
# then each waited for. One that does not come up is a failure (the scenario goes on).
pg_upstreams()
{
    local args=("$@") i addr
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        addr=${args[i + 1]}
        if [[ $addr == unix:* ]]; then
            pg_start "${args[i]}" "$UP" --unix "${addr#unix:}" --name "${args[i]}"
        else
            pg_start "${args[i]}" "$UP" --listen "$addr" --name "${args[i]}"
        fi
    done
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        addr=${args[i + 1]}
        if [[ $addr == unix:* ]]; then
            pg_wait_unix "${addr#unix:}"
        else
            pg_wait_port "${addr##*:}"
        fi || pg_fail "upstream ${args[i]} did not start ($addr)"
    done
}

# pg_ready NAME PORT...: until NAME (started by pg_start) accepts on every 127.0.0.1:PORT; if it
# exits or 30 s pass first: its log, a failure, and the scenario ends (pg_done).
pg_ready()
{
    local name=$1 port
    shift
    for port in "$@"; do
        pg_up "$name" "$port" && continue
        pg_log "$name"
        pg_fail "$name did not start (127.0.0.1:$port)"
        pg_done
    done
}

# pg_gateway NAME CONFIG PORT...: profgate --config CONFIG as NAME, then pg_ready NAME PORT...
pg_gateway()
{
    local name=$1 conf=$2
    shift 2
    pg_start "$name" "$PG" --config "$conf"
    pg_ready "$name" "$@"
}

# pg_pprof_raw DESC SOURCE RAW: a check that `go tool pprof -raw SOURCE` (a file or a URL; 60 s
# at most) parses it, its output in RAW, its errors in RAW's name with .err for .raw, the
# start of which a failure shows.
pg_pprof_raw()
{
    local err=${3%.raw}.err
    if timeout 60 go tool pprof -raw "$2" >"$3" 2>"$err"; then
        pg_pass "$1"
    else
        pg_fail "$1: $(head -c 300 "$err")"
    fi
}

# pg_raw_count RAW FUNCTION: the sum of the first value of the samples whose stack has a
# location named FUNCTION, in RAW (`go tool pprof -raw` output; a sample line is its values,
# a colon and its location ids: "N: ids" for goroutine and threadcreate, "N M: ids" for cpu,
# block and mutex).
pg_raw_count()
{
    awk -v fn="$2" '
        /^Samples:/ { sec = "s"; next }
        /^Locations/ { sec = "l"; next }
        /^Mappings/ { sec = "" }
        sec == "s" && /^ *[0-9]+( +[0-9]+)*: / { n++; v[n] = $1 + 0; ids[n] = substr($0, index($0, ":") + 1) }
        sec == "l" && $1 ~ /^[0-9]+:$/ { for (i = 2; i <= NF; i++) if ($i == fn) hit[$1 + 0] = 1 }
        END {
            for (j = 1; j <= n; j++) {
                k = split(ids[j], f, " ")
                for (i = 1; i <= k; i++) if (f[i] + 0 in hit) { s += v[j]; break }
            }
            print s + 0
        }' "$1"
}

# pg_two_upstreams_config PORT ROUTE_TO [SERVER_LINES] [MORE_TOML]: on stdout, the config of the
# scenarios with two pg_test_upstreams: profgate on 127.0.0.1:PORT with 2 workers (and the
# [server] lines SERVER_LINES), upstreams up1 at 127.0.0.1:$U1 and up2 at 127.0.0.1:$U2, "/"
# routed to ROUTE_TO; MORE_TOML last.
pg_two_upstreams_config()
{
    cat <<CONF
[server]
listen  = "127.0.0.1:$1"
workers = 2
${3:-}

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"

[[upstream]]
name    = "up2"
address = "127.0.0.1:$U2"

[[route]]
prefix   = "/"
upstream = "$2"
${4:-}
CONF
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

# pg_leaf_sum RAW FUNC COLUMN: the sum of value COLUMN (1..4) of the samples whose leaf is FUNC,
# in RAW (`go tool pprof -raw` output of a heap or allocs profile).
pg_leaf_sum()
{
    awk -v fn="$2" -v col="$3" '
        /^Samples:/ { sec = "s"; getline; next }
        /^Locations/ { sec = "l"; next }
        /^Mappings/ { sec = "" }
        sec == "s" && index($0, ":") {
            split($0, parts, ":"); split(parts[1], vals, " "); split(parts[2], locs, " ")
            n++; val[n] = vals[col]; leaf[n] = locs[1] + 0
        }
        sec == "l" && $1 ~ /^[0-9]+:$/ { name[$1 + 0] = $4 }
        END { for (j = 1; j <= n; j++) if (name[leaf[j]] == fn) s += val[j]; print s + 0 }' "$1"
}

# pg_within10 GOT WANT: GOT is within 10% of WANT.
pg_within10()
{
    awk -v g="$1" -v w="$2" 'BEGIN { exit !(g >= 0.9 * w && g <= 1.1 * w) }'
}

# pg_stop_check NAME [DESC]: stops NAME with SIGTERM, a check that it exits 0; DESC (default
# "SIGTERM: exit 0") is followed by the status got.
pg_stop_check()
{
    local rc
    pg_stop "$1" TERM
    rc=$?
    pg_check "${2:-SIGTERM: exit 0} (got $rc)" test "$rc" -eq 0
}

# pg_rs_serving URL [DESC]: a check that randomstring at URL still answers /randomstring?n=8.
pg_rs_serving()
{
    pg_check "${2:-randomstring still serving}" \
        bash -c "curl -s -m 10 '$1/randomstring?n=8' | grep -qx '[A-Za-z0-9]\{8\}'"
}

# pg_demo_stop [WHEN]: the end of a pg_demo_start scenario, as checks: randomstring still serves
# through the gateway; profgate and randomstring stop, randomstring exiting 0 on SIGTERM (WHEN,
# e.g. "after the load", is said in that check).
pg_demo_stop()
{
    pg_rs_serving "$GW" "randomstring still serving through the gateway"
    pg_stop pg TERM
    pg_stop_check rs "randomstring exits 0 on SIGTERM${1:+ $1}"
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
        pg_ports RS_PORT PG_PORT
        GW=http://127.0.0.1:$PG_PORT
        pg_gateway_config "$PG_PORT" "127.0.0.1:$RS_PORT" "$SOCK" >"$conf"
        pg_start $rs env "$@" "$RS" --listen "127.0.0.1:$RS_PORT" \
            --agent-socket "$SOCK"
        if ! pg_up $rs "$RS_PORT" "$SOCK"; then
            pg_stop $rs
            [ $attempt -lt 3 ] && grep -qi 'address already in use' "$T/$rs.log" && continue
            pg_log $rs
            echo "FAIL: randomstring did not come up"
            exit 1
        fi
        pg_start $pg "$PG" --config "$conf"
        pg_up $pg "$PG_PORT" && return 0
        pg_stop $pg
        pg_stop $rs
        [ $attempt -lt 3 ] && grep -qi 'address already in use' "$T/$pg.log" && continue
        pg_log $pg
        echo "FAIL: profgate did not come up"
        exit 1
    done
}
