#!/usr/bin/env bash
# integration.proxy_retry: a refused connect to an upstream is tried once more for an
# idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE: nothing was sent, so nothing
# can happen twice), never for POST, never for an agent; the 502 says "(tried twice)" when it
# was. The upstream is a port nobody listens on, so both attempts are refused: what is
# checked is which requests were retried, and that each still gets its 502 and the next
# request on a live route goes through.
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 DEAD

cat >"$T/pg.toml" <<EOF
[server]
listen = "127.0.0.1:$P"

[[upstream]]
name    = "app"
address = "127.0.0.1:$U1"

[[upstream]]
name    = "dead"
address = "127.0.0.1:$DEAD"
agent   = "unix:$T/nobody.sock"

[[route]]
prefix   = "/"
upstream = "app"

[[route]]
prefix   = "/dead"
upstream = "dead"
EOF

pg_upstreams app "127.0.0.1:$U1"
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

body()  # body METHOD PATH [curl args]: "STATUS BODY"
{
    local m=$1 path=$2
    shift 2
    curl -s --max-time 10 -X "$m" -w ' %{http_code}' "$@" "$base$path"
}

for m in GET PUT DELETE OPTIONS; do
    got=$(body "$m" /dead/x)
    pg_check "$m to a refused upstream: 502, tried twice (got: $got)" \
        test "$got" = "upstream \"dead\" (127.0.0.1:$DEAD) unreachable: connection refused (tried twice)
 502"
done
got=$(body POST /dead/x -d 'a=1')
pg_check "POST to a refused upstream: 502, not retried (got: $got)" \
    test "$got" = "upstream \"dead\" (127.0.0.1:$DEAD) unreachable: connection refused
 502"
got=$(body GET /dead/debug/pprof/heap)
pg_check "agent refused: 502, not retried (got: $got)" \
    bash -c "grep -q 'unreachable' <<<'$got' && ! grep -q 'tried twice' <<<'$got'"
got=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$base/echo")
pg_check "a live route still answers (got $got)" test "$got" = 200

pg_stop_check profgate
[ "$PG_FAILED" -gt 0 ] && pg_log profgate
pg_done
