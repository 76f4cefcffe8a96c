/* pa_heap_hook: the interposed allocator entry points (malloc, calloc, realloc, free,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, reallocarray, malloc_usable_size).
 * They run on every host thread, before the agent starts, while it starts, inside libc and
 * the loader, during thread exit and in forked children, so they are allocation-free:
 *
 * They may call only: glibc's __libc_malloc/__libc_calloc/__libc_realloc/__libc_free/
 *   __libc_memalign/__libc_valloc/__libc_pvalloc (exported by glibc, so no dlsym and no
 *   recursion); the real malloc_usable_size through a pointer resolved by pa_heap.c's
 *   constructor (or dlsym once, here, if something asks before it ran); errno save/restore;
 *   C11 atomics on lock-free types; clock_gettime (seed); libunwind's unw_backtrace (local;
 *   pa_heap.c's constructor did its lazy set-up through pa_cpu_init; its fast path keeps a
 *   per-thread cache of frame kinds in mmap'd memory behind a pthread key, and falls back to
 *   unw_step where a frame does not fit it) on a thread holding a trace-cache slot, else the
 *   unw_step walk, both through the inline functions of pa_unwcache.h (atomics, TLS,
 *   pthread_setspecific on a key below 32); the inline loader checks of pa_loader_hook.h;
 *   the inline helpers of pa_heap.h.
 * They must not: allocate (except through the real functions above, for the caller), take a
 *   lock (ours or anyone's: a signal handler could need it), log, or call other agent files.
 *
 * Fast path (not sampled): one TLS compare and subtract, then a tail call of the real
 * function. free(): one load of the tables pointer and one of a per-bucket occupancy byte;
 * only when that byte is non-zero are the bucket's four keys compared.
 * Slow path (sample()): re-entrancy guard (pa__sampler_guard, shared with the SIGPROF handler,
 * so that neither unwinds while the other is mid-unwind on this thread, and our own and
 * libunwind's allocations are never sampled); draw the next interval; unwind; find or add the
 * (stack, size class) record; claim a live slot; count the allocation. Full tables: counted
 * drops.
 * Sanitizer builds compile this file out (the sanitizer owns malloc). */
#ifndef PG_SANITIZE_BUILD

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <libunwind.h>

#include "pa_cpu.h"
#include "pa_heap.h"
#include "pa_loader_hook.h"
#include "pa_pprof.h"
#include "pa_unwcache.h"

#define PA_INTERPOSE __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

typedef size_t (*usable_size_fn)(void *);
extern _Atomic(usable_size_fn) pa__heap_real_usable_size; /* pa_heap.c */

/* ---- the slow path ---- */

/* Called directly by each entry point, so its own frame and the entry point's are the two to
 * skip: pcs[0] is then in the entry point's caller. unw_backtrace rather than an unw_step
 * loop: its cached frame kinds make a sample ~0.2 us instead of ~3.5 us (a 15-frame stack,
 * bench/agent/heap_micro.c at PROFAGENT_MEM_RATE=1), which is what keeps the default rate's
 * cost near zero for allocation-heavy code. pcs[0] is stored as return address - 1,
 * inside the call instruction, so that it names the caller's line as an exact PC (pa_stacktab
 * treats pcs[0] as exact). */
