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
 *   unw_step where a frame does not fit it); the inline loader checks of pa_loader_hook.h;
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
 * (stack, size) record; claim a live slot; count the allocation. Full tables: counted drops.
 * Sanitizer builds compile this file out (the sanitizer owns malloc). */
#ifndef PG_SANITIZE_BUILD

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libunwind.h>

#include "pa_cpu.h"
#include "pa_heap.h"
#include "pa_loader_hook.h"
#include "pa_pprof.h"

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

/* ---- interval ---- */

/* ln(u) for u in (0, 1]: u = m * 2^e, m in [1, 2); ln m = 2 atanh((m-1)/(m+1)), whose series
 * converges fast for s < 1/3 (error < 1e-7: plenty for a sampling interval). No libm. */
static double ln01(double u)
{
    union {
        double d;
        uint64_t u;
    } v = {.d = u};
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    double s, s2, sum;

    v.u = (v.u & ((1ULL << 52) - 1)) | (1023ULL << 52);
    s = (v.d - 1) / (v.d + 1);
    s2 = s * s;
    sum = s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11)))));
    return e * 0.6931471805599453 + 2 * sum;
}

/* Bytes to allocate before the next sample: exponential with mean rate (Go's nextSample), so
 * that sampling is a Poisson process over allocated bytes; 0 (sample everything) for rate 1;
 * for rate 0, a large count after which the rate is looked at again. */
static uint64_t next_interval(pa__heap_thread_t *th, int64_t rate)
{
    uint64_t x = th->rng;
    double u;

    if (rate <= 0)
        return (uint64_t)1 << 30;
    if (rate == 1)
        return 0;
    x ^= x << 13; /* xorshift64 */
    x ^= x >> 7;
    x ^= x << 17;
    th->rng = x;
    u = (double)((x >> 11) + 1) * 0x1p-53; /* (0, 1] */
    return (uint64_t)(-ln01(u) * (double)rate) + 1;
}

static void seed(pa__heap_thread_t *th)
{
    struct timespec ts;
    uint64_t x;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    x = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
        ((uint64_t)(uintptr_t)th * 0x9e3779b97f4a7c15ULL);
    th->rng = x != 0 ? x : 0x2545f4914f6cdd1dULL;
}

/* ---- tables ---- */

static uint64_t hash_record(const uintptr_t *pcs, uint32_t n, uint64_t cls)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ cls;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t x = h ^ (uint64_t)pcs[i];
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        h = x + 0x9e3779b97f4a7c15ULL;
    }
    return h;
}

static int same_record(const pa__heap_record_t *r, uint64_t h, const uintptr_t *pcs, uint32_t n,
                       uint64_t cls)
{
    return r->hash == h && r->size_class == cls && r->npcs == n &&
           memcmp(r->pcs, pcs, n * sizeof(*pcs)) == 0;
}

/* The record of (pcs, size class), added if new; PA__HEAP_NO_RECORD when the table is full. A
 * record is filled before its index slot is published (CAS, release), so readers that see the
 * index see the whole record. Two threads adding the same new stack at once may both claim a
 * record; the loser's stays unpublished (never counted, never visited). Nobody ever waits. */
static uint32_t find_record(pa__heap_tables_t *t, const uintptr_t *pcs, uint32_t n, uint64_t cls)
{
    uint64_t h = hash_record(pcs, n, cls);
    uint32_t mine = PA__HEAP_NO_RECORD;

    for (size_t i = 0, s = (size_t)h & t->index_mask; i <= t->index_mask;
         i++, s = (s + 1) & t->index_mask) {
        uint32_t v = atomic_load_explicit(&t->index[s], memory_order_acquire);
        if (v == 0) {
            if (mine == PA__HEAP_NO_RECORD) {
                uint32_t r = atomic_fetch_add_explicit(&t->nrecords, 1, memory_order_relaxed);
                if (r >= t->max_records)
                    return PA__HEAP_NO_RECORD;
                t->records[r].hash = h;
                t->records[r].size_class = cls;
                t->records[r].npcs = n;
                memcpy(t->records[r].pcs, pcs, n * sizeof(*pcs));
                mine = r;
            }
            if (atomic_compare_exchange_strong_explicit(&t->index[s], &v, mine + 1,
                                                        memory_order_acq_rel, memory_order_acquire))
                return mine;
            /* someone published here first: v is theirs, compare it below */
        }
        if (same_record(&t->records[v - 1], h, pcs, n, cls))
            return v - 1;
    }
    return PA__HEAP_NO_RECORD;
}

/* Claim a live slot for p (size bytes) in its bucket: 0, or -1 when the bucket's ways are all
 * taken. */
