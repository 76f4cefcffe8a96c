#!/usr/bin/env bash
# integration.harden_connection_listed: a Connection field that lists Host, Content-Length or
# Transfer-Encoding does not make profgate drop them (RFC 9110 7.6.1: they are for every
# recipient, never connection options). Before, "Connection: Content-Length" sent a POST
# upstream without its length, so its body ("GET /smuggled ...") was read by the upstream
# as the next request on that connection: request smuggling; "Connection: host" sent it
# without Host; an upstream's "Connection: Content-Length" reached the client without the
# length. (Found by fuzz_http_request once it checked the Host sent upstream.)
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"

RAW=$BIN/tests/programs/pg_raw_upstream
pg_need "$PG" "$UP" "$RAW" python3 curl
pg_ports P U R

cat >"$T/pg.toml" <<EOF
[server]
listen  = "127.0.0.1:$P"
workers = 1

[[upstream]]
name    = "echo"
address = "127.0.0.1:$U"

[[upstream]]
name    = "raw"
address = "127.0.0.1:$R"

[[route]]
prefix   = "/cl"
upstream = "raw"

[[route]]
prefix   = "/"
upstream = "echo"
EOF
mkdir -p "$T/r"
printf 'HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello' >"$T/r/cl"

pg_start up "$UP" --listen "127.0.0.1:$U" --name echo
pg_start raw "$RAW" --listen "127.0.0.1:$R" --dir "$T/r"
pg_up up "$U" || { pg_log up; pg_fail "pg_test_upstream did not start"; pg_done; }
pg_up raw "$R" || { pg_log raw; pg_fail "pg_raw_upstream did not start"; pg_done; }
pg_gateway profgate "$T/pg.toml" "$P"

# send FIELDS [chunked]: a POST /echo with FIELDS (after Host; '|' ends a line, {len} is the
# body's length) whose body is a GET /smuggled request (chunked: as one chunk), then a GET
# /echo on the same client connection; prints everything the client got (3 s at most)
send()
{
    python3 - "$P" "$1" "${2:-}" <<'PY'
import socket, sys, time
port, fields, mode = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
body = b"GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"
if mode == "chunked":
    body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
fields = fields.replace(b"{len}", str(len(body)).encode())
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /echo HTTP/1.1\r\nHost: gw\r\n" + fields.replace(b"|", b"\r\n") + b"\r\n" + body)
time.sleep(0.3)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: gw\r\n\r\n")
s.settimeout(3)
got = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
except socket.timeout:
    pass
sys.stdout.write(got.decode(errors="replace").replace("\r", ""))
PY
}

# post OUT: the head the upstream echoed for the POST
post()
{
    awk '/^echo POST/ { p = 1; next } p && /^$/ { exit } p' <<<"$1"
}

out=$(send 'Connection: Content-Length|Content-Length: {len}|')
pg_check "Connection: Content-Length: the upstream got the length" \
    grep -qi '^content-length: 36$' <<<"$(post "$out")"
pg_check "Connection: Content-Length: the next request went on the POST's upstream connection as the request after it (the upstream stayed in step: nothing smuggled)" \
    test "$(sed -n 's/^echo POST \/echo conn=\([0-9]*\) req=\([0-9]*\)/\1 \2/p' <<<"$out"),$(sed -n 's/^echo GET \/echo conn=\([0-9]*\) req=\([0-9]*\)/\1 \2/p' <<<"$out" | awk '{ print $1, $2 - 1 }')" = \
         "$(sed -n 's/^echo POST \/echo conn=\([0-9]*\) req=\([0-9]*\)/\1 \2/p' <<<"$out"),$(sed -n 's/^echo POST \/echo conn=\([0-9]*\) req=\([0-9]*\)/\1 \2/p' <<<"$out")"
pg_check "Connection: Content-Length: the body was not read as a request (no GET /smuggled upstream)" \
    bash -c "! grep -q '^echo GET /smuggled' <<<\"\$1\"" _ "$out"
pg_check "Connection: Content-Length: two answers, the POST's then the GET's" \
    test "$(grep -c '^echo \(POST\|GET\) /echo' <<<"$out")" = 2

out=$(send 'Connection: Transfer-Encoding|Transfer-Encoding: chunked|' chunked)
pg_check "Connection: Transfer-Encoding: the upstream got it, and the chunked body" \
    bash -c "grep -qi '^transfer-encoding: chunked$' <<<\"\$1\" && ! grep -q '^echo GET /smuggled' <<<\"\$2\"" _ "$(post "$out")" "$out"

out=$(send 'Connection: host|Content-Length: {len}|')
pg_check "Connection: host: the upstream still got Host: gw" grep -qi '^host: gw$' <<<"$(post "$out")"

head=$(curl -s -m 5 -D - -o "$T/cl.body" "http://127.0.0.1:$P/cl" | tr -d '\r')
pg_check "an upstream's Connection: Content-Length: the client gets the length, and the body" \
    bash -c "grep -qi '^content-length: 5$' <<<\"\$1\" && [ \"\$(cat '$T/cl.body')\" = hello ]" _ "$head"

pg_check "profgate is still running" kill -0 "$(pg_pid profgate)"
pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
pg_done