static __attribute__((noinline)) void sample(void *p, size_t size)
{
    pa__heap_thread_t *th = &pa__heap_thread;
    int saved_errno = errno;
    int64_t rate = atomic_load_explicit(&pa__heap_rate, memory_order_relaxed);
    uint32_t gen = atomic_load_explicit(&pa__heap_gen, memory_order_acquire);
    pa__heap_tables_t *t;
    uintptr_t pcs[PA_HEAP_MAX_FRAMES];
    void *buf[PA_HEAP_MAX_FRAMES + 2];
    uint32_t n = 0, r;

    if (th->excluded) {
        th->countdown = UINT64_MAX;
        goto out;
    }
    if (pa__sampler_guard)
        goto out; /* our own work (or libunwind's): never sampled, countdown untouched */
    if (th->rng == 0 || th->gen != gen) {
        if (th->rng == 0)
            pa__heap_seed(th);
        th->gen = gen;
        th->countdown = pa__heap_next_interval(th, rate);
        if (size < th->countdown) { /* the fast path's test, with the fresh interval */
            th->countdown = th->countdown - size;
            goto out;
        }
    }
    th->countdown = pa__heap_next_interval(th, rate);
    t = atomic_load_explicit(&pa__heap_tables, memory_order_acquire);
    if (p == NULL || t == NULL || rate <= 0)
        goto out;

    pa__sampler_guard = 1;
    if (!pa_loader_unwind_begin()) {
        pcs[n++] = PA_PC_IN_LOADER;
    } else {
        /* buf[0] is in sample(), buf[1] in the entry point: skip them. A thread without a
         * trace-cache slot (pa_unwcache.h) walks with unw_step, skipping the same two. */
        if (pa_unwcache_take()) {
            int k = unw_backtrace(buf, PA_HEAP_MAX_FRAMES + 2);
            for (int i = 2; i < k; i++)
                pcs[n++] = (uintptr_t)buf[i];
        } else {
            n = pa_unwcache_steps(pcs, PA_HEAP_MAX_FRAMES, 2);
        }
        if (n > 0)
            pcs[0] -= 1;
        pa_loader_unwind_end();
        if (n == 0)
            pcs[n++] = PA_PC_UNWIND_FAIL;
    }
    r = pa__heap_find_record(t, pcs, n, pa__heap_size_class(size));
    if (r == PA__HEAP_NO_RECORD)
        atomic_fetch_add_explicit(&t->dropped_records, 1, memory_order_relaxed);
    else if (pa__heap_track(t, (uintptr_t)p, r, size) < 0)
        atomic_fetch_add_explicit(&t->dropped_live, 1, memory_order_relaxed);
    else {
        /* bytes before the object (see pa_heap_snapshot) */
        atomic_fetch_add_explicit(&t->records[r].alloc_bytes, size, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->records[r].allocs, 1, memory_order_release);
    }
    pa__sampler_guard = 0;
out:
    errno = saved_errno;
}

/* The entry points' common shape: not sampled -> count down and tail-call the real function;
 * sampled -> call it, then sample() (which must stay a direct call from the entry point). */
#define SAMPLED_ALLOC(size, call)                                                                  \
    do {                                                                                           \
        pa__heap_thread_t *th_ = &pa__heap_thread;                                                 \
        uint64_t c_ = th_->countdown;                                                              \
        void *p_;                                                                                  \
        if (LIKELY((size) < c_)) {                                                                 \
            th_->countdown = c_ - (size);                                                          \
            return call;                                                                           \
        }                                                                                          \
        p_ = call;                                                                                 \
        sample(p_, (size));                                                                        \
        return p_;                                                                                 \
    } while (0)

PA_INTERPOSE void *malloc(size_t size)
{
    SAMPLED_ALLOC(size, __libc_malloc(size));
}

PA_INTERPOSE void *calloc(size_t n, size_t m)
{
    size_t size;

    if (__builtin_mul_overflow(n, m, &size))
        return __libc_calloc(n, m); /* fails with ENOMEM */
    SAMPLED_ALLOC(size, __libc_calloc(n, m));
}

PA_INTERPOSE void free(void *p)
{
    pa__heap_tables_t *t;
    uint64_t size = 0;
    uint32_t r = pa__heap_lookup_and_untrack(p, &t, &size);

    if (r != PA__HEAP_NO_RECORD)
        pa__heap_count_free(t, r, size);
    __libc_free(p);
}

/* realloc is a free of the old block and an allocation of the new one (as tcmalloc counts it).
 * The old block leaves the live table before the real call, so that no other thread can be
 * given the same address while it is still in the table; if the call fails the old block is
 * still the caller's and goes back (or, table full, counts as freed and as a drop). */
