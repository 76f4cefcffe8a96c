/* Unit tests for pa_threads: every thread's stack through the signal, names from comm, the
 * collecting thread unwound in place, masked threads skipped and counted, a thread that never
 * answers bounded by the wait and counted as missing, one collection at a time. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "pa_threads.h"

#define NPARK 3

/* TSan defers an asynchronous signal until the thread leaves the (non-blocking, to TSan) call
 * it is in, so a thread parked in read() never answers: there the bounded wait must count it
 * as missing, which is what these tests then check. */
#if defined(__SANITIZE_THREAD__)
#define PARKED_STATUS PA_THREAD_MISSING
#else
#define PARKED_STATUS PA_THREAD_ANSWERED
#endif

static int park_pipe[2];
static atomic_int nparked;
static pid_t park_tids[NPARK];
static pid_t masked_tid;
static pthread_t park_threads[NPARK], masked_thread;

__attribute__((noinline)) void threads_test_park(int i);
__attribute__((noinline)) void threads_test_park(int i)
{
    char c;
    park_tids[i] = (pid_t)syscall(SYS_gettid);
    atomic_fetch_add(&nparked, 1);
    while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    __asm__ volatile("" ::: "memory");
}

static void *park_main(void *arg)
{
    threads_test_park((int)(intptr_t)arg);
    return NULL;
}

