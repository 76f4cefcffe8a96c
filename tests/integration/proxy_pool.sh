#!/usr/bin/env bash
# integration.proxy_pool: the upstream connection pool's settings and its recovery, and the
# [server]/[[route]] options no other scenario drives end to end (issue 5, issue 6 "upstream
# restarted"). Connections are counted on the wire (ss: established to the upstream's port),
# not inferred from timing.
#  - pool_size = 2: after 4 requests at once, 2 connections stay open to the upstream;
#    pool_idle_timeout = 1s: those close once idle; pool_size = 0: every request on its own
#    upstream connection, none left open;
#  - upstream restarted (SIGKILL, same port) with a warm pool on 2 workers: every request after
#    the restart succeeds at once — POSTs too, which must never be retried — and an ab run
#    after it sees no failure;
#  - a route with host = "svc.example" takes that Host (any case) only;
#  - add_forwarded = false, add_via = false: no X-Forwarded-*, no Via either way;
#  - access_log = "stderr" in the "common" format; workers = "auto" starts nproc workers;
#  - SIGINT drains like SIGTERM: the request in flight completes, exit 0.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need ss ab
pg_ports P1 P2 U1 U2 U3 U4

cat >"$T/pool.toml" <<EOF
[server]
listen  = "127.0.0.1:$P1"
workers = 1

[[upstream]]
name              = "two"
address           = "127.0.0.1:$U1"
pool_size         = 2
pool_idle_timeout = "1s"

[[upstream]]
name      = "none"
address   = "127.0.0.1:$U2"
pool_size = 0

[[route]]
prefix   = "/"
upstream = "two"

[[route]]
prefix   = "/"
host     = "none.example"
upstream = "none"
EOF

cat >"$T/opts.toml" <<EOF
[server]
listen            = "127.0.0.1:$P2"
workers           = "auto"
add_forwarded     = false
add_via           = false
access_log        = "stderr"
access_log_format = "common"

[[upstream]]
name    = "app"
address = "127.0.0.1:$U3"

[[upstream]]
name    = "hosted"
address = "127.0.0.1:$U4"

[[route]]
prefix   = "/"
upstream = "app"

[[route]]
prefix   = "/"
host     = "svc.example"
upstream = "hosted"
EOF

# established TCP connections to 127.0.0.1:PORT (the proxy's side of them)
conns_to()
{
    ss -Htn state established "( dport = :$1 )" | wc -l
}

# until conns_to PORT is N (at most 5 s); prints the last count
wait_conns()
{
    local n
    for _ in $(seq 1 50); do
        n=$(conns_to "$1")
        [ "$n" = "$2" ] && break
        sleep 0.1
    done
    echo "$n"
}

pg_upstreams up1 "127.0.0.1:$U1" up2 "127.0.0.1:$U2" up3 "127.0.0.1:$U3" up4 "127.0.0.1:$U4"
pg_gateway pool "$T/pool.toml" "$P1"
pg_gateway opts "$T/opts.toml" "$P2"
b1=http://127.0.0.1:$P1
b2=http://127.0.0.1:$P2

# --- pool_size = 2, pool_idle_timeout = 1s ---
# background clients: PIDs in JOBS, waited for by waitjobs (a bare wait would wait for the servers)
JOBS=()
waitjobs()
{
    wait "${JOBS[@]}"
    JOBS=()
}
# the upstream numbers its connections: K is the last one before profgate's
K=$(curl -s "http://127.0.0.1:$U1/echo" | sed -n 's/.* conn=\([0-9]*\) .*/\1/p')
for i in 1 2 3 4; do
    curl -s -m 10 -o "$T/s$i" "$b1/sleep?ms=2000" &
    JOBS+=($!)
done
busy=$(wait_conns "$U1" 4)
waitjobs
pg_check "pool_size 2: 4 requests at once used 4 upstream connections (saw $busy)" test "$busy" = 4
n=$(wait_conns "$U1" 2)
pg_check "pool_size 2: 2 of them kept once idle (saw $n)" test "$n" = 2
curl -s "$b1/echo" "$b1/echo" >"$T/reuse"
reused=$(sed -n 's/.* conn=\([0-9]*\) .*/\1/p' "$T/reuse" | sort -n | tail -n 1)
pg_check "the kept connections are reused (no new upstream connection: conn $reused <= $((K + 4)))" \
    test -n "$reused" -a "${reused:-0}" -le $((K + 4))
n=$(wait_conns "$U1" 0)
pg_check "pool_idle_timeout 1s: idle pooled connections closed (saw $n)" test "$n" = 0
curl -s "$b1/echo" >"$T/fresh"
pg_check "after the idle timeout a new upstream connection is made (conn=$((K + 5)))" \
    grep -q "conn=$((K + 5)) " "$T/fresh"

