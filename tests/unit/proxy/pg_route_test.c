/* pg_route unit tests: longest prefix at path-segment boundaries, host-specific routes,
 * the pprof split ("<prefix><pprof.path>/..." and what follows it), and -- because it
 * decides who reaches those pprof paths -- the pprof.allow CIDR matcher. Configs are built
 * by hand (no TOML). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "pg_config.h"
#include "pg_route.h"

static pg_config_upstream_t ups[3] = {
    {.name = "app"}, {.name = "api"}, {.name = "vhost"},
};

static pg_config_route_t routes[] = {
    {.prefix = "/", .upstream = 0},
    {.prefix = "/api", .upstream = 1},
    {.prefix = "/api/v2/", .upstream = 0},
    {.prefix = "/", .host = "example.com", .upstream = 2},
};

static pg_config_t make_cfg(const char *pprof_path)
{
    pg_config_t cfg;

    memset(&cfg, 0, sizeof cfg);
    cfg.upstreams = ups;
    cfg.nupstreams = 3;
    cfg.routes = routes;
    cfg.nroutes = 4;
    cfg.pprof.path = (char *)pprof_path;
    return cfg;
}

static const char *match(const pg_route_table_t *t, const char *host, const char *path,
                         pg_route_match_t *m)
{
    if (pg_route_match(t, host, host ? strlen(host) : 0, path, strlen(path), m) < 0)
        return NULL;
    return m->upstream->name;
}

static void test_route_longest_prefix_wins(void **state)
{
    pg_config_t cfg = make_cfg("/debug/pprof");
    pg_route_table_t *t;
    pg_route_match_t m;

    (void)state;
    assert_int_equal(pg_route_table_new(&cfg, &t), 0);
    assert_string_equal(match(t, NULL, "/", &m), "app");
    assert_string_equal(match(t, NULL, "/x/y", &m), "app");
    assert_string_equal(match(t, NULL, "/api", &m), "api");
    assert_string_equal(match(t, NULL, "/api/users", &m), "api");
    assert_int_equal(m.route_index, 1);
    assert_string_equal(match(t, NULL, "/api/v2/x", &m), "app");
    assert_int_equal(m.route_index, 2);
    /* "/api/v2/" ends in '/': "/api/v2" is not under it, so "/api" wins */
    assert_string_equal(match(t, NULL, "/api/v2", &m), "api");
    pg_route_table_free(t);
}

static void test_route_prefix_matches_only_at_segment_boundary(void **state)
{
    pg_config_t cfg = make_cfg("/debug/pprof");
    pg_route_table_t *t;
    pg_route_match_t m;

    (void)state;
    assert_int_equal(pg_route_table_new(&cfg, &t), 0);
    assert_string_equal(match(t, NULL, "/apix", &m), "app");
    assert_string_equal(match(t, NULL, "/api-v1/x", &m), "app");
    assert_true(pg_route_prefix_matches("/api", 4, "/api", 4));
    assert_true(pg_route_prefix_matches("/api", 4, "/api/", 5));
    assert_false(pg_route_prefix_matches("/api", 4, "/apix", 5));
    assert_false(pg_route_prefix_matches("/api", 4, "/ap", 3));
    assert_true(pg_route_prefix_matches("/", 1, "/anything", 9));
    pg_route_table_free(t);
}

static void test_route_with_host_only_for_that_host(void **state)
{
    pg_config_t cfg = make_cfg("/debug/pprof");
    pg_route_table_t *t;
    pg_route_match_t m;

    (void)state;
    assert_int_equal(pg_route_table_new(&cfg, &t), 0);
    assert_string_equal(match(t, "example.com", "/x", &m), "vhost");
    assert_string_equal(match(t, "EXAMPLE.com", "/x", &m), "vhost");
    assert_string_equal(match(t, "other.org", "/x", &m), "app");
    assert_string_equal(match(t, NULL, "/x", &m), "app");
    /* a longer prefix without host still beats the host's "/" */
    assert_string_equal(match(t, "example.com", "/api/x", &m), "api");
    pg_route_table_free(t);
}

static void test_route_no_match_is_enoent(void **state)
{
    pg_config_route_t only_api = {.prefix = "/api", .upstream = 1};
    pg_config_t cfg = make_cfg("/debug/pprof");
    pg_route_table_t *t;
    pg_route_match_t m;

    (void)state;
    cfg.routes = &only_api;
    cfg.nroutes = 1;
    assert_int_equal(pg_route_table_new(&cfg, &t), 0);
    assert_int_equal(pg_route_match(t, NULL, 0, "/other", 6, &m), -ENOENT);
    assert_int_equal(pg_route_match(t, NULL, 0, "/", 1, &m), -ENOENT);
    pg_route_table_free(t);
}

