/* Unit tests for pa_cpu: the SIGPROF sampler in this very process. A busy loop is profiled;
 * its samples must unwind into the loop's function, values must be {count, count*period},
 * a second start is refused as Go refuses it, a foreign SIGPROF handler is left alone, a
 * full ring or a signal inside another sampler shows up as [lost samples], every thread gets
 * its own timer (those alive at start, those created during the profile, none left after a
 * thread exits or the profile stops), and ITIMER_PROF still works as the fallback. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "pa_cpu.h"
#include "pa_pprof.h"
#include "pa_stacktab.h"

static _Atomic unsigned long sink; /* atomic: spinner threads share it (a race under TSan) */

__attribute__((noinline)) static unsigned long spin_for_ms(long ms)
{
    struct timespec t0, t;
    unsigned long x = sink;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    sink = x;
    return x;
}

typedef struct tally {
    int64_t samples, nanos;
    int64_t in_spin; /* samples whose leaf is inside spin_for_ms */
    int64_t lost;
    size_t deepest;
} tally_t;

static int add_up(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *v)
{
    tally_t *t = arg;
    uintptr_t f = (uintptr_t)spin_for_ms;
    t->samples += v[0];
    t->nanos += v[1];
    if (npcs > t->deepest)
        t->deepest = npcs;
    if (npcs == 1 && pcs[0] == PA_PC_LOST)
        t->lost += v[0];
    if (pcs[0] >= f && pcs[0] < f + 1024)
        t->in_spin += v[0];
    return 0;
}

static void test_cpu_samples_a_busy_loop_with_its_stack(void **state)
{
    pa_stacktab_t *t;
    tally_t tally = {0};
    uint64_t lost = 99;
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 1024, &t), 0);
    assert_int_equal(pa_cpu_init(), 0);
    assert_int_equal(pa_cpu_start(250), 0);
    assert_true(pa_cpu_running());
    assert_int_equal(pa_cpu_period_ns(), 4000000);
    spin_for_ms(300);
    pa_cpu_drain(t);
    spin_for_ms(300);
    pa_cpu_stop(t, &lost);
    assert_false(pa_cpu_running());
    assert_int_equal(lost, 0);
    pa_stacktab_foreach(t, add_up, &tally);
    /* 600 ms of CPU at 250 Hz is 150 samples; ITIMER_PROF is tick-based and runs a few per
     * cent over on an idle machine, and HZ=100 kernels cap it at 100 Hz (60 samples) */
    assert_in_range(tally.samples, 50, 250);
    assert_int_equal(tally.nanos, tally.samples * 4000000);
    assert_in_range(tally.in_spin * 2, tally.samples, 2 * tally.samples);
    assert_in_range(tally.deepest, 3, PA_MAX_FRAMES); /* spin_for_ms <- test <- cmocka ... */
    pa_stacktab_free(t);
}

static void test_cpu_second_profile_is_refused_as_go_does(void **state)
{
    (void)state;
    assert_int_equal(pa_cpu_start(100), 0);
    assert_int_equal(pa_cpu_start(100), -EBUSY);
    assert_string_equal(pa_cpu_strerror(-EBUSY), "cpu profiling already in use");
    pa_cpu_stop(NULL, NULL);
    pa_cpu_stop(NULL, NULL); /* no-op */
    assert_int_equal(pa_cpu_start(0), -ENOTSUP);
    assert_int_equal(pa_cpu_start(PA_CPU_MAX_HZ + 1), -EINVAL);
}

static void foreign_handler(int sig)
{
    (void)sig;
}

static void test_cpu_leaves_a_foreign_sigprof_handler_alone(void **state)
{
    struct sigaction sa, now;
    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = foreign_handler;
    sigaction(SIGPROF, &sa, NULL);
    assert_int_equal(pa_cpu_start(100), -EEXIST);
    assert_false(pa_cpu_running());
    sigaction(SIGPROF, NULL, &now);
    assert_ptr_equal(now.sa_handler, foreign_handler);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPROF, &sa, NULL);
    assert_int_equal(pa_cpu_start(100), 0);
    pa_cpu_stop(NULL, NULL);
}

static void test_cpu_full_ring_shows_as_lost_samples(void **state)
{
    pa_stacktab_t *t;
    tally_t tally = {0};
    uint64_t lost = 0;
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 1024, &t), 0);
    pa__cpu_set_ring_slots(4);
    assert_int_equal(pa_cpu_start(500), 0);
    spin_for_ms(200); /* ~100 samples, never drained: all but 4 are lost */
    pa_cpu_stop(t, &lost);
    pa__cpu_set_ring_slots(0);
    pa_stacktab_foreach(t, add_up, &tally);
    assert_in_range(lost, 1, 1000);
    assert_int_equal(tally.lost, (int64_t)lost);
    /* the 4 kept signals may carry expiries their timer folded into them (overrun) */
    assert_in_range(tally.samples, (int64_t)lost + 4, (int64_t)lost + 4 + 200);
    assert_int_equal(tally.nanos, tally.samples * 2000000);
    pa_stacktab_free(t);
}

