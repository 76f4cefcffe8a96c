#!/usr/bin/env bash
# integration.agent_lock_gateway: block and mutex profiles through the gateway, with
# randomstring's /contend (4 threads on one mutex) and /block (a condition-variable wait).
# With PROFAGENT_BLOCK_RATE=1 PROFAGENT_MUTEX_FRACTION=1: go tool pprof -raw parses both;
# block has the waits in rs_contend_worker (at pthread_mutex_lock) and rs_block_wait (at
# pthread_cond_timedwait); mutex has rs_contend_worker at pthread_mutex_unlock; debug=1 is Go's
# legacy text; block?seconds=3 holds only the wait made inside its window, mutex?seconds=3 only
# the contention inside its window (with the cumulative profile's sample types and period).
# Without the variables: empty profiles whose comment says how to turn them on.
# Sanitizer builds: ASan/TSan bind pthread_mutex_lock first; their interceptors forward to
# libprofagent's (found with dlsym(RTLD_NEXT)), which the agent checks, so the stacks are checked
# there too; a runtime that did not forward would get a 500 naming it, which is accepted then.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET PROFAGENT_BLOCK_RATE PROFAGENT_MUTEX_FRACTION

pg_need "$RS" "$PG" go
SAN=$(pg_san "$RS")

pg_demo_start --name on PROFAGENT_BLOCK_RATE=1 PROFAGENT_MUTEX_FRACTION=1
out=$(curl -s -m 20 "$GW/contend?threads=4&ms=300")
pg_check "GET /contend?threads=4&ms=300 ($out)" bash -c "[[ '$out' == '4 threads contended'* ]]"
out=$(curl -s -m 20 "$GW/block?ms=100")
pg_check "GET /block?ms=100 ($out)" bash -c "[[ '$out' == 'blocked'* ]]"

code=$(curl -s -m 10 -o "$T/block.probe" -w '%{http_code}' "$GW/debug/pprof/block")
if [ -n "$SAN" ] && [ "$code" = 500 ]; then
    for kind in block mutex; do
        code=$(curl -s -m 10 -o "$T/$kind.txt" -w '%{http_code}' "$GW/debug/pprof/$kind")
        pg_check "$kind under $SAN: 500 naming the runtime (got $code: $(head -c 160 "$T/$kind.txt"))" \
            bash -c "[ $code = 500 ] && grep -q 'pthread_mutex_lock is bound to .*san' '$T/$kind.txt'"
    done
    echo "note: $SAN takes pthread_mutex_lock and does not forward to libprofagent: lock stacks are not checked in this build"
else
    [ -n "$SAN" ] && echo "note: $SAN binds pthread_mutex_lock first but forwards to libprofagent: lock stacks are checked"
    pg_pprof_raw "go tool pprof -raw $GW/debug/pprof/block" "$GW/debug/pprof/block" "$T/block.raw"
    pg_check "block: sample types contentions/count delay/nanoseconds" \
        grep -Eq '^ *contentions/count +delay/nanoseconds' "$T/block.raw"
    pg_check "block: PeriodType contentions count" grep -q '^PeriodType: contentions count' "$T/block.raw"
    n=$(pg_raw_count "$T/block.raw" rs_contend_worker)
    pg_check "block: contentions in rs_contend_worker (got $n)" [ "$n" -ge 1 ]
    if [[ "$SAN" == libtsan* ]]; then
        echo "note: TSan calls glibc's pthread_cond_timedwait by version, not libprofagent's: condition waits are not checked"
    else
        n=$(pg_raw_count "$T/block.raw" rs_block_wait)
        pg_check "block: the condition wait in rs_block_wait (got $n)" [ "$n" -ge 1 ]
        n=$(pg_raw_count "$T/block.raw" pthread_cond_timedwait)
        pg_check "block: ... at pthread_cond_timedwait (got $n)" [ "$n" -ge 1 ]
    fi

    pg_pprof_raw "go tool pprof -raw $GW/debug/pprof/mutex" "$GW/debug/pprof/mutex" "$T/mutex.raw"
    n=$(pg_raw_count "$T/mutex.raw" rs_contend_worker)
    pg_check "mutex: the holder's unlock in rs_contend_worker (got $n)" [ "$n" -ge 1 ]
    n=$(pg_raw_count "$T/mutex.raw" pthread_mutex_unlock)
    pg_check "mutex: stacks start at pthread_mutex_unlock (got $n)" [ "$n" -ge 1 ]

    curl -s -m 10 "$GW/debug/pprof/block?debug=1" >"$T/block1.txt"
    pg_check "block?debug=1: Go's header" \
        bash -c "head -n 2 '$T/block1.txt' | tr '\n' '|' | grep -qx -- '--- contention:|cycles/second=1000000000|'"
    pg_check "block?debug=1: a record naming rs_contend_worker" \
        grep -Pq '^#\t0x[0-9a-f]+\trs_contend_worker\+0x' "$T/block1.txt"
    curl -s -m 10 "$GW/debug/pprof/mutex?debug=1" >"$T/mutex1.txt"
    pg_check "mutex?debug=1: Go's header with the sampling period" \
        bash -c "head -n 3 '$T/mutex1.txt' | tr '\n' '|' | grep -qx -- '--- mutex:|cycles/second=1000000000|sampling period=1|'"
