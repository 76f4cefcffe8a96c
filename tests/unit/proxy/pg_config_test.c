/* pg_config unit tests: the value parsers (addresses, CIDRs, durations), loads of valid files
 * with their resolved values, and every kind of config mistake, each checked for the exact
 * FILE:LINE:COL and message. Files are written into a fresh temp dir per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pg_config.h"

/* ---- helpers --------------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    pg_errlist_t errs;
    pg_config_t *cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/pg_config_test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    pg_errlist_init(&f->errs);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[PATH_MAX + 16];

    pg_config_free(f->cfg);
    pg_errlist_destroy(&f->errs);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Write name (relative to the fixture dir, subdirectories created) and return its path. */
static const char *write_file(fixture_t *f, const char *name, const char *text)
{
    static char path[PATH_MAX];
    char *slash;
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    for (slash = strchr(path + strlen(f->dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0700);
        *slash = '/';
    }
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static int load(fixture_t *f, const char *name, const char *text)
{
    const char *path = write_file(f, name, text);

    pg_config_free(f->cfg);
    f->cfg = NULL;
    return pg_config_load(path, &f->cfg, &f->errs);
}

static void dump_errors(const fixture_t *f)
{
    char buf[1024];
    size_t i;

    for (i = 0; i < f->errs.n; i++)
        fprintf(stderr, "  got: %s\n", pg_error_format(&f->errs.items[i], buf, sizeof buf));
}

/* Assert that error i reads "<dir>/<file>:<rest>". */
static void expect_error_at(const fixture_t *f, size_t i, const char *file, const char *rest)
{
    char buf[1024], want[1024];

    snprintf(want, sizeof want, "%s/%s:%s", f->dir, file, rest);
    if (i >= f->errs.n) {
        dump_errors(f);
        fail_msg("expected error %zu: %s", i, want);
    }
    pg_error_format(&f->errs.items[i], buf, sizeof buf);
    if (strcmp(buf, want) != 0) {
        dump_errors(f);
        fail_msg("error %zu:\n  want: %s\n  have: %s", i, want, buf);
    }
}

/* Loading text must fail with exactly one error "<file>:<rest>". */
static void expect_only_error(fixture_t *f, const char *text, const char *rest)
{
    int rc = load(f, "c.toml", text);

    if (rc != -EINVAL || f->errs.n != 1) {
        dump_errors(f);
        fail_msg("rc %d, %zu errors; wanted -EINVAL and 1 error: %s", rc, f->errs.n, rest);
    }
    assert_null(f->cfg);
    expect_error_at(f, 0, "c.toml", rest);
}

static void expect_ok(fixture_t *f, const char *name, const char *text)
{
    int rc = load(f, name, text);

    if (rc != 0) {
        dump_errors(f);
        fail_msg("load failed: %d", rc);
    }
    assert_non_null(f->cfg);
}

#define MINIMAL_UPSTREAM "[[upstream]]\nname = \"app\"\naddress = \"127.0.0.1:9000\"\n"
#define MINIMAL_ROUTE "[[route]]\nprefix = \"/\"\nupstream = \"app\"\n"
#define MINIMAL MINIMAL_UPSTREAM MINIMAL_ROUTE

/* ---- addresses ----------------------------------------------------------------------------- */

static void test_addr_ipv4_with_port(void **state)
{
    const struct sockaddr_in *in;
    const char *why = NULL;
    pg_addr_t a;

    (void)state;
    assert_int_equal(pg_addr_parse("10.1.2.3:8080", &a, &why), 0);
    in = (const struct sockaddr_in *)&a.sa;
    assert_int_equal(a.kind, PG_ADDR_TCP);
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), 8080);
    assert_int_equal(ntohl(in->sin_addr.s_addr), 0x0a010203);
    assert_int_equal(a.salen, sizeof(struct sockaddr_in));
    assert_string_equal(a.text, "10.1.2.3:8080");
}

static void test_addr_localhost_is_loopback(void **state)
{
    const char *why = NULL;
    pg_addr_t a;

    (void)state;
    assert_int_equal(pg_addr_parse("localhost:1", &a, &why), 0);
    assert_int_equal(ntohl(((const struct sockaddr_in *)&a.sa)->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(ntohs(((const struct sockaddr_in *)&a.sa)->sin_port), 1);
}

static void test_addr_ipv6_in_brackets(void **state)
{
    const struct sockaddr_in6 *in6;
    const char *why = NULL;
    pg_addr_t a;

    (void)state;
    assert_int_equal(pg_addr_parse("[::1]:65535", &a, &why), 0);
    in6 = (const struct sockaddr_in6 *)&a.sa;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 65535);
    assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    assert_int_equal(a.salen, sizeof(struct sockaddr_in6));
}

static void test_addr_unix_path(void **state)
{
    const char *why = NULL;
    pg_addr_t a;

    (void)state;
    assert_int_equal(pg_addr_parse("unix:/run/app.sock", &a, &why), 0);
    assert_int_equal(a.kind, PG_ADDR_UNIX);
    assert_int_equal(((const struct sockaddr_un *)&a.sa)->sun_family, AF_UNIX);
    assert_string_equal(((const struct sockaddr_un *)&a.sa)->sun_path, "/run/app.sock");
}

static void test_addr_refusals_say_why(void **state)
{
    static const struct {
        const char *text, *why_part;
    } cases[] = {
        {"example.com:80", "host names are not resolved"},
        {"127.0.0.1", "missing :PORT"},
        {"127.0.0.1:", "missing port"},
        {"127.0.0.1:0", "1..65535"},
        {"127.0.0.1:65536", "1..65535"},
        {"127.0.0.1:80x", "1..65535"},
        {"127.0.0.1:-1", "1..65535"},
        {"256.0.0.1:80", "not a numeric IPv4 address"},
        {"::1:80", "brackets"},
        {"[::1]80", "missing :PORT"},
        {"[::1:80", "missing ']'"},
        {"[zz::1]:80", "not a numeric IPv6 address"},
        {":80", "missing host"},
        {"", "empty address"},
        {"unix:", "missing path"},
    };
    char longpath[200];
    const char *why;
    pg_addr_t a;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why = NULL;
        if (pg_addr_parse(cases[i].text, &a, &why) != -EINVAL)
            fail_msg("accepted \"%s\"", cases[i].text);
        assert_non_null(why);
        if (strstr(why, cases[i].why_part) == NULL)
            fail_msg("\"%s\": why = \"%s\", wanted \"%s\"", cases[i].text, why, cases[i].why_part);
    }
    memset(longpath, 'a', sizeof longpath);
    memcpy(longpath, "unix:/", 6);
    longpath[5 + 108] = '\0'; /* 108-byte path: one too many for sun_path */
    assert_int_equal(pg_addr_parse(longpath, &a, &why), -EINVAL);
    assert_non_null(strstr(why, "too long"));
    longpath[5 + 107] = '\0';
    assert_int_equal(pg_addr_parse(longpath, &a, &why), 0);
}

