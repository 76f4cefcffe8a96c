/* lock_micro: pthread_mutex_lock/unlock cost, for bench/agent/overhead.sh. T threads (argv[1],
 * default 2) each take one shared mutex N times (argv[2], default 1 million), holding it for a
 * short dependent computation and doing as much again outside it, from a stack DEPTH frames
 * deep (argv[3], default 16; the block and mutex samplers unwind it). With T 1 every lock is
 * uncontended (the hooks' fast path); with T >= 2 on as many cores many are contended (the
 * sampled path: clock_gettime, the waiter slot, an unwind per sampled event) -- if the threads
 * do run at once: on an overloaded machine they hardly meet. argv[4] "yield" makes the holder
 * call sched_yield() under the lock, so that (nearly) every lock is contended, whatever the
 * load: the cost of the contended path itself. Prints
 *   threads=T n=N cpu_ns_per_acq=.. wall_ns_per_acq=.. contended_pct=..
 * where cpu is the process's CPU time (all threads) and contended_pct the share of locks that
 * found the mutex taken (trylock first, then lock, so the hooks see the same sequence of calls
 * they would see in a plain lock: a failed trylock does not pass through them). Run it with
 * libprofagent LD_PRELOADed and PROFAGENT_BLOCK_RATE / PROFAGENT_MUTEX_FRACTION set, or not
 * at all, to see what the hooks add per acquisition. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INSIDE_ROUNDS 20 /* ~50-100 ns of work under the lock */

static pthread_mutex_t mu_singleton = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shared_singleton;
static long n_singleton;
static int depth_singleton;
static int yield_singleton;
static pthread_barrier_t start_singleton; /* all threads start together, or they hardly meet */

static double clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t burn(uint64_t x, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        x ^= x >> 31;
        x *= 0x9e3779b97f4a7c15ULL;
    }
    return x;
}

static __attribute__((noinline)) long lock_loop(uint64_t seed)
{
    long contended = 0;

    for (long i = 0; i < n_singleton; i++) {
        if (pthread_mutex_trylock(&mu_singleton) != 0) {
            contended++;
            pthread_mutex_lock(&mu_singleton);
        }
        shared_singleton = burn(shared_singleton + seed, INSIDE_ROUNDS);
        if (yield_singleton)
            sched_yield();
        pthread_mutex_unlock(&mu_singleton);
        seed = burn(seed, INSIDE_ROUNDS);
    }
    return contended + (long)(seed & 0);
}

static __attribute__((noinline)) long descend(int depth, uint64_t seed)
{
    volatile int pad = depth;
    long r;

    if (depth <= 1)
        return lock_loop(seed);
    r = descend(depth - 1, seed);
    return r + pad * 0;
}

static void *worker(void *arg)
{
    pthread_barrier_wait(&start_singleton);
    return (void *)(intptr_t)descend(depth_singleton, (uint64_t)(uintptr_t)arg | 1);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    pthread_t tids[64];
    long contended = 0;
    double c0, w0, c1, w1, total;

    n_singleton = argc > 2 ? atol(argv[2]) : 1000000L;
    depth_singleton = argc > 3 ? atoi(argv[3]) : 16;
    yield_singleton = argc > 4 && strcmp(argv[4], "yield") == 0;
    if (threads < 1 || threads > 64 || n_singleton < 1 || n_singleton > 1000000000L ||
        depth_singleton < 1 || depth_singleton > 100) {
        fprintf(stderr, "usage: lock_micro [THREADS 1..64] [N] [DEPTH 1..100] [yield]\n");
        return 2;
    }
    pthread_barrier_init(&start_singleton, NULL, (unsigned)threads);
    c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    w0 = clock_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&tids[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) {
            fprintf(stderr, "lock_micro: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(tids[i], &r);
        contended += (long)(intptr_t)r;
    }
    c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    w1 = clock_ns(CLOCK_MONOTONIC);
    pthread_barrier_destroy(&start_singleton);
    total = (double)threads * (double)n_singleton;
    printf("threads=%d n=%ld cpu_ns_per_acq=%.1f wall_ns_per_acq=%.1f contended_pct=%.2f\n",
           threads, n_singleton, (c1 - c0) / total, (w1 - w0) / total,
           100.0 * (double)contended / total);
    return 0;
}
