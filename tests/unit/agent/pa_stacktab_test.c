/* Unit tests for pa_stacktab: aggregation, capacity and drops, truncation, order, reset. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pa_stacktab.h"

typedef struct collected {
    size_t n;
    uintptr_t first_pc[16];
    size_t npcs[16];
    int64_t v0[16];
    int64_t v1[16];
    int stop_after;
    size_t nvalues; /* 0 means 2 */
} collected_t;

static int collect(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    collected_t *c = arg;
    if (c->n < 16) {
        c->first_pc[c->n] = npcs > 0 ? pcs[0] : 0;
        c->npcs[c->n] = npcs;
        c->v0[c->n] = values[0];
        c->v1[c->n] = c->nvalues == 1 ? 0 : values[1];
    }
    c->n++;
    if (c->stop_after > 0 && (int)c->n == c->stop_after)
        return 42;
    return 0;
}

static void test_stacktab_rejects_bad_arguments(void **state)
{
    pa_stacktab_t *t = (pa_stacktab_t *)1;
    (void)state;
    assert_int_equal(pa_stacktab_new(0, 10, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(pa_stacktab_new(PA_MAX_VALUES + 1, 10, &t), -EINVAL);
    assert_int_equal(pa_stacktab_new(1, 0, &t), -EINVAL);
}

static void test_stacktab_sums_values_of_identical_stacks(void **state)
{
    pa_stacktab_t *t;
    uintptr_t a[] = {0x1000, 0x2000, 0x3000};
    uintptr_t b[] = {0x1000, 0x2000};         /* prefix of a: a different stack */
    uintptr_t c[] = {0x2000, 0x1000, 0x3000}; /* same PCs, other order: different */
    int64_t v1[] = {1, 10};
    int64_t v2[] = {2, 20};
    collected_t col = {0};
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 16, &t), 0);
    assert_int_equal(pa_stacktab_nvalues(t), 2);
    assert_int_equal(pa_stacktab_add(t, a, 3, v1), 0);
    assert_int_equal(pa_stacktab_add(t, b, 2, v1), 0);
    assert_int_equal(pa_stacktab_add(t, a, 3, v2), 0);
    assert_int_equal(pa_stacktab_add(t, c, 3, v2), 0);
    assert_int_equal(pa_stacktab_add(t, a, 3, v2), 0);
    assert_int_equal(pa_stacktab_count(t), 3);
    assert_int_equal(pa_stacktab_dropped(t), 0);

    assert_int_equal(pa_stacktab_foreach(t, collect, &col), 0);
    assert_int_equal(col.n, 3);
    /* insertion order: a, b, c */
    assert_int_equal(col.npcs[0], 3);
    assert_int_equal(col.first_pc[0], 0x1000);
    assert_int_equal(col.v0[0], 5);
    assert_int_equal(col.v1[0], 50);
    assert_int_equal(col.npcs[1], 2);
    assert_int_equal(col.v0[1], 1);
    assert_int_equal(col.first_pc[2], 0x2000);
    assert_int_equal(col.v0[2], 2);
    assert_int_equal(col.v1[2], 20);
    pa_stacktab_free(t);
}

static void test_stacktab_full_table_counts_drops_and_keeps_summing(void **state)
{
    pa_stacktab_t *t;
    int64_t v[] = {1};
    uintptr_t pc;
    collected_t col = {.nvalues = 1};
    (void)state;

    assert_int_equal(pa_stacktab_new(1, 4, &t), 0);
    for (pc = 1; pc <= 4; pc++)
        assert_int_equal(pa_stacktab_add(t, &pc, 1, v), 0);
    pc = 5;
    assert_int_equal(pa_stacktab_add(t, &pc, 1, v), -ENOSPC);
    pc = 6;
    assert_int_equal(pa_stacktab_add(t, &pc, 1, v), -ENOSPC);
    assert_int_equal(pa_stacktab_dropped(t), 2);
    assert_int_equal(pa_stacktab_count(t), 4);
    /* a stack already present still aggregates when the table is full */
    pc = 3;
    assert_int_equal(pa_stacktab_add(t, &pc, 1, v), 0);
    assert_int_equal(pa_stacktab_foreach(t, collect, &col), 0);
    assert_int_equal(col.n, 4);
    assert_int_equal(col.v0[2], 2);

    pa_stacktab_reset(t);
    assert_int_equal(pa_stacktab_count(t), 0);
    assert_int_equal(pa_stacktab_dropped(t), 0);
    pc = 9;
    assert_int_equal(pa_stacktab_add(t, &pc, 1, v), 0);
    memset(&col, 0, sizeof(col));
    col.nvalues = 1;
    assert_int_equal(pa_stacktab_foreach(t, collect, &col), 0);
    assert_int_equal(col.n, 1);
    assert_int_equal(col.first_pc[0], 9);
    assert_int_equal(col.v0[0], 1); /* reset zeroed the old sums */
    pa_stacktab_free(t);
}