/* ---- CIDRs --------------------------------------------------------------------------------- */

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
    } else {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr), 1);
    }
    return ss;
}

static bool matches(const char *cidr, const char *ip)
{
    struct sockaddr_storage ss = sa_of(ip);
    const char *why = NULL;
    pg_cidr_t c;

    if (pg_cidr_parse(cidr, &c, &why) != 0)
        fail_msg("cidr \"%s\" refused: %s", cidr, why);
    return pg_cidr_match(&c, (const struct sockaddr *)&ss);
}

static void test_cidr_match_ipv4_and_ipv6(void **state)
{
    (void)state;
    assert_true(matches("127.0.0.0/8", "127.1.2.3"));
    assert_false(matches("127.0.0.0/8", "128.0.0.1"));
    assert_true(matches("10.0.0.0/12", "10.15.255.255"));
    assert_false(matches("10.0.0.0/12", "10.16.0.0"));
    assert_true(matches("0.0.0.0/0", "8.8.8.8"));
    assert_true(matches("192.168.1.7", "192.168.1.7"));
    assert_false(matches("192.168.1.7", "192.168.1.8"));
    assert_true(matches("::1/128", "::1"));
    assert_false(matches("::1/128", "::2"));
    assert_true(matches("fd00::/8", "fd12:3456::1"));
    assert_false(matches("fd00::/8", "fe80::1"));
    assert_false(matches("::1/128", "127.0.0.1"));
    assert_false(matches("127.0.0.0/8", "::1"));
}

static void test_cidr_mapped_ipv4_peer_matches_ipv4_network(void **state)
{
    (void)state;
    /* what a dual-stack [::] listener reports for an IPv4 client */
    assert_true(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_false(matches("10.0.0.0/8", "::ffff:127.0.0.1"));
    assert_true(matches("::ffff:0:0/96", "127.0.0.1"));
}

static void test_cidr_refusals_say_why(void **state)
{
    static const struct {
        const char *text, *why_part;
    } cases[] = {
        {"127.0.0.1/8", "bits set beyond the prefix"},
        {"10.0.0.0/33", "0..32"},
        {"::/129", "0..128"},
        {"10.0.0.0/", "prefix length"},
        {"10.0.0.0/x", "prefix length"},
        {"10.0.0.0/-1", "prefix length"},
        {"localhost/8", "not a numeric"},
        {"", "empty network"},
        {"/8", "empty network"},
    };
    const char *why;
    pg_cidr_t c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why = NULL;
        if (pg_cidr_parse(cases[i].text, &c, &why) != -EINVAL)
            fail_msg("accepted \"%s\"", cases[i].text);
        if (why == NULL || strstr(why, cases[i].why_part) == NULL)
            fail_msg("\"%s\": why = \"%s\", wanted \"%s\"", cases[i].text, why ? why : "(null)",
                     cases[i].why_part);
    }
}

/* ---- durations ----------------------------------------------------------------------------- */

