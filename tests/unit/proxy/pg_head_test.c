/* pg_head unit tests: heads kept in wire form (fed in pieces, as llhttp delivers them), the
 * limits, and the two rewrites: the request sent to an upstream or agent (hop-by-hop and
 * Connection-listed fields dropped, X-Forwarded-* and Via added or appended to, the pprof
 * path rewritten) and the response sent to the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_head.h"

static pg_bufpool_t pool;

/* Feed "Name: value" pairs, each split in two pieces. */
static void feed(pg_head_t *h, const char *first, const char *const *kv)
{
    size_t i, n;

    n = strlen(first);
    assert_int_equal(pg_head_first(h, &pool, first, n / 2), 0);
    assert_int_equal(pg_head_first(h, &pool, first + n / 2, n - n / 2), 0);
    for (i = 0; kv[i]; i += 2) {
        n = strlen(kv[i]);
        assert_int_equal(pg_head_field(h, &pool, kv[i], 1), 0);
        assert_int_equal(pg_head_field(h, &pool, kv[i] + 1, n - 1), 0);
        assert_int_equal(pg_head_field_done(h, &pool), 0);
        assert_int_equal(pg_head_append(h, &pool, kv[i + 1], strlen(kv[i + 1])), 0);
        assert_int_equal(pg_head_value_done(h, &pool), 0);
    }
}

static char *join(const uv_buf_t *bufs, unsigned n)
{
    static char out[8192];
    size_t off = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        memcpy(out + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    out[off] = '\0';
    return out;
}

static struct sockaddr_in client(void)
{
    struct sockaddr_in in;

    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, "10.0.0.5", &in.sin_addr);
    return in;
}

/* A fresh head holding target and kv, and a GET's output options with default_host. */
static void start(pg_head_t *h, uint32_t limit, const char *target, const char *const *kv,
                  pg_head_req_out_t *o, const char *default_host)
{
    memset(h, 0, offsetof(pg_head_t, f));
    pg_head_reset(h, limit);
    feed(h, target, kv);
    memset(o, 0, sizeof *o);
    o->method = "GET";
    o->default_host = default_host;
}

static void test_head_keeps_fields_in_wire_form(void **state)
{
    static const char *const kv[] = {"Host", "a.example", "X-Empty", "", NULL};
    pg_head_t h;
    size_t len;
    const char *v;

    (void)state;
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 1000);
    feed(&h, "/path?q=1", kv);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.first_len, 9);
    v = pg_head_get(&h, "host", &len);
    assert_int_equal(len, 9);
    assert_memory_equal(v, "a.example", 9);
    v = pg_head_get(&h, "x-empty", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);
    assert_null(pg_head_get(&h, "hos", &len));
    assert_memory_equal(h.buf->data + h.f[0].off, "Host: a.example\r\n", h.f[0].len);
    pg_head_release(&h);
}

static void test_head_limits(void **state)
{
    pg_head_t h;
    int i, r = 0;
    char name[16];

    (void)state;
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 16);
    assert_int_equal(pg_head_first(&h, &pool, "/0123456789", 11), 0);
    assert_int_equal(pg_head_first(&h, &pool, "/0123456789", 11), -1);
    assert_true(h.overflow);
    pg_head_reset(&h, 60000);
    assert_false(h.overflow);
    for (i = 0; i <= PG_HEAD_MAX_FIELDS && r == 0; i++) {
        snprintf(name, sizeof name, "F%d", i);
        r = pg_head_field(&h, &pool, name, strlen(name));
        if (r == 0)
            r = pg_head_field_done(&h, &pool) || pg_head_value_done(&h, &pool);
    }
    assert_int_equal(r, -1);
    assert_true(h.too_many);
    assert_int_equal(h.n, PG_HEAD_MAX_FIELDS);
    pg_head_release(&h);
}

