#!/usr/bin/env bash
# integration.agent_heap_gateway: heap and allocs through the gateway, the way a user runs
# them: randomstring (agent linked in, PROFAGENT_MEM_RATE=65536) behind profgate, `go tool
# pprof` pointed at <gateway>/debug/pprof/{heap,allocs}. After GET /alloc?kb=65536 the heap
# profile parses with -raw, rs_heap_alloc is the top inuse_space function, and its inuse_space
# is within 10% of 64 MiB; after GET /free it is gone from inuse_space but stays in allocs.
# Deltas (allocs and heap, seconds=2) through the gateway have only the window's /alloc;
# allocs?debug=1 is Go's legacy heap text. The service keeps
# serving throughout. (64 KiB blocks at a 64 KiB rate: ~2.4% standard deviation.)
# Sanitizer builds: both endpoints answer 501 "heap profiling unavailable: built with a
# sanitizer" through the gateway (checked instead).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET PROFAGENT_MEM_RATE

pg_need "$RS" "$PG" go curl
SAN=$(pg_san "$RS")
RATE=65536

pg_demo_start PROFAGENT_MEM_RATE=$RATE

if [ -n "$SAN" ]; then
    for p in heap allocs; do
        code=$(curl -s -m 30 -o "$T/san.txt" -w '%{http_code}' "$GW/debug/pprof/$p")
        pg_check "$p through the gateway under $SAN: 501 heap profiling unavailable (got $code: $(head -c 100 "$T/san.txt"))" \
            bash -c "[ $code = 501 ] && [ \"\$(cat '$T/san.txt')\" = 'heap profiling unavailable: built with a sanitizer' ]"
    done
    pg_rs_serving "$GW"
    pg_done
fi

out=$(curl -s -m 30 "$GW/alloc?kb=65536")
pg_check "GET /alloc?kb=65536 through the gateway ($out)" grep -q '^allocated 65536 KiB' <<<"$out"

go tool pprof -raw "$GW/debug/pprof/heap" >"$T/heap.raw" 2>"$T/heap.err"
pg_check "go tool pprof -raw <gateway>/debug/pprof/heap parses" [ $? = 0 ]
pg_check "-raw: PeriodType space bytes, Period $RATE" \
    bash -c "grep -q '^PeriodType: space bytes' '$T/heap.raw' && grep -q '^Period: $RATE\$' '$T/heap.raw'"
pg_check "-raw: a location named rs_heap_alloc" grep -Eq '^ +[0-9]+: 0x[0-9a-f]+ M=[0-9]+ rs_heap_alloc ' "$T/heap.raw"
GOT=$(pg_leaf_sum "$T/heap.raw" rs_heap_alloc 4)
pg_check "inuse_space under rs_heap_alloc within 10% of 64 MiB (got $GOT)" pg_within10 "$GOT" $((64 << 20))

