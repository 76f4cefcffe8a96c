/* Unit tests for pa_task, the one listing of this process's threads: it holds the caller and
 * a thread just started, sorted; it follows threads that exit; a short array counts the rest;
 * the count agrees; the host closing our fd, and a fork, each make it reopen the directory. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_task.h"

#define MAXT 256

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static _Atomic pid_t started;

static void *parked(void *arg)
{
    (void)arg;
    started = (pid_t)syscall(SYS_gettid);
    pthread_mutex_lock(&gate); /* held by the test until it has looked */
    pthread_mutex_unlock(&gate);
    return NULL;
}

static int has(const pid_t *tids, size_t n, pid_t tid)
{
    for (size_t i = 0; i < n; i++)
        if (tids[i] == tid)
            return 1;
    return 0;
}

static void test_task_lists_the_caller_and_a_new_thread_sorted_until_it_exits(void **state)
{
    pid_t tids[MAXT];
    size_t n, n0, more, count;
    pthread_t th;
    (void)state;

    assert_int_equal(pa_task_list(tids, MAXT, &n0, &more), 0);
    assert_int_equal(more, 0);
    assert_true(has(tids, n0, (pid_t)syscall(SYS_gettid)));
    pthread_mutex_lock(&gate);
    started = 0;
    assert_int_equal(pthread_create(&th, NULL, parked, NULL), 0);
    while (started == 0)
        sched_yield();
    assert_int_equal(pa_task_list(tids, MAXT, &n, &more), 0);
    assert_true(n >= n0 + 1); /* TSan starts a thread of its own at the first pthread_create */
    assert_true(has(tids, n, started));
    for (size_t i = 1; i < n; i++)
        assert_true(tids[i - 1] < tids[i]);
    assert_int_equal(pa_task_count(&count), 0);
    assert_int_equal(count, n);
    pthread_mutex_unlock(&gate);
    pthread_join(th, NULL);
    n0 = n;
    assert_int_equal(pa_task_list(tids, MAXT, &n, &more), 0);
    assert_int_equal(n, n0 - 1);
    assert_false(has(tids, n, started));
}

static void test_task_counts_what_does_not_fit(void **state)
{
    pid_t tids[1];
    size_t n, more, count;
    pthread_t th;
    (void)state;

    pthread_mutex_lock(&gate);
    started = 0;
    assert_int_equal(pthread_create(&th, NULL, parked, NULL), 0);
    while (started == 0)
        sched_yield();
    assert_int_equal(pa_task_count(&count), 0);
    assert_true(count >= 2);
    assert_int_equal(pa_task_list(tids, 1, &n, &more), 0);
    assert_int_equal(n, 1);
    assert_int_equal(n + more, count);
    pthread_mutex_unlock(&gate);
    pthread_join(th, NULL);
}

/* A daemon closing every fd closes ours too; the next listing opens the directory again and
 * never closes the number it had (someone else's by then). */
static void test_task_survives_the_host_closing_its_fd(void **state)
{
    size_t before, after;
    int fd;
    (void)state;

    assert_int_equal(pa_task_count(&before), 0);
    for (fd = 3; fd < 64; fd++)
        close(fd);
    fd = dup(2); /* takes the lowest number: likely the one pa_task had */
    assert_true(fd >= 0);
    assert_int_equal(pa_task_count(&after), 0);
    assert_int_equal(after, before);
    assert_true(fcntl(fd, F_GETFD) >= 0); /* not closed by pa_task */
    close(fd);
}

static void test_task_in_a_forked_child_lists_the_child(void **state)
{
    pid_t parent = getpid(), pid;
    size_t n0;
    int status;
    (void)state;

    assert_int_equal(pa_task_count(&n0), 0); /* the directory is open before fork */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child's own threads (its main one, and TSan's if it runs one), not the parent's */
        pid_t tids[MAXT];
        size_t n, more;
        int ok = pa_task_list(tids, MAXT, &n, &more) == 0 && has(tids, n, getpid()) &&
                 !has(tids, n, parent);
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_lists_the_caller_and_a_new_thread_sorted_until_it_exits),
        cmocka_unit_test(test_task_counts_what_does_not_fit),
        cmocka_unit_test(test_task_survives_the_host_closing_its_fd),
        cmocka_unit_test(test_task_in_a_forked_child_lists_the_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
