/* pa_loader_hook: knows whether some thread is inside dlopen/dlclose, so that a signal handler
 * never unwinds while the dynamic loader may be half-way through changing its lists.
 *
 * Why: libunwind's local unwinder looks frames up through dl_iterate_phdr, which takes the
 * loader's lock. A thread inside dlopen holds that lock and may call malloc; if SIGPROF lands
 * on another thread that holds a malloc lock and its handler waits for the loader lock, the
 * process hangs (gperftools' classic). A handler that lands on the loading thread itself would
 * walk lists the loader is rewriting.
 *
 * How: libprofagent exports dlopen, dlmopen and dlclose (pa_loader_hook.c); each one raises
 * pa__loader_depth, waits until no handler is mid-unwind, calls the real function (found with
 * dlsym(RTLD_NEXT) on first use, so they work before the agent starts), and lowers the depth.
 * A handler announces itself in pa__loader_unwinders before it reads the depth; both sides use
 * sequentially consistent atomics (Dekker), so either the handler sees the depth and records
 * [in dynamic loader] instead of unwinding, or the loader call waits for that unwind to finish
 * before it takes the lock. The wait cannot deadlock: an unwinder that started while the depth
 * was 0 needs no lock the waiting thread holds.
 * Limits: only calls that go through the exported symbols are seen. glibc's internal loads
 * (NSS modules, iconv, libgcc_s for pthread_cancel) bypass them; so does a program linked with
 * -Bsymbolic against its own dlopen. And glibc resolves a relative dlopen name with the
 * caller's RUNPATH: through this hook the caller is libprofagent, so a program that relies on
 * its own DT_RUNPATH (not DT_RPATH) to dlopen a bare file name must pass a path.
 *
 * Owns: nothing. Threads: any. The inline functions below are async-signal-safe. */
#ifndef PA_LOADER_HOOK_H
#define PA_LOADER_HOOK_H

#include <stdatomic.h>

extern _Atomic int pa__loader_depth;           /* threads inside an interposed loader call */
extern _Atomic int pa__loader_unwinders;       /* handlers between unwind_begin and unwind_end */
extern _Atomic unsigned long pa__loader_calls; /* interposed calls so far (tests, stats) */

/* Resolve the real functions now (they are also resolved lazily). Not async-signal-safe.
 * 0, or -ENOSYS when dlsym(RTLD_NEXT) finds no real dlopen. */
int pa_loader_hook_init(void);

/* Handler side: 1 if unwinding is safe now (then call pa_loader_unwind_end when done), 0 if a
 * thread is inside the loader. Async-signal-safe. */
static inline int pa_loader_unwind_begin(void)
{
    atomic_fetch_add(&pa__loader_unwinders, 1);
    if (atomic_load(&pa__loader_depth) > 0) {
        atomic_fetch_sub(&pa__loader_unwinders, 1);
        return 0;
    }
    return 1;
}

static inline void pa_loader_unwind_end(void)
{
    atomic_fetch_sub(&pa__loader_unwinders, 1);
}

#endif