static void test_head_request_rewrite(void **state)
{
    static const char *const kv[] = {
        "Host", "gw:8080", "Connection", "keep-alive, X-Hop", "X-Hop", "1",
        "Keep-Alive", "timeout=5", "X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https",
        "Accept", "*/*", "Via", "1.0 other", NULL};
    struct sockaddr_in in = client();
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    unsigned n;

    (void)state;
    start(&h, 4096, "/app?x=1", kv, &o, "up:1");
    o.add_forwarded = o.add_via = true;
    o.client = (struct sockaddr *)&in;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET /app?x=1 HTTP/1.1\r\n"
                                       "Host: gw:8080\r\n"
                                       "Accept: */*\r\n"
                                       "X-Forwarded-For: 1.2.3.4, 10.0.0.5\r\n"
                                       "X-Forwarded-Proto: http\r\n"
                                       "X-Forwarded-Host: gw:8080\r\n"
                                       "Via: 1.0 other, 1.1 profgate\r\n"
                                       "\r\n");
    /* the address text the connection made once is used as given */
    o.client_text = "192.0.2.9";
    o.client_text_len = 9;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_non_null(strstr(join(bufs, n), "\r\nX-Forwarded-For: 1.2.3.4, 192.0.2.9\r\n"));
    o.client_text = NULL;
    /* switched off: the client's own lines pass, nothing is added */
    o.add_forwarded = o.add_via = false;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET /app?x=1 HTTP/1.1\r\n"
                                       "Host: gw:8080\r\n"
                                       "X-Forwarded-For: 1.2.3.4\r\n"
                                       "X-Forwarded-Proto: https\r\n"
                                       "Accept: */*\r\n"
                                       "Via: 1.0 other\r\n"
                                       "\r\n");
    pg_head_release(&h);
}

/* Connection lists only hop-by-hop names (nothing more to drop), "close" (a field named
 * Close goes too), or other names in any case; fields are found by kind in any case. */
static void test_head_connection_listed_fields_dropped_in_any_case(void **state)
{
    static const char *const ka[] = {"HOST", "a", "connection", "Keep-Alive, TE", "Close", "x",
                                     "X-Hop", "1", NULL};
    static const char *const cl[] = {"Host", "a", "Connection", "close", "Close", "x", NULL};
    static const char *const other[] = {"Host", "a", "Connection", " x-hop ,keep-alive",
                                        "x-HOP", "1", "Authorization", "t", "X-Keep", "2",
                                        NULL};
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    unsigned n;
    size_t len;

    (void)state;
    memset(&o, 0, sizeof o);
    o.method = "GET";
    o.default_host = "up:1";
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 4096);
    feed(&h, "/", ka);
    assert_ptr_equal(pg_head_find(&h, "host"), &h.f[0]);
    assert_ptr_equal(pg_head_find(&h, "x-hop"), &h.f[3]);
    assert_null(pg_head_find(&h, "x-ho"));
    assert_false(pg_head_is_hop(&h, &h.f[2]));
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET / HTTP/1.1\r\nHOST: a\r\nClose: x\r\nX-Hop: 1\r\n\r\n");
    pg_head_release(&h);

    pg_head_reset(&h, 4096);
    feed(&h, "/", cl);
    assert_true(pg_head_is_hop(&h, &h.f[2]));
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    pg_head_release(&h);

    pg_head_reset(&h, 4096);
    feed(&h, "/", other);
    assert_non_null(pg_head_get(&h, "authorization", &len));
    assert_int_equal(len, 1);
    o.drop_authorization = true;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: 2\r\n\r\n");
    pg_head_release(&h);
}

/* A Connection field that lists Host, Content-Length or Transfer-Encoding drops none of them,
 * in either direction (RFC 9110 7.6.1: they are never connection options). Dropped, the
 * upstream read a request's body as the next request (smuggling), a client read a response
 * without its length, or the upstream got no Host (found by fuzz_http_request). */
