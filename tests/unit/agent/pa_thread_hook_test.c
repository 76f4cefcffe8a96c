/* Unit tests for pa_thread_hook: creations are counted and their stacks recorded (the creating
 * function is in them, identical stacks aggregate), the real pthread_create still does its job
 * (threads run and join), a fork child starts with an empty table, and the status says whether
 * the whole process binds to the hook. This executable links profagent_static, so its own calls
 * reach the hook whatever a sanitizer runtime does; the status line says what the rest of the
 * process binds to. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "pa_thread_hook.h"

static atomic_int ran;

static void *child_main(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return NULL;
}

__attribute__((noinline)) int hook_test_spawner(int n);
__attribute__((noinline)) int hook_test_spawner(int n)
{
    pthread_t t[16];
    int rc = 0;

    for (int i = 0; i < n; i++)
        rc |= pthread_create(&t[i], NULL, child_main, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return rc;
}

typedef struct found {
    pa_symtab_t *sym;
    const char *fn;
    int64_t count; /* summed over stacks containing fn */
    int leaf_is_pthread_create;
} found_t;

static int on_stack(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    found_t *f = arg;
    int has = 0;
    pa_sym_t s;

    for (size_t i = 0; i < npcs; i++) {
        uintptr_t pc = i == 0 ? pcs[i] : pcs[i] - 1;
        if (pa_symtab_lookup(f->sym, pc, &s) == 0 && s.name && strcmp(s.name, f->fn) == 0)
            has = 1;
    }
    if (has) {
        f->count += values[0];
        if (pa_symtab_lookup(f->sym, pcs[0], &s) == 0 && s.name &&
            strcmp(s.name, "pthread_create") == 0)
            f->leaf_is_pthread_create = 1;
    }
    return 0;
}

static found_t count_in(const char *fn)
{
    pa_stacktab_t *t = NULL;
    found_t f = {.fn = fn};

    assert_int_equal(pa_stacktab_new(1, PA_THREAD_HOOK_MAX_STACKS, &t), 0);
    assert_int_equal(pa_symtab_new(&f.sym), 0);
    assert_int_equal(pa_thread_hook_read(t), 0);
    pa_stacktab_foreach(t, on_stack, &f);
    pa_symtab_free(f.sym);
    pa_stacktab_free(t);
    return f;
}

static void test_creations_are_counted_at_the_creating_stack(void **state)
{
    uint64_t calls0 = pa_thread_hook_calls(), count0 = pa_thread_hook_count();
    found_t before, after;
    (void)state;

    before = count_in("hook_test_spawner");
    assert_int_equal(hook_test_spawner(5), 0);
    assert_int_equal(atomic_load(&ran), 5);
    assert_int_equal(pa_thread_hook_calls() - calls0, 5);
    /* the index page's count: the recorded creations, read without a table */
    assert_int_equal(pa_thread_hook_count() - count0, 5);
    after = count_in("hook_test_spawner");
    assert_int_equal(after.count - before.count, 5);
    assert_true(after.leaf_is_pthread_create);
}

static void test_fork_child_starts_with_an_empty_table(void **state)
{
    int status = 0;
    pid_t pid;
    (void)state;

    assert_int_equal(hook_test_spawner(2), 0);
    assert_true(count_in("hook_test_spawner").count >= 2);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pa_stacktab_t *t = NULL;
        int ok = pa_stacktab_new(1, 16, &t) == 0 && pa_thread_hook_read(t) == 0 &&
                 pa_stacktab_count(t) == 0 && pa_thread_hook_calls() == 0 &&
                 hook_test_spawner(1) == 0 && pa_thread_hook_calls() == 1;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_status_names_who_binds_pthread_create(void **state)
{
    const char *who = NULL;
    int rc = pa_thread_hook_status(&who);
    (void)state;

    assert_non_null(who);
    if (rc == 0) {
        assert_string_equal(who, "");
    } else {
        /* e.g. libc (this executable does not export its pthread_create) or a sanitizer */
        assert_int_equal(rc, -ENOTSUP);
        assert_true(who[0] != '\0');
    }
    printf("pthread_create is bound to: %s\n", rc == 0 ? "the hook" : who);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creations_are_counted_at_the_creating_stack),
        cmocka_unit_test(test_fork_child_starts_with_an_empty_table),
        cmocka_unit_test(test_status_names_who_binds_pthread_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
