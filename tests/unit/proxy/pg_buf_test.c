/* pg_buf unit tests: references keep a buffer alive, the last one returns it to the free
 * list (bounded), odd sizes bypass the list, and free buffers' pages are given back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg_buf.h"

static void test_buf_last_unref_returns_to_pool(void **state)
{
    pg_bufpool_t p;
    pg_buf_t *a, *b;

    (void)state;
    pg_bufpool_init(&p);
    a = pg_buf_get(&p, 100);
    assert_non_null(a);
    assert_true(a->cap >= 100);
    assert_int_equal(a->len, 0);
    assert_int_equal(p.nlive, 1);
    pg_buf_ref(a);
    pg_buf_unref(a);
    assert_int_equal(p.nlive, 1);
    assert_int_equal(p.nfree, 0);
    pg_buf_unref(a);
    assert_int_equal(p.nlive, 0);
    assert_int_equal(p.nfree, 1);
    b = pg_buf_get(&p, PG_BUF_SIZE);
    assert_ptr_equal(a, b); /* reused */
    assert_int_equal(p.nfree, 0);
    pg_buf_unref(b);
    pg_bufpool_destroy(&p);
}

static void test_buf_large_request_not_pooled(void **state)
{
    pg_bufpool_t p;
    pg_buf_t *a;

    (void)state;
    pg_bufpool_init(&p);
    a = pg_buf_get(&p, PG_BUF_SIZE * 2);
    assert_non_null(a);
    assert_true(a->cap >= PG_BUF_SIZE * 2);
    pg_buf_unref(a);
    assert_int_equal(p.nfree, 0);
    assert_int_equal(p.nlive, 0);
    pg_bufpool_destroy(&p);
}

static void test_buf_free_list_is_bounded(void **state)
{
    static pg_buf_t *bufs[PG_BUF_POOL_MAX + 10];
    pg_bufpool_t p;
    size_t i;

    (void)state;
    pg_bufpool_init(&p);
    for (i = 0; i < PG_BUF_POOL_MAX + 10; i++)
        bufs[i] = pg_buf_get(&p, 1);
    for (i = 0; i < PG_BUF_POOL_MAX + 10; i++)
        pg_buf_unref(bufs[i]);
    assert_int_equal(p.nfree, PG_BUF_POOL_MAX);
    assert_int_equal(p.nlive, 0);
    pg_bufpool_destroy(&p);
}

/* Pages a read touched are given back: the buffer's tail reads as zero afterwards, its
 * first bytes stay, and a buffer not used since the last scavenge is left alone. */
static void test_buf_scavenge_gives_back_used_free_pages(void **state)
{
    pg_bufpool_t p;
    pg_buf_t *a;
    size_t i;

    (void)state;
    pg_bufpool_init(&p);
    a = pg_buf_get(&p, PG_BUF_SIZE);
    assert_non_null(a);
    memset(a->data, 'x', a->cap);
    pg_buf_unref(a);
    pg_bufpool_scavenge(&p);
    assert_int_equal(p.nscavenged, 1);
    assert_int_equal(a->data[0], 'x');
    assert_int_equal(a->data[a->cap / 2], 0); /* a whole page inside data */
    pg_bufpool_scavenge(&p); /* not used since */
    assert_int_equal(p.nscavenged, 1);
    /* and on its own, every PG_BUF_SCAVENGE_EVERY returns */
    for (i = 0; i < PG_BUF_SCAVENGE_EVERY; i++) {
        a = pg_buf_get(&p, 1);
        a->data[a->cap / 2] = 'y';
        pg_buf_unref(a);
    }
    assert_int_equal(p.nscavenged, 2);
    assert_int_equal(a->data[a->cap / 2], 0); /* a whole page inside data */
    assert_int_equal(p.nfree, 1);
    pg_bufpool_destroy(&p);
}

/* Under load PG_BUF_SCAVENGE_EVERY returns take a few ms: the automatic scavenge runs at
 * most once per PG_BUF_SCAVENGE_MIN_MS (a direct call is not limited). */
static void test_buf_automatic_scavenge_at_most_once_per_interval(void **state)
{
    pg_bufpool_t p;
    pg_buf_t *a = NULL;
    size_t i;

    (void)state;
    pg_bufpool_init(&p);
    for (i = 0; i < PG_BUF_SCAVENGE_EVERY; i++) {
        a = pg_buf_get(&p, 1);
        a->data[a->cap / 2] = 'y';
        pg_buf_unref(a);
    }
    assert_int_equal(p.nscavenged, 1);
    assert_int_equal(a->data[a->cap / 2], 0);
    /* again at once: too soon */
    for (i = 0; i < PG_BUF_SCAVENGE_EVERY; i++) {
        a = pg_buf_get(&p, 1);
        a->data[a->cap / 2] = 'z';
        pg_buf_unref(a);
    }
    assert_int_equal(p.nscavenged, 1);
    assert_int_equal(a->data[a->cap / 2], 'z');
    pg_bufpool_scavenge(&p);
    assert_int_equal(p.nscavenged, 2);
    assert_int_equal(a->data[a->cap / 2], 0);
    pg_bufpool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_last_unref_returns_to_pool),
        cmocka_unit_test(test_buf_large_request_not_pooled),
        cmocka_unit_test(test_buf_free_list_is_bounded),
        cmocka_unit_test(test_buf_scavenge_gives_back_used_free_pages),
        cmocka_unit_test(test_buf_automatic_scavenge_at_most_once_per_interval),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
