/* Unit tests for pa_heap and its hooks: Go's scaling, every interposed entry point recorded at
 * its caller, frees moving allocations out of in-use, bounded tables with counted drops, rate
 * 0, fork, threads, accuracy of inuse_space against a known live amount, and the sampling
 * intervals' distribution (exponential with mean rate, the hooks' own ln).
 * This executable links libprofagent statically, so its malloc is the agent's. In sanitizer
 * builds the hooks are compiled out: only the scaling and the "unavailable" answers are
 * tested there. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_heap.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"

#define NOINLINE __attribute__((noinline, noclone))
/* keeps the call before it from being a tail call, so the site has a frame of its own */
#define NOTAIL(v) __asm__ volatile("" : : "r"(v) : "memory")

static void test_heap_scale_matches_go_scaleHeapSample(void **state)
{
    int64_t c, s;
    (void)state;
    /* reference values from Go's formula evaluated with libm */
    pa_heap_scale(1, 524288, 524288, &c, &s);
    assert_int_equal(c, 1);
    assert_true(s >= 829410 && s <= 829412);
    pa_heap_scale(1000, 16000, 524288, &c, &s);
    assert_true(c >= 32768490 && c <= 32768510);
    assert_true(s >= 524295900 && s <= 524296100);
    pa_heap_scale(3, 3 * 4096, 16384, &c, &s);
    assert_int_equal(c, 13);
    assert_true(s >= 55550 && s <= 55552);
    pa_heap_scale(10, 10 * (1 << 20), 524288, &c, &s);
    assert_int_equal(c, 11);
    assert_true(s >= 12126960 && s <= 12126972);
    pa_heap_scale(7, 700, 1, &c, &s); /* rate 1: every allocation was sampled */
    assert_int_equal(c, 7);
    assert_int_equal(s, 700);
    pa_heap_scale(0, 0, 524288, &c, &s);
    assert_int_equal(c, 0);
    assert_int_equal(s, 0);
}

/* The hooks' ln(u) (no libm in a signal-safe path) against libm's values, computed offline. */
static void test_heap_ln01_matches_libm(void **state)
{
    static const double u[] = {1.0, 0.999, 0.9,  0.75,  0.6,     0.5,
                               0.3, 0.1,   1e-5, 1e-10, 0x1p-53, 1e-300};
    static const double ln[] = {0.0,
                                -0.0010005003335835344,
                                -0.10536051565782628,
                                -0.2876820724517809,
                                -0.5108256237659907,
                                -0.6931471805599453,
                                -1.2039728043259361,
                                -2.3025850929940455,
                                -11.512925464970229,
                                -23.025850929940457,
                                -36.7368005696771,
                                -690.7755278982137};
    (void)state;
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        double d = pa__heap_ln01(u[i]) - ln[i];
        if (d < -2e-7 || d > 2e-7) /* the series stops at s^11: 1.07e-7 at worst, near u = 1 */
            fail_msg("ln(%g) = %.17g, libm says %.17g", u[i], pa__heap_ln01(u[i]), ln[i]);
    }
}

/* Sampling intervals are exponential with mean rate (Go's nextSample): a fixed seed and 200000
 * draws, so the figures are deterministic; the bounds are 4-5 standard deviations of a true
 * exponential, so a wrong distribution (uniform, fixed, off by a factor) fails. */
