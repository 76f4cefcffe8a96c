#!/usr/bin/env bash
# harden_host: RFC 9112 3.2 -- an HTTP/1.1 request without Host, or with a Host that is not
# uri-host [":" port], is answered 400 and nothing of it goes upstream. Before, profgate
# forwarded both (a Host-less HTTP/1.1 request with Host set to the upstream's address),
# so a value such as "evil.example/x" or "a@b" reached an application that builds URLs
# from Host, after profgate had routed the request by another reading of it. HTTP/1.0 may
# omit Host; an empty Host (a target without authority), IP literals, ports, and every
# character RFC 3986 allows in a host still pass.
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"
pg_need "$PG" python3
. "$(dirname "$0")/harden/recording_proxy.sh"

recording_proxy_start

up_bytes() { stat -c %s "$T/up.log"; }
hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
# ask REQUEST: sets ST (the first status, 0 for none) and CLOSED
ask() { read -r ST CLOSED _ <<<"$($RAW send "$P" "$(hex "$1")" 3 2>/dev/null)"; }

refused() { # refused NAME REQUEST: 400, closed, nothing upstream
    local before
    before=$(up_bytes)
    ask "$2"
    sleep 0.2
    pg_check "$1: 400, closed, nothing upstream (got $ST, closed=$CLOSED, upstream bytes $before -> $(up_bytes))" \
        bash -c "[ '$ST' = 400 ] && [ '$CLOSED' = 1 ] && [ '$(up_bytes)' = '$before' ]"
}
passes() { # passes NAME REQUEST: 200
    ask "$2"
    pg_check "$1: 200 (got $ST)" [ "$ST" = 200 ]
}

refused "HTTP/1.1 without Host" 'GET /nohost HTTP/1.1\r\n\r\n'
refused "HTTP/1.1 without Host, other fields" 'GET /nohost HTTP/1.1\r\nAccept: */*\r\n\r\n'
for h in 'a b' 'evil.example/x' 'a@b' 'a?b' 'a#b' 'a\\b' 'a"b' 'a<b' 'h\x01'; do
    refused "Host: $h" "GET /badhost HTTP/1.1\r\nHost: $h\r\n\r\n"
done
passes "HTTP/1.0 without Host" 'GET /ok10 HTTP/1.0\r\n\r\n'
pg_check "the HTTP/1.0 request went upstream with a Host" \
    python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); i = d.find(b"GET /ok10 "); sys.exit(not (i >= 0 and b"\r\nHost: " in d[i:d.find(b"\r\n\r\n", i)]))' "$T/up.log"
for h in '' 'a' '127.0.0.1:8080' '[::1]:80' '[v1.x]' 'xn--bcher-kva.example' "a-b_c~d%20e!f\$g&h'i(j)k*l+m,n;o=p"; do
    passes "Host: '$h'" "GET /okhost HTTP/1.1\r\nHost: $h\r\n\r\n"
done
pg_check "none of the refused requests reached the upstream" bash -c "! grep -qa -e nohost -e badhost '$T/up.log'"
pg_check "profgate exits 0 on SIGTERM" pg_stop pg
pg_done