static void test_duration_units_and_sums(void **state)
{
    const char *why = NULL;
    uint64_t ms = 0;

    (void)state;
    assert_int_equal(pg_duration_parse("500ms", &ms, &why), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(pg_duration_parse("10s", &ms, &why), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(pg_duration_parse("2m", &ms, &why), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(pg_duration_parse("1h", &ms, &why), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(pg_duration_parse("1m30s", &ms, &why), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(pg_duration_parse("1h2m3s4ms", &ms, &why), 0);
    assert_int_equal(ms, 3723004);
    assert_int_equal(pg_duration_parse("0s", &ms, &why), 0);
    assert_int_equal(ms, 0);
}

static void test_duration_refusals_say_why(void **state)
{
    static const struct {
        const char *text, *why_part;
    } cases[] = {
        {"10", "missing unit"},
        {"1.5s", "fractions"},
        {"10sec", "unknown unit"},
        {"10 s", "unknown unit"},
        {"", "empty duration"},
        {"s", "not a duration"},
        {"-1s", "not a duration"},
        {"99999999999999999999s", "too large"},
        {"9999999999999999h", "too large"},
    };
    const char *why;
    uint64_t ms;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why = NULL;
        if (pg_duration_parse(cases[i].text, &ms, &why) != -EINVAL)
            fail_msg("accepted \"%s\"", cases[i].text);
        if (why == NULL || strstr(why, cases[i].why_part) == NULL)
            fail_msg("\"%s\": why = \"%s\", wanted \"%s\"", cases[i].text, why ? why : "(null)",
                     cases[i].why_part);
    }
}

/* ---- valid loads ------------------------------------------------------------------------- */

static void test_load_minimal_applies_defaults(void **state)
{
    fixture_t *f = *state;
    const pg_config_t *c;
    const struct sockaddr_in *in;

    expect_ok(f, "c.toml", MINIMAL);
    c = f->cfg;
    in = (const struct sockaddr_in *)&c->server.listen.sa;
    assert_int_equal(ntohs(in->sin_port), 8080);
    assert_int_equal(ntohl(in->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(c->server.workers, 1);
    assert_int_equal(c->server.max_connections, 10000);
    assert_int_equal(c->server.event_coalesce_us, 100);
    assert_int_equal(c->server.worker_sched, PG_SCHED_NORMAL);
    assert_true(c->server.batch_writes);
    assert_int_equal(c->server.max_header_bytes, 32768);
    assert_int_equal(c->server.max_body_bytes, 1ULL << 30);
    assert_int_equal(c->server.header_timeout_ms, 10000);
    assert_int_equal(c->server.idle_timeout_ms, 60000);
    assert_int_equal(c->server.drain_timeout_ms, 10000);
    assert_null(c->server.access_log);
    assert_null(c->server.metrics_path);
    assert_true(c->server.add_forwarded);
    assert_true(c->server.add_via);

    assert_int_equal(c->nupstreams, 1);
    assert_string_equal(c->upstreams[0].name, "app");
    assert_false(c->upstreams[0].has_agent);
    assert_int_equal(c->upstreams[0].connect_timeout_ms, 5000);
    assert_int_equal(c->upstreams[0].timeout_ms, 60000);
    assert_int_equal(c->upstreams[0].pool_size, 64);
    assert_int_equal(c->upstreams[0].pool_idle_timeout_ms, 30000);
    assert_int_equal(c->upstreams[0].pos.line, 1);
    assert_string_equal(c->upstreams[0].file, c->path);

    assert_int_equal(c->nroutes, 1);
    assert_string_equal(c->routes[0].prefix, "/");
    assert_null(c->routes[0].host);
    assert_int_equal(c->routes[0].upstream, 0);
    assert_int_equal(c->routes[0].pos.line, 4);

    assert_string_equal(c->pprof.path, "/debug/pprof");
    assert_int_equal(c->pprof.nallow, 2);
    assert_int_equal(c->pprof.allow[0].family, AF_INET);
    assert_int_equal(c->pprof.allow[0].prefix, 8);
    assert_int_equal(c->pprof.allow[1].family, AF_INET6);
    assert_int_equal(c->pprof.allow[1].prefix, 128);
    assert_int_equal(c->pprof.max_seconds, 60);
    assert_true(c->pprof.enabled);
    assert_null(c->pprof.token);
    assert_false(c->pprof.has_admin_listen);
    /* an upstream without [upstream.pprof] has the global policy */
    assert_int_equal(c->upstreams[0].pprof.nallow, 2);
    assert_int_equal(c->upstreams[0].pprof.max_seconds, 60);
    assert_int_equal(c->nfiles, 1);
    assert_string_equal(c->files[0], c->path);
}

static void test_load_every_key_resolves(void **state)
{
    fixture_t *f = *state;
    const pg_config_t *c;
    const pg_config_upstream_t *u;

    write_file(f, "secret/token", "s3cret\n");
    expect_ok(f, "c.toml",
              "[server]\n"
              "listen = \"[::1]:18080\"\n"
              "workers = 3\n"
              "max_connections = 500\n"
              "max_header_bytes = \"64KiB\"\n"
              "max_body_bytes = 0\n"
              "header_timeout = \"500ms\"\n"
              "idle_timeout = \"2m\"\n"
              "drain_timeout = \"0s\"\n"
              "access_log = \"logs/access.log\"\n"
              "access_log_format = \"json\"\n"
              "metrics_path = \"/metrics\"\n"
              "add_forwarded = false\n"
              "add_via = false\n"
              "event_coalesce_us = 100\n"
              "worker_sched = \"batch\"\n"
              "batch_writes = false\n"
              "\n"
              "[[upstream]]\n"
              "name = \"app\"\n"
              "address = \"unix:run/app.sock\"\n"
              "agent = \"unix:/tmp/agent.sock\"\n"
              "connect_timeout = \"1s\"\n"
              "timeout = \"1h\"\n"
              "pool_size = 0\n"
              "pool_idle_timeout = \"5s\"\n"
              "pprof = { allow = [\"10.0.0.0/8\"], max_seconds = 5, token_file = "
              "\"secret/token\", max_concurrent = 1 }\n"
              "\n"
              "[[route]]\n"
              "prefix = \"/api\"\n"
              "host = \"API.Example.com:8080\"\n"
              "upstream = \"app\"\n"
              "\n"
              "[pprof]\n"
              "path = \"/_pprof\"\n"
              "allow = [\"192.168.0.0/16\", \"fd00::/8\", \"10.1.2.3\"]\n"
              "max_seconds = 3600\n"
              "enabled = false\n"
              "max_concurrent = 4\n"
              "admin_listen = \"127.0.0.1:19090\"\n");
    c = f->cfg;
    assert_int_equal(c->server.listen.sa.ss_family, AF_INET6);
    assert_int_equal(c->server.workers, 3);
    assert_int_equal(c->server.max_connections, 500);
    assert_int_equal(c->server.max_header_bytes, 65536);
    assert_int_equal(c->server.max_body_bytes, 0);
    assert_int_equal(c->server.header_timeout_ms, 500);
    assert_int_equal(c->server.idle_timeout_ms, 120000);
    assert_int_equal(c->server.drain_timeout_ms, 0);
    assert_non_null(c->server.access_log);
    assert_non_null(strstr(c->server.access_log, f->dir));
    assert_non_null(strstr(c->server.access_log, "/logs/access.log"));
    assert_int_equal(c->server.access_log_format, PG_LOG_JSON);
    assert_string_equal(c->server.metrics_path, "/metrics");
    assert_false(c->server.add_forwarded);
    assert_false(c->server.add_via);
    assert_int_equal(c->server.event_coalesce_us, 100);
    assert_int_equal(c->server.worker_sched, PG_SCHED_BATCH);
    assert_false(c->server.batch_writes);

    u = &c->upstreams[0];
    assert_int_equal(u->address.kind, PG_ADDR_UNIX);
    assert_string_equal(u->address.text, "unix:run/app.sock");
    {
        char want[PATH_MAX];

        snprintf(want, sizeof want, "%s/run/app.sock", f->dir);
        assert_string_equal(((const struct sockaddr_un *)&u->address.sa)->sun_path, want);
    }
    assert_true(u->has_agent);
    assert_string_equal(((const struct sockaddr_un *)&u->agent.sa)->sun_path, "/tmp/agent.sock");
    assert_int_equal(u->connect_timeout_ms, 1000);
    assert_int_equal(u->timeout_ms, 3600000);
    assert_int_equal(u->pool_size, 0);
    assert_int_equal(u->pool_idle_timeout_ms, 5000);
    /* upstream overrides on top of the global policy (parsed after it in the file) */
    assert_int_equal(u->pprof.nallow, 1);
    assert_int_equal(u->pprof.allow[0].prefix, 8);
    assert_int_equal(u->pprof.max_seconds, 5);
    assert_int_equal(u->pprof.max_concurrent, 1);
    assert_string_equal(u->pprof.token, "s3cret");
    assert_false(u->pprof.enabled); /* inherited from [pprof] */

    assert_string_equal(c->routes[0].host, "api.example.com:8080");
    assert_string_equal(c->routes[0].prefix, "/api");

    assert_string_equal(c->pprof.path, "/_pprof");
    assert_int_equal(c->pprof.nallow, 3);
    assert_int_equal(c->pprof.allow[2].prefix, 32);
    assert_int_equal(c->pprof.max_seconds, 3600);
    assert_false(c->pprof.enabled);
    assert_int_equal(c->pprof.max_concurrent, 4);
    assert_true(c->pprof.has_admin_listen);
    assert_null(c->pprof.token);
}

static void test_load_workers_auto_is_core_count(void **state)
{
    fixture_t *f = *state;
    cpu_set_t set;

    expect_ok(f, "c.toml", "[server]\nworkers = \"auto\"\n" MINIMAL);
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    assert_int_equal(f->cfg->server.workers, CPU_COUNT(&set));
    assert_true(f->cfg->server.workers >= 1);
}

static void test_load_inline_tables_and_dotted_keys_work(void **state)
{
    fixture_t *f = *state;

    expect_ok(f, "c.toml",
              "server.listen = \"localhost:18081\"\n"
              "upstream = [ { name = \"a\", address = \"127.0.0.1:1\" },\n"
              "             { name = \"b\", address = \"127.0.0.1:2\" } ]\n"
              "route = [ { prefix = \"/a\", upstream = \"a\" }, { prefix = \"/b\", upstream = "
              "\"b\" } ]\n");
    assert_int_equal(f->cfg->nupstreams, 2);
    assert_int_equal(f->cfg->nroutes, 2);
    assert_int_equal(f->cfg->routes[1].upstream, 1);
}

static void test_load_include_pulls_upstreams_and_routes(void **state)
{
    fixture_t *f = *state;
    const pg_config_t *c;

    write_file(f, "conf.d/20-b.toml",
               "[[upstream]]\nname = \"b\"\naddress = \"127.0.0.1:2\"\n"
               "agent = \"unix:b.sock\"\n"
               "[[route]]\nprefix = \"/b\"\nupstream = \"a\"\n");
    write_file(f, "conf.d/10-a.toml",
               "[[upstream]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n"
               "[[route]]\nprefix = \"/a\"\nupstream = \"b\"\n");
    write_file(f, "conf.d/ignored.txt", "not toml at all [[[");
    expect_ok(f, "c.toml",
              "include = [\"conf.d/*.toml\"]\n"
              "[[route]]\nprefix = \"/\"\nupstream = \"a\"\n");
    c = f->cfg;
    assert_int_equal(c->nfiles, 3);
    assert_non_null(strstr(c->files[1], "conf.d/10-a.toml"));
    assert_non_null(strstr(c->files[2], "conf.d/20-b.toml"));
    assert_int_equal(c->nupstreams, 2);
    assert_string_equal(c->upstreams[0].name, "a");
    assert_string_equal(c->upstreams[0].file, c->files[1]);
    assert_int_equal(c->nroutes, 3);
    assert_string_equal(c->routes[0].prefix, "/"); /* the top file's first */
    assert_string_equal(c->routes[1].prefix, "/a");
    assert_int_equal(c->routes[1].upstream, 1);
    assert_int_equal(c->routes[2].upstream, 0);
    /* a relative unix: path in an included file is relative to that file's directory */
    {
        char want[PATH_MAX];

        snprintf(want, sizeof want, "%s/conf.d/b.sock", f->dir);
        assert_string_equal(((const struct sockaddr_un *)&c->upstreams[1].agent.sa)->sun_path,
                            want);
    }
}

static void test_load_include_many_files(void **state)
{
    fixture_t *f = *state;
    char name[64], text[256];
    int i;

    for (i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "d/%02d.toml", i);
        snprintf(text, sizeof text,
                 "[[upstream]]\nname = \"u%d\"\naddress = \"127.0.0.1:%d\"\n"
                 "[[route]]\nprefix = \"/%d\"\nupstream = \"u%d\"\n",
                 i, 1000 + i, i, i);
        write_file(f, name, text);
    }
    expect_ok(f, "c.toml", "include = [\"d/0*.toml\", \"d/[1-3]*.toml\"]\n");
    assert_int_equal(f->cfg->nfiles, 41);
    assert_int_equal(f->cfg->nupstreams, 40);
    assert_int_equal(f->cfg->nroutes, 40);
    for (i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "u%d", i);
        assert_string_equal(f->cfg->upstreams[i].name, name);
        assert_int_equal(f->cfg->routes[i].upstream, i);
    }
}

static void test_load_include_glob_matching_nothing_is_fine(void **state)
{
    fixture_t *f = *state;

    expect_ok(f, "c.toml", "include = [\"conf.d/*.toml\"]\n" MINIMAL);
    assert_int_equal(f->cfg->nfiles, 1);
}

static void test_describe_names_routes_and_policy(void **state)
{
    fixture_t *f = *state;
    char *buf = NULL;
    size_t len = 0;
    FILE *out;

    expect_ok(f, "c.toml",
              "[server]\nlisten = \"127.0.0.1:18080\"\n"
              "[[upstream]]\nname = \"randomstring\"\naddress = \"127.0.0.1:9000\"\n"
              "agent = \"unix:/tmp/rs.sock\"\n"
              "[[route]]\nprefix = \"/\"\nupstream = \"randomstring\"\n"
              "[[route]]\nprefix = \"/svc/\"\nhost = \"a.example\"\nupstream = \"randomstring\"\n");
    out = open_memstream(&buf, &len);
    assert_non_null(out);
    pg_config_describe(f->cfg, out);
    fclose(out);
    assert_non_null(strstr(buf, "listen 127.0.0.1:18080 (1 worker)\n"));
    assert_non_null(strstr(buf, "route / -> upstream randomstring 127.0.0.1:9000 (agent "
                                "unix:/tmp/rs.sock, profiles at /debug/pprof)"));
    assert_non_null(strstr(buf, "route a.example /svc/ -> upstream randomstring 127.0.0.1:9000 "
                                "(agent unix:/tmp/rs.sock, profiles at /svc/debug/pprof)"));
    assert_non_null(strstr(buf, "pprof path /debug/pprof, allow 127.0.0.0/8 ::1/128, "
                                "max_seconds 60"));
    free(buf);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_error_unknown_key_suggests_close_one(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f,
                      "[[upstream]]\nname = \"app\"\nadress = \"127.0.0.1:9000\"\n" MINIMAL_ROUTE,
                      "3:1: upstream.adress: unknown key (did you mean \"address\"?)");
    /* (no second "upstream.address: missing": the misspelling is the one mistake) */
}

static void test_error_unknown_key_without_close_match(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f, "[server]\nfrobnicate = 1\n" MINIMAL,
                      "2:1: server.frobnicate: unknown key");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nprefix = \"/\"\n" MINIMAL,
                      "2:1: server.prefix: unknown key here (it belongs in [[route]])");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "servre.listen = \"127.0.0.1:1\"\n" MINIMAL,
                      "1:1: servre: unknown key (did you mean \"server\"?)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, MINIMAL "[upstream.pprof]\npath = \"/x\"\n",
                      "8:1: upstream.pprof.path: unknown key here (it belongs in [pprof])");
}

static void test_error_wrong_type(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f, "[server]\nworkers = 1.5\n" MINIMAL,
                      "2:11: server.workers: expected an integer or \"auto\", got a float");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nworkers = \"atuo\"\n" MINIMAL,
                      "2:11: server.workers: \"atuo\": expected a number of workers or \"auto\" "
                      "(did you mean \"auto\"?)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, MINIMAL_ROUTE "[[upstream]]\nname = \"app\"\naddress = 9000\n",
                      "6:11: upstream.address: expected a string, got an integer");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nidle_timeout = 30\n" MINIMAL,
                      "2:16: server.idle_timeout: expected a duration string with a unit (e.g. "
                      "\"10s\", \"500ms\"), got an integer");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "server = 1\n" MINIMAL,
                      "1:10: server: expected a table ([server]), got an integer");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[upstream]\nname = \"app\"\naddress = \"127.0.0.1:1\"\n" MINIMAL_ROUTE,
                      "1:1: upstream: expected an array of tables ([[upstream]]), got a table");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[pprof]\nallow = [\"127.0.0.0/8\", 5]\n" MINIMAL,
                      "2:25: pprof.allow: expected a network string (e.g. \"10.0.0.0/8\"), got "
                      "an integer");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nadd_via = \"yes\"\n" MINIMAL,
                      "2:11: server.add_via: expected a boolean (true or false), got a string");
}

