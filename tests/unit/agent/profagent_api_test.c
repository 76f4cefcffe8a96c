/* unit.profagent_api: the public header's knobs reach the samplers they name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "profagent.h"
#include "pa_lock.h"

static void test_block_rate_set_through_the_api_is_the_samplers_rate(void **state)
{
    (void)state;
    profagent_set_block_rate(12345);
    assert_int_equal(pa_lock_block_rate(), 12345);
    profagent_set_block_rate(-7); /* negative means off, as Go */
    assert_int_equal(pa_lock_block_rate(), 0);
}

static void test_mutex_fraction_returns_the_previous_rate_and_negative_only_reads(void **state)
{
    (void)state;
    profagent_set_mutex_fraction(0);
    assert_int_equal(profagent_set_mutex_fraction(5), 0);
    assert_int_equal(profagent_set_mutex_fraction(-1), 5);
    assert_int_equal(pa_lock_mutex_fraction(-1), 5);
    assert_int_equal(profagent_set_mutex_fraction(0), 5);
}

static void test_socket_path_is_null_when_the_agent_is_not_running(void **state)
{
    (void)state;
    assert_null(profagent_socket_path());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_rate_set_through_the_api_is_the_samplers_rate),
        cmocka_unit_test(test_mutex_fraction_returns_the_previous_rate_and_negative_only_reads),
        cmocka_unit_test(test_socket_path_is_null_when_the_agent_is_not_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
