#!/usr/bin/env bash
# integration.fault_agent: CPU profiles relayed by profgate when the ends fail.
#  - The client leaves a 30 s profile (three times): the agent stops sampling within a second
#    (its SIGPROF timers, listed in /proc/PID/timers, are gone), takes a new CPU profile at
#    once, both directly and through the gateway (so profgate's per-agent concurrency slots
#    were given back: max_concurrent is 2), and the host's open files and profgate's
#    connection count (/metrics) return to their baselines. The host then exits 0 on SIGTERM
#    (under ASan that includes LeakSanitizer's check at exit).
#  - The agent's host is killed (SIGKILL) during a 20 s profile: the client gets a 502 that
#    names the agent at once; profgate keeps serving, and relays again once the host is back.
# (integration.agent_endpoints checks a client leaving a profile on the agent's socket
# directly; this goes through the gateway.)
# ctest-timeout: 180
. "$(dirname "$0")/lib/common.sh"

pg_ports P R
SOCK=$T/run/rs.sock
base=http://127.0.0.1:$P
prof=$base/debug/pprof/profile

cat >"$T/pg.toml" <<EOF
[server]
listen       = "127.0.0.1:$P"
workers      = 2
metrics_path = "/metrics"

[[upstream]]
name    = "rs"
address = "127.0.0.1:$R"
agent   = "unix:$SOCK"
pprof   = { max_concurrent = 2 }

[[route]]
prefix   = "/"
upstream = "rs"
EOF

start_rs()
{
    pg_start rs "$RS" --listen "127.0.0.1:$R" --agent-socket "$SOCK"
    pg_wait_port "$R" && pg_wait_unix "$SOCK" || { pg_log rs; pg_fail "randomstring did not start"; }
}

now_ms()
{
    echo $(($(date +%s%N) / 1000000))
}

# SIGPROF (27) timers of a process: the agent creates one per thread while it profiles
sigprof_timers()
{
    grep -c '^signal: 27/' "/proc/$1/timers" 2>/dev/null
}

# wait_sampling PID: until the agent's timers exist (at most 20 s)
wait_sampling()
{
    for _ in $(seq 1 200); do
        [ "$(sigprof_timers "$1")" -gt 0 ] && return 0
        sleep 0.1
    done
    return 1
}

active_conns()
{
    curl -s -m 10 "$base/metrics" | awk '$1 == "profgate_connections_active" { print $2 }'
}

nfds()
{
    ls "/proc/$1/fd" | wc -l
}

is_profile()  # a gzip-compressed profile.proto
{
    [ "$(head -c 2 "$1" | od -An -tx1 | tr -d ' ')" = 1f8b ]
}

start_rs
pg_gateway profgate "$T/pg.toml" "$P"
rspid=$(pg_pid rs)

code=$(curl -s -m 30 -o "$T/warm.pb" -w '%{http_code}' "$prof?seconds=1")
pg_check "warm-up: a 1 s profile through the gateway (got $code)" \
    bash -c "[ $code = 200 ] && $(declare -f is_profile); is_profile '$T/warm.pb'"
pg_check "warm-up: no SIGPROF timer left once it is served" test "$(sigprof_timers "$rspid")" = 0
base_conns=$(active_conns)
base_fds=$(nfds "$rspid")
pg_check "metrics: profgate_connections_active is reported ($base_conns)" test -n "$base_conns"

# --- the client leaves a 30 s profile, three times (more than max_concurrent) ---
for i in 1 2 3; do
    curl -s -m 60 -o /dev/null "$prof?seconds=30" &
    cpid=$!
    if ! wait_sampling "$rspid"; then
        pg_fail "client gone #$i: the profile never started"
        kill "$cpid" 2>/dev/null
        wait "$cpid"
        continue
    fi
    kill -KILL "$cpid"
    wait "$cpid" 2>/dev/null
    t0=$(now_ms)
    stopped=
    for _ in $(seq 1 100); do
        if [ "$(sigprof_timers "$rspid")" = 0 ]; then
            stopped=$(($(now_ms) - t0))
            break
        fi
        sleep 0.02
    done
    pg_check "client gone #$i: the agent stopped sampling within a second (${stopped:-never} ms)" \
        bash -c "[ -n '$stopped' ] && [ '$stopped' -le 1000 ]"
