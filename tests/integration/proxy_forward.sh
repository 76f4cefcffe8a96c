#!/usr/bin/env bash
# integration.proxy_forward: profgate in front of two test upstreams (and their "agents",
# the same test program on unix sockets): forwarding, keep-alive reuse on both sides,
# chunked bodies both ways, longest-prefix routing at segment boundaries, the pprof relay
# with its path rewrite and policy, 502s that name what is unreachable, pipelining in
# order, HEAD/204/304, Expect: 100-continue, malformed requests, --check/--help.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 U2 DEAD V6

cat >"$T/pg.toml" <<EOF
[server]
listen  = "127.0.0.1:$P"
workers = 1

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"
agent   = "unix:$T/agent1.sock"

[[upstream]]
name    = "up2"
address = "127.0.0.1:$U2"
agent   = "unix:$T/agent2.sock"

[[upstream]]
name    = "dead"
address = "127.0.0.1:$DEAD"
agent   = "unix:$T/nothere.sock"

[[upstream]]
name    = "noagent"
address = "unix:$T/up3.sock"

[[route]]
prefix   = "/"
upstream = "up1"

[[route]]
prefix   = "/api"
upstream = "up2"

[[route]]
prefix   = "/dead"
upstream = "dead"

[[route]]
prefix   = "/u3/"
upstream = "noagent"

[[upstream]]
name    = "v6"
address = "[::1]:$V6"

[[route]]
prefix   = "/v6"
upstream = "v6"

[pprof]
max_seconds = 20
EOF

# --help, --version, --check (good and bad)
pg_check "--help exits 0" "$PG" --help
pg_check "--version names profgate" bash -c "'$PG' --version | grep -q '^profgate '"
pg_check "--check prints the resolved config" bash -c "'$PG' --check --config '$T/pg.toml' | grep -q 'up2'"
printf '[server]\nlisten = "nonsense"\n' >"$T/bad.toml"
"$PG" --check --config "$T/bad.toml" >"$T/bad.out" 2>&1
rc=$?
pg_check "--check of a bad file exits 2 (got $rc)" test "$rc" -eq 2
pg_check "--check names file and line" grep -q "bad.toml:2" "$T/bad.out"

pg_start v6 "$UP" --listen "[::1]:$V6" --name v6
pg_upstreams up1 "127.0.0.1:$U1" up2 "127.0.0.1:$U2" agent1 "unix:$T/agent1.sock" \
    agent2 "unix:$T/agent2.sock" up3 "unix:$T/up3.sock"
pg_gateway profgate "$T/pg.toml" "$P"

# A busy port is one clear line and exit 1. (profgate's own listeners use SO_REUSEPORT, so
# the port is held by a plain listener here.)
python3 -c "
import socket,time
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(20)" >"$T/holder.port" &
PG_PIDS[holder]=$!
for _ in $(seq 1 50); do [ -s "$T/holder.port" ] && break; sleep 0.1; done
B=$(cat "$T/holder.port")
sed "s/127.0.0.1:$P/127.0.0.1:$B/" "$T/pg.toml" >"$T/busy.toml"
timeout 5 "$PG" --config "$T/busy.toml" >"$T/busy.out" 2>&1
rc=$?
pg_check "busy port exits 1 (got $rc)" test "$rc" -eq 1
pg_check "busy port says so in one line" bash -c "[ \$(wc -l <'$T/busy.out') -eq 1 ] && grep -q 'cannot listen on 127.0.0.1:$B: Address already in use' '$T/busy.out'"
pg_stop holder

base=http://127.0.0.1:$P

# forwarding and the headers we add / remove
curl -s -D "$T/h1" "$base/echo?q=1" -H 'X-Forwarded-For: 10.9.8.7' -H 'Connection: x-secret' \
    -H 'X-Secret: 1' -H 'Keep-Alive: timeout=3' >"$T/b1"
pg_check "GET / reaches up1 with the query" grep -q '^up1 GET /echo?q=1 ' "$T/b1"
pg_check "X-Forwarded-For appends the client" grep -q '^X-Forwarded-For: 10.9.8.7, 127.0.0.1' "$T/b1"
pg_check "X-Forwarded-Proto/Host added" bash -c "grep -q '^X-Forwarded-Proto: http' '$T/b1' && grep -q '^X-Forwarded-Host: 127.0.0.1:$P' '$T/b1'"
pg_check "Via added to the request" grep -q '^Via: 1.1 profgate' "$T/b1"
pg_check "hop-by-hop and Connection-listed headers removed" bash -c "! grep -qi '^x-secret\|^keep-alive\|^connection' '$T/b1'"
pg_check "upstream's Connection-listed response header removed" bash -c "! grep -qi '^x-upstream' '$T/h1' && grep -qi '^via: 1.1 profgate' '$T/h1'"

