/* Unit tests for pa_server: the socket file (mode, stale and live files), who may connect
 * (allowed uids, socket group, the modes they give), requests and keep-alive, pipelining,
 * limits, deferred requests and client hang-up. A real server runs on
 * a thread; the tests talk to it over its Unix socket. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_server.h"

static char dir[64];
static char sock_path[96];
static pa_server_t *srv;
static pthread_t srv_thread;
static atomic_int gone_events, wake_events;

static void on_deferred(void *arg, pa_req_t *req, pa_req_event_t ev)
{
    static const pa_header_t h[] = {{"Content-Type", "text/plain"}};
    (void)arg;
    if (ev == PA_REQ_GONE || ev == PA_REQ_SHUTDOWN) {
        atomic_fetch_add(&gone_events, 1);
        return;
    }
    if (atomic_fetch_add(&wake_events, 1) < 2) {
        pa_req_wake_at(req, pa_server_now_ns() + 10000000);
        return;
    }
    pa_req_respond(req, 200, h, 1, "woke", 4);
}

static void handler(void *arg, pa_req_t *req)
{
    static const pa_header_t h[] = {{"Content-Type", "text/plain"}, {"X-Test", "yes"}};
    const char *path = pa_req_path(req);
    char buf[512];
    size_t blen;
    const char *body = pa_req_body(req, &blen);
    int n;

    (void)arg;
    if (strcmp(path, "/defer") == 0) {
        pa_req_defer(req, on_deferred, NULL);
        pa_req_wake_at(req, pa_server_now_ns() + 10000000);
        return;
    }
    if (strcmp(path, "/forever") == 0) {
        pa_req_defer(req, on_deferred, NULL);
        return;
    }
    if (strcmp(path, "/silent") == 0)
        return; /* forgot to respond: the server answers 500 */
    n = snprintf(buf, sizeof(buf), "%s|%s|%s|%.*s", pa_req_method(req), path, pa_req_query(req),
                 (int)blen, body);
    pa_req_respond(req, 200, h, 2, buf, (size_t)n);
}

static void *run(void *arg)
{
    pa_server_run(arg);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/pa_server_test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/sub/agent.sock", dir);
    assert_int_equal(pa_server_new(sock_path, handler, NULL, &srv), 0);
    pthread_create(&srv_thread, NULL, run, srv);
    return 0;
}

static int teardown(void **state)
{
    char sub[160];
    (void)state;
    pa_server_stop(srv);
    pthread_join(srv_thread, NULL);
    pa_server_free(srv);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    return 0;
}

