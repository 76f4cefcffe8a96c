/* agent_cpu_share: a workload whose CPU split between two threads is known by construction,
 * for integration.agent_cpu_accuracy. Threads "cpu-heavy" (cpu_share_heavy) and "cpu-light"
 * (cpu_share_light) run in lockstep rounds: each round heavy burns 3 units and light 1 unit of
 * its own thread CPU time (CLOCK_THREAD_CPUTIME_ID), then both meet at a barrier. So the CPU
 * time is 3:1 whatever the machine's load, and both threads are on CPU at once for part of
 * every round (where a process-wide timer misattributes). The threads are created
 * --start-after S seconds after start (inside a profile the test requests first), so the
 * profiler must find threads created during a profile. Their tids are printed as
 * "heavy TID" / "light TID".
 *   agent_cpu_share --socket PATH [--seconds S] [--start-after S] [--unit-ms MS] */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "profagent.h"

static atomic_int stop_flag;
static atomic_ulong sink;
static pthread_barrier_t round_barrier;
static long unit_ms = 10;

static int64_t thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

__attribute__((noinline)) unsigned long cpu_share_burn(long ms);
__attribute__((noinline)) unsigned long cpu_share_burn(long ms)
{
    int64_t end = thread_cpu_ns() + ms * 1000000LL;
    unsigned long x = atomic_load_explicit(&sink, memory_order_relaxed);
    do {
        for (int i = 0; i < 20000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
    } while (thread_cpu_ns() < end);
    return x;
}

/* One round per loop; the barrier keeps the two threads in step, so neither runs ahead. */
static void run_rounds(long units)
{
    unsigned long x = 0;
    for (;;) {
        x += cpu_share_burn(units * unit_ms);
        pthread_barrier_wait(&round_barrier);
        if (atomic_load(&stop_flag))
            break;
    }
    atomic_fetch_add(&sink, x);
}

__attribute__((noinline)) void *cpu_share_heavy(void *arg);
__attribute__((noinline)) void *cpu_share_heavy(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "cpu-heavy");
    printf("heavy %d\n", (int)gettid());
    run_rounds(3);
    return NULL;
}

__attribute__((noinline)) void *cpu_share_light(void *arg);
__attribute__((noinline)) void *cpu_share_light(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "cpu-light");
    printf("light %d\n", (int)gettid());
    run_rounds(1);
    return NULL;
}

static void on_term(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    int seconds = 60;
    double start_after = 0;
    pthread_t heavy, light;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--start-after") == 0)
            start_after = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--unit-ms") == 0)
            unit_ms = atol(argv[i + 1]);
    }
    if (unit_ms <= 0)
        unit_ms = 10;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sock != NULL) {
        profagent_options_t o;
        int rc;
        profagent_options_init(&o);
        o.socket_path = sock;
        rc = profagent_start(&o);
        if (rc < 0) {
            fprintf(stderr, "agent_cpu_share: profagent_start: %s\n", strerror(-rc));
            return 1;
        }
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    printf("ready\n");
    for (long w = 0; w < (long)(start_after * 1000) && !atomic_load(&stop_flag); w += 10)
        sleep_ms(10);
    pthread_barrier_init(&round_barrier, NULL, 2);
    pthread_create(&heavy, NULL, cpu_share_heavy, NULL);
    pthread_create(&light, NULL, cpu_share_light, NULL);
    for (int s = 0; s < seconds * 10 && !atomic_load(&stop_flag); s++)
        sleep_ms(100);
    atomic_store(&stop_flag, 1);
    pthread_join(heavy, NULL);
    pthread_join(light, NULL);
    pthread_barrier_destroy(&round_barrier);
    profagent_stop();
    return 0;
}
