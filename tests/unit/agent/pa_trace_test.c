/* Unit tests for pa_trace's pure parts: JSON string escaping (function names go into the
 * trace verbatim, so quotes, backslashes and control characters must not break the document),
 * Go's parsing of trace's seconds parameter, the encoding of a blocking event, and the lock
 * hooks' event ring the trace drains (waits recorded only while a trace runs and only past the
 * threshold, in order, drops counted). This executable links profagent_static, so its own
 * pthread calls, pthread_cond_timedwait included, reach the hooks even under TSan (which
 * bypasses them in a preloaded agent: integration.agent_trace_block says so). The endpoint
 * itself is driven by integration.agent_trace and agent_trace_block. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_trace.h"

static void test_trace_json_string_escapes_quotes_backslashes_and_controls(void **state)
{
    pa_trace_buf_t b = {0};
    (void)state;
    pa__trace_json_string(&b, "operator\"\"_x(char const*)\\\n\t\x01ok");
    assert_false(b.failed);
    assert_string_equal(b.data, "operator\\\"\\\"_x(char const*)\\\\\\u000a\\u0009\\u0001ok");
    free(b.data);
}

static void test_trace_json_string_keeps_utf8_and_grows(void **state)
{
    pa_trace_buf_t b = {0};
    char big[10001];
    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pa__trace_json_string(&b, "caf\xc3\xa9 ");
    pa__trace_json_string(&b, big);
    assert_false(b.failed);
    assert_int_equal(b.len, 6 + 10000);
    assert_memory_equal(b.data, "caf\xc3\xa9 ", 6);
    free(b.data);
}

static void test_trace_seconds_are_parsed_as_go_does(void **state)
{
    (void)state;
    assert_true(pa__trace_seconds("") == 1);
    assert_true(pa__trace_seconds("seconds=5") == 5);
    assert_true(pa__trace_seconds("seconds=0.25") == 0.25);
    assert_true(pa__trace_seconds("seconds=0") == 1);
    assert_true(pa__trace_seconds("seconds=-3") == 1);
    assert_true(pa__trace_seconds("seconds=abc") == 1);
    assert_true(pa__trace_seconds("seconds=2x") == 1);
    assert_true(pa__trace_seconds("seconds=nan") == 1);
    assert_true(pa__trace_seconds("seconds=inf") == 1);
    assert_true(pa__trace_seconds("debug=1&seconds=3") == 3);
    assert_true(pa__trace_seconds("seconds=100000") == PA_TRACE_MAX_SECONDS);
}

static void test_trace_block_event_is_an_X_event_in_microseconds(void **state)
{
    pa_trace_buf_t b = {0};
    pa_lock_event_t ev = {.start_ns = 5001234567LL,
                          .dur_ns = 2500750,
                          .caller = 0,
                          .tid = 4242,
                          .fn = PA_LOCK_FN_COND_WAIT};
    (void)state;
    pa__trace_block_event(&b, 17, 5000000000LL, &ev, "rs_\"wait\"");
    assert_false(b.failed);
    assert_string_equal(b.data, ",\n{\"name\":\"pthread_cond_wait\",\"cat\":\"block\",\"ph\":\"X\","
                                "\"pid\":17,\"tid\":4242,\"ts\":1234.567,\"dur\":2500.750,"
                                "\"args\":{\"caller\":\"rs_\\\"wait\\\"\"}}");
    free(b.data);
    assert_string_equal(pa_lock_fn_name(PA_LOCK_FN_SEM_WAIT), "sem_wait");
    assert_string_equal(pa_lock_fn_name(PA_LOCK_FN_COUNT), "?");
}

typedef struct collected {
    pa_lock_event_t ev[64];
    size_t n, total;
} collected_t;

static void collect(void *arg, const pa_lock_event_t *ev)
{
    collected_t *c = arg;
    if (c->n < 64)
        c->ev[c->n++] = *ev;
    c->total++;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int locked;
static _Atomic int about_to_lock;
static pid_t waiter_tid;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Whether thread tid is asleep (state S or D in /proc/self/task/TID/stat). */
static int asleep(pid_t tid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/* Holds mu until the waiter is asleep in its pthread_mutex_lock(&mu), then 20 ms more: the
 * waiter surely waits, and for at least 20 ms, however loaded the machine (a fixed hold
 * could end before a descheduled waiter even asked for the lock). */
static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    atomic_store(&locked, 1);
    for (int i = 0; i < 10000 && !(atomic_load(&about_to_lock) && asleep(waiter_tid)); i++)
        sleep_ms(1);
    sleep_ms(20);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Wait for mu while another thread holds it: a blocking pthread_mutex_lock of 20 ms or more,
 * and the only lock this thread takes (the hand-over is atomics: a contended lock of our own
 * here would be a second recorded wait). */
static void contend_once(void)
{
    pthread_t t;
    atomic_store(&locked, 0);
    atomic_store(&about_to_lock, 0);
    waiter_tid = (pid_t)syscall(SYS_gettid);
    assert_int_equal(pthread_create(&t, NULL, holder, NULL), 0);
    while (!atomic_load(&locked))
        sleep_ms(1);
    atomic_store(&about_to_lock, 1);
    pthread_mutex_lock(&mu);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
}

static void test_trace_records_a_contended_mutex_only_while_on(void **state)
{
    collected_t c = {0};
    int32_t me = (int32_t)syscall(SYS_gettid);
    size_t i, found = 0;
    (void)state;

    pa_lock_trace_stop();
    pa_lock_trace_drain(collect, &c);
    c.n = c.total = 0;
    contend_once(); /* off: nothing recorded */
    pa_lock_trace_drain(collect, &c);
    assert_int_equal(c.total, 0);

    pa_lock_trace_start();
    contend_once();
    pa_lock_trace_stop();
    pa_lock_trace_drain(collect, &c);
    for (i = 0; i < c.n; i++) {
        if (c.ev[i].fn != PA_LOCK_FN_MUTEX || c.ev[i].tid != me)
            continue;
        found++;
        assert_true(c.ev[i].dur_ns >= 20000000); /* the holder kept it 20 ms after we slept */
        assert_true(c.ev[i].start_ns > 0);
        assert_true(c.ev[i].caller != 0);
    }
    assert_int_equal(found, 1);
    for (i = 0; i < c.n; i++)
        assert_true(c.ev[i].dur_ns >= PA_LOCK_TRACE_MIN_NS);
}

static void test_trace_records_a_timed_out_cond_wait(void **state)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    collected_t c = {0};
    int rc;
    (void)state;

    pa_lock_trace_start();
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 20000000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m);
    do
        rc = pthread_cond_timedwait(&cv, &m, &until);
    while (rc == 0);
    pthread_mutex_unlock(&m);
    pa_lock_trace_stop();
    assert_int_equal(rc, ETIMEDOUT);
    pa_lock_trace_drain(collect, &c);
    assert_int_equal(c.total, 1);
    assert_int_equal(c.ev[0].fn, PA_LOCK_FN_COND_TIMEDWAIT);
    assert_true(c.ev[0].dur_ns >= 15000000);
}

