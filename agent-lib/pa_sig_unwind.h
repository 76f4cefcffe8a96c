/* pa_sig_unwind: unwinding the interrupted thread from inside a signal handler, shared by the
 * CPU sampler (pa_cpu_sig.c) and the thread-stacks sampler (pa_threads_sig.c).
 * Async-signal-safe: everything here is static inline and compiled into the handler's own file;
 * it calls only local libunwind (unw_init_local2 / unw_getcontext / unw_init_local, unw_step,
 * unw_get_reg, unw_is_signal_frame), whose caching policy and lazy set-up pa_cpu_init did at
 * start, the inline loader checks of pa_loader_hook.h, and reads of the ucontext. No
 * allocation, no lock of ours, no logging.
 * Owns: nothing. Threads: the signalled thread, inside its handler. */
#ifndef PA_SIG_UNWIND_H
#define PA_SIG_UNWIND_H

#include <stdint.h>
#include <ucontext.h>

#include <libunwind.h>

#include "pa_loader_hook.h"
#include "pa_pprof.h"

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

/* Unwind the interrupted thread into pcs[0..max) (max >= 2); returns the frame count. While a
 * thread is inside dlopen/dlclose the stack is [interrupted pc, PA_PC_IN_LOADER] (the loader's
 * lock must not be reached from a handler: pa_loader_hook.h); when libunwind gives nothing it
 * is [interrupted pc, PA_PC_UNWIND_FAIL]. */
static inline uint32_t pa_sig_unwind(uintptr_t *pcs, uint32_t max, void *ucv, int own_context)
{
    unw_context_t ctx;
    unw_cursor_t c;
    unw_word_t ip;
    uint32_t n = 0;

    if (!pa_loader_unwind_begin()) {
        pcs[0] = pa_sig_interrupted_pc(ucv);
        pcs[1] = PA_PC_IN_LOADER;
        return 2;
    }
    if (pa_sig_init_cursor(&c, ucv, &ctx, own_context) == 0) {
        do {
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
                break;
            pcs[n++] = (uintptr_t)ip;
        } while (n < max && unw_step(&c) > 0);
    }
    pa_loader_unwind_end();
    if (n == 0) {
        pcs[0] = pa_sig_interrupted_pc(ucv);
        pcs[1] = PA_PC_UNWIND_FAIL;
        n = 2;
    }
    return n;
}

#endif
