#!/usr/bin/env bash
# harden_absolute_form: an absolute-form request target ("GET http://x.example/p HTTP/1.1") is
# routed by its authority, not by Host (RFC 9112 3.2.2: a server MUST ignore the received Host
# and use the target's host), and goes upstream in origin-form with Host rewritten to that
# authority, one Host line, X-Forwarded-Host carrying it. Before, profgate routed such a
# request by Host and sent the client's Host on, so an upstream read another authority than
# the one the client named. The authority is held to Host's rules (harden_host), must have a
# host and no userinfo, and the scheme must be http or https: else a 400 naming the cause, and
# nothing upstream. pprof and server.metrics_path work on absolute-form targets too.
# Four test upstreams that say who they are (pg_test_upstream --name: /echo answers "NAME
# METHOD TARGET conn=N req=M" and the header lines it got), routed by host; x's and y's agents
# are the same program on Unix sockets.
# ctest-timeout: 90
. "$(dirname "$0")/lib/common.sh"
pg_need "$PG" "$UP" python3

pg_ports P UX UY UPP UD

cat >"$T/pg.toml" <<EOF
[server]
listen = "127.0.0.1:$P"
workers = 1
metrics_path = "/metrics"

[[upstream]]
name = "upx"
address = "127.0.0.1:$UX"
agent = "unix:$T/agentx.sock"
pool_idle_timeout = "600s"

[[upstream]]
name = "upy"
address = "127.0.0.1:$UY"
agent = "unix:$T/agenty.sock"
pool_idle_timeout = "600s"

[[upstream]]
name = "upp"
address = "127.0.0.1:$UPP"
pool_idle_timeout = "600s"

[[upstream]]
name = "updef"
address = "127.0.0.1:$UD"
pool_idle_timeout = "600s"

[[route]]
prefix = "/"
host = "x.example"
upstream = "upx"

[[route]]
prefix = "/"
host = "y.example"
upstream = "upy"

[[route]]
prefix = "/"
host = "p.example:8081"
upstream = "upp"

[[route]]
prefix = "/"
upstream = "updef"
EOF

pg_upstreams upx "127.0.0.1:$UX" upy "127.0.0.1:$UY" upp "127.0.0.1:$UPP" updef "127.0.0.1:$UD" \
    agentx "unix:$T/agentx.sock" agenty "unix:$T/agenty.sock"
pg_gateway pg "$T/pg.toml" "$P"

# ask REQUEST (printf %b escapes): one request on a new connection; the whole answer (CRs
# removed) in $T/r, its status in ST (0: none), CLOSED 1 when profgate closed the connection.
cat >"$T/ask.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.stdin.buffer.read())
got, closed, end = b"", 0, time.time() + 5
try:
    while time.time() < end:
        b = s.recv(65536)
        if not b:
            closed = 1
            break
        got += b
except (socket.timeout, ConnectionResetError):
    closed = 1 if got else 0
sys.stdout.buffer.write(got.replace(b"\r", b""))
sys.stderr.write("%d\n" % closed)
PY
ask() {
    CLOSED=$(printf '%b' "$1" | python3 "$T/ask.py" "$P" 2>&1 >"$T/r" | tail -1)
    ST=$(sed -n '1s|^HTTP/1\.[01] \([0-9][0-9][0-9]\) .*|\1|p' "$T/r")
    ST=${ST:-0}
}
first() { sed -n '/^$/{n;p;q}' "$T/r"; }        # the first body line
hosts() { grep -ci '^host: ' "$T/r"; }          # Host lines the upstream echoed
has() { grep -qi -- "$1" "$T/r"; }

# routed NAME WANT_FIRST_LINE WANT_HOST REQUEST: 200 from the upstream that says
# WANT_FIRST_LINE (a prefix), which got one Host line, WANT_HOST
routed() {
    local name=$1 want=$2 host=$3
    ask "$4"
    pg_check "$name: 200 from '${want%% *}' (got $ST: $(first))" \
        bash -c "[ '$ST' = 200 ] && [[ \"\$(sed -n '/^\$/{n;p;q}' '$T/r')\" == '$want '* ]]"
    pg_check "$name: the upstream got one Host line, 'host: $host' (got $(hosts): $(grep -i '^host: ' "$T/r" | tr '\n' ' '))" \
        bash -c "[ \"\$(grep -ci '^host: ' '$T/r')\" = 1 ] && grep -qix 'host: $host' '$T/r'"
}

