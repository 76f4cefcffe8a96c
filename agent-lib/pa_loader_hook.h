/* pa_loader_hook: knows whether some thread is inside dlopen/dlclose, so that a signal handler
 * never unwinds while the dynamic loader may be half-way through changing its lists; and holds
 * unwinds off across fork() the same way.
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
 * Fork: an unwinding thread holds libunwind's cache lock (Debian 12's 1.6.2 keeps one global
 * cache behind a mutex) or the loader's (dl_iterate_phdr). A fork at that instant gives the
 * child that lock held by a thread the child does not have, and the child's first sampled
 * allocation waits for it forever (seen: a child of integration.agent_fork_points stuck in
 * libunwind's mutex under unw_backtrace in the malloc hook, while its parent was CPU-profiled).
 * So a pthread_atfork prepare handler, registered at load, raises the depth as a loader call
 * does and waits for the unwinds under way, bounded by PA_LOADER_FORK_WAIT_MS (a thread stopped
 * mid-unwind must not stop the host's fork); unwinds that begin meanwhile record [in dynamic
 * loader] or are not recorded; the parent lowers the depth after the fork, the child starts
 * from 0 (it has none of the other threads).
 * Every unwinder (the SIGPROF and thread-stacks handlers through pa_sig_unwind.h, the malloc,
 * pthread_create and lock hooks) goes through pa_loader_unwind_begin/end.
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

#define PA_LOADER_FORK_WAIT_MS 1000 /* longest a fork waits for the unwinds under way */

/* Resolve the real functions now (they are also resolved lazily). Not async-signal-safe.
 * 0, or -ENOSYS when dlsym(RTLD_NEXT) finds no real dlopen. */
int pa_loader_hook_init(void);

/* Handler side: 1 if unwinding is safe now (then call pa_loader_unwind_end when done), 0 if a
 * thread is inside the loader or a fork is under way. Async-signal-safe. */
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
