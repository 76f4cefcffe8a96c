#!/usr/bin/env bash
# integration.agent_index: the index page (GET <gateway>/debug/pprof/) shows each profile's
# record count, as Go's net/http/pprof does, and the counts follow the workload: randomstring
# (agent linked in, block and mutex profiling on) behind profgate.
#   goroutine     the threads now: up by 6 while /contend runs 6 threads, back after
#   threadcreate  creations: up by exactly 5 after /spawn?n=5, and the total of ?debug=1
#   heap, allocs  stacks with live sampled objects / with any: up after /alloc, heap back
#                 down after /free, allocs not; each the number of records ?debug=1 lists
#   block, mutex  stacks recorded: up after /contend (and /block)
#   cmdline, profile, trace  0, as in Go
# Sanitizer builds: heap sampling is off (heap, allocs 0); threadcreate is checked as in plain
# builds (the runtime's pthread_create interceptor calls the hook next); lock counts are checked
# only where the lock hooks are reached.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

RS=$BIN/demo-upstream/randomstring
PG=$BIN/proxy/profgate
for b in "$RS" "$PG"; do
    [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
command -v curl >/dev/null || { echo "FAIL: curl not installed"; exit 1; }
SAN=$(ldd "$RS" | grep -Eo 'lib[at]san[^ ]*' | head -n 1)

pg_demo_start PROFAGENT_BLOCK_RATE=1 PROFAGENT_MUTEX_FRACTION=1

# fetch the index through the gateway into $T/index.html; 0 when it answered 200
fetch_index()
{
    [ "$(curl -s -m 10 -o "$T/index.html" -w '%{http_code}' "$GW/debug/pprof/")" = 200 ]
}

# count NAME [FILE]: the Count cell of NAME's row in FILE ($T/index.html; "" if no such row)
count()
{
    sed -n "s|^<tr><td>\([0-9]*\)</td><td><a href='$1?debug=1'>$1</a></td></tr>\$|\1|p" \
        "${2:-$T/index.html}"
}

# wait_count NAME OP VALUE: fetch the index until NAME's count OP VALUE holds (test's -ge, -eq,
# ...), at most 100 times 0.1 s; 0 when it held. The count read last is in $LAST.
wait_count()
{
    for _ in $(seq 1 100); do
        fetch_index && LAST=$(count "$1") && [ -n "$LAST" ] && [ "$LAST" "$2" "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

demo() # PATH WANT: GET PATH of randomstring through the gateway; check its answer starts with WANT
{
    local out
    out=$(curl -s -m 30 "$GW$1")
    pg_check "GET $1 ($out)" bash -c '[[ "$1" == "$2"* ]]' _ "$out" "$2"
}

debug1() # NAME: NAME?debug=1 through the gateway into $T/NAME.txt
{
    curl -s -m 10 -o "$T/$1.txt" "$GW/debug/pprof/$1?debug=1"
}

pg_check "index page through the gateway: 200" fetch_index
cp "$T/index.html" "$T/index0.html"
for p in allocs block cmdline goroutine heap mutex profile threadcreate trace; do
    c=$(count $p)
    pg_check "index lists $p with a count (got '$c')" bash -c "[[ '$c' =~ ^[0-9]+\$ ]]"
done
for p in cmdline profile trace; do
    pg_check "$p: count 0, as Go shows it (got $(count $p))" [ "$(count $p)" = 0 ]
done

# --- goroutine: the threads now (after one /spawn: the service's first one starts libuv's
# thread pool, whose threads stay)
demo "/spawn?n=1" "spawned and joined 1 threads"
fetch_index
g0=$(count goroutine)
pg_check "goroutine: at least the event loop and the agent thread (got $g0)" [ "$g0" -ge 2 ]
# debug=2 has a block for every thread, with a stack or the reason it has none (debug=1's
# total counts stacks only: a thread that blocks the signal, as TSan's own does, has none)
curl -s -m 10 -o "$T/goroutine2.txt" "$GW/debug/pprof/goroutine?debug=2"
tot=$(grep -Ec '^thread [0-9]+ \[' "$T/goroutine2.txt")
pg_check "goroutine: the count is the threads of goroutine?debug=2 ($g0 vs $tot)" [ "$g0" = "$tot" ]
curl -s -m 30 -o "$T/contend.out" "$GW/contend?threads=6&ms=3000" &
CURL=$!
wait_count goroutine -ge $((g0 + 6))
pg_check "goroutine: up by the 6 threads of /contend while it runs ($g0 -> $LAST)" [ "$LAST" -ge $((g0 + 6)) ]
wait $CURL
pg_check "GET /contend?threads=6&ms=3000 ($(cat "$T/contend.out"))" grep -q '^6 threads contended' "$T/contend.out"
wait_count goroutine -eq "$g0"
pg_check "goroutine: back to $g0 once /contend has joined its threads (got $LAST)" [ "$LAST" = "$g0" ]

# --- threadcreate: creations recorded
code=$(curl -s -m 10 -o "$T/tc.probe" -w '%{http_code}' "$GW/debug/pprof/threadcreate")
pg_check "threadcreate: 200 (got $code: $(head -c 200 "$T/tc.probe"))" [ "$code" = 200 ]
fetch_index
t0=$(count threadcreate)
pg_check "threadcreate: the 7 creations of /spawn?n=1 and /contend counted already (got $t0)" \
    [ "$t0" -ge 7 ]
demo "/spawn?n=5" "spawned and joined 5 threads"
fetch_index
t1=$(count threadcreate)
pg_check "threadcreate: up by exactly 5 after /spawn?n=5 ($t0 -> $t1)" [ "$t1" = $((t0 + 5)) ]
debug1 threadcreate
tot=$(sed -n 's/^threadcreate profile: total \([0-9]*\)$/\1/p' "$T/threadcreate.txt")
pg_check "threadcreate: the count is the total of threadcreate?debug=1 ($t1 vs $tot)" [ "$t1" = "$tot" ]

# --- heap and allocs: distinct stacks, in use / ever
# records of NAME?debug=1 ("N: M [A: B] @ ..."); with inuse: only those with objects in use
# (N > 0 as a number: $1 is "N:", which awk compares as a string, and "0:" > 0 held, so a
# record whose sampled objects were all freed was counted as live and the check failed now
# and then)
records() { awk -v live="${2:-}" '/^[0-9]+: [0-9]+ \[[0-9]+: [0-9]+\] @/ { if (live == "" || $1 + 0 > 0) n++ } END { print n + 0 }' "$T/$1.txt"; }
# same_count NAME [inuse]: prints "COUNT vs RECORDS" from an index fetched just before and one
# just after NAME?debug=1 that agree; sets SAME=1 when the records matched, 0 when 10 tries
# with a stable count all differed (or never had one)
same_count()
{
    local c1 c2 r i
    SAME=0
    for i in $(seq 1 10); do
        fetch_index && c1=$(count "$1")
        debug1 "$1"
        fetch_index && c2=$(count "$1")
        r=$(records "$1" "${2:-}")
        if [ -n "$c1" ] && [ "$c1" = "$c2" ]; then
            [ "$c1" = "$r" ] && { SAME=1; break; }
        fi
        sleep 0.1
    done
    echo "$c1 vs $r, try $i"
}
if [ -n "$SAN" ]; then
    fetch_index
    pg_check "heap and allocs under $SAN: 0, heap sampling is off (got $(count heap), $(count allocs))" \
        bash -c "[ '$(count heap)' = 0 ] && [ '$(count allocs)' = 0 ]"
else
    fetch_index
    h0=$(count heap) a0=$(count allocs)
    demo "/alloc?kb=8192" "allocated 8192 KiB"
    fetch_index
    h1=$(count heap) a1=$(count allocs)
    pg_check "heap: up after /alloc kept 8 MiB live ($h0 -> $h1)" [ "$h1" -gt "$h0" ]
    pg_check "allocs: up after /alloc ($a0 -> $a1)" [ "$a1" -gt "$a0" ]
    # the service (and serving these pages) allocates between two fetches, so a sampled
    # allocation can add a stack between the index and ?debug=1: compare only when the index
    # shows the same count before and after the ?debug=1 page, up to 10 tries
    same_count heap inuse >"$T/same"
    pg_check "heap: the count is the records of heap?debug=1 with objects in use ($(cat "$T/same"))" \
        [ "$SAME" = 1 ]
    same_count allocs >"$T/same"
    pg_check "allocs: the count is the records of allocs?debug=1 ($(cat "$T/same"))" [ "$SAME" = 1 ]
    demo /free "freed 8192 KiB"
    fetch_index
    h2=$(count heap) a2=$(count allocs)
    pg_check "heap: down after /free ($h1 -> $h2)" [ "$h2" -lt "$h1" ]
    pg_check "allocs: not down after /free: past allocations stay ($a1 -> $a2)" [ "$a2" -ge "$a1" ]
fi

# --- block and mutex: stacks recorded (both on in this service)
code=$(curl -s -m 10 -o "$T/block.probe" -w '%{http_code}' "$GW/debug/pprof/block")
if [ -n "$SAN" ] && [ "$code" = 500 ]; then
    echo "note: $SAN takes pthread_mutex_lock and does not forward to libprofagent: lock counts are not checked"
else
    fetch_index
    b0=$(count block)
    m0=$(count mutex)
    pg_check "block: up by the waits of /contend ($(count block "$T/index0.html") -> $b0)" \
        [ "$b0" -gt "$(count block "$T/index0.html")" ]
    pg_check "mutex: up by the holders of /contend ($(count mutex "$T/index0.html") -> $m0)" \
        [ "$m0" -gt "$(count mutex "$T/index0.html")" ]
    if [[ "$SAN" == libtsan* ]]; then
        echo "note: TSan calls glibc's pthread_cond_timedwait by version, not libprofagent's: /block is not checked"
    else
        demo "/block?ms=50" blocked
        fetch_index
        pg_check "block: up by the condition wait of /block ($b0 -> $(count block))" \
            [ "$(count block)" -gt "$b0" ]
    fi
fi

pg_done
