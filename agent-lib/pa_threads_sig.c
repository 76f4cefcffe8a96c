/* pa_threads_sig: the handler of the thread-stacks signal (pa_threads.h). It runs in signal
 * context on the thread the collector sent it to, possibly while that thread holds malloc's or
 * the loader's locks, or is inside another of the agent's samplers.
 *
 * It may call only: errno save/restore; syscall(SYS_gettid); C11 atomics on lock-free types;
 *   local libunwind (unw_init_local2/unw_getcontext/unw_init_local, unw_step, unw_get_reg),
 *   whose caching policy and lazy set-up pa_cpu_init did before any collection; the inline
 *   loader checks of pa_loader_hook.h; reads of the ucontext and of the published table.
 * It must not: allocate (malloc, stdio, snprintf, strerror, dlsym, lazily allocated TLS), take
 *   any lock of ours, log, or call functions in other agent files.
 *
 * Shape: save errno; count ourselves in-flight so the collector can wait for us before freeing
 * the table; find this thread's slot (binary search: slots are sorted by tid) and claim it
 * (WAITING -> FILLING), so a second, late signal for the same collection does nothing; unwind
 * into it unless a thread is inside the loader ([interrupted pc, in dynamic loader]) or this
 * thread is already inside a sampler, whose unwinder state we must not re-enter
 * ([interrupted pc, unknown]); publish (DONE, then count done); restore errno. */
#include "pa_threads.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <libunwind.h>

#include "pa_cpu.h"
#include "pa_loader_hook.h"
#include "pa_pprof.h"

_Atomic(pa__threads_table_t *) pa__threads_table;
_Atomic int pa__threads_inflight;

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

/* Start the cursor at the interrupted frame, so pcs[0] is the exact pc (pa_stacktab.h).
 * Under TSan the handler may run later than the signal, from TSan's own dispatcher, with a
 * copy of a context whose stack has since moved on: unwinding it could read freed stack. There
 * the stack is taken from here instead (it then starts with this handler's and TSan's frames,
 * and shows where the thread was when TSan delivered the signal). */
static int init_cursor(unw_cursor_t *c, void *ucv, unw_context_t *ctx)
{
#if defined(__SANITIZE_THREAD__)
    (void)ucv;
    if (unw_getcontext(ctx) < 0 || unw_init_local(c, ctx) < 0)
        return -1;
    return 0;
#elif defined(__x86_64__)
    /* libunwind's x86_64 unw_context_t is the kernel's ucontext_t */
    (void)ctx;
    return unw_init_local2(c, (unw_context_t *)ucv, UNW_INIT_SIGNAL_FRAME);
#else
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
        } while (n < PA_MAX_FRAMES && unw_step(&c) > 0);
    }
    pa_loader_unwind_end();
    if (n == 0) {
        pcs[0] = interrupted_pc(ucv);
        pcs[1] = PA_PC_UNWIND_FAIL;
        n = 2;
    }
    return n;
}

static pa__threads_slot_t *find_slot(pa__threads_table_t *t, pid_t tid)
{
    size_t lo = 0, hi = t->nslots;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->slots[mid].tid == tid)
            return &t->slots[mid];
        if (t->slots[mid].tid < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void pa__threads_on_signal(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    pa__threads_table_t *t;
    pa__threads_slot_t *s;
    int expect = PA__SLOT_WAITING;

    (void)sig;
    (void)si;
    atomic_fetch_add(&pa__threads_inflight, 1);
    t = atomic_load(&pa__threads_table);
    if (t == NULL)
        goto out;
    s = find_slot(t, (pid_t)syscall(SYS_gettid));
    if (s == NULL || !atomic_compare_exchange_strong(&s->state, &expect, PA__SLOT_FILLING))
        goto out;
    if (pa__sampler_guard) {
        s->pcs[0] = interrupted_pc(ucv);
        s->pcs[1] = PA_PC_UNWIND_FAIL;
        s->npcs = 2;
    } else {
        pa__sampler_guard = 1;
        s->npcs = unwind(s->pcs, ucv);
        pa__sampler_guard = 0;
    }
    atomic_store(&s->state, PA__SLOT_DONE);
    atomic_fetch_add(&t->done, 1);
out:
    atomic_fetch_sub(&pa__threads_inflight, 1);
    errno = saved_errno;
}
