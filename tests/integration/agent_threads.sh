#!/usr/bin/env bash
# integration.agent_threads: /debug/pprof/goroutine and /threadcreate straight from the agent's
# socket, on tests/programs/threads_park: K threads named park-<i> parked in
# threads_park_here(), one thread masking every signal, one busy thread.
#   goroutine debug=0 parses with go tool pprof -raw and has exactly K samples in
#   threads_park_here, and says in its comments that one thread was not sampled; debug=1 has
#   "K @"; debug=2 lists every thread by name (the masked one without a stack, the agent's own
#   as "profagent"); threadcreate shows the spawning function with K+2 creations; Go's 400s
#   for bad seconds, and seconds=1 is a delta in which the unchanged threads cancel out; a host handler on the agent's signal is left alone with an honest 500.
# Sanitizer builds (libasan/libtsan in the program): the runtime binds pthread_create first and
# its interceptor calls ours next, so threadcreate has the same stacks, each with the
# interceptor's frame between the hook's and the caller's (checked). A preloaded library that
# binds pthread_create first and calls glibc's by version, never ours, gets an honest 500
# naming it (checked in plain builds with a shim compiled here: sanitizers want to be first).
# TSan also defers asynchronous signals until a thread reaches one of its interceptors, so
# parked and busy threads never answer: there the test checks that goroutine still answers
# within its bound and counts them as not answering, instead of their stacks.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

PROG=$BIN/tests/programs/threads_park
pg_need "$PROG" go
K=6
SOCK=$T/agent/park.sock
SAN=$(pg_san "$PROG")

PROFAGENT_SOCKET=$SOCK pg_start park "$PROG" --threads $K --masked 1 --busy 1 --seconds 100
for _ in $(seq 1 100); do
    grep -q '^ready' "$T/park.log" && break
    sleep 0.1
done
grep -q '^ready' "$T/park.log" && pg_wait_unix "$SOCK" 5 || { pg_log park; echo "FAIL: threads_park did not come up"; exit 1; }

get() # get PATH OUT: prints the status code; 10 s bound (the agent waits 500 ms at most)
{
    curl -s -m 10 --unix-socket "$SOCK" -o "$2" -D "$2.h" -w '%{http_code}' "http://agent$1"
}


# --- goroutine, debug=0
code=$(get /debug/pprof/goroutine "$T/g.pb.gz")
pg_check "goroutine: 200 (got $code)" [ "$code" = 200 ]
pg_check "goroutine: Content-Disposition names the profile" \
    grep -qi '^Content-Disposition: attachment; filename="goroutine"' "$T/g.pb.gz.h"
pg_pprof_raw "goroutine: go tool pprof -raw parses it" "$T/g.pb.gz" "$T/g.raw"
pg_check "goroutine: PeriodType goroutine count" grep -q '^PeriodType: goroutine count' "$T/g.raw"
pg_check "goroutine: sample type goroutine/count" grep -Eq '^ *goroutine/count *$' "$T/g.raw"
if [[ "$SAN" == libtsan* ]]; then
    pg_check "goroutine under TSan: the $((K + 1)) parked and busy threads counted as not answering" \
        grep -Eq "^Comment: $((K + 1)) threads did not answer within [0-9]+ ms" "$T/g.raw"
    echo "note: TSan defers the agent's signal: thread stacks are not checked in this build"
