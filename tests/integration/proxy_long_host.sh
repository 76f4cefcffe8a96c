#!/usr/bin/env bash
# integration.proxy_long_host: a Host (or absolute-form authority) as long as
# server.max_header_bytes allows goes upstream with add_forwarded on (the default), its
# X-Forwarded-Host the same. Before, the added lines were copied into a fixed reserve after
# the head, and a long Host copied into X-Forwarded-Host overflowed it once the head was near
# its limit: a 502 "argument list too long" for a request that was legal. Past the limit,
# the answer is 431 as for any head, not 502.
# Checked at lengths around where the old code broke and near the limit, with the default
# limit (32 KiB) and with a 256 KiB one; also with a long X-Forwarded-For and Via of the
# client's, which are appended to.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need "$PG" python3
pg_ports P P2 U

for port in "$P" "$P2"; do
    extra=
    [ "$port" = "$P2" ] && extra='max_header_bytes = "256KiB"'
    cat >"$T/pg-$port.toml" <<EOF
[server]
listen  = "127.0.0.1:$port"
workers = 1
add_via = true
$extra

[[upstream]]
name    = "echo"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "echo"
EOF
done

# The upstream answers each request with what a check needs of its head: one line
# "name length sha1-prefix" per field it got, in order.
cat >"$T/up.py" <<'PY'
import hashlib, socket, socketserver, sys

class H(socketserver.BaseRequestHandler):
    def handle(self):
        s, d = self.request, b""
        while True:
            while b"\r\n\r\n" not in d:
                x = s.recv(1 << 20)
                if not x:
                    return
                d += x
            head, d = d.split(b"\r\n\r\n", 1)
            out = []
            for line in head.split(b"\r\n")[1:]:
                name, value = line.split(b":", 1)
                value = value.strip(b" \t")
                out.append(b"%s %d %s" % (name.lower(), len(value),
                                          hashlib.sha1(value).hexdigest()[:12].encode()))
            body = b"\n".join(out) + b"\n"
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

# req PORT KIND N: one request whose KIND value is N bytes long (host: Host; auth: the
# absolute-form authority; xff, via: the client's X-Forwarded-For / Via, Host short); prints
# the status, then the upstream's lines ("name length sha1-prefix"), then "want" lines with
# the expected length and sha1 prefix of the value.
req()
{
    python3 - "$@" <<'PY'
import hashlib, socket, sys
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
v = (b"h" * n)
if kind in ("host", "auth"):
    v = (b"abcdefgh-" * (n // 9 + 1))[:n - 5] + b".test"   # a valid reg-name
target, fields = b"/x", b""
if kind == "host":
    fields = b"Host: " + v + b"\r\n"
elif kind == "auth":
    target = b"http://" + v + b"/x"
    fields = b"Host: other\r\n"
elif kind == "xff":
    fields = b"Host: gw\r\nX-Forwarded-For: " + v + b"\r\n"
elif kind == "via":
    fields = b"Host: gw\r\nVia: " + v + b"\r\n"
# what a real client sends besides (the head then nearer its limit)
fields += b"Accept: */*\r\nUser-Agent: curl/7.88.1\r\n"
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET " + target + b" HTTP/1.1\r\n" + fields + b"\r\n")
s.settimeout(10)
d = b""
try:
    while b"\r\n\r\n" not in d:
        x = s.recv(1 << 20)
        if not x:
            break
        d += x
    head, body = d.split(b"\r\n\r\n", 1)
    cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while cl and len(body) < cl[0]:
        x = s.recv(1 << 20)
        if not x:
            break
        body += x
except (socket.timeout, ValueError):
    head, body = b"HTTP/1.1 000 none", b""
print(head.split(b" ")[1].decode())
sys.stdout.write(body.decode(errors="replace"))
if kind == "xff":
    v = v + b", 127.0.0.1"
if kind == "via":
    v = v + b", 1.1 profgate"
print("want %d %s" % (len(v), hashlib.sha1(v).hexdigest()[:12]))
PY
}

pg_start up python3 "$T/up.py" "$U"
pg_up up "$U" || { pg_log up; pg_fail "the upstream did not start"; pg_done; }
pg_gateway pg1 "$T/pg-$P.toml" "$P"
pg_gateway pg2 "$T/pg-$P2.toml" "$P2"

# check PORT KIND N FIELD...: 200, and each FIELD the upstream got carries the value whole
check()
{
    local port=$1 kind=$2 n=$3 out want f got
    shift 3
    out=$(req "$port" "$kind" "$n")
    want=$(awk '$1 == "want" { print $2, $3 }' <<<"$out")
    for f in "$@"; do
        got=$(awk -v f="$f" '$1 == f { print $2, $3 }' <<<"$out")
        pg_check "$kind of $n bytes (limit on :$port): 200, $f carries it whole (status $(head -1 <<<"$out"), $f: ${got:-none}, want $want)" \
            test "$(head -1 <<<"$out"):$got" = "200:$want"
    done
    pg_check "$kind of $n bytes: exactly one Host upstream" \
        test "$(awk '$1 == "host" { n++ } END { print n + 0 }' <<<"$out")" = 1
}

# the default limit, 32 KiB: around the old boundary, and up to the limit (the request line
# and the other fields take the rest)
for n in 900 1000 1100 4096 16384 32600 32680 32700; do
    check "$P" host "$n" host x-forwarded-host
done
for n in 900 1100 32640 32660; do
    check "$P" auth "$n" host x-forwarded-host
done
check "$P" xff 32650 x-forwarded-for
check "$P" via 32650 via
# a 256 KiB limit
for n in 65000 200000 262000; do
    check "$P2" host "$n" host x-forwarded-host
done
check "$P2" auth 262000 host x-forwarded-host
check "$P2" xff 200000 x-forwarded-for
check "$P2" via 200000 via

# past the limit: 431, as for any head too large
st=$(req "$P" host 40000 | head -1)
pg_check "a Host past server.max_header_bytes: 431 (got $st)" test "$st" = 431

pg_check "profgate is still running" kill -0 "$(pg_pid pg1)"
pg_check "profgate exits 0 on SIGTERM" pg_stop pg1
pg_stop pg2
pg_stop up
pg_done
