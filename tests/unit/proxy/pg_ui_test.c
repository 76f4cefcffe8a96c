/* pg_ui unit tests: which paths are the viewer's, the pprof policy on them (enabled, allow,
 * the token for services.json only), files served from a root with their content types and
 * nothing outside it (dot segments, encoded tricks, symlinks), services.json (only upstreams
 * with an agent the client may use, each with a profile base that really routes to it), and
 * the install hint when the speedscope bundle is missing. Roots are temp directories; configs
 * are built by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_route.h"
#include "pg_ui.h"

static char tmp[256];
static pg_ui_roots_t roots;
static pg_bufpool_t pool;
static pg_cidr_t loopback;
static struct sockaddr_in local, remote;

static pg_config_upstream_t ups[4];
static pg_config_route_t routes[5];
static pg_config_t cfg;
static pg_route_table_t *table;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void policy(pg_config_pprof_t *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->allow = &loopback;
    pp->nallow = 1;
    pp->enabled = true;
    pp->max_seconds = 60;
}

static int setup(void **state)
{
    char p[PATH_MAX + 64];
    const char *why;

    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/pg_ui_test.XXXXXX");
    assert_non_null(mkdtemp(tmp));
    snprintf(roots.page, sizeof roots.page, "%s/page", tmp);
    snprintf(roots.viewer, sizeof roots.viewer, "%s/page/speedscope", tmp);
    mkdir(roots.page, 0700);
    mkdir(roots.viewer, 0700);
    snprintf(p, sizeof p, "%s/index.html", roots.page);
    write_file(p, "<!doctype html><title>page</title>");
    snprintf(p, sizeof p, "%s/app.js", roots.page);
    write_file(p, "'use strict';");
    snprintf(p, sizeof p, "%s/index.html", roots.viewer);
    write_file(p, "<!doctype html><title>speedscope</title>");
    snprintf(p, sizeof p, "%s/speedscope-X.js", roots.viewer);
    write_file(p, "speedscope();");
    snprintf(p, sizeof p, "%s/font.woff2", roots.viewer);
    write_file(p, "wOF2");
    snprintf(p, sizeof p, "%s/secret.txt", tmp); /* outside both roots */
    write_file(p, "root:x:0:0");
    snprintf(p, sizeof p, "%s/page/escape.txt", tmp); /* a symlink out of the root */
    {
        char target[PATH_MAX + 64];

        snprintf(target, sizeof target, "%s/secret.txt", tmp);
        assert_int_equal(symlink(target, p), 0);
    }
    snprintf(p, sizeof p, "%s/page/sub", tmp); /* a directory is not a file */
    mkdir(p, 0700);

    pg_bufpool_init(&pool);
    assert_int_equal(pg_cidr_parse("127.0.0.0/8", &loopback, &why), 0);
    local.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &local.sin_addr);
    remote.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &remote.sin_addr);

    /* app (agent) at "/" and "/app2"; api (agent, token) at "/api"; plain (no agent) at
     * "/plain"; off (agent, pprof disabled) at "/off" */
    memset(ups, 0, sizeof ups);
    ups[0].name = "app", ups[0].has_agent = true;
    ups[1].name = "api", ups[1].has_agent = true;
    ups[2].name = "plain";
    ups[3].name = "off", ups[3].has_agent = true;
    for (int i = 0; i < 4; i++)
        policy(&ups[i].pprof);
    ups[1].pprof.token = "s3cret";
    ups[3].pprof.enabled = false;
    memset(routes, 0, sizeof routes);
    routes[0].prefix = "/", routes[0].upstream = 0;
    routes[1].prefix = "/api/", routes[1].upstream = 1;
    routes[2].prefix = "/plain", routes[2].upstream = 2;
    routes[3].prefix = "/off", routes[3].upstream = 3;
    routes[4].prefix = "/app2", routes[4].upstream = 0;
    memset(&cfg, 0, sizeof cfg);
    cfg.upstreams = ups;
    cfg.nupstreams = 4;
    cfg.routes = routes;
    cfg.nroutes = 5;
    cfg.pprof.path = "/debug/pprof";
    assert_int_equal(pg_route_table_new(&cfg, &table), 0);
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];

    (void)state;
    pg_route_table_free(table);
    pg_bufpool_destroy(&pool);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The response to METHOD rest (for upstream up, from peer, with auth or NULL), as a
 * NUL-terminated string the caller frees; its status in *status. */
