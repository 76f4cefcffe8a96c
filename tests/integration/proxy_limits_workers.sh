#!/usr/bin/env bash
# integration.proxy_limits_workers: with workers = 2, server.max_connections is one limit for
# the process, not a share per worker. SO_REUSEPORT does not spread connections evenly, so
# with shares of max/2 a worker at its share left connections unserved while the other had
# free slots. Here: all max_connections keep-alive connections are served whatever the
# split; one more waits; and closing any one held connection (on either worker) lets the
# waiting one in. Several rounds, so that a slot freed on the other worker than the one
# holding the waiting connection is exercised in all but ~1/64 of runs.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1
MAX=40

cat >"$T/pg.toml" <<EOF
[server]
listen          = "127.0.0.1:$P"
workers         = 2
max_connections = $MAX

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"

[[route]]
prefix   = "/"
upstream = "up1"
EOF

pg_upstreams up1 "127.0.0.1:$U1"
pg_gateway profgate "$T/pg.toml" "$P"

python3 - "$P" "$MAX" >"$T/out" <<'EOF'
import socket, sys, time
port, limit = int(sys.argv[1]), int(sys.argv[2])
REQ = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"

def answered(s, timeout):
    """True when a whole response head arrives within timeout (the connection stays open)."""
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return False
            buf += d
    except socket.timeout:
        return False
    return buf.startswith(b"HTTP/1.1 200")

def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(REQ)
    return s

held = []
for i in range(limit):
    held.append(connect())
served = sum(answered(s, 5.0) for s in held)
print("held served: %d of %d" % (served, limit))
for rnd in range(6):
    extra = connect()
    if answered(extra, 1.0):
        print("round %d: answered while full" % rnd)
        for i, s in enumerate(held):
            s.setblocking(False)
            try:
                if s.recv(65536, socket.MSG_PEEK) == b"":
                    print("  held %d closed by the server" % i)
            except BlockingIOError:
                pass
        break
    held.pop(0).close()
    if answered(extra, 5.0):
        print("round %d: resumed after one close" % rnd)
    else:
        print("round %d: NOT resumed after one close" % rnd)
        break
    held.append(extra)
EOF
cat "$T/out"
pg_check "all $MAX connections served with 2 workers" grep -qx "held served: $MAX of $MAX" "$T/out"
pg_check "no round answered while full" bash -c "! grep -q 'answered while full' '$T/out'"
pg_check "each of 6 rounds resumed after closing one held connection" \
    test "$(grep -c 'resumed after one close' "$T/out")" -eq 6
pg_check "no round left waiting" bash -c "! grep -q 'NOT resumed' '$T/out'"
pg_check "gateway still serves" bash -c "curl -s 'http://127.0.0.1:$P/echo' | grep -q '^up1 GET'"

pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; fi
pg_done
