#!/usr/bin/env bash
# integration.proxy_coalesce: server.event_coalesce_us (a busy worker sleeps in 20 us steps,
# looking for events, before it blocks; pg_worker.c) -- only while the upstream's answers take
# 25 times the budget or more, so never in front of a fast one. Checked through the gauge
# profgate_event_coalesce_workers: 0 under load on a fast upstream, both workers under load on
# a slow one (/sleep?ms=40, budget 1000 us: 25 ms). While they coalesce, two workers forward
# keep-alive load without a failure, answer pipelined requests in order and stream a body both
# ways; idle, they block: a held-open keep-alive connection costs no CPU (a worker that
# coalesced without end would burn a core here); once the load's connections are closed
# the gauge is 0 again. SIGHUP turns it off (gauge 0) and on;
# SIGTERM drains.
# ctest-timeout: 150
. "$(dirname "$0")/lib/common.sh"

pg_need ab curl
pg_ports P U

write_config()
{
    cat >"$T/pg.toml" <<EOF
[server]
listen  = "127.0.0.1:$P"
workers = 2
event_coalesce_us = $1

metrics_path = "/metrics"

[[upstream]]
name    = "app"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "app"
EOF
}

coalescing()
{
    curl -s -m 10 "http://127.0.0.1:$P/metrics" | awk '$1 == "profgate_event_coalesce_workers" { print $2 }'
}

# the threshold is counted on the latency histogram's bucket bounds: 50 x 25 = 1250 us is
# counted from the next bound up, 2.5 ms, and --check says so
write_config 50
pg_check "--check prints the threshold as counted (a bucket bound)" \
    bash -c "'$PG' --check --config '$T/pg.toml' | grep -qx 'event_coalesce_us 50 (while upstream responses take 2500 us or more)'"
write_config 1000
pg_check "--check prints event_coalesce_us" \
    bash -c "'$PG' --check --config '$T/pg.toml' | grep -qx 'event_coalesce_us 1000 (while upstream responses take 25000 us or more)'"
pg_upstreams app "127.0.0.1:$U"
pg_gateway gw "$T/pg.toml" "$P"
GW=$(pg_pid gw)

# a fast upstream: keep-alive load over both workers, and no worker coalesces
ab -k -c 8 -t 3 -n 10000000 "http://127.0.0.1:$P/big?kb=1" >"$T/ab.out" 2>&1 &
AB=$!
sleep 1
pg_check "fast upstream under load: no worker coalesces (gauge $(coalescing | tee "$T/g0"))" \
    test "$(cat "$T/g0")" = 0
wait "$AB" || true
pg_check "ab -k -c 8 -t 3: requests complete" grep -Eq '^Complete requests: +[1-9]' "$T/ab.out"
pg_check "ab: 0 failed" grep -Eq '^Failed requests: +0$' "$T/ab.out"
pg_check "ab: no non-2xx" bash -c "! grep -q '^Non-2xx responses' '$T/ab.out'"

# a slow upstream (40 ms per answer, 64 at a time): both workers coalesce; meanwhile the
# checks below run on the same workers
ab -k -c 64 -t 6 -n 10000000 "http://127.0.0.1:$P/sleep?ms=40" >"$T/ab-slow.out" 2>&1 &
AB=$!
sleep 1
pg_check "slow upstream under load: both workers coalesce (gauge $(coalescing | tee "$T/g1"))" \
    test "$(cat "$T/g1")" = 2

# two pipelined requests in one write, answered in order
exec 3<>"/dev/tcp/127.0.0.1/$P"
printf 'GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' >&3
timeout 10 cat <&3 >"$T/pipe.out"
exec 3<&-
pg_check "pipelined: two 200s" test "$(grep -c '^HTTP/1.1 200' "$T/pipe.out")" -eq 2
pg_check "pipelined: in order" bash -c "grep -o 'GET /echo?n=[12]' '$T/pipe.out' | tr '\n' ' ' | grep -qx 'GET /echo?n=1 GET /echo?n=2 '"

# a 2 MiB body up and a 4 MiB body down
head -c 2097152 /dev/zero | tr '\0' 'b' >"$T/body"
curl -s -m 30 --data-binary @"$T/body" -o "$T/echo.out" "http://127.0.0.1:$P/echo"
pg_check "2 MiB request body reaches the upstream whole" \
    test "$(wc -c <"$T/echo.out")" -gt 2097152 -a "$(tail -c 2097152 "$T/echo.out" | tr -d 'b' | wc -c)" -eq 0
pg_check "4 MiB response whole" \
    test "$(curl -s -m 30 "http://127.0.0.1:$P/big?kb=4096" | wc -c)" -eq 4194304
pg_check "still coalescing after those (gauge $(coalescing | tee "$T/g2"))" test "$(cat "$T/g2")" -ge 1
wait "$AB" || true
pg_check "slow: ab -k -c 64 -t 6: requests complete" grep -Eq '^Complete requests: +[1-9]' "$T/ab-slow.out"
pg_check "slow: ab 0 failed" grep -Eq '^Failed requests: +0$' "$T/ab-slow.out"
# the load is over and its connections are closed: a worker with none left says it is not
# coalescing, and the one serving this scrape decides from the responses since (none)
sleep 0.5
pg_check "load over, connections closed: gauge $(coalescing | tee "$T/g2b")" test "$(cat "$T/g2b")" = 0

# idle with a keep-alive connection held open: the workers block, they do not coalesce forever
exec 4<>"/dev/tcp/127.0.0.1/$P"
printf 'GET /echo HTTP/1.1\r\nHost: t\r\n\r\n' >&4
sleep 0.5
t0=$(awk '{ print $14 + $15 }' "/proc/$GW/stat")
sleep 3
t1=$(awk '{ print $14 + $15 }' "/proc/$GW/stat")
hz=$(getconf CLK_TCK)
pg_check "idle 3 s with a connection held: CPU $((t1 - t0)) ticks <= $((hz / 5)) (a spinning worker: ~$((3 * hz)))" \
    test $((t1 - t0)) -le $((hz / 5))
exec 4<&-

# SIGHUP off while coalescing (the gauge goes back to 0), then on again: still serving
ab -k -c 64 -t 3 -n 10000000 "http://127.0.0.1:$P/sleep?ms=40" >"$T/ab-slow2.out" 2>&1 &
AB=$!
sleep 1
write_config 0
kill -HUP "$GW"
sleep 1
pg_check "after SIGHUP (off) under the slow load: gauge $(coalescing | tee "$T/g3")" test "$(cat "$T/g3")" = 0
wait "$AB" || true
pg_check "slow load across the reload: 0 failed" grep -Eq '^Failed requests: +0$' "$T/ab-slow2.out"
pg_check "after SIGHUP (off): serving" bash -c "curl -s -m 10 'http://127.0.0.1:$P/echo' | grep -q '^app GET /echo'"
write_config 1000
kill -HUP "$GW"
sleep 0.5
ab -k -c 4 -n 1000 "http://127.0.0.1:$P/big?kb=1" >"$T/ab2.out" 2>&1
pg_check "after SIGHUP (1000): ab 0 failed" grep -Eq '^Failed requests: +0$' "$T/ab2.out"
pg_check "after SIGHUP (1000): 1000 complete" grep -Eq '^Complete requests: +1000$' "$T/ab2.out"

pg_stop_check gw
pg_done
