#!/usr/bin/env bash
# harden_line_ends: the fuzz_conn findings of issue 6's hardening, through a recording
# upstream (tests/integration/harden/rawhttp.py: every byte it gets is in its log).
# llhttp 8 as Debian builds it takes any byte for the LF after some CRs (the one that ends the
# head, a field line with an empty value, a chunk-size line, the trailer section) and takes a
# bare LF for the end of the request line and of the head; and it reads a Transfer-Encoding
# list as chunked when it ends in chunked, whatever came before, in one field or two. Each such
# request must get 400 and a closed connection, with nothing of it upstream (or, when the bad
# byte comes after the head went on, a cut request without that byte, on a connection that is
# then closed). The gateway's own answer to a HEAD has no body. The same requests, well formed,
# still pass, in one write and split at the CR. A chunk size past server.max_body_bytes is
# refused (400) as soon as its digits say so, none of them upstream.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
pg_need "$PG" python3
. "$(dirname "$0")/harden/recording_proxy.sh"

recording_proxy_start 'header_timeout = "2s"
max_body_bytes = 1000
metrics_path = "/metrics"'

up_bytes() { stat -c %s "$T/up.log"; }
hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# send PART...(printf %b escapes): the parts as separate writes 0.3 s apart on one connection;
# sets ST (first status), CLOSED, NRESP (responses seen)
send() {
    local hexes=() part out
    for part in "$@"; do hexes+=("$(hex "$part")"); done
    out=$($RAW parts "$P" 5 0.3 "${hexes[@]}" 2>/dev/null)
    read -r ST CLOSED _ NRESP <<<"$out"
}

# refused NAME PART...: 400, closed, and the upstream got nothing
refused() {
    local name=$1 before after
    shift
    before=$(up_bytes)
    send "$@"
    sleep 0.2 # anything forwarded would have arrived by now
    after=$(up_bytes)
    if [ "$ST" = 400 ] && [ "$CLOSED" = 1 ] && [ "$after" = "$before" ]; then
        pg_pass "$name: 400, closed, upstream received nothing"
    else
        pg_fail "$name: status $ST (want 400), closed=$CLOSED, upstream bytes $before -> $after"
    fi
}

# passes NAME N PART...: N responses of 200 (the first one's status is checked), not closed
passes() {
    local name=$1 n=$2
    shift 2
    send "$@"
    if [ "$ST" = 200 ] && [ "$NRESP" = "$n" ]; then
        pg_pass "$name: $n response(s), 200"
    else
        pg_fail "$name: status $ST, $NRESP response(s) (want 200, $n)"
    fi
}

G='GET /ok HTTP/1.1\r\nHost: a\r\n\r\n'
C='POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'
passes "a well-formed request" 1 "$G"
pg_check "the upstream logged it" grep -q "GET /ok" "$T/up.log"

# the head's line ends (F1c-e)
refused "CR then another byte ending the head" 'GET /cr HTTP/1.1\r\nHost: a\r\n\rX'
refused "CR then another byte ending the head, split after the CR" 'GET /cr HTTP/1.1\r\nHost: a\r\n\r' 'XGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
refused "bare LF ending the request line and the head" 'GET /lf HTTP/1.1\n\n'
refused "bare LF ending the request line" 'GET /lf HTTP/1.1\nHost: a\r\n\r\n'
refused "bare LF ending the head" 'GET /lf HTTP/1.1\r\nHost: a\r\n\n'
refused "CR then another byte after an empty field value" 'GET /ev HTTP/1.1\r\nHost: a\r\nX-E: \rh\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
refused "CR then another byte after an empty value, split after the CR" 'GET /ev HTTP/1.1\r\nHost: a\r\nX-E: \r' 'h\n\r\n'
passes "a head split between its CR and LF" 1 'GET /ok HTTP/1.1\r\nHost: a\r' '\n\r' '\n'
passes "an empty line (CRLF) before a request line" 2 "$G"'\r\n'"$G"