# keep-alive to the client and the upstream pool
curl -s -w '%{num_connects}\n' "$base/echo" "$base/echo" "$base/echo" >"$T/ka"
pg_check "client keep-alive: one connection for three requests" bash -c "[ \$(grep -c '^[0-9]\$' '$T/ka') -eq 3 ] && [ \$(grep -c '^1\$' '$T/ka') -eq 1 ]"
conns=$(grep -o 'conn=[0-9]*' "$T/ka" | sort -u | wc -l)
pg_check "upstream pool: three requests on one upstream connection (saw $conns)" test "$conns" -eq 1
curl -s "$base/echo" >"$T/ka2"
pg_check "pool reused across client connections" bash -c "grep -o 'conn=[0-9]*' '$T/ka2' | grep -q \"\$(grep -o 'conn=[0-9]*' '$T/ka' | head -1)\$\""

# chunked both ways
curl -s "$base/chunked?n=4" -o "$T/ch" -D "$T/chh"
pg_check "chunked response relayed" bash -c "grep -qi '^transfer-encoding: chunked' '$T/chh' && [ \$(grep -c '^chunk ' '$T/ch') -eq 4 ]"
head -c 200000 /dev/urandom | base64 -w0 >"$T/body"
curl -s -H 'Transfer-Encoding: chunked' --data-binary @"$T/body" "$base/echo" >"$T/chreq"
pg_check "chunked request body relayed intact" bash -c "tail -c \$(stat -c %s '$T/body') '$T/chreq' | cmp -s - '$T/body'"
curl -s --data-binary @"$T/body" "$base/echo" >"$T/clreq"
pg_check "Content-Length request body relayed intact" bash -c "tail -c \$(stat -c %s '$T/body') '$T/clreq' | cmp -s - '$T/body'"
n=$(curl -s "$base/big?kb=20000" | wc -c)
pg_check "20 MB response streamed whole (got $n)" test "$n" -eq 20480000

# routing: longest prefix, at segment boundaries; unix: upstream
pg_check "/api/echo -> up2" bash -c "curl -s '$base/api/echo' | grep -qx 'up2 not found /api/echo'"
pg_check "/api -> up2 (exact)" bash -c "curl -s '$base/api?x' | grep -qx 'up2 not found /api?x'"
pg_check "/apix/echo -> up1 (not a segment of /api)" bash -c "curl -s '$base/apix/echo' | grep -qx 'up1 not found /apix/echo'"
pg_check "/v6/x -> IPv6 upstream" bash -c "curl -s '$base/v6/x' | grep -qx 'v6 not found /v6/x'"
pg_check "/u3/echo -> unix: upstream" bash -c "curl -s '$base/u3/echo' | grep -qx 'up3 not found /u3/echo'"

# the pprof relay
pg_check "/debug/pprof/echo -> agent1 as /debug/pprof/echo" bash -c "curl -s '$base/debug/pprof/echo?seconds=1' | grep -q '^agent1 GET /debug/pprof/echo?seconds=1 '"
pg_check "/api/debug/pprof/echo -> agent2, path rewritten" bash -c "curl -s '$base/api/debug/pprof/echo' | grep -q '^agent2 GET /debug/pprof/echo '"
pg_check "/api/debug/pprofx is the app's" bash -c "curl -s '$base/api/debug/pprofx' | grep -qx 'up2 not found /api/debug/pprofx'"
curl -s -D "$T/ms.h" "$base/debug/pprof/profile?seconds=21" >"$T/ms"
pg_check "seconds above max_seconds -> 400 naming the limit" bash -c "grep -q '^HTTP/1.1 400' '$T/ms.h' && grep -q 'seconds=21 exceeds the limit pprof.max_seconds = 20' '$T/ms' && grep -qi '^x-go-pprof: 1' '$T/ms.h'"
curl -s -D "$T/na.h" "$base/u3/debug/pprof/heap" >"$T/na"
pg_check "upstream without agent -> 404 naming it" bash -c "grep -q '^HTTP/1.1 404' '$T/na.h' && grep -q 'upstream \"noagent\" has no agent' '$T/na'"

# unreachable upstream and agent: 502 naming which
curl -s -D "$T/d.h" "$base/dead/x" >"$T/d"
pg_check "502 names the upstream" bash -c "grep -q '^HTTP/1.1 502' '$T/d.h' && grep -qx 'upstream \"dead\" (127.0.0.1:$DEAD) unreachable: connection refused (tried twice)' '$T/d'"
curl -s -D "$T/da.h" "$base/dead/debug/pprof/profile?seconds=1" >"$T/da"
pg_check "502 names the agent, with X-Go-Pprof" bash -c "grep -q '^HTTP/1.1 502' '$T/da.h' && grep -qi '^x-go-pprof: 1' '$T/da.h' && grep -qx 'agent of \"dead\" (unix:$T/nothere.sock) unreachable: no such file or directory' '$T/da'"
pg_check "gateway still serves after 502s" bash -c "curl -s '$base/echo' | grep -q '^up1 GET'"

