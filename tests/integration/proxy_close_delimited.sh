#!/usr/bin/env bash
# integration.proxy_close_delimited: a response body the upstream ends by closing (neither
# Content-Length nor chunked, RFC 9112 6.3 (8)) goes to an HTTP/1.1 client chunked, as nginx
# sends it, so that a cut shows. Before, profgate relayed it close-delimited: when the
# upstream stalled (upstream timeout) or reset mid-body, the client saw a clean close and
# took the truncated body for a whole one.
#  - clean EOF: "Transfer-Encoding: chunked", the whole body, the terminal 0-chunk, and the
#    client connection stays open for the next request (curl reuses it);
#  - stalled upstream cut by its timeout, upstream reset: no terminal chunk (raw bytes), and
#    curl reports the transfer incomplete (18 or 56);
#  - an HTTP/1.0 client: close-delimited as before (no Transfer-Encoding, Connection: close);
#  - HEAD and 204: no body, no Transfer-Encoding added;
#  - 48 MiB streamed to a client that pauses before reading: profgate's peak RSS grows by far
#    less than the body (backpressure, no buffering of the whole);
#  - the access log's bytes are the bytes the client received, framing included.
# The upstream is a small Python server (below) that answers by path and then closes.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need "$PG" curl python3
pg_ports P U

cat >"$T/pg.toml" <<EOF
[server]
listen        = "127.0.0.1:$P"
workers       = 1
access_log    = "$T/access.log"
access_log_format = "common"

[[upstream]]
name    = "eof"
address = "127.0.0.1:$U"
timeout = "1s"

[[route]]
prefix   = "/"
upstream = "eof"
EOF

# The upstream: one request per connection, answered without a length, then closed.
#   /eof/N     200, N bytes (b"0123456789abcdef" repeated) in pieces of up to 7,000, close
#   /stall/N   200, N bytes, then nothing (the connection stays open: profgate's timeout)
#   /reset/N   200, N bytes, then a RST
#   /204       204 without length, then close
# HEAD: the head only, then close.
cat >"$T/up.py" <<'PY'
import socket, socketserver, struct, sys, time

PAT = b"0123456789abcdef"