static inline __attribute__((always_inline)) void *
realloc_tracked(void *old, size_t size, pa__heap_tables_t *t, uint32_t r, uint64_t old_size)
{
    void *p = __libc_realloc(old, size);

    if (r != PA__HEAP_NO_RECORD) {
        if (p == NULL && size != 0) {
            if (pa__heap_track(t, (uintptr_t)old, r, old_size) == 0)
                return NULL;
            atomic_fetch_add_explicit(&t->dropped_live, 1, memory_order_relaxed);
        }
        pa__heap_count_free(t, r, old_size);
    }
    return p;
}

PA_INTERPOSE void *realloc(void *old, size_t size)
{
    pa__heap_thread_t *th = &pa__heap_thread;
    pa__heap_tables_t *t;
    uint64_t old_size = 0;
    uint32_t r = pa__heap_lookup_and_untrack(old, &t, &old_size);
    uint64_t c;
    void *p;

    c = th->countdown; /* one load: a malloc in a signal handler here cannot wrap it */
    if (LIKELY(size < c)) {
        th->countdown = c - size;
        return realloc_tracked(old, size, t, r, old_size);
    }
    p = realloc_tracked(old, size, t, r, old_size);
    if (p != NULL)
        sample(p, size);
    return p;
}

PA_INTERPOSE void *reallocarray(void *old, size_t n, size_t m)
{
    pa__heap_thread_t *th = &pa__heap_thread;
    pa__heap_tables_t *t;
    uint32_t r;
    uint64_t c, old_size = 0;
    size_t size;
    void *p;

    if (__builtin_mul_overflow(n, m, &size)) {
        errno = ENOMEM;
        return NULL;
    }
    r = pa__heap_lookup_and_untrack(old, &t, &old_size);
    c = th->countdown; /* one load: a malloc in a signal handler here cannot wrap it */
    if (LIKELY(size < c)) {
        th->countdown = c - size;
        return realloc_tracked(old, size, t, r, old_size);
    }
    p = realloc_tracked(old, size, t, r, old_size);
    if (p != NULL)
        sample(p, size);
    return p;
}

PA_INTERPOSE void *memalign(size_t align, size_t size)
{
    SAMPLED_ALLOC(size, __libc_memalign(align, size));
}

/* glibc 2.36's aligned_alloc is an alias of memalign (any alignment is rounded up) */
PA_INTERPOSE void *aligned_alloc(size_t align, size_t size)
{
    SAMPLED_ALLOC(size, __libc_memalign(align, size));
}

PA_INTERPOSE void *valloc(size_t size)
{
    SAMPLED_ALLOC(size, __libc_valloc(size));
}

PA_INTERPOSE void *pvalloc(size_t size)
{
    SAMPLED_ALLOC(size, __libc_pvalloc(size));
}

/* glibc's checks: a power-of-two multiple of sizeof(void *), else EINVAL; ENOMEM on failure;
 * *out untouched on error. */
PA_INTERPOSE int posix_memalign(void **out, size_t align, size_t size)
{
    pa__heap_thread_t *th = &pa__heap_thread;
    uint64_t c;
    void *p;

    if (align == 0 || align % sizeof(void *) != 0 || (align & (align - 1)) != 0)
        return EINVAL;
    c = th->countdown; /* one load: a malloc in a signal handler here cannot wrap it */
    if (LIKELY(size < c)) {
        th->countdown = c - size;
        p = __libc_memalign(align, size);
    } else {
        p = __libc_memalign(align, size);
        sample(p, size);
    }
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

/* Sampled blocks are ordinary glibc blocks (no header of ours): the real answer holds. */
PA_INTERPOSE size_t malloc_usable_size(void *p)
{
    usable_size_fn f = atomic_load_explicit(&pa__heap_real_usable_size, memory_order_acquire);

    if (f == NULL) {
        /* only before pa_heap.c's constructor: dlsym may allocate, which is fine here (not
         * inside malloc) */
        f = (usable_size_fn)dlsym(RTLD_NEXT, "malloc_usable_size");
        if (f == NULL || f == malloc_usable_size)
            return 0;
        atomic_store_explicit(&pa__heap_real_usable_size, f, memory_order_release);
    }
    return f(p);
}

#else
typedef int pa__heap_hook_compiled_out; /* sanitizer build: the sanitizer owns malloc */
#endif