# raw-socket behaviours
cat >"$T/raw.py" <<'EOF'
import socket, sys
def raw(data, port, wait=2.0):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(wait)
    s.sendall(data); out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
    except socket.timeout: pass
    s.close(); return out.decode("latin1")
port = int(sys.argv[1]); what = sys.argv[2]
if what == "pipeline":
    print(raw(b"GET /echo?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /sleep?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n"
              b"POST /echo?3 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
              b"GET /echo?4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", port))
elif what == "nobody":
    print(raw(b"HEAD /big?kb=5 HTTP/1.1\r\nHost: a\r\n\r\nGET /status?code=204 HTTP/1.1\r\nHost: a\r\n\r\n"
              b"GET /status?code=304 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", port))
elif what == "malformed":
    print(raw(b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", port))
elif what == "http10":
    print(raw(b"GET /echo HTTP/1.0\r\n\r\n", port))
EOF
python3 "$T/raw.py" "$P" pipeline >"$T/pipe"
order=$(grep -o '^up1 [A-Z]* /[a-z]*?[0-9]\|^slept' "$T/pipe" | tr '\n' ' ')
pg_check "pipelined responses in order ($order)" test "$order" = "up1 GET /echo?1 slept up1 POST /echo?3 up1 GET /echo?4 "
pg_check "pipelined POST body relayed" grep -q '^xyz' "$T/pipe"
python3 "$T/raw.py" "$P" nobody >"$T/nobody"
pg_check "HEAD, 204, 304 without bodies, then the next response" bash -c "[ \$(grep -c '^HTTP/1.1 ' '$T/nobody') -eq 4 ] && ! grep -q 'xxxx\|^status' '$T/nobody' && grep -q '^up1 GET /echo?last' '$T/nobody'"
python3 "$T/raw.py" "$P" malformed >"$T/mal"
pg_check "malformed request -> 400 keeping llhttp's reason" bash -c "grep -q '^HTTP/1.1 400' '$T/mal' && grep -q 'malformed request: Invalid header token' '$T/mal'"
python3 "$T/raw.py" "$P" http10 >"$T/h10"
pg_check "HTTP/1.0 without Host: upstream gets a Host, client a close" bash -c "grep -q '^Host: 127.0.0.1:$U1' '$T/h10' && grep -qi '^connection: close' '$T/h10'"

curl -s --http1.0 -D "$T/h10c.h" "$base/chunked?n=3" >"$T/h10c"
pg_check "HTTP/1.0 client, chunked response: payload de-chunked, ended by close" bash -c "! grep -qi '^transfer-encoding' '$T/h10c.h' && grep -qi '^connection: close' '$T/h10c.h' && [ \"\$(cat '$T/h10c')\" = \"\$(printf 'chunk 0\nchunk 1\nchunk 2')\" ]"

curl -s -D "$T/up.h" -H 'Connection: Upgrade' -H 'Upgrade: websocket' "$base/echo" >"$T/up"
pg_check "Upgrade refused clearly (501 naming it)" bash -c "grep -q '^HTTP/1.1 501' '$T/up.h' && grep -q 'protocol upgrade' '$T/up'"

# Expect: 100-continue passes the upstream's 100 through
curl -s -v -H 'Expect: 100-continue' --data-binary @"$T/body" "$base/echo" >"$T/exp" 2>"$T/exp.v"
pg_check "Expect: 100-continue: 100 relayed, body delivered" bash -c "grep -q '< HTTP/1.1 100' '$T/exp.v' && tail -c \$(stat -c %s '$T/body') '$T/exp' | cmp -s - '$T/body'"

# upstream that cuts its response / ends it by closing
curl -s -o /dev/null "$base/cut"
rc=$?
pg_check "response cut by the upstream is cut for the client (curl rc $rc)" test "$rc" -eq 18
pg_check "close-delimited response relayed whole" bash -c "curl -s '$base/eof' | grep -qx 'until close'"
pg_check "next request after those is fine" bash -c "curl -s '$base/echo' | grep -q '^up1 GET'"

# load with keep-alive
ab -s 10 -k -c 8 -n 5000 "$base/big?kb=1" >"$T/ab" 2>&1
pg_check "ab -k: 5000 requests, none failed" bash -c "grep -q 'Complete requests: *5000' '$T/ab' && grep -q 'Failed requests: *0' '$T/ab' && grep -q 'Keep-Alive requests: *5000' '$T/ab'"

# stop: exit 0
pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; fi
pg_done
