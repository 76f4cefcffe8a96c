/* Unit tests for pa_loader_hook: the interposed dlopen/dlclose are the ones this program
 * calls, handlers see "inside the loader" while one runs, and a loader call waits for an
 * unwind that began before it. */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_loader_hook.h"

static void test_loader_hook_sees_this_programs_dlopen_and_dlclose(void **state)
{
    unsigned long before;
    void *h;
    (void)state;
    assert_int_equal(pa_loader_hook_init(), 0);
    before = atomic_load(&pa__loader_calls);
    h = dlopen("libresolv.so.2", RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    assert_non_null(dlsym(h, "res_query")); /* the real dlopen did its job */
    assert_int_equal(dlclose(h), 0);
    assert_int_equal(atomic_load(&pa__loader_calls), before + 2);
    assert_int_equal(atomic_load(&pa__loader_depth), 0);
    assert_null(dlopen("/nonexistent/libnothing.so", RTLD_NOW));
    assert_non_null(dlerror()); /* the real error comes through */
}

static void test_loader_hook_unwinding_is_refused_inside_the_loader(void **state)
{
    (void)state;
    assert_int_equal(pa_loader_unwind_begin(), 1);
    assert_int_equal(atomic_load(&pa__loader_unwinders), 1);
    pa_loader_unwind_end();
    atomic_fetch_add(&pa__loader_depth, 1); /* as a thread inside dlopen */
    assert_int_equal(pa_loader_unwind_begin(), 0);
    assert_int_equal(atomic_load(&pa__loader_unwinders), 0);
    atomic_fetch_sub(&pa__loader_depth, 1);
}

static atomic_int opened;

static void *open_lib(void *arg)
{
    void *h = dlopen("libresolv.so.2", RTLD_NOW | RTLD_LOCAL);
    (void)arg;
    atomic_store(&opened, 1);
    if (h != NULL)
        dlclose(h);
    return NULL;
}

static void test_loader_hook_dlopen_waits_for_an_unwind_in_progress(void **state)
{
    pthread_t th;
    (void)state;
    atomic_store(&opened, 0);
    assert_int_equal(pa_loader_unwind_begin(), 1); /* a handler is unwinding */
    pthread_create(&th, NULL, open_lib, NULL);
    /* wait until the thread is at the door (a loaded machine may take a while to run it) */
    for (int i = 0; i < 1000 && atomic_load(&pa__loader_depth) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&pa__loader_depth), 1);
    usleep(100000);
    assert_int_equal(atomic_load(&opened), 0); /* held there while we unwind */
    pa_loader_unwind_end();
    for (int i = 0; i < 500 && !atomic_load(&opened); i++)
        usleep(10000);
    assert_int_equal(atomic_load(&opened), 1);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&pa__loader_depth), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loader_hook_sees_this_programs_dlopen_and_dlclose),
        cmocka_unit_test(test_loader_hook_unwinding_is_refused_inside_the_loader),
        cmocka_unit_test(test_loader_hook_dlopen_waits_for_an_unwind_in_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
