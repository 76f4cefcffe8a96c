/* pg_http unit tests: hop-by-hop headers, Connection token lists, query parameters, numbers,
 * client address text and whole error responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "pg_http.h"

static void test_http_hop_by_hop_headers(void **state)
{
    (void)state;
    assert_true(pg_http_is_hop_by_hop("Connection", 10));
    assert_true(pg_http_is_hop_by_hop("KEEP-ALIVE", 10));
    assert_true(pg_http_is_hop_by_hop("te", 2));
    assert_true(pg_http_is_hop_by_hop("Upgrade", 7));
    assert_true(pg_http_is_hop_by_hop("Proxy-Connection", 16));
    /* framing is relayed untouched, so these stay */
    assert_false(pg_http_is_hop_by_hop("Transfer-Encoding", 17));
    assert_false(pg_http_is_hop_by_hop("Content-Length", 14));
    assert_false(pg_http_is_hop_by_hop("Tex", 3));
    assert_false(pg_http_is_hop_by_hop("Connectio", 9));
}

static void test_http_header_kinds_are_told_apart_by_whole_name_any_case(void **state)
{
    static const struct {
        const char *name;
        pg_http_hdr_t kind;
    } t[] = {
        {"te", PG_HTTP_HDR_TE},
        {"Via", PG_HTTP_HDR_VIA},
        {"HOST", PG_HTTP_HDR_HOST},
        {"Trailer", PG_HTTP_HDR_TRAILER},
        {"upgrade", PG_HTTP_HDR_UPGRADE},
        {"Connection", PG_HTTP_HDR_CONNECTION},
        {"Keep-Alive", PG_HTTP_HDR_KEEP_ALIVE},
        {"Authorization", PG_HTTP_HDR_AUTHORIZATION},
        {"Content-Length", PG_HTTP_HDR_CONTENT_LENGTH},
        {"X-Forwarded-For", PG_HTTP_HDR_X_FORWARDED_FOR},
        {"Proxy-Connection", PG_HTTP_HDR_PROXY_CONNECTION},
        {"x-forwarded-host", PG_HTTP_HDR_X_FORWARDED_HOST},
        {"Transfer-Encoding", PG_HTTP_HDR_TRANSFER_ENCODING},
        {"X-Forwarded-Proto", PG_HTTP_HDR_X_FORWARDED_PROTO},
        {"Proxy-Authenticate", PG_HTTP_HDR_PROXY_AUTHENTICATE},
        {"Proxy-Authorization", PG_HTTP_HDR_PROXY_AUTHORIZATION},
        /* same length or first letter, one byte off: other */
        {"ta", PG_HTTP_HDR_OTHER},
        {"Hosts", PG_HTTP_HDR_OTHER},
        {"Tracer!", PG_HTTP_HDR_OTHER},
        {"Connectiom", PG_HTTP_HDR_OTHER},
        {"keep_alive", PG_HTTP_HDR_OTHER},
        {"Keep\ralive", PG_HTTP_HDR_OTHER}, /* '\r' | 0x20 is '-': not folded */
        {"x-forwarded-fox", PG_HTTP_HDR_OTHER},
        {"Proxy-Connectiom", PG_HTTP_HDR_OTHER},
        {"", PG_HTTP_HDR_OTHER},
        {"t", PG_HTTP_HDR_OTHER},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof t / sizeof t[0]; i++) {
        pg_http_hdr_t k = pg_http_hdr_kind(t[i].name, strlen(t[i].name));

        if (k != t[i].kind)
            fail_msg("%s: kind %d, want %d", t[i].name, (int)k, (int)t[i].kind);
    }
    assert_true(PG_HTTP_HDR_IS_HOP(PG_HTTP_HDR_TE));
    assert_false(PG_HTTP_HDR_IS_HOP(PG_HTTP_HDR_HOST));
    assert_false(PG_HTTP_HDR_IS_HOP(PG_HTTP_HDR_OTHER));
}

/* Every known name with any one byte changed to any other value (except the same letter in
 * the other case) is another name; with every letter's case flipped it is still itself.
 * The names are compared a word at a time, so this covers each byte of each word. */