static void test_head_connection_never_drops_host_or_framing(void **state)
{
    static const char *const req[] = {"Host", "a", "Connection",
                                      "content-length, Host, transfer-encoding, x-hop",
                                      "Content-Length", "5", "X-Hop", "1",
                                      "Transfer-Encoding", "chunked", NULL};
    static const char *const resp[] = {"Connection", "Content-Length, Transfer-Encoding",
                                       "Content-Length", "5", "Transfer-Encoding", "chunked",
                                       NULL};
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    unsigned n, i;

    (void)state;
    memset(&o, 0, sizeof o);
    o.method = "POST";
    o.default_host = "up:1";
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 4096);
    feed(&h, "/", req);
    for (i = 0; i < h.n; i++)
        if (i != 1 && i != 3)
            assert_false(pg_head_is_hop(&h, &h.f[i]));
    assert_true(pg_head_is_hop(&h, &h.f[3])); /* X-Hop: listed, dropped */
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n");
    pg_head_release(&h);

    pg_head_reset(&h, 4096);
    feed(&h, "OK", resp);
    assert_int_equal(pg_head_response_out(&h, 200, false, PG_HEAD_CONN_NONE, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n");
    pg_head_release(&h);
}

static void test_head_request_rewrite_pprof_and_absolute_form(void **state)
{
    static const char *const none[] = {NULL};
    struct sockaddr_in in = client();
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    unsigned n;

    (void)state;
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 4096);
    feed(&h, "/svc/debug/pprof/profile?seconds=5", none);
    memset(&o, 0, sizeof o);
    o.method = "GET";
    o.pprof = true;
    o.pprof_rest = h.buf->data + 16; /* "/profile" */
    o.pprof_rest_len = 8;
    o.query_off = 24;
    o.query_len = 10;
    o.client = (struct sockaddr *)&in;
    o.default_host = "localhost";
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET /debug/pprof/profile?seconds=5 HTTP/1.1\r\n"
                                       "Host: localhost\r\n\r\n");
    pg_head_reset(&h, 4096);
    feed(&h, "http://h.example/a/b", none);
    memset(&o, 0, sizeof o);
    o.method = "POST";
    o.path_off = 16;
    o.client = (struct sockaddr *)&in;
    o.default_host = "up:1";
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "POST /a/b HTTP/1.1\r\nHost: up:1\r\n\r\n");
    pg_head_release(&h);
}

/* An absolute-form target's authority (RFC 9112 3.2.2) is the Host sent: the first line
 * after the request line, every Host line of the client's dropped, X-Forwarded-Host carrying
 * it; a client without Host (HTTP/1.0) gets it in place of default_host. */
static void test_head_absolute_form_sends_its_authority_as_host(void **state)
{
    static const char *const kv[] = {"Host", "other.example", "Accept", "*/*",
                                     "X-Forwarded-Host", "spoof", "HOST", "third", NULL};
    static const char *const none[] = {"Accept", "*/*", NULL};
    static char target[3100];
    struct sockaddr_in in = client();
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    unsigned n;
    char *out;

    (void)state;
    start(&h, 8192, "http://Auth.example:81/p?q=1", kv, &o, "up:1");
    o.path_off = 22;
    o.host = h.buf->data + 7;
    o.host_len = 15;
    o.add_forwarded = true;
    o.client = (struct sockaddr *)&in;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(join(bufs, n), "GET /p?q=1 HTTP/1.1\r\n"
                                       "Host: Auth.example:81\r\n"
                                       "Accept: */*\r\n"
                                       "X-Forwarded-For: 10.0.0.5\r\n"
                                       "X-Forwarded-Proto: http\r\n"
                                       "X-Forwarded-Host: Auth.example:81\r\n"
                                       "\r\n");
    o.add_forwarded = false; /* the client's X-Forwarded-Host passes, Host is still ours */
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET /p?q=1 HTTP/1.1\r\n"
                                       "Host: Auth.example:81\r\n"
                                       "Accept: */*\r\n"
                                       "X-Forwarded-Host: spoof\r\n"
                                       "\r\n");
    pg_head_release(&h);

    pg_head_reset(&h, 8192);
    feed(&h, "http://a.example", none);
    o.path_off = 16;
    o.host = h.buf->data + 7;
    o.host_len = 9;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n");
    pg_head_release(&h);

    /* an authority longer than the reserve for our own lines still goes (as its own iovec) */
    memcpy(target, "http://", 7);
    memset(target + 7, 'a', 3000);
    memcpy(target + 3007, "/x", 3);
    pg_head_reset(&h, 8192);
    feed(&h, target, none);
    o.path_off = 3007;
    o.host = h.buf->data + 7;
    o.host_len = 3000;
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    out = join(bufs, n);
    assert_int_equal(strlen(out), 17 + 6 + 3000 + 2 + 13 + 2);
    assert_memory_equal(out, "GET /x HTTP/1.1\r\nHost: aaa", 26);
    assert_string_equal(out + 17 + 6 + 3000, "\r\nAccept: */*\r\n\r\n");
    pg_head_release(&h);
}