static void test_cpu_signal_inside_another_sampler_counts_as_lost(void **state)
{
    pa_stacktab_t *t;
    tally_t tally = {0};
    uint64_t lost = 0;
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 1024, &t), 0);
    assert_int_equal(pa_cpu_start(250), 0);
    pa__sampler_guard = 1; /* as if this thread were inside the heap sampler's unwinder */
    spin_for_ms(200);
    pa__sampler_guard = 0;
    pa_cpu_stop(t, &lost);
    pa_stacktab_foreach(t, add_up, &tally);
    assert_in_range(lost, 1, 1000);
    assert_int_equal(tally.lost, (int64_t)lost);
    assert_int_equal(tally.samples, tally.lost); /* nothing was unwound */
    pa_stacktab_free(t);
}

static atomic_int spinner_stop;

static void *spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&spinner_stop))
        spin_for_ms(5);
    return NULL;
}

static void test_cpu_every_thread_gets_a_timer_for_the_profile_only(void **state)
{
    pa_stacktab_t *t;
    tally_t tally = {0};
    pthread_t a, b;
    char what[160];
    uint64_t uncovered = 9;
    size_t before;
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 1024, &t), 0);
    atomic_store(&spinner_stop, 0);
    assert_int_equal(pthread_create(&a, NULL, spinner, NULL), 0);
    assert_int_equal(pa_cpu_start(200), 0);
    /* this thread and the spinner, found in /proc/self/task at start */
    before = pa__cpu_timers();
    assert_in_range(before, 2, 64);
    /* a thread created during the profile, announced as the pthread_create hook does */
    assert_int_equal(pa_cpu_thread_created(pthread_create(&b, NULL, spinner, NULL), &b, NULL), 0);
    assert_int_equal(pa__cpu_timers(), before + 1);
    assert_int_equal(pa_cpu_thread_created(EAGAIN, &b, NULL), EAGAIN); /* failures pass through */
    spin_for_ms(200);
    atomic_store(&spinner_stop, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pa_cpu_drain(t); /* the exited threads' timers are reaped at a drain */
    assert_int_equal(pa__cpu_timers(), before - 1);
    pa_cpu_stop(t, NULL);
    assert_int_equal(pa__cpu_timers(), 0);
    pa_cpu_timer_describe(what, sizeof(what), &uncovered);
    assert_non_null(strstr(what, "per-thread"));
    assert_int_equal(uncovered, 0);
    pa_stacktab_foreach(t, add_up, &tally);
    /* three threads spinning about 200 ms each at 200 Hz: about 120 samples if each is sampled
     * on its own CPU time; far fewer on a starved machine, never zero */
    assert_in_range(tally.in_spin, 1, 400);
    assert_int_equal(tally.nanos, tally.samples * 5000000);
    pa_stacktab_free(t);
}

static void test_cpu_process_timer_is_the_fallback(void **state)
{
    pa_stacktab_t *t;
    tally_t tally = {0};
    char what[160];
    uint64_t uncovered = 9;
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 1024, &t), 0);
    pa__cpu_force_itimer(1);
    assert_int_equal(pa_cpu_start(250), 0);
    assert_int_equal(pa__cpu_timers(), 0);
    spin_for_ms(200);
    pa_cpu_stop(t, NULL);
    pa__cpu_force_itimer(0);
    pa_cpu_timer_describe(what, sizeof(what), &uncovered);
    assert_non_null(strstr(what, "ITIMER_PROF"));
    assert_int_equal(uncovered, 0);
    pa_stacktab_foreach(t, add_up, &tally);
    assert_in_range(tally.in_spin, 1, 200);
    pa_stacktab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_samples_a_busy_loop_with_its_stack),
        cmocka_unit_test(test_cpu_second_profile_is_refused_as_go_does),
        cmocka_unit_test(test_cpu_leaves_a_foreign_sigprof_handler_alone),
        cmocka_unit_test(test_cpu_full_ring_shows_as_lost_samples),
        cmocka_unit_test(test_cpu_signal_inside_another_sampler_counts_as_lost),
        cmocka_unit_test(test_cpu_every_thread_gets_a_timer_for_the_profile_only),
        cmocka_unit_test(test_cpu_process_timer_is_the_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
