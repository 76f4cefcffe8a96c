/* pa_sig_unwind: unwinding the interrupted thread from inside a signal handler, shared by the
 * CPU sampler (pa_cpu_sig.c) and the thread-stacks sampler (pa_threads_sig.c).
 * Async-signal-safe: everything here is static inline and compiled into the handler's own file;
 * it calls only local libunwind (unw_init_local2 / unw_getcontext / unw_init_local, unw_step,
 * unw_get_reg, unw_is_signal_frame; and unw_backtrace in pa_sig_unwind_trace, see there),
 * whose caching policy and lazy set-up pa_cpu_init did at start, the inline loader checks of
 * pa_loader_hook.h, and reads of the ucontext. No allocation, no lock of ours, no logging.
 * Owns: nothing. Threads: the signalled thread, inside its handler. */
#ifndef PA_SIG_UNWIND_H
#define PA_SIG_UNWIND_H

#include <stdint.h>
#include <ucontext.h>

#include <libunwind.h>

#include "pa_loader_hook.h"
#include "pa_pprof.h"
#include "pa_ring.h"
#include "pa_unwcache.h"

/* Where the thread was when the signal arrived. */
static inline uintptr_t pa_sig_interrupted_pc(const void *ucv)
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

/* Start the cursor at the interrupted frame, so pcs[0] is the exact pc (pa_stacktab.h).
 * own_context: start from the handler's own frame instead (the stack then begins with the
 * handler's frames). The thread sampler asks for it under TSan, which may run a handler later
 * than the signal, from its own dispatcher, with a copy of a context whose stack has since
 * moved on: unwinding that copy could read freed stack.
 * Always inlined: unw_getcontext records the frame it is called in, and the cursor is stepped
 * after this returns; were this a call of its own (as at -O0), that frame would be gone and
 * its saved registers overwritten by the next calls, so the second step read garbage. */
static inline __attribute__((always_inline)) int
pa_sig_init_cursor(unw_cursor_t *c, void *ucv, unw_context_t *ctx, int own_context)
{
    if (own_context) {
        if (unw_getcontext(ctx) < 0 || unw_init_local(c, ctx) < 0)
            return -1;
        return 0;
    }
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

/* The unw_step walk: from the ucontext (or the handler's own frame), one unw_step per frame.
 * Debian's libunwind 1.6 blocks and unblocks every signal around each unw_step (two
 * rt_sigprocmask calls per frame): ~0.55 us a frame (bench/agent/cpu_sig_micro.c). Returns the
 * frame count, 0 when libunwind gives nothing. The caller holds pa_loader_unwind_begin. */
static inline __attribute__((always_inline)) uint32_t
pa_sig_unwind_steps(uintptr_t *pcs, uint32_t max, void *ucv, int own_context)
{
    unw_context_t ctx;
    unw_cursor_t c;

    if (pa_sig_init_cursor(&c, ucv, &ctx, own_context) != 0)
        return 0;
    return pa_unwcache_collect(&c, pcs, max);
}

/* Frames of unw_backtrace's output that may come before the interrupted one: the handler's
 * (its own, and this file's functions where a compiler did not inline them) and the signal
 * trampoline's. */
#define PA_SIG_TRACE_SKIP 8

/* The cached walk: unw_backtrace from inside the handler. On x86_64 its fast trace follows
 * frames by kinds cached per address (no system call once an address is known) and goes
 * through the kernel's signal frame (the SIGRETURN kind: it reads the interrupted registers
 * from the ucontext on the stack), so its output is [handler frames..., restorer, interrupted
 * pc, callers...]. The interrupted frame is the entry equal to the ucontext's pc right after
 * the entry equal to restorer (the handler's return address: the sa_restorer trampoline the
 * kernel made it return to), among the first PA_SIG_TRACE_SKIP + 1. Found: pcs gets it and
 * its callers, as the unw_step walk would give them (tests/unit/agent/pa_sig_unwind_test.c
 * compares both on the same signals). Not found (a handler not called from the trampoline, as
 * under TSan; a trace that gave up) or no trace: 0, and the caller walks with unw_step.
 * When a frame is not cached yet, or is of a kind the fast trace cannot follow, libunwind
 * takes the unw_step path for it (a whole unw_step walk when the trace gives up).
 * Safe in a handler only once the thread's trace cache set-up is known to need no allocation
 * (pa_cpu.h, pa__cpu_trace_ok): the process-wide part (pthread_once, its pthread key, its
 * memory pool) is done by pa_cpu_init; per thread (only on threads holding one of the
 * trace-cache slots of pa_unwcache.h: the caller asks), libunwind mmaps a 256 KiB address cache
 * (under its pool lock, taken with every signal blocked, so never held by the interrupted
 * code of the same thread) and stores it under its key with pthread_setspecific (no
 * allocation for a key below 32) in its TLS (static when libunwind was loaded at start).
 * x86_64 only; elsewhere 0. The caller holds pa_loader_unwind_begin. */
static inline __attribute__((always_inline)) uint32_t
pa_sig_unwind_trace(uintptr_t *pcs, uint32_t max, void *ucv, uintptr_t restorer)
{
#if defined(__x86_64__)
    void *buf[PA_RING_MAX_FRAMES + PA_SIG_TRACE_SKIP];
    uintptr_t pc = pa_sig_interrupted_pc(ucv);
    uint32_t n = 0;
    int k;

    if (max > PA_RING_MAX_FRAMES)
        max = PA_RING_MAX_FRAMES;
    k = unw_backtrace(buf, (int)(max + PA_SIG_TRACE_SKIP));
    for (int i = 1; i < k && i <= PA_SIG_TRACE_SKIP; i++) {
        if ((uintptr_t)buf[i] == pc && (uintptr_t)buf[i - 1] == restorer) {
            while (i < k && n < max)
                pcs[n++] = (uintptr_t)buf[i++];
            break;
        }
    }
    return n;
#else
    (void)pcs;
    (void)max;
    (void)ucv;
    (void)restorer;
    return 0;
#endif
}

/* Unwind the interrupted thread into pcs[0..max) (max >= 2); returns the frame count.
 * restorer: the handler's return address (__builtin_return_address(0) in the handler) to try
 * the cached walk first, 0 for the unw_step walk only. While a thread is inside
 * dlopen/dlclose the stack is [interrupted pc, PA_PC_IN_LOADER] (the loader's lock must not be
 * reached from a handler: pa_loader_hook.h); when libunwind gives nothing it is
 * [interrupted pc, PA_PC_UNWIND_FAIL]. */
static inline uint32_t pa_sig_unwind(uintptr_t *pcs, uint32_t max, void *ucv, int own_context,
                                     uintptr_t restorer)
{
    uint32_t n = 0;

    if (!pa_loader_unwind_begin()) {
        pcs[0] = pa_sig_interrupted_pc(ucv);
        pcs[1] = PA_PC_IN_LOADER;
        return 2;
    }
    if (restorer != 0 && !own_context)
        n = pa_sig_unwind_trace(pcs, max, ucv, restorer);
    if (n == 0)
        n = pa_sig_unwind_steps(pcs, max, ucv, own_context);
    pa_loader_unwind_end();
    if (n == 0) {
        pcs[0] = pa_sig_interrupted_pc(ucv);
        pcs[1] = PA_PC_UNWIND_FAIL;
        n = 2;
    }
    return n;
}

#endif
