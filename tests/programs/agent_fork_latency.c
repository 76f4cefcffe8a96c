/* agent_fork_latency: a host that forks while its agent serves profiles: how long fork()
 * waits for the agent (its fork gate, pa_agent.c), and whether every child can still use what
 * a lock held at the fork would block. The agent comes from PROFAGENT_SOCKET.
 *   agent_fork_latency SECONDS INTERVAL_MS STACKS BURNERS
 * Keeps one live allocation at each of STACKS distinct stacks (at most 8192; with
 * PROFAGENT_MEM_RATE=1 every one is sampled, so /heap has STACKS records to symbolize and
 * encode), runs BURNERS threads that burn CPU (so a CPU profile has samples), and forks from the
 * main thread every INTERVAL_MS for SECONDS. Each child allocates and frees blocks of every
 * power-of-two size up to 1 MiB, asks the loader (dladdr) and stdio (fopen) something, and
 * exits 0; one that has not exited within CHILD_WAIT_S is killed and counted as hung. Prints
 * "ready" when set up, then at the end, for the parent's fork() calls: count, median, p99 and
 * max in milliseconds, how many took over 10 ms, the 5 slowest with their start time (ms since
 * the first fork), and "children hung H failed F". Exit status 0 when every child exited 0. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "profagent.h"

#define NOIPA __attribute__((noipa))
#define NOTAIL(v) __asm__ volatile("" : : "r"(v) : "memory")
#define MAX_STACKS 8192
#define MAX_FORKS 100000
#define CHILD_WAIT_S 10

static _Atomic int stop;
static volatile uint64_t sink;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Distinct stacks: step goes through left or right for each bit of bits, depth times, so
 * each value of bits below 2^depth allocates under its own chain of return addresses. */
NOIPA static void *step(unsigned bits, int depth);

NOIPA static void *left(unsigned bits, int depth)
{
    void *p = step(bits, depth);
    NOTAIL(p);
    return p;
}

NOIPA static void *right(unsigned bits, int depth)
{
    void *p = step(bits, depth);
    NOTAIL(p);
    return p;
}

NOIPA static void *step(unsigned bits, int depth)
{
    void *p;

    if (depth == 0)
        p = malloc(64);
    else if (bits & 1)
        p = left(bits >> 1, depth - 1);
    else
        p = right(bits >> 1, depth - 1);
    NOTAIL(p);
    return p;
}

NOIPA static uint64_t burn_a(uint64_t x)
{
    for (int i = 0; i < 100000; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

NOIPA static uint64_t burn_b(uint64_t x)
{
    for (int i = 0; i < 100000; i++)
        x ^= x << 7, x ^= x >> 9;
    return x;
}

static void *burner(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg + 1;

    while (!atomic_load(&stop))
        x = burn_b(burn_a(x));
    sink = x;
    return NULL;
}

/* In the child: what an allocator, loader or stdio lock inherited held would block. */
static int child_work(void)
{
    Dl_info info;
    FILE *f;

    for (size_t n = 16; n <= (1u << 20); n *= 2) {
        char *p = malloc(n);
        if (p == NULL)
            return 1;
        p[0] = p[n - 1] = 1;
        free(p);
    }
    if (dladdr((void *)child_work, &info) == 0)
        return 2;
    f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 3;
    fclose(f);
    return 0;
}

/* Reap pid: 0 when it exited 0, 1 when it failed, 2 when it hung (then killed). */
static int reap(pid_t pid)
{
    struct timespec ms = {0, 1000000};
    int status;

    for (int i = 0; i < CHILD_WAIT_S * 1000; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
        if (r < 0)
            return 1;
        nanosleep(&ms, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 2;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct fork_time {
    int64_t dur, at;
} fork_time_t;

static int cmp_dur_desc(const void *a, const void *b)
{
    int64_t x = ((const fork_time_t *)a)->dur, y = ((const fork_time_t *)b)->dur;
    return (x < y) - (x > y);
}

int main(int argc, char **argv)
{
    static void *live[MAX_STACKS];
    static fork_time_t t[MAX_FORKS];
    static int64_t d[MAX_FORKS];
    pthread_t th[64];
    int seconds, interval_ms, stacks, burners, depth = 0;
    int64_t start, end;
    size_t n = 0, over10 = 0, hung = 0, failed = 0;

    if (argc != 5) {
        fprintf(stderr, "usage: agent_fork_latency SECONDS INTERVAL_MS STACKS BURNERS\n");
        return 2;
    }
    seconds = atoi(argv[1]);
    interval_ms = atoi(argv[2]);
    stacks = atoi(argv[3]);
    burners = atoi(argv[4]);
    if (seconds < 1 || interval_ms < 1 || stacks < 0 || stacks > MAX_STACKS || burners < 0 ||
        burners > 64)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((1 << depth) < stacks)
        depth++;
    for (int i = 0; i < stacks; i++)
        live[i] = step((unsigned)i, depth);
    for (int i = 0; i < burners; i++)
        if (pthread_create(&th[i], NULL, burner, (void *)(uintptr_t)i) != 0)
            return 1;
    printf("ready: agent %s, %d stacks, %d burners\n",
           profagent_socket_path() ? profagent_socket_path() : "(none)", stacks, burners);
    start = now_ns();
    end = start + (int64_t)seconds * 1000000000LL;
    while (n < MAX_FORKS && now_ns() < end) {
        struct timespec gap = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        int64_t t0 = now_ns();
        pid_t pid = fork();
        int64_t t1 = now_ns();

        if (pid == 0)
            _exit(child_work());
        if (pid < 0)
            return 1;
        t[n].dur = t1 - t0;
        t[n].at = t0 - start;
        d[n] = t1 - t0;
        n++;
        switch (reap(pid)) {
        case 1:
            failed++;
            break;
        case 2:
            hung++;
            break;
        }
        nanosleep(&gap, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < burners; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < stacks; i++)
        free(live[i]);
    if (n == 0)
        return 1;
    qsort(d, n, sizeof(*d), cmp_i64);
    for (size_t i = 0; i < n; i++)
        over10 += d[i] > 10000000;
    printf("forks %zu median_ms %.3f p99_ms %.3f max_ms %.3f over_10ms %zu\n", n, d[n / 2] / 1e6,
           d[(n * 99) / 100] / 1e6, d[n - 1] / 1e6, over10);
    qsort(t, n, sizeof(*t), cmp_dur_desc);
    for (size_t i = 0; i < n && i < 5; i++)
        printf("slow %zu: %.3f ms at +%.0f ms\n", i + 1, t[i].dur / 1e6, t[i].at / 1e6);
    printf("children hung %zu failed %zu\n", hung, failed);
    return hung == 0 && failed == 0 ? 0 : 1;
}
