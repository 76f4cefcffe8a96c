/* pa_heap: control side of the heap sampler (see pa_heap.h); the interposed entry points are
 * in pa_heap_hook.c. Here: the singletons they read, the load-time constructor (rate from
 * PROFAGENT_MEM_RATE, libunwind set-up, the tables), fork, snapshots and Go's scaling. */
#include "pa_heap.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pa_agent.h"
#include "pa_cpu.h"
#include "pa_query.h"

typedef size_t (*usable_size_fn)(void *);

/* singletons read by the hooks (pa_heap_hook.c) */
_Atomic(pa__heap_tables_t *) pa__heap_tables;
_Atomic int64_t pa__heap_rate = PA_HEAP_DEFAULT_RATE; /* until the constructor reads the env */
_Atomic uint32_t pa__heap_gen;
__thread pa__heap_thread_t pa__heap_thread __attribute__((tls_model("initial-exec")));
_Atomic(usable_size_fn) pa__heap_real_usable_size;

int64_t pa_heap_rate(void)
{
    return atomic_load(&pa__heap_rate);
}

void pa_heap_exclude_this_thread(void)
{
    pa__heap_thread.excluded = 1;
    pa__heap_thread.countdown = UINT64_MAX;
}

void pa__heap_thread_reset(void)
{
    pa__heap_thread.countdown = 0;
    pa__heap_thread.rng = 0;
    pa__heap_thread.excluded = 0;
}

/* exp(-x) for x >= 0 without libm: exp(-x) = exp(-x/64)^64, the inner one by its Taylor series
 * (x/64 <= 0.625 below, so 16 terms are exact to double precision). */
static double exp_neg(double x)
{
    double y, term = 1, sum = 1;

    if (x > 40)
        return 0; /* < 5e-18: 1 - exp(-x) is 1 in double */
    y = -x / 64;
    for (int k = 1; k <= 16; k++) {
        term *= y / k;
        sum += term;
    }
    for (int i = 0; i < 6; i++)
        sum *= sum;
    return sum;
}

/* Go's runtime/pprof scaleHeapSample, including its rounding (int64 conversion truncates) */
void pa_heap_scale(int64_t count, int64_t size, int64_t rate, int64_t *out_count, int64_t *out_size)
{
    double avg, x, p;

    if (count == 0 || size == 0) {
        *out_count = 0;
        *out_size = 0;
        return;
    }
    if (rate <= 1) {
        *out_count = count;
        *out_size = size;
        return;
    }
    avg = (double)size / (double)count;
    x = avg / (double)rate;
    /* 1 - exp(-x); its series where the subtraction would cancel */
    p = x < 1e-4 ? x * (1 - x / 2 * (1 - x / 3)) : 1 - exp_neg(x);
    *out_count = (int64_t)((double)count / p);
    *out_size = (int64_t)((double)size / p);
}

#ifndef PG_SANITIZE_BUILD

/* singleton: sizes of the current tables (reused for the child after fork) */
static struct {
    size_t live_buckets;
    size_t max_records;
} heap_singleton = {PA_HEAP_LIVE_BUCKETS, PA_HEAP_MAX_RECORDS};

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int tables_new(size_t live_buckets, size_t max_records, pa__heap_tables_t **out)
{
    size_t nindex = 2, off_live, off_count, off_index, off_records, len;
    unsigned shift = 64;
    pa__heap_tables_t *t;
    char *base;

    *out = NULL;
    if (live_buckets < 2 || (live_buckets & (live_buckets - 1)) != 0 || max_records < 1 ||
        max_records >= UINT32_MAX / 4)
        return -EINVAL;
    while (nindex < 2 * max_records)
        nindex <<= 1;
    for (size_t b = live_buckets; b > 1; b >>= 1)
        shift--;
    off_live = align64(sizeof(*t));
    off_count = off_live + align64(live_buckets * PA_HEAP_LIVE_WAYS * sizeof(pa__heap_live_t));
    off_index = off_count + align64(live_buckets);
    off_records = off_index + align64(nindex * sizeof(uint32_t));
    len = off_records + max_records * sizeof(pa__heap_record_t);
    /* anonymous pages are zero and only touched pages cost memory */
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    t = (pa__heap_tables_t *)base;
    t->live_shift = shift;
    t->live_buckets = live_buckets;
    t->index_mask = nindex - 1;
    t->max_records = (uint32_t)max_records;
    t->live = (pa__heap_live_t *)(base + off_live);
    t->live_count = (_Atomic uint8_t *)(base + off_count);
    t->index = (_Atomic uint32_t *)(base + off_index);
    t->records = (pa__heap_record_t *)(base + off_records);
    t->map_len = len;
    *out = t;
    return 0;
}

static void tables_free(pa__heap_tables_t *t)
{
    if (t != NULL)
        munmap(t, t->map_len);
}