static void test_error_out_of_range(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f, "[pprof]\nmax_seconds = 0\n" MINIMAL,
                      "2:15: pprof.max_seconds: 0 is out of range (1..3600)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[pprof]\nmax_seconds = 3601\n" MINIMAL,
                      "2:15: pprof.max_seconds: 3601 is out of range (1..3600)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nworkers = 0\n" MINIMAL,
                      "2:11: server.workers: 0 is out of range (1..1024)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nmax_connections = -5\n" MINIMAL,
                      "2:19: server.max_connections: -5 is out of range (1..1000000)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nheader_timeout = \"0ms\"\n" MINIMAL,
                      "2:18: server.header_timeout: \"0ms\" is out of range (1ms..24h)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nmax_header_bytes = \"2MiB\"\n" MINIMAL,
                      "2:20: server.max_header_bytes: 2097152 is out of range (1024..1048576)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nevent_coalesce_us = 1001\n" MINIMAL,
                      "2:21: server.event_coalesce_us: 1001 is out of range (0..1000)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nlisten = \"127.0.0.1:70000\"\n" MINIMAL,
                      "2:10: server.listen: \"127.0.0.1:70000\": port must be a number 1..65535");
    pg_errlist_destroy(&f->errs);
    /* a choice among names: the closest for a typo, else the list */
    expect_only_error(f, "[server]\nworker_sched = \"bach\"\n" MINIMAL,
                      "2:16: server.worker_sched: \"bach\" is not a scheduling policy (did you "
                      "mean \"batch\"?)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nworker_sched = \"fifo\"\n" MINIMAL,
                      "2:16: server.worker_sched: \"fifo\" is not a scheduling policy (use "
                      "\"normal\" or \"batch\")");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\naccess_log_format = \"xml\"\n" MINIMAL,
                      "2:21: server.access_log_format: \"xml\" is not a format (use "
                      "\"combined\", \"common\" or \"json\")");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nworker_sched = 1\n" MINIMAL,
                      "2:16: server.worker_sched: expected a string, got an integer");
}

