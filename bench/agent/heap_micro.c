/* heap_micro: malloc/free cost, for bench/agent/heap_overhead.sh. One thread keeps 64 blocks
 * and replaces a random one per step (free + malloc of 16..4015 bytes), N steps (argv[1],
 * default 10 million); prints the thread CPU nanoseconds per step. Run it with libprofagent
 * LD_PRELOADed and PROFAGENT_MEM_RATE=524288 or 0 to see what the hooks add per call pair. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000L;
    void *keep[64] = {0};
    uint64_t x = 88172645463325252ULL;
    double t0, t1;

    if (n <= 0 || n > 1000000000L)
        return 2;
    t0 = cpu_ns();
    for (long i = 0; i < n; i++) {
        size_t k;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = x % 64;
        free(keep[k]);
        keep[k] = malloc(16 + (x >> 40) % 4000);
        if (keep[k] == NULL)
            return 1;
    }
    t1 = cpu_ns();
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    printf("%.2f\n", (t1 - t0) / (double)n);
    return 0;
}