go tool pprof -top "$GW/debug/pprof/heap" >"$T/heap.top" 2>&1
pg_check "go tool pprof -top: Type inuse_space" grep -q '^Type: inuse_space' "$T/heap.top"
TOP1=$(awk 'hdr && !done { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print; done = 1 }
            /^ *flat +flat% +sum% +cum +cum%/ { hdr = 1 }' "$T/heap.top")
pg_check "rs_heap_alloc is the top inuse_space function (top: $TOP1)" [ "$TOP1" = rs_heap_alloc ]

out=$(curl -s -m 30 "$GW/free")
pg_check "GET /free through the gateway ($out)" grep -q '^freed 65536 KiB' <<<"$out"
go tool pprof -raw "$GW/debug/pprof/heap" >"$T/heap2.raw" 2>&1
GOT=$(pg_leaf_sum "$T/heap2.raw" rs_heap_alloc 4)
pg_check "after /free, inuse_space under rs_heap_alloc is 0 (got $GOT)" [ "$GOT" = 0 ]
go tool pprof -raw "$GW/debug/pprof/allocs" >"$T/allocs.raw" 2>&1
GOT=$(pg_leaf_sum "$T/allocs.raw" rs_heap_alloc 2)
pg_check "allocs through the gateway: alloc_space under rs_heap_alloc within 10% of 64 MiB (got $GOT)" \
    pg_within10 "$GOT" $((64 << 20))

# a delta through the gateway: only the window's 64 MiB (after 64 MiB before it)
curl -s -m 30 -o "$T/delta.pb.gz" -w '%{http_code}' "$GW/debug/pprof/allocs?seconds=2" >"$T/delta.code" &
DCURL=$!
sleep 0.5
out=$(curl -s -m 30 "$GW/alloc?kb=65536")
wait $DCURL
pg_check "allocs?seconds=2 through the gateway: 200 (got $(cat "$T/delta.code"))" [ "$(cat "$T/delta.code")" = 200 ]
go tool pprof -raw "$T/delta.pb.gz" >"$T/delta.raw" 2>&1
GOT=$(pg_leaf_sum "$T/delta.raw" rs_heap_alloc 2)
pg_check "the delta's alloc_space under rs_heap_alloc is the window's 64 MiB within 10% (got $GOT)" \
    pg_within10 "$GOT" $((64 << 20))
curl -s -m 30 "$GW/free" >/dev/null

# heap?seconds=2 (Go serves heap deltas too): the in-use bytes the window added
curl -s -m 30 -D "$T/hdelta.h" -o "$T/hdelta.pb.gz" -w '%{http_code}' "$GW/debug/pprof/heap?seconds=2" >"$T/hdelta.code" &
DCURL=$!
sleep 0.5
out=$(curl -s -m 30 "$GW/alloc?kb=65536")
wait $DCURL
pg_check "heap?seconds=2 through the gateway: 200 named heap-delta (got $(cat "$T/hdelta.code"))" \
    bash -c "[ \"\$(cat '$T/hdelta.code')\" = 200 ] && tr -d '\r' <'$T/hdelta.h' | grep -qx 'Content-Disposition: attachment; filename=\"heap-delta\"'"
go tool pprof -raw "$T/hdelta.pb.gz" >"$T/hdelta.raw" 2>&1
GOT=$(pg_leaf_sum "$T/hdelta.raw" rs_heap_alloc 4)
pg_check "the heap delta's inuse_space under rs_heap_alloc is the window's 64 MiB within 10% (got $GOT)" \
    pg_within10 "$GOT" $((64 << 20))

# allocs?debug=1: Go prints the heap's legacy text for allocs too
code=$(curl -s -m 10 -o "$T/allocs1.txt" -w '%{http_code}' "$GW/debug/pprof/allocs?debug=1")
pg_check "allocs?debug=1 through the gateway: 200, Go's header line @ heap/$((2 * RATE)) ($code: $(head -n 1 "$T/allocs1.txt"))" \
    bash -c "[ $code = 200 ] && head -n 1 '$T/allocs1.txt' | grep -Eq '^heap profile: [0-9]+: [0-9]+ \[[0-9]+: [0-9]+\] @ heap/$((2 * RATE))\$'"
pg_check "allocs?debug=1: a record whose frames name rs_heap_alloc" \
    grep -Pq '^#\t0x[0-9a-f]+\trs_heap_alloc\+0x' "$T/allocs1.txt"
curl -s -m 30 "$GW/free" >/dev/null

code=$(curl -s -m 10 -o "$T/e.txt" -w '%{http_code}' "$GW/debug/pprof/heap?seconds=1&debug=1")
pg_check "seconds with debug through the gateway: 400 ($code: $(cat "$T/e.txt"))" \
    bash -c "[ $code = 400 ] && grep -qx 'seconds and debug params are incompatible' '$T/e.txt'"

pg_demo_stop
if [ "$PG_FAILED" != 0 ]; then
    cat "$T/heap.err"
    pg_log rs
    pg_log pg
fi
pg_done