static void test_error_duplicate_upstream_names(void **state)
{
    fixture_t *f = *state;
    char want[PATH_MAX + 128];

    snprintf(want, sizeof want,
             "8:8: upstream.name: duplicate upstream \"app\" (first defined at %s/c.toml:2:8)",
             f->dir);
    expect_only_error(f, MINIMAL "[[upstream]]\nname = \"app\"\naddress = \"127.0.0.1:9001\"\n",
                      want);
}

static void test_error_each_duplicate_points_at_the_first(void **state)
{
    fixture_t *f = *state;
    char want[PATH_MAX + 128];

    assert_int_equal(load(f, "c.toml",
                          "[[upstream]]\nname = \"b\"\naddress = \"127.0.0.1:2\"\n" /* 1-3 */
                          "[[upstream]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n" /* 4-6 */
                          "[[upstream]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n" /* 7-9 */
                          "[[upstream]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n" /* 10-12 */
                          "[[route]]\nprefix = \"/\"\nupstream = \"a\"\n"           /* 13-15 */
                          "[[route]]\nprefix = \"/\"\nupstream = \"b\"\n"),         /* 16-18 */
                     -EINVAL);
    assert_int_equal(f->errs.n, 3);
    snprintf(want, sizeof want,
             "8:8: upstream.name: duplicate upstream \"a\" (first defined at %s/c.toml:5:8)",
             f->dir);
    expect_error_at(f, 0, "c.toml", want);
    snprintf(want, sizeof want,
             "11:8: upstream.name: duplicate upstream \"a\" (first defined at %s/c.toml:5:8)",
             f->dir);
    expect_error_at(f, 1, "c.toml", want);
    snprintf(want, sizeof want,
             "16:1: route: another route has the same host and prefix \"/\" (first defined at "
             "%s/c.toml:13:1)",
             f->dir);
    expect_error_at(f, 2, "c.toml", want);
}

