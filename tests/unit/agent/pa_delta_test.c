/* Unit tests for pa_delta: the diff of two stack tables, and the whole seconds=N flow through a
 * real pa_server on a thread (Go's messages and status codes, the wait, the answer's headers,
 * release on every path, a client that leaves while waiting). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_delta.h"
#include "pa_query.h"
#include "pa_server.h"
#include "pa_stacktab.h"

/* ---- diff ---- */

typedef struct seen {
    size_t n;
    uintptr_t leaf[8];
    int64_t v0[8], v1[8];
} seen_t;

static int collect(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    seen_t *s = arg;
    assert_true(npcs > 0);
    assert_true(s->n < 8);
    s->leaf[s->n] = pcs[0];
    s->v0[s->n] = values[0];
    s->v1[s->n] = values[1];
    s->n++;
    return 0;
}

static void add(pa_stacktab_t *t, uintptr_t leaf, int64_t a, int64_t b)
{
    uintptr_t pcs[2] = {leaf, 0x9000};
    int64_t v[2] = {a, b};
    assert_int_equal(pa_stacktab_add(t, pcs, 2, v), 0);
}

static void test_delta_diff_subtracts_drops_zero_stacks_and_keeps_negative_ones(void **state)
{
    pa_stacktab_t *before, *after, *d;
    seen_t s = {0};
    (void)state;

    assert_int_equal(pa_stacktab_new(2, 4, &before), 0);
    assert_int_equal(pa_stacktab_new(2, 4, &after), 0);
    add(before, 0x1000, 10, 100);
    add(before, 0x2000, 5, 50);
    add(before, 0x3000, 1, 1);
    add(after, 0x1000, 15, 150); /* grew */
    add(after, 0x2000, 5, 50);   /* unchanged: left out */
    add(after, 0x4000, 7, 70);   /* new */
    /* 0x3000 is gone: negative, as Go's p1 - p0 */
    assert_int_equal(pa_delta_diff(before, after, &d), 0);
    pa_stacktab_foreach(d, collect, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.leaf[0], 0x1000);
    assert_int_equal(s.v0[0], 5);
    assert_int_equal(s.v1[0], 50);
    assert_int_equal(s.leaf[1], 0x4000);
    assert_int_equal(s.v0[1], 7);
    assert_int_equal(s.leaf[2], 0x3000);
    assert_int_equal(s.v0[2], -1);
    assert_int_equal(s.v1[2], -1);
    assert_int_equal(pa_stacktab_dropped(d), 0);
    pa_stacktab_free(d);
    pa_stacktab_free(before);
    pa_stacktab_free(after);
}

static void test_delta_diff_refuses_tables_of_different_shapes(void **state)
{
    pa_stacktab_t *a, *b, *d = (pa_stacktab_t *)1;
    (void)state;
    assert_int_equal(pa_stacktab_new(2, 4, &a), 0);
    assert_int_equal(pa_stacktab_new(3, 4, &b), 0);
    assert_int_equal(pa_delta_diff(a, b, &d), -EINVAL);
    assert_null(d);
    pa_stacktab_free(a);
    pa_stacktab_free(b);
}

static void test_delta_diff_of_empty_tables_is_empty(void **state)
{
    pa_stacktab_t *a, *b, *d;
    (void)state;
    assert_int_equal(pa_stacktab_new(1, 4, &a), 0);
    assert_int_equal(pa_stacktab_new(1, 4, &b), 0);
    assert_int_equal(pa_delta_diff(a, b, &d), 0);
    assert_int_equal(pa_stacktab_count(d), 0);
    pa_stacktab_free(d);
    pa_stacktab_free(a);
    pa_stacktab_free(b);
}

/* ---- serving, through a real server ---- */

static char dir[64];
static char sock_path[96];
static pa_server_t *srv;
static pthread_t srv_thread;
static atomic_int snapshots, releases, fail_snapshot;
static _Atomic int64_t last_duration_ns;

/* The kind: a counter that grows by 3 at one stack between snapshots. */
static int fake_snapshot(void *arg, pa_stacktab_t **out)
{
    int n = atomic_fetch_add(&snapshots, 1);
    (void)arg;
    if (atomic_load(&fail_snapshot) == n + 1)
        return -EIO;
    assert_int_equal(pa_stacktab_new(2, 8, out), 0);
    add(*out, 0x1000, 10 + 3 * n, 1);
    add(*out, 0x2000, 4, 4);
    return 0;
}

static int fake_encode(void *arg, const pa_stacktab_t *delta, int64_t time_nanos,
                       int64_t duration_nanos, uint8_t **out, size_t *outlen)
{
    seen_t s = {0};
    char buf[128];
    int n;
    (void)arg;
    assert_true(time_nanos > 0);
    atomic_store(&last_duration_ns, duration_nanos);
    pa_stacktab_foreach(delta, collect, &s);
    n = snprintf(buf, sizeof(buf), "stacks=%zu leaf=0x%lx v=%lld", s.n,
                 (unsigned long)(s.n ? s.leaf[0] : 0), (long long)(s.n ? s.v0[0] : 0));
    *out = (uint8_t *)strdup(buf);
    *outlen = (size_t)n;
    return 0;
}

static void fake_release(void *arg)
{
    (void)arg;
    atomic_fetch_add(&releases, 1);
}