static int track(pa__heap_tables_t *t, uintptr_t p, uint32_t record, uint64_t size)
{
    size_t b = pa__heap_live_bucket(t, p);
    pa__heap_live_t *e = &t->live[b * PA_HEAP_LIVE_WAYS];

    /* occupancy first, so that a free() of p can never miss it */
    atomic_fetch_add_explicit(&t->live_count[b], 1, memory_order_relaxed);
    for (int i = 0; i < PA_HEAP_LIVE_WAYS; i++) {
        uintptr_t want = 0;
        if (atomic_compare_exchange_strong_explicit(&e[i].key, &want, PA__HEAP_KEY_BUSY,
                                                    memory_order_acquire, memory_order_relaxed)) {
            e[i].record = record;
            e[i].size = size < UINT32_MAX ? (uint32_t)size : UINT32_MAX;
            atomic_store_explicit(&e[i].key, p, memory_order_release);
            return 0;
        }
    }
    atomic_fetch_sub_explicit(&t->live_count[b], 1, memory_order_relaxed);
    return -1;
}

/* Remove p's live slot (p is being freed or moved): its record and *size, or
 * PA__HEAP_NO_RECORD. A size of 4 GiB or more was not kept: the record's average stands in. */
static __attribute__((noinline)) uint32_t untrack(pa__heap_tables_t *t, size_t b, uintptr_t p,
                                                  uint64_t *size)
{
    pa__heap_live_t *e = &t->live[b * PA_HEAP_LIVE_WAYS];

    for (int i = 0; i < PA_HEAP_LIVE_WAYS; i++) {
        if (atomic_load_explicit(&e[i].key, memory_order_acquire) == p) {
            uint32_t r = e[i].record;
            *size = e[i].size;
            atomic_store_explicit(&e[i].key, 0, memory_order_release);
            atomic_fetch_sub_explicit(&t->live_count[b], 1, memory_order_relaxed);
            if (*size == UINT32_MAX) {
                pa__heap_record_t *rec = &t->records[r];
                uint64_t n = atomic_load_explicit(&rec->allocs, memory_order_relaxed);
                *size = atomic_load_explicit(&rec->alloc_bytes, memory_order_relaxed) / (n ? n : 1);
            }
            return r;
        }
    }
    return PA__HEAP_NO_RECORD;
}

/* The tables, and the live record of p if p was sampled (cheap when it was not). */
static inline uint32_t lookup_and_untrack(void *p, pa__heap_tables_t **tp, uint64_t *size)
{
    pa__heap_tables_t *t = atomic_load_explicit(&pa__heap_tables, memory_order_acquire);
    size_t b;

    *tp = t;
    if (t == NULL || p == NULL)
        return PA__HEAP_NO_RECORD;
    b = pa__heap_live_bucket(t, (uintptr_t)p);
    if (LIKELY(atomic_load_explicit(&t->live_count[b], memory_order_relaxed) == 0))
        return PA__HEAP_NO_RECORD;
    return untrack(t, b, (uintptr_t)p, size);
}

/* Count a free of size bytes in record r. */
static void count_free(pa__heap_tables_t *t, uint32_t r, uint64_t size)
{
    atomic_fetch_add_explicit(&t->records[r].frees, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->records[r].free_bytes, size, memory_order_relaxed);
}

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
            seed(th);
        th->gen = gen;
        th->countdown = next_interval(th, rate);
        if (size < th->countdown) { /* the fast path's test, with the fresh interval */
            th->countdown = th->countdown - size;
            goto out;
        }
    }
    th->countdown = next_interval(th, rate);
    t = atomic_load_explicit(&pa__heap_tables, memory_order_acquire);
    if (p == NULL || t == NULL || rate <= 0)
        goto out;

    pa__sampler_guard = 1;
    if (!pa_loader_unwind_begin()) {
        pcs[n++] = PA_PC_IN_LOADER;
    } else {
        /* buf[0] is in sample(), buf[1] in the entry point: skip them */
        int k = unw_backtrace(buf, PA_HEAP_MAX_FRAMES + 2);
        for (int i = 2; i < k; i++)
            pcs[n++] = (uintptr_t)buf[i] - (i == 2);
        pa_loader_unwind_end();
        if (n == 0)
            pcs[n++] = PA_PC_UNWIND_FAIL;
    }
    r = find_record(t, pcs, n, pa__heap_size_class(size));
    if (r == PA__HEAP_NO_RECORD)
        atomic_fetch_add_explicit(&t->dropped_records, 1, memory_order_relaxed);
    else if (track(t, (uintptr_t)p, r, size) < 0)
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
    uint32_t r = lookup_and_untrack(p, &t, &size);

    if (r != PA__HEAP_NO_RECORD)
        count_free(t, r, size);
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
            if (track(t, (uintptr_t)old, r, old_size) == 0)
                return NULL;
            atomic_fetch_add_explicit(&t->dropped_live, 1, memory_order_relaxed);
        }
        count_free(t, r, old_size);
    }
    return p;
}

PA_INTERPOSE void *realloc(void *old, size_t size)
{
    pa__heap_thread_t *th = &pa__heap_thread;
    pa__heap_tables_t *t;
    uint64_t old_size = 0;
    uint32_t r = lookup_and_untrack(old, &t, &old_size);
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
    r = lookup_and_untrack(old, &t, &old_size);
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