# origin-form: Host routes, as before
routed "origin-form, Host x" "upx GET /echo" "x.example" \
    'GET /echo HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
routed "origin-form, Host y" "upy GET /echo" "y.example" \
    'GET /echo HTTP/1.1\r\nHost: y.example\r\nConnection: close\r\n\r\n'

# absolute-form: the authority routes and is the Host sent, whatever Host says
routed "absolute-form x, Host y" "upx GET /echo?a=1" "x.example" \
    'GET http://x.example/echo?a=1 HTTP/1.1\r\nHost: y.example\r\nConnection: close\r\n\r\n'
pg_check "absolute-form x, Host y: X-Forwarded-Host is the authority" grep -qix 'x-forwarded-host: x.example' "$T/r"
routed "absolute-form y, Host x" "upy GET /echo" "y.example" \
    'GET http://y.example/echo HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
routed "absolute-form Y.EXAMPLE (any case), HTTP scheme, Host x" "upy GET /echo" "Y.EXAMPLE" \
    'GET HTTP://Y.EXAMPLE/echo HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
routed "absolute-form https scheme, Host x" "upy POST /echo" "y.example" \
    'POST https://y.example/echo HTTP/1.1\r\nHost: x.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
ask 'GET http://x.example?q HTTP/1.1\r\nHost: y.example\r\nConnection: close\r\n\r\n'
pg_check "absolute-form, empty path, Host y: upx's answer to /?q (got $ST: $(first))" \
    bash -c "[ '$ST' = 404 ] && [ \"\$(sed -n '/^\$/{n;p;q}' '$T/r')\" = 'upx not found /?q' ]"
routed "absolute-form x, Host of an unrouted name" "upx GET /echo" "x.example" \
    'GET http://x.example/echo HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n'
routed "absolute-form of an unrouted name, Host x: the default route" "updef GET /echo" "other.example" \
    'GET http://other.example/echo HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
# ports: a route naming host:port matches the whole authority; else the host part routes
routed "absolute-form p.example:8081 (a route with a port), Host x" "upp GET /echo" "p.example:8081" \
    'GET http://p.example:8081/echo HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
routed "absolute-form y.example:9999, Host x: routed by its host" "upy GET /echo" "y.example:9999" \
    'GET http://y.example:9999/echo HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
routed "absolute-form p.example (no port), Host p.example:8081" "updef GET /echo" "p.example" \
    'GET http://p.example/echo HTTP/1.1\r\nHost: p.example:8081\r\nConnection: close\r\n\r\n'
# HTTP/1.0 may omit Host: the authority is sent as Host (before: the upstream's address)
routed "HTTP/1.0 absolute-form y, no Host" "upy GET /echo" "y.example" \
    'GET http://y.example/echo HTTP/1.0\r\n\r\n'
routed "HTTP/1.0 absolute-form x, Host y" "upx GET /echo" "x.example" \
    'GET http://x.example/echo HTTP/1.0\r\nHost: y.example\r\n\r\n'
# the gateway's own paths: pprof goes to the authority's agent; metrics are served
routed "absolute-form pprof path -> x's agent, Host y" "agentx GET /debug/pprof/echo" "x.example" \
    'GET http://x.example/debug/pprof/echo HTTP/1.1\r\nHost: y.example\r\nConnection: close\r\n\r\n'
routed "absolute-form pprof path -> y's agent, Host x" "agenty GET /debug/pprof/echo?debug=1" "y.example" \
    'GET http://y.example/debug/pprof/echo?debug=1 HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
ask 'GET http://p.example:8081/debug/pprof/heap HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n'
pg_check "absolute-form pprof path of p (no agent), Host x: 404 naming upp (got $ST: $(first))" \
    bash -c "[ '$ST' = 404 ] && grep -q 'upstream \"upp\" has no agent' '$T/r'"
ask 'GET http://y.example/metrics HTTP/1.1\r\nHost: y.example\r\nConnection: close\r\n\r\n'
pg_check "absolute-form metrics path: profgate's metrics (got $ST)" \
    bash -c "[ '$ST' = 200 ] && grep -q '^profgate_requests_total' '$T/r'"