/* Install new tables (or none when rate is 0). Only while no other thread can be in a hook:
 * at load time, in the child after fork, in tests. */
static int install(int64_t rate, size_t live_buckets, size_t max_records)
{
    pa__heap_tables_t *t = NULL, *old;
    int rc = 0;

    if (rate > 0)
        rc = tables_new(live_buckets, max_records, &t);
    if (rc < 0)
        rate = 0; /* heap profiling off rather than a crash */
    heap_singleton.live_buckets = live_buckets;
    heap_singleton.max_records = max_records;
    atomic_store(&pa__heap_rate, rate);
    old = atomic_exchange(&pa__heap_tables, t);
    atomic_fetch_add(&pa__heap_gen, 1);
    tables_free(old);
    return rc;
}

/* The child of a fork starts with empty tables; the parent's are unmapped in the child only. */
static void atfork_child(void)
{
    (void)install(atomic_load(&pa__heap_rate), heap_singleton.live_buckets,
                  heap_singleton.max_records);
}

static int64_t rate_from_env(void)
{
    const char *v = getenv("PROFAGENT_MEM_RATE");
    int64_t rate;

    if (v == NULL || *v == '\0')
        return PA_HEAP_DEFAULT_RATE;
    if (pa_query_parse_int(v, &rate) == 0 && rate >= 0 && rate <= PA_HEAP_MAX_RATE)
        return rate;
    fprintf(stderr, "profagent: PROFAGENT_MEM_RATE=\"%s\" ignored: want 0..%lld bytes\n", v,
            (long long)PA_HEAP_MAX_RATE);
    return PA_HEAP_DEFAULT_RATE;
}

/* Early (priority 101): allocations made before this run are not sampled (no tables yet). */
__attribute__((constructor(101))) static void pa_heap_on_load(void)
{
    int64_t rate = rate_from_env();
    void *f, *libc;
    int rc;

    /* libunwind's lazy set-up (and per-thread caches) before any hook unwinds */
    pa_cpu_init();
    /* glibc's own, not the next one in the search order: a program linked with another
     * allocator (whose malloc ours shadows, see pa_heap.h) must not get its answer for
     * glibc's blocks */
    f = NULL;
    libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (libc != NULL) {
        f = dlsym(libc, "malloc_usable_size");
        dlclose(libc);
    }
    if (f == NULL)
        f = dlsym(RTLD_NEXT, "malloc_usable_size");
    if (f != NULL)
        atomic_store(&pa__heap_real_usable_size, (usable_size_fn)f);
    rc = install(rate, PA_HEAP_LIVE_BUCKETS, PA_HEAP_MAX_RECORDS);
    if (rc < 0)
        fprintf(stderr, "profagent: heap profiling off: cannot map its tables: %s\n",
                strerror(-rc));
    /* This thread (the main one, running constructors) drew its interval at the default rate
     * when it first allocated, before this ran; a thread sees a new rate only when its
     * countdown runs out, so at PROFAGENT_MEM_RATE=1 its first ~512 KiB (mean) went unsampled
     * (integration.agent_heap's full live table, flaky). Draw again, at the configured rate,
     * at its next allocation. Threads started before this keep theirs until it runs out. */
    pa__heap_thread.countdown = 0;
    pthread_atfork(NULL, NULL, atfork_child);
}

int pa_heap_available(void)
{
    return 1;
}

int pa__heap_configure(int64_t rate, size_t live_buckets, size_t max_records)
{
    int rc;

    if (rate < 0 || rate > PA_HEAP_MAX_RATE)
        return -EINVAL;
    rc = install(rate, live_buckets ? live_buckets : PA_HEAP_LIVE_BUCKETS,
                 max_records ? max_records : PA_HEAP_MAX_RECORDS);
    pa__heap_thread_reset();
    return rc;
}

