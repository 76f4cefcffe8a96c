#!/usr/bin/env bash
# harden_chunk_size: with server.max_body_bytes = 0 (no limit), a chunk size past 2^63 - 1 is
# still refused, on both sides. Many readers keep a chunk size in a signed 64-bit integer
# (off_t, int64): 8000000000000000 (2^63) up to ffffffffffffffff wraps there to a negative or
# small size and frames the body otherwise, so before this check such a size went on as it
# came (llhttp takes anything below 2^64).
#  - request: 400 "malformed request: chunk size too large (more than 2^63 - 1 ...)", the
#    connection closed, nothing upstream (the head waits for the first chunk-size line);
#    with the size in a later read, split in its digits, the same answer, and the upstream
#    holds a request cut before the digit that took the size past the limit;
#  - response (tests/programs/pg_raw_upstream): 502 naming the cause, or, when some of the
#    body has reached the client, a cut connection with the body up to the bad size;
#  - 2^63 - 1 itself and leading zeros (not significant digits) still pass.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
RAWUP=$BIN/tests/programs/pg_raw_upstream
pg_need "$PG" "$RAWUP" python3 curl
. "$(dirname "$0")/harden/recording_proxy.sh"
pg_ports P2 U2

recording_proxy_start 'header_timeout = "2s"
max_body_bytes = 0'

up_bytes() { stat -c %s "$T/up.log"; }
# ask PART...(printf %b escapes): the parts as separate writes 0.3 s apart on one connection;
# the whole answer (until profgate closes, 3 s at most) in $T/ask.out; CLOSED=1 when it closed
ask() {
    local part
    exec 3<>"/dev/tcp/127.0.0.1/$P"
    for part in "$@"; do
        printf '%b' "$part" >&3
        sleep 0.3
    done
    CLOSED=1
    timeout 3 cat <&3 >"$T/ask.out" || CLOSED=0
    exec 3>&-
}
# since OFFSET: what the upstream received from byte OFFSET of its log on, as Python bytes
since() { python3 -c 'import sys; print(repr(open(sys.argv[1],"rb").read()[int(sys.argv[2]):]))' "$T/up.log" "$1"; }
# up_ends BYTES (Python escapes): what the upstream received ends with BYTES
up_ends() { python3 -c 'import sys; sys.exit(not open(sys.argv[1], "rb").read().endswith(sys.argv[2].encode().decode("unicode_escape").encode("latin-1")))' "$T/up.log" "$1"; }
too_large='malformed request: chunk size too large (more than 2^63 - 1, RFC 9112 7.1)'
# too_large_400: the last ask got 400 naming the 2^63 - 1 limit, and profgate closed
too_large_400() { [ "$CLOSED" = 1 ] && grep -qa '^HTTP/1.1 400 ' "$T/ask.out" && grep -qaF "$too_large" "$T/ask.out"; }
# refused NAME PART...: 400 naming the 2^63 - 1 limit, closed, and the upstream got nothing
refused() {
    local name=$1 before
    shift
    before=$(up_bytes)
    ask "$@"
    sleep 0.2
    pg_check "$name: 400 \"$too_large\", closed (closed=$CLOSED, got: $(head -c 300 "$T/ask.out" | tr '\r\n' '  '))" \
        too_large_400
    pg_check "$name: nothing upstream (got $(since "$before"))" [ "$(up_bytes)" = "$before" ]
}

C='POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'
refused "chunk size 2^63" "${C}"'8000000000000000\r\nhello'
refused "chunk size 2^64 - 1" "${C}"'ffffffffffffffff\r\nhello'
refused "chunk size 2^63, leading zeros" "${C}"'000008000000000000000\r\nhello'
refused "17 significant digits" "${C}"'10000000000000000\r\nhello'
refused "chunk size 2^63 in the head's read, split in its digits" "${C}"'80000000' '00000000\r\nhello'