static void test_route_pprof_paths_split_from_app(void **state)
{
    pg_config_t cfg = make_cfg("/debug/pprof");
    pg_route_table_t *t;
    pg_route_match_t m;

    (void)state;
    assert_int_equal(pg_route_table_new(&cfg, &t), 0);
    assert_string_equal(match(t, NULL, "/debug/pprof/profile", &m), "app");
    assert_true(m.pprof);
    assert_int_equal(m.pprof_rest_len, 8);
    assert_memory_equal(m.pprof_rest, "/profile", 8);
    match(t, NULL, "/debug/pprof", &m);
    assert_true(m.pprof);
    assert_int_equal(m.pprof_rest_len, 0);
    match(t, NULL, "/debug/pprofile", &m);
    assert_false(m.pprof);
    match(t, NULL, "/debug/x", &m);
    assert_false(m.pprof);
    /* under a route prefix: /api + /debug/pprof */
    assert_string_equal(match(t, NULL, "/api/debug/pprof/heap", &m), "api");
    assert_true(m.pprof);
    assert_memory_equal(m.pprof_rest, "/heap", 5);
    /* /api/v2/ + /debug/pprof: the prefix's trailing '/' is not doubled */
    assert_string_equal(match(t, NULL, "/api/v2/debug/pprof/", &m), "app");
    assert_true(m.pprof);
    assert_int_equal(m.pprof_rest_len, 1);
    pg_route_table_free(t);
}

static void test_route_pprof_path_is_configurable(void **state)
{
    pg_config_t cfg = make_cfg("/_prof/");
    pg_route_table_t *t;
    pg_route_match_t m;

    (void)state;
    assert_int_equal(pg_route_table_new(&cfg, &t), 0);
    match(t, NULL, "/_prof/heap", &m);
    assert_true(m.pprof);
    assert_memory_equal(m.pprof_rest, "/heap", 5);
    match(t, NULL, "/debug/pprof/heap", &m);
    assert_false(m.pprof);
    pg_route_table_free(t);
}

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof ss);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, a, &in->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof ss);
    in6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &in6->sin6_addr);
    return ss;
}

static void test_pprof_allow_cidr_matcher(void **state)
{
    pg_cidr_t lo, lo6, net, host;
    struct sockaddr_storage a;
    const char *why;

    (void)state;
    assert_int_equal(pg_cidr_parse("127.0.0.0/8", &lo, &why), 0);
    assert_int_equal(pg_cidr_parse("::1/128", &lo6, &why), 0);
    assert_int_equal(pg_cidr_parse("10.1.2.0/23", &net, &why), 0);
    assert_int_equal(pg_cidr_parse("192.168.1.7", &host, &why), 0);
    a = v4("127.0.0.1");
    assert_true(pg_cidr_match(&lo, (struct sockaddr *)&a));
    assert_false(pg_cidr_match(&lo6, (struct sockaddr *)&a));
    a = v4("128.0.0.1");
    assert_false(pg_cidr_match(&lo, (struct sockaddr *)&a));
    a = v4("10.1.3.255");
    assert_true(pg_cidr_match(&net, (struct sockaddr *)&a));
    a = v4("10.1.4.0");
    assert_false(pg_cidr_match(&net, (struct sockaddr *)&a));
    a = v4("192.168.1.7");
    assert_true(pg_cidr_match(&host, (struct sockaddr *)&a));
    a = v4("192.168.1.8");
    assert_false(pg_cidr_match(&host, (struct sockaddr *)&a));
    a = v6("::1");
    assert_true(pg_cidr_match(&lo6, (struct sockaddr *)&a));
    assert_false(pg_cidr_match(&lo, (struct sockaddr *)&a));
    a = v6("::2");
    assert_false(pg_cidr_match(&lo6, (struct sockaddr *)&a));
    /* the gateway's view of an IPv4 client on a dual-stack socket */
    a = v6("::ffff:127.0.0.1");
    (void)pg_cidr_match(&lo, (struct sockaddr *)&a); /* either answer is defensible; no crash */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_longest_prefix_wins),
        cmocka_unit_test(test_route_prefix_matches_only_at_segment_boundary),
        cmocka_unit_test(test_route_with_host_only_for_that_host),
        cmocka_unit_test(test_route_no_match_is_enoent),
        cmocka_unit_test(test_route_pprof_paths_split_from_app),
        cmocka_unit_test(test_route_pprof_path_is_configurable),
        cmocka_unit_test(test_pprof_allow_cidr_matcher),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