static void test_http_header_kinds_one_byte_off_is_other(void **state)
{
    static const char *const names[] = {
        "te",         "via",           "host",           "trailer",
        "upgrade",    "connection",    "keep-alive",     "authorization",
        "content-length", "x-forwarded-for", "proxy-connection", "x-forwarded-host",
        "transfer-encoding", "x-forwarded-proto", "proxy-authenticate", "proxy-authorization",
    };
    char buf[32];
    size_t i, j, n;
    int c;

    (void)state;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        pg_http_hdr_t want;

        n = strlen(names[i]);
        want = pg_http_hdr_kind(names[i], n);
        assert_int_not_equal(want, PG_HTTP_HDR_OTHER);
        for (j = 0; j < n; j++) {
            memcpy(buf, names[i], n);
            if (buf[j] >= 'a' && buf[j] <= 'z') {
                buf[j] = (char)(buf[j] - 'a' + 'A');
                assert_int_equal(pg_http_hdr_kind(buf, n), want);
            }
            for (c = 0; c < 256; c++) {
                if (c == names[i][j] || (names[i][j] >= 'a' && c == names[i][j] - 'a' + 'A'))
                    continue;
                memcpy(buf, names[i], n);
                buf[j] = (char)c;
                if (pg_http_hdr_kind(buf, n) != PG_HTTP_HDR_OTHER)
                    fail_msg("%s with byte %zu = 0x%02x: kind %d", names[i], j, c,
                             (int)pg_http_hdr_kind(buf, n));
            }
        }
        /* a prefix or a longer name is another name */
        assert_int_equal(pg_http_hdr_kind(names[i], n - 1), PG_HTTP_HDR_OTHER);
        memcpy(buf, names[i], n);
        buf[n] = 's';
        assert_int_equal(pg_http_hdr_kind(buf, n + 1), PG_HTTP_HDR_OTHER);
    }
}

static void test_http_token_list(void **state)
{
    const char *v = "keep-alive , X-Secret,,Upgrade";

    (void)state;
    assert_true(pg_http_token_list_has(v, strlen(v), "x-secret", 8));
    assert_true(pg_http_token_list_has(v, strlen(v), "keep-alive", 10));
    assert_true(pg_http_token_list_has(v, strlen(v), "upgrade", 7));
    assert_false(pg_http_token_list_has(v, strlen(v), "x-secre", 7));
    assert_false(pg_http_token_list_has(v, strlen(v), "", 0));
    assert_false(pg_http_token_list_has("", 0, "close", 5));
}

static void test_http_query_get(void **state)
{
    const char *q = "debug=1&seconds=30&gc&x=";
    const char *v;
    size_t n;

    (void)state;
    assert_true(pg_http_query_get(q, strlen(q), "seconds", &v, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(v, "30", 2);
    assert_true(pg_http_query_get(q, strlen(q), "gc", &v, &n));
    assert_int_equal(n, 0);
    assert_true(pg_http_query_get(q, strlen(q), "x", &v, &n));
    assert_int_equal(n, 0);
    assert_false(pg_http_query_get(q, strlen(q), "second", &v, &n));
    assert_false(pg_http_query_get(q, strlen(q), "econds", &v, &n));
    assert_false(pg_http_query_get("", 0, "seconds", &v, &n));
}

static void test_http_parse_uint(void **state)
{
    unsigned long v;

    (void)state;
    assert_int_equal(pg_http_parse_uint("60", 2, &v), 0);
    assert_int_equal(v, 60);
    assert_int_equal(pg_http_parse_uint("4294967295", 10, &v), 0);
    assert_int_equal(pg_http_parse_uint("4294967296", 10, &v), -EINVAL);
    assert_int_equal(pg_http_parse_uint("-1", 2, &v), -EINVAL);
    assert_int_equal(pg_http_parse_uint("1e3", 3, &v), -EINVAL);
    assert_int_equal(pg_http_parse_uint("", 0, &v), -EINVAL);
}

static void test_http_addr_text(void **state)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    char buf[64];

    (void)state;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, "10.0.0.9", &in.sin_addr);
    assert_int_equal(pg_http_addr_text((struct sockaddr *)&in, buf, sizeof buf), 8);
    assert_string_equal(buf, "10.0.0.9");
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    pg_http_addr_text((struct sockaddr *)&in6, buf, sizeof buf);
    assert_string_equal(buf, "::1");
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    pg_http_addr_text((struct sockaddr *)&un, buf, sizeof buf);
    assert_string_equal(buf, "unix");
    assert_int_equal(pg_http_addr_text((struct sockaddr *)&in, buf, 4), 0);
}