int pa_heap_snapshot(pa_stacktab_t *out, int scaled, pa_heap_stats_t *stats)
{
    pa__heap_tables_t *t = atomic_load(&pa__heap_tables);
    int64_t rate = atomic_load(&pa__heap_rate);
    pa_heap_stats_t st;

    if (pa_stacktab_nvalues(out) != PA_HEAP_NVALUES)
        return -EINVAL;
    memset(&st, 0, sizeof(st));
    st.rate = rate;
    if (t != NULL) {
        st.max_records = t->max_records;
        st.live_capacity = (uint64_t)t->live_buckets * PA_HEAP_LIVE_WAYS;
        st.dropped_live = atomic_load_explicit(&t->dropped_live, memory_order_relaxed);
        st.dropped_records = atomic_load_explicit(&t->dropped_records, memory_order_relaxed);
        for (size_t s = 0; s <= t->index_mask; s++) {
            uint32_t v = atomic_load_explicit(&t->index[s], memory_order_acquire);
            pa__heap_record_t *r;
            uint64_t allocs, frees, alloc_bytes, free_bytes;
            int64_t values[PA_HEAP_NVALUES];

            if (s % 256 == 255)
                pa_agent_fork_point(); /* between records: the tables take no lock */
            if (v == 0)
                continue;
            r = &t->records[v - 1];
            st.records++;
            /* frees before allocs: a free is counted after its allocation, so what is read
             * never has more frees than allocations. An allocation in progress may show its
             * bytes without its object (bytes are added first); with nothing left in use,
             * no bytes are either. Clamped also for the estimated sizes of >= 4 GiB frees. */
            frees = atomic_load_explicit(&r->frees, memory_order_acquire);
            free_bytes = atomic_load_explicit(&r->free_bytes, memory_order_acquire);
            allocs = atomic_load_explicit(&r->allocs, memory_order_acquire);
            alloc_bytes = atomic_load_explicit(&r->alloc_bytes, memory_order_acquire);
            if (allocs == 0)
                continue; /* its first sample found no live slot */
            if (frees > allocs)
                frees = allocs;
            if (free_bytes > alloc_bytes || frees == allocs)
                free_bytes = alloc_bytes;
            values[PA_HEAP_ALLOC_OBJECTS] = (int64_t)allocs;
            values[PA_HEAP_ALLOC_SPACE] = (int64_t)alloc_bytes;
            values[PA_HEAP_INUSE_OBJECTS] = (int64_t)(allocs - frees);
            values[PA_HEAP_INUSE_SPACE] = (int64_t)(alloc_bytes - free_bytes);
            st.live += allocs - frees;
            if (scaled) {
                pa_heap_scale(values[0], values[1], rate, &values[0], &values[1]);
                pa_heap_scale(values[2], values[3], rate, &values[2], &values[3]);
            }
            if (pa_stacktab_add(out, r->pcs, r->npcs, values) < 0)
                st.dropped_stacks++;
        }
    }
    if (stats != NULL)
        *stats = st;
    return 0;
}

/* The stack of a record, without its size class (records of one stack differ only there). */
static uint64_t stack_hash(const pa__heap_record_t *r)
{
    return pa__heap_hash_record(r->pcs, r->npcs, 0);
}

int pa_heap_count(uint64_t *inuse_stacks, uint64_t *alloc_stacks)
{
    pa__heap_tables_t *t = atomic_load(&pa__heap_tables);
    uint32_t *set; /* open addressing: record index + 1 of the first record of each stack */
    uint8_t *inuse;
    size_t mask;

    *inuse_stacks = *alloc_stacks = 0;
    if (t == NULL)
        return 0;
    mask = t->index_mask; /* >= 2 * max_records - 1: never full */
    set = calloc(mask + 1, sizeof(*set));
    inuse = calloc(mask + 1, 1);
    if (set == NULL || inuse == NULL) {
        free(set);
        free(inuse);
        return -ENOMEM;
    }
    for (size_t s = 0; s <= mask; s++) {
        uint32_t v = atomic_load_explicit(&t->index[s], memory_order_acquire);
        pa__heap_record_t *r;
        uint64_t frees, allocs;
        size_t i;

        if (v == 0)
            continue;
        r = &t->records[v - 1];
        /* frees first, as pa_heap_snapshot reads them */
        frees = atomic_load_explicit(&r->frees, memory_order_acquire);
        allocs = atomic_load_explicit(&r->allocs, memory_order_acquire);
        if (allocs == 0)
            continue;
        for (i = (size_t)stack_hash(r) & mask; set[i] != 0; i = (i + 1) & mask) {
            const pa__heap_record_t *o = &t->records[set[i] - 1];
            if (o->npcs == r->npcs && memcmp(o->pcs, r->pcs, r->npcs * sizeof(*r->pcs)) == 0)
                break;
        }
        if (set[i] == 0) {
            set[i] = v;
            (*alloc_stacks)++;
        }
        if (allocs > frees && !inuse[i]) {
            inuse[i] = 1;
            (*inuse_stacks)++;
        }
    }
    free(set);
    free(inuse);
    return 0;
}

#else /* PG_SANITIZE_BUILD: the sanitizer interposes malloc; no hooks, no tables */

int pa_heap_available(void)
{
    return 0;
}

int pa__heap_configure(int64_t rate, size_t live_buckets, size_t max_records)
{
    (void)rate;
    (void)live_buckets;
    (void)max_records;
    return -ENOTSUP;
}

int pa_heap_snapshot(pa_stacktab_t *out, int scaled, pa_heap_stats_t *stats)
{
    (void)out;
    (void)scaled;
    if (stats != NULL)
        memset(stats, 0, sizeof(*stats));
    return -ENOTSUP;
}

int pa_heap_count(uint64_t *inuse_stacks, uint64_t *alloc_stacks)
{
    *inuse_stacks = *alloc_stacks = 0;
    return -ENOTSUP;
}

#endif
