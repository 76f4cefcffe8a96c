#!/usr/bin/env bash
# integration.proxy_timeouts: the timeouts of issue 5 that proxy_limits does not reach, each
# proved on a real connection:
#  - server.idle_timeout: a keep-alive client connection outlives header_timeout between
#    requests (idle is not "slow head"), and is closed silently (no bytes, no 408) once idle
#    for idle_timeout;
#  - upstream.connect_timeout: an upstream whose listen backlog is full (the kernel drops the
#    SYN, so connect neither succeeds nor fails) -> 502 naming the upstream and the timeout;
#  - upstream.timeout between bytes: an upstream that sends its head and part of its body,
#    then stalls -> the client's response is cut (curl: transfer closed, never a hang, never
#    a body that looks complete), and the next request is served;
#  - the profile exemption has limits: a seconds= on an application path stretches nothing
#    (504), a pprof path without seconds keeps the upstream timeout (504 naming the agent),
#    and a pprof request with seconds=1 is cut at 1 s + the margin (10 s), not later.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 STALL FULL

cat >"$T/pg.toml" <<EOF
[server]
listen         = "127.0.0.1:$P"
workers        = 1
header_timeout = "1s"
idle_timeout   = "3s"

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"
agent   = "unix:$T/agent.sock"
timeout = "1s"

[[upstream]]
name    = "stall"
address = "127.0.0.1:$STALL"
timeout = "1s"

[[upstream]]
name            = "full"
address         = "127.0.0.1:$FULL"
connect_timeout = "1s"

[[route]]
prefix   = "/"
upstream = "up1"

[[route]]
prefix   = "/stall"
upstream = "stall"

[[route]]
prefix   = "/full"
upstream = "full"
EOF

# stall: answers every request with a head announcing 1000 bytes, sends 10, then goes quiet.
# full (pg_full_upstream): its connects never complete.
cat >"$T/servers.py" <<'EOF'
import socket, sys, threading, time
what, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
if what == "stall":
    s.listen(16)
    def handle(c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        time.sleep(60)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
EOF

pg_start stall python3 "$T/servers.py" stall "$STALL"
pg_full_upstream full "$FULL"
pg_upstreams up1 "127.0.0.1:$U1" agent "unix:$T/agent.sock"
pg_wait_port "$STALL" || pg_fail "the stalling upstream did not start"
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

# --- server.idle_timeout (3 s) vs server.header_timeout (1 s) on one keep-alive connection ---
python3 - "$P" >"$T/idle" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
req = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
def response():
    s.settimeout(5); got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(65536)
        if not d:
            return got
        got += d
    head, body = got.split(b"\r\n\r\n", 1)
    n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < n:
        body += s.recv(65536)
    return head.split(b"\r\n")[0]
s.sendall(req); print("first:", response().decode())
time.sleep(1.8)                     # idle longer than header_timeout, shorter than idle_timeout
s.sendall(req); print("second:", response().decode())
t0 = time.monotonic(); s.settimeout(10); extra = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            print("closed after %.1f s, bytes %d" % (time.monotonic() - t0, len(extra))); break
        extra += d
except socket.timeout:
    print("still open after 10 s")
EOF
pg_check "idle_timeout: first request answered ($(sed -n 1p "$T/idle"))" grep -q '^first: HTTP/1.1 200' "$T/idle"
pg_check "idle_timeout: idle 1.8 s (> header_timeout 1 s) the connection still serves" \
    grep -q '^second: HTTP/1.1 200' "$T/idle"
pg_check "idle_timeout: then closed silently once idle ($(sed -n 3p "$T/idle"))" \
    grep -q '^closed after [0-9.]* s, bytes 0$' "$T/idle"

# --- upstream.connect_timeout: SYN never answered ---
code=$(curl -s -m 15 -o "$T/ct" -w '%{http_code}' "$base/full/x")
pg_check "connect_timeout: 502 (got $code)" test "$code" = 502
pg_check "connect_timeout: names the upstream and the timeout ($(head -c 200 "$T/ct"))" \
    grep -q "^upstream \"full\" (127.0.0.1:$FULL) unreachable: connect timed out after 1000 ms" "$T/ct"

# --- upstream.timeout between bytes: the response is cut, never hangs ---
curl -s -m 15 -o "$T/stall.body" "$base/stall/x"
rc=$?
pg_check "stalled upstream mid-body: the client's response is cut (curl rc $rc: 18 = transfer closed)" \
    test "$rc" -eq 18
pg_check "stalled upstream: the client got the 10 bytes sent, nothing more" \
    test "$(cat "$T/stall.body")" = 0123456789
pg_check "stalled upstream: logged" grep -q 'upstream "stall" stalled mid-response' "$T/profgate.log"
pg_check "stalled upstream: the next request is served" bash -c "curl -s -m 5 '$base/echo' | grep -q '^up1 GET'"

# --- the profile exemption and its limits (upstream timeout 1 s) ---
code=$(curl -s -m 15 -o "$T/app" -w '%{http_code}' "$base/sleep?ms=2500&seconds=5")
pg_check "seconds= on an application path: no exemption, 504 (got $code)" \
    bash -c "[ '$code' = 504 ] && grep -q 'upstream \"up1\" did not respond within 1000 ms' '$T/app'"
code=$(curl -s -m 15 -o "$T/nosec" -w '%{http_code}' "$base/debug/pprof/sleep?ms=2500")
pg_check "pprof path without seconds: the upstream timeout holds, 504 naming the agent (got $code)" \
    bash -c "[ '$code' = 504 ] && grep -q 'agent of \"up1\" did not respond within 1000 ms' '$T/nosec'"
code=$(curl -s -m 30 -o "$T/bound" -w '%{http_code}' "$base/debug/pprof/sleep?ms=20000&seconds=1")
pg_check "pprof seconds=1: exempt up to 1 s + the 10 s margin, then 504 (got $code: $(head -c 100 "$T/bound"))" \
    bash -c "[ '$code' = 504 ] && grep -q 'agent of \"up1\" did not respond within 11000 ms' '$T/bound'"
pg_check "and the gateway still serves" bash -c "curl -s -m 5 '$base/echo' | grep -q '^up1 GET'"

pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; cat "$T/idle"; fi
pg_done
