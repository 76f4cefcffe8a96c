#!/usr/bin/env bash
# integration.proxy_limits: profgate's timeouts and limits, each answered with its status
# and a body naming the cause: 408 (slow head), 431 (head too large), 413 (body too large),
# 504 (slow upstream), the profile exemption (a pprof request with seconds=N may take N s
# plus a margin even when the upstream timeout is shorter), a client that goes away during
# a profile closes the agent connection, and max_connections pausing accept.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1

cat >"$T/pg.toml" <<EOF
[server]
listen           = "127.0.0.1:$P"
workers          = 1
header_timeout   = "1s"
max_header_bytes = 2048
max_body_bytes   = 1000
max_connections  = 3

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"
agent   = "unix:$T/agent.sock"
timeout = "1s"
EOF
cat >>"$T/pg.toml" <<'EOF'

[[route]]
prefix   = "/"
upstream = "up1"

[pprof]
token_file = "token"
EOF
echo s3cret >"$T/token"
AUTH='Authorization: Bearer s3cret'

pg_upstreams up1 "127.0.0.1:$U1" agent "unix:$T/agent.sock"
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

cat >"$T/raw.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1]); what = sys.argv[2]
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
if what == "slowhead":
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n")   # never finished
elif what == "bighead":
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
elif what == "bigchunked":
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(10):
        s.sendall(b"c8\r\n" + b"z" * 200 + b"\r\n")
    s.sendall(b"0\r\n\r\n")
start = time.time(); out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except socket.timeout:
    out += b"[timeout]"
sys.stdout.write(out.decode("latin1"))
sys.stdout.write("\nelapsed=%.1f\n" % (time.time() - start))
EOF

python3 "$T/raw.py" "$P" slowhead >"$T/408"
pg_check "slow head -> 408 naming header_timeout, then close" bash -c "grep -q '^HTTP/1.1 408' '$T/408' && grep -q 'server.header_timeout' '$T/408' && ! grep -q timeout] '$T/408'"
python3 "$T/raw.py" "$P" bighead >"$T/431"
pg_check "head over max_header_bytes -> 431 naming the limit" bash -c "grep -q '^HTTP/1.1 431' '$T/431' && grep -q 'max_header_bytes = 2048' '$T/431'"
head -c 2000 /dev/zero >"$T/2k"
curl -s -D "$T/413.h" --data-binary @"$T/2k" "$base/echo" >"$T/413"
pg_check "Content-Length over max_body_bytes -> 413 naming the limit" bash -c "grep -q '^HTTP/1.1 413' '$T/413.h' && grep -q 'max_body_bytes = 1000' '$T/413'"
python3 "$T/raw.py" "$P" bigchunked >"$T/413c"
pg_check "chunked body over max_body_bytes -> 413" grep -q '^HTTP/1.1 413' "$T/413c"
pg_check "a body under the limit passes" bash -c "curl -s --data-binary 'small' '$base/echo' | grep -q '^small'"

curl -s -D "$T/504.h" "$base/sleep?ms=3000" >"$T/504"
pg_check "upstream slower than its timeout -> 504 naming it" bash -c "grep -q '^HTTP/1.1 504' '$T/504.h' && grep -q 'upstream \"up1\" did not respond within 1000 ms' '$T/504'"
pg_check "within the timeout is fine" bash -c "curl -s '$base/sleep?ms=300' | grep -qx slept"
# profile exemption: seconds=2 gives 2 s + margin although timeout is 1 s
curl -s -H "$AUTH" -D "$T/prof.h" "$base/debug/pprof/sleep?ms=2500&seconds=2" >"$T/prof"
pg_check "pprof request with seconds=2 outlives the 1 s timeout" bash -c "grep -q '^HTTP/1.1 200' '$T/prof.h' && grep -qx slept '$T/prof'"

# pprof.token_file: 401 with WWW-Authenticate without the token or with a wrong one; the
# token is not passed on to the agent
curl -s -D "$T/401.h" "$base/debug/pprof/echo" >"$T/401"
pg_check "no token -> 401 with WWW-Authenticate, X-Go-Pprof" bash -c "grep -q '^HTTP/1.1 401' '$T/401.h' && grep -qi '^www-authenticate: Bearer' '$T/401.h' && grep -qi '^x-go-pprof: 1' '$T/401.h' && grep -q 'pprof token required' '$T/401'"
pg_check "wrong token -> 401" bash -c "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cres' '$base/debug/pprof/echo' | grep -qx 401"
curl -s -H "$AUTH" "$base/debug/pprof/echo" >"$T/tok"
pg_check "right token -> the agent, without the Authorization header" bash -c "grep -q '^agent GET /debug/pprof/echo ' '$T/tok' && ! grep -qi '^authorization' '$T/tok'"
pg_check "the app path needs no token" bash -c "curl -s '$base/echo' | grep -q '^up1 GET'"

# a client that goes away during a profile: the agent's connection is closed
before=$(ls /proc/$(pg_pid agent)/fd | wc -l)
curl -s -H "$AUTH" -m 1 "$base/debug/pprof/sleep?ms=8000&seconds=8" >/dev/null
sleep 0.5
after=$(ls /proc/$(pg_pid agent)/fd | wc -l)
pg_check "client gone mid-profile: agent connection closed (fds $before -> $after)" test "$after" -le "$before"

# max_connections = 3: the 4th connection waits until one closes (own instance: the
# header_timeout above would close the idle connections too soon)
pg_ports P2
sed -e "s/127.0.0.1:$P/127.0.0.1:$P2/" -e '/header_timeout/d' "$T/pg.toml" >"$T/pg2.toml"
pg_start profgate2 "$PG" --config "$T/pg2.toml"
pg_wait_port "$P2" || pg_fail "profgate2 did not start"
python3 - "$P2" >"$T/maxc" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
time.sleep(0.3)
c = socket.create_connection(("127.0.0.1", port)); c.settimeout(1.0)
c.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
try:
    d = c.recv(100)
    print("answered while full:", d[:20])
except socket.timeout:
    print("waited while full")
idle[0].close()
c.settimeout(3.0)
out = b""
try:
    while True:
        d = c.recv(65536)
        if not d: break
        out += d
except socket.timeout:
    pass
print("after close:", out.split(b"\r\n")[0].decode())
EOF
pg_check "max_connections: accept paused while full" grep -q '^waited while full' "$T/maxc"
pg_check "max_connections: resumes when one closes" grep -q '^after close: HTTP/1.1 200' "$T/maxc"
pg_check "gateway still serves" bash -c "curl -s '$base/echo' | grep -q '^up1 GET'"

pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; cat "$T/maxc"; fi
pg_done
