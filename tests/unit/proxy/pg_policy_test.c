/* pg_policy unit tests: the gate (pg_policy_check: each refusal, in order, with its message;
 * max_seconds against query tricks), the per-agent counters behind pprof.max_concurrent (a limit is
 * never passed, counters are shared by upstreams naming one agent and carried over a reload) and
 * which pprof paths count. Configs are built by hand (no TOML). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
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

/* One upstream "svc" with an agent, loopback allowed, max_seconds 20, max_concurrent 1. */
typedef struct gate {
    pg_config_upstream_t up;
    pg_config_t cfg;
    pg_cidr_t allow;
    pg_policy_limits_t *limits;
    struct sockaddr_in peer;
    pg_policy_req_t r;
    pg_policy_verdict_t v;
} gate_t;

static void gate_init(gate_t *g, const char *rest, const char *query)
{
    const char *why;

    memset(g, 0, sizeof *g);
    set_agent(&g->up, "svc", "/run/svc.sock");
    assert_int_equal(pg_cidr_parse("127.0.0.0/8", &g->allow, &why), 0);
    g->up.pprof.enabled = true;
    g->up.pprof.allow = &g->allow;
    g->up.pprof.nallow = 1;
    g->up.pprof.max_seconds = 20;
    g->up.pprof.max_concurrent = 1;
    g->cfg.upstreams = &g->up;
    g->cfg.nupstreams = 1;
    assert_int_equal(pg_policy_limits_new(&g->cfg, NULL, &g->limits), 0);
    g->peer.sin_family = AF_INET;
    g->peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g->r.up = &g->up;
    g->r.limits = g->limits;
    g->r.peer = (const struct sockaddr *)&g->peer;
    g->r.rest = rest;
    g->r.rest_len = strlen(rest);
    g->r.query = query;
    g->r.query_len = strlen(query);
}

static int gate_check(gate_t *g)
{
    return pg_policy_check(&g->r, &g->v);
}

static void test_gate_forwards_an_allowed_profile_and_counts_it(void **state)
{
    gate_t g;

    (void)state;
    gate_init(&g, "/profile", "seconds=5");
    assert_int_equal(gate_check(&g), 0);
    assert_int_equal(g.v.seconds, 5);
    assert_non_null(g.v.agent);
    assert_int_equal(pg_policy_agent_active(g.v.agent), 1);
    /* a second one: 409 naming the limit; the first gives back its count */
    assert_int_equal(gate_check(&g), 409);
    assert_string_equal(g.v.msg, "agent of \"svc\" is busy: 1 profile request(s) already "
                                 "running, the limit pprof.max_concurrent = 1");
    assert_null(g.v.agent);
    pg_policy_agent_give(pg_policy_agent(g.limits, 0));
    assert_int_equal(gate_check(&g), 0);
    pg_policy_agent_give(g.v.agent);
    pg_policy_limits_free(g.limits);
}

static void test_gate_refuses_in_order_enabled_allow_token_agent(void **state)
{
    gate_t g;

    (void)state;
    gate_init(&g, "/heap", "");
    g.up.pprof.enabled = false;
    assert_int_equal(gate_check(&g), 404);
    assert_string_equal(g.v.msg, "profiling is disabled for upstream \"svc\" (pprof.enabled)");
    g.up.pprof.enabled = true;
    g.peer.sin_addr.s_addr = htonl(0xC0000202); /* 192.0.2.2 */
    assert_int_equal(gate_check(&g), 403);
    assert_string_equal(g.v.msg, "pprof access denied: client 192.0.2.2 is not in pprof.allow");
    g.peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g.up.pprof.token = "s3cret";
    assert_int_equal(gate_check(&g), 401);
    g.r.authorization = "Bearer wrong";
    g.r.authorization_len = strlen(g.r.authorization);
    assert_int_equal(gate_check(&g), 401);
    g.r.authorization = "bearer s3cret";
    g.r.authorization_len = strlen(g.r.authorization);
    assert_int_equal(gate_check(&g), 0);
    pg_policy_agent_give(g.v.agent);
    g.up.has_agent = false;
    assert_int_equal(gate_check(&g), 404);
    assert_string_equal(g.v.msg, "upstream \"svc\" has no agent configured (upstream.agent)");
    pg_policy_limits_free(g.limits);
}

