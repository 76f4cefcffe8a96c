#!/usr/bin/env bash
# proxy_slow_client: a client that stops reading a large response for a while is not cut
# as if the upstream had stalled (fuzz_conn F10). While the client's write queue is full the
# gateway stops reading the upstream (backpressure), so the upstream's timeout between reads
# ran out and the response was cut with "upstream ... stalled mid-response", counted as
# upstream_timeout, although the upstream had the rest ready. Now, as nginx's send_timeout,
# the client has the exchange's budget to take bytes: one that pauses for longer than the
# upstream's timeout and then reads gets the whole response; one that reads nothing at all is
# cut after one to two budgets, logged and counted as client_timeout, not the upstream's.
# The same at the end of a response that closes the connection (see below).
# ctest-timeout: 180
. "$(dirname "$0")/lib/common.sh"

RAW=$BIN/tests/programs/pg_raw_upstream
pg_need "$PG" "$RAW" curl python3
pg_ports P U

cat >"$T/pg.toml" <<EOF
[server]
listen = "127.0.0.1:$P"
workers = 1
metrics_path = "/metrics"
metrics_allow = ["127.0.0.0/8"]
idle_timeout = "4s"

[[upstream]]
name = "raw"
address = "127.0.0.1:$U"
timeout = "1s"

[[route]]
prefix = "/"
upstream = "raw"
EOF

# 16 MiB: more than the kernel's socket buffers hold, so the gateway's own queue fills
mkdir -p "$T/r"
python3 -c 'import sys; n = 16 << 20; open(sys.argv[1], "wb").write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"x" * n)' "$T/r/big"
pg_start raw "$RAW" --listen "127.0.0.1:$U" --dir "$T/r"
pg_up raw "$U" || { pg_log raw; pg_fail "pg_raw_upstream did not start"; pg_done; }
pg_gateway profgate "$T/pg.toml" "$P"

# client PAUSE [NAME SIZE [close]]: GET /NAME (default big, 16 MiB) with a small receive
# buffer, read nothing for PAUSE seconds, then read as fast as it can; prints the body bytes
# received and how the connection ended ("complete", "eof" or the error), 30 s at most.
# "close": with Connection: close.
client() {
    python3 - "$P" "$@" <<'PY'
import socket, sys, time
port, pause = int(sys.argv[1]), float(sys.argv[2])
name = sys.argv[3] if len(sys.argv) > 3 else "big"
size = int(sys.argv[4]) if len(sys.argv) > 4 else 16 << 20
close = b"Connection: close\r\n" if len(sys.argv) > 5 else b""
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"GET /" + name.encode() + b" HTTP/1.1\r\nHost: a\r\n" + close + b"\r\n")
time.sleep(pause)
s.settimeout(30)
got, end, how = bytearray(), time.time() + 30, "timeout"
head = -1
while time.time() < end:
    try:
        d = s.recv(1 << 20)
    except OSError as e:
        how = type(e).__name__
        break
    if not d:
        how = "eof"
        break
    got += d
    if head < 0:
        head = got.find(b"\r\n\r\n")
    if head >= 0 and len(got) - head - 4 == size:
        how = "complete"
        break
print(len(got) - head - 4 if head >= 0 else 0, how)
PY
}

read -r n how <<<"$(client 1.8)"
pg_check "a client that pauses 1.8 s (upstream timeout 1 s), then reads: the whole 16 MiB (got $n bytes, $how)" \
    test "$n:$how" = "$((16 << 20)):complete"
pg_check "and nothing blamed on the upstream" bash -c "! grep -q 'stalled mid-response' '$T/profgate.log'"

read -r n how <<<"$(client 8)"
pg_check "a client that reads nothing: cut (got $n of $((16 << 20)) bytes, $how)" \
    bash -c "[ '$n' -lt $((16 << 20)) ] && [ '$how' != complete ] && [ '$how' != timeout ]"
pg_check "logged as the client's doing, naming the upstream" \
    pg_poll 5 grep -q 'client took none of the response from upstream "raw" for 1000 ms' "$T/profgate.log"
# The end of a response: with Connection: close the FIN waits for our queued writes, and the
# client that pauses there for longer than the 5 s of linger was cut, its last bytes never
# sent; now it has server.idle_timeout (4 s here) to take some, and one that takes none for
# one to two of them is cut. The response is sized so that all of it has left the upstream
# while the client pauses: the bytes the kernel held for the client above ($n), and 150 kB.
tail=$((n + 150000))
python3 -c 'import sys; n = int(sys.argv[2]); open(sys.argv[1], "wb").write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"y" * n)' "$T/r/tail" "$tail"
read -r n2 how2 <<<"$(client 5.5 tail "$tail" close)"
pg_check "Connection: close, the client pauses 5.5 s at the end of the response: all $tail bytes (got $n2, $how2)" \
    test "$n2:$how2" = "$tail:complete"
read -r n2 how2 <<<"$(client 12 tail "$tail" close)"
pg_check "Connection: close, the client takes nothing for 12 s: cut (got $n2 of $tail bytes, $how2)" \
    bash -c "[ '$n2' -lt $tail ] && [ '$how2' = eof ]"

m=$(curl -s -m 5 "http://127.0.0.1:$P/metrics")
pg_check "counted as client_timeout, not upstream_timeout" \
    bash -c "grep -qx 'profgate_errors_total{cause=\"client_timeout\"} 1' <<<'$m' &&
             ! grep -q 'cause=\"upstream_timeout\"} [1-9]' <<<'$m'"
pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
pg_done
