#!/usr/bin/env bash
# integration.fault_upstream_kill: the upstream process is killed (SIGKILL) while profgate is
# relaying its response. The client must see a closed or truncated response, never a hang
# nor a response that looks complete: for a Content-Length body, for a chunked body, and for
# a request still waiting for its response head (502 naming the upstream). profgate keeps
# running, serves other upstreams meanwhile, and serves the killed one again once it is back.
# (integration.proxy_signals covers an orderly upstream restart between requests.)
# ctest-timeout: 180
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 U2

pg_two_upstreams_config "$P" up1 "" '
[[route]]
prefix   = "/two/"
upstream = "up2"' >"$T/pg.toml"

pg_upstreams up1 "127.0.0.1:$U1" up2 "127.0.0.1:$U2"
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P
pgpid=$(pg_pid profgate)

now_ms()
{
    echo $(($(date +%s%N) / 1000000))
}

# wait_bytes FILE N: until FILE holds at least N bytes (at most 20 s)
wait_bytes()
{
    for _ in $(seq 1 200); do
        [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

restart_up1()
{
    pg_start up1 "$UP" --listen "127.0.0.1:$U1" --name up1
    pg_wait_port "$U1" || pg_fail "up1 did not restart"
}

# served_again WHAT: profgate serves both upstreams again
served_again()
{
    pg_check "$1: profgate still running" kill -0 "$pgpid"
    # (pg_test_upstream has no /two/echo: its 404 names it, which proves up2 answered)
    pg_check "$1: the other upstream is served meanwhile" \
        bash -c "curl -s -m 10 '$base/two/echo' | grep -q '^up2 not found /two/echo'"
    restart_up1
    pg_check "$1: the restarted upstream is served (3 requests)" \
        bash -c "for i in 1 2 3; do curl -s -m 10 '$base/echo' | grep -q '^up1 GET' || exit 1; done"
}

pg_check "warm-up: / -> up1" bash -c "curl -s -m 10 '$base/echo' | grep -q '^up1 GET'"

# 1. Content-Length body: 50 MiB read by a slow client (2 MiB/s), so the upstream is still
# writing when it dies; profgate must cut the client connection short of the length.
want=$((50 * 1024 * 1024))
start=$(now_ms)
curl -s -m 60 --limit-rate 2M -o "$T/cl.body" -w '%{http_code}' "$base/big?kb=51200" \
    >"$T/cl.code" 2>/dev/null &
cpid=$!
wait_bytes "$T/cl.body" 200000 || pg_fail "content-length: no body bytes arrived"
pg_stop up1 KILL
wait "$cpid"
rc=$?
el=$(($(now_ms) - start))
got=$(stat -c %s "$T/cl.body")
pg_check "content-length: client saw a truncated response (curl rc $rc: 18 = transfer closed with data outstanding)" \
    test "$rc" -eq 18
pg_check "content-length: fewer bytes than announced ($got < $want)" test "$got" -lt "$want"
pg_check "content-length: no hang (curl rc $rc is not a timeout; ${el} ms)" \
    bash -c "[ $rc -ne 28 ] && [ $el -lt 50000 ]"
served_again "after a kill mid Content-Length body"

# 2. chunked body: the client must not see the terminating chunk.
n=400000
start=$(now_ms)
curl -s -m 60 --limit-rate 200K -o "$T/ch.body" -w '%{http_code}' "$base/chunked?n=$n" \
    >"$T/ch.code" 2>/dev/null &
cpid=$!
wait_bytes "$T/ch.body" 20000 || pg_fail "chunked: no body bytes arrived"
pg_stop up1 KILL
wait "$cpid"
rc=$?
el=$(($(now_ms) - start))
pg_check "chunked: client saw a truncated response (curl rc $rc: 18 or 56)" \
    bash -c "[ $rc -eq 18 ] || [ $rc -eq 56 ]"
pg_check "chunked: the last chunk never arrived" bash -c "! grep -q '^chunk $((n - 1))\$' '$T/ch.body'"
pg_check "chunked: no hang (curl rc $rc is not a timeout; ${el} ms)" \
    bash -c "[ $rc -ne 28 ] && [ $el -lt 50000 ]"
served_again "after a kill mid chunked body"

# 3. before the response head: a 502 that names the upstream (a retry on a fresh connection,
# if profgate makes one, meets a refused connect), long before the upstream would have answered.
start=$(now_ms)
curl -s -m 60 -o "$T/sl.body" -w '%{http_code}' "$base/sleep?ms=20000" >"$T/sl.code" &
cpid=$!
sleep 0.5
pg_stop up1 KILL
wait "$cpid"
el=$(($(now_ms) - start))
pg_check "before the head: 502 (got $(cat "$T/sl.code"))" test "$(cat "$T/sl.code")" = 502
pg_check "before the head: the body names the upstream ($(head -c 200 "$T/sl.body"))" \
    grep -q 'upstream "up1"' "$T/sl.body"
pg_check "before the head: answered at once, not after the upstream's 20 s (${el} ms)" \
    test "$el" -lt 15000
served_again "after a kill before the response head"

pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; fi
pg_done
