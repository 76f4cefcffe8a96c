/* cpu_sig_micro: what one CPU-profile sample costs, for bench/agent/overhead.sh. Under
 * valgrind SIGPROF sampling does not behave as on the CPU (the timers run on valgrind's CPU
 * time), so the cost of CPU profiling at 100 Hz is measured from its parts instead:
 *   delivery+handler  raise(SIGPROF) with a profile running: the kernel's signal delivery and
 *                     sigreturn plus the agent's handler (pa_cpu_sig.c: reserve a ring slot,
 *                     unwind DEPTH frames with libunwind, commit);
 *   delivery only     raise(SIGPROF) after pa_cpu_stop (the handler stays installed and finds
 *                     no ring: the kernel's part and an empty handler);
 *   handler direct    pa__cpu_on_sigprof called on a getcontext() ucontext, no signal (no
 *                     signal frame either, so the handler's cached walk finds no interrupted
 *                     frame and it takes the unw_step walk: this times that fallback);
 *   drain             the agent thread's part: pa_cpu_drain of the ring into a stack table,
 *                     per sample.
 * Each is timed with the thread's CPU clock over N samples (argv[1], default 200000) taken at
 * a stack DEPTH (argv[2], default 24) of real frames. WALK (argv[3]): "trace" (default) lets
 * the handler use its cached walk (unw_backtrace) where the agent's probe allows it, "steps"
 * keeps it to the unw_step walk, for a before/after in one binary. The fraction of a core that
 * profiling at HZ takes is then (delivery+handler + drain) * HZ per busy thread. Prints one line:
 *   depth=D n=N walk=W deliver_handler_ns=.. deliver_only_ns=.. handler_direct_ns=.. drain_ns=..
 * Built by overhead.sh against libprofagent.a (private headers); PROFAGENT_SOCKET must be
 * unset, PROFAGENT_MEM_RATE=0 keeps the heap hooks out of the figures. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "pa_cpu.h"
#include "pa_stacktab.h"

#define DRAIN_EVERY 1000 /* well under the ring's PA_CPU_RING_SLOTS */

typedef enum { MODE_RAISE, MODE_DIRECT } mode_t_;

static pa_stacktab_t *tab_singleton;
static double drain_ns_singleton;

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* the handler on this frame's context, as a signal landing here would see it (own frame:
 * getcontext returns twice, which must not clobber the loop's locals) */
static __attribute__((noinline)) void direct_sample(void)
{
    ucontext_t uc;

    if (getcontext(&uc) == 0)
        pa__cpu_on_sigprof(SIGPROF, NULL, &uc);
}

/* n samples from here; the drains' CPU time goes to drain_ns_singleton, not to the result */
static __attribute__((noinline)) double sample_loop(mode_t_ mode, long n)
{
    double spent = 0, t0 = cpu_ns();

    for (long i = 0; i < n; i++) {
        if (mode == MODE_RAISE) {
            raise(SIGPROF);
        } else {
            direct_sample();
        }
        if ((i + 1) % DRAIN_EVERY == 0 && pa_cpu_running()) {
            double d0 = cpu_ns(), d1;
            pa_cpu_drain(tab_singleton);
            d1 = cpu_ns();
            drain_ns_singleton += d1 - d0;
            spent -= d1 - d0;
        }
    }
    spent += cpu_ns() - t0;
    if (pa_cpu_running())
        pa_cpu_drain(tab_singleton);
    return spent;
}

/* DEPTH real frames (noinline, with a use after the call so no tail call folds them) */
static __attribute__((noinline)) double descend(int depth, mode_t_ mode, long n)
{
    volatile int pad = depth;
    double r;

    if (depth <= 1)
        return sample_loop(mode, n);
    r = descend(depth - 1, mode, n);
    return r + pad * 0.0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000L;
    int depth = argc > 2 ? atoi(argv[2]) : 24;
    const char *walk = argc > 3 ? argv[3] : "trace";
    double raise_ns, direct_ns, only_ns;
    long drained_samples;
    int err;

    if (n < DRAIN_EVERY || n > 100000000L || depth < 1 || depth > 100 ||
        (strcmp(walk, "trace") != 0 && strcmp(walk, "steps") != 0)) {
        fprintf(stderr, "usage: cpu_sig_micro [N >= %d] [DEPTH 1..100] [trace|steps]\n",
                DRAIN_EVERY);
        return 2;
    }
    if (getenv("PROFAGENT_SOCKET") != NULL) {
        fprintf(stderr, "cpu_sig_micro: unset PROFAGENT_SOCKET (the agent would profile too)\n");
        return 2;
    }
    if ((err = pa_stacktab_new(2, 1024, &tab_singleton)) < 0) {
        fprintf(stderr, "cpu_sig_micro: pa_stacktab_new: %d\n", err);
        return 1;
    }
    /* 1 Hz: the ring is there for the handler, the timer itself hardly ever fires */
    if ((err = pa_cpu_start(1)) < 0) {
        fprintf(stderr, "cpu_sig_micro: pa_cpu_start: %s\n", pa_cpu_strerror(err));
        return 1;
    }
    pa__cpu_use_trace(strcmp(walk, "trace") == 0);
    if (strcmp(walk, "trace") == 0 && !atomic_load(&pa__cpu_trace_ok))
        walk = "steps(probe)";          /* the agent's probe refused the cached walk here */
    descend(depth, MODE_RAISE, n / 10); /* warm-up: libunwind's per-thread cache, page faults */
    drain_ns_singleton = 0;
    raise_ns = descend(depth, MODE_RAISE, n);
    drained_samples = n;
    direct_ns = descend(depth, MODE_DIRECT, n);
    drained_samples += n;
    pa_cpu_stop(tab_singleton, NULL);
    only_ns = descend(depth, MODE_RAISE, n);
    if (pa_stacktab_count(tab_singleton) == 0) {
        fprintf(stderr, "cpu_sig_micro: no sample reached the stack table\n");
        return 1;
    }
    printf("depth=%d n=%ld walk=%s deliver_handler_ns=%.1f deliver_only_ns=%.1f "
           "handler_direct_ns=%.1f "
           "drain_ns=%.1f stacks=%zu\n",
           depth, n, walk, raise_ns / (double)n, only_ns / (double)n, direct_ns / (double)n,
           drain_ns_singleton / (double)drained_samples, pa_stacktab_count(tab_singleton));
    pa_stacktab_free(tab_singleton);
    return 0;
}
