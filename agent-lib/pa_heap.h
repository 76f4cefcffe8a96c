/* pa_heap: heap and allocation profiling, control side. The interposed allocator entry points
 * (pa_heap_hook.c) sample allocations by bytes, with an exponentially distributed interval of
 * mean `rate` bytes (Go's MemProfileRate, 512 KiB by default, PROFAGENT_MEM_RATE, 0 = off),
 * and record each sampled allocation in two fixed tables this module owns:
 *   records: one per distinct (stack, size class), with cumulative allocation and free
 *            counts and exact byte sums. Never removed. Go keys its buckets by exact size;
 *            size classes (8 per power of two, so sizes in one differ by < 12.5%) keep a
 *            stack that allocates many different sizes from filling a bounded table, while
 *            Go's scaling, which uses the average size of a record, stays within that error.
 *   live:    sampled pointer -> record, so that free() of a sampled pointer moves it to the
 *            record's freed totals. 4-way buckets of one cache line; a byte of occupancy per
 *            bucket lets free() of an unsampled pointer return after one load.
 * Both are lock-free (CAS to claim a slot, release stores to publish) and bounded: an
 * allocation that finds no room is counted as dropped and not recorded at all, so in-use
 * totals never include allocations whose free could not be seen.
 * Snapshots turn records into a pa_stacktab with Go's four values, alloc_objects,
 * alloc_space, inuse_objects, inuse_space, scaled as Go's scaleHeapSample does.
 *
 * The hooks always allocate with glibc's __libc_* functions. A program that links another
 * allocator (jemalloc, tcmalloc) and gets libprofagent through LD_PRELOAD therefore runs on
 * glibc's malloc instead (ours comes first in the search order); standard calls stay
 * consistent, but that allocator's own API (mallocx, sdallocx, ...) must not be used on
 * those blocks. Heap profiling is not for such programs: PROFAGENT_MEM_RATE=0 does not
 * change this, only not preloading the library does.
 *
 * Sanitizer builds (PG_SANITIZE_BUILD) interpose malloc themselves: the hooks are compiled out,
 * pa_heap_available() is 0 and every other call here returns -ENOTSUP.
 *
 * Owns: the tables (one anonymous mapping of ~3.5 MiB of address space, pages touched as they
 *   are used; made by a constructor at load time unless the rate is 0, and replaced in the
 *   child after fork, so the child starts clean). Callers own the stack tables they pass.
 * Threads: snapshots from any one thread at a time (the agent thread); the hooks run on every
 *   thread concurrently. Nothing here is async-signal-safe.
 * Errors: negative errno. */
#ifndef PA_HEAP_H
#define PA_HEAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "pa_stacktab.h"

#define PA_HEAP_DEFAULT_RATE (512 * 1024)   /* Go's MemProfileRate */
#define PA_HEAP_MAX_RATE ((int64_t)1 << 40) /* largest PROFAGENT_MEM_RATE accepted */
#define PA_HEAP_MAX_FRAMES 32               /* Go's memory profile keeps 32 too */
#define PA_HEAP_LIVE_WAYS 4                 /* live entries per bucket (one cache line) */
#define PA_HEAP_LIVE_BUCKETS 16384          /* 65536 sampled allocations live at once */
#define PA_HEAP_MAX_RECORDS 8192            /* distinct (stack, size class) pairs */
#define PA_HEAP_NVALUES 4

/* Value indexes in a snapshot, in Go's order. */
enum { PA_HEAP_ALLOC_OBJECTS, PA_HEAP_ALLOC_SPACE, PA_HEAP_INUSE_OBJECTS, PA_HEAP_INUSE_SPACE };

typedef struct pa_heap_stats {
    int64_t rate;     /* bytes; 0 when sampling is off */
    uint64_t records; /* distinct (stack, size class) records in use */
    uint64_t max_records;
    uint64_t live; /* sampled allocations not yet freed */
    uint64_t live_capacity;
    uint64_t dropped_live;    /* sampled allocations not recorded: their live bucket was full */
    uint64_t dropped_records; /* ... not recorded: the record table was full */
    uint64_t dropped_stacks;  /* records that did not fit the caller's stack table */
} pa_heap_stats_t;

/* 1 when heap profiling can work in this build (not a sanitizer build), else 0. */
int pa_heap_available(void);

/* The sampling rate in bytes (0: off). */
int64_t pa_heap_rate(void);

