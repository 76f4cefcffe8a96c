#!/usr/bin/env bash
# proxy_bodyless_responses: a 204, a 304 and a 1xx end with their head (RFC 9112 6.3 (1)),
# whatever Content-Length or Transfer-Encoding say: a 304 may carry the Content-Length a 200
# would have had (RFC 9110 8.6), and many servers send it. llhttp 8 frames such a response by
# the field, so before the fix profgate waited for a body that never came: the next request
# on the connection got no answer and, after upstream.timeout, the client connection was cut
# ("stalled mid-response"); bytes that came after the head went to the client as the start
# of the next response (fuzz_conn F12). Each case: the bodyless answer, then a 200 on the
# same client connection, within seconds; stray bytes after a head reach no client, and the
# upstream connection that sent them is not reused.
# The upstream is tests/programs/pg_raw_upstream (files written here, byte for byte).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

RAW=$BIN/tests/programs/pg_raw_upstream
pg_need "$PG" "$RAW" curl python3
pg_ports P U

cat >"$T/pg.toml" <<EOF
[server]
listen = "127.0.0.1:$P"
workers = 1

[[upstream]]
name = "raw"
address = "127.0.0.1:$U"
timeout = "20s"

[[route]]
prefix = "/"
upstream = "raw"
EOF

mkdir -p "$T/r"
raw() { printf "$2" >"$T/r/$1"; } # raw NAME BYTES: the whole response (printf escapes)
raw ok 'HTTP/1.1 200 OK\r\nX-Conn: @@CONN@@\r\nContent-Length: 5\r\n\r\nhello'
raw nm_len 'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\nX-Conn: @@CONN@@\r\nContent-Length: 9\r\n\r\n'
raw nm_chunked 'HTTP/1.1 304 Not Modified\r\nX-Conn: @@CONN@@\r\nTransfer-Encoding: chunked\r\n\r\n'
raw nc_len 'HTTP/1.1 204 No Content\r\nX-Conn: @@CONN@@\r\nContent-Length: 9\r\n\r\n'
raw nc_len_extra 'HTTP/1.1 204 No Content\r\nX-Conn: @@CONN@@\r\nContent-Length: 9\r\n\r\nho'
raw hints_len 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nX-Conn: @@CONN@@\r\nContent-Length: 5\r\n\r\nhello'
pg_start raw "$RAW" --listen "127.0.0.1:$U" --dir "$T/r"
pg_up raw "$U" || { pg_log raw; pg_fail "pg_raw_upstream did not start"; pg_done; }
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

# pair NAME: GET NAME then GET ok on one client connection (curl --next reuses it); sets CODES
# ("<status> <status>"), RC (curl's), the heads in $T/NAME.h1 and $T/NAME.h2, the second
# body in $T/NAME.b2, and the number of client connections curl opened in NCONN
pair() {
    local w='%{http_code} %{num_connects}\n'
    curl -s -m 8 -w "$w" -D "$T/$1.h1" -o /dev/null "$base/$1" \
        --next -s -m 8 -w "$w" -D "$T/$1.h2" -o "$T/$1.b2" "$base/ok" >"$T/$1.w"
    RC=$?
    read -r c1 n1 c2 n2 <<<"$(tr '\n' ' ' <"$T/$1.w")"
    CODES="$c1 $c2"
    NCONN=$((n1 + n2))
}
xconn() { tr -d '\r' <"$1" | awk -F': ' 'tolower($1) == "x-conn" { v = $2 } END { print v }'; }

for name in nm_len nm_chunked nc_len; do
    want=${name:0:2}
    [ "$want" = nm ] && want=304 || want=204
    pair $name
    pg_check "$name: $want, then 200 on the same client connection (got '$CODES', rc $RC, $NCONN connect(s))" \
        test "$CODES:$RC:$NCONN:$(cat "$T/$name.b2")" = "$want 200:0:1:hello"
    pg_check "$name: the upstream connection is reused after it ($(xconn "$T/$name.h1") then $(xconn "$T/$name.h2"))" \
        test "$(xconn "$T/$name.h1")" = "$(xconn "$T/$name.h2")"
done
pg_check "nm_len: the 304 keeps its Content-Length and ETag for the client" \
    bash -c "tr -d '\r' <'$T/nm_len.h1' | grep -qix 'content-length: 9' && grep -qi '^etag: \"a\"' '$T/nm_len.h1'"

# a 204 with bytes after its head: they go to no client, and that upstream connection is
# closed (what it sends next cannot be trusted)
pair nc_len_extra
pg_check "nc_len_extra: 204, then 200 with its own body (got '$CODES', rc $RC, body '$(cat "$T/nc_len_extra.b2")')" \
    test "$CODES:$RC:$(cat "$T/nc_len_extra.b2")" = "204 200:0:hello"
pg_check "nc_len_extra: the next request went on another upstream connection ($(xconn "$T/nc_len_extra.h1") then $(xconn "$T/nc_len_extra.h2"))" \
    bash -c "[ -n '$(xconn "$T/nc_len_extra.h2")' ] && [ '$(xconn "$T/nc_len_extra.h1")' != '$(xconn "$T/nc_len_extra.h2")' ]"

# a 103 with a Content-Length: relayed, and the final response after it read as one
pair hints_len
pg_check "hints_len: 103 relayed, then the 200 with its body, then 200 (got '$CODES', rc $RC)" \
    bash -c "[ '$CODES:$RC' = '200 200:0' ] && grep -q '^HTTP/1.1 103' '$T/hints_len.h1'"

# pipelined on one raw connection: a 304 with Content-Length and a GET behind it, answered
# in order, the second response starting right after the first head
python3 - "$P" >"$T/pipe.out" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /nm_len HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
s.settimeout(5)
d = b""
end = time.time() + 5
while time.time() < end and not d.endswith(b"hello"):
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    d += chunk
print(repr(d))
PY
pg_check "pipelined 304 + GET: two responses in order, nothing between them (got $(head -c 400 "$T/pipe.out"))" \
    python3 -c 'import ast, re, sys; d = ast.literal_eval(open(sys.argv[1]).read()); sys.exit(not re.fullmatch(rb"HTTP/1.1 304 [^\r]*\r\n(?:[^\r]+\r\n)*\r\nHTTP/1.1 200 OK\r\n(?:[^\r]+\r\n)*\r\nhello", d))' "$T/pipe.out"

pg_check "no response was cut (no \"stalled\" or \"closed the connection\" in the log)" \
    bash -c "! grep -qE 'stalled mid-response|mid-response' '$T/profgate.log'"
pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
pg_done
