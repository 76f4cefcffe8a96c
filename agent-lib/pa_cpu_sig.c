/* pa_cpu_sig: the SIGPROF handler of the CPU sampler. It runs in signal context, on whichever
 * thread the kernel picked, possibly while that thread holds malloc's or the loader's locks.
 *
 * It may call only: errno save/restore; C11 atomics on lock-free types; clock_gettime and
 *   gettid (plain system calls); local libunwind
 *   (unw_init_local2/unw_getcontext/unw_init_local, unw_step, unw_get_reg), with the caching
 *   policy and lazy set-up done at start by pa_cpu_init; the inline, lock-free ring functions
 *   of pa_ring.h; the inline loader checks of pa_loader_hook.h; reads of the ucontext.
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
#include <ucontext.h>
#include <unistd.h>

#include <libunwind.h>

#include "pa_loader_hook.h"
#include "pa_pprof.h"

_Atomic(pa_ring_t *) pa__cpu_ring;
_Atomic int pa__cpu_inflight;
__thread int pa__sampler_guard __attribute__((tls_model("initial-exec")));

static uintptr_t interrupted_pc(const void *ucv)
{
#if defined(__x86_64__)
    const ucontext_t *uc = ucv;
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    const ucontext_t *uc = ucv;
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)ucv;
    return PA_PC_UNWIND_FAIL;
#endif
}

/* Start the cursor at the interrupted frame, so pcs[0] is the exact pc (pa_stacktab.h). */
static int init_cursor(unw_cursor_t *c, void *ucv, unw_context_t *ctx)
{
#if defined(__x86_64__)
    /* libunwind's x86_64 unw_context_t is the kernel's ucontext_t */
    (void)ctx;
    return unw_init_local2(c, (unw_context_t *)ucv, UNW_INIT_SIGNAL_FRAME);
#else
    /* step from here through the signal trampoline */
    (void)ucv;
    if (unw_getcontext(ctx) < 0 || unw_init_local(c, ctx) < 0)
        return -1;
    for (int i = 0; i < 8; i++) {
        if (unw_is_signal_frame(c) > 0)
            return unw_step(c) > 0 ? 0 : -1;
        if (unw_step(c) <= 0)
            return -1;
    }
    return -1;
#endif
}

static uint32_t unwind(uintptr_t *pcs, void *ucv)
{
    unw_context_t ctx;
    unw_cursor_t c;
    unw_word_t ip;
    uint32_t n = 0;

    if (!pa_loader_unwind_begin()) {
        pcs[0] = interrupted_pc(ucv);
        pcs[1] = PA_PC_IN_LOADER;
        return 2;
    }
    if (init_cursor(&c, ucv, &ctx) == 0) {
        do {
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
                break;
            pcs[n++] = (uintptr_t)ip;
        } while (n < PA_RING_MAX_FRAMES && unw_step(&c) > 0);
    }
    pa_loader_unwind_end();
    if (n == 0) {
        pcs[0] = interrupted_pc(ucv);
        pcs[1] = PA_PC_UNWIND_FAIL;
        n = 2;
    }
    return n;
}

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
            clock_gettime(CLOCK_MONOTONIC, &now);
            slot->npcs = unwind(slot->pcs, ucv);
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
