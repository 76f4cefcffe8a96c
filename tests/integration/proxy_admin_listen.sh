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

PG=$BIN/proxy/profgate
UP=$BIN/tests/programs/pg_test_upstream
P=$(pg_free_port)
A=$(pg_free_port)
U1=$(pg_free_port)
while [ "$A" = "$P" ]; do A=$(pg_free_port); done

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

pg_start up1 "$UP" --listen "127.0.0.1:$U1" --name app
pg_start agent "$UP" --unix "$T/agent.sock" --name agent
pg_wait_port "$U1" && pg_wait_unix "$T/agent.sock" || pg_fail "upstreams did not start"
write_cfg "$T/pg.toml" "$A"
pg_start profgate "$PG" --config "$T/pg.toml"
pg_wait_port "$P" && pg_wait_port "$A" || { pg_log profgate; pg_fail "profgate did not start"; pg_done; }
pub=http://127.0.0.1:$P
adm=http://127.0.0.1:$A

# get NAME URL [curl args]: status printed; body in $T/NAME.body, head in $T/NAME.hdr
get()
{
    local name=$1 url=$2
    shift 2
    curl -s --max-time 10 -D "$T/$name.hdr" -o "$T/$name.body" -w '%{http_code}' "$@" "$url"
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
    code=$(get "pub$n" "$pub$path")
    pg_check "public $path: 404 from the gateway (got $code)" \
        bash -c "[ '$code' = 404 ] && grep -q '^no route for ' '$T/pub$n.body'"
    pg_check "public $path: no X-Go-Pprof" no_pprof_header "pub$n"
done
# percent-encoded: the gateway's 404, or the application's own -- never the agent's
code=$(get enc "$pub/%64ebug/pprof/heap")
pg_check "public /%64ebug/pprof/heap: not the agent (got $code)" \
    bash -c "[ '$code' = 404 ] && grep -Eq '^(no route for |app not found /%64ebug/pprof/heap)' '$T/enc.body'"
code=$(get pubm "$pub/metrics")
pg_check "public /metrics: routed to the application (got $code)" \
    bash -c "[ '$code' = 404 ] && grep -q '^app not found /metrics' '$T/pubm.body'"
code=$(get pube "$pub/echo")
pg_check "public /echo: the application (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -q '^app GET /echo ' '$T/pube.body'"

# --- admin listener ---
code=$(get adme "$adm/debug/pprof/echo")
pg_check "admin pprof path: the agent answers, and it is its first connection (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -q '^agent GET /debug/pprof/echo conn=1 req=1' '$T/adme.body'"
code=$(get adma "$adm/api/debug/pprof/echo")
pg_check "admin pprof path under another route (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -q '^agent GET /debug/pprof/echo conn=2 ' '$T/adma.body'"
code=$(get admm "$adm/metrics")
pg_check "admin /metrics: the gateway's metrics (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -q '^# TYPE profgate_requests_total counter' '$T/admm.body'"
code=$(get admu "$adm/debug/pprof/ui/")
pg_check "admin ui/: the viewer page (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -qi '<html' '$T/admu.body'"
code=$(get admx "$adm/echo")
pg_check "admin /echo: 404, the admin port serves no application (got $code)" \
    bash -c "[ '$code' = 404 ] && grep -qx 'pprof.admin_listen serves only the pprof paths and server.metrics_path' '$T/admx.body'"
pg_check "check: --check names admin_listen" \
    bash -c "'$PG' --check --config '$T/pg.toml' | grep -q 'on admin_listen 127.0.0.1:$A only'"

# --- a reload keeps the listeners (admin_listen changes only on restart) ---
kill -HUP "$(pg_pid profgate)"
sleep 0.5
code=$(get r1 "$pub/debug/pprof/heap")
c2=$(get r2 "$adm/debug/pprof/echo")
pg_check "after SIGHUP: public still 404, admin still served (got $code $c2)" \
    test "$code" = 404 -a "$c2" = 200

pg_stop profgate TERM
rc=$?
pg_check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0

# --- the admin address taken: start-up fails, naming it ---
write_cfg "$T/taken.toml" "$U1"
"$PG" --config "$T/taken.toml" >"$T/taken.log" 2>&1
rc=$?
pg_check "admin_listen address in use: exit 1 naming pprof.admin_listen (got $rc)" \
    bash -c "[ $rc = 1 ] && grep -q 'cannot listen on 127.0.0.1:$U1 (pprof.admin_listen): Address already in use' '$T/taken.log'"

# --- server.metrics_allow: who may read the metrics, apart from pprof.allow ---
P2=$(pg_free_port)
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
code=$(get m1 "http://127.0.0.1:$P2/metrics")
pg_check "metrics_allow has loopback, pprof.allow not: /metrics 200 (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -q '^# TYPE profgate_requests_total counter' '$T/m1.body'"
code=$(get m2 "http://127.0.0.1:$P2/debug/pprof/heap")
pg_check "... and the pprof paths still 403 (got $code)" test "$code" = 403
pg_check "--check shows metrics_allow" \
    bash -c "'$PG' --check --config '$T/m1.toml' | grep -qx 'metrics_allow 127.0.0.0/8'"
metrics_cfg "$T/m1.toml" '["192.0.2.0/24"]'
kill -HUP "$(pg_pid pg2)"
sleep 0.5
code=$(get m3 "http://127.0.0.1:$P2/metrics")
pg_check "metrics_allow without loopback (after SIGHUP): 403 naming it (got $code)" \
    bash -c "[ '$code' = 403 ] && grep -qx 'metrics access denied: client is not in server.metrics_allow' '$T/m3.body'"
pg_stop pg2 TERM
metrics_cfg "$T/m4.toml" '["nonsense"]'
pg_check "a bad metrics_allow entry is a config error naming the key" \
    bash -c "'$PG' --check --config '$T/m4.toml' 2>&1 | grep -q 'server.metrics_allow: \"nonsense\"'"

if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    head -c 400 "$T"/*.body
fi
pg_done