/* The bytes of bufs[0..n) as one malloc'd string. */
static char *join_big(const uv_buf_t *bufs, unsigned n)
{
    size_t len = 0, off = 0;
    unsigned i;
    char *out;

    for (i = 0; i < n; i++)
        len += bufs[i].len;
    out = malloc(len + 1);
    assert_non_null(out);
    for (i = 0; i < n; i++) {
        memcpy(out + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    out[off] = '\0';
    return out;
}

/* The client's values our lines carry (X-Forwarded-Host from Host or the authority, the
 * X-Forwarded-For and Via appended to) are not copied into the reserve: a head up to its
 * limit goes whatever they hold. Before, a Host near server.max_header_bytes (or a long
 * X-Forwarded-For or Via) overflowed it: UV_E2BIG, a 502 "argument list too long". */
static void test_head_long_client_values_go_whatever_the_head_leaves(void **state)
{
    static const uint32_t limits[] = {32768, 65536, 1 << 20};
    struct sockaddr_in in = client();
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    size_t li;
    unsigned n;

    (void)state;
    for (li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        uint32_t limit = limits[li];
        /* one long value filling the head to 20 bytes short of its limit, in each place */
        size_t vlen = limit - 80;
        char *v = malloc(vlen + 1), *want = malloc(vlen + 64), *out;
        int place;

        assert_non_null(v);
        assert_non_null(want);
        memset(v, 'h', vlen);
        v[vlen] = '\0';
        for (place = 0; place < 4; place++) {
            const char *const hkv[] = {"Host", v, "Accept", "*/*", NULL};
            const char *const xkv[] = {"Host", "gw", "X-Forwarded-For", v, NULL};
            const char *const vkv[] = {"Host", "gw", "Via", v, NULL};
            const char *const akv[] = {"Host", "gw", NULL};

            if (place == 3) {
                /* an absolute-form target whose authority is as long */
                size_t alen = vlen - 10;
                char *target = malloc(alen + 16);

                assert_non_null(target);
                memcpy(target, "http://", 7);
                memset(target + 7, 'a', alen);
                memcpy(target + 7 + alen, "/x", 3);
                memset(&h, 0, offsetof(pg_head_t, f));
                pg_head_reset(&h, limit);
                memset(&o, 0, sizeof o);
                o.method = "GET";
                o.default_host = "up:1";
                feed(&h, target, akv);
                free(target);
                o.path_off = (uint32_t)(7 + alen);
                o.host = h.buf->data + 7;
                o.host_len = (uint32_t)alen;
            } else {
                start(&h, limit, "/p", place == 0 ? hkv : place == 1 ? xkv : vkv, &o, "up:1");
            }
            assert_true(h.buf->len <= limit);
            o.add_forwarded = true;
            o.add_via = true;
            o.client = (struct sockaddr *)&in;
            assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
            assert_true(n <= PG_HEAD_MAX_IOV);
            out = join_big(bufs, n);
            if (place == 0)
                snprintf(want, vlen + 64, "\r\nX-Forwarded-Host: %s\r\n", v);
            else if (place == 1)
                snprintf(want, vlen + 64, "\r\nX-Forwarded-For: %s, 10.0.0.5\r\n", v);
            else if (place == 2)
                snprintf(want, vlen + 64, "\r\nVia: %s, 1.1 profgate\r\n", v);
            else
                snprintf(want, vlen + 64, "\r\nX-Forwarded-Host: %.*s\r\n", (int)o.host_len,
                         o.host);
            assert_non_null(strstr(out, want));
            assert_memory_equal(out + strlen(out) - 4, "\r\n\r\n", 4);
            assert_non_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"));
            free(out);
            pg_head_release(&h);
        }
        free(v);
        free(want);
    }
}

static void test_head_response_rewrite(void **state)
{
    static const char *const kv[] = {"Content-Length", "2", "Connection", "X-Up",
                                      "X-Up", "yes", "Keep-Alive", "timeout=5",
                                      "Transfer-Encoding", "chunked", NULL};
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_t h;
    unsigned n;

    (void)state;
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 4096);
    feed(&h, "Fine", kv);
    assert_int_equal(pg_head_response_out(&h, 200, true, PG_HEAD_CONN_CLOSE, bufs, &n), 0);
    assert_string_equal(join(bufs, n), "HTTP/1.1 200 Fine\r\n"
                                       "Content-Length: 2\r\n"
                                       "Transfer-Encoding: chunked\r\n"
                                       "Via: 1.1 profgate\r\n"
                                       "Connection: close\r\n\r\n");
    assert_int_equal(pg_head_response_out(&h, 200, false, PG_HEAD_CONN_KEEP_ALIVE, bufs, &n), 0);
    assert_non_null(strstr(join(bufs, n), "Connection: keep-alive\r\n\r\n"));
    assert_null(strstr(join(bufs, n), "Via"));
    /* a close-delimited body sent chunked: Transfer-Encoding added (after the fields, which
     * here hold one that DROP_TE drops, so that only ours is left) */
    assert_int_equal(pg_head_response_out(&h, 200, false, PG_HEAD_ADD_CHUNKED | PG_HEAD_DROP_TE,
                                          bufs, &n),
                     0);
    assert_string_equal(join(bufs, n), "HTTP/1.1 200 Fine\r\n"
                                       "Content-Length: 2\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n");
    /* informational: nothing added */
    assert_int_equal(pg_head_response_out(&h, 100, true, PG_HEAD_CONN_CLOSE, bufs, &n), 0);
    assert_null(strstr(join(bufs, n), "Via"));
    assert_null(strstr(join(bufs, n), "Connection"));
    pg_head_release(&h);
}

/* A head of at most PG_HEAD_FLAT_MAX bytes comes out as one iovec (one write(2)); a larger
 * one as pieces; the bytes are the same either way. */
static void test_head_small_heads_come_out_in_one_piece(void **state)
{
    static const char *const kv[] = {"Host", "gw", "Connection", "keep-alive",
                                     "Accept", "*/*", NULL};
    static char big[PG_HEAD_FLAT_MAX];
    const char *const bigkv[] = {"Host", "gw", "X-Big", big, "Accept", "*/*", NULL};
    struct sockaddr_in in = client();
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o;
    pg_head_t h;
    static char want[PG_HEAD_FLAT_MAX + 512];
    unsigned n;
    char *out;

    (void)state;
    memset(&o, 0, sizeof o);
    o.method = "GET";
    o.add_forwarded = o.add_via = true;
    o.client = (struct sockaddr *)&in;
    o.default_host = "up:1";
    memset(&h, 0, offsetof(pg_head_t, f));
    pg_head_reset(&h, 32768);
    feed(&h, "/a", kv);
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(join(bufs, n), "GET /a HTTP/1.1\r\nHost: gw\r\nAccept: */*\r\n"
                                       "X-Forwarded-For: 10.0.0.5\r\nX-Forwarded-Proto: http\r\n"
                                       "X-Forwarded-Host: gw\r\nVia: 1.1 profgate\r\n\r\n");
    /* the copy lies in the head's own buffer, after the head */
    assert_true(bufs[0].base >= h.buf->data + h.buf->len);
    assert_true(bufs[0].base + bufs[0].len <= h.buf->data + h.buf->cap);
    assert_int_equal(pg_head_response_out(&h, 204, true, PG_HEAD_CONN_CLOSE, bufs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(join(bufs, n), "HTTP/1.1 204 /a\r\nHost: gw\r\nAccept: */*\r\n"
                                       "Via: 1.1 profgate\r\nConnection: close\r\n\r\n");
    pg_head_release(&h);

    memset(big, 'b', sizeof big - 1);
    pg_head_reset(&h, 32768);
    feed(&h, "/a", bigkv);
    assert_int_equal(pg_head_request_out(&h, &o, bufs, &n), 0);
    assert_true(n > 1);
    out = join(bufs, n);
    snprintf(want, sizeof want,
             "GET /a HTTP/1.1\r\nHost: gw\r\nX-Big: %s\r\nAccept: */*\r\n"
             "X-Forwarded-For: 10.0.0.5\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: gw\r\n"
             "Via: 1.1 profgate\r\n\r\n",
             big);
    assert_string_equal(out, want);
    pg_head_release(&h);
}

static int setup(void **state)
{
    (void)state;
    pg_bufpool_init(&pool);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pg_bufpool_destroy(&pool);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_keeps_fields_in_wire_form),
        cmocka_unit_test(test_head_limits),
        cmocka_unit_test(test_head_request_rewrite),
        cmocka_unit_test(test_head_connection_listed_fields_dropped_in_any_case),
        cmocka_unit_test(test_head_connection_never_drops_host_or_framing),
        cmocka_unit_test(test_head_request_rewrite_pprof_and_absolute_form),
        cmocka_unit_test(test_head_absolute_form_sends_its_authority_as_host),
        cmocka_unit_test(test_head_long_client_values_go_whatever_the_head_leaves),
        cmocka_unit_test(test_head_response_rewrite),
        cmocka_unit_test(test_head_small_heads_come_out_in_one_piece),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