else
    n=$(pg_raw_count "$T/g.raw" threads_park_here)
    pg_check "goroutine: $K samples in threads_park_here (got $n)" [ "$n" = $K ]
    n=$(pg_raw_count "$T/g.raw" threads_busy_loop)
    pg_check "goroutine: 1 sample in threads_busy_loop (got $n)" [ "$n" = 1 ]
    n=$(pg_raw_count "$T/g.raw" threads_park_masked)
    pg_check "goroutine: the masked thread has no sample (got $n)" [ "$n" = 0 ]
    pg_check "goroutine: comments count the masked thread ($(grep '^Comment' "$T/g.raw" | tr '\n' '|'))" \
        grep -Eq '^Comment: 1 threads not sampled: signal [0-9]+ blocked' "$T/g.raw"
    pg_check "goroutine: the agent's own thread is in it" grep -q ' pa_server_run ' "$T/g.raw"

    # --- goroutine, debug=1 and debug=2
    code=$(get '/debug/pprof/goroutine?debug=1' "$T/g1.txt")
    pg_check "goroutine?debug=1: 200 text/plain (got $code)" \
        bash -c "[ $code = 200 ] && grep -qi '^Content-Type: text/plain' '$T/g1.txt.h'"
    pg_check "goroutine?debug=1: header line" grep -Eq '^goroutine profile: total [0-9]+$' "$T/g1.txt"
    pg_check "goroutine?debug=1: a record \"$K @\" whose frames have threads_park_here" \
        bash -c "awk '/^$K @ /{r=1;next} r&&/^\$/{r=0} r' '$T/g1.txt' | grep -Pq '^#\t0x[0-9a-f]+\tthreads_park_here\+0x[0-9a-f]+\t+/'"
    pg_check "goroutine?debug=1: ends with the masked-thread comment" \
        grep -Eq '^# 1 threads not sampled' "$T/g1.txt"

    code=$(get '/debug/pprof/goroutine?debug=2' "$T/g2.txt")
    pg_check "goroutine?debug=2: 200 (got $code)" [ "$code" = 200 ]
    for i in $(seq 0 $((K - 1))); do
        pg_check "goroutine?debug=2: thread park-$i listed, parked in threads_park_here" \
            bash -c "awk '/^thread [0-9]+ \[park-$i, /{r=1;next} r&&/^\$/{r=0} r' '$T/g2.txt' | grep -q '^threads_park_here(...)\$'"
    done
    pg_check "goroutine?debug=2: busy-0 in threads_busy_loop" \
        bash -c "awk '/^thread [0-9]+ \[busy-0, /{r=1;next} r&&/^\$/{r=0} r' '$T/g2.txt' | grep -q '^threads_busy_loop(...)\$'"
    pg_check "goroutine?debug=2: masked-0 listed without a stack" \
        bash -c "grep -A1 '^thread [0-9]* \[masked-0, ' '$T/g2.txt' | grep -q '(no stack: signal'"
    pg_check "goroutine?debug=2: the agent's thread is listed as profagent" \
        grep -Eq '^thread [0-9]+ \[profagent, ' "$T/g2.txt"
    pg_check "goroutine?debug=2: frames are 'name(...)' then a tab, the file and +0xoff" \
        grep -Pq '^\t/.*threads_park \+0x[0-9a-f]+$' "$T/g2.txt"
fi

# --- parameters as Go checks them
code=$(get '/debug/pprof/goroutine?seconds=abc' "$T/bad1")
pg_check "goroutine?seconds=abc: 400 with Go's message (got $code)" \
    bash -c "[ $code = 400 ] && grep -q 'invalid value for \"seconds\" - must be a positive integer' '$T/bad1'"
code=$(get '/debug/pprof/goroutine?seconds=2&debug=1' "$T/bad2")
pg_check "goroutine?seconds=2&debug=1: 400 with Go's message (got $code)" \
    bash -c "[ $code = 400 ] && grep -q 'seconds and debug params are incompatible' '$T/bad2'"

if [[ "$SAN" != libtsan* ]]; then
    # --- deltas: the parked threads are there at both ends, so they cancel out
    code=$(curl -s -m 20 --unix-socket "$SOCK" -o "$T/gd.pb.gz" -D "$T/gd.h" -w '%{http_code}' \
        "http://agent/debug/pprof/goroutine?seconds=1")
    pg_check "goroutine?seconds=1: 200 named goroutine-delta (got $code)" \
        bash -c "[ $code = 200 ] && grep -qi 'filename=\"goroutine-delta\"' '$T/gd.h'"
    if go tool pprof -raw "$T/gd.pb.gz" >"$T/gd.raw" 2>"$T/gd.err"; then
        n=$(pg_raw_count "$T/gd.raw" threads_park_here)
        pg_check "goroutine?seconds=1: parses, and the unchanged parked threads cancel out (got $n)" [ "$n" = 0 ]
        pg_check "goroutine?seconds=1: the delta's duration is about 1 s" \
            grep -Eq '^Duration: (1\.|9[0-9][0-9]ms)' "$T/gd.raw"
    else
        pg_fail "goroutine?seconds=1 does not parse: $(head -c 300 "$T/gd.err")"
    fi
fi

# --- threadcreate
code=$(get /debug/pprof/threadcreate "$T/tc.pb.gz")
pg_check "threadcreate: 200 (got $code: $(head -c 200 "$T/tc.pb.gz"))" [ "$code" = 200 ]
pg_pprof_raw "threadcreate: go tool pprof -raw parses it" "$T/tc.pb.gz" "$T/tc.raw"
pg_check "threadcreate: PeriodType threadcreate count" grep -q '^PeriodType: threadcreate count' "$T/tc.raw"
n=$(pg_raw_count "$T/tc.raw" threads_spawn_parkers)
pg_check "threadcreate: $((K + 2)) creations in threads_spawn_parkers (got $n)" [ "$n" = $((K + 2)) ]
n=$(pg_raw_count "$T/tc.raw" pthread_create)
pg_check "threadcreate: every stack starts at pthread_create ($n >= $((K + 2)))" [ "$n" -ge $((K + 2)) ]
code=$(get '/debug/pprof/threadcreate?debug=1' "$T/tc1.txt")
pg_check "threadcreate?debug=1: 200 (got $code)" [ "$code" = 200 ]
pg_check "threadcreate?debug=1: header line" grep -Eq '^threadcreate profile: total [0-9]+$' "$T/tc1.txt"
pg_check "threadcreate?debug=1: frames name threads_spawn_parkers" \
    grep -Pq '^#\t0x[0-9a-f]+\tthreads_spawn_parkers\+0x' "$T/tc1.txt"
