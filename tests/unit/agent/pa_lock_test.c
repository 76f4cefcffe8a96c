/* Unit tests for pa_lock: a wait on a held mutex, a condition variable, a semaphore and an
 * rwlock land in the block profile at the waiter's stack; the unlock that others waited for
 * lands in the mutex profile at the holder's stack; nothing is recorded with the rates at 0 or
 * for an uncontended lock; a fork child starts empty. This executable links profagent_static,
 * so its own calls reach the hooks whatever a sanitizer runtime does. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_lock.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int held;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static atomic_int waiter_coming;

__attribute__((noinline)) void lock_test_holder(void);
__attribute__((noinline)) void lock_test_holder(void)
{
    struct timespec ts = {0, 100000};

    pthread_mutex_lock(&mu);
    atomic_store(&held, 1);
    while (!atomic_load(&waiter_coming))
        nanosleep(&ts, NULL);
    sleep_ms(50);
    pthread_mutex_unlock(&mu);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void lock_test_waiter(void);
__attribute__((noinline)) void lock_test_waiter(void)
{
    atomic_store(&waiter_coming, 1);
    pthread_mutex_lock(&mu);
    pthread_mutex_unlock(&mu);
    __asm__ volatile("" ::: "memory");
}

static void *holder_main(void *arg)
{
    (void)arg;
    lock_test_holder();
    return NULL;
}

typedef struct sums {
    pa_symtab_t *sym;
    const char *fn;
    int64_t count, delay;
} sums_t;

static int on_stack(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *v)
{
    sums_t *s = arg;
    for (size_t i = 0; i < npcs; i++) {
        pa_sym_t sym;
        uintptr_t pc = i == 0 ? pcs[i] : pcs[i] - 1;
        if (pa_symtab_lookup(s->sym, pc, &sym) == 0 && sym.name && strcmp(sym.name, s->fn) == 0) {
            s->count += v[0];
            s->delay += v[1];
            break;
        }
    }
    return 0;
}

static sums_t sums(int kind, const char *fn)
{
    pa_stacktab_t *t = NULL;
    sums_t s = {.fn = fn};

    assert_int_equal(pa_stacktab_new(2, PA_LOCK_MAX_STACKS, &t), 0);
    assert_int_equal(pa_symtab_new(&s.sym), 0);
    assert_int_equal(pa_lock_read(kind, t), 0);
    pa_stacktab_foreach(t, on_stack, &s);
    pa_symtab_free(s.sym);
    pa_stacktab_free(t);
    return s;
}

static void contend_once(void)
{
    pthread_t h;
    struct timespec ts = {0, 100000};

    atomic_store(&held, 0);
    atomic_store(&waiter_coming, 0);
    assert_int_equal(pthread_create(&h, NULL, holder_main, NULL), 0);
    while (!atomic_load(&held))
        nanosleep(&ts, NULL);
    lock_test_waiter();
    pthread_join(h, NULL);
}

/* contend_once until the waiter really waited (a machine too busy to run the main thread
 * within 50 ms of its announcement lets it through at once), at most 5 times */
static void contend_until_waited(void)
{
    int64_t before = sums(PA_LOCK_BLOCK, "lock_test_waiter").count;

    for (int i = 0; i < 5 && sums(PA_LOCK_BLOCK, "lock_test_waiter").count == before; i++)
        contend_once();
}

static void test_rates_zero_record_nothing(void **state)
{
    (void)state;
    pa_lock_set_block_rate(0);
    pa_lock_mutex_fraction(0);
    contend_once();
    assert_int_equal(sums(PA_LOCK_BLOCK, "lock_test_waiter").count, 0);
    assert_int_equal(sums(PA_LOCK_MUTEX, "lock_test_holder").count, 0);
}