/* Add every record to t (nvalues PA_HEAP_NVALUES, values in Go's order above), scaled to
 * unbiased estimates when scaled is non-zero, raw sampled counts otherwise (Go's debug=1 text
 * prints raw counts). Records with the same stack but different sizes are summed into one
 * stack. stats, if not NULL, is filled. -EINVAL if t has the wrong nvalues, -ENOTSUP in a
 * sanitizer build. */
int pa_heap_snapshot(pa_stacktab_t *t, int scaled, pa_heap_stats_t *stats);

/* For the index page, without building a profile: the distinct stacks with sampled objects
 * still in use (what /heap shows) and with any sampled allocation (what /allocs and
 * heap?debug=1 list, one record per stack). -ENOTSUP in a sanitizer build (both 0). */
int pa_heap_count(uint64_t *inuse_stacks, uint64_t *alloc_stacks);

/* Go's runtime/pprof scaleHeapSample: the unbiased estimate of count allocations totalling
 * size bytes, sampled at rate: both times 1/(1-exp(-avg/rate)), avg = size/count. rate <= 1
 * means unscaled. */
void pa_heap_scale(int64_t count, int64_t size, int64_t rate, int64_t *out_count,
                   int64_t *out_size);

/* Never sample the calling thread's allocations again (the agent thread's own work). */
void pa_heap_exclude_this_thread(void);

/* --- internals shared with pa_heap_hook.c and tests --- */

#define PA__HEAP_KEY_BUSY ((uintptr_t)1) /* a live slot being filled */
#define PA__HEAP_NO_RECORD UINT32_MAX

typedef struct pa__heap_record {
    uint64_t hash;                /* read-only once published */
    uint64_t size_class;          /* read-only once published (pa__heap_size_class) */
    uint32_t npcs;                /* read-only once published */
    _Atomic uint64_t allocs;      /* sampled allocations of this stack and size class */
    _Atomic uint64_t frees;       /* ... of which freed */
    _Atomic uint64_t alloc_bytes; /* their exact sizes, summed */
    _Atomic uint64_t free_bytes;
    uintptr_t pcs[PA_HEAP_MAX_FRAMES]; /* leaf first; pcs[0] is in malloc's caller */
} pa__heap_record_t;

typedef struct pa__heap_live {
    _Atomic uintptr_t key; /* 0 empty, PA__HEAP_KEY_BUSY being filled, else the pointer */
    uint32_t record;       /* written before key is published */
    uint32_t size;         /* likewise; UINT32_MAX for 4 GiB and more (then estimated) */
} pa__heap_live_t;

typedef struct pa__heap_tables {
    unsigned live_shift; /* 64 - log2(live buckets) */
    size_t live_buckets;
    size_t index_mask; /* record index slots - 1 */
    uint32_t max_records;
    _Atomic uint8_t *live_count; /* entries used or being filled, per bucket */
    pa__heap_live_t *live;       /* live_buckets * PA_HEAP_LIVE_WAYS */
    _Atomic uint32_t *index;     /* hash -> record + 1; 0 empty */
    pa__heap_record_t *records;
    _Atomic uint32_t nrecords; /* records claimed (may pass max_records) */
    _Atomic uint64_t dropped_live;
    _Atomic uint64_t dropped_records;
    size_t map_len;
} pa__heap_tables_t;

/* Per-thread sampling state (initial-exec TLS: no allocation on first use, valid from the
 * first instruction of a thread to its last). */
typedef struct pa__heap_thread {
    uint64_t countdown; /* bytes to allocate before the next sample (fast path: size < this) */
    uint64_t rng;       /* xorshift state; 0 until the thread's first interval is drawn */
    uint32_t gen;       /* pa__heap_gen when the interval was drawn */
    uint32_t excluded;  /* never sample this thread */
} pa__heap_thread_t;

extern __thread pa__heap_thread_t pa__heap_thread __attribute__((tls_model("initial-exec")));

/* The tables the hooks record into; NULL before the constructor, when the rate is 0, and in
 * sanitizer builds. */
extern _Atomic(pa__heap_tables_t *) pa__heap_tables;
/* Sampling rate in bytes; 0 off. */
extern _Atomic int64_t pa__heap_rate;
/* Bumped whenever the rate or the tables change: a thread that sees a new value draws a new
 * interval before it samples again. */
extern _Atomic uint32_t pa__heap_gen;

static inline size_t pa__heap_live_bucket(const pa__heap_tables_t *t, uintptr_t p)
{
    /* malloc pointers are 16-aligned: drop the zero bits, then Fibonacci hashing */
    return (size_t)(((uint64_t)(p >> 4) * 0x9e3779b97f4a7c15ULL) >> t->live_shift);
}