# refusals: 400 naming the cause, closed, nothing upstream. Each would go to upx by its Host
# if the authority were ignored. served: every upstream's "conn=N req=M" (each /echo counts).
served() {
    local h out=
    for h in x.example y.example p.example:8081 other.example; do
        ask "GET /echo HTTP/1.1\r\nHost: $h\r\nConnection: close\r\n\r\n"
        out+="$(first | sed -n 's/^\([a-z]*\) .* conn=\([0-9]*\) req=\([0-9]*\)$/\1:\2:\3/p') "
    done
    echo "$out"
}
# one more request each: the counts after the probe that follows none in between
next_served() { echo "$1" | awk '{ for (i = 1; i <= NF; i++) { split($i, f, ":"); printf "%s:%s:%d ", f[1], f[2], f[3] + 1 } }'; }
before=$(served)
pg_check "every upstream answers its probe ($before)" bash -c "[ \$(echo '$before' | wc -w) = 4 ]"
refused() { # refused NAME TARGET CAUSE (an extended regex)
    ask "GET $2 HTTP/1.1\r\nHost: x.example\r\nConnection: close\r\n\r\n"
    pg_check "$1 ($2): 400 naming '$3', closed (got $ST, closed=$CLOSED: $(first))" \
        bash -c "[ '$ST' = 400 ] && [ '$CLOSED' = 1 ] && grep -qE -- '$3' '$T/r'"
}
refused "userinfo" "http://u@x.example/echo" "userinfo"
refused "userinfo with a password" "http://u:pw@x.example/echo" "userinfo"
refused "userinfo, empty" "http://@x.example/echo" "userinfo"
refused "empty authority" "http:///echo" "has no host"
refused "empty authority, query" "http://?echo" "has no host"
refused "a port, no host" "http://:80/echo" "has no host"
# Bytes outside a host and port: llhttp 8's URL reader refuses every one of them (its reason
# kept), host_scan would otherwise (the same table as Host's)
BYTES="not a host and port|HPE_INVALID_URL"
refused "a backslash in the authority" 'http://x.example\\y/echo' "$BYTES"
refused "a quote in the authority" 'http://x"y/echo' "$BYTES"
refused "a '<' in the authority" 'http://x<y/echo' "$BYTES"
refused "a '{' in the authority" 'http://x{y/echo' "$BYTES"
refused "a '#' in the authority" 'http://x#y/echo' "$BYTES"
refused "a DEL in the authority" 'http://x\x7fy/echo' "$BYTES"
refused "a byte >= 0x80 in the authority" 'http://x\xc3\xa9.example/echo' "$BYTES"
refused "two '@'" "http://a@b@x.example/echo" "userinfo|HPE_INVALID_URL"
refused "scheme ftp" "ftp://x.example/echo" "scheme is not http or https"
refused "scheme ws" "ws://x.example/echo" "scheme is not http or https"
refused "scheme httpx" "httpx://x.example/echo" "scheme is not http or https"
refused "scheme http+unix" "http+unix://x.example/echo" "scheme is not http or https|HPE_INVALID_URL"
refused "an empty scheme" "://x.example/echo" "scheme is not http or https|HPE_INVALID_URL"
refused "scheme, no //" "http:x.example/echo" "must be a path|HPE_INVALID_URL"
refused "asterisk-form for GET" "*" "must be a path|HPE_INVALID_URL"
ask 'GET http://x.example/echo HTTP/1.1\r\nConnection: close\r\n\r\n'
pg_check "HTTP/1.1 absolute-form without Host: still 400 (RFC 9112 3.2; got $ST)" \
    bash -c "[ '$ST' = 400 ] && grep -q 'without Host' '$T/r'"
ask 'GET http://x.example/echo HTTP/1.1\r\nHost: a@b\r\nConnection: close\r\n\r\n'
pg_check "absolute-form with an invalid Host: still 400 (RFC 9112 3.2; got $ST)" [ "$ST" = 400 ]
ask 'GET http://x.example/echo HTTP/1.1\r\nHost: y.example\r\nHost: y.example\r\nConnection: close\r\n\r\n'
pg_check "absolute-form with two Host lines: still 400 (got $ST)" [ "$ST" = 400 ]
after=$(served)
pg_check "no refused request reached an upstream (probes before: $before; after: $after)" \
    [ "$after" = "$(next_served "$before")" ]

pg_check "profgate exits 0 on SIGTERM" pg_stop pg
pg_done
