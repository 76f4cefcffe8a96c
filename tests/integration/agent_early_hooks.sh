#!/usr/bin/env bash
# integration.agent_early_hooks: the interposed functions work before the agent is initialised
# and while it initialises (issue 4, "Safety inside the host process"). A small library built
# here (libearly.so) is preloaded after libprofagent.so into an unmodified perl, so that the
# dynamic loader runs libearly's constructor first: it checks the agent is not running yet
# (profagent_socket_path() is NULL), then mallocs, callocs, reallocs, posix_memaligns, locks a
# mutex, waits on a condition variable and a semaphore, and starts 3 threads that keep
# allocating and contending on a mutex and an rwlock for 3 s, across the agent's constructor
# and the start of its thread. Checks: libearly ran first (else the scenario proves nothing
# and fails); the program finishes with its output and exit status unchanged (no crash, no
# deadlock, no dlsym recursion); every thread made progress; afterwards the agent serves
# heap, allocs, goroutine, threadcreate, block and mutex, each parsed by go tool pprof, and
# the threads' allocations after the start are in the heap profile, their waits in block.
# Sanitizer builds preload the runtime first (as agent_preload does); the heap hooks are
# compiled out there (501, checked) and the lock kinds may be refused naming the runtime.
# Under TSan libearly's constructor also runs before TSan's own (libearly does not depend on
# libtsan, libprofagent does), and instrumented code entered before __tsan_init segfaults in
# __tsan_func_entry (no thread state yet; TSan's interceptors, malloc and pthread_*, initialise
# it lazily and are fine). So there libearly does not call profagent_socket_path(): it checks
# the agent is loaded (dlsym) and its socket, bound synchronously by the agent's constructor,
# is not there yet. Everything else is checked as in the other builds.
# ctest-timeout: 90
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

SO=$BIN/agent-lib/libprofagent.so
pg_need "$SO" go curl perl cc
SAN_RT=$(ldd "$SO" | awk '/lib[at]san/ { print $3; exit }')
EARLY_CFLAGS=
if ldd "$SO" | grep -q libtsan; then
    EARLY_CFLAGS=-DEARLY_TSAN
    HOW="agent loaded, its socket not yet bound; not called: TSan not initialised yet"
else
    HOW="profagent_socket_path() is NULL"
fi
if [ -n "$SAN_RT" ]; then
    PRELOAD="$SAN_RT:$SO:$T/libearly.so"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0
else
    PRELOAD="$SO:$T/libearly.so"
fi
SOCK=$T/agent/early.sock

cat >"$T/early.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t th[3];
static unsigned long rounds[3];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void *early_churn(void *arg)
{
    long i = (long)arg;
    double end = now() + 3.0;
    unsigned long n = 0;

    while (now() < end) {
        void *a = NULL, *p = malloc(100 + n % 5000), *q = calloc(3, 77);
        p = realloc(p, 9000);
        if (posix_memalign(&a, 64, 256) != 0)
            abort();
        pthread_mutex_lock(&mu);
        n++;
        pthread_mutex_unlock(&mu);
        pthread_rwlock_wrlock(&rw);
        pthread_rwlock_unlock(&rw);
        free(p);
        free(q);
        free(a);
    }
    __atomic_store_n(&rounds[i], n, __ATOMIC_RELEASE);
    return NULL;
}

__attribute__((constructor)) static void early(void)
{
    const char *(*path)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "profagent_socket_path");
    struct timespec ts;
    sem_t s;
#ifdef EARLY_TSAN
    const char *sock = getenv("PROFAGENT_SOCKET");
    int running = sock == NULL || access(sock, F_OK) == 0;
#else
    int running = path != NULL && path() != NULL;
#endif

    fprintf(stderr, "early: constructor, agent %s\n",
            path == NULL ? "not loaded" : running ? "already running" : "not running yet");
    for (int k = 0; k < 1000; k++)
        free(malloc((size_t)k + 1));
    pthread_mutex_lock(&mu);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 2000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&cv, &mu, &ts);
    pthread_mutex_unlock(&mu);
    sem_init(&s, 0, 1);
    sem_wait(&s);
    sem_destroy(&s);
    for (long i = 0; i < 3; i++)
        if (pthread_create(&th[i], NULL, early_churn, (void *)i) != 0)
            abort();
}

