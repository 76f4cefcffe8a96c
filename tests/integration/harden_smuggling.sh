#!/usr/bin/env bash
# harden_smuggling: hostile request heads sent over raw sockets to profgate in front of a
# recording upstream (tests/integration/harden/rawhttp.py upstream: it logs every byte it
# receives). Each smuggling trick — Content-Length with Transfer-Encoding, duplicate or
# conflicting Content-Length, obfuscated Transfer-Encoding, obs-fold, bare LF, NUL and control
# bytes in the head, an oversize chunk size — must get 400 and a closed connection, and the
# upstream must have received nothing of it (its log is unchanged). A slow head gets 408
# within server.header_timeout, an oversize head 431, an oversize body 413. A well-formed
# request before and after proves the path works (so "nothing received" means something).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

PG=$BIN/proxy/profgate
RAW="python3 $SRC/tests/integration/harden/rawhttp.py"
P=$(pg_free_port)
U=$(pg_free_port)
while [ "$U" = "$P" ]; do U=$(pg_free_port); done

cat >"$T/pg.toml" <<TOML
[server]
listen = "127.0.0.1:$P"
workers = 1
header_timeout = "2s"
max_header_bytes = "2KiB"
max_body_bytes = 1000

[[upstream]]
name = "app"
address = "127.0.0.1:$U"

[[route]]
prefix = "/"
upstream = "app"
TOML

pg_start up $RAW upstream "$U" "$T/up.log"
pg_wait_port "$U" 10 || { pg_fail "recording upstream did not start"; pg_done; }
pg_start pg "$PG" --config "$T/pg.toml"
pg_wait_port "$P" 20 || { pg_log pg; pg_fail "profgate did not start"; pg_done; }

up_bytes() { stat -c %s "$T/up.log"; }
hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
trap '' PIPE # a server that closes early must not kill the shell mid-write
# bsend PORT REQUEST [SECS]: one request (printf %b escapes) on a new connection, with bash's
# /dev/tcp (no process per request: the suite stays fast on a loaded machine). Sets ST (status
# of the first response line, 0 if none), CLOSED (1 when the server closed the connection, 0
# when SECS passed first) and LINE (the first response line).
bsend() {
    local port=$1 req=$2 secs=${3:-5} rc
    ST=0 CLOSED=0 LINE=
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
    printf '%b' "$req" >&3 2>/dev/null
    if IFS= read -r -t "$secs" LINE <&3; then
        LINE=${LINE%$'\r'}
        [[ $LINE =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]] && ST=${BASH_REMATCH[1]}
        while IFS= read -r -t "$secs" _ <&3; do :; done
        rc=${PIPESTATUS[0]}
    else
        rc=$?
    fi
    [ "$rc" -ge 1 ] && [ "$rc" -le 128 ] && CLOSED=1 # EOF or reset, not a timeout
    exec 3>&-
    return 0
}

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
# exit 0 when the file holds no CRLF followed by SP or HT (a folded line)
no_fold() { python3 -c 'import re, sys; sys.exit(re.search(rb"\r\n[ \t]", open(sys.argv[1], "rb").read()) is not None)' "$1"; }
# obs-fold: llhttp 8 unfolds it (drops the CRLF); RFC 9112 5.2 lets a proxy replace obs-fold
# instead of rejecting it. What must hold: the upstream never sees a folded line, and reads
# the same framing profgate did (the folded "chunked" is chunked on both sides).
for req in "${B}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" \
    'GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n'; do
    before=$(up_bytes)
    bsend "$P" "$req" 2
    sleep 0.2
    tail -c +$((before + 1)) "$T/up.log" >"$T/delta"
    st=$ST
    if [ "$st" = 400 ] && [ "$(up_bytes)" = "$before" ]; then
        pg_pass "obs-fold ($(head -c 20 <<<"${req#*\\r\\n}")...): refused, upstream received nothing"
    elif [ "$st" = 200 ] && no_fold "$T/delta" &&
        { [[ $req != POST* ]] || grep -q '^Transfer-Encoding: chunked' "$T/delta"; }; then
        pg_pass "obs-fold: forwarded unfolded (no CRLF+WSP reached the upstream), same framing"
    else
        pg_fail "obs-fold: status $st, upstream got: $(od -c "$T/delta" | head -5)"
    fi
done

# Bad chunk framing is found only in the body, after the head has gone on (profgate streams
# bodies): then 400 and close, no byte of the body reaches the upstream, and the upstream
# connection that got the head is closed (never reused for another client's request).
chunk_bad() {
    local name=$1 req=$2 before out st closed c0 c1
    before=$(up_bytes)
    c0=$(grep -c close "$T/up.log.conns")
    bsend "$P" "$req" 5
    st=$ST closed=$CLOSED
    sleep 0.3
    tail -c +$((before + 1)) "$T/up.log" >"$T/delta"
    c1=$(grep -c close "$T/up.log.conns")
    if [ "$st" = 400 ] && [ "$closed" = 1 ] && ! grep -q hello "$T/delta" && [ "$c1" -gt "$c0" ]; then
        pg_pass "$name: 400, closed, no body byte upstream, upstream connection closed"
    else
        pg_fail "$name: status $st closed=$closed upstream closes $c0 -> $c1, upstream got: $(od -c "$T/delta" | tail -4)"
    fi
}
chunk_bad "oversize chunk size" "${B}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"
chunk_bad "chunk size with a NUL in its extension" "${B}Transfer-Encoding: chunked\r\n\r\n5 ;\0x\r\nhello\r\n0\r\n\r\n"
chunk_bad "chunk size not hex" "${B}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
expect "negative Content-Length" 400 "${B}Content-Length: -1\r\n\r\n"

# limits
big=$(printf 'X-Big: %03000d\\r\\n' 0)
expect "oversize head (431)" 431 "GET /x HTTP/1.1\r\nHost: a\r\n${big}\r\n"
expect "oversize body by Content-Length (413)" 413 "${B}Content-Length: 5000\r\n\r\n"
# a chunked body passes the head check; the head may already be on its way upstream, so here
# only the answer and the close are checked, not the upstream's log
before=$(up_bytes)
bsend "$P" "${B}Transfer-Encoding: chunked\r\n\r\n7d0\r\n$(printf '%02000d' 0)\r\n0\r\n\r\n" 5
st=$ST closed=$CLOSED
pg_check "oversize chunked body: 413 and closed (got $st, closed=$closed)" [ "$st" = 413 ] && [ "$closed" = 1 ]

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