static void test_trace_ring_keeps_order_skips_short_waits_and_counts_drops(void **state)
{
    collected_t c = {0};
    uint64_t dropped0 = pa_lock_trace_dropped();
    int64_t prev = -1;
    size_t n;
    (void)state;

    pa_lock_trace_start();
    pa__lock_trace_record(PA_LOCK_FN_SEM_WAIT, 1, PA_LOCK_TRACE_MIN_NS - 1, 0); /* too short */
    for (int i = 0; i < PA_LOCK_TRACE_SLOTS + 5; i++)
        pa__lock_trace_record(PA_LOCK_FN_SEM_WAIT, 1000 + i, PA_LOCK_TRACE_MIN_NS, 0x1234);
    pa_lock_trace_stop();
    pa__lock_trace_record(PA_LOCK_FN_SEM_WAIT, 1, PA_LOCK_TRACE_MIN_NS, 0); /* off */
    assert_int_equal(pa_lock_trace_dropped() - dropped0, 5);
    n = pa_lock_trace_drain(collect, &c);
    assert_int_equal(n, PA_LOCK_TRACE_SLOTS);
    assert_int_equal(c.total, PA_LOCK_TRACE_SLOTS);
    for (size_t i = 0; i < c.n; i++) {
        assert_true(c.ev[i].start_ns > prev);
        prev = c.ev[i].start_ns;
        assert_int_equal(c.ev[i].fn, PA_LOCK_FN_SEM_WAIT);
        assert_int_equal(c.ev[i].caller, 0x1234);
        assert_int_equal(c.ev[i].tid, (int32_t)syscall(SYS_gettid));
    }
    assert_int_equal(c.ev[0].start_ns, 1000);
    /* the ring is reusable after a full drain: positions wrap with it */
    c.n = c.total = 0;
    pa_lock_trace_start();
    pa__lock_trace_record(PA_LOCK_FN_RDLOCK, 7, PA_LOCK_TRACE_MIN_NS, 0);
    pa_lock_trace_stop();
    assert_int_equal(pa_lock_trace_drain(collect, &c), 1);
    assert_int_equal(c.ev[0].fn, PA_LOCK_FN_RDLOCK);
    assert_int_equal(c.ev[0].start_ns, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_json_string_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_trace_json_string_keeps_utf8_and_grows),
        cmocka_unit_test(test_trace_seconds_are_parsed_as_go_does),
        cmocka_unit_test(test_trace_block_event_is_an_X_event_in_microseconds),
        cmocka_unit_test(test_trace_records_a_contended_mutex_only_while_on),
        cmocka_unit_test(test_trace_records_a_timed_out_cond_wait),
        cmocka_unit_test(test_trace_ring_keeps_order_skips_short_waits_and_counts_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