# chunk-size lines and the trailer section (F1a, F1b)
refused "CR then another byte ending a chunk-size line" "${C}"'5\rXhello\r\n0\r\n\r\n'
refused "CR then another byte ending the trailer section" "${C}"'5\r\nhello\r\n0\r\n\rGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
# the head and the first chunk have gone on when the bad byte comes: a cut request upstream
before=$(up_bytes)
send "${C}"'5\r\nhello\r\n' '0\r\n\rGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
sleep 0.2
pg_check "trailer section ended by CR and another byte in a later read: 400, closed" [ "$ST" = 400 ] && [ "$CLOSED" = 1 ]
pg_check "and the upstream got the request cut before that byte" \
    python3 -c 'import sys; d=open(sys.argv[1],"rb").read()[int(sys.argv[2]):]; sys.exit(not (d.endswith(b"5\r\nhello\r\n") or d.endswith(b"5\r\nhello\r\n0\r\n\r")) or b"smuggled" in d)' "$T/up.log" "$before"
# a chunk size past server.max_body_bytes (1000) is refused as soon as its digits say so, not
# relayed to an upstream that may keep it in an int64 (0xaaaaaaaabbbbbbbb is past 2^63); also
# when the size line comes in two reads (the digits of the first must not go on)
before=$(up_bytes)
send "${C}"'aaaaaaaabbbbbbbb\r\nhello'
sleep 0.2
pg_check "a chunk size past server.max_body_bytes: 400, closed, nothing upstream" [ "$ST" = 400 ] && [ "$CLOSED" = 1 ] && [ "$(up_bytes)" = "$before" ]
before=$(up_bytes)
send "${C}"'5\r\nhello\r\n' 'aaaaaaaa' 'bbbbbbbb\r\nhello'
sleep 0.2
pg_check "a chunk size past the limit in a later read, split in its digits: 400, closed" [ "$ST" = 400 ] && [ "$CLOSED" = 1 ]
pg_check "and the upstream got the request cut before those digits" \
    python3 -c 'import sys; d=open(sys.argv[1],"rb").read()[int(sys.argv[2]):]; sys.exit(not d.endswith(b"5\r\nhello\r\n"))' "$T/up.log" "$before"
passes "a chunked request with an extension and a trailer field" 2 "${C}"'5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n'"$G"
passes "a chunked request split at every CR" 1 "${C}"'5\r' '\nhello\r' '\n0\r' '\n\r' '\n'

# Transfer-Encoding other than one chunked (F2)
B='POST /te HTTP/1.1\r\nHost: a\r\n'
refused "Transfer-Encoding identity, then chunked (two fields)" "${B}"'Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
refused "Transfer-Encoding \"identity, chunked\"" "${B}"'Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n'
refused "Transfer-Encoding \"gzip, chunked\"" "${B}"'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'
refused "Transfer-Encoding chunked twice (two fields)" "${B}"'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
refused "an empty Transfer-Encoding" "${B}"'Transfer-Encoding: \r\n\r\n'"$G"
passes "Transfer-Encoding \"Chunked\" (case does not matter)" 1 "${B}"'Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n'
pg_check "none of the smuggled requests reached the upstream" bash -c "! grep -q smuggled '$T/up.log'"

# the gateway's own answers to HEAD carry no body (F3); to GET they do
own() { # own REQUEST: every byte of the answer, until the gateway closes
    exec 3<>"/dev/tcp/127.0.0.1/$P"
    printf '%b' "$1" >&3
    timeout 5 cat <&3 >"$T/own.out"
    exec 3>&-
}
body_len() { python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); i=d.find(b"\r\n\r\n"); print(len(d)-i-4 if i>=0 else -1)' "$T/own.out"; }
own 'HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n'
pg_check "HEAD /metrics: 200 with a Content-Length" grep -qa "^Content-Length: [1-9]" "$T/own.out"
pg_check "HEAD /metrics: no body" [ "$(body_len)" = 0 ]
own 'HEAD /big HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n'
pg_check "HEAD with an oversize body: 413" grep -qa "^HTTP/1.1 413 " "$T/own.out"
pg_check "HEAD with an oversize body: no body" [ "$(body_len)" = 0 ]
own 'GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n'
pg_check "GET /metrics still has its body" [ "$(body_len)" -gt 0 ]

passes "a well-formed request after all that" 1 "$G"
pg_done