static void test_error_route_names_unknown_upstream(void **state)
{
    fixture_t *f = *state;

    /* the example from STYLE.md, at its line and column */
    expect_only_error(f,
                      "[server]\nlisten = \"127.0.0.1:8080\"\nworkers = 1\n\n"
                      "[[upstream]]\nname    = \"randomstring\"\naddress = \"127.0.0.1:9000\"\n"
                      "agent   = \"unix:/tmp/profgate/randomstring.sock\"\n\n"
                      "[[route]]\nprefix   = \"/\"\n"
                      "# a comment line\n\n"
                      "upstream = \"randomstrng\"\n",
                      "14:12: route.upstream: no upstream named \"randomstrng\" (did you mean "
                      "\"randomstring\"?)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, MINIMAL "[[route]]\nprefix = \"/x\"\nupstream = \"zzzzzzzz\"\n",
                      "9:12: route.upstream: no upstream named \"zzzzzzzz\"");
}

static void test_error_unparsable_address_cidr_duration(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f, MINIMAL_ROUTE "[[upstream]]\nname = \"app\"\naddress = \"app:9000\"\n",
                      "6:11: upstream.address: \"app:9000\": host names are not resolved: write "
                      "a numeric IPv4 address, [IPv6] or localhost");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[pprof]\nallow = [\"127.0.0.1/8\"]\n" MINIMAL,
                      "2:10: pprof.allow: \"127.0.0.1/8\": address has bits set beyond the "
                      "prefix length");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, MINIMAL_ROUTE MINIMAL_UPSTREAM "timeout = \"10 seconds\"\n",
                      "7:11: upstream.timeout: \"10 seconds\": unknown unit (use ms, s, m or h)");
}

static void test_error_missing_required_keys(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(load(f, "c.toml",
                          "[[upstream]]\n"
                          "agent = \"unix:/tmp/a.sock\"\n"
                          "[[route]]\n"
                          "host = \"x\"\n"),
                     -EINVAL);
    assert_int_equal(f->errs.n, 4);
    expect_error_at(f, 0, "c.toml",
                    "1:1: upstream.name: missing (every [[upstream]] needs a name)");
    expect_error_at(f, 1, "c.toml",
                    "1:1: upstream.address: missing (every [[upstream]] needs an address, e.g. "
                    "\"127.0.0.1:9000\")");
    expect_error_at(f, 2, "c.toml",
                    "3:1: route.prefix: missing (every [[route]] needs a prefix, e.g. \"/\")");
    expect_error_at(f, 3, "c.toml",
                    "3:1: route.upstream: missing (every [[route]] names the upstream it goes "
                    "to)");
}

static void test_error_no_upstream_or_route_at_all(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(load(f, "c.toml", "[server]\nworkers = 2\n"), -EINVAL);
    assert_int_equal(f->errs.n, 2);
    expect_error_at(f, 0, "c.toml", "1:1: upstream: at least one [[upstream]] is required");
    expect_error_at(f, 1, "c.toml", "1:1: route: at least one [[route]] is required");
}

static void test_error_agent_must_be_unix(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f, MINIMAL_UPSTREAM "agent = \"127.0.0.1:9001\"\n" MINIMAL_ROUTE,
                      "4:9: upstream.agent: \"127.0.0.1:9001\": must be a unix: socket address "
                      "(the agent listens on a Unix socket), e.g. \"unix:/tmp/profgate/app.sock\"");
}

static void test_error_duplicate_host_and_prefix(void **state)
{
    fixture_t *f = *state;
    char want[PATH_MAX + 200];

    snprintf(want, sizeof want,
             "7:1: route: another route has the same host and prefix \"/\" (first defined at "
             "%s/c.toml:4:1)",
             f->dir);
    expect_only_error(f, MINIMAL "[[route]]\nprefix = \"/\"\nupstream = \"app\"\n", want);
    pg_errlist_destroy(&f->errs);
    /* same prefix on another host is a different route */
    expect_ok(f, "c.toml", MINIMAL "[[route]]\nprefix = \"/\"\nhost = \"x\"\nupstream = \"app\"\n");
}

static void test_error_admin_listen_same_as_listen(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f,
                      "[server]\nlisten = \"127.0.0.1:8080\"\n"
                      "[pprof]\nadmin_listen = \"localhost:8080\"\n" MINIMAL,
                      "4:16: pprof.admin_listen: \"localhost:8080\" is the same address as "
                      "server.listen; it must be a separate one (e.g. 127.0.0.1:8081)");
    pg_errlist_destroy(&f->errs);
    expect_ok(f, "c.toml", "[pprof]\nadmin_listen = \"127.0.0.1:8081\"\n" MINIMAL);
}

