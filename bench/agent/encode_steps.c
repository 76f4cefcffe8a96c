/* encode_steps: how long the agent thread goes between two fork points while it encodes a
 * profile (pa_pprof_encode: samples, locations and symbols, pack, gzip), which bounds how long
 * a host's fork() waits for it (the fork gate, agent-lib/pa_agent.c), apart from scheduling.
 * This thread takes the agent thread's part (pa__agent_fork_points_on), so every fork point
 * calls back here, and the thread CPU time between consecutive calls is one step.
 *   encode_steps [STACKS] [DEPTH] [ROUNDS]   (defaults 4096 24 20)
 * A table of STACKS distinct stacks of DEPTH frames (addresses inside this program's
 * functions, so symbolization does real lookups), encoded gzipped ROUNDS times. Prints one line:
 *   stacks=S depth=D raw_bytes=R gz_bytes=G encode_ms=.. points=.. step_p50_us=.. step_p99_us=..
 *   step_max_us=..
 * (medians over the rounds of each round's total, count, and of its step median, p99 and max).
 * Build against libprofagent.a (private headers), as bench/agent/overhead.sh builds
 * cpu_sig_micro.c; to measure another pa_pprof.c, put its object before the archive. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pa_agent.h"
#include "pa_pprof.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"

#define MAX_STEPS 1000000

static double steps_singleton[MAX_STEPS];
static size_t nsteps_singleton;
static double last_ns_singleton;

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void on_fork_point(void)
{
    double now = cpu_ns();
    if (nsteps_singleton < MAX_STEPS)
        steps_singleton[nsteps_singleton++] = now - last_ns_singleton;
    last_ns_singleton = now;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n ? v[n / 2] : 0;
}

int main(int argc, char **argv);

/* code addresses to build stacks from: the functions of this program */
static void *const code_singleton[] = {(void *)cpu_ns, (void *)on_fork_point, (void *)cmp_double,
                                       (void *)median, (void *)main};

int main(int argc, char **argv)
{
    long nstacks = argc > 1 ? atol(argv[1]) : 4096;
    int depth = argc > 2 ? atoi(argv[2]) : 24;
    int rounds = argc > 3 ? atoi(argv[3]) : 20;
    static const pa_pprof_vt_t types[] = {{"alloc_objects", "count"}, {"alloc_space", "bytes"}};
    pa_pprof_desc_t d = {.sample_types = types,
                         .nsample_types = 2,
                         .period_type = {"space", "bytes"},
                         .period = 524288};
    double total[100], points[100], p50[100], p99[100], pmax[100];
    uintptr_t pcs[PA_MAX_FRAMES];
    int64_t v[2] = {1, 4096};
    size_t rawlen = 0, gzlen = 0;
    pa_stacktab_t *t;
    int err;

    if (nstacks < 1 || nstacks > 1000000 || depth < 2 || depth > PA_MAX_FRAMES || rounds < 1 ||
        rounds > 100) {
        fprintf(stderr, "usage: encode_steps [STACKS 1..1000000] [DEPTH 2..%d] [ROUNDS 1..100]\n",
                PA_MAX_FRAMES);
        return 2;
    }
    if ((err = pa_stacktab_new(2, (size_t)nstacks, &t)) < 0) {
        fprintf(stderr, "encode_steps: pa_stacktab_new: %d\n", err);
        return 1;
    }
    for (long i = 0; i < nstacks; i++) {
        for (int f = 0; f < depth; f++) {
            uintptr_t base = (uintptr_t)code_singleton[(size_t)(i >> f) % 5];
            pcs[f] = base + 1 + (uintptr_t)((i * 7 + f) % 40);
        }
        pcs[depth - 1] = (uintptr_t)main + 41 + (uintptr_t)i % 200000; /* distinct roots */
        pcs[depth - 2] = (uintptr_t)main + 2 + (uintptr_t)(i / 200000);
        if (pa_stacktab_add(t, pcs, (uint32_t)depth, v) < 0) {
            fprintf(stderr, "encode_steps: stack table full at %ld\n", i);
            return 1;
        }
    }
    pa__agent_fork_points_on(on_fork_point);
    for (int r = 0; r < rounds; r++) {
        pa_symtab_t *sym;
        uint8_t *out;
        double t0;

        if ((err = pa_symtab_new(&sym)) < 0) {
            fprintf(stderr, "encode_steps: pa_symtab_new: %d\n", err);
            return 1;
        }
        nsteps_singleton = 0;
        t0 = last_ns_singleton = cpu_ns();
        if ((err = pa_pprof_encode(&d, t, sym, 1, &out, &gzlen)) < 0) {
            fprintf(stderr, "encode_steps: pa_pprof_encode: %d\n", err);
            return 1;
        }
        on_fork_point(); /* the step after the last point */
        total[r] = cpu_ns() - t0;
        points[r] = (double)nsteps_singleton;
        qsort(steps_singleton, nsteps_singleton, sizeof(double), cmp_double);
        p50[r] = steps_singleton[nsteps_singleton / 2];
        p99[r] = steps_singleton[nsteps_singleton * 99 / 100];
        pmax[r] = steps_singleton[nsteps_singleton - 1];
        free(out);
        if (r == 0) {
            if (pa_pprof_encode(&d, t, sym, 0, &out, &rawlen) == 0)
                free(out);
        }
        pa_symtab_free(sym);
    }
    printf("stacks=%ld depth=%d raw_bytes=%zu gz_bytes=%zu encode_ms=%.2f points=%.0f "
           "step_p50_us=%.1f step_p99_us=%.1f step_max_us=%.1f\n",
           nstacks, depth, rawlen, gzlen, median(total, (size_t)rounds) / 1e6,
           median(points, (size_t)rounds), median(p50, (size_t)rounds) / 1e3,
           median(p99, (size_t)rounds) / 1e3, median(pmax, (size_t)rounds) / 1e3);
    pa_stacktab_free(t);
    return 0;
}