static void *masked_main(void *arg)
{
    sigset_t all;
    char c;
    (void)arg;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    masked_tid = (pid_t)syscall(SYS_gettid);
    atomic_fetch_add(&nparked, 1);
    while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static int setup(void **state)
{
    struct timespec ts = {0, 1000000};
    (void)state;

    if (pipe(park_pipe) < 0)
        return -1;
    for (int i = 0; i < NPARK; i++) {
        char name[16];
        if (pthread_create(&park_threads[i], NULL, park_main, (void *)(intptr_t)i) != 0)
            return -1;
        snprintf(name, sizeof(name), "tpark-%d", i);
        pthread_setname_np(park_threads[i], name);
    }
    if (pthread_create(&masked_thread, NULL, masked_main, NULL) != 0)
        return -1;
    pthread_setname_np(masked_thread, "tmasked");
    while (atomic_load(&nparked) < NPARK + 1)
        nanosleep(&ts, NULL);
    ts.tv_nsec = 50000000; /* into read() */
    nanosleep(&ts, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(park_pipe[1]); /* read() returns 0: every parked thread ends */
    for (int i = 0; i < NPARK; i++)
        pthread_join(park_threads[i], NULL);
    pthread_join(masked_thread, NULL);
    return 0;
}

static const pa_thread_stack_t *find(const pa_threads_snap_t *s, pid_t tid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->threads[i].tid == tid)
            return &s->threads[i];
    return NULL;
}

static int stack_has(pa_symtab_t *sym, const pa_thread_stack_t *t, const char *fn)
{
    for (uint32_t i = 0; i < t->npcs; i++) {
        pa_sym_t s;
        uintptr_t pc = i == 0 ? t->pcs[i] : t->pcs[i] - 1;
        if (pa_symtab_lookup(sym, pc, &s) == 0 && s.name != NULL && strcmp(s.name, fn) == 0)
            return 1;
    }
    return 0;
}

static void test_collect_gives_each_parked_thread_its_stack_and_name(void **state)
{
    pa_threads_snap_t *s = NULL;
    pa_symtab_t *sym = NULL;
    (void)state;

    assert_int_equal(pa_threads_collect(PA_THREADS_WAIT_MS, &s), 0);
    assert_int_equal(pa_symtab_new(&sym), 0);
    assert_true(s->n >= NPARK + 2);
    for (int i = 0; i < NPARK; i++) {
        const pa_thread_stack_t *t = find(s, park_tids[i]);
        char name[16];
        assert_non_null(t);
        snprintf(name, sizeof(name), "tpark-%d", i);
        assert_string_equal(t->name, name);
        assert_int_equal(t->status, PARKED_STATUS);
        assert_false(t->self);
        if (PARKED_STATUS == PA_THREAD_ANSWERED) {
            assert_true(stack_has(sym, t, "threads_test_park"));
            assert_true(stack_has(sym, t, "park_main"));
        }
    }
    for (size_t i = 1; i < s->n; i++)
        assert_true(s->threads[i - 1].tid < s->threads[i].tid);
    assert_true(s->signo >= SIGRTMIN && s->signo <= SIGRTMAX);
    pa_symtab_free(sym);
    pa_threads_snap_free(s);
}

static void test_collecting_thread_is_unwound_in_place(void **state)
{
    pa_threads_snap_t *s = NULL;
    pa_symtab_t *sym = NULL;
    const pa_thread_stack_t *t;
    (void)state;

    assert_int_equal(pa_threads_collect(PA_THREADS_WAIT_MS, &s), 0);
    assert_int_equal(pa_symtab_new(&sym), 0);
    t = find(s, (pid_t)syscall(SYS_gettid));
    assert_non_null(t);
    assert_true(t->self);
    assert_int_equal(t->status, PA_THREAD_ANSWERED);
    assert_true(stack_has(sym, t, "test_collecting_thread_is_unwound_in_place"));
    pa_symtab_free(sym);
    pa_threads_snap_free(s);
}

static void test_masked_thread_is_not_signalled_and_is_counted(void **state)
{
    pa_threads_snap_t *s = NULL;
    const pa_thread_stack_t *t;
    (void)state;

    assert_int_equal(pa_threads_collect(PA_THREADS_WAIT_MS, &s), 0);
    t = find(s, masked_tid);
    assert_non_null(t);
    assert_string_equal(t->name, "tmasked");
    assert_int_equal(t->status, PA_THREAD_MASKED);
    assert_true(s->masked >= 1);
    assert_int_equal(s->answered + s->masked + s->missing + s->gone, s->n);
    pa_threads_snap_free(s);
}

static void test_snapshot_to_stacktab_counts_one_per_answered_thread(void **state)
{
    pa_threads_snap_t *s = NULL;
    pa_stacktab_t *t = NULL;
    int64_t total = 0;
    (void)state;

    assert_int_equal(pa_threads_collect(PA_THREADS_WAIT_MS, &s), 0);
    assert_int_equal(pa_stacktab_new(1, 64, &t), 0);
    assert_int_equal(pa_threads_snap_to_stacktab(s, t), 0);
    /* the three parked threads share one stack but for the argument-free frames */
    assert_true(pa_stacktab_count(t) <= s->answered);
    for (size_t i = 0; i < s->n; i++)
        total += s->threads[i].status == PA_THREAD_ANSWERED;
    assert_int_equal((size_t)total, s->answered);
    pa_stacktab_free(t);
    pa_threads_snap_free(s);
}

static void test_one_collection_at_a_time(void **state)
{
    pa_threads_collect_t *c = NULL, *c2 = NULL;
    pa_threads_snap_t *s = NULL;
    (void)state;

    assert_int_equal(pa_threads_begin(&c), 0);
    assert_int_equal(pa_threads_begin(&c2), -EBUSY);
    assert_null(c2);
    assert_int_equal(pa_threads_finish(c, &s), 0);
    pa_threads_snap_free(s);
    assert_int_equal(pa_threads_begin(&c), 0);
    assert_int_equal(pa_threads_finish(c, &s), 0);
    pa_threads_snap_free(s);
}

/* Last: the masked thread then keeps one of our signals pending for good. */
static void test_thread_that_never_answers_is_bounded_and_counted_missing(void **state)
{
    pa_threads_snap_t *s = NULL;
    const pa_thread_stack_t *t;
    (void)state;

    pa__threads_ignore_mask = 1; /* signal it although it blocks the signal */
    assert_int_equal(pa_threads_collect(100, &s), 0);
    pa__threads_ignore_mask = 0;
    t = find(s, masked_tid);
    assert_non_null(t);
    assert_int_equal(t->status, PA_THREAD_MISSING);
    assert_true(s->missing >= 1);
    for (int i = 0; i < NPARK; i++)
        assert_int_equal(find(s, park_tids[i])->status, PARKED_STATUS);
    pa_threads_snap_free(s);

    /* now pending there: the next collection does not signal it again */
    assert_int_equal(pa_threads_collect(PA_THREADS_WAIT_MS, &s), 0);
    assert_int_equal(find(s, masked_tid)->status, PA_THREAD_MASKED);
    assert_int_equal(s->missing, PARKED_STATUS == PA_THREAD_MISSING ? NPARK : 0);
    pa_threads_snap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect_gives_each_parked_thread_its_stack_and_name),
        cmocka_unit_test(test_collecting_thread_is_unwound_in_place),
        cmocka_unit_test(test_masked_thread_is_not_signalled_and_is_counted),
        cmocka_unit_test(test_snapshot_to_stacktab_counts_one_per_answered_thread),
        cmocka_unit_test(test_one_collection_at_a_time),
        cmocka_unit_test(test_thread_that_never_answers_is_bounded_and_counted_missing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
