/* Unit tests for pa_trace's pure parts: JSON string escaping (function names go into the
 * trace verbatim, so quotes, backslashes and control characters must not break the document)
 * and Go's parsing of trace's seconds parameter. The endpoint itself is driven by
 * integration.agent_trace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_json_string_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_trace_json_string_keeps_utf8_and_grows),
        cmocka_unit_test(test_trace_seconds_are_parsed_as_go_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