static void test_gate_holds_max_seconds_as_the_agent_reads_the_query(void **state)
{
    static const char *const refused[] = {
        "seconds=21",  "seconds=%32%31", "second%73=21",        "seconds=1;&seconds=21",
        "seconds=abc", "seconds=-1",     "seconds=99999999999",
    };
    gate_t g;
    size_t i;

    (void)state;
    gate_init(&g, "/profile", "");
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        g.r.query = refused[i];
        g.r.query_len = strlen(refused[i]);
        assert_int_equal(gate_check(&g), 400);
        assert_null(g.v.agent);
    }
    g.r.query = "seconds=21";
    g.r.query_len = 10;
    gate_check(&g);
    assert_string_equal(g.v.msg, "seconds=21 exceeds the limit pprof.max_seconds = 20");
    /* no seconds: Go's default of 30 s for profile is above 20 too */
    g.r.query_len = 0;
    assert_int_equal(gate_check(&g), 400);
    g.up.pprof.max_seconds = 30;
    assert_int_equal(gate_check(&g), 0);
    assert_int_equal(g.v.seconds, 30);
    pg_policy_agent_give(g.v.agent);
    /* seconds=0 is Go's default too (30 s for profile): held to the limit, and the timeout
     * exemption covers the 30 s the agent will take */
    g.r.query = "seconds=0";
    g.r.query_len = 9;
    assert_int_equal(gate_check(&g), 0);
    assert_int_equal(g.v.seconds, 30);
    pg_policy_agent_give(g.v.agent);
    g.up.pprof.max_seconds = 20;
    assert_int_equal(gate_check(&g), 400);
    g.up.pprof.max_seconds = 30;
    pg_policy_limits_free(g.limits);
}

static void test_gate_lookups_are_not_counted(void **state)
{
    gate_t g;

    (void)state;
    gate_init(&g, "/symbol", "");
    assert_int_equal(gate_check(&g), 0);
    assert_null(g.v.agent);
    assert_int_equal(g.v.seconds, 0);
    pg_policy_limits_free(g.limits);
}

static void test_metrics_follow_metrics_allow_else_pprof_allow(void **state)
{
    gate_t g;
    pg_cidr_t ten;
    const char *why;

    (void)state;
    gate_init(&g, "", "");
    g.cfg.pprof = g.up.pprof; /* global [pprof]: loopback */
    assert_true(pg_policy_metrics_allowed(&g.cfg, g.r.peer));
    assert_int_equal(pg_cidr_parse("10.0.0.0/8", &ten, &why), 0);
    g.cfg.server.has_metrics_allow = true;
    g.cfg.server.metrics_allow = &ten;
    g.cfg.server.nmetrics_allow = 1;
    assert_false(pg_policy_metrics_allowed(&g.cfg, g.r.peer));
    g.peer.sin_addr.s_addr = htonl(0x0A010203); /* 10.1.2.3 */
    assert_true(pg_policy_metrics_allowed(&g.cfg, g.r.peer));
    g.cfg.server.nmetrics_allow = 0; /* [] : nobody */
    assert_false(pg_policy_metrics_allowed(&g.cfg, g.r.peer));
    pg_policy_limits_free(g.limits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_is_never_passed),
        cmocka_unit_test(test_upstream_without_agent_has_no_counter),
        cmocka_unit_test(test_upstreams_naming_one_agent_share_its_counter),
        cmocka_unit_test(test_reload_carries_counters_over_by_agent),
        cmocka_unit_test(test_profiles_count_lookups_do_not),
        cmocka_unit_test(test_gate_forwards_an_allowed_profile_and_counts_it),
        cmocka_unit_test(test_gate_refuses_in_order_enabled_allow_token_agent),
        cmocka_unit_test(test_gate_holds_max_seconds_as_the_agent_reads_the_query),
        cmocka_unit_test(test_gate_lookups_are_not_counted),
        cmocka_unit_test(test_metrics_follow_metrics_allow_else_pprof_allow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
