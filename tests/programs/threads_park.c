/* threads_park: a host for the thread-stack tests. It links libprofagent and relies on its
 * constructor (PROFAGENT_SOCKET). threads_spawn_parkers() starts:
 *   --threads K  threads named "park-<i>", parked in threads_park_here() (a read() on a pipe
 *                that never gets data);
 *   --masked M   threads named "masked-<i>" that block every signal, then park the same way
 *                in threads_park_masked();
 *   --busy B     threads named "busy-<i>" spinning in threads_busy_loop();
 * prints "ready <pid>" when all are in place, and lives --seconds S (default 60).
 * With --foreign-signal N it first installs a handler of its own on signal N (the agent must
 * leave it alone and say so).
 *   threads_park [--threads K] [--masked M] [--busy B] [--seconds S] [--foreign-signal N] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256

static int park_pipe[2];
static atomic_int parked;
static volatile unsigned long sink;

__attribute__((noinline)) void threads_park_here(void);
__attribute__((noinline)) void threads_park_here(void)
{
    char c;
    atomic_fetch_add(&parked, 1);
    for (;;) {
        ssize_t n = read(park_pipe[0], &c, 1);
        if (n < 0 && errno != EINTR)
            break;
    }
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
}

__attribute__((noinline)) void threads_park_masked(void);
__attribute__((noinline)) void threads_park_masked(void)
{
    sigset_t all;
    char c;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    atomic_fetch_add(&parked, 1);
    for (;;) {
        ssize_t n = read(park_pipe[0], &c, 1);
        if (n < 0 && errno != EINTR)
            break;
    }
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void threads_busy_loop(void);
__attribute__((noinline)) void threads_busy_loop(void)
{
    unsigned long x = 1;
    atomic_fetch_add(&parked, 1);
    for (;;) {
        for (int i = 0; i < 1000000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        sink = x;
    }
}

static void *park_main(void *arg)
{
    (void)arg;
    threads_park_here();
    return NULL;
}

static void *masked_main(void *arg)
{
    (void)arg;
    threads_park_masked();
    return NULL;
}

static void *busy_main(void *arg)
{
    (void)arg;
    threads_busy_loop();
    return NULL;
}

static int start(void *(*fn)(void *), const char *prefix, int i)
{
    pthread_t t;
    char name[16];
    int rc = pthread_create(&t, NULL, fn, NULL);

    if (rc != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        return -1;
    }
    /* a thread name holds 15 bytes: a longer one is cut, as the kernel would */
    if (snprintf(name, sizeof(name), "%s-%d", prefix, i) >= (int)sizeof(name))
        name[sizeof(name) - 1] = '\0';
    pthread_setname_np(t, name);
    pthread_detach(t);
    return 0;
}

__attribute__((noinline)) int threads_spawn_parkers(int k, int m, int b);
__attribute__((noinline)) int threads_spawn_parkers(int k, int m, int b)
{
    for (int i = 0; i < k; i++)
        if (start(park_main, "park", i) < 0)
            return -1;
    for (int i = 0; i < m; i++)
        if (start(masked_main, "masked", i) < 0)
            return -1;
    for (int i = 0; i < b; i++)
        if (start(busy_main, "busy", i) < 0)
            return -1;
    return 0;
}

static void foreign_handler(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    int k = 4, m = 0, b = 0, seconds = 60;
    struct timespec end, now, ts = {0, 10000000};

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            k = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--masked") == 0)
            m = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--busy") == 0)
            b = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--foreign-signal") == 0)
            signal(atoi(argv[i + 1]), foreign_handler);
    }
    if (k < 0 || m < 0 || b < 0 || k + m + b > MAX_THREADS) {
        fprintf(stderr, "at most %d threads\n", MAX_THREADS);
        return 2;
    }
    if (pipe(park_pipe) < 0) {
        perror("pipe");
        return 1;
    }
    if (threads_spawn_parkers(k, m, b) < 0)
        return 1;
    while (atomic_load(&parked) < k + m + b)
        nanosleep(&ts, NULL);
    usleep(50000); /* let the last ones enter read() */
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += seconds;
    do {
        nanosleep(&ts, NULL); /* may end early on a profiling signal: the loop re-checks */
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec < end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
    printf("done\n");
    return 0;
}