static void test_error_not_a_regular_file(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(pg_config_load(f->dir, &f->cfg, &f->errs), -EINVAL);
    assert_int_equal(f->errs.n, 1);
    assert_string_equal(f->errs.items[0].msg, "not a regular file");
    assert_string_equal(f->errs.items[0].file, f->dir);
}

static void test_error_odd_keys_and_values_stay_on_one_line(void **state)
{
    fixture_t *f = *state;

    expect_only_error(f, "[server]\n\"lis\\u0000ten\" = 1\n" MINIMAL,
                      "2:1: server.lis: unknown key (it holds a NUL character)");
    pg_errlist_destroy(&f->errs);
    expect_only_error(f, "[server]\nlisten = \"a\\nb:1\"\n" MINIMAL,
                      "2:10: server.listen: \"a?b:1\": host names are not resolved: write a "
                      "numeric IPv4 address, [IPv6] or localhost");
}

static void test_error_syntax_error_comes_from_the_parser(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(load(f, "c.toml", MINIMAL "[server\n"), -EINVAL);
    assert_int_equal(f->errs.n, 1);
    assert_non_null(strstr(f->errs.items[0].file, "c.toml"));
    assert_int_equal(f->errs.items[0].pos.line, 7);
    assert_null(f->cfg);
}

static void test_error_missing_file_names_it(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/nope.toml", f->dir);
    assert_int_equal(pg_config_load(path, &f->cfg, &f->errs), -ENOENT);
    assert_null(f->cfg);
    assert_int_equal(f->errs.n, 1);
    assert_string_equal(f->errs.items[0].file, path);
}

static void test_error_include_errors_name_the_included_file(void **state)
{
    fixture_t *f = *state;

    write_file(f, "conf.d/a.toml",
               "[[upstream]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n"
               "\n[[route]]\nprefix = \"/a\"\nupstream = \"aa\"\npreifx = \"/x\"\n");
    write_file(f, "conf.d/b.toml", "[server]\nworkers = 2\n[[route]]\nprefix = \"/b\"\n");
    write_file(f, "conf.d/c.toml", "[[route]\n");
    assert_int_equal(load(f, "c.toml", "include = [\"conf.d/*.toml\", \"extra.toml\"]\n" MINIMAL),
                     -EINVAL);
    char want[PATH_MAX + 128];

    /* sorted: top file first, then included files in load order */
    snprintf(want, sizeof want,
             "1:29: include: \"extra.toml\": no such file (looked for %s/extra.toml)", f->dir);
    expect_error_at(f, 0, "c.toml", want);
    expect_error_at(f, 1, "conf.d/a.toml",
                    "7:12: route.upstream: no upstream named \"aa\" (did you mean \"a\"?)");
    expect_error_at(f, 2, "conf.d/a.toml",
                    "8:1: route.preifx: unknown key (did you mean \"prefix\"?)");
    expect_error_at(f, 3, "conf.d/b.toml",
                    "1:2: server: not allowed in an included file (an included file holds only "
                    "[[upstream]] and [[route]]; includes do not nest)");
    expect_error_at(f, 4, "conf.d/b.toml",
                    "3:1: route.upstream: missing (every [[route]] names the upstream it goes "
                    "to)");
    assert_int_equal(f->errs.n, 6);
    assert_non_null(strstr(f->errs.items[5].file, "conf.d/c.toml"));
    assert_int_equal(f->errs.items[5].pos.line, 1);
}

static void test_error_include_of_itself_or_nested(void **state)
{
    fixture_t *f = *state;
    char want[PATH_MAX + 200];

    write_file(f, "inc/a.toml",
               "include = [\"b.toml\"]\n"
               "[[upstream]]\nname = \"b\"\naddress = \"127.0.0.1:2\"\n");
    assert_int_equal(load(f, "c.toml", "include = [\"*.toml\", \"inc/a.toml\"]\n" MINIMAL),
                     -EINVAL);
    snprintf(want, sizeof want,
             "1:12: include: \"*.toml\" matches \"%s/c.toml\", which is already loaded (it is "
             "this file)",
             f->dir);
    expect_error_at(f, 0, "c.toml", want);
    expect_error_at(f, 1, "inc/a.toml",
                    "1:1: include: not allowed in an included file (an included file holds only "
                    "[[upstream]] and [[route]]; includes do not nest)");
    assert_int_equal(f->errs.n, 2);
    /* the same file through two patterns */
    pg_errlist_destroy(&f->errs);
    write_file(f, "inc/a.toml", "[[upstream]]\nname = \"b\"\naddress = \"127.0.0.1:2\"\n");
    assert_int_equal(load(f, "c.toml", "include = [\"inc/*.toml\", \"inc/a.toml\"]\n" MINIMAL),
                     -EINVAL);
    snprintf(want, sizeof want,
             "1:26: include: \"inc/a.toml\" matches \"%s/inc/a.toml\", which is already loaded",
             f->dir);
    expect_error_at(f, 0, "c.toml", want);
    assert_int_equal(f->errs.n, 1);
}

