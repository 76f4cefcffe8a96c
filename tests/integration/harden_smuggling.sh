#!/usr/bin/env bash
# harden_smuggling: hostile requests sent over raw sockets to profgate in front of a recording
# upstream (tests/integration/harden/rawhttp.py upstream: it logs every byte it receives, in
# all and per connection). Each smuggling trick -- Content-Length with Transfer-Encoding,
# duplicate or conflicting Content-Length, obfuscated Transfer-Encoding, obs-fold (also split
# across reads), bare LF, NUL and control bytes in the head, bad chunk framing (oversize or
# invalid chunk size, chunk data not followed by CRLF) arriving with the head -- must get 400
# and a closed connection, and the upstream must have received nothing of it (its log is
# unchanged). Bad chunk framing later in a long body: 400, and the upstream connection that
# got the head is closed holding exactly the bytes before the bad ones (a truncated request,
# never a second one). Good chunked requests still pass however they arrive (split, pipelined,
# with Expect: 100-continue). A slow head gets 408 within server.header_timeout, an oversize
# head 431, an oversize body 413. A well-formed request before and after proves the path
# works (so "nothing received" means something).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/harden/recording_proxy.sh"

recording_proxy_start 'header_timeout = "2s"
max_header_bytes = "2KiB"
max_body_bytes = 1000'

up_bytes() { stat -c %s "$T/up.log"; }
hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
. "$(dirname "$0")/harden/bsend.sh"

# expect NAME STATUS REQUEST(printf %b escapes): STATUS, connection closed, upstream got nothing
expect() {
    local name=$1 want=$2 req=$3 before after out st closed
    before=$(up_bytes)
    bsend "$P" "$req" 5
    st=$ST closed=$CLOSED
    sleep 0.2 # anything forwarded would have arrived by now
    after=$(up_bytes)
    if [ "$st" = "$want" ] && [ "$closed" = 1 ] && [ "$after" = "$before" ]; then
        pg_pass "$name: $want, closed, upstream received nothing"
    else
        pg_fail "$name: got status $st (want $want), closed=$closed, upstream bytes $before -> $after ($LINE)"
    fi
}

good='GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
bsend "$P" "$good" 5
pg_check "a well-formed request reaches the upstream (200)" [ "$ST" = 200 ]
pg_check "and the upstream logged it" grep -q "GET /ok" "$T/up.log"

