#!/usr/bin/env bash
# integration.proxy_upstream_framing: an upstream whose chunked framing is wrong (the CRLF
# after chunk data, the CRLF of a chunk-size line, the trailer section and the blank line
# that ends it) is not relayed as it is. llhttp 8 as Debian builds it skips the bytes where
# those CRLFs should be without looking at them, so before this check a buggy upstream's
# body went to the client byte for byte, and its connection back to the pool. The same for
# a response head whose last line ends in a CR without its LF, with a field name that is not
# a token, or with control bytes in its reason phrase. A head with neither reason phrase nor
# field ("HTTP/1.1 204\r\n\r\n") is relayed (it crashed profgate).
#  - nothing of the response has reached the client yet: 502 naming the cause;
#  - some of it has: the client connection is closed (a truncated response is the only
#    honest signal), the body never gets past the bad framing;
#  - either way the upstream connection is closed, never reused; the error is counted once
#    (profgate_errors_total{cause="upstream_bad_response"}) and logged once with the
#    upstream's address; profgate goes on serving.
# Well-framed chunked bodies (extensions, trailers, every CRLF split across reads, leading
# zeros in a size, an HTTP/1.0 client that gets the payload de-chunked) still pass whole.
# The upstream is tests/programs/pg_raw_upstream, which sends files written here, byte for
# byte (@@PAUSE@@: 300 ms between the parts, so profgate reads and relays the first part
# before the rest arrives).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

RAW=$BIN/tests/programs/pg_raw_upstream
pg_need "$PG" "$RAW" curl
pg_ports P U

cat >"$T/pg.toml" <<EOF
[server]
listen        = "127.0.0.1:$P"
workers       = 1
metrics_path  = "/metrics"
metrics_allow = ["127.0.0.0/8"]

[[upstream]]
name    = "raw"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "raw"
EOF

mkdir -p "$T/r"
head='HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Conn: @@CONN@@\r\n\r\n'
resp() # resp NAME BODY: a 200 chunked response with BODY (printf escapes) as its body bytes
{
    printf "$head$2" >"$T/r/$1"
}
# well framed
resp g_plain '5\r\nhello\r\n0\r\n\r\n'
resp g_ext_trailer '5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n'
resp g_split '5\r@@PAUSE@@\nhel@@PAUSE@@lo\r@@PAUSE@@\n0\r\n\r@@PAUSE@@\n'
resp g_zeros '0005\r\nhello\r\n00\r\n\r\n'
# bad framing, in the same read as the head
resp b_data_crlf '5\r\nhelloXX0\r\n\r\n'
resp b_data_lf '5\r\nhello\n0\r\n\r\n'
resp b_size_cr '5\rXhello\r\n0\r\n\r\n'
resp b_size_lf '5\nhello\r\n0\r\n\r\n'
resp b_size_hex 'g\r\nhello\r\n0\r\n\r\n'
resp b_end_cr '5\r\nhello\r\n0\r\n\rX'
resp b_trailer_name '5\r\nhello\r\n0\r\nX T: 1\r\n\r\n'
resp b_trailer_fold '5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n'
# response heads: llhttp 8 takes any byte for the LF after the CR that ends the head (the
# body would start a byte late) and lets a space into a field name (relayed as it is). (It
# does the same after the status line's CR and an empty value's, but those never reach the
# client: the head is sent rewritten from its parsed fields.)
raw() # raw NAME BYTES: the whole response (printf escapes)
{
    printf "$2" >"$T/r/$1"
}
raw h_split 'HTTP/1.1 200 OK\r@@PAUSE@@\nContent-Length: 5\r\n\r@@PAUSE@@\nhello'
raw h_end_cr 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\rXhello'
raw h_name_space 'HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 5\r\n\r\nhello'
raw h_reason_ctl 'HTTP/1.1 200 O\x01K\r\nContent-Length: 5\r\n\r\nhello'
# valid, and the head has no part that takes a buffer (no reason phrase, no field): profgate
# crashed on it (a NULL head buffer in the rewrite)
raw h_204_bare 'HTTP/1.1 204\r\n\r\n'
raw h_204_empty_reason 'HTTP/1.1 204 \r\n\r\n'
# bad framing after the head and a first chunk have gone to the client
resp m_data_crlf '5\r\nhello\r\n@@PAUSE@@5\r\nworldXX0\r\n\r\n'
resp m_end_cr '5\r\nhello\r\n@@PAUSE@@0\r\n\rX'

pg_start raw "$RAW" --listen "127.0.0.1:$U" --dir "$T/r"
pg_up raw "$U" || { pg_log raw; pg_fail "pg_raw_upstream did not start"; pg_done; }
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P
nbad=0

# get NAME [curl args]: sets code (HTTP status, 000 for none), rc (curl's), and $T/NAME.body
get()
{
    local name=$1
    shift
    : >"$T/$name.body"
    code=$(curl -s -m 10 "$@" -D "$T/$name.head" -o "$T/$name.body" -w '%{http_code}' "$base/$name")
    rc=$?
}