static void test_error_every_error_is_reported(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(load(f, "c.toml",
                          "[server]\n"
                          "listen = \"nowhere\"\n" /* 2 */
                          "workers = -1\n"         /* 3 */
                          "[[upstream]]\n"
                          "name = \"a b\"\n" /* 5 */
                          "address = \"127.0.0.1:1\"\n"
                          "pool_sise = 3\n" /* 7 */
                          "[[route]]\n"
                          "prefix = \"api\"\n" /* 9 */
                          "upstream = \"a\"\n" /* 10: no error, "a b" is bad */
                          "[pprof]\n"
                          "max_seconds = \"60\"\n"), /* 12 */
                     -EINVAL);
    expect_error_at(f, 0, "c.toml",
                    "2:10: server.listen: \"nowhere\": missing :PORT (write HOST:PORT, "
                    "[IPv6]:PORT or unix:PATH)");
    expect_error_at(f, 1, "c.toml", "3:11: server.workers: -1 is out of range (1..1024)");
    expect_error_at(f, 2, "c.toml",
                    "5:8: upstream.name: \"a b\": use only letters, digits, '_', '.' and '-'");
    expect_error_at(f, 3, "c.toml",
                    "7:1: upstream.pool_sise: unknown key (did you mean \"pool_size\"?)");
    expect_error_at(f, 4, "c.toml", "9:10: route.prefix: \"api\" must start with \"/\"");
    expect_error_at(f, 5, "c.toml", "12:15: pprof.max_seconds: expected an integer, got a string");
    assert_int_equal(f->errs.n, 6);
}

static void test_error_token_file_unreadable(void **state)
{
    fixture_t *f = *state;
    char want[PATH_MAX + 128];

    snprintf(want, sizeof want,
             "2:14: pprof.token_file: cannot open \"%s/missing\": No such file or directory",
             f->dir);
    expect_only_error(f, "[pprof]\ntoken_file = \"missing\"\n" MINIMAL, want);
    pg_errlist_destroy(&f->errs);
    write_file(f, "empty", "\n");
    snprintf(want, sizeof want, "2:14: pprof.token_file: \"%s/empty\" is empty", f->dir);
    expect_only_error(f, "[pprof]\ntoken_file = \"empty\"\n" MINIMAL, want);
}

/* ---- the project's own configs ---------------------------------------------------------- */

static void test_project_configs_load(void **state)
{
    static const char *const required[] = {"demo.toml", "example.toml", "multi-service.toml",
                                           "hardened.toml"};
    fixture_t *f = *state;
    char root[PATH_MAX], pattern[PATH_MAX + 64];
    char *p;
    glob_t g;
    size_t i, j;

    /* __FILE__ is this source's path: .../tests/unit/proxy/pg_config_test.c */
    snprintf(root, sizeof root, "%s", __FILE__);
    p = strstr(root, "tests/unit/proxy/");
    assert_non_null(p);
    if (p == root)
        snprintf(root, sizeof root, ".");
    else
        p[-1] = '\0';
    snprintf(pattern, sizeof pattern, "%s/configs/*.toml", root);
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    snprintf(pattern, sizeof pattern, "%s/configs/conf.d/*.toml", root);
    assert_int_equal(glob(pattern, GLOB_APPEND, NULL, &g), 0);
    for (i = 0; i < sizeof required / sizeof required[0]; i++) {
        for (j = 0; j < g.gl_pathc; j++)
            if (strcmp(strrchr(g.gl_pathv[j], '/') + 1, required[i]) == 0)
                break;
        if (j == g.gl_pathc)
            fail_msg("configs/%s is missing", required[i]);
    }
    for (j = 0; j < g.gl_pathc; j++) {
        pg_config_free(f->cfg);
        f->cfg = NULL;
        if (pg_config_load(g.gl_pathv[j], &f->cfg, &f->errs) != 0) {
            dump_errors(f);
            fail_msg("%s does not load", g.gl_pathv[j]);
        }
        assert_true(f->cfg->nupstreams >= 1);
        assert_true(f->cfg->nroutes >= 1);
        if (strstr(g.gl_pathv[j], "/multi-service.toml")) {
            /* two upstreams from conf.d/, a host route and prefix routes */
            assert_int_equal(f->cfg->nfiles, 3);
            assert_int_equal(f->cfg->nupstreams, 2);
            assert_int_equal(f->cfg->nroutes, 3);
            assert_non_null(f->cfg->routes[2].host);
        }
        if (strstr(g.gl_pathv[j], "/hardened.toml")) {
            assert_true(f->cfg->pprof.max_seconds < 60);
            assert_true(f->cfg->pprof.has_admin_listen);
        }
    }
    globfree(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_ipv4_with_port),
        cmocka_unit_test(test_addr_localhost_is_loopback),
        cmocka_unit_test(test_addr_ipv6_in_brackets),
        cmocka_unit_test(test_addr_unix_path),
        cmocka_unit_test(test_addr_refusals_say_why),
        cmocka_unit_test(test_cidr_match_ipv4_and_ipv6),
        cmocka_unit_test(test_cidr_mapped_ipv4_peer_matches_ipv4_network),
        cmocka_unit_test(test_cidr_refusals_say_why),
        cmocka_unit_test(test_duration_units_and_sums),
        cmocka_unit_test(test_duration_refusals_say_why),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_load_minimal_applies_defaults),
        T(test_load_every_key_resolves),
        T(test_load_workers_auto_is_core_count),
        T(test_load_inline_tables_and_dotted_keys_work),
        T(test_load_include_pulls_upstreams_and_routes),
        T(test_load_include_many_files),
        T(test_load_include_glob_matching_nothing_is_fine),
        T(test_describe_names_routes_and_policy),
        T(test_error_unknown_key_suggests_close_one),
        T(test_error_unknown_key_without_close_match),
        T(test_error_wrong_type),
        T(test_error_out_of_range),
        T(test_error_duplicate_upstream_names),
        T(test_error_each_duplicate_points_at_the_first),
        T(test_error_route_names_unknown_upstream),
        T(test_error_unparsable_address_cidr_duration),
        T(test_error_missing_required_keys),
        T(test_error_no_upstream_or_route_at_all),
        T(test_error_agent_must_be_unix),
        T(test_error_duplicate_host_and_prefix),
        T(test_error_admin_listen_same_as_listen),
        T(test_error_not_a_regular_file),
        T(test_error_odd_keys_and_values_stay_on_one_line),
        T(test_error_syntax_error_comes_from_the_parser),
        T(test_error_missing_file_names_it),
        T(test_error_include_errors_name_the_included_file),
        T(test_error_include_of_itself_or_nested),
        T(test_error_every_error_is_reported),
        T(test_error_token_file_unreadable),
        T(test_project_configs_load),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