fi

# --- block?seconds=3: only the contention inside the window (the earlier one cancels out)
if [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$GW/debug/pprof/block")" = 200 ]; then
    curl -s -m 30 -o "$T/bd.pb.gz" -w '%{http_code}' "$GW/debug/pprof/block?seconds=3" >"$T/bd.code" &
    CURL=$!
    sleep 1
    curl -s -m 20 "$GW/block?ms=150" >/dev/null
    wait $CURL
    pg_check "block?seconds=3: 200 (got $(cat "$T/bd.code"))" [ "$(cat "$T/bd.code")" = 200 ]
    if go tool pprof -raw "$T/bd.pb.gz" >"$T/bd.raw" 2>"$T/bd.err"; then
        if [[ "$SAN" != libtsan* ]]; then
            n=$(pg_raw_count "$T/bd.raw" rs_block_wait)
            pg_check "block?seconds=3: the one wait of the window in rs_block_wait (got $n)" [ "$n" = 1 ]
        fi
        n=$(pg_raw_count "$T/bd.raw" rs_contend_worker)
        pg_check "block?seconds=3: the contention before the window cancelled out (got $n)" [ "$n" = 0 ]
    else
        pg_fail "block?seconds=3 does not parse: $(head -c 300 "$T/bd.err")"
    fi
fi

# --- mutex?seconds=3: the contention made inside the window only (the earlier /contend is
# in the cumulative profile, not in the delta)
if [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$GW/debug/pprof/mutex")" = 200 ]; then
    curl -s -m 30 -D "$T/md.h" -o "$T/md.pb.gz" -w '%{http_code}' "$GW/debug/pprof/mutex?seconds=3" >"$T/md.code" &
    CURL=$!
    sleep 1
    curl -s -m 20 "$GW/contend?threads=4&ms=300" >/dev/null
    wait $CURL
    pg_check "mutex?seconds=3: 200 named mutex-delta (got $(cat "$T/md.code"))" \
        bash -c "[ \"\$(cat '$T/md.code')\" = 200 ] && tr -d '\r' <'$T/md.h' | grep -qx 'Content-Disposition: attachment; filename=\"mutex-delta\"'"
    if go tool pprof -raw "$T/md.pb.gz" >"$T/md.raw" 2>"$T/md.err" &&
        timeout 60 go tool pprof -raw "$GW/debug/pprof/mutex" >"$T/mall.raw" 2>>"$T/md.err"; then
        n=$(pg_raw_count "$T/md.raw" rs_contend_worker)
        m=$(pg_raw_count "$T/mall.raw" rs_contend_worker)
        pg_check "mutex?seconds=3: the window's contention in rs_contend_worker (got $n)" [ "$n" -ge 1 ]
        pg_check "mutex?seconds=3: fewer than the cumulative profile's, which has the earlier /contend too ($n < $m)" \
            [ "$n" -lt "$m" ]
        pg_check "mutex?seconds=3: sample types and period as the cumulative profile's (scrapers merge them)" \
            bash -c "diff <(grep -E '^PeriodType:|^Period:|/count' '$T/md.raw') <(grep -E '^PeriodType:|^Period:|/count' '$T/mall.raw') >/dev/null"
    else
        pg_fail "mutex?seconds=3 does not parse: $(head -c 300 "$T/md.err")"
    fi
fi

pg_demo_start --name off
if [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$GW/debug/pprof/block")" = 200 ]; then
    curl -s -m 10 "$GW/contend?threads=4&ms=100" >/dev/null
    pg_pprof_raw "block with the rate at 0 parses" "$GW/debug/pprof/block" "$T/off.raw"
    n=$(pg_raw_count "$T/off.raw" rs_contend_worker)
    pg_check "block with the rate at 0: no samples (got $n)" [ "$n" = 0 ]
    pg_check "block with the rate at 0: the comment says how to turn it on" \
        grep -q 'Comment: block profiling is off: set PROFAGENT_BLOCK_RATE' "$T/off.raw"
fi
pg_rs_serving "$GW"
[ "$PG_FAILED" = 0 ] || { pg_log rs-on; pg_log pg-on; }
pg_done
