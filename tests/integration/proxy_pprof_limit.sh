#!/usr/bin/env bash
# integration.proxy_pprof_limit: pprof.max_concurrent, enforced per agent across workers
# (one atomic counter per agent shared by the workers): over the limit -> 409 naming the
# limit, with X-Go-Pprof: 1; the index, cmdline and symbol do not count; the count is given
# back when a request ends in any way (answered, client gone, agent unreachable) and carries
# over a reload. With a limit of 2 and a real agent, a second CPU profile gets the agent's
# own 500 (as Go answers) and a third the gateway's 409.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

BURN=$BIN/tests/programs/agent_burn
pg_ports P U1

cat >"$T/pg.toml" <<EOF
[server]
listen       = "127.0.0.1:$P"
workers      = 2
metrics_path = "/metrics"

[[upstream]]
name    = "one"
address = "127.0.0.1:$U1"
agent   = "unix:$T/fake.sock"
pprof   = { max_concurrent = 1 }

[[upstream]]
name    = "gone"
address = "127.0.0.1:$U1"
agent   = "unix:$T/nobody.sock"
pprof   = { max_concurrent = 1 }

[[upstream]]
name    = "real"
address = "127.0.0.1:$U1"
agent   = "unix:$T/real.sock"

[[upstream]]
name    = "two"
address = "127.0.0.1:$U1"
agent   = "unix:$T/fake2.sock"
pprof   = { max_concurrent = 2 }

[[upstream]]
name    = "alias"
address = "127.0.0.1:$U1"
agent   = "unix:$T/fake.sock"

[[route]]
prefix   = "/"
upstream = "one"

[[route]]
prefix   = "/two"
upstream = "two"

[[route]]
prefix   = "/alias"
upstream = "alias"

[[route]]
prefix   = "/gone"
upstream = "gone"

[[route]]
prefix   = "/real"
upstream = "real"
EOF

PROFAGENT_SOCKET=$T/real.sock pg_start real "$BURN" --threads 1 --seconds 100
pg_upstreams app "127.0.0.1:$U1" fakeagent "unix:$T/fake.sock" fakeagent2 "unix:$T/fake2.sock"
pg_wait_unix "$T/real.sock" || pg_fail "agent_burn did not start"
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

# get NAME PATH [curl args]: status printed; body in $T/NAME.body, head in $T/NAME.hdr
get()
{
    local name=$1 path=$2
    shift 2
    curl -s --max-time 30 -D "$T/$name.hdr" -o "$T/$name.body" -w '%{http_code}' "$@" \
        "$base$path"
}

# background gets: PIDs in JOBS; waitjobs waits for them only (not for the servers)
JOBS=()
waitjobs()
{
    wait "${JOBS[@]}"
    JOBS=()
}

has_header()
{
    tr -d '\r' <"$T/$1.hdr" | grep -qixF "$2"
}

# --- limit 1: four at once, over a fresh connection each (so both workers take some) ---
for i in 1 2 3 4; do
    get "c$i" "/debug/pprof/sleep?ms=4000" >"$T/c$i.code" &
    JOBS+=($!)
done
sleep 0.8
# meanwhile, what does not count passes through to the agent
code=$(get index "/debug/pprof/")
pg_check "index passes while a profile runs (agent's own answer, got $code)" \
    bash -c "[ '$code' = 404 ] && grep -q '^fakeagent not found /debug/pprof/' '$T/index.body'"
code=$(get cmdline "/debug/pprof/cmdline")
pg_check "cmdline passes while a profile runs (got $code)" \
    bash -c "[ '$code' = 404 ] && grep -q '^fakeagent not found' '$T/cmdline.body'"
waitjobs
ok=0
busy=0
for i in 1 2 3 4; do
    case $(cat "$T/c$i.code") in
    200) ok=$((ok + 1)) ;;
    409) busy=$((busy + 1)); b=c$i ;;
    esac
done
pg_check "limit 1, four at once: one 200, three 409 (got $ok and $busy)" \
    test "$ok" = 1 -a "$busy" = 3