static void test_heap_intervals_are_exponential_with_mean_rate(void **state)
{
    enum { N = 200000 };
    const int64_t rate = 524288;
    pa__heap_thread_t th = {.rng = 0x9e3779b97f4a7c15ULL};
    double sum = 0, sum2 = 0, mean, cv2;
    unsigned above1 = 0, above3 = 0, zero = 0;
    (void)state;

    for (int i = 0; i < N; i++) {
        uint64_t v = pa__heap_next_interval(&th, rate);
        sum += (double)v;
        sum2 += (double)v * (double)v;
        above1 += v > (uint64_t)rate;
        above3 += v > 3 * (uint64_t)rate;
        zero += v == 0;
    }
    mean = sum / N;
    cv2 = (sum2 / N - mean * mean) / (mean * mean); /* (sd / mean)^2, no libm */
    print_message("mean %.0f (rate %lld), (sd/mean)^2 %.4f, P(>rate) %.4f, P(>3 rate) %.4f\n", mean,
                  (long long)rate, cv2, (double)above1 / N, (double)above3 / N);
    assert_int_equal(zero, 0);                             /* never "sample now" */
    assert_true(mean > 0.99 * rate && mean < 1.01 * rate); /* sd of the mean: 0.22% */
    assert_true(cv2 > 0.9604 && cv2 < 1.0404);             /* exponential: sd = mean */
    assert_true((double)above1 / N > 0.3629 && (double)above1 / N < 0.3729); /* e^-1 */
    assert_true((double)above3 / N > 0.0468 && (double)above3 / N < 0.0528); /* e^-3 */
    /* rate 1 samples every allocation; rate 0 (off) waits long before looking again */
    assert_int_equal(pa__heap_next_interval(&th, 1), 0);
    assert_int_equal(pa__heap_next_interval(&th, 0), (uint64_t)1 << 30);
}

#ifndef PG_SANITIZE_BUILD

/* ---- helpers: the values of the stacks whose leaf is in a named function ---- */

typedef struct site_sum {
    pa_symtab_t *sym;
    const char *name;
    int64_t v[PA_HEAP_NVALUES];
    size_t stacks;
} site_sum_t;

static int on_stack(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    site_sum_t *s = arg;
    pa_sym_t sym;

    if (npcs == 0 || pa_symtab_lookup(s->sym, pcs[0], &sym) < 0 || sym.name == NULL ||
        strcmp(sym.name, s->name) != 0)
        return 0;
    for (int i = 0; i < PA_HEAP_NVALUES; i++)
        s->v[i] += values[i];
    s->stacks++;
    return 0;
}

/* Snapshot (scaled or raw) and sum the stacks whose leaf frame is in function name. */
static site_sum_t site(const char *name, int scaled, pa_heap_stats_t *stats)
{
    site_sum_t s;
    pa_stacktab_t *t;

    memset(&s, 0, sizeof(s));
    s.name = name;
    assert_int_equal(pa_stacktab_new(PA_HEAP_NVALUES, PA_HEAP_MAX_RECORDS, &t), 0);
    assert_int_equal(pa_heap_snapshot(t, scaled, stats), 0);
    assert_int_equal(pa_symtab_new(&s.sym), 0);
    pa_stacktab_foreach(t, on_stack, &s);
    pa_symtab_free(s.sym);
    s.sym = NULL;
    pa_stacktab_free(t);
    return s;
}

static int setup_rate1(void **state)
{
    (void)state;
    return pa__heap_configure(1, 0, 0);
}

static int teardown_default(void **state)
{
    (void)state;
    return pa__heap_configure(PA_HEAP_DEFAULT_RATE, 0, 0);
}

/* ---- allocation sites (each a named, non-inlined caller of one entry point) ---- */

NOINLINE void *site_malloc(size_t n);
NOINLINE void *site_malloc(size_t n)
{
    void *p_ = malloc(n);
    NOTAIL(p_);
    return p_;
}
NOINLINE void *site_calloc(size_t n, size_t m);
NOINLINE void *site_calloc(size_t n, size_t m)
{
    void *p_ = calloc(n, m);
    NOTAIL(p_);
    return p_;
}
NOINLINE void *site_realloc(void *p, size_t n);
NOINLINE void *site_realloc(void *p, size_t n)
{
    void *p_ = realloc(p, n);
    NOTAIL(p_);
    return p_;
}
NOINLINE void *site_reallocarray(void *p, size_t n, size_t m);
NOINLINE void *site_reallocarray(void *p, size_t n, size_t m)
{
    void *p_ = reallocarray(p, n, m);
    NOTAIL(p_);
    return p_;
}
NOINLINE int site_posix_memalign(void **p, size_t a, size_t n);
NOINLINE int site_posix_memalign(void **p, size_t a, size_t n)
{
    int rc_ = posix_memalign(p, a, n);
    NOTAIL(rc_);
    return rc_;
}
NOINLINE void *site_aligned_alloc(size_t a, size_t n);
NOINLINE void *site_aligned_alloc(size_t a, size_t n)
{
    void *p_ = aligned_alloc(a, n);
    NOTAIL(p_);
    return p_;
}
NOINLINE void *site_memalign(size_t a, size_t n);
NOINLINE void *site_memalign(size_t a, size_t n)
{
    void *p_ = memalign(a, n);
    NOTAIL(p_);
    return p_;
}
NOINLINE void *site_valloc(size_t n);
NOINLINE void *site_valloc(size_t n)
{
    void *p_ = valloc(n);
    NOTAIL(p_);
    return p_;
}
NOINLINE void *site_pvalloc(size_t n);
NOINLINE void *site_pvalloc(size_t n)
{
    void *p_ = pvalloc(n);
    NOTAIL(p_);
    return p_;
}