B='POST /x HTTP/1.1\r\nHost: a\r\n'
expect "Content-Length and Transfer-Encoding" 400 "${B}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
expect "Transfer-Encoding then Content-Length" 400 "${B}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
expect "duplicate Content-Length (same value)" 400 "${B}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
expect "conflicting Content-Length" 400 "${B}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
expect "Content-Length list \"5, 6\"" 400 "${B}Content-Length: 5, 6\r\n\r\nhello!"
expect "Content-Length with a sign" 400 "${B}Content-Length: +5\r\n\r\nhello"
expect "Transfer-Encoding \"chunked \" + CL" 400 "${B}Transfer-Encoding: chunked \r\nContent-Length: 3\r\n\r\n0\r\n\r\n"
expect "Transfer-Encoding \"xchunked\"" 400 "${B}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
expect "Transfer-Encoding \"chunked, identity\"" 400 "${B}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
expect "Transfer-Encoding \"identity\"" 400 "${B}Transfer-Encoding: identity\r\n\r\nhello"
expect "Transfer-Encoding with a tab before the colon" 400 "${B}Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"
expect "Transfer-Encoding with a space before the colon" 400 "${B}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
expect "two Transfer-Encoding fields (chunked, then identity)" 400 "${B}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"
expect "bare LF line endings" 400 'GET /x HTTP/1.1\nHost: a\n\n'
expect "bare LF inside a field" 400 'GET /x HTTP/1.1\r\nHost: a\nX-B: 1\r\n\r\n'
expect "bare CR inside a field" 400 'GET /x HTTP/1.1\r\nHost: a\rX-B: 1\r\n\r\n'
expect "NUL in a field value" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX-N: a\0b\r\n\r\n'
expect "NUL in a field name" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX-\0N: ab\r\n\r\n'
expect "NUL in the request target" 400 'GET /x\0y HTTP/1.1\r\nHost: a\r\n\r\n'
expect "control byte (0x01) in a field value" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX-C: a\001b\r\n\r\n'
expect "control byte (0x7f) in a field name" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX-\177: ab\r\n\r\n'
expect "empty field name" 400 'GET /x HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n'
expect "request line without a version (HTTP/0.9)" 400 'GET /x\r\nHost: a\r\n\r\n'
expect "HTTP/2 preface" 400 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
expect "PRI method over HTTP/1.1" 400 'PRI / HTTP/1.1\r\nHost: a\r\n\r\n'
expect "HTTP/2.0 version on a GET" 400 'GET /x HTTP/2.0\r\nHost: a\r\n\r\n'
expect "two Host fields" 400 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'
expect "space in a field name" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n'
expect "control byte (0x01) in the request target" 400 'GET /x\001y HTTP/1.1\r\nHost: a\r\n\r\n'
expect "DEL in the request target" 400 'GET /x\177y HTTP/1.1\r\nHost: a\r\n\r\n'
expect "HTAB in the request target" 400 'GET /x\ty HTTP/1.1\r\nHost: a\r\n\r\n'
expect "control byte in the method" 400 'G\001T /x HTTP/1.1\r\nHost: a\r\n\r\n'
expect "VT (0x0b) in a field value" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX-C: a\013b\r\n\r\n'
expect "ESC (0x1b) in a field value" 400 'GET /x HTTP/1.1\r\nHost: a\r\nX-C: a\033b\r\n\r\n'
expect "Transfer-Encoding \"chunked, chunked\"" 400 "${B}Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
expect "Transfer-Encoding in an HTTP/1.0 request" 400 'POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
# expect_parts NAME STATUS DELAY PART...(printf %b escapes): the parts go as separate writes,
# DELAY seconds apart, on one connection: STATUS, connection closed, upstream got nothing
expect_parts() {
    local name=$1 want=$2 delay=$3 before after out st closed el n hexes=()
    shift 3
    for part in "$@"; do hexes+=("$(hex "$part")"); done
    before=$(up_bytes)
    out=$($RAW parts "$P" 5 "$delay" "${hexes[@]}" 2>/dev/null)
    read -r st closed el n <<<"$out"
    sleep 0.2
    after=$(up_bytes)
    if [ "$st" = "$want" ] && [ "$closed" = 1 ] && [ "$after" = "$before" ]; then
        pg_pass "$name: $want, closed, upstream received nothing"
    else
        pg_fail "$name: got status $st (want $want), closed=$closed, upstream bytes $before -> $after"
    fi
}

# obs-fold (RFC 9112 5.2): refused, as a proxy may; llhttp would hand the value on unfolded,
# and an upstream that reads the fold otherwise would frame the request otherwise
expect "obs-fold in a field value (SP)" 400 'GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n'
expect "obs-fold in a field value (HTAB)" 400 'GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n'
expect "obs-fold: Transfer-Encoding's value on the next line" 400 "${B}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
expect "obs-fold in Content-Length" 400 "${B}Content-Length: 5\r\n 0\r\n\r\nhello"
expect "obs-fold in Host" 400 'GET /fold HTTP/1.1\r\nHost: a\r\n b\r\n\r\n'
expect "whitespace before the first field line" 400 'GET /fold HTTP/1.1\r\n Host: a\r\n\r\n'
expect_parts "obs-fold split across two reads (LF | HTAB)" 400 0.3 \
    'GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n' '\t2\r\n\r\n'

# Bad chunk framing that comes with the head (the usual attack): the head waits until the first
# chunk-size line has parsed, with every byte read along with it, so nothing goes upstream.
# Each request leaves in one write (bash's printf writes a line at a time, so bsend's requests
# may arrive in several reads, and what arrives after the first chunk-size line is streamed).
C="${B}Transfer-Encoding: chunked\r\n\r\n"
expect_parts "oversize chunk size" 400 0 "${C}ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"
expect_parts "chunk size with a NUL in its extension" 400 0 "${C}5 ;\0x\r\nhello\r\n0\r\n\r\n"
expect_parts "chunk size not hex" 400 0 "${C}zz\r\nhello\r\n0\r\n\r\n"
expect_parts "chunk size with a sign" 400 0 "${C}+5\r\nhello\r\n0\r\n\r\n"
expect_parts "missing CRLF after chunk data" 400 0 "${C}5\r\nhelloXX0\r\n\r\n"
expect_parts "a good chunk, then a bad chunk size" 400 0 "${C}5\r\nhello\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
expect_parts "a good chunk, then chunk data without its CRLF" 400 0 "${C}5\r\nhello\r\n3\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
expect_parts "Expect: 100-continue, bad chunk size sent at once" 400 0 "${B}Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"
expect_parts "bad chunk size in the read after the head" 400 0.3 "$C" "zz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
expect_parts "oversize chunk size split over two reads" 400 0.3 "${C}fffffffff" "fffffffff\r\nhello\r\n"
pg_check "none of the smuggled requests reached the upstream" bash -c "! grep -q smuggled '$T/up.log'"

