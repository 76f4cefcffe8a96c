/* Unit tests for pa_query: Go's url.ParseQuery/Get, strconv.ParseInt(s,10,64) and
 * strconv.ParseUint(s,0,64), case by case against what Go returns. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pa_query.h"

static void test_query_finds_the_first_value_of_a_key(void **state)
{
    char v[32];
    (void)state;
    assert_int_equal(pa_query_get("seconds=5", "seconds", v, sizeof(v)), 1);
    assert_string_equal(v, "5");
    assert_int_equal(pa_query_get("debug=1&seconds=7&seconds=9", "seconds", v, sizeof(v)), 1);
    assert_string_equal(v, "7");
    assert_int_equal(pa_query_get("seconds", "seconds", v, sizeof(v)), 1);
    assert_string_equal(v, "");
    assert_int_equal(pa_query_get("seconds=", "seconds", v, sizeof(v)), 1);
    assert_string_equal(v, "");
}

static void test_query_absent_key_is_zero(void **state)
{
    char v[32];
    (void)state;
    assert_int_equal(pa_query_get("", "seconds", v, sizeof(v)), 0);
    assert_int_equal(pa_query_get("second=5&secondsx=1", "seconds", v, sizeof(v)), 0);
    assert_int_equal(pa_query_get("&&", "seconds", v, sizeof(v)), 0);
}

static void test_query_decodes_percent_and_plus(void **state)
{
    char v[32];
    (void)state;
    assert_int_equal(pa_query_get("s%65conds=1%32+3", "seconds", v, sizeof(v)), 1);
    assert_string_equal(v, "12 3");
}

static void test_query_skips_pairs_go_rejects(void **state)
{
    char v[32];
    (void)state;
    /* a semicolon makes the pair invalid (Go >= 1.17); a bad escape too */
    assert_int_equal(pa_query_get("seconds=1;x=2", "seconds", v, sizeof(v)), 0);
    assert_int_equal(pa_query_get("seconds=%zz&seconds=4", "seconds", v, sizeof(v)), 1);
    assert_string_equal(v, "4");
    assert_int_equal(pa_query_get("seconds=1%", "seconds", v, sizeof(v)), 0);
}

static void test_query_value_too_long_is_reported(void **state)
{
    char v[4];
    (void)state;
    assert_int_equal(pa_query_get("seconds=12345", "seconds", v, sizeof(v)), -ENAMETOOLONG);
}

static void test_parse_int_accepts_what_go_accepts(void **state)
{
    int64_t x;
    (void)state;
    assert_int_equal(pa_query_parse_int("30", &x), 0);
    assert_int_equal(x, 30);
    assert_int_equal(pa_query_parse_int("+7", &x), 0);
    assert_int_equal(x, 7);
    assert_int_equal(pa_query_parse_int("-3", &x), 0);
    assert_int_equal(x, -3);
    assert_int_equal(pa_query_parse_int("9223372036854775807", &x), 0);
    assert_int_equal(x, INT64_MAX);
    assert_int_equal(pa_query_parse_int("-9223372036854775808", &x), 0);
    assert_true(x == INT64_MIN);
}

static void test_parse_int_refuses_what_go_refuses(void **state)
{
    int64_t x;
    (void)state;
    assert_int_equal(pa_query_parse_int("", &x), -EINVAL);
    assert_int_equal(pa_query_parse_int("-", &x), -EINVAL);
    assert_int_equal(pa_query_parse_int("1.5", &x), -EINVAL);
    assert_int_equal(pa_query_parse_int("0x10", &x), -EINVAL);
    assert_int_equal(pa_query_parse_int("1_000", &x), -EINVAL);
    assert_int_equal(pa_query_parse_int(" 5", &x), -EINVAL);
    assert_int_equal(pa_query_parse_int("9223372036854775808", &x), -ERANGE);
}

static int u0(const char *s, uint64_t *x)
{
    return pa_query_parse_uint0(s, strlen(s), x);
}

static void test_parse_uint0_bases_as_go(void **state)
{
    uint64_t x;
    (void)state;
    assert_int_equal(u0("0x4f2a10", &x), 0);
    assert_int_equal(x, 0x4f2a10);
    assert_int_equal(u0("0XABCDEF", &x), 0);
    assert_int_equal(x, 0xabcdef);
    assert_int_equal(u0("1234", &x), 0);
    assert_int_equal(x, 1234);
    assert_int_equal(u0("010", &x), 0);
    assert_int_equal(x, 8);
    assert_int_equal(u0("0o17", &x), 0);
    assert_int_equal(x, 15);
    assert_int_equal(u0("0b101", &x), 0);
    assert_int_equal(x, 5);
    assert_int_equal(u0("0", &x), 0);
    assert_int_equal(x, 0);
    assert_int_equal(u0("0xffffffffffffffff", &x), 0);
    assert_true(x == UINT64_MAX);
    assert_int_equal(u0("0x_1_0", &x), 0);
    assert_int_equal(x, 16);
    assert_int_equal(u0("1_000", &x), 0);
    assert_int_equal(x, 1000);
}

static void test_parse_uint0_errors_as_go(void **state)
{
    uint64_t x;
    (void)state;
    assert_int_equal(u0("", &x), -EINVAL);
    assert_int_equal(u0("0x", &x), -EINVAL);
    assert_int_equal(u0("08", &x), -EINVAL);
    assert_int_equal(u0("0x1g", &x), -EINVAL);
    assert_int_equal(u0("-1", &x), -EINVAL);
    assert_int_equal(u0("+1", &x), -EINVAL);
    assert_int_equal(u0("1__0", &x), -EINVAL);
    assert_int_equal(u0("_10", &x), -EINVAL);
    assert_int_equal(u0("10_", &x), -EINVAL);
    assert_int_equal(u0("0x1\n", &x), -EINVAL);
    assert_int_equal(u0("0x10000000000000000", &x), -ERANGE);
    assert_true(x == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_finds_the_first_value_of_a_key),
        cmocka_unit_test(test_query_absent_key_is_zero),
        cmocka_unit_test(test_query_decodes_percent_and_plus),
        cmocka_unit_test(test_query_skips_pairs_go_rejects),
        cmocka_unit_test(test_query_value_too_long_is_reported),
        cmocka_unit_test(test_parse_int_accepts_what_go_accepts),
        cmocka_unit_test(test_parse_int_refuses_what_go_refuses),
        cmocka_unit_test(test_parse_uint0_bases_as_go),
        cmocka_unit_test(test_parse_uint0_errors_as_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