static void test_stacktab_truncates_deep_stacks_at_the_root(void **state)
{
    pa_stacktab_t *t;
    uintptr_t deep[PA_MAX_FRAMES + 10];
    int64_t v[] = {1, 1};
    collected_t col = {0};
    (void)state;

    for (size_t i = 0; i < PA_MAX_FRAMES + 10; i++)
        deep[i] = 0x400000 + i;
    assert_int_equal(pa_stacktab_new(2, 8, &t), 0);
    assert_int_equal(pa_stacktab_add(t, deep, PA_MAX_FRAMES + 10, v), 0);
    /* differs only below the cut: same stack once truncated */
    deep[PA_MAX_FRAMES + 5] = 0xdead;
    assert_int_equal(pa_stacktab_add(t, deep, PA_MAX_FRAMES + 10, v), 0);
    assert_int_equal(pa_stacktab_add(t, deep, PA_MAX_FRAMES, v), 0);
    assert_int_equal(pa_stacktab_count(t), 1);
    assert_int_equal(pa_stacktab_foreach(t, collect, &col), 0);
    assert_int_equal(col.npcs[0], PA_MAX_FRAMES);
    assert_int_equal(col.first_pc[0], 0x400000); /* the leaf survives */
    assert_int_equal(col.v0[0], 3);
    pa_stacktab_free(t);
}

static void test_stacktab_empty_stack_is_one_entry(void **state)
{
    pa_stacktab_t *t;
    int64_t v[] = {4, 0};
    collected_t col = {0};
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 8, &t), 0);
    assert_int_equal(pa_stacktab_add(t, NULL, 0, v), 0);
    assert_int_equal(pa_stacktab_add(t, NULL, 0, v), 0);
    assert_int_equal(pa_stacktab_count(t), 1);
    assert_int_equal(pa_stacktab_foreach(t, collect, &col), 0);
    assert_int_equal(col.npcs[0], 0);
    assert_int_equal(col.v0[0], 8);
    pa_stacktab_free(t);
}

static void test_stacktab_foreach_stops_on_nonzero(void **state)
{
    pa_stacktab_t *t;
    int64_t v[] = {7, 0};
    collected_t col = {0};
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 8, &t), 0);
    for (uintptr_t pc = 100; pc < 105; pc++)
        assert_int_equal(pa_stacktab_add(t, &pc, 1, v), 0);
    col.stop_after = 2;
    assert_int_equal(pa_stacktab_foreach(t, collect, &col), 42);
    assert_int_equal(col.n, 2);
    pa_stacktab_free(t);
}

static void test_stacktab_many_stacks_all_found_again(void **state)
{
    enum { N = 10000 };
    pa_stacktab_t *t;
    int64_t v[] = {1};
    uintptr_t st[3];
    (void)state;

    assert_int_equal(pa_stacktab_new(1, N, &t), 0);
    for (int round = 0; round < 3; round++) {
        for (uintptr_t i = 0; i < N; i++) {
            /* aligned PCs sharing low bits: a weak hash would cluster these */
            st[0] = 0x7f0000000000 + i * 4096;
            st[1] = 0x401000;
            st[2] = i & 7;
            assert_int_equal(pa_stacktab_add(t, st, 3, v), 0);
        }
    }
    assert_int_equal(pa_stacktab_count(t), N);
    assert_int_equal(pa_stacktab_dropped(t), 0);
    pa_stacktab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stacktab_rejects_bad_arguments),
        cmocka_unit_test(test_stacktab_sums_values_of_identical_stacks),
        cmocka_unit_test(test_stacktab_full_table_counts_drops_and_keeps_summing),
        cmocka_unit_test(test_stacktab_truncates_deep_stacks_at_the_root),
        cmocka_unit_test(test_stacktab_empty_stack_is_one_entry),
        cmocka_unit_test(test_stacktab_foreach_stops_on_nonzero),
        cmocka_unit_test(test_stacktab_many_stacks_all_found_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
