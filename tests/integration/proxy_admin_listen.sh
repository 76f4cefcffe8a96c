#!/usr/bin/env bash
# integration.proxy_admin_listen: with pprof.admin_listen set, the pprof paths, the ui/ viewer
# and server.metrics_path are served only on that address. On the public listener a pprof
# path answers 404 as a path nobody serves (no X-Go-Pprof, never forwarded: not to the agent,
# not to the application), and the metrics path is routed to the application like any path;
# on the admin listener other paths answer 404. The agent (a test server that counts its
# connections) proves no public request reached it. An admin address already taken fails
# the start-up, naming pprof.admin_listen. server.metrics_allow overrides pprof.allow for the
# metrics path.
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"

pg_ports P A U1

write_cfg()  # write_cfg FILE ADMIN_PORT
{
    cat >"$1" <<EOF
[server]
listen       = "127.0.0.1:$P"
workers      = 2
metrics_path = "/metrics"

[pprof]
admin_listen = "127.0.0.1:$2"

[[upstream]]
name    = "app"
address = "127.0.0.1:$U1"
agent   = "unix:$T/agent.sock"

[[route]]
prefix   = "/"
upstream = "app"

[[route]]
prefix   = "/api"
upstream = "app"
EOF
}

pg_upstreams app "127.0.0.1:$U1" agent "unix:$T/agent.sock"
write_cfg "$T/pg.toml" "$A"
pg_gateway profgate "$T/pg.toml" "$P" "$A"
pub=http://127.0.0.1:$P
adm=http://127.0.0.1:$A

# get NAME URL [curl args]: status printed; body in $T/NAME.body, head in $T/NAME.hdr
get()
{
    local name=$1 url=$2
    shift 2
    curl -s --max-time 10 -D "$T/$name.hdr" -o "$T/$name.body" -w '%{http_code}' "$@" "$url"
}

# check_get DESC NAME URL STATUS GREP_ARGS...: a check that get NAME URL answers STATUS with a
# body grep GREP_ARGS accepts; DESC is followed by the status got
check_get()
{
    local desc=$1 name=$2 url=$3 want=$4 code
    shift 4
    code=$(get "$name" "$url")
    pg_check "$desc (got $code)" status_and_body "$code" "$want" "$T/$name.body" "$@"
}

status_and_body()
{
    [ "$1" = "$2" ] && grep "${@:4}" "$3"
}

no_pprof_header()
{
    ! tr -d '\r' <"$T/$1.hdr" | grep -qi '^X-Go-Pprof:'
}

# --- public listener ---
n=0
for path in /debug/pprof/heap /debug/pprof/ /debug/pprof /debug/pprof/profile?seconds=1 \
    /api/debug/pprof/goroutine /debug/pprof/ui/ /debug/pprof/ui/services.json \
    /debug/pprof/cmdline; do
    n=$((n + 1))
    check_get "public $path: 404 from the gateway" "pub$n" "$pub$path" 404 -q '^no route for '
    pg_check "public $path: no X-Go-Pprof" no_pprof_header "pub$n"
done
# percent-encoded: the gateway's 404, or the application's own -- never the agent's
check_get "public /%64ebug/pprof/heap: not the agent" enc "$pub/%64ebug/pprof/heap" 404 \
    -Eq '^(no route for |app not found /%64ebug/pprof/heap)'
check_get "public /metrics: routed to the application" pubm "$pub/metrics" 404 \
    -q '^app not found /metrics'
check_get "public /echo: the application" pube "$pub/echo" 200 -q '^app GET /echo '

# --- admin listener ---
check_get "admin pprof path: the agent answers, and it is its first connection" adme "$adm/debug/pprof/echo" 200 \
    -q '^agent GET /debug/pprof/echo conn=1 req=1'
check_get "admin pprof path under another route" adma "$adm/api/debug/pprof/echo" 200 \
    -q '^agent GET /debug/pprof/echo conn=2 '
check_get "admin /metrics: the gateway's metrics" admm "$adm/metrics" 200 \
    -q '^# TYPE profgate_requests_total counter'
check_get "admin ui/: the viewer page" admu "$adm/debug/pprof/ui/" 200 -qi '<html'
check_get "admin /echo: 404, the admin port serves no application" admx "$adm/echo" 404 \
    -qx 'pprof.admin_listen serves only the pprof paths and server.metrics_path'
pg_check "check: --check names admin_listen" \
    bash -c "'$PG' --check --config '$T/pg.toml' | grep -q 'on admin_listen 127.0.0.1:$A only'"

# --- a reload keeps the listeners (admin_listen changes only on restart) ---
kill -HUP "$(pg_pid profgate)"
sleep 0.5
code=$(get r1 "$pub/debug/pprof/heap")
c2=$(get r2 "$adm/debug/pprof/echo")
pg_check "after SIGHUP: public still 404, admin still served (got $code $c2)" \
    test "$code" = 404 -a "$c2" = 200

pg_stop_check profgate

# --- the admin address taken: start-up fails, naming it ---
write_cfg "$T/taken.toml" "$U1"
"$PG" --config "$T/taken.toml" >"$T/taken.log" 2>&1
rc=$?
pg_check "admin_listen address in use: exit 1 naming pprof.admin_listen (got $rc)" \
    bash -c "[ $rc = 1 ] && grep -q 'cannot listen on 127.0.0.1:$U1 (pprof.admin_listen): Address already in use' '$T/taken.log'"

# --- server.metrics_allow: who may read the metrics, apart from pprof.allow ---
pg_ports P2
metrics_cfg()  # metrics_cfg FILE METRICS_ALLOW
{
    cat >"$1" <<EOF
[server]
listen        = "127.0.0.1:$P2"
metrics_path  = "/metrics"
metrics_allow = $2

[pprof]
allow = ["192.0.2.1"]

[[upstream]]
name    = "app"
address = "127.0.0.1:$U1"
agent   = "unix:$T/agent.sock"

[[route]]
prefix   = "/"
upstream = "app"
EOF
}
metrics_cfg "$T/m1.toml" '["127.0.0.0/8"]'
pg_start pg2 "$PG" --config "$T/m1.toml"
pg_wait_port "$P2" || pg_fail "profgate (metrics_allow) did not start"
check_get "metrics_allow has loopback, pprof.allow not: /metrics 200" m1 "http://127.0.0.1:$P2/metrics" 200 \
    -q '^# TYPE profgate_requests_total counter'
code=$(get m2 "http://127.0.0.1:$P2/debug/pprof/heap")
pg_check "... and the pprof paths still 403 (got $code)" test "$code" = 403
pg_check "--check shows metrics_allow" \
    bash -c "'$PG' --check --config '$T/m1.toml' | grep -qx 'metrics_allow 127.0.0.0/8'"
metrics_cfg "$T/m1.toml" '["192.0.2.0/24"]'
kill -HUP "$(pg_pid pg2)"
sleep 0.5
check_get "metrics_allow without loopback (after SIGHUP): 403 naming it" m3 "http://127.0.0.1:$P2/metrics" 403 \
    -qx 'metrics access denied: client is not in server.metrics_allow'
pg_stop pg2 TERM
metrics_cfg "$T/m4.toml" '["nonsense"]'
pg_check "a bad metrics_allow entry is a config error naming the key" \
    bash -c "'$PG' --check --config '$T/m4.toml' 2>&1 | grep -q 'server.metrics_allow: \"nonsense\"'"

if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    head -c 400 "$T"/*.body
fi
pg_done