def body(n):
    return (PAT * (n // len(PAT) + 1))[:n]

class H(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(4096)
            if not d:
                return
            data += d
        method, target = data.split(b" ", 2)[:2]
        parts = target.decode().strip("/").split("/")
        kind, n = parts[0], int(parts[1]) if len(parts) > 1 else 0
        if kind == "204":
            s.sendall(b"HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n")
            s.close()
            return
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Kind: " + kind.encode() +
                  b"\r\n\r\n")
        if method == b"HEAD":
            s.close()
            return
        b, off = body(n), 0
        while off < n:
            s.sendall(b[off:off + 7000])
            off += 7000
            if n <= 100000:
                time.sleep(0.002)  # several reads, so several chunks
        if kind == "stall":
            time.sleep(30)
        elif kind == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

# raw PATH [VERSION [METHOD]]: the bytes the client gets for one request, in $T/raw.out
# (the client reads until profgate closes or 5 s pass with nothing; then it closes).
raw()
{
    python3 - "$P" "$1" "${2:-1.1}" "${3:-GET}" >"$T/raw.out" <<'PY'
import socket, sys
port, path, ver, method = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("%s %s HTTP/%s\r\nHost: a\r\n\r\n" % (method, path, ver)).encode())
s.settimeout(5)
got = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
        if method == "HEAD" and got.endswith(b"\r\n\r\n"):
            break
        if got.endswith(b"\r\n0\r\n\r\n"):
            break  # the terminal chunk: profgate keeps the connection
except socket.timeout:
    pass
sys.stdout.buffer.write(got)
PY
}

# dechunk FILE: the payload of FILE's chunked body (after its head) on stdout; fails if the
# framing is wrong or there is no terminal chunk. Prints the number of chunks on stderr.
dechunk()
{
    python3 - "$1" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
i = b.index(b"\r\n\r\n") + 4
out, n = bytearray(), 0
while True:
    j = b.index(b"\r\n", i)
    size = int(b[i:j], 16)
    i = j + 2
    if size == 0:
        if b[i:i + 2] != b"\r\n" or i + 2 != len(b):
            sys.exit("bad end")
        break
    out += b[i:i + size]
    if b[i + size:i + size + 2] != b"\r\n":
        sys.exit("no CRLF after chunk data")
    i += size + 2
    n += 1
sys.stdout.buffer.write(out)
sys.stderr.write("%d\n" % n)
PY
}

expect() # expect N: the body the upstream sends for N bytes
{
    python3 -c 'import sys; n = int(sys.argv[1]); sys.stdout.write(("0123456789abcdef" * (n // 16 + 1))[:n])' "$1"
}

pg_start up python3 "$T/up.py" "$U"
pg_up up "$U" || { pg_log up; pg_fail "the upstream did not start"; pg_done; }
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

# 1. clean EOF: chunked, whole, terminal chunk; raw bytes
raw /eof/100000
head=$(sed -n '1,/^\r$/p' "$T/raw.out" | tr -d '\r')
pg_check "clean EOF: the head says Transfer-Encoding: chunked, no Connection: close" \
    bash -c "grep -qix 'transfer-encoding: chunked' <<<'$head' && ! grep -qi '^connection: close' <<<'$head'"
dechunk "$T/raw.out" >"$T/eof.body" 2>"$T/eof.nchunks"
pg_check "clean EOF: well-framed chunks, ended by the terminal chunk ($(cat "$T/eof.nchunks") chunks)" \
    test -s "$T/eof.nchunks"
pg_check "clean EOF: the whole body (100000 bytes, got $(wc -c <"$T/eof.body"))" \
    cmp -s "$T/eof.body" <(expect 100000)
pg_check "clean EOF: each read relayed as its own chunk (more than one: $(cat "$T/eof.nchunks"))" \
    test "$(tail -n 1 "$T/eof.nchunks")" -gt 1 2>/dev/null
sleep 0.3 # the access log line (batched per loop turn)
alog=$(grep -F '"GET /eof/100000 HTTP/1.1"' "$T/access.log" | awk '{ print $(NF) }')
pg_check "access log: the bytes the client got, framing included ($(wc -c <"$T/raw.out"), logged ${alog:-none})" \
    test "${alog:-x}" = "$(wc -c <"$T/raw.out")"

# 2. keep-alive: two requests on one client connection, both whole
out=$(curl -s -m 10 -o "$T/ka1" "$base/eof/5000" -o "$T/ka2" "$base/eof/7" \
    -w '%{http_code} %{num_connects}\n')
pg_check "keep-alive: the second request reuses the connection (got: $(tr '\n' ' ' <<<"$out"))" \
    test "$(tr '\n' ' ' <<<"$out")" = "200 1 200 0 "
expect 5000 >"$T/ka1.want"
pg_check "keep-alive: both bodies whole" \
    bash -c "cmp -s '$T/ka1' '$T/ka1.want' && [ \"\$(cat '$T/ka2')\" = 0123456 ]"

# 3. a stalled upstream cut by its timeout (1 s): no terminal chunk
raw /stall/20000
pg_check "stalled upstream: the head went out chunked" \
    grep -qia '^transfer-encoding: chunked' "$T/raw.out"
dechunk "$T/raw.out" >/dev/null 2>&1
rc=$?
pg_check "stalled upstream: the body came up to the stall ($(wc -c <"$T/raw.out") bytes), then no terminal chunk (dechunk rc $rc)" \
    bash -c "[ $rc != 0 ] && [ \$(wc -c <'$T/raw.out') -gt 20000 ] &&
             [ \"\$(tail -c 5 '$T/raw.out' | od -An -c | tr -d ' ')\" != '0\r\n\r\n' ]"
curl -s -m 10 -o "$T/stall.body" "$base/stall/20000"
rc=$?
pg_check "stalled upstream: curl reports the transfer incomplete (rc $rc: 18 or 56), body $(wc -c <"$T/stall.body") bytes" \
    bash -c "{ [ $rc = 18 ] || [ $rc = 56 ]; } && [ \$(wc -c <'$T/stall.body') = 20000 ]"

# 4. an upstream reset mid-body
curl -s -m 10 -o "$T/reset.body" "$base/reset/30000"
rc=$?
pg_check "upstream reset: curl reports the transfer incomplete (rc $rc: 18 or 56)" \
    bash -c "[ $rc = 18 ] || [ $rc = 56 ]"

# 5. HTTP/1.0 client: close-delimited as before
raw /eof/30000 1.0
head=$(sed -n '1,/^\r$/p' "$T/raw.out" | tr -d '\r')
pg_check "HTTP/1.0 client: no Transfer-Encoding, Connection: close" \
    bash -c "! grep -qi '^transfer-encoding' <<<'$head' && grep -qix 'connection: close' <<<'$head'"
pg_check "HTTP/1.0 client: the whole body as it came" \
    cmp -s <(sed '1,/^\r$/d' "$T/raw.out") <(expect 30000)
curl -s -m 10 -0 -o "$T/h10.body" "$base/eof/30000"
rc=$?
expect 30000 >"$T/h10.want"
pg_check "HTTP/1.0 client (curl -0): rc 0, whole body (rc $rc)" \
    bash -c "[ $rc = 0 ] && cmp -s '$T/h10.body' '$T/h10.want'"

# 6. HEAD and 204: no body, nothing added
raw /eof/100 1.1 HEAD
pg_check "HEAD: no Transfer-Encoding added, no body ($(wc -c <"$T/raw.out") bytes)" \
    bash -c "! grep -qia '^transfer-encoding' '$T/raw.out' && [ \"\$(tail -c 4 '$T/raw.out' | od -An -c | tr -d ' ')\" = '\r\n\r\n' ]"
out=$(curl -s -m 10 -I "$base/eof/100" -o /dev/null -w '%{http_code} %{num_connects}\n' \
    "$base/204" -o /dev/null -w '%{http_code} %{num_connects}\n')
pg_check "HEAD then 204 on one connection: both answered, no cut (got: $(tr '\n' ' ' <<<"$out"))" \
    test "$(tr '\n' ' ' <<<"$out")" = "200 1 204 0 "
raw /204
pg_check "204: no Transfer-Encoding added" \
    bash -c "grep -qa '^HTTP/1.1 204' '$T/raw.out' && ! grep -qia '^transfer-encoding' '$T/raw.out'"

# 7. a big body to a client that waits 1 s before reading: streamed, RSS bounded
pid=$(pg_pid profgate)
rss0=$(awk '/^VmHWM/ { print $2 }' /proc/$pid/status)
n=$((48 << 20))
got=$(python3 - "$P" "$n" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /eof/%d HTTP/1.1\r\nHost: a\r\n\r\n" % n)
time.sleep(1)
s.settimeout(20)
buf, payload = bytearray(), 0
end = time.time() + 60
while time.time() < end:
    d = s.recv(1 << 20)
    if not d:
        break
    buf += d
    if buf.endswith(b"\r\n0\r\n\r\n"):
        break
i = buf.index(b"\r\n\r\n") + 4
while True:
    j = buf.index(b"\r\n", i)
    size = int(buf[i:j], 16)
    if size == 0:
        break
    payload += size
    i = j + 2 + size + 2
print(payload)
PY
)
rss1=$(awk '/^VmHWM/ { print $2 }' /proc/$pid/status)
pg_check "48 MiB close-delimited body streamed whole, chunked (payload $got)" test "$got" = "$n"
pg_check "peak RSS grew by less than 24 MiB while streaming 48 MiB (${rss0} -> ${rss1} KiB)" \
    test $((rss1 - rss0)) -lt $((24 << 10))

pg_check "profgate is still running" kill -0 "$(pg_pid profgate)"
pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
pg_stop up
pg_done
