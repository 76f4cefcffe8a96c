/* agent_heap_live: a workload for integration.agent_heap. Linked with libprofagent (the agent
 * starts from PROFAGENT_SOCKET); reads commands on stdin, one per line, and answers each on
 * stdout when it is done:
 *   alloc N    allocate N MiB in pieces of 4 KiB..1 MiB (log-uniform, fixed seed) from
 *              heap_live_alloc and keep them live -> "allocated BYTES"
 *   free       free everything allocated so far -> "freed BYTES"
 *   small N    allocate N blocks of 16 bytes from heap_small and keep them live (N at most
 *              1 million; freed by "free") -> "small N"
 *   churn S    4 threads allocate and free small blocks from heap_churn for S seconds
 *              (at most 60), then exit -> "churned"
 *   forkchurn S the same, while this thread forks children that allocate, free and exit,
 *              one after another -> "forkchurned forks=N bad=M" (M: children that did not
 *              exit 0)
 *   quit       exit 0
 * Bounded: at most 1 GiB live; EOF on stdin exits. */
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LIVE_MIB 1024
#define MAX_BLOCKS (MAX_LIVE_MIB * 256)

#define MAX_SMALL 1000000

static void *blocks[MAX_BLOCKS];
static size_t nblocks, live_bytes;
static void *small[MAX_SMALL];
static size_t nsmall;
static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

void *heap_live_alloc(size_t n) __attribute__((noinline));
void *heap_live_alloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        memset(p, 0x5a, n); /* resident, not just reserved */
    return p;
}

void *heap_churn(size_t n) __attribute__((noinline));
void *heap_churn(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: keep this frame */
    return p;
}

void *heap_small(void) __attribute__((noinline));
void *heap_small(void)
{
    void *p = malloc(16);
    __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: keep this frame */
    return p;
}

static int alloc_mib(size_t mib)
{
    size_t want = mib << 20, got = 0;

    if (live_bytes / (1 << 20) + mib > MAX_LIVE_MIB)
        return -1;
    while (got < want && nblocks < MAX_BLOCKS) {
        uint64_t x = next();
        size_t sz = ((size_t)4096 << (x % 8)) + (size_t)(x >> 8) % ((size_t)4096 << (x % 8));
        if (got + sz > want)
            sz = want - got;
        blocks[nblocks] = heap_live_alloc(sz);
        if (blocks[nblocks] == NULL)
            return -1;
        nblocks++;
        got += sz;
    }
    live_bytes += got;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *churn(void *arg)
{
    double until = *(double *)arg;
    void *keep[64] = {0};
    uint64_t x = (uintptr_t)&keep | 1;

    while (now_s() < until) {
        for (int i = 0; i < 1000; i++) {
            size_t k;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            k = x % 64;
            free(keep[k]);
            keep[k] = heap_churn(16 + (x >> 32) % 2000);
        }
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return NULL;
}

int main(void)
{
    char line[128];

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    while (fgets(line, sizeof(line), stdin) != NULL) {
        long n = 0;
        if (sscanf(line, "alloc %ld", &n) == 1 && n > 0) {
            if (alloc_mib((size_t)n) < 0) {
                printf("alloc failed\n");
                continue;
            }
            printf("allocated %zu\n", live_bytes);
        } else if (sscanf(line, "small %ld", &n) == 1 && n > 0 && n <= MAX_SMALL) {
            while (nsmall < (size_t)n && (small[nsmall] = heap_small()) != NULL)
                nsmall++;
            printf("small %zu\n", nsmall);
        } else if (strncmp(line, "free", 4) == 0) {
            size_t freed = live_bytes;
            for (size_t i = 0; i < nblocks; i++)
                free(blocks[i]);
            for (size_t i = 0; i < nsmall; i++)
                free(small[i]);
            nsmall = 0;
            nblocks = 0;
            live_bytes = 0;
            printf("freed %zu\n", freed);
        } else if (sscanf(line, "forkchurn %ld", &n) == 1 && n > 0 && n <= 60) {
            pthread_t th[4];
            double until = now_s() + (double)n;
            long forks = 0, bad = 0;
            for (int i = 0; i < 4; i++)
                pthread_create(&th[i], NULL, churn, &until);
            while (now_s() < until) {
                int st;
                pid_t pid = fork();
                if (pid == 0) {
                    void *p = heap_churn(1000);
                    free(p);
                    _exit(p != NULL ? 0 : 1);
                }
                if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
                    WEXITSTATUS(st) != 0)
                    bad++;
                forks++;
            }
            for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
            printf("forkchurned forks=%ld bad=%ld\n", forks, bad);
        } else if (sscanf(line, "churn %ld", &n) == 1 && n > 0 && n <= 60) {
            pthread_t th[4];
            double until = now_s() + (double)n;
            for (int i = 0; i < 4; i++)
                pthread_create(&th[i], NULL, churn, &until);
            for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
            printf("churned\n");
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            printf("unknown command\n");
        }
    }
    for (size_t i = 0; i < nblocks; i++)
        free(blocks[i]);
    for (size_t i = 0; i < nsmall; i++)
        free(small[i]);
    return 0;
}