done

code=$(curl -s -m 30 --unix-socket "$SOCK" -o "$T/direct.pb" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=1")
pg_check "client gone: the agent takes a new CPU profile at once, directly (got $code)" \
    bash -c "[ $code = 200 ] && $(declare -f is_profile); is_profile '$T/direct.pb'"
code=$(curl -s -m 30 -o "$T/again.pb" -w '%{http_code}' "$prof?seconds=1")
pg_check "client gone: and through the gateway: its concurrency slots were given back (got $code)" \
    bash -c "[ $code = 200 ] && $(declare -f is_profile); is_profile '$T/again.pb'"
conns=
for _ in $(seq 1 50); do
    conns=$(active_conns)
    [ "$conns" = "$base_conns" ] && break
    sleep 0.1
done
pg_check "client gone: profgate_connections_active back to its baseline ($conns, baseline $base_conns)" \
    test "$conns" = "$base_conns"
fds=
for _ in $(seq 1 50); do
    fds=$(nfds "$rspid")
    [ "$fds" -le "$base_fds" ] && break
    sleep 0.1
done
pg_check "client gone: the host's open files back to their baseline ($fds, baseline $base_fds)" \
    test "$fds" -le "$base_fds"
pg_stop rs
rc=$?
pg_check "client gone: the host exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
pg_check "client gone: no sanitizer report from the host" \
    bash -c "! grep -q 'Sanitizer' '$T/rs.log'"
cp "$T/rs.log" "$T/rs-first.log"

# --- the agent's host is killed during a 20 s profile ---
start_rs
rspid=$(pg_pid rs)
t0=$(now_ms)
curl -s -m 60 -o "$T/killed.body" -w '%{http_code}' "$prof?seconds=20" >"$T/killed.code" &
cpid=$!
wait_sampling "$rspid" || pg_fail "agent killed: the profile never started"
t1=$(now_ms)
pg_stop rs KILL
wait "$cpid"
t2=$(now_ms)
pg_check "agent killed: the client gets 502 (got $(cat "$T/killed.code"))" \
    test "$(cat "$T/killed.code")" = 502
pg_check "agent killed: the message names the agent ($(head -c 200 "$T/killed.body"))" \
    grep -q "agent of \"rs\" (unix:$SOCK)" "$T/killed.body"
pg_check "agent killed: answered at once, not at the profile's end ($((t2 - t1)) ms after the kill, $((t2 - t0)) ms in all)" \
    test $((t2 - t1)) -lt 5000
code=$(curl -s -m 10 -o "$T/dead.body" -w '%{http_code}' "$prof?seconds=1")
pg_check "agent down: 502 naming the agent (got $code: $(head -c 200 "$T/dead.body"))" \
    bash -c "[ $code = 502 ] && grep -q 'agent of \"rs\"' '$T/dead.body'"
pg_check "agent down: profgate still serves /metrics" \
    bash -c "curl -s -m 10 '$base/metrics' | grep -q '^profgate_connections_active'"

start_rs
code=$(curl -s -m 30 -o "$T/back.pb" -w '%{http_code}' "$prof?seconds=1")
pg_check "agent back: a profile through the gateway (got $code)" \
    bash -c "[ $code = 200 ] && $(declare -f is_profile); is_profile '$T/back.pb'"
pg_check "agent back: the app is served" \
    bash -c "curl -s -m 10 '$base/randomstring?n=16' | grep -qE '^.{16}\$'"

pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    pg_log rs
fi
pg_done