for name in g_plain g_ext_trailer g_split g_zeros h_split; do
    get $name
    want=hello
    [ $name = g_ext_trailer ] && want="hello world"
    [ $name = h_split ] && want=hello
    pg_check "$name: 200, the whole body (got $code, curl rc $rc, body '$(cat "$T/$name.body")')" \
        test "$code:$rc:$(cat "$T/$name.body")" = "200:0:$want"
done
for name in h_204_bare h_204_empty_reason; do
    get $name
    pg_check "$name: 204 relayed (got $code, curl rc $rc)" test "$code:$rc" = "204:0"
done
get g_plain -0
pg_check "g_plain to an HTTP/1.0 client: 200, payload de-chunked (got $code, rc $rc)" \
    test "$code:$rc:$(cat "$T/g_plain.body")" = "200:0:hello"

# expect_502 NAME CAUSE [curl args]: 502 whose body names CAUSE
expect_502()
{
    local name=$1 cause=$2
    shift 2
    get "$name" "$@"
    nbad=$((nbad + 1))
    pg_check "$name: 502 naming \"$cause\" (got $code, body: $(head -c 200 "$T/$name.body"))" \
        bash -c "[ '$code' = 502 ] && grep -qF -- '$cause' '$T/$name.body' &&
                 grep -qF 'upstream \"raw\" (127.0.0.1:$U)' '$T/$name.body'"
}
expect_502 b_data_crlf "chunk data not followed by CRLF"
expect_502 b_data_lf "chunk data not followed by CRLF"
expect_502 b_size_cr "chunk-size line not ended by CRLF"
expect_502 b_size_lf "chunk-size line not ended by CRLF"
expect_502 b_size_hex "chunk size is not a hexadecimal number"
expect_502 b_end_cr "chunked body not ended by CRLF"
expect_502 b_trailer_name "trailer field name is not a token"
expect_502 b_trailer_fold "obs-fold in the trailer section"
expect_502 b_data_crlf "chunk data not followed by CRLF" -0
expect_502 h_end_cr "a malformed response head: its last line not ended by CRLF"
expect_502 h_name_space "a malformed response head: a header field name is not a token"
expect_502 h_reason_ctl "a malformed response head: a control character in the reason phrase"

# cut NAME: some of the body reached the client, then the connection closed: curl reports a
# transfer error (18: partial file, 56: receive failure), not a timeout, with a 200 head and
# the body only up to the bad framing
for name in m_data_crlf m_end_cr; do
    t0=$(date +%s%N)
    get $name
    el=$((($(date +%s%N) - t0) / 1000000))
    nbad=$((nbad + 1))
    pg_check "$name: 200 head, then closed mid-body (curl rc $rc: 18 or 56; ${el} ms)" \
        bash -c "[ '$code' = 200 ] && { [ $rc = 18 ] || [ $rc = 56 ]; }"
    pg_check "$name: the body stops before the bad framing (got '$(cat "$T/$name.body")')" \
        test "$(cat "$T/$name.body")" = hello
done

# the upstream connection that sent bad framing is closed, and the next request goes on a
# new one: b_data_crlf looks complete to llhttp, so before the check the connection went
# back to the pool, and the next request was sent to an upstream that had misframed
get g_plain
a=$(tr -d '\r' <"$T/g_plain.head" | awk -F': ' 'tolower($1) == "x-conn" { print $2 }')
get b_data_crlf
nbad=$((nbad + 1))
pg_check "b_data_crlf went on the pooled connection $a (the check below means something)" \
    grep -qx "conn $a GET /b_data_crlf" "$T/raw.log"
pg_check "profgate closed upstream connection $a after its bad framing" \
    pg_poll 5 grep -qx "conn $a closed" "$T/raw.log"
get g_plain
b=$(tr -d '\r' <"$T/g_plain.head" | awk -F': ' 'tolower($1) == "x-conn" { print $2 }')
pg_check "the next request went on another upstream connection ($a, then $b)" \
    bash -c "[ -n '$b' ] && [ '$b' != '$a' ] && [ '$code' = 200 ]"

# counted once each, logged once each with the upstream's address
n=$(curl -s -m 10 "$base/metrics" | awk '$1 == "profgate_errors_total{cause=\"upstream_bad_response\"}" { print $2 }')
pg_check "profgate_errors_total{cause=\"upstream_bad_response\"} = $nbad (got ${n:-none})" \
    test "${n:-0}" = "$nbad"
n=$(grep -c "upstream \"raw\" (127.0.0.1:$U) sent a malformed" "$T/profgate.log")
pg_check "one log line with the upstream's address per bad response: $nbad (got $n)" \
    test "$n" = "$nbad"

get g_ext_trailer
pg_check "profgate still serves (got $code, rc $rc)" test "$code:$rc" = "200:0"
pg_check "profgate is still running" kill -0 "$(pg_pid profgate)"
pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
pg_done