__attribute__((destructor)) static void late(void)
{
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "early: rounds %lu %lu %lu\n", rounds[0], rounds[1], rounds[2]);
}
EOF
cc -O1 -g -fno-omit-frame-pointer -shared -fPIC -pthread $EARLY_CFLAGS -o "$T/libearly.so" "$T/early.c" -ldl ||
    { echo "FAIL: libearly.so did not build"; exit 1; }

# perl waits for the file $T/stop (30 s at most) in 0.1 s steps, and says so. (Not one long
# select: the goroutine profile signals every thread, and select/poll/nanosleep are never
# restarted after a handler, so a blocked perl select returns EINTR early.) exec: only perl
# gets the preload.
LD_PRELOAD= PRELOAD=$PRELOAD SOCK=$SOCK STOP=$T/stop bash -c \
    'export LD_PRELOAD=$PRELOAD PROFAGENT_SOCKET=$SOCK PROFAGENT_MEM_RATE=4096 PROFAGENT_BLOCK_RATE=1 PROFAGENT_MUTEX_FRACTION=1
     exec perl -e "my \$t = time + 30; select(undef, undef, undef, 0.1) until -e \$ENV{STOP} || time > \$t; print qq(done\n)"' \
    >"$T/perl.out" 2>"$T/perl.err" &
PERL=$!
PG_PIDS[perl]=$PERL
pg_wait_unix "$SOCK" 10 || { cat "$T/perl.err"; echo "FAIL: the agent did not open its socket"; exit 1; }

# fetch KIND: status printed, body in $T/KIND.pb
fetch()
{
    curl -s -m 20 --unix-socket "$SOCK" -o "$T/$1.pb" -w '%{http_code}' "http://agent/debug/pprof/$1"
}
# a few samples' worth of churn has happened by now (the threads run 3 s from the constructor)
sleep 1
declare -A CODE
for k in heap allocs goroutine threadcreate block mutex; do
    CODE[$k]=$(fetch $k)
done
touch "$T/stop"
wait "$PERL"
rc=$?
unset "PG_PIDS[perl]"

pg_check "libearly's constructor ran before the agent's, $HOW ($(grep '^early: constructor' "$T/perl.err"))" \
    grep -qx 'early: constructor, agent not running yet' "$T/perl.err"
pg_check "perl exits 0 with its output unchanged (rc $rc)" \
    bash -c "[ $rc = 0 ] && [ \"\$(cat '$T/perl.out')\" = done ]"
read -r _ _ r0 r1 r2 < <(grep '^early: rounds' "$T/perl.err")
pg_check "every early thread kept going across the agent's start (rounds ${r0:-?} ${r1:-?} ${r2:-?})" \
    test "${r0:-0}" -gt 0 -a "${r1:-0}" -gt 0 -a "${r2:-0}" -gt 0
pg_check "no sanitizer report, no agent error" bash -c "! grep -q 'Sanitizer\|runtime error' '$T/perl.err'"

for k in goroutine threadcreate heap allocs block mutex; do
    code=${CODE[$k]}
    if [ "$code" = 200 ]; then
        pg_pprof_raw "$k: 200, parses" "$T/$k.pb" "$T/$k.raw"
    elif [ -n "$SAN_RT" ] && [ "$k" != threadcreate ] && { [ "$code" = 501 ] || [ "$code" = 500 ]; }; then
        pg_pass "$k under a sanitizer: $code ($(head -c 100 "$T/$k.pb"))"
    else
        pg_fail "$k: got $code ($(head -c 200 "$T/$k.pb"))"
    fi
done
if [ "${CODE[heap]}" = 200 ]; then
    pg_check "heap: the early threads' allocations after the start were sampled (early_churn in allocs)" \
        grep -q ' early_churn ' "$T/allocs.raw"
fi
if [ "${CODE[block]}" = 200 ] && [ -z "$SAN_RT" ]; then
    pg_check "block: the early threads' waits were recorded (early_churn)" grep -q ' early_churn ' "$T/block.raw"
fi
[ "$PG_FAILED" -gt 0 ] && cat "$T/perl.err"
pg_done