static const pa_delta_ops_t ops = {"fake", fake_snapshot, fake_encode, fake_release};

static void handler(void *arg, pa_req_t *req)
{
    char sec[64];
    (void)arg;
    if (pa_query_get(pa_req_query(req), "seconds", sec, sizeof(sec)) != 1)
        strcpy(sec, "");
    pa_delta_serve(req, sec, &ops, NULL);
}

static void *run(void *arg)
{
    pa_server_run(arg);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/pa_delta_test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", dir);
    assert_int_equal(pa_server_new(sock_path, handler, NULL, &srv), 0);
    pthread_create(&srv_thread, NULL, run, srv);
    atomic_store(&snapshots, 0);
    atomic_store(&releases, 0);
    atomic_store(&fail_snapshot, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pa_server_stop(srv);
    pthread_join(srv_thread, NULL);
    pa_server_free(srv);
    rmdir(dir);
    return 0;
}

static int dial(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* One request with Connection: close; the whole response (until EOF, at most 10 s). */
static void get(const char *target, char *resp, size_t cap)
{
    char req[512];
    size_t len = 0;
    int fd = dial();
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                     target);

    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        assert_int_equal(poll(&p, 1, 10000), 1);
        r = read(fd, resp + len, cap - 1 - len);
        assert_true(r >= 0);
        if (r == 0 || len + (size_t)r >= cap - 1) {
            len += (size_t)r;
            break;
        }
        len += (size_t)r;
    }
    resp[len] = '\0';
    close(fd);
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void wait_releases(int n)
{
    for (int i = 0; i < 200 && atomic_load(&releases) < n; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&releases), n);
}

static void test_delta_serve_waits_and_answers_the_difference(void **state)
{
    char resp[2048];
    int64_t dur;
    (void)state;

    get("/x?seconds=1", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.1 200 "));
    assert_non_null(strstr(resp, "Content-Type: application/octet-stream\r\n"));
    assert_non_null(strstr(resp, "Content-Disposition: attachment; filename=\"fake-delta\"\r\n"));
    assert_string_equal(body_of(resp), "stacks=1 leaf=0x1000 v=3");
    assert_int_equal(atomic_load(&snapshots), 2);
    dur = atomic_load(&last_duration_ns);
    assert_true(dur >= 900000000LL && dur < 5000000000LL);
    wait_releases(1);
}

static void test_delta_serve_refuses_bad_seconds_as_go_does(void **state)
{
    static const char *bad[] = {"/x?seconds=0",   "/x?seconds=-3", "/x?seconds=abc",
                                "/x?seconds=1.5", "/x?seconds=",   "/x?seconds=99999999"};
    char resp[2048];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        get(bad[i], resp, sizeof(resp));
        assert_non_null(strstr(resp, "HTTP/1.1 400 "));
        assert_non_null(strstr(resp, "X-Go-Pprof: 1\r\n"));
        assert_string_equal(body_of(resp), PA_DELTA_MSG_BAD_SECONDS "\n");
    }
    assert_int_equal(atomic_load(&snapshots), 0);
    wait_releases((int)(sizeof(bad) / sizeof(bad[0])));
}

static void test_delta_serve_refuses_seconds_with_debug(void **state)
{
    char resp[2048];
    (void)state;

    get("/x?seconds=1&debug=1", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.1 400 "));
    assert_string_equal(body_of(resp), "seconds and debug params are incompatible\n");
    /* debug=0 and an unparsable debug are Atoi's 0: accepted */
    get("/x?seconds=1&debug=0", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.1 200 "));
    get("/x?seconds=1&debug=yes", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.1 200 "));
    wait_releases(3);
}

static void test_delta_serve_answers_500_when_a_snapshot_fails(void **state)
{
    char resp[2048];
    (void)state;

    atomic_store(&fail_snapshot, 1); /* the first */
    get("/x?seconds=1", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.1 500 "));
    assert_string_equal(body_of(resp), "failed to collect profile\n");
    atomic_store(&snapshots, 0);
    atomic_store(&fail_snapshot, 2); /* the second, after the wait */
    get("/x?seconds=1", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.1 500 "));
    assert_string_equal(body_of(resp), "failed to collect profile\n");
    wait_releases(2);
}

static void test_delta_serve_releases_when_the_client_leaves(void **state)
{
    const char req[] = "GET /x?seconds=30 HTTP/1.1\r\nHost: a\r\n\r\n";
    int fd = dial();
    (void)state;

    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
    for (int i = 0; i < 200 && atomic_load(&snapshots) < 1; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&snapshots), 1);
    close(fd);
    wait_releases(1);
    assert_int_equal(atomic_load(&snapshots), 1); /* no second snapshot for nobody */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta_diff_subtracts_drops_zero_stacks_and_keeps_negative_ones),
        cmocka_unit_test(test_delta_diff_refuses_tables_of_different_shapes),
        cmocka_unit_test(test_delta_diff_of_empty_tables_is_empty),
        cmocka_unit_test_setup_teardown(test_delta_serve_waits_and_answers_the_difference, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delta_serve_refuses_bad_seconds_as_go_does, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delta_serve_refuses_seconds_with_debug, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delta_serve_answers_500_when_a_snapshot_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delta_serve_releases_when_the_client_leaves, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