# --- pool_size = 0 ---
curl -s -H 'Host: none.example' "$b1/echo" "$b1/echo" "$b1/echo" >"$T/nopool"
ids=$(grep -o 'conn=[0-9]*' "$T/nopool" | sort -u | wc -l)
pg_check "pool_size 0: three requests on one client connection, three upstream connections (saw $ids)" \
    test "$ids" = 3
n=$(wait_conns "$U2" 0)
pg_check "pool_size 0: no upstream connection left open (saw $n)" test "$n" = 0

# --- host match ---
pg_check "route host: Host svc.example -> hosted" \
    bash -c "curl -s -H 'Host: svc.example' '$b2/echo' | grep -q '^up4 GET /echo'"
pg_check "route host: compared case-insensitively (SVC.Example)" \
    bash -c "curl -s -H 'Host: SVC.Example' '$b2/echo' | grep -q '^up4 GET /echo'"
pg_check "route host: another Host -> the host-less route" \
    bash -c "curl -s -H 'Host: other.example' '$b2/echo' | grep -q '^up3 GET /echo'"

# --- add_forwarded = false, add_via = false ---
curl -s -D "$T/nf.h" -H 'X-Forwarded-For: 10.9.8.7' "$b2/echo" >"$T/nf"
pg_check "add_forwarded = false: no X-Forwarded-Proto/Host added" \
    bash -c "grep -q '^up3 GET' '$T/nf' && ! grep -qi '^x-forwarded-proto\|^x-forwarded-host' '$T/nf'"
pg_check "add_forwarded = false: a client's X-Forwarded-For passes unchanged" \
    grep -qx 'X-Forwarded-For: 10.9.8.7' "$T/nf"
pg_check "add_via = false: no Via to the upstream nor to the client" \
    bash -c "! grep -qi '^via:' '$T/nf' && ! grep -qi '^via:' '$T/nf.h'"

# --- access_log = "stderr", "common"; workers = "auto" ---
curl -s -A 'ua-not-logged' -e 'http://ref-not-logged/' "$b2/echo?q=common" >/dev/null
pg_check "access log on stderr, common format (no referer, no user agent)" \
    grep -Eq '^127\.0\.0\.1 - - \[[0-9]+/[A-Z][a-z]+/[0-9:]+ \+0000\] "GET /echo\?q=common HTTP/1\.1" 200 [0-9]+$' "$T/opts.log"
pg_check "workers = \"auto\": $(nproc) worker(s), as many as CPUs" \
    grep -q "listening on 127.0.0.1:$P2 with $(nproc) worker(s)" "$T/opts.log"

# --- upstream restarted under a warm pool (2 workers) ---
ab -s 10 -k -c 8 -n 400 "$b2/big?kb=1" >"$T/ab1" 2>&1
warm=$(conns_to "$U3")
pg_check "pool warm before the restart: several pooled connections (saw $warm)" test "$warm" -ge 2
pg_stop up3 KILL
pg_upstreams up3 "127.0.0.1:$U3"
for i in $(seq 1 8); do
    curl -s -m 10 -o "$T/post$i" -w '%{http_code}' --data-binary "body-$i" "$b2/echo" >"$T/post$i.code" &
    JOBS+=($!)
done
waitjobs
ok=0
for i in $(seq 1 8); do
    [ "$(cat "$T/post$i.code")" = 200 ] && grep -qx "body-$i" "$T/post$i" && ok=$((ok + 1))
done
pg_check "after the restart: 8 POSTs at once (not retryable) all answered by the new upstream ($ok of 8)" \
    test "$ok" = 8
ab -s 10 -k -c 8 -n 2000 "$b2/big?kb=1" >"$T/ab2" 2>&1
pg_check "after the restart: ab -k -c 8 -n 2000, none failed, all 2xx" \
    bash -c "grep -q 'Complete requests: *2000' '$T/ab2' && grep -q 'Failed requests: *0' '$T/ab2' && ! grep -q 'Non-2xx' '$T/ab2'"

# --- SIGINT drains ---
curl -s -m 10 -o "$T/inflight" -w '%{http_code}' "$b2/sleep?ms=1500" >"$T/inflight.code" &
cpid=$!
sleep 0.5
pg_stop opts INT
rc=$?
wait "$cpid"
pg_check "SIGINT: the request in flight completed (got $(cat "$T/inflight.code"))" \
    bash -c "[ \"\$(cat '$T/inflight.code')\" = 200 ] && grep -qx slept '$T/inflight'"
pg_check "SIGINT: exit 0 (got $rc)" test "$rc" -eq 0

pg_stop_check pool
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log pool
    pg_log opts
    tail -n 20 "$T/ab2"
fi
pg_done