if [ -n "$SAN" ]; then
    # every record through threads_spawn_parkers: the hook's frame, then the interceptor's
    via=$(awk -v san="$SAN" '
        function done() { if (has) { total++; if (second ~ /\tpthread_create\+0x/ && index(second, san)) ok++ } has = 0 }
        / @ / { done(); n = 0; second = ""; next }
        /^#/ { n++; if (n == 2) second = $0; if ($0 ~ /\tthreads_spawn_parkers\+/) has = 1 }
        END { done(); print ok + 0 "/" total + 0 }' "$T/tc1.txt")
    pg_check "threadcreate under $SAN: each stack from threads_spawn_parkers goes through $SAN's pthread_create (records: $via)" \
        bash -c "[ '${via%/*}' = '${via#*/}' ] && [ '${via#*/}' -gt 0 ]"
else
    # a preloaded pthread_create that never calls ours: the hook sees nothing, and says so
    cat >"$T/shim.c" <<'SHIM'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg)
{
    create_fn real = (create_fn)dlvsym(RTLD_NEXT, "pthread_create", "GLIBC_2.34");
    return real(t, a, f, arg);
}
SHIM
    if cc -shared -fPIC -o "$T/libshim.so" "$T/shim.c" -ldl 2>"$T/shim.err"; then
        SOCK2=$T/agent/shim.sock
        LD_PRELOAD=$T/libshim.so PROFAGENT_SOCKET=$SOCK2 pg_start shim "$PROG" --threads 1 --seconds 100
        for _ in $(seq 1 100); do
            grep -q '^ready' "$T/shim.log" && break
            sleep 0.1
        done
        pg_wait_unix "$SOCK2" 5
        code=$(curl -s -m 10 --unix-socket "$SOCK2" -o "$T/tcs" -w '%{http_code}' "http://agent/debug/pprof/threadcreate")
        pg_check "threadcreate behind a pthread_create that never calls ours: 500 naming it (got $code: $(head -c 200 "$T/tcs"))" \
            bash -c "[ $code = 500 ] && grep -q 'threadcreate profile unavailable: pthread_create is bound to .*libshim.so' '$T/tcs'"
        pg_stop shim
    else
        pg_fail "cannot build the pthread_create shim: $(head -c 300 "$T/shim.err")"
    fi
fi

# --- index lists both
code=$(get /debug/pprof/ "$T/index.html")
pg_check "index lists goroutine and threadcreate" \
    bash -c "grep -q \"href='goroutine?debug=1'\" '$T/index.html' && grep -q \"href='threadcreate?debug=1'\" '$T/index.html'"

# --- repeated requests: answered every time, the host keeps running
ok=0
for i in $(seq 1 20); do
    [ "$(get /debug/pprof/goroutine "$T/r.pb.gz")" = 200 ] && ok=$((ok + 1))
done
pg_check "20 goroutine profiles in a row answered ($ok/20)" [ $ok = 20 ]
pg_check "threads_park still alive" kill -0 "$(pg_pid park)"
pg_stop park TERM

# --- the host already handles the agent's signal: left alone, honest 500
SIG=$(( $(kill -l RTMAX) - 3 ))
SOCK=$T/agent/foreign.sock
PROFAGENT_SOCKET=$SOCK pg_start foreign "$PROG" --threads 2 --seconds 100 --foreign-signal $SIG
for _ in $(seq 1 100); do
    grep -q '^ready' "$T/foreign.log" && break
    sleep 0.1
done
pg_wait_unix "$SOCK" 5
code=$(get /debug/pprof/goroutine "$T/f.txt")
pg_check "signal $SIG taken by the host: goroutine 500 saying so (got $code: $(head -c 160 "$T/f.txt"))" \
    bash -c "[ $code = 500 ] && grep -q 'already has a handler' '$T/f.txt'"
pg_check "... and the agent logged it once" grep -q "signal $SIG already has a handler that is not ours" "$T/foreign.log"
pg_check "the host with its own handler still runs" kill -0 "$(pg_pid foreign)"
pg_stop foreign TERM

[ "$PG_FAILED" = 0 ] || { pg_log park; head -n 40 "$T/g2.txt"; }
pg_done
