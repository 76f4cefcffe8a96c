#!/usr/bin/env bash
# integration.proxy_sched: server.worker_sched (pg_worker.c). The workers are threads named
# pg-worker-N; their scheduling policy (field 41 of /proc/PID/task/TID/stat: 0 SCHED_OTHER,
# 3 SCHED_BATCH) is what the config says, at start and after SIGHUP, both ways; the main thread
# keeps its own; traffic flows under either. A worker started under chrt's idle policy keeps it.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need ab curl chrt
pg_ports P U

write_config()
{
    cat >"$T/pg.toml" <<EOF
[server]
listen  = "127.0.0.1:$P"
workers = 2
$1

[[upstream]]
name    = "app"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "app"
EOF
}

# policies: "comm:policy" of every thread of $GW (policy: field 41 of stat; the comm field,
# in parentheses, holds no spaces here)
policies()
{
    local t
    for t in /proc/"$GW"/task/*; do
        echo "$(cat "$t/comm"):$(awk '{ print $41 }' "$t/stat")"
    done
}

# workers_have POLICY: both pg-worker threads run under POLICY
workers_have()
{
    [ "$(policies | grep -cx "pg-worker-[12]:$1")" -eq 2 ]
}

write_config ""
pg_check "--check prints worker_sched normal (the default)" \
    bash -c "'$PG' --check --config '$T/pg.toml' | grep -qx 'worker_sched normal'"
pg_upstreams app "127.0.0.1:$U"
pg_gateway gw "$T/pg.toml" "$P"
GW=$(pg_pid gw)
pg_check "two threads named pg-worker-1 and -2 ($(policies | tr '\n' ' '))" \
    test "$(policies | grep -c '^pg-worker-[12]:')" -eq 2
pg_check "default: both workers SCHED_OTHER" workers_have 0

write_config 'worker_sched = "batch"'
kill -HUP "$GW"
pg_check "SIGHUP to batch: both workers SCHED_BATCH" pg_poll 10 workers_have 3
pg_check "the main thread keeps SCHED_OTHER" \
    test "$(awk '{ print $41 }' "/proc/$GW/stat")" -eq 0
ab -k -c 8 -n 4000 "http://127.0.0.1:$P/big?kb=1" >"$T/ab.out" 2>&1
pg_check "batch: ab -k -c 8 -n 4000, 4000 complete" grep -Eq '^Complete requests: +4000$' "$T/ab.out"
pg_check "batch: ab 0 failed" grep -Eq '^Failed requests: +0$' "$T/ab.out"

write_config 'worker_sched = "normal"'
kill -HUP "$GW"
pg_check "SIGHUP back to normal: both workers SCHED_OTHER" pg_poll 10 workers_have 0
pg_check "after the reloads: serving" \
    bash -c "curl -s -m 10 'http://127.0.0.1:$P/echo' | grep -q '^app GET /echo'"
pg_stop_check gw

# started with batch: the workers begin in it
write_config 'worker_sched = "batch"'
pg_gateway gw2 "$T/pg.toml" "$P"
GW=$(pg_pid gw2)
pg_check "started with batch: both workers SCHED_BATCH" pg_poll 10 workers_have 3
pg_stop_check gw2

# started under chrt --idle: the operator's policy stays, whatever the config says
pg_start gw3 chrt --idle 0 "$PG" --config "$T/pg.toml"
pg_ready gw3 "$P"
GW=$(pg_pid gw3)
pg_check "under chrt --idle: the workers keep SCHED_IDLE" pg_poll 10 workers_have 5
pg_check "under chrt --idle: serving" \
    bash -c "curl -s -m 10 'http://127.0.0.1:$P/echo' | grep -q '^app GET /echo'"
pg_stop_check gw3
pg_done