static void test_waiter_in_block_profile_and_holder_in_mutex_profile(void **state)
{
    sums_t b0, m0, b1, m1;
    (void)state;

    pa_lock_set_block_rate(1);
    assert_int_equal(pa_lock_mutex_fraction(1), 0);
    assert_int_equal(pa_lock_mutex_fraction(-1), 1);
    b0 = sums(PA_LOCK_BLOCK, "lock_test_waiter");
    m0 = sums(PA_LOCK_MUTEX, "lock_test_holder");
    contend_until_waited();
    b1 = sums(PA_LOCK_BLOCK, "lock_test_waiter");
    m1 = sums(PA_LOCK_MUTEX, "lock_test_holder");
    /* the waiter waited for the holder's 50 ms sleep */
    assert_int_equal(b1.count - b0.count, 1);
    assert_true(b1.delay - b0.delay >= 10 * 1000000LL);
    assert_int_equal(m1.count - m0.count, 1);
    assert_true(m1.delay - m0.delay >= 10 * 1000000LL);
    /* the holder did not wait, the waiter held nobody up */
    assert_int_equal(sums(PA_LOCK_BLOCK, "lock_test_holder").count, 0);
    assert_int_equal(sums(PA_LOCK_MUTEX, "lock_test_waiter").count, 0);
    pa_lock_set_block_rate(0);
    pa_lock_mutex_fraction(0);
    /* the index page's counts: the stacks a read gives, with no one recording now */
    for (int kind = PA_LOCK_BLOCK; kind <= PA_LOCK_MUTEX; kind++) {
        pa_stacktab_t *t = NULL;
        assert_int_equal(pa_stacktab_new(2, PA_LOCK_MAX_STACKS, &t), 0);
        assert_int_equal(pa_lock_read(kind, t), 0);
        assert_true(pa_stacktab_count(t) >= 1);
        assert_int_equal(pa_lock_count(kind), pa_stacktab_count(t));
        pa_stacktab_free(t);
    }
}

static void test_uncontended_lock_is_no_event(void **state)
{
    sums_t b0;
    (void)state;

    pa_lock_set_block_rate(1);
    b0 = sums(PA_LOCK_BLOCK, "lock_test_waiter");
    lock_test_waiter();
    assert_int_equal(sums(PA_LOCK_BLOCK, "lock_test_waiter").count, b0.count);
    pa_lock_set_block_rate(0);
}

static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ready;
static sem_t sem;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int about_to_wait;

