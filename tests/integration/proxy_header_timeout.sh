#!/usr/bin/env bash
# proxy_header_timeout: server.header_timeout runs from a request's first byte, and a request
# that has begun gets a 408 naming it when its head does not complete in time -- also when
# only (part of) its method has come: "GET " got a silent close where "GET /" got a 408
# (fuzz_conn F11; the head buffer begins with the target). A connection on which no request
# has begun (nothing sent, or only the empty line RFC 9112 2.2 lets precede a request) is
# closed without an answer. Each 408 is counted (header_timeout) and has its access log line.
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"
pg_need "$PG" python3 curl
. "$(dirname "$0")/harden/recording_proxy.sh"

recording_proxy_start 'header_timeout = "1s"
metrics_path = "/metrics"
metrics_allow = ["127.0.0.0/8"]
access_log = "'"$T"'/access.log"'

hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
# after BYTES: send them, read until profgate closes (5 s at most: CLOSED=0); ST (0: no
# answer), CLOSED, EL (seconds), and the first line of the answer in $T/line
after() {
    read -r ST CLOSED EL <<<"$($RAW send "$P" "$(hex "$1")" 5 2>"$T/line")"
}

for begun in 'GET ' 'G' 'GET /a' 'GET /a HTTP/1.1\r\nHost: a\r\n'; do
    after "$begun"
    pg_check "'$begun': 408, closed by profgate (got $ST, closed=$CLOSED, after ${EL}s)" \
        bash -c "[ '$ST' = 408 ] && [ '$CLOSED' = 1 ]"
done
for none in '' '\r\n'; do
    after "$none"
    pg_check "'$none': closed without an answer (got $ST, closed=$CLOSED)" \
        bash -c "[ '$ST' = 0 ] && [ '$CLOSED' = 1 ]"
done

m=$(curl -s -m 5 "http://127.0.0.1:$P/metrics")
pg_check "four 408s counted as header_timeout (got: $(grep 'cause="header_timeout"' <<<"$m"))" \
    grep -qx 'profgate_errors_total{cause="header_timeout"} 4' <<<"$m"
pg_check "four access log lines with 408 (got $(grep -c ' 408 ' "$T/access.log" 2>/dev/null))" \
    pg_poll 5 bash -c "[ \$(grep -c ' 408 ' '$T/access.log') = 4 ]"
pg_check "the upstream received nothing" [ ! -s "$T/up.log" ]
pg_check "profgate exits 0 on SIGTERM" pg_stop pg
pg_done
