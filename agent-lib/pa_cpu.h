/* pa_cpu: the CPU sampler, control side. Installs the SIGPROF handler (pa_cpu_sig.c) once,
 * arms a profiling timer at the requested rate (one CPU-time timer per thread, as Go since
 * 1.18, so N busy threads each get their share; process-wide ITIMER_PROF if the kernel refuses
 * per-thread timers), drains the handler's ring into a stack table
 * (values: samples/count, cpu/nanoseconds), and stops. One CPU profile at a time per process,
 * as Go's runtime/pprof.StartCPUProfile.
 * Owns: the ring while a profile runs (freed by pa_cpu_stop). The caller owns the stack table.
 * Threads: one thread at a time (the agent thread). Not async-signal-safe.
 * Environment: PROFAGENT_CPU_TIMER=process uses ITIMER_PROF even where per-thread timers work
 *   (read at each start; for comparisons). The profile's comments name the timer in use.
 * Errors: negative errno; -EBUSY a profile is already running; -EEXIST SIGPROF has another
 *   handler (left alone); -ENOTSUP CPU profiling is turned off (hz 0). */
#ifndef PA_CPU_H
#define PA_CPU_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pa_ring.h"
#include "pa_stacktab.h"

#define PA_CPU_RING_SLOTS 2048 /* 20 s of one busy thread at 100 Hz between drains */
#define PA_CPU_MAX_HZ 1000
#define PA_CPU_MAX_THREADS 4096 /* threads with a timer at once; more are counted, unsampled */

/* Prepare libunwind (caching policy, one warm-up unwind so its lazy set-up never runs inside a
 * handler) and the loader hook. Idempotent; called at agent start. */
int pa_cpu_init(void);

/* Start sampling at hz (1..PA_CPU_MAX_HZ). */
int pa_cpu_start(int hz);
int pa_cpu_running(void);
int64_t pa_cpu_period_ns(void);

/* Move the samples recorded so far into t (nvalues 2): each adds {1, period}. Returns the
 * number of samples moved. */
size_t pa_cpu_drain(pa_stacktab_t *t);

/* For a timeline (pa_trace): pass the raw ring slots recorded so far to fn (slot layout at
 * pa__cpu_ring below), in ring order. Returns the number of slots. */
size_t pa_cpu_drain_slots(pa_ring_drain_fn fn, void *arg);
/* pa_cpu_stop for pa_cpu_drain_slots' users: the slots left go to fn; *lost gets the signals
 * not recorded (ring full, or inside another sampler). */
void pa_cpu_stop_slots(pa_ring_drain_fn fn, void *arg, uint64_t *lost);

/* Stop the timer, wait for handlers still running, drain what is left into t (may be NULL to
 * discard), add the lost samples (ring full) as one [lost samples] stack, free the ring.
 * *lost, if not NULL, gets their count. No-op when no profile runs. */
void pa_cpu_stop(pa_stacktab_t *t, uint64_t *lost);

/* The real pthread_create returned rc for *th created with attr (called by the interposed
 * pthread_create in the creating thread, any time): when rc is 0 and a per-thread profile
 * runs, give the new thread its timer now rather than at the next drain (threads created
 * detached are left to that rescan: their pthread_t may already be invalid). Returns rc.
 * Cheap (one atomic load) when no profile runs. Not async-signal-safe. */
int pa_cpu_thread_created(int rc, const pthread_t *th, const pthread_attr_t *attr);

/* For the profile's comments: which timer the last profile used, into buf (snprintf's
 * result); *uncovered gets the threads that got no timer (table full, timer_create failed). */
int pa_cpu_timer_describe(char *buf, size_t len, uint64_t *uncovered);

/* The message after "Could not enable CPU profiling: " for an error of pa_cpu_start. */
const char *pa_cpu_strerror(int err);

/* Forget a profile inherited across fork (the child has no timer; its ring is leaked). */
void pa_cpu_atfork_child(void);

/* --- internals shared with pa_cpu_sig.c --- */
/* The ring the handler writes to; NULL when no profile runs. pa_cpu.c changes it only with
 * the timer disarmed, or before arming it. Each slot: pcs (leaf first), values[0] the
 * CLOCK_MONOTONIC time of the signal in ns, values[1] the tid it landed on; tag the timer's
 * overrun (expiries folded into this signal, counted as samples of the same stack). */
extern _Atomic(pa_ring_t *) pa__cpu_ring;
/* Handlers between their entry and their last access to the ring. */
extern _Atomic int pa__cpu_inflight;
/* Nonzero when the handler may unwind with unw_backtrace (pa_sig_unwind_trace): set by
 * pa_cpu_init when a probe thread saw that libunwind's per-thread trace cache set-up needs no
 * allocation (its TLS is static, its pthread key below 32). Never set under TSan. */
extern _Atomic int pa__cpu_trace_ok;
/* libunwind's code, [lo, hi): a signal that interrupts it walks with unw_step (pa_cpu_sig.c).
 * Set before pa__cpu_trace_ok. */
extern _Atomic uintptr_t pa__cpu_unw_text_lo, pa__cpu_unw_text_hi;
/* Nonzero while this thread is inside one of the agent's samplers (initial-exec TLS): a
 * sampler that finds it set returns at once, so no sampler ever samples another (or itself). */
extern __thread int pa__sampler_guard __attribute__((tls_model("initial-exec")));

void pa__cpu_on_sigprof(int sig, siginfo_t *si, void *uc);
/* Tests: ring size of the next profiles (0 restores PA_CPU_RING_SLOTS). */
void pa__cpu_set_ring_slots(size_t n);
/* Tests: use ITIMER_PROF even where per-thread timers work (the fallback path). */
void pa__cpu_force_itimer(int on);
/* Tests: turn the handler's cached walk off (0) or back to what pa_cpu_init found (1). */
void pa__cpu_use_trace(int on);
/* Tests: per-thread timers alive now. */
size_t pa__cpu_timers(void);

#endif