static void test_heap_records_malloc_at_its_caller_and_free_moves_it_out_of_inuse(void **state)
{
    void *p[10];
    site_sum_t s;
    (void)state;

    assert_int_equal(pa_heap_rate(), 1);
    for (int i = 0; i < 10; i++)
        assert_non_null(p[i] = site_malloc(1000));
    s = site("site_malloc", 1, NULL);
    assert_int_equal(s.v[PA_HEAP_ALLOC_OBJECTS], 10);
    assert_int_equal(s.v[PA_HEAP_ALLOC_SPACE], 10000);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 10);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], 10000);
    for (int i = 0; i < 4; i++)
        free(p[i]);
    s = site("site_malloc", 1, NULL);
    assert_int_equal(s.v[PA_HEAP_ALLOC_OBJECTS], 10);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 6);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], 6000);
    for (int i = 4; i < 10; i++)
        free(p[i]);
    s = site("site_malloc", 1, NULL);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 0);
    assert_int_equal(s.v[PA_HEAP_ALLOC_SPACE], 10000);
}

static void test_heap_every_entry_point_is_recorded_and_behaves_like_glibc(void **state)
{
    void *a, *b, *c, *d, *e, *f, *g, *h;
    site_sum_t s;
    int rc;
    (void)state;

    a = site_calloc(10, 100);
    assert_non_null(a);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(((unsigned char *)a)[i], 0);
    assert_int_equal(site("site_calloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 1000);

    /* realloc: the old block is freed, the new one allocated at the realloc's caller */
    b = site_malloc(100);
    memset(b, 7, 100);
    b = site_realloc(b, 5000);
    assert_non_null(b);
    assert_int_equal(((unsigned char *)b)[99], 7);
    s = site("site_malloc", 1, NULL);
    assert_int_equal(s.v[PA_HEAP_ALLOC_OBJECTS], 1);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 0);
    assert_int_equal(site("site_realloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 5000);
    b = site_reallocarray(b, 100, 70);
    assert_non_null(b);
    assert_int_equal(site("site_realloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 0);
    assert_int_equal(site("site_reallocarray", 1, NULL).v[PA_HEAP_INUSE_SPACE], 7000);
    errno = 0;
    assert_null(site_reallocarray(b, SIZE_MAX / 2, 3)); /* overflow: b untouched */
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(site("site_reallocarray", 1, NULL).v[PA_HEAP_INUSE_SPACE], 7000);
    /* realloc(NULL, n) is malloc; realloc(p, 0) frees */
    c = site_realloc(NULL, 300);
    assert_int_equal(site("site_realloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 300);
    assert_null(site_realloc(c, 0));
    assert_int_equal(site("site_realloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 0);

    d = (void *)1;
    assert_int_equal(site_posix_memalign(&d, 3, 100), EINVAL);
    assert_int_equal(site_posix_memalign(&d, 24, 100), EINVAL);
    assert_ptr_equal(d, (void *)1);
    rc = site_posix_memalign(&d, 256, 2000);
    assert_int_equal(rc, 0);
    assert_int_equal((uintptr_t)d % 256, 0);
    assert_int_equal(site("site_posix_memalign", 1, NULL).v[PA_HEAP_INUSE_SPACE], 2000);
    e = site_aligned_alloc(64, 640);
    assert_int_equal((uintptr_t)e % 64, 0);
    assert_int_equal(site("site_aligned_alloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 640);
    f = site_memalign(4096, 10);
    assert_int_equal((uintptr_t)f % 4096, 0);
    assert_int_equal(site("site_memalign", 1, NULL).v[PA_HEAP_INUSE_SPACE], 10);
    g = site_valloc(100);
    assert_int_equal((uintptr_t)g % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    assert_int_equal(site("site_valloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 100);
    h = site_pvalloc(100);
    assert_int_equal((uintptr_t)h % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    assert_int_equal(site("site_pvalloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 100);
    assert_true(malloc_usable_size(e) >= 640);
    assert_true(malloc_usable_size(a) >= 1000);

    free(a);
    free(b);
    free(d);
    free(e);
    free(f);
    free(g);
    free(h);
    assert_int_equal(site("site_calloc", 1, NULL).v[PA_HEAP_INUSE_OBJECTS], 0);
    assert_int_equal(site("site_reallocarray", 1, NULL).v[PA_HEAP_INUSE_OBJECTS], 0);
    assert_int_equal(site("site_posix_memalign", 1, NULL).v[PA_HEAP_INUSE_OBJECTS], 0);
    assert_int_equal(site("site_pvalloc", 1, NULL).v[PA_HEAP_INUSE_OBJECTS], 0);
    assert_int_equal(site("site_pvalloc", 1, NULL).v[PA_HEAP_ALLOC_OBJECTS], 1);
}

static void test_heap_size_classes_are_8_per_power_of_two(void **state)
{
    (void)state;
    assert_int_equal(pa__heap_size_class(0), 0);
    assert_int_equal(pa__heap_size_class(15), 15);
    /* 16..17 share a class, 18 starts the next: 8 classes between 16 and 32 */
    assert_int_equal(pa__heap_size_class(16), pa__heap_size_class(17));
    assert_true(pa__heap_size_class(18) != pa__heap_size_class(17));
    assert_int_equal(pa__heap_size_class(1024), pa__heap_size_class(1151));
    assert_true(pa__heap_size_class(1152) != pa__heap_size_class(1151));
    assert_true(pa__heap_size_class(2047) < pa__heap_size_class(2048));
    assert_true(pa__heap_size_class(15) < pa__heap_size_class(16));
    assert_true(pa__heap_size_class(UINT64_MAX) > pa__heap_size_class(1ULL << 62));
}

/* Many sizes from one stack make a few records (one per class) with exact byte totals. */
static void test_heap_many_sizes_at_one_site_keep_exact_bytes_in_few_records(void **state)
{
    void *p[300];
    pa_heap_stats_t st;
    site_sum_t s;
    int64_t want = 0;
    (void)state;

    for (int i = 0; i < 300; i++) {
        p[i] = site_malloc(1000 + (size_t)i);
        want += 1000 + i;
    }
    s = site("site_malloc", 0, &st);
    assert_int_equal(s.v[PA_HEAP_ALLOC_OBJECTS], 300);
    assert_int_equal(s.v[PA_HEAP_ALLOC_SPACE], want);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], want);
    assert_true(st.records < 50); /* 1000..1299: 3 classes at this site, plus the others */
    for (int i = 0; i < 300; i += 2) {
        free(p[i]);
        want -= 1000 + i;
    }
    s = site("site_malloc", 0, NULL);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 150);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], want);
    for (int i = 1; i < 300; i += 2)
        free(p[i]);
    s = site("site_malloc", 0, NULL);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], 0);
}

/* pa_heap_count (the index page's counts) against a snapshot's stacks, with the calling
 * thread excluded while counting (as the agent thread is), so that its own allocations do not
 * change what it counts. */
static void heap_count_unperturbed(uint64_t *inuse, uint64_t *all)
{
    pa_heap_exclude_this_thread();
    assert_int_equal(pa_heap_count(inuse, all), 0);
    pa__heap_thread_reset();
}

static int count_inuse(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    (void)pcs;
    (void)npcs;
    *(uint64_t *)arg += values[PA_HEAP_INUSE_OBJECTS] > 0;
    return 0;
}

static void test_heap_count_is_the_stacks_of_a_snapshot_in_use_and_ever(void **state)
{
    static const size_t sizes[3] = {1000, 5000, 50000};
    void *p[3];
    pa_stacktab_t *t;
    uint64_t inuse0, all0, inuse1, all1, inuse2, all2, snap_inuse = 0;
    (void)state;

    assert_int_equal(pa_stacktab_new(PA_HEAP_NVALUES, PA_HEAP_MAX_RECORDS, &t), 0);
    heap_count_unperturbed(&inuse0, &all0);
    /* one stack (one call site: a volatile index keeps the loop from being unrolled into
     * three), three size classes: three records, one stack */
    for (volatile int i = 0; i < 3; i++)
        p[i] = site_malloc(sizes[i]);
    heap_count_unperturbed(&inuse1, &all1);
    assert_int_equal(pa_heap_snapshot(t, 0, NULL), 0);
    pa_stacktab_foreach(t, count_inuse, &snap_inuse);
    assert_int_equal(all1, pa_stacktab_count(t));
    assert_int_equal(inuse1, snap_inuse);
    assert_int_equal(all1, all0 + 1);
    assert_int_equal(inuse1, inuse0 + 1);
    for (int i = 0; i < 3; i++)
        free(p[i]);
    heap_count_unperturbed(&inuse2, &all2);
    assert_int_equal(inuse2, inuse1 - 1); /* site_malloc's stack holds nothing now */
    assert_int_equal(all2, all1);         /* but it allocated */
    pa_stacktab_free(t);
}

static void test_heap_rate_zero_records_nothing(void **state)
{
    void *p;
    pa_heap_stats_t st;
    (void)state;

    assert_int_equal(pa__heap_configure(0, 0, 0), 0);
    assert_int_equal(pa_heap_rate(), 0);
    for (int i = 0; i < 100; i++) {
        p = site_malloc(1 << 20);
        free(p);
    }
    assert_int_equal(site("site_malloc", 1, &st).stacks, 0);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.rate, 0);
}

static void test_heap_full_tables_count_drops_and_keep_inuse_honest(void **state)
{
    void *p[40];
    pa_heap_stats_t st;
    site_sum_t s;
    (void)state;

    /* 2 buckets of 4 ways: at most 8 live sampled allocations; 64 records */
    assert_int_equal(pa__heap_configure(1, 2, 64), 0);
    for (int i = 0; i < 40; i++)
        p[i] = site_malloc(100);
    s = site("site_malloc", 1, &st);
    assert_true(st.live <= 8);
    assert_true(st.dropped_live >= 32);
    /* dropped allocations are not counted at all: what is in use can all be freed */
    assert_true(s.v[PA_HEAP_INUSE_OBJECTS] <= 8);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], s.v[PA_HEAP_ALLOC_OBJECTS]);
    for (int i = 0; i < 40; i++)
        free(p[i]);
    s = site("site_malloc", 1, &st);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 0);

    /* 4 records: sizes of different size classes at one site are different records */
    assert_int_equal(pa__heap_configure(1, 0, 4), 0);
    for (int i = 0; i < 10; i++)
        free(site_malloc((size_t)100 << i));
    (void)site("site_malloc", 1, &st);
    assert_true(st.records <= 4);
    assert_true(st.dropped_records >= 6);
    assert_int_equal(pa__heap_configure(1, 0, 0), 0);
}

/* 64 MiB in pieces of 4 KiB..1 MiB (log-uniform: as many 4-8 KiB pieces as 512 KiB-1 MiB
 * ones, so most pieces are sampled with probability well below 1 and the scaling matters)
 * stays live: inuse_space at the site within 10%. The rate is 64 KiB, not the default: for
 * this mix the estimate's relative standard deviation is ~0.95% at 64 KiB but ~6.8% at
 * 512 KiB, where a 10% bound would fail about one run in seven. */
NOINLINE void *site_accuracy(size_t n);
NOINLINE void *site_accuracy(size_t n)
{
    void *p_ = malloc(n);
    NOTAIL(p_);
    return p_;
}

static void test_heap_inuse_space_is_within_10_percent_of_a_known_live_amount(void **state)
{
    enum { TOTAL = 64 << 20, MAXN = 20000 };
    static void *blocks[MAXN];
    size_t n = 0, total = 0;
    uint64_t x = 88172645463325252ULL;
    site_sum_t s;
    double ratio;
    (void)state;

    assert_int_equal(pa__heap_configure(65536, 0, 0), 0);
    while (total < TOTAL && n < MAXN) {
        size_t sz;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sz = ((size_t)4096 << (x % 8)) + (size_t)(x >> 8) % ((size_t)4096 << (x % 8));
        if (total + sz > TOTAL)
            sz = TOTAL - total;
        blocks[n] = site_accuracy(sz);
        assert_non_null(blocks[n]);
        n++;
        total += sz;
    }
    assert_int_equal(total, TOTAL);
    s = site("site_accuracy", 1, NULL);
    ratio = (double)s.v[PA_HEAP_INUSE_SPACE] / TOTAL;
    print_message("inuse_space %lld of %d bytes (%.3f), %lld objects est. of %zu\n",
                  (long long)s.v[PA_HEAP_INUSE_SPACE], TOTAL, ratio,
                  (long long)s.v[PA_HEAP_INUSE_OBJECTS], n);
    assert_true(ratio > 0.9 && ratio < 1.1);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], s.v[PA_HEAP_ALLOC_SPACE]);
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    s = site("site_accuracy", 1, NULL);
    assert_int_equal(s.v[PA_HEAP_INUSE_SPACE], 0);
    ratio = (double)s.v[PA_HEAP_ALLOC_SPACE] / TOTAL;
    assert_true(ratio > 0.9 && ratio < 1.1);
}

static void test_heap_forked_child_starts_clean(void **state)
{
    void *p = site_malloc(777);
    pid_t pid;
    int status;
    (void)state;

    assert_int_equal(site("site_malloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 777);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        site_sum_t s = site("site_malloc", 1, NULL);
        void *q;
        if (s.stacks != 0)
            _exit(1);
        free(p); /* the parent's sampled pointer: unknown here, harmless */
        q = site_malloc(555);
        s = site("site_malloc", 1, NULL);
        _exit(s.v[PA_HEAP_INUSE_SPACE] == 555 && q != NULL ? 0 : 2);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(site("site_malloc", 1, NULL).v[PA_HEAP_INUSE_SPACE], 777);
    free(p);
}

NOINLINE void *site_thread(size_t n);
NOINLINE void *site_thread(size_t n)
{
    void *p_ = malloc(n);
    NOTAIL(p_);
    return p_;
}

enum { CHURN_THREADS = 4, CHURN_ROUNDS = 100000, KEEP = 16 };

static void *churn(void *arg)
{
    void *keep[KEEP] = {0};
    uint64_t x = (uintptr_t)arg * 2654435761ULL + 1;

    if ((uintptr_t)arg == 99) /* excluded: none of this thread's allocations count */
        pa_heap_exclude_this_thread();
    for (int i = 0; i < CHURN_ROUNDS; i++) {
        size_t k;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = (size_t)(x % KEEP);
        free(keep[k]);
        keep[k] = site_thread(16 + (size_t)(x >> 40) % 4000);
    }
    /* leave KEEP blocks live for the main thread to free after we exit */
    return memcpy(malloc(sizeof(keep)), keep, sizeof(keep));
}

static void test_heap_threads_churning_leave_exact_totals_and_exit_cleanly(void **state)
{
    pthread_t th[CHURN_THREADS + 1];
    void **kept[CHURN_THREADS + 1];
    pa_heap_stats_t st;
    site_sum_t s;
    (void)state;

    assert_int_equal(pa__heap_configure(4096, 0, 0), 0);
    for (uintptr_t i = 0; i < CHURN_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < CHURN_THREADS; i++)
        assert_int_equal(pthread_join(th[i], (void **)&kept[i]), 0);
    s = site("site_thread", 0, &st);
    assert_true(s.v[PA_HEAP_ALLOC_OBJECTS] > 100);
    assert_true(s.v[PA_HEAP_INUSE_OBJECTS] <= CHURN_THREADS * KEEP);
    assert_int_equal(st.dropped_live, 0);
    assert_int_equal(st.dropped_records, 0);
    for (int i = 0; i < CHURN_THREADS; i++) {
        for (int k = 0; k < KEEP; k++)
            free(kept[i][k]);
        free(kept[i]);
    }
    s = site("site_thread", 0, NULL);
    assert_int_equal(s.v[PA_HEAP_INUSE_OBJECTS], 0);

    /* an excluded thread is never sampled */
    assert_int_equal(pa__heap_configure(1, 0, 0), 0);
    assert_int_equal(pthread_create(&th[CHURN_THREADS], NULL, churn, (void *)99), 0);
    assert_int_equal(pthread_join(th[CHURN_THREADS], (void **)&kept[CHURN_THREADS]), 0);
    s = site("site_thread", 0, NULL);
    assert_int_equal(s.stacks, 0);
    for (int k = 0; k < KEEP; k++)
        free(kept[CHURN_THREADS][k]);
    free(kept[CHURN_THREADS]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_scale_matches_go_scaleHeapSample),
        cmocka_unit_test(test_heap_ln01_matches_libm),
        cmocka_unit_test(test_heap_intervals_are_exponential_with_mean_rate),
        cmocka_unit_test_setup_teardown(
            test_heap_records_malloc_at_its_caller_and_free_moves_it_out_of_inuse, setup_rate1,
            teardown_default),
        cmocka_unit_test_setup_teardown(
            test_heap_every_entry_point_is_recorded_and_behaves_like_glibc, setup_rate1,
            teardown_default),
        cmocka_unit_test(test_heap_size_classes_are_8_per_power_of_two),
        cmocka_unit_test_setup_teardown(
            test_heap_many_sizes_at_one_site_keep_exact_bytes_in_few_records, setup_rate1,
            teardown_default),
        cmocka_unit_test_setup_teardown(test_heap_count_is_the_stacks_of_a_snapshot_in_use_and_ever,
                                        setup_rate1, teardown_default),
        cmocka_unit_test_setup_teardown(test_heap_rate_zero_records_nothing, setup_rate1,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(test_heap_full_tables_count_drops_and_keep_inuse_honest,
                                        setup_rate1, teardown_default),
        cmocka_unit_test_setup_teardown(
            test_heap_inuse_space_is_within_10_percent_of_a_known_live_amount, setup_rate1,
            teardown_default),
        cmocka_unit_test_setup_teardown(test_heap_forked_child_starts_clean, setup_rate1,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(
            test_heap_threads_churning_leave_exact_totals_and_exit_cleanly, setup_rate1,
            teardown_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* sanitizer build: no hooks; the module says so */

static void test_heap_is_unavailable_in_sanitizer_builds(void **state)
{
    uint64_t inuse = 1, all = 1;
    pa_stacktab_t *t;
    (void)state;
    assert_int_equal(pa_heap_available(), 0);
    assert_int_equal(pa_stacktab_new(PA_HEAP_NVALUES, 16, &t), 0);
    assert_int_equal(pa_heap_snapshot(t, 1, NULL), -ENOTSUP);
    assert_int_equal(pa__heap_configure(1, 0, 0), -ENOTSUP);
    assert_int_equal(pa_heap_count(&inuse, &all), -ENOTSUP);
    assert_true(inuse == 0 && all == 0);
    pa_stacktab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_scale_matches_go_scaleHeapSample),
        cmocka_unit_test(test_heap_ln01_matches_libm),
        cmocka_unit_test(test_heap_intervals_are_exponential_with_mean_rate),
        cmocka_unit_test(test_heap_is_unavailable_in_sanitizer_builds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