static char *ask(const char *method, const char *rest, int up, const struct sockaddr_in *peer,
                 const char *auth, int *status)
{
    pg_ui_request_t r = {.cfg = &cfg,
                         .routes = table,
                         .up = &ups[up],
                         .peer = (const struct sockaddr *)peer,
                         .method = method,
                         .rest = rest,
                         .rest_len = strlen(rest),
                         .authorization = auth,
                         .authorization_len = auth ? strlen(auth) : 0,
                         .roots = &roots};
    pg_buf_t *b = NULL;
    char *s;

    assert_int_equal(pg_ui_respond(&r, &pool, &b), 0);
    assert_non_null(b);
    *status = pg_ui_status(b);
    s = malloc(b->len + 1);
    assert_non_null(s);
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    pg_buf_unref(b);
    return s;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");

    assert_non_null(b);
    return b + 4;
}

static int get_status(const char *rest)
{
    int st;
    char *s = ask("GET", rest, 0, &local, NULL, &st);

    free(s);
    return st;
}

static void test_ui_path_is_ui_and_below_only(void **state)
{
    (void)state;
    assert_true(pg_ui_path("/ui", 3));
    assert_true(pg_ui_path("/ui/", 4));
    assert_true(pg_ui_path("/ui/app.js", 10));
    assert_false(pg_ui_path("/uix", 4));
    assert_false(pg_ui_path("/u", 2));
    assert_false(pg_ui_path("", 0));
    assert_false(pg_ui_path("/heap", 5));
    assert_false(pg_ui_path("/UI/", 4));
}