# a chunk-size line that never ends (an endless chunk extension) is not held without bound
before=$(up_bytes)
st=$(python3 - "$P" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /long HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;")
try:
    for i in range(40):
        s.sendall(b"x" * 4096)
        time.sleep(0.01)
except OSError:
    pass
got = b""
try:
    while len(got) < 65536:
        d = s.recv(65536)
        if not d:
            break
        got += d
except OSError:
    pass
print(got.split(b" ")[1].decode() if got.startswith(b"HTTP/1.1 ") else 0)
PY
)
sleep 0.2
pg_check "a 160 KiB chunk-size line: 400 (got $st), upstream received nothing" \
    bash -c "[ '$st' = 400 ] && [ '$(up_bytes)' = '$before' ]"

# Bad framing later in a long body: the head and the good chunks have gone on; the client gets
# 400 and a close, and the upstream connection is closed, so the upstream holds a truncated
# request, exactly what came before the bad bytes, and never a second one (the upstream's
# per-connection log, from the request line on: one request line, ending in the good bytes;
# the connection may have carried earlier requests, pooled).
late_bad() {
    local name=$1 tag=$2 good=$3 bad=$4 out st closed f n
    # the bad bytes leave once the good ones have reached the upstream (10 s at most)
    $RAW parts "$P" 5 "@$T/go-$tag" "$(hex "POST /$tag HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n$good")" \
        "$(hex "$bad")" >"$T/$tag.out" 2>/dev/null &
    for _ in $(seq 1 100); do
        grep -q "POST /$tag " "$T/up.log" && break
        sleep 0.1
    done
    sleep 0.2 # let the good bytes (written with the head) land before the bad ones leave
    touch "$T/go-$tag"
    wait $!
    read -r st closed _ _ <"$T/$tag.out"
    f=$(grep -l "POST /$tag " "$T"/up.log.c* 2>/dev/null | head -1)
    n=${f##*.c}
    for _ in $(seq 1 50); do # the upstream logs the close when it sees it
        grep -qx "close ${n:-x}" "$T/up.log.conns" && break
        sleep 0.1
    done
    if [ "$st" = 400 ] && [ "$closed" = 1 ] && [ -n "$f" ] &&
        python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); d = d[d.index(sys.argv[3].encode()):]; g = sys.argv[2].encode().decode("unicode_escape").encode("latin-1"); sys.exit(not (d.endswith(b"\r\n\r\n" + g) and d.count(b" HTTP/1.1\r\n") == 1))' "$f" "$good" "POST /$tag " &&
        grep -qx "close $n" "$T/up.log.conns"; then
        pg_pass "$name: 400, closed; the upstream got the head and the good bytes only, and its connection was closed"
    else
        pg_fail "$name: status $st closed=$closed; upstream connection ${n:-?}: $(od -c "${f:-/dev/null}" | tail -4) $(grep -x "close ${n:-x}" "$T/up.log.conns")"
    fi
}
late_bad "bad chunk size after a good chunk, in a later read" late1 '5\r\nhello\r\n' "zz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
late_bad "chunk data without its CRLF, in a later read" late2 '5\r\nhello' "XXGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
late_bad "the CRLF after chunk data broken across two reads" late3 '5\r\nhello\r' "X0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
pg_check "and the smuggled request never reached the upstream" bash -c "! grep -q smuggled '$T/up.log'"

# Good chunked requests still go through, however they arrive
out=$($RAW parts "$P" 5 0.3 "$(hex "POST /split HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")" \
    "$(hex '5\r')" "$(hex '\nhello\r\n0\r\n\r\n')" 2>/dev/null)
read -r st closed _ _ <<<"$out"
f=$(grep -l "POST /split " "$T"/up.log.c* 2>/dev/null | head -1)
pg_check "chunked request in three reads (head | \"5\\r\" | the rest): 200, the upstream got it whole (got $st)" \
    bash -c "[ '$st' = 200 ] && [ -n '$f' ] && python3 -c 'import sys; sys.exit(not open(sys.argv[1], \"rb\").read().endswith(b\"\r\n\r\n5\r\nhello\r\n0\r\n\r\n\"))' '$f'"
