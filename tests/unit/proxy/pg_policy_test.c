/* pg_policy unit tests: the per-agent counters behind pprof.max_concurrent (a limit is never
 * passed, counters are shared by upstreams naming one agent and carried over a reload) and
 * which pprof paths count. Configs are built by hand (no TOML). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "pg_config.h"
#include "pg_policy.h"

static void set_agent(pg_config_upstream_t *u, const char *name, const char *path)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)(void *)&u->agent.sa;

    memset(u, 0, sizeof *u);
    u->name = (char *)name;
    if (path == NULL)
        return;
    u->has_agent = true;
    u->agent.kind = PG_ADDR_UNIX;
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    snprintf(u->agent.text, sizeof u->agent.text, "unix:%s", path);
}

static void test_limit_is_never_passed(void **state)
{
    pg_config_upstream_t ups[1];
    pg_config_t cfg = {.upstreams = ups, .nupstreams = 1};
    pg_policy_limits_t *l;
    pg_policy_agent_t *a;

    (void)state;
    set_agent(&ups[0], "a", "/run/a.sock");
    assert_int_equal(pg_policy_limits_new(&cfg, NULL, &l), 0);
    a = pg_policy_agent(l, 0);
    assert_non_null(a);
    assert_true(pg_policy_agent_take(a, 2));
    assert_true(pg_policy_agent_take(a, 2));
    assert_false(pg_policy_agent_take(a, 2));
    assert_int_equal(pg_policy_agent_active(a), 2);
    pg_policy_agent_give(a);
    assert_true(pg_policy_agent_take(a, 2));
    assert_false(pg_policy_agent_take(a, 1));
    pg_policy_agent_give(a);
    pg_policy_agent_give(a);
    assert_int_equal(pg_policy_agent_active(a), 0);
    pg_policy_limits_free(l);
}

static void test_upstream_without_agent_has_no_counter(void **state)
{
    pg_config_upstream_t ups[2];
    pg_config_t cfg = {.upstreams = ups, .nupstreams = 2};
    pg_policy_limits_t *l;

    (void)state;
    set_agent(&ups[0], "app", NULL);
    set_agent(&ups[1], "b", "/run/b.sock");
    assert_int_equal(pg_policy_limits_new(&cfg, NULL, &l), 0);
    assert_null(pg_policy_agent(l, 0));
    assert_non_null(pg_policy_agent(l, 1));
    assert_null(pg_policy_agent(l, 2)); /* out of range */
    pg_policy_limits_free(l);
}

static void test_upstreams_naming_one_agent_share_its_counter(void **state)
{
    pg_config_upstream_t ups[3];
    pg_config_t cfg = {.upstreams = ups, .nupstreams = 3};
    pg_policy_limits_t *l;

    (void)state;
    set_agent(&ups[0], "a", "/run/a.sock");
    set_agent(&ups[1], "b", "/run/b.sock");
    set_agent(&ups[2], "a2", "/run/a.sock");
    assert_int_equal(pg_policy_limits_new(&cfg, NULL, &l), 0);
    assert_ptr_equal(pg_policy_agent(l, 0), pg_policy_agent(l, 2));
    assert_ptr_not_equal(pg_policy_agent(l, 0), pg_policy_agent(l, 1));
    assert_true(pg_policy_agent_take(pg_policy_agent(l, 2), 1));
    assert_false(pg_policy_agent_take(pg_policy_agent(l, 0), 1));
    assert_true(pg_policy_agent_take(pg_policy_agent(l, 1), 1));
    pg_policy_agent_give(pg_policy_agent(l, 2));
    pg_policy_agent_give(pg_policy_agent(l, 1));
    pg_policy_limits_free(l);
}

/* Requests started before a reload keep counting; the old limits may go first. */
static void test_reload_carries_counters_over_by_agent(void **state)
{
    pg_config_upstream_t old_ups[2], new_ups[2];
    pg_config_t old_cfg = {.upstreams = old_ups, .nupstreams = 2};
    pg_config_t new_cfg = {.upstreams = new_ups, .nupstreams = 2};
    pg_policy_limits_t *o, *n;
    pg_policy_agent_t *held;

    (void)state;
    set_agent(&old_ups[0], "a", "/run/a.sock");
    set_agent(&old_ups[1], "gone", "/run/gone.sock");
    set_agent(&new_ups[0], "new", "/run/new.sock");
    set_agent(&new_ups[1], "renamed", "/run/a.sock");
    assert_int_equal(pg_policy_limits_new(&old_cfg, NULL, &o), 0);
    held = pg_policy_agent(o, 0);
    assert_true(pg_policy_agent_take(held, 1));
    assert_int_equal(pg_policy_limits_new(&new_cfg, o, &n), 0);
    assert_ptr_equal(pg_policy_agent(n, 1), held);
    assert_false(pg_policy_agent_take(pg_policy_agent(n, 1), 1));
    assert_true(pg_policy_agent_take(pg_policy_agent(n, 0), 1));
    pg_policy_limits_free(o);
    /* still alive through n: the request in flight gives its count back */
    pg_policy_agent_give(held);
    assert_true(pg_policy_agent_take(pg_policy_agent(n, 1), 1));
    pg_policy_limits_free(n);
}

static void test_profiles_count_lookups_do_not(void **state)
{
    (void)state;
    assert_false(pg_policy_counts("", 0));
    assert_false(pg_policy_counts("/", 1));
    assert_false(pg_policy_counts("/cmdline", 8));
    assert_false(pg_policy_counts("/symbol", 7));
    assert_true(pg_policy_counts("/profile", 8));
    assert_true(pg_policy_counts("/heap", 5));
    assert_true(pg_policy_counts("/trace", 6));
    assert_true(pg_policy_counts("/goroutine", 10));
    assert_true(pg_policy_counts("/symbolx", 8));
    assert_true(pg_policy_counts("/cmdline/", 9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_is_never_passed),
        cmocka_unit_test(test_upstream_without_agent_has_no_counter),
        cmocka_unit_test(test_upstreams_naming_one_agent_share_its_counter),
        cmocka_unit_test(test_reload_carries_counters_over_by_agent),
        cmocka_unit_test(test_profiles_count_lookups_do_not),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