static void test_ui_serves_page_and_viewer_files_with_their_types(void **state)
{
    int st;
    char *s;

    (void)state;
    s = ask("GET", "/ui/", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(s, "Content-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(s, "Content-Length: 34\r\n"));
    assert_non_null(strstr(s, "Content-Security-Policy: default-src 'self'"));
    assert_non_null(strstr(s, "Connection: close\r\n"));
    assert_string_equal(body_of(s), "<!doctype html><title>page</title>");
    free(s);

    s = ask("GET", "/ui/app.js", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(s, "Content-Type: text/javascript"));
    assert_string_equal(body_of(s), "'use strict';");
    free(s);

    s = ask("GET", "/ui/speedscope/", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(body_of(s), "<!doctype html><title>speedscope</title>");
    free(s);

    s = ask("GET", "/ui/speedscope/font.woff2", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(s, "Content-Type: font/woff2\r\n"));
    free(s);

    /* an escaped but harmless name is decoded */
    s = ask("GET", "/ui/speedscope/speedscope%2DX.js", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(body_of(s), "speedscope();");
    free(s);
}

static void test_ui_head_has_the_length_but_no_body(void **state)
{
    int st;
    char *s;

    (void)state;
    s = ask("HEAD", "/ui/app.js", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(s, "Content-Length: 13\r\n"));
    assert_string_equal(body_of(s), "");
    free(s);
}

static void test_ui_redirects_the_bare_directories(void **state)
{
    int st;
    char *s;

    (void)state;
    s = ask("GET", "/ui", 0, &local, NULL, &st);
    assert_int_equal(st, 301);
    assert_non_null(strstr(s, "\r\nLocation: ui/\r\n"));
    free(s);
    s = ask("GET", "/ui/speedscope", 0, &local, NULL, &st);
    assert_int_equal(st, 301);
    assert_non_null(strstr(s, "\r\nLocation: speedscope/\r\n"));
    free(s);
}

static void test_ui_refuses_every_way_out_of_the_root(void **state)
{
    static const char *const tricks[] = {
        "/ui/../secret.txt",
        "/ui/speedscope/../../../secret.txt",
        "/ui/%2e%2e/secret.txt",
        "/ui/%2E%2E/secret.txt",
        "/ui/.%2e/secret.txt",
        "/ui/..%2fsecret.txt",
        "/ui/..%2Fsecret.txt",
        "/ui/..%5csecret.txt",
        "/ui/..\\secret.txt",
        "/ui/speedscope/..%2f..%2f..%2fsecret.txt",
        "/ui/./index.html",
        "/ui//index.html",
        "/ui/speedscope//index.html",
        "/ui/index.html%00.png",
        "/ui/index.html%0a",
        "/ui/%",
        "/ui/%2",
        "/ui/%zz",
        "/ui/escape.txt", /* symlink to a file outside */
        "/ui/sub",        /* a directory */
        "/ui/sub/",
        "/ui/missing.js",
        "/ui/speedscope/%252e%252e/%252e%252e/secret.txt",
        /* dot segments that would stay inside the root are refused all the same */
        "/ui/sub/../index.html",
        "/ui/sub/%2e%2e/app.js",
        "/ui/speedscope/../app.js",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof tricks / sizeof tricks[0]; i++) {
        int st;
        char *s = ask("GET", tricks[i], 0, &local, NULL, &st);

        if (st != 404)
            fail_msg("%s: status %d", tricks[i], st);
        assert_null(strstr(s, "root:x"));
        free(s);
    }
}

static void test_ui_applies_the_upstreams_pprof_policy(void **state)
{
    int st;
    char *s;

    (void)state;
    s = ask("GET", "/ui/", 0, &remote, NULL, &st);
    assert_int_equal(st, 403);
    assert_non_null(strstr(body_of(s), "192.0.2.7 is not in pprof.allow"));
    free(s);
    s = ask("GET", "/ui/", 3, &local, NULL, &st);
    assert_int_equal(st, 404);
    assert_non_null(strstr(body_of(s), "profiling is disabled for upstream \"off\""));
    free(s);
    s = ask("POST", "/ui/", 0, &local, NULL, &st);
    assert_int_equal(st, 405);
    assert_non_null(strstr(s, "\r\nAllow: GET, HEAD\r\n"));
    free(s);
}

static void test_ui_token_guards_services_json_but_not_the_page(void **state)
{
    static const char *const bad[] = {"Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret",
                                      "Bearer",       "Bearer ",        "Bearer S3CRET"};
    size_t i;
    int st;
    char *s;

    (void)state;
    /* upstream "api" has a token: its page loads without it ... */
    assert_int_equal((free(ask("GET", "/ui/", 1, &local, NULL, &st)), st), 200);
    /* ... its service list does not */
    s = ask("GET", "/ui/services.json", 1, &local, NULL, &st);
    assert_int_equal(st, 401);
    assert_non_null(strstr(s, "\r\nWWW-Authenticate: Bearer realm=\"profgate pprof\"\r\n"));
    free(s);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = ask("GET", "/ui/services.json", 1, &local, bad[i], &st);
        if (st != 401)
            fail_msg("Authorization: %s -> %d", bad[i], st);
        free(s);
    }
    s = ask("GET", "/ui/services.json", 1, &local, "Bearer s3cret", &st);
    assert_int_equal(st, 200);
    assert_null(strstr(s, "s3cret")); /* the token is never echoed */
    free(s);
    s = ask("GET", "/ui/services.json", 1, &local, "bearer  s3cret", &st);
    assert_int_equal(st, 200);
    free(s);
    /* without a token configured, none is needed */
    assert_int_equal((free(ask("GET", "/ui/services.json", 0, &local, NULL, &st)), st), 200);
}

static void test_ui_services_json_lists_usable_agents_with_routed_bases(void **state)
{
    int st;
    char *s;
    const char *b;

    (void)state;
    s = ask("GET", "/ui/services.json", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(s, "Content-Type: application/json\r\n"));
    b = body_of(s);
    assert_non_null(strstr(b, "\"pprof_path\": \"/debug/pprof\""));
    assert_non_null(strstr(b, "\"viewer\": {\"installed\": true"));
    assert_non_null(strstr(b, "{\"name\": \"app\", \"routes\": [\"/\", \"/app2\"], \"host\": null, "
                              "\"base\": \"/debug/pprof\", \"max_seconds\": 60, "
                              "\"token_required\": false"));
    assert_non_null(strstr(b, "\"profile\": \"/debug/pprof/profile\""));
    assert_non_null(strstr(b, "\"mutex\": \"/debug/pprof/mutex\""));
    /* "/api/" + pprof path: the trailing slash of the prefix is not doubled */
    assert_non_null(strstr(b, "{\"name\": \"api\", \"routes\": [\"/api/\"], \"host\": null, "
                              "\"base\": \"/api/debug/pprof\", \"max_seconds\": 60, "
                              "\"token_required\": true"));
    assert_non_null(strstr(b, "\"heap\": \"/api/debug/pprof/heap\""));
    assert_null(strstr(b, "\"plain\"")); /* no agent */
    assert_null(strstr(b, "\"off\""));   /* pprof.enabled = false */
    free(s);

    /* a client not in an upstream's allow list does not see it */
    ups[1].pprof.nallow = 0;
    s = ask("GET", "/ui/services.json", 0, &local, NULL, &st);
    ups[1].pprof.nallow = 1;
    assert_int_equal(st, 200);
    assert_null(strstr(body_of(s), "\"api\""));
    assert_non_null(strstr(body_of(s), "\"app\""));
    free(s);
}

static void test_ui_without_the_viewer_says_how_to_install_it(void **state)
{
    pg_ui_roots_t saved = roots;
    int st;
    char *s;

    (void)state;
    snprintf(roots.viewer, sizeof roots.viewer, "%s/nowhere", tmp);
    s = ask("GET", "/ui/speedscope/", 0, &local, NULL, &st);
    assert_int_equal(st, 404);
    assert_non_null(strstr(body_of(s), "scripts/install-ui-deps.sh"));
    assert_non_null(strstr(body_of(s), roots.viewer));
    free(s);
    s = ask("GET", "/ui/services.json", 0, &local, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(body_of(s), "\"viewer\": {\"installed\": false"));
    assert_non_null(strstr(body_of(s), "install-ui-deps.sh"));
    free(s);
    /* the page itself still loads */
    assert_int_equal(get_status("/ui/"), 200);
    roots = saved;
}

static void test_ui_roots_follow_the_environment(void **state)
{
    pg_ui_roots_t r;

    (void)state;
    setenv("PROFGATE_UI_DIR", roots.page, 1);
    unsetenv("PROFGATE_SPEEDSCOPE_DIR");
    pg_ui_roots_find(&r);
    assert_string_equal(r.page, roots.page);
    assert_string_equal(r.viewer, roots.viewer); /* <page>/speedscope has index.html */
    setenv("PROFGATE_SPEEDSCOPE_DIR", "/nonexistent/speedscope", 1);
    pg_ui_roots_find(&r);
    assert_string_equal(r.viewer, "/nonexistent/speedscope");
    unsetenv("PROFGATE_UI_DIR");
    unsetenv("PROFGATE_SPEEDSCOPE_DIR");
    /* from the build tree, the source tree's page (proxy/ui) */
    pg_ui_roots_find(&r);
    assert_non_null(strstr(r.page, "/proxy/ui"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_path_is_ui_and_below_only),
        cmocka_unit_test(test_ui_serves_page_and_viewer_files_with_their_types),
        cmocka_unit_test(test_ui_head_has_the_length_but_no_body),
        cmocka_unit_test(test_ui_redirects_the_bare_directories),
        cmocka_unit_test(test_ui_refuses_every_way_out_of_the_root),
        cmocka_unit_test(test_ui_applies_the_upstreams_pprof_policy),
        cmocka_unit_test(test_ui_token_guards_services_json_but_not_the_page),
        cmocka_unit_test(test_ui_services_json_lists_usable_agents_with_routed_bases),
        cmocka_unit_test(test_ui_without_the_viewer_says_how_to_install_it),
        cmocka_unit_test(test_ui_roots_follow_the_environment),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
