/* agent_thread_rss: what the agent's samplers add to a process's memory per sampled thread.
 * libunwind's unw_backtrace (the agent's cached walk) gives every thread that calls it a trace
 * cache of its own (256 KiB, every page written at creation, kept until the thread exits);
 * this host makes N threads that each burn CPU and allocate, and reports VmRSS before and
 * after, for bench/agent and integration.agent_thread_rss.
 * It links libprofagent and starts the agent on --socket PATH; once the file --go PATH exists
 * (the driver creates it after starting a CPU profile, or at once for a heap-only run) it makes
 * --threads N threads (default 16, at most 4096). Each burns --burn-ms M milliseconds of its
 * own CPU time (default 5: at PROFAGENT_CPU_HZ=1000 that is ~5 CPU samples, at least one
 * for certain) and mallocs and frees --alloc-kib K KiB in 4 KiB blocks (default 8192: ~16
 * heap samples expected at the default 512 KiB rate), then waits, alive, until every thread
 * is done; main then prints one line and lets them exit:
 *   threads=N rss_before_kib=.. rss_after_kib=.. per_thread_kib=..
 * (rss_before: after the agent started, before the threads; per_thread: the growth / N).
 * With --end PATH the threads stay alive after that line until PATH exists (so that a profile
 * running meanwhile can finish while every cache is still held).
 * Every wait is bounded (go and end files: 60 s; the threads: 300 s). Exit 0, or 1 with a
 * reason.
 *   agent_thread_rss --socket PATH --go PATH [--end PATH] [--threads N] [--burn-ms M]
 *                    [--alloc-kib K] */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "profagent.h"

#define MAX_THREADS 4096
#define BLOCK 4096

static int burn_ms_singleton = 5;
static long alloc_kib_singleton = 8192;
static atomic_int done_singleton;
static atomic_int release_singleton;
static atomic_ulong sink_singleton;

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

__attribute__((noinline)) unsigned long thread_rss_burn(unsigned long x);
__attribute__((noinline)) unsigned long thread_rss_burn(unsigned long x)
{
    for (int i = 0; i < 100000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

__attribute__((noinline)) void thread_rss_alloc(long kib);
__attribute__((noinline)) void thread_rss_alloc(long kib)
{
    for (long i = 0; i < kib * 1024 / BLOCK; i++) {
        char *volatile p = malloc(BLOCK);
        if (p != NULL)
            p[0] = (char)i;
        free(p);
    }
}

static void *worker(void *arg)
{
    double t0 = thread_cpu_ms();
    unsigned long x = (unsigned long)(uintptr_t)arg;

    thread_rss_alloc(alloc_kib_singleton / 2);
    while (thread_cpu_ms() - t0 < burn_ms_singleton)
        x += thread_rss_burn(x);
    thread_rss_alloc(alloc_kib_singleton - alloc_kib_singleton / 2);
    atomic_fetch_add(&sink_singleton, x);
    atomic_fetch_add(&done_singleton, 1);
    for (int i = 0; i < 300000 && !atomic_load(&release_singleton); i++)
        nap_ms(1);
    return NULL;
}

static long rss_kib(void)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *go = NULL, *end = NULL;
    int n = 16, rc, made = 0, ok = 1;
    static pthread_t th[MAX_THREADS];
    profagent_options_t o;
    long before, after;
    pthread_attr_t attr;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--go") == 0)
            go = argv[i + 1];
        else if (strcmp(argv[i], "--end") == 0)
            end = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--burn-ms") == 0)
            burn_ms_singleton = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--alloc-kib") == 0)
            alloc_kib_singleton = atol(argv[i + 1]);
    }
    if (sock == NULL || go == NULL || n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "usage: agent_thread_rss --socket PATH --go PATH [--threads 1..%d] "
                        "[--burn-ms M] [--alloc-kib K]\n", MAX_THREADS);
        return 1;
    }
    profagent_options_init(&o);
    o.socket_path = sock;
    if ((rc = profagent_start(&o)) < 0) {
        fprintf(stderr, "agent_thread_rss: profagent_start: %s\n", strerror(-rc));
        return 1;
    }
    for (int i = 0; i < 60000 && access(go, F_OK) != 0; i++)
        nap_ms(1);
    if (access(go, F_OK) != 0) {
        fprintf(stderr, "agent_thread_rss: %s did not appear in 60 s\n", go);
        return 1;
    }
    before = rss_kib();
    /* small stacks: what the threads themselves touch stays a few pages each */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (; made < n; made++) {
        if ((rc = pthread_create(&th[made], &attr, worker, (void *)(uintptr_t)made)) != 0) {
            fprintf(stderr, "agent_thread_rss: pthread_create #%d: %s\n", made, strerror(rc));
            ok = 0;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    for (int i = 0; i < 300000 && atomic_load(&done_singleton) < made; i++)
        nap_ms(1);
    if (atomic_load(&done_singleton) < made) {
        fprintf(stderr, "agent_thread_rss: only %d of %d threads finished in 300 s\n",
                atomic_load(&done_singleton), made);
        ok = 0;
    }
    after = rss_kib();
    printf("threads=%d rss_before_kib=%ld rss_after_kib=%ld per_thread_kib=%.1f\n", made, before,
           after, made > 0 ? (double)(after - before) / made : 0.0);
    fflush(stdout);
    for (int i = 0; end != NULL && i < 60000 && access(end, F_OK) != 0; i++)
        nap_ms(1);
    atomic_store(&release_singleton, 1);
    for (int i = 0; i < made; i++)
        pthread_join(th[i], NULL);
    profagent_stop();
    return ok ? 0 : 1;
}