__attribute__((noinline)) void lock_test_cond_waiter(void);
__attribute__((noinline)) void lock_test_cond_waiter(void)
{
    pthread_mutex_lock(&cmu);
    atomic_store(&about_to_wait, 1);
    while (!ready)
        pthread_cond_wait(&cond, &cmu);
    pthread_mutex_unlock(&cmu);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void lock_test_sem_waiter(void);
__attribute__((noinline)) void lock_test_sem_waiter(void)
{
    atomic_store(&about_to_wait, 1);
    while (sem_wait(&sem) < 0 && errno == EINTR)
        ;
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void lock_test_rw_waiter(void);
__attribute__((noinline)) void lock_test_rw_waiter(void)
{
    atomic_store(&about_to_wait, 1);
    pthread_rwlock_wrlock(&rw);
    pthread_rwlock_unlock(&rw);
    __asm__ volatile("" ::: "memory");
}

typedef struct releaser {
    int what; /* 0 cond, 1 sem, 2 rwlock */
    atomic_int holding;
} releaser_t;

/* Holds (rwlock) or withholds (cond, sem) what the main thread is about to wait for, and
 * releases it 50 ms after the main thread said it is about to wait. */
static void *releaser_main(void *arg)
{
    releaser_t *r = arg;
    struct timespec ts = {0, 100000};

    if (r->what == 2)
        pthread_rwlock_rdlock(&rw);
    atomic_store(&r->holding, 1);
    while (!atomic_load(&about_to_wait))
        nanosleep(&ts, NULL);
    sleep_ms(50);
    if (r->what == 0) {
        pthread_mutex_lock(&cmu);
        ready = 1;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&cmu);
    } else if (r->what == 1) {
        sem_post(&sem);
    } else {
        pthread_rwlock_unlock(&rw);
    }
    return NULL;
}

/* The main thread waits in fn while a releaser makes it wait; a machine too busy to run the
 * main thread within 50 ms of its announcement may let it through without waiting, so up to 5
 * attempts. Returns the block events recorded in fn. */
static int64_t wait_in(int what, void (*fn)(void), const char *name)
{
    struct timespec ts = {0, 100000};
    int64_t before = sums(PA_LOCK_BLOCK, name).count;

    for (int attempt = 0; attempt < 5; attempt++) {
        releaser_t r = {.what = what};
        pthread_t t;
        ready = 0;
        atomic_store(&about_to_wait, 0);
        assert_int_equal(pthread_create(&t, NULL, releaser_main, &r), 0);
        while (!atomic_load(&r.holding))
            nanosleep(&ts, NULL);
        fn();
        pthread_join(t, NULL);
        if (sums(PA_LOCK_BLOCK, name).count > before)
            break;
    }
    return sums(PA_LOCK_BLOCK, name).count - before;
}

static void test_cond_sem_and_rwlock_waits_in_block_profile(void **state)
{
    (void)state;

    pa_lock_set_block_rate(1);
    assert_int_equal(sem_init(&sem, 0, 0), 0);
    assert_int_equal(wait_in(0, lock_test_cond_waiter, "lock_test_cond_waiter"), 1);
    assert_int_equal(wait_in(1, lock_test_sem_waiter, "lock_test_sem_waiter"), 1);
    assert_int_equal(wait_in(2, lock_test_rw_waiter, "lock_test_rw_waiter"), 1);
    assert_true(sums(PA_LOCK_BLOCK, "lock_test_sem_waiter").delay > 0);
    sem_destroy(&sem);
    pa_lock_set_block_rate(0);
}

static void test_block_rate_above_the_delay_samples_and_unbiases(void **state)
{
    sums_t b0, b1;
    (void)state;

    /* rate 1 s against ~60 ms waits: each kept with probability ~6%, and a kept one counts as
     * rate/delay events of rate ns in all */
    pa_lock_set_block_rate(1000000000LL);
    b0 = sums(PA_LOCK_BLOCK, "lock_test_waiter");
    for (int i = 0; i < 3; i++)
        contend_once();
    b1 = sums(PA_LOCK_BLOCK, "lock_test_waiter");
    /* each kept event adds exactly the rate to delay and round(rate / its wait) >= 1 to count;
     * how long a wait lasts is up to the scheduler (a loaded machine can stretch the holder's
     * 60 ms far past 100 ms), so count is checked against the kept events, not a wait length */
    int64_t kept = (b1.delay - b0.delay) / 1000000000LL;
    assert_true((b1.delay - b0.delay) % 1000000000LL == 0);
    assert_true(kept >= 0 && kept <= 3);
    assert_true(b1.count - b0.count >= kept);
    assert_true(kept > 0 || b1.count == b0.count);
    pa_lock_set_block_rate(0);
}

static void test_fork_child_starts_with_empty_profiles(void **state)
{
    int status = 0;
    pid_t pid;
    (void)state;

    pa_lock_set_block_rate(1);
    contend_until_waited();
    assert_true(sums(PA_LOCK_BLOCK, "lock_test_waiter").count > 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pa_stacktab_t *t = NULL;
        int ok = pa_stacktab_new(2, 16, &t) == 0 && pa_lock_read(PA_LOCK_BLOCK, t) == 0 &&
                 pa_stacktab_count(t) == 0;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    pa_lock_set_block_rate(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates_zero_record_nothing),
        cmocka_unit_test(test_waiter_in_block_profile_and_holder_in_mutex_profile),
        cmocka_unit_test(test_uncontended_lock_is_no_event),
        cmocka_unit_test(test_cond_sem_and_rwlock_waits_in_block_profile),
        cmocka_unit_test(test_block_rate_above_the_delay_samples_and_unbiases),
        cmocka_unit_test(test_fork_child_starts_with_empty_profiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
