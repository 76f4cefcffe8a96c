/* pg_buf object recycling unit tests: an object put back is the next one handed out (outside
 * ASan, which must see every free), the list keeps PG_BUF_OBJ_MAX at most, NULL is ignored,
 * and destroying the pool frees what it kept (ASan's leak check sees it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg_buf.h"

typedef struct obj {
    char bytes[4000];
} obj_t;

static void test_obj_put_back_is_handed_out_again(void **state)
{
    pg_bufpool_t p;
    obj_t *a;

    (void)state;
    pg_bufpool_init(&p);
    a = pg_bufpool_obj_get(&p, sizeof *a);
    assert_non_null(a);
    memset(a, 0xab, sizeof *a); /* all of it is ours */
    pg_bufpool_obj_put(&p, a);
#ifdef __SANITIZE_ADDRESS__
    assert_int_equal(p.nobjs, 0);
#else
    assert_int_equal(p.nobjs, 1);
    assert_ptr_equal(pg_bufpool_obj_get(&p, sizeof *a), a);
    assert_int_equal(p.nobjs, 0);
    pg_bufpool_obj_put(&p, a);
#endif
    pg_bufpool_obj_put(&p, NULL);
    pg_bufpool_destroy(&p);
    assert_int_equal(p.nobjs, 0);
}

static void test_obj_list_is_bounded(void **state)
{
    pg_bufpool_t p;
    obj_t *o[PG_BUF_OBJ_MAX + 5];
    size_t i;

    (void)state;
    pg_bufpool_init(&p);
    for (i = 0; i < PG_BUF_OBJ_MAX + 5; i++) {
        o[i] = pg_bufpool_obj_get(&p, sizeof *o[i]);
        assert_non_null(o[i]);
    }
    for (i = 0; i < PG_BUF_OBJ_MAX + 5; i++)
        pg_bufpool_obj_put(&p, o[i]);
#ifdef __SANITIZE_ADDRESS__
    assert_int_equal(p.nobjs, 0);
#else
    assert_int_equal(p.nobjs, PG_BUF_OBJ_MAX);
#endif
    pg_bufpool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obj_put_back_is_handed_out_again),
        cmocka_unit_test(test_obj_list_is_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