static int dial(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Read one response (head + Content-Length body) into buf; returns its length, 0 on EOF. */
static size_t read_response(int fd, char *buf, size_t cap, char **carry, size_t *carry_len)
{
    size_t len = 0;
    if (*carry_len > 0) {
        memcpy(buf, *carry, *carry_len);
        len = *carry_len;
        *carry_len = 0;
    }
    for (;;) {
        char *end;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            char *cl = strcasestr(buf, "Content-Length: ");
            size_t head = (size_t)(end + 4 - buf);
            size_t total = head + (cl ? strtoul(cl + 16, NULL, 10) : 0);
            if (len >= total) {
                memcpy(*carry, buf + total, len - total);
                *carry_len = len - total;
                buf[total] = '\0';
                return total;
            }
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return 0;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
    }
}

static size_t one(int fd, const char *req, char *buf, size_t cap)
{
    char carry_buf[4096];
    char *carry = carry_buf;
    size_t carry_len = 0;
    send_all(fd, req, strlen(req));
    return read_response(fd, buf, cap, &carry, &carry_len);
}

static void test_server_socket_is_0600_in_a_0700_dir(void **state)
{
    struct stat st;
    char sub[160];
    (void)state;
    assert_int_equal(stat(sock_path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_server_refuses_a_live_socket_and_a_non_socket(void **state)
{
    pa_server_t *other = NULL;
    char path[96];
    FILE *f;
    (void)state;
    assert_int_equal(pa_server_new(sock_path, handler, NULL, &other), -EADDRINUSE);
    assert_null(other);
    snprintf(path, sizeof(path), "%s/plain", dir);
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(pa_server_new(path, handler, NULL, &other), -EEXIST);
    unlink(path);
}

static void test_server_replaces_a_stale_socket(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    pa_server_t *other = NULL;
    char path[96];
    struct stat st;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    (void)state;
    snprintf(path, sizeof(path), "%s/stale.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd); /* the file stays, nobody listens: stale */
    assert_int_equal(pa_server_new(path, handler, NULL, &other), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    pa_server_free(other);
    assert_int_equal(stat(path, &st), -1); /* removed at free */
}

static void test_server_admits_our_uid_root_and_the_allowed_ones_only(void **state)
{
    pa_server_access_t none = {{0}, 0};
    pa_server_access_t some = {{12345, 0, 23456, 0}, 0};
    (void)state;
    assert_true(pa__server_uid_allowed(&none, 1000, 1000));
    assert_true(pa__server_uid_allowed(&none, 0, 1000));
    assert_false(pa__server_uid_allowed(&none, 1001, 1000));
    assert_true(pa__server_uid_allowed(&some, 12345, 1000));
    assert_true(pa__server_uid_allowed(&some, 23456, 1000));
    assert_false(pa__server_uid_allowed(&some, 34567, 1000));
    assert_true(pa__server_uid_allowed(&some, 1000, 1000));
}

static void test_server_modes_open_only_as_far_as_access_asks(void **state)
{
    pa_server_access_t none = {{0}, 0};
    pa_server_access_t uids = {{0, 0, 0, 12345}, 0};
    pa_server_access_t group = {{12345}, 4242};
    (void)state;
    assert_int_equal(pa__server_socket_mode(&none), 0600);
    assert_int_equal(pa__server_dir_mode(&none), 0700);
    assert_int_equal(pa__server_socket_mode(&uids), 0666);
    assert_int_equal(pa__server_dir_mode(&uids), 0711);
    assert_int_equal(pa__server_socket_mode(&group), 0660);
    assert_int_equal(pa__server_dir_mode(&group), 0710);
}

/* The files themselves, whatever the umask says. */
static void test_server_allowed_uid_gives_0666_socket_in_0711_dir(void **state)
{
    pa_server_access_t acc = {{12345}, 0};
    pa_server_t *other = NULL;
    char sub[128], path[160];
    struct stat st;
    mode_t old = umask(077);
    (void)state;
    snprintf(sub, sizeof(sub), "%s/open", dir);
    snprintf(path, sizeof(path), "%s/agent.sock", sub);
    assert_int_equal(pa_server_new_access(path, &acc, handler, NULL, &other), 0);
    umask(old);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0666);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0711);
    pa_server_free(other);
    assert_int_equal(rmdir(sub), 0);
}

/* A group we may give files to: any as root, else one of ours other than 0. */
static gid_t a_group_of_ours(void)
{
    gid_t groups[64];
    int n;
    if (geteuid() == 0)
        return 4242;
    if (getegid() != 0)
        return getegid();
    n = getgroups(64, groups);
    for (int i = 0; i < n; i++) {
        if (groups[i] != 0)
            return groups[i];
    }
    return 0;
}

static void test_server_socket_group_gives_0660_socket_in_0710_dir_of_that_group(void **state)
{
    pa_server_access_t acc = {{0}, 0};
    pa_server_t *other = NULL;
    char sub[128], path[160];
    struct stat st;
    (void)state;
    acc.socket_gid = (unsigned int)a_group_of_ours();
    if (acc.socket_gid == 0)
        skip();
    snprintf(sub, sizeof(sub), "%s/grp", dir);
    snprintf(path, sizeof(path), "%s/agent.sock", sub);
    assert_int_equal(pa_server_new_access(path, &acc, handler, NULL, &other), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(st.st_gid, acc.socket_gid);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0710);
    assert_int_equal(st.st_gid, acc.socket_gid);
    pa_server_free(other);
    assert_int_equal(rmdir(sub), 0);
}

/* Without privileges a group we are not in is refused, and nothing is left behind. */
static void test_server_refuses_a_group_it_cannot_give_the_socket_to(void **state)
{
    pa_server_access_t acc = {{0}, 54321};
    pa_server_t *other = NULL;
    char path[160];
    struct stat st;
    (void)state;
    if (geteuid() == 0)
        skip(); /* root may give files to any group */
    snprintf(path, sizeof(path), "%s/nogroup.sock", dir);
    assert_int_equal(pa_server_new_access(path, &acc, handler, NULL, &other), -EPERM);
    assert_null(other);
    assert_int_equal(stat(path, &st), -1);
}

static void test_server_parses_uid_lists_of_numbers_and_names(void **state)
{
    unsigned int uids[4];
    struct passwd *nobody = getpwnam("nobody");
    (void)state;
    assert_int_equal(pa__server_parse_uids("12345", uids, 4), 1);
    assert_int_equal(uids[0], 12345);
    assert_int_equal(uids[1], 0);
    /* spaces trimmed, root (always allowed) and bad entries skipped, empty entries ignored */
    assert_int_equal(pa__server_parse_uids(" 7 ,0,,x7,4294967295, 8", uids, 4), 2);
    assert_int_equal(uids[0], 7);
    assert_int_equal(uids[1], 8);
    assert_int_equal(uids[2], 0);
    /* no more than max */
    assert_int_equal(pa__server_parse_uids("1,2,3,4,5", uids, 4), 4);
    assert_int_equal(uids[3], 4);
    assert_int_equal(pa__server_parse_uids("no-such-user-here", uids, 4), 0);
    assert_int_equal(uids[0], 0);
    if (nobody != NULL) {
        unsigned int want = (unsigned int)nobody->pw_uid;
        assert_int_equal(pa__server_parse_uids("nobody,12", uids, 4), 2);
        assert_int_equal(uids[0], want);
        assert_int_equal(uids[1], 12);
    }
}

static void test_server_parses_a_group_by_number_or_name_but_not_root(void **state)
{
    unsigned int gid = 99;
    struct group *g = getgrgid(65534);
    (void)state;
    assert_int_equal(pa__server_parse_gid("4242", &gid), 0);
    assert_int_equal(gid, 4242);
    assert_true(pa__server_parse_gid("0", &gid) < 0);
    assert_true(pa__server_parse_gid("root", &gid) < 0);
    assert_true(pa__server_parse_gid("no-such-group-here", &gid) < 0);
    assert_int_equal(gid, 4242); /* unchanged by refusals */
    if (g != NULL) {
        char name[64];
        snprintf(name, sizeof(name), "%s", g->gr_name);
        assert_int_equal(pa__server_parse_gid(name, &gid), 0);
        assert_int_equal(gid, 65534);
    }
}

static void test_server_options_take_allow_uid_and_socket_group_from_the_environment(void **state)
{
    profagent_options_t o;
    (void)state;
    memset(&o, 0, sizeof(o));
    setenv("PROFAGENT_ALLOW_UID", "12345,23456", 1);
    setenv("PROFAGENT_SOCKET_GROUP", "4242", 1);
    pa_server_options_env(&o);
    assert_int_equal(o.allow_uid[0], 12345);
    assert_int_equal(o.allow_uid[1], 23456);
    assert_int_equal(o.allow_uid[2], 0);
    assert_int_equal(o.socket_gid, 4242);
    setenv("PROFAGENT_SOCKET_GROUP", "root", 1); /* refused: keeps what it had */
    pa_server_options_env(&o);
    assert_int_equal(o.socket_gid, 4242);
    unsetenv("PROFAGENT_ALLOW_UID");
    unsetenv("PROFAGENT_SOCKET_GROUP");
    memset(&o, 0, sizeof(o));
    pa_server_options_env(&o);
    assert_int_equal(o.allow_uid[0], 0);
    assert_int_equal(o.socket_gid, 0);
}

static void test_server_answers_with_content_length_and_keeps_alive(void **state)
{
    char buf[4096];
    int fd = dial(sock_path);
    (void)state;
    assert_true(fd >= 0);
    assert_true(one(fd, "GET /a%20b?x=1&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "X-Test: yes\r\n"));
    assert_non_null(strstr(buf, "Content-Length: 19\r\n"));
    assert_null(strstr(buf, "Connection: close"));
    /* path decoded, query raw */
    assert_non_null(strstr(buf, "\r\n\r\nGET|/a b|x=1&y=%20|"));
    assert_true(one(fd, "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", buf,
                    sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\r\n\r\nPOST|/p||hello"));
    close(fd);
}

static void test_server_answers_pipelined_requests_in_order(void **state)
{
    static const char reqs[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                               "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                               "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char buf[4096], carry_buf[4096];
    char *carry = carry_buf;
    size_t carry_len = 0;
    int fd = dial(sock_path);
    (void)state;
    send_all(fd, reqs, sizeof(reqs) - 1);
    for (int i = 1; i <= 3; i++) {
        char want[32];
        assert_true(read_response(fd, buf, sizeof(buf), &carry, &carry_len) > 0);
        snprintf(want, sizeof(want), "GET|/%d||", i);
        assert_non_null(strstr(buf, want));
        if (i == 3)
            assert_non_null(strstr(buf, "Connection: close\r\n"));
    }
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0); /* closed after the last */
    close(fd);
}

static void test_server_head_gets_no_body(void **state)
{
    char buf[4096];
    int fd = dial(sock_path);
    (void)state;
    send_all(fd, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n", 58);
    {
        char carry_buf[4096];
        char *carry = carry_buf;
        size_t carry_len = 0;
        /* the HEAD answer announces a length but carries nothing: the next response follows */
        ssize_t n = 0;
        size_t len = 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (len < 2 || strstr(buf, "GET|/g") == NULL) {
            if (poll(&p, 1, 5000) <= 0)
                break;
            n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
        }
        (void)carry;
        (void)carry_len;
        assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
        assert_null(strstr(buf, "HEAD|/h"));
        assert_non_null(strstr(buf, "GET|/g"));
    }
    close(fd);
}

static void test_server_limits_url_and_body(void **state)
{
    char *req = malloc(PA_SERVER_MAX_URL + 100);
    char buf[4096];
    int fd;
    (void)state;
    memset(req, 0, PA_SERVER_MAX_URL + 100);
    strcpy(req, "GET /");
    memset(req + 5, 'a', PA_SERVER_MAX_URL + 10);
    strcat(req, " HTTP/1.1\r\n\r\n");
    fd = dial(sock_path);
    assert_true(one(fd, req, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 414 "));
    assert_non_null(strstr(buf, "X-Go-Pprof: 1"));
    assert_non_null(strstr(buf, "Connection: close"));
    close(fd);
    free(req);
    fd = dial(sock_path);
    assert_true(one(fd, "POST / HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n", buf, sizeof(buf)) >
                0);
    assert_non_null(strstr(buf, "HTTP/1.1 413 "));
    close(fd);
}

static void test_server_bad_request_keeps_llhttp_reason(void **state)
{
    char buf[4096];
    int fd = dial(sock_path);
    (void)state;
    assert_true(one(fd, "GARBAGE\r\n\r\n", buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 400 "));
    assert_non_null(strstr(buf, "Invalid method"));
    close(fd);
}

static void test_server_handler_that_forgets_to_answer_gets_500(void **state)
{
    char buf[4096];
    int fd = dial(sock_path);
    (void)state;
    assert_true(one(fd, "GET /silent HTTP/1.1\r\n\r\n", buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 500 "));
    close(fd);
}

static void test_server_deferred_request_wakes_then_answers(void **state)
{
    char buf[4096];
    int fd = dial(sock_path);
    (void)state;
    atomic_store(&wake_events, 0);
    assert_true(one(fd, "GET /defer HTTP/1.1\r\n\r\n", buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\r\n\r\nwoke"));
    assert_int_equal(atomic_load(&wake_events), 3);
    /* the connection is still usable */
    assert_true(one(fd, "GET /after HTTP/1.1\r\n\r\n", buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "GET|/after"));
    close(fd);
}

static void test_server_deferred_request_sees_the_client_leave(void **state)
{
    int fd = dial(sock_path);
    (void)state;
    atomic_store(&gone_events, 0);
    send_all(fd, "GET /forever HTTP/1.1\r\n\r\n", 25);
    usleep(50000);
    close(fd);
    for (int i = 0; i < 200 && atomic_load(&gone_events) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&gone_events), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_socket_is_0600_in_a_0700_dir),
        cmocka_unit_test(test_server_refuses_a_live_socket_and_a_non_socket),
        cmocka_unit_test(test_server_replaces_a_stale_socket),
        cmocka_unit_test(test_server_admits_our_uid_root_and_the_allowed_ones_only),
        cmocka_unit_test(test_server_modes_open_only_as_far_as_access_asks),
        cmocka_unit_test(test_server_allowed_uid_gives_0666_socket_in_0711_dir),
        cmocka_unit_test(test_server_socket_group_gives_0660_socket_in_0710_dir_of_that_group),
        cmocka_unit_test(test_server_refuses_a_group_it_cannot_give_the_socket_to),
        cmocka_unit_test(test_server_parses_uid_lists_of_numbers_and_names),
        cmocka_unit_test(test_server_parses_a_group_by_number_or_name_but_not_root),
        cmocka_unit_test(test_server_options_take_allow_uid_and_socket_group_from_the_environment),
        cmocka_unit_test(test_server_answers_with_content_length_and_keeps_alive),
        cmocka_unit_test(test_server_answers_pipelined_requests_in_order),
        cmocka_unit_test(test_server_head_gets_no_body),
        cmocka_unit_test(test_server_limits_url_and_body),
        cmocka_unit_test(test_server_bad_request_keeps_llhttp_reason),
        cmocka_unit_test(test_server_handler_that_forgets_to_answer_gets_500),
        cmocka_unit_test(test_server_deferred_request_wakes_then_answers),
        cmocka_unit_test(test_server_deferred_request_sees_the_client_leave),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