/* IPv4 text is made without inet_ntop: the same text for every value of every byte, and
 * the same refusal of a buffer one byte short. */
static void test_http_addr_text_ipv4_as_inet_ntop(void **state)
{
    static const unsigned char fill[] = {0, 1, 9, 10, 99, 100, 199, 255};
    struct sockaddr_in in;
    char want[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN];
    unsigned char *b = (unsigned char *)&in.sin_addr.s_addr;
    size_t f, n;
    int pos, v;

    (void)state;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    for (f = 0; f < sizeof fill; f++)
        for (pos = 0; pos < 4; pos++)
            for (v = 0; v < 256; v++) {
                memset(b, fill[f], 4);
                b[pos] = (unsigned char)v;
                assert_non_null(inet_ntop(AF_INET, &in.sin_addr, want, sizeof want));
                n = pg_http_addr_text((struct sockaddr *)&in, buf, sizeof buf);
                assert_int_equal(n, strlen(want));
                assert_string_equal(buf, want);
                assert_int_equal(pg_http_addr_text((struct sockaddr *)&in, buf, n + 1), n);
                assert_int_equal(pg_http_addr_text((struct sockaddr *)&in, buf, n), 0);
            }
}

static void test_http_error_response_is_text_naming_the_cause(void **state)
{
    char buf[512];
    size_t n;

    (void)state;
    n = pg_http_error_response(buf, sizeof buf, 502, "upstream \"x\" unreachable", true, true);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(buf, "Content-Type: text/plain"));
    assert_non_null(strstr(buf, "Content-Length: 25\r\n"));
    assert_non_null(strstr(buf, "X-Go-Pprof: 1\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\nupstream \"x\" unreachable\n"));
    n = pg_http_error_response(buf, sizeof buf, 404, "no route", false, false);
    buf[n] = '\0';
    assert_null(strstr(buf, "X-Go-Pprof"));
    assert_null(strstr(buf, "Connection:"));
    assert_int_equal(pg_http_error_response(buf, 20, 404, "no route", false, false), 0);
}

static void test_http_bearer_token(void **state)
{
    (void)state;
    assert_true(pg_http_bearer_ok("Bearer s3cret", 13, "s3cret"));
    assert_true(pg_http_bearer_ok("bearer  s3cret ", 15, "s3cret"));
    assert_false(pg_http_bearer_ok("Bearer s3cre", 12, "s3cret"));
    assert_false(pg_http_bearer_ok("Bearer s3crets", 14, "s3cret"));
    assert_false(pg_http_bearer_ok("Basic s3cret", 12, "s3cret"));
    assert_false(pg_http_bearer_ok(NULL, 0, "s3cret"));
    assert_false(pg_http_bearer_ok("Bearer ", 7, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_hop_by_hop_headers),
        cmocka_unit_test(test_http_header_kinds_are_told_apart_by_whole_name_any_case),
        cmocka_unit_test(test_http_header_kinds_one_byte_off_is_other),
        cmocka_unit_test(test_http_token_list),
        cmocka_unit_test(test_http_query_get),
        cmocka_unit_test(test_http_parse_uint),
        cmocka_unit_test(test_http_addr_text),
        cmocka_unit_test(test_http_addr_text_ipv4_as_inet_ntop),
        cmocka_unit_test(test_http_error_response_is_text_naming_the_cause),
        cmocka_unit_test(test_http_bearer_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