/* Size class of an allocation: exact below 16 bytes, else the power of two and the next 3
 * bits (8 classes per power of two). */
static inline uint64_t pa__heap_size_class(uint64_t size)
{
    unsigned e;

    if (size < 16)
        return size;
    e = 63 - (unsigned)__builtin_clzll(size);
    return ((uint64_t)e << 3) | ((size >> (e - 3)) & 7);
}

/* ---- for the hooks: the sampling interval ---- */

/* ln(u) for u in (0, 1]: u = m * 2^e, m in [1, 2); ln m = 2 atanh((m-1)/(m+1)), whose series
 * converges fast for s < 1/3 (error <= 1.1e-7, at u just below 1: plenty for a sampling
 * interval; unit.pa_heap checks it against libm). No libm. */
static inline double pa__heap_ln01(double u)
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
static inline uint64_t pa__heap_next_interval(pa__heap_thread_t *th, int64_t rate)
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
    return (uint64_t)(-pa__heap_ln01(u) * (double)rate) + 1;
}

static inline void pa__heap_seed(pa__heap_thread_t *th)
{
    struct timespec ts;
    uint64_t x;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    x = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
        ((uint64_t)(uintptr_t)th * 0x9e3779b97f4a7c15ULL);
    th->rng = x != 0 ? x : 0x2545f4914f6cdd1dULL;
}

/* ---- for the hooks: the tables (allocation-free, lock-free) ---- */

static inline uint64_t pa__heap_hash_record(const uintptr_t *pcs, uint32_t n, uint64_t cls)
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

static inline int pa__heap_same_record(const pa__heap_record_t *r, uint64_t h, const uintptr_t *pcs,
                                       uint32_t n, uint64_t cls)
{
    return r->hash == h && r->size_class == cls && r->npcs == n &&
           memcmp(r->pcs, pcs, n * sizeof(*pcs)) == 0;
}

/* The record of (pcs, size class), added if new; PA__HEAP_NO_RECORD when the table is full. A
 * record is filled before its index slot is published (CAS, release), so readers that see the
 * index see the whole record. Two threads adding the same new stack at once may both claim a
 * record; the loser's stays unpublished (never counted, never visited). Nobody ever waits. */
static inline uint32_t pa__heap_find_record(pa__heap_tables_t *t, const uintptr_t *pcs, uint32_t n,
                                            uint64_t cls)
{
    uint64_t h = pa__heap_hash_record(pcs, n, cls);
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
        if (pa__heap_same_record(&t->records[v - 1], h, pcs, n, cls))
            return v - 1;
    }
    return PA__HEAP_NO_RECORD;
}

/* Claim a live slot for p (size bytes) in its bucket: 0, or -1 when the bucket's ways are all
 * taken. */
static inline int pa__heap_track(pa__heap_tables_t *t, uintptr_t p, uint32_t record, uint64_t size)
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
static inline uint32_t pa__heap_untrack(pa__heap_tables_t *t, size_t b, uintptr_t p, uint64_t *size)
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
static inline uint32_t pa__heap_lookup_and_untrack(void *p, pa__heap_tables_t **tp, uint64_t *size)
{
    pa__heap_tables_t *t = atomic_load_explicit(&pa__heap_tables, memory_order_acquire);
    size_t b;

    *tp = t;
    if (t == NULL || p == NULL)
        return PA__HEAP_NO_RECORD;
    b = pa__heap_live_bucket(t, (uintptr_t)p);
    if (__builtin_expect(atomic_load_explicit(&t->live_count[b], memory_order_relaxed) == 0, 1))
        return PA__HEAP_NO_RECORD;
    return pa__heap_untrack(t, b, (uintptr_t)p, size);
}

/* Count a free of size bytes in record r. */
static inline void pa__heap_count_free(pa__heap_tables_t *t, uint32_t r, uint64_t size)
{
    atomic_fetch_add_explicit(&t->records[r].frees, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->records[r].free_bytes, size, memory_order_relaxed);
}

/* Tests: replace the tables (0 sizes: the defaults; live_buckets a power of two >= 2) and the rate,
 * as at load time. Only when no other thread allocates. The calling thread draws a new interval at
 * its next allocation. */
int pa__heap_configure(int64_t rate, size_t live_buckets, size_t max_records);
/* Tests: the calling thread forgets its countdown (next allocation draws a new interval). */
void pa__heap_thread_reset(void);

#endif