out=$($RAW parts "$P" 5 0 "$(hex "${C}5\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")" 2>/dev/null)
read -r st closed _ n <<<"$out"
pg_check "chunked request and a pipelined GET in one write: both answered (got $st, $n responses)" \
    bash -c "[ '$st' = 200 ] && [ '$n' = 2 ]"
# Trailer fields go on as the body's bytes; none reaches the head, which a held head is
# rewritten from after the body has parsed (a trailer Content-Length beside the head's
# Transfer-Encoding would frame the request otherwise upstream). obs-fold there: 400.
out=$($RAW parts "$P" 5 0 "$(hex "POST /trailers HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 5\r\nX-Trailer: 1\r\n\r\n")" 2>/dev/null)
read -r st closed _ _ <<<"$out"
f=$(grep -l "POST /trailers " "$T"/up.log.c* 2>/dev/null | head -1)
pg_check "trailers: 200, in the upstream's head no trailer field, the trailer section as sent (got $st)" \
    bash -c "[ '$st' = 200 ] && [ -n '$f' ] && python3 -c 'import sys; d = open(sys.argv[1], \"rb\").read(); d = d[d.index(b\"POST /trailers \"):]; h, b = d.split(b\"\r\n\r\n\", 1); sys.exit(not (b\"content-length\" not in h.lower() and b\"x-trailer\" not in h.lower() and b.startswith(b\"5\r\nhello\r\n0\r\nContent-Length: 5\r\nX-Trailer: 1\r\n\r\n\")))' '$f'"
expect_parts "obs-fold in the trailer section" 400 0 "${C}5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"
# Expect: 100-continue: the client waits for a 100 before the body, so the head goes at once
# (the client here sends its body only once $T/go exists, made when the head has been seen
# upstream or 10 s have passed)
$RAW parts "$P" 6 "@$T/go" "$(hex "POST /expect HTTP/1.1\r\nHost: a\r\nConnection: close\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")" \
    "$(hex '5\r\nhello\r\n0\r\n\r\n')" >"$T/expect.out" 2>/dev/null &
for _ in $(seq 1 100); do
    grep -q "POST /expect " "$T/up.log" && break
    sleep 0.1
done
pg_check "chunked with Expect: 100-continue: the head reached the upstream before the body was sent" \
    grep -q "POST /expect " "$T/up.log"
touch "$T/go"
wait $!
read -r st closed _ _ <"$T/expect.out"
pg_check "chunked with Expect: 100-continue: then 200 (got $st)" [ "$st" = 200 ]
expect "negative Content-Length" 400 "${B}Content-Length: -1\r\n\r\n"

# limits
big=$(printf 'X-Big: %03000d\\r\\n' 0)
expect "oversize head (431)" 431 "GET /x HTTP/1.1\r\nHost: a\r\n${big}\r\n"
expect "oversize body by Content-Length (413)" 413 "${B}Content-Length: 5000\r\n\r\n"
# a chunked body's size shows only as it parses; sent in one write with its head, the head
# is still held when the limit is passed, so nothing goes upstream
expect_parts "oversize chunked body (413)" 413 0 "${B}Transfer-Encoding: chunked\r\n\r\n7d0\r\n$(printf '%02000d' 0)\r\n0\r\n\r\n"

# slowloris: one byte every 0.3 s never completes a head within header_timeout = 2s
out=$($RAW send "$P" "$(hex 'GET /slow HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n')" 8 0.3 2>"$T/line")
read -r st closed el <<<"$out"
pg_check "slow head: 408 and closed within the 2s header_timeout (+1s) (got $st, closed=$closed, ${el}s)" \
    [ "$st" = 408 ] && [ "$closed" = 1 ] && awk "BEGIN { exit !($el < 3.0) }"
pg_check "slow head: upstream received nothing of it" bash -c "! grep -q 'GET /slow' '$T/up.log'"
# a connection that sends nothing at all is closed too (no 408 owed: no request started)
bsend "$P" "" 6
pg_check "idle connection closed by the server (closed=$CLOSED)" [ "$CLOSED" = 1 ]

bsend "$P" "$good" 5
pg_check "profgate still serves afterwards (200)" [ "$ST" = 200 ]
kill -0 "$(pg_pid pg)" 2>/dev/null
pg_check "profgate is still running" [ $? = 0 ]
pg_done