if [ -n "${b:-}" ]; then
    pg_check "409 names the agent and the limit" grep -qx \
        'agent of "one" is busy: 1 profile request(s) already running, the limit pprof.max_concurrent = 1' \
        "$T/$b.body"
    pg_check "409 carries X-Go-Pprof: 1 (go tool pprof shows the text)" has_header "$b" "X-Go-Pprof: 1"
    pg_check "409 is text/plain" bash -c "tr -d '\r' <'$T/$b.hdr' | grep -qi '^Content-Type: text/plain'"
fi
code=$(get after "/debug/pprof/sleep?ms=10")
pg_check "after they end the agent is free again (got $code)" test "$code" = 200

# --- given back when the client leaves mid-request ---
curl -s --max-time 1 -o /dev/null "$base/debug/pprof/sleep?ms=6000"
for _ in $(seq 1 30); do # the gateway sees the close at once; room for a loaded machine
    code=$(get gone1 "/debug/pprof/sleep?ms=10")
    [ "$code" = 200 ] && break
    sleep 0.1
done
pg_check "a client that left gave its slot back (got $code)" test "$code" = 200

# --- given back when the agent is unreachable ---
c1=$(get un1 "/gone/debug/pprof/heap")
c2=$(get un2 "/gone/debug/pprof/heap")
pg_check "agent unreachable twice: 502 both times, never 409 (got $c1 $c2)" \
    test "$c1" = 502 -a "$c2" = 502

# --- carries over a reload ---
get r1 "/debug/pprof/sleep?ms=5000" >"$T/r1.code" &
JOBS+=($!)
sleep 1
kill -HUP "$(pg_pid profgate)"
sleep 0.5
code=$(get r2 "/debug/pprof/sleep?ms=10")
pg_check "after SIGHUP the running request still counts (got $code)" test "$code" = 409
waitjobs
pg_check "the request across the reload completed (got $(cat "$T/r1.code"))" \
    test "$(cat "$T/r1.code")" = 200
code=$(get r3 "/debug/pprof/sleep?ms=10")
pg_check "and gave its slot back to the new configuration (got $code)" test "$code" = 200

# --- limit 2: two at once pass, a third gets 409 ---
for i in 1 2 3; do
    get "d$i" "/two/debug/pprof/sleep?ms=4000" >"$T/d$i.code" &
    JOBS+=($!)
done
waitjobs
ok=0
busy=0
for i in 1 2 3; do
    case $(cat "$T/d$i.code") in
    200) ok=$((ok + 1)) ;;
    409) busy=$((busy + 1)); b=d$i ;;
    esac
done
pg_check "limit 2, three at once: two 200, one 409 (got $ok and $busy)" test "$ok" = 2 -a "$busy" = 1
[ -n "${b:-}" ] && pg_check "409 names limit 2" grep -q 'pprof.max_concurrent = 2$' "$T/$b.body"

# --- two upstreams naming one agent share its count ---
get a1 "/alias/debug/pprof/sleep?ms=4000" >"$T/a1.code" &
JOBS+=($!)
sleep 1
code=$(get a2 "/debug/pprof/sleep?ms=10")
waitjobs
pg_check "agent busy through another upstream: 409 under limit 1 (got $code)" test "$code" = 409

# --- a real agent under limit 2: the second CPU profile gets the agent's own 500 (Go's) ---
get p1 "/real/debug/pprof/profile?seconds=3" >"$T/p1.code" &
JOBS+=($!)
sleep 1
code=$(get p2 "/real/debug/pprof/profile?seconds=1")
waitjobs
pg_check "first CPU profile: 200 (got $(cat "$T/p1.code"))" test "$(cat "$T/p1.code")" = 200
pg_check "second CPU profile under limit 2: the agent's own 500 (got $code)" \
    bash -c "[ '$code' = 500 ] && grep -qx 'Could not enable CPU profiling: cpu profiling already in use' '$T/p2.body'"

curl -s "$base/metrics" >"$T/m"
pg_check "metrics: refusals counted as pprof_busy" \
    grep -Eq '^profgate_errors_total\{cause="pprof_busy"\} ([4-9]|[1-9][0-9]+)$' "$T/m"

pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    head -c 600 "$T"/*.body
fi
pg_done
