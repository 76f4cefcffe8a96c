/* Unit tests for pa_symbol: net/http/pprof's symbol protocol with a fake symbol table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pa_symbol.h"

/* resolves 0x1000..0x1fff to "alpha", 8 to "eight", 0x4f2a10 to "main"; counts lookups */
static const char *fake_lookup(void *arg, uint64_t pc)
{
    int *calls = arg;
    (*calls)++;
    if (pc >= 0x1000 && pc < 0x2000)
        return "alpha";
    if (pc == 8)
        return "eight";
    if (pc == 0x4f2a10)
        return "main";
    return NULL;
}

static char *answer(const char *in, int *calls)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pa_symbol_answer(in, strlen(in), fake_lookup, calls, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_symbol_empty_request_only_counts_symbols(void **state)
{
    int calls = 0;
    char *out = answer("", &calls);
    (void)state;
    assert_string_equal(out, "num_symbols: 1\n");
    assert_int_equal(calls, 0);
    free(out);
}

static void test_symbol_answers_each_resolved_pc_in_order(void **state)
{
    int calls = 0;
    char *out = answer("0x4f2a10+0x1234+0x1000", &calls);
    (void)state;
    assert_string_equal(out, "num_symbols: 1\n0x4f2a10 main\n0x1234 alpha\n0x1000 alpha\n");
    assert_int_equal(calls, 3);
    free(out);
}

static void test_symbol_parses_words_like_parseuint_base_0(void **state)
{
    int calls = 0;
    /* octal 010 = 8, decimal 4096 = 0x1000, upper-case hex prefix */
    char *out = answer("010+4096+0X1FFF", &calls);
    (void)state;
    assert_string_equal(out, "num_symbols: 1\n0x8 eight\n0x1000 alpha\n0x1fff alpha\n");
    free(out);
}

static void test_symbol_skips_zero_bad_and_unresolved_words(void **state)
{
    int calls = 0;
    char *out = answer("0+0x0+zz+0x1000++0x9999+08+0x1001", &calls);
    (void)state;
    assert_string_equal(out, "num_symbols: 1\n0x1000 alpha\n0x1001 alpha\n");
    /* only non-zero parsed words are looked up: 0x1000, 0x9999, 0x1001 */
    assert_int_equal(calls, 3);
    free(out);
}

static void test_symbol_trailing_plus_and_overflow_are_harmless(void **state)
{
    int calls = 0;
    char *out = answer("0x1000+0x10000000000000000+", &calls);
    (void)state;
    /* overflow gives UINT64_MAX as Go's ParseUint does; it resolves to nothing */
    assert_string_equal(out, "num_symbols: 1\n0x1000 alpha\n");
    assert_int_equal(calls, 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbol_empty_request_only_counts_symbols),
        cmocka_unit_test(test_symbol_answers_each_resolved_pc_in_order),
        cmocka_unit_test(test_symbol_parses_words_like_parseuint_base_0),
        cmocka_unit_test(test_symbol_skips_zero_bad_and_unresolved_words),
        cmocka_unit_test(test_symbol_trailing_plus_and_overflow_are_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
