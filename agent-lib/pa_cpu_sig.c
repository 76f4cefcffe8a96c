/* pa_cpu_sig: the SIGPROF handler of the CPU sampler. It runs in signal context, on whichever
 * thread the kernel picked, possibly while that thread holds malloc's or the loader's locks.
 *
 * It may call only: errno save/restore; C11 atomics on lock-free types; clock_gettime and
 *   gettid (plain system calls); the inline unwinder of pa_sig_unwind.h (local libunwind,
 *   with the caching policy and lazy set-up done at start by pa_cpu_init, and the inline
 *   loader checks of pa_loader_hook.h); the inline, lock-free ring functions of pa_ring.h;
 *   reads of the ucontext.
 *   The unwinder is unw_backtrace (pa_sig_unwind_trace: frame kinds cached per address, no
 *   system call per frame; ~0.3 us a frame less than the unw_step walk) when pa_cpu_init found
 *   its per-thread set-up allocation-free (pa__cpu_trace_ok), which the handler then does on a
 *   thread's first sample: libunwind mmaps the thread's 256 KiB address cache under its pool
 *   lock (taken with every signal blocked, so never held by the code a signal interrupts) and
 *   stores it in its static TLS and under its pthread key (below 32: no allocation). Else, and
 *   when the trace cannot find the interrupted frame, the unw_step walk from the ucontext.
 *   Nor when the signal interrupted libunwind's own code: the host may be inside its own
 *   unw_backtrace on this thread's cache. (A host call to libunwind's unw_backtrace
 *   interrupted in a function libunwind called, on a thread whose cache then has to grow in
 *   the handler, is not caught: the cache grows past 8,192 distinct addresses, rarely.)
 *   Nor on a thread that holds none of the PROFAGENT_UNWIND_CACHES trace-cache slots
 *   (pa_unwcache.h's inline pa_unwcache_take: atomics, TLS, and pthread_setspecific on a key
 *   below 32 when it takes a free one): each 256 KiB, kept until the thread exits.
 *   Not under TSan: there the walk stays, as in pa_lock_hook.c (unw_backtrace's per-thread
 *   cache has a TSD destructor that runs after TSan has torn the exiting thread down), and TSan
 *   runs handlers from its own dispatcher, not from the signal trampoline the trace looks for.
 * It must not: allocate (malloc, stdio, snprintf, strerror, dlsym, lazily allocated TLS), take
 *   any lock of ours, log, or call functions in other agent files.
 *
 * Shape: save errno; count ourselves in-flight so that pa_cpu_stop can wait for us before
 * freeing the ring; re-entrancy guard (initial-exec TLS, shared by every sampler: a signal
 * landing inside another sampler's unwinder counts a lost sample instead); reserve a slot
 * (full: the ring counts the drop); unwind into it unless a thread is inside the loader, in
 * which case the stack is [interrupted pc, in dynamic loader]; publish; restore errno. */
#include "pa_cpu.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "pa_pprof.h"
#include "pa_sig_unwind.h"
#include "pa_unwcache.h"

_Atomic(pa_ring_t *) pa__cpu_ring;
_Atomic int pa__cpu_inflight;
_Atomic int pa__cpu_trace_ok;
_Atomic uintptr_t pa__cpu_unw_text_lo, pa__cpu_unw_text_hi;
__thread int pa__sampler_guard __attribute__((tls_model("initial-exec")));

void pa__cpu_on_sigprof(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    pa_ring_t *ring;
    pa_ring_slot_t *slot;

    (void)sig;
    atomic_fetch_add(&pa__cpu_inflight, 1);
    ring = atomic_load(&pa__cpu_ring);
    if (ring == NULL) {
        /* no profile (a late signal after stop): nothing to do */
    } else if (pa__sampler_guard) {
        /* this thread is inside another sampler (its unwinder): not unwound, but counted, so
         * the profile's [lost samples] still accounts for the CPU time */
        pa_ring_count_drop(ring);
    } else {
        pa__sampler_guard = 1;
        if ((slot = pa_ring_reserve(ring)) != NULL) {
            struct timespec now;
            uintptr_t restorer = 0;
#if !defined(__SANITIZE_THREAD__)
            /* where the handler returns to: the kernel's sa_restorer trampoline; not when the
             * host itself was inside libunwind (its own unw_backtrace may be mid-way through
             * this thread's address cache, which the cached walk would then change) */
            uintptr_t pc = pa_sig_interrupted_pc(ucv);
            if (atomic_load_explicit(&pa__cpu_trace_ok, memory_order_acquire) &&
                pc - atomic_load_explicit(&pa__cpu_unw_text_lo, memory_order_relaxed) >=
                    atomic_load_explicit(&pa__cpu_unw_text_hi, memory_order_relaxed) -
                        atomic_load_explicit(&pa__cpu_unw_text_lo, memory_order_relaxed) &&
                pa_unwcache_take())
                restorer = (uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0));
#endif
            clock_gettime(CLOCK_MONOTONIC, &now);
            slot->npcs = pa_sig_unwind(slot->pcs, PA_RING_MAX_FRAMES, ucv, 0, restorer);
            /* a per-thread timer that expired again before its signal was taken (the thread
             * ran in slices shorter than the kernel's tick) counts the expiries it folded */
            slot->tag = si != NULL && si->si_code == SI_TIMER && si->si_overrun > 0
                            ? (uint32_t)(si->si_overrun < 1000 ? si->si_overrun : 1000)
                            : 0;
            /* for the trace timeline (pa_cpu.h): when, and on which thread */
            slot->values[0] = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
            slot->values[1] = gettid();
            pa_ring_commit(slot);
        }
        pa__sampler_guard = 0;
    }
    atomic_fetch_sub(&pa__cpu_inflight, 1);
    errno = saved_errno;
}
