#!/usr/bin/env bash
# integration.agent_scrape: drive the gateway for a bounded minute the way Parca and Pyroscope
# scrape a Go service: a CPU scraper asking /debug/pprof/profile?seconds=10 back to back (a
# scrape loop starts the next when the previous is done), and every 10 s allocs, heap, block,
# mutex and goroutine fetched at the same time, overlapping the running CPU profile; randomstring
# (agent linked in, block and mutex profiling on) under a light bounded load meanwhile. Every
# response must parse with `go tool pprof -raw` with its expected sample types, and a second
# CPU profile asked for while one runs must get Go's 500 "Could not enable CPU profiling: cpu
# profiling already in use". Sanitizer builds: block/mutex may be refused with 500 naming the
# runtime (integration.agent_lock_gateway checks that), and allocs/heap answer 501 (no heap
# hooks under a sanitizer: integration.agent_heap_gateway checks that); they are then left out.
# The gateway's pprof.max_concurrent is 8 (the default, set explicitly here): at 2 such a
# scraper gets 409 for most of the kinds fetched while the CPU profile runs.
# ctest-timeout: 120
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

pg_need "$RS" "$PG" go curl
SAN=$(pg_san "$RS")
WINDOW=${PG_SCRAPE_SECONDS:-60}

PG_PPROF_EXTRA="max_concurrent = 8 # the default, said here because the test depends on it"
pg_demo_start PROFAGENT_BLOCK_RATE=1000 PROFAGENT_MUTEX_FRACTION=1

KINDS="allocs heap goroutine block mutex"
code=$(curl -s -m 10 -o "$T/probe.txt" -w '%{http_code}' "$GW/debug/pprof/block")
if [ -n "$SAN" ] && [ "$code" = 500 ]; then
    KINDS=${KINDS/ block mutex/}
    echo "note: $SAN takes pthread_mutex_lock: block and mutex are not scraped in this build"
fi
code=$(curl -s -m 10 -o "$T/probe.txt" -w '%{http_code}' "$GW/debug/pprof/allocs")
if [ -n "$SAN" ] && [ "$code" = 501 ]; then
    KINDS=${KINDS/allocs heap /}
    echo "note: no heap hooks under $SAN (501): allocs and heap are not scraped in this build"
fi
START=$(date +%s)
END=$((START + WINDOW))

# fetch NAME URL: go tool pprof -raw, result in $T/f/NAME.{raw,err,rc}
mkdir -p "$T/f"
fetch()
{
    timeout 40 go tool pprof -raw "$2" >"$T/f/$1.raw" 2>"$T/f/$1.err"
    echo $? >"$T/f/$1.rc"
}

load() # light load, bounded by the window: random strings, a little contention, a short wait
{
    local i=0
    while [ "$(date +%s)" -lt "$END" ] && [ $i -lt 2000 ]; do
        curl -s -m 5 -o /dev/null "$GW/randomstring?n=65536"
        [ $((i % 20)) = 0 ] && curl -s -m 5 -o /dev/null "$GW/contend?threads=2&ms=20"
        [ $((i % 50)) = 0 ] && curl -s -m 5 -o /dev/null "$GW/block?ms=10"
        i=$((i + 1))
        sleep 0.05
    done
}

cpu_scraper() # back to back, as a scrape loop whose scrape lasts its interval
{
    local n=0
    while [ $(($(date +%s) + 10)) -le "$END" ]; do
        fetch "cpu-$n" "$GW/debug/pprof/profile?seconds=10"
        n=$((n + 1))
    done
}

load &
LOAD=$!
cpu_scraper &
CPU=$!
sleep 3 # the first CPU profile is running from here on
r=0
FETCHES=()
while [ "$(date +%s)" -lt $((END - 2)) ]; do
    for k in $KINDS; do
        fetch "$k-$r" "$GW/debug/pprof/$k" &
        FETCHES+=($!)
    done
    if [ $r = 1 ]; then
        code=$(curl -s -m 20 -o "$T/busy.txt" -w '%{http_code}' "$GW/debug/pprof/profile?seconds=1")
        echo "$code" >"$T/busy.code"
    fi
    r=$((r + 1))
    sleep 10
done
wait $CPU
wait $LOAD
wait "${FETCHES[@]}" # not a bare wait: randomstring and profgate are children too
echo "scraped for $(($(date +%s) - START)) s: $(ls "$T/f/"*.rc | wc -l) fetches"

ncpu=$(ls "$T/f/"cpu-*.rc 2>/dev/null | wc -l)
pg_check "CPU scraper: at least $((WINDOW / 10 - 2)) profiles of 10 s (got $ncpu)" [ "$ncpu" -ge $((WINDOW / 10 - 2)) ]
pg_check "other kinds: at least $((WINDOW / 10 - 2)) rounds (got $r)" [ "$r" -ge $((WINDOW / 10 - 2)) ]
bad=0
for rc in "$T/f/"*.rc; do
    name=$(basename "$rc" .rc)
    kind=${name%-*}
    if [ "$(cat "$rc")" != 0 ]; then
        pg_fail "$name: go tool pprof -raw failed: $(head -c 300 "$T/f/$name.err")"
        bad=$((bad + 1))
        continue
    fi
    case $kind in
    cpu) want='^PeriodType: cpu nanoseconds' ;;
    allocs | heap) want='alloc_objects/count +alloc_space/bytes(\[dflt\])? +inuse_objects/count +inuse_space/bytes' ;;
    goroutine) want='^PeriodType: goroutine count' ;;
    block | mutex) want='^PeriodType: contentions count' ;;
    esac
    if ! grep -Eq "$want" "$T/f/$name.raw"; then
        pg_fail "$name: parsed, but no '$want'"
        bad=$((bad + 1))
    fi
done
pg_check "every scraped profile parses with its sample types ($bad bad)" [ $bad = 0 ]
n=$(cat "$T/f/"cpu-*.raw | awk '/^Samples:/ { s = 1; next } /^Locations/ { s = 0 } s && $1 ~ /^[0-9]+$/ { n += $1 } END { print n + 0 }')
pg_check "the CPU profiles hold samples of the load ($n)" [ "$n" -ge 1 ]
pg_check "a second CPU profile while one runs: Go's 500 (got $(cat "$T/busy.code" 2>/dev/null): $(cat "$T/busy.txt" 2>/dev/null))" \
    bash -c "[ \"\$(cat '$T/busy.code')\" = 500 ] && grep -q 'Could not enable CPU profiling: cpu profiling already in use' '$T/busy.txt'"
pg_demo_stop "after the scrapes"
[ "$PG_FAILED" = 0 ] || { pg_log rs; pg_log pg; }
pg_done
