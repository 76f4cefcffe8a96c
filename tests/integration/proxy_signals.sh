#!/usr/bin/env bash
# integration.proxy_signals: SIGHUP reloads the configuration under load (no request fails,
# new requests follow the new routes, a bad file is reported and the old config stays);
# SIGTERM drains: no new connections, requests in flight finish, those still running at
# drain_timeout are cut, and the process exits 0.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 U2

write_cfg() # write_cfg UPSTREAM DRAIN_TIMEOUT: the catch-all route goes to UPSTREAM
{
    pg_two_upstreams_config "$P" "$1" "drain_timeout = \"$2\"" >"$T/pg.toml"
}

pg_upstreams up1 "127.0.0.1:$U1" up2 "127.0.0.1:$U2"
write_cfg up1 10s
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P
pid=$(pg_pid profgate)

pg_check "before reload: / -> up1" bash -c "curl -s '$base/echo' | grep -q '^up1 GET'"

# upstream restarted: idle pooled connections see the close and leave the pool; one that
# fails before any response byte (a race) is retried once on a fresh connection
pg_check "pool warm" bash -c "curl -s '$base/echo' | grep -q '^up1 GET'"
pg_stop up1
pg_upstreams up1 "127.0.0.1:$U1"
pg_check "after upstream restart: requests succeed (dead pooled connections dropped or retried)" bash -c "for i in 1 2 3 4; do curl -s '$base/echo' | grep -q '^up1 GET' || exit 1; done"

# reload under load
ab -s 10 -k -c 4 -n 20000 "$base/big?kb=1" >"$T/ab" 2>&1 &
abpid=$!
sleep 0.3
write_cfg up2 1s
kill -HUP "$pid"
sleep 0.5
pg_check "after reload: / -> up2" bash -c "for i in 1 2 3 4 5 6; do curl -s '$base/echo' | grep -q '^up2 GET' || exit 1; done"
wait "$abpid"
pg_check "reload under load: ab completed, none failed" bash -c "grep -q 'Complete requests: *20000' '$T/ab' && grep -q 'Failed requests: *0' '$T/ab'"
pg_check "reload logged" grep -q 'configuration reloaded' "$T/profgate.log"

# a bad file: reported with file:line, old config stays
cp "$T/pg.toml" "$T/good.toml"
printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = "many"\n' "$P" >"$T/pg.toml"
kill -HUP "$pid"
sleep 0.5
pg_check "bad reload reported with file and line" grep -q "pg.toml:3" "$T/profgate.log"
pg_check "bad reload keeps the running config" bash -c "curl -s '$base/echo' | grep -q '^up2 GET'"
cp "$T/good.toml" "$T/pg.toml"

# drain: one request finishes, one is cut at drain_timeout (1s), no new connections
curl -s -o "$T/fast" -w '%{http_code}' "$base/sleep?ms=600" >"$T/fast.code" &
fast=$!
curl -s -o "$T/slow" -w '%{http_code}' "$base/sleep?ms=15000" >"$T/slow.code" &
slow=$!
sleep 0.2
start=$(date +%s%N)
kill -TERM "$pid"
# the listeners close as each worker wakes up (a connection that lands in a closing
# listener's backlog is reset by the kernel: SO_REUSEPORT does not migrate it)
for _ in $(seq 1 30); do
    sleep 0.1
    curl -s -m 1 "$base/echo" >/dev/null
    rc=$?
    [ "$rc" -eq 7 ] && break
done
pg_check "draining: new connections refused (curl rc $rc)" test "$rc" -eq 7
wait "$fast"
pg_check "draining: the request in flight finished (200)" bash -c "[ \"\$(cat '$T/fast.code')\" = 200 ] && grep -qx slept '$T/fast'"
pg_stop profgate
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
wait "$slow"
pg_check "drain: exit 0 (got $rc)" test "$rc" -eq 0
pg_check "drain: the long request was cut at the deadline (${elapsed} ms)" bash -c "[ $elapsed -lt 10000 ] && ! grep -qs slept '$T/slow'"
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; fi
pg_done
