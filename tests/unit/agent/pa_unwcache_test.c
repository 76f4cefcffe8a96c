/* Unit tests for pa_unwcache: at most the limit (PROFAGENT_UNWIND_CACHES) of threads hold a trace-cache slot at
 * once, a thread's exit gives its slot back, the unw_step walk finds the same frames as
 * unw_backtrace. Not under TSan (pa_unwcache_init does nothing there). */
#define UNW_LOCAL_ONLY
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pa_unwcache.h"

#define LIMIT 3
#define THREADS 5

typedef struct holder {
    sem_t *took;    /* posted once the thread asked for a slot */
    sem_t *release; /* the thread exits once this is posted */
    int got;        /* what pa_unwcache_take said */
} holder_t;

static void *holder_main(void *arg)
{
    holder_t *h = arg;

    h->got = pa_unwcache_take();
    h->got &= pa_unwcache_take(); /* a held slot stays held, once counted */
    sem_post(h->took);
    sem_wait(h->release);
    return NULL;
}

static void *take_once(void *arg)
{
    *(int *)arg = pa_unwcache_take();
    return NULL;
}

static int take_in_new_thread(void)
{
    pthread_t t;
    int got = -1;

    assert_int_equal(pthread_create(&t, NULL, take_once, &got), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return got;
}

static void test_unwcache_bounds_holders_and_gives_slots_back_at_exit(void **state)
{
    holder_t h[THREADS];
    pthread_t t[THREADS];
    sem_t took, release;
    int got = 0, base;

    (void)state;
#if defined(__SANITIZE_THREAD__)
    skip();
#endif
    /* the heap sampler's constructor ran pa_unwcache_init (default limit), and this thread
     * may be sampled during the test: it holds a slot from here on, counted in base */
    pa_unwcache_init();
    assert_int_equal(pa_unwcache_limit(), PA_UNWCACHE_DEFAULT);
    assert_true(pa_unwcache_take());
    base = pa_unwcache_used();
    atomic_store(&pa__unwcache_limit, base + LIMIT);
    sem_init(&took, 0, 0);
    sem_init(&release, 0, 0);
    for (int i = 0; i < THREADS; i++) {
        h[i] = (holder_t){.took = &took, .release = &release};
        assert_int_equal(pthread_create(&t[i], NULL, holder_main, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        sem_wait(&took);
    for (int i = 0; i < THREADS; i++)
        got += h[i].got;
    assert_int_equal(got, LIMIT);
    assert_int_equal(pa_unwcache_used(), base + LIMIT);
    assert_int_equal(take_in_new_thread(), 0); /* full: a newcomer gets none */
    /* every holder exits: each gives its slot back (the key's destructor), so a newcomer
     * gets one again, and gives it back in turn */
    for (int i = 0; i < THREADS; i++)
        sem_post(&release);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(pa_unwcache_used(), base);
    for (int i = 0; i < 2 * LIMIT; i++)
        assert_int_equal(take_in_new_thread(), 1);
    assert_int_equal(pa_unwcache_used(), base);
    atomic_store(&pa__unwcache_limit, PA_UNWCACHE_DEFAULT);
    sem_destroy(&took);
    sem_destroy(&release);
}

/* the unw_step walk from here and unw_backtrace from here give the same callers */
static __attribute__((noinline)) void walk_both(uintptr_t *steps, uint32_t *ns, void **trace,
                                                int *nt)
{
    *ns = pa_unwcache_steps(steps, 32, 1);
    *nt = unw_backtrace(trace, 33);
}

static __attribute__((noinline)) void nested(int depth, uintptr_t *steps, uint32_t *ns,
                                             void **trace, int *nt)
{
    if (depth > 0)
        nested(depth - 1, steps, ns, trace, nt);
    else
        walk_both(steps, ns, trace, nt);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

static void test_unwcache_steps_match_unw_backtrace(void **state)
{
    uintptr_t steps[32];
    void *trace[33];
    uint32_t ns = 0;
    int nt = 0;

    (void)state;
    nested(6, steps, &ns, trace, &nt);
    assert_true(ns >= 8);
    assert_int_equal((int)ns, nt - 1);
    for (uint32_t i = 0; i < ns; i++)
        assert_int_equal(steps[i], (uintptr_t)trace[i + 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwcache_bounds_holders_and_gives_slots_back_at_exit),
        cmocka_unit_test(test_unwcache_steps_match_unw_backtrace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
