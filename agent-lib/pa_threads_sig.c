/* pa_threads_sig: the handler of the thread-stacks signal (pa_threads.h). It runs in signal
 * context on the thread the collector sent it to, possibly while that thread holds malloc's or
 * the loader's locks, or is inside another of the agent's samplers.
 *
 * It may call only: errno save/restore; syscall(SYS_gettid); C11 atomics on lock-free types;
 *   the inline unwinder of pa_sig_unwind.h (local libunwind, whose caching policy and lazy
 *   set-up pa_cpu_init did before any collection, and the inline loader checks of
 *   pa_loader_hook.h); reads of the ucontext and of the published table.
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
#include <unistd.h>

#include "pa_cpu.h"
#include "pa_pprof.h"
#include "pa_sig_unwind.h"

/* Under TSan a handler may run from TSan's deferred dispatcher with a stale copy of the
 * context: unwind from the handler's own frame there (pa_sig_unwind.h). */
#if defined(__SANITIZE_THREAD__)
#define PA_THREADS_OWN_CONTEXT 1
#else
#define PA_THREADS_OWN_CONTEXT 0
#endif

_Atomic(pa__threads_table_t *) pa__threads_table;
_Atomic int pa__threads_inflight;

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
        s->pcs[0] = pa_sig_interrupted_pc(ucv);
        s->pcs[1] = PA_PC_UNWIND_FAIL;
        s->npcs = 2;
    } else {
        pa__sampler_guard = 1;
        /* the unw_step walk (restorer 0), not the CPU handler's cached one: one signal per
         * thread per collection would give every thread a 256 KiB address cache for one walk */
        s->npcs = pa_sig_unwind(s->pcs, PA_MAX_FRAMES, ucv, PA_THREADS_OWN_CONTEXT, 0);
        pa__sampler_guard = 0;
    }
    atomic_store(&s->state, PA__SLOT_DONE);
    atomic_fetch_add(&t->done, 1);
out:
    atomic_fetch_sub(&pa__threads_inflight, 1);
    errno = saved_errno;
}