# a later chunk, its size split in its digits: the same answer; the upstream holds the
# request cut before the digit that went past the limit
for split in '80000000|00000000' '800000000000000|0' 'fffffff|fffffffff'; do
    before=$(up_bytes)
    ask "${C}"'5\r\nhello\r\n' "${split%|*}" "${split#*|}"'\r\nhello'
    sleep 0.2
    pg_check "size ${split/|/ then }: 400 \"$too_large\", closed (closed=$CLOSED)" too_large_400
    pg_check "size ${split/|/ then }: upstream got the request cut after '${split%|*}' (got $(since "$before"))" \
        up_ends '5\r\nhello\r\n'"${split%|*}"
done

# 2^63 - 1 is a size the upstream can frame: it goes on (the client owes its data)
before=$(up_bytes)
ask "${C}"'7fffffffffffffff\r\nhello'
sleep 0.2
pg_check "chunk size 2^63 - 1: no answer yet (got $(wc -c <"$T/ask.out") bytes)" [ ! -s "$T/ask.out" ]
pg_check "chunk size 2^63 - 1: the size line upstream (got $(since "$before"))" \
    up_ends '\r\n7fffffffffffffff\r\nhello'
ask "${C}"'00000000000000000000005\r\nhello\r\n0\r\n\r\n'
pg_check "chunk size with 22 leading zeros: 200" grep -qa '^HTTP/1.1 200 ' "$T/ask.out"

# the response side
mkdir -p "$T/r"
head='HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
printf "$head"'8000000000000000\r\nhello\r\n0\r\n\r\n' >"$T/r/big_first"
printf "$head"'ffffffffffffffff\r\nhello\r\n0\r\n\r\n' >"$T/r/max_first"
printf "$head"'5\r\nhello\r\n@@PAUSE@@8000000000000000\r\nhello\r\n0\r\n\r\n' >"$T/r/big_later"
printf "$head"'5\r\nhello\r\n7fffffffffffffff\r\nab' >"$T/r/edge"
cat >"$T/pg2.toml" <<EOF
[server]
listen = "127.0.0.1:$P2"
workers = 1
max_body_bytes = 0

[[upstream]]
name = "raw"
address = "127.0.0.1:$U2"

[[route]]
prefix = "/"
upstream = "raw"
EOF
pg_start raw "$RAWUP" --listen "127.0.0.1:$U2" --dir "$T/r"
pg_up raw "$U2" || { pg_log raw; pg_fail "pg_raw_upstream did not start"; pg_done; }
pg_gateway pg2 "$T/pg2.toml" "$P2"
get() { # get NAME: code (status), rc (curl's), body in $T/NAME.body
    code=$(curl -s -m 5 -o "$T/$1.body" -w '%{http_code}' "http://127.0.0.1:$P2/$1")
    rc=$?
}
want="upstream \"raw\" (127.0.0.1:$U2) sent a malformed chunked body: chunk size too large (more than 2^63 - 1"
for name in big_first max_first; do
    get $name
    pg_check "response $name: 502 naming the limit (got $code, rc $rc: $(head -c 200 "$T/$name.body"))" \
        bash -c "[ '$code' = 502 ] && grep -qF -- '$want' '$T/$name.body'"
done
get big_later
pg_check "response big_later: 200 head, then cut (curl rc $rc: 18 or 56), body 'hello' (got '$(cat "$T/big_later.body")')" \
    bash -c "[ '$code' = 200 ] && { [ $rc = 18 ] || [ $rc = 56 ]; } && [ \"\$(cat '$T/big_later.body')\" = hello ]"
get edge
pg_check "response with a chunk of 2^63 - 1: relayed, not refused (got $code, rc $rc: curl times out waiting)" \
    bash -c "[ '$code' = 200 ] && [ $rc = 28 ]"
pg_check "the upstream errors were logged, naming the upstream" \
    bash -c "[ \$(grep -c 'chunk size too large (more than 2^63 - 1' '$T/pg2.log') -ge 3 ]"

pg_check "profgate (requests) exits 0 on SIGTERM" pg_stop pg
pg_check "profgate (responses) exits 0 on SIGTERM" pg_stop pg2
pg_done
