/* pg_access unit tests: the access log's three line formats, byte for byte (the timestamp
 * aside, which is checked for its shape), with client bytes escaped, absent fields, IPv6
 * and Unix-socket peers, and the request time's rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "pg_access.h"
#include "pg_config.h"

/* One line written through pg_access_write, read back from a temporary file, with its
 * timestamp (between the first '[' and ']', or the JSON "time" value) replaced by "T" after
 * its shape is checked. */
static const char *line_of(int format, const pg_access_entry_t *e)
{
    static char line[8192];
    char path[] = "/tmp/pg_access_test.XXXXXX", out[8192], *ts, *te;
    int fd = mkstemp(path), lfd;
    ssize_t n;
    size_t tlen;

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(pg_access_open(path, &lfd), 0);
    pg_access_write(lfd, format, e);
    pg_access_close(lfd);
    fd = open(path, O_RDONLY);
    n = read(fd, out, sizeof out - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    out[n] = '\0';
    assert_int_equal(out[n - 1], '\n');
    if (format == PG_LOG_JSON) {
        ts = strstr(out, "{\"time\":\"");
        assert_ptr_equal(ts, out);
        ts += 9;
        te = strchr(ts, '"');
        tlen = (size_t)(te - ts);
        assert_int_equal(tlen, 20); /* 2026-11-26T00:14:05Z */
        assert_int_equal(ts[10], 'T');
        assert_int_equal(ts[19], 'Z');
    } else {
        ts = strchr(out, '[') + 1;
        te = strchr(ts, ']');
        tlen = (size_t)(te - ts);
        assert_int_equal(tlen, 26); /* 26/Nov/2026:00:14:05 +0000 */
        assert_memory_equal(ts + 20, " +0000", 6);
    }
    snprintf(line, sizeof line, "%.*sT%s", (int)(ts - out), out, te);
    return line;
}

static struct sockaddr_in v4(void)
{
    struct sockaddr_in in;

    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
    return in;
}

static pg_access_entry_t full_entry(const struct sockaddr *peer)
{
    pg_access_entry_t e;

    memset(&e, 0, sizeof e);
    e.peer = peer;
    e.method = "GET";
    e.target = "/a?q=\"x\"\\\x01\x7f&b=1 tail";
    e.target_len = 15; /* up to "&b=1", not " tail" */
    e.http_major = 1;
    e.http_minor = 1;
    e.status = 200;
    e.bytes_out = 1234567890123ull;
    e.referer = "http://ref/";
    e.referer_len = 11;
    e.ua = "agent \"q\" \\ \t";
    e.ua_len = 13;
    e.upstream = "app \"one\"";
    e.duration_us = 1500;
    return e;
}

static void test_access_combined_line_escapes_client_bytes(void **state)
{
    struct sockaddr_in in = v4();
    pg_access_entry_t e = full_entry((struct sockaddr *)&in);

    (void)state;
    assert_string_equal(line_of(PG_LOG_COMBINED, &e),
                        "192.0.2.7 - - [T] \"GET /a?q=\\x22x\\x22\\x5c\\x01\\x7f&b=1 HTTP/1.1\" 200 "
                        "1234567890123 \"http://ref/\" \"agent \\x22q\\x22 \\x5c \\x09\" 0.002\n");
    assert_string_equal(line_of(PG_LOG_COMMON, &e),
                        "192.0.2.7 - - [T] \"GET /a?q=\\x22x\\x22\\x5c\\x01\\x7f&b=1 HTTP/1.1\" 200 "
                        "1234567890123\n");
}

static void test_access_json_line_escapes_client_bytes(void **state)
{
    struct sockaddr_in in = v4();
    pg_access_entry_t e = full_entry((struct sockaddr *)&in);

    (void)state;
    e.cause = "upstream_cut";
    assert_string_equal(line_of(PG_LOG_JSON, &e),
                        "{\"time\":\"T\",\"client\":\"192.0.2.7\",\"method\":\"GET\","
                        "\"target\":\"/a?q=\\\"x\\\"\\\\\\u0001\\u007f&b=1\",\"protocol\":\"HTTP/1.1\","
                        "\"status\":200,\"bytes\":1234567890123,\"duration_ms\":1.500,"
                        "\"upstream\":\"app \\\"one\\\"\",\"referer\":\"http://ref/\","
                        "\"user_agent\":\"agent \\\"q\\\" \\\\ \\u0009\",\"cause\":\"upstream_cut\"}\n");
}

/* No status sent, no referer or user agent, answered by profgate, HTTP/1.0, other peers. */
static void test_access_absent_fields(void **state)
{
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    pg_access_entry_t e;

    (void)state;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    memset(&e, 0, sizeof e);
    e.peer = (struct sockaddr *)&in6;
    e.method = "-";
    e.target = "";
    e.http_major = 1;
    e.http_minor = 0;
    assert_string_equal(line_of(PG_LOG_COMBINED, &e),
                        "2001:db8::1 - - [T] \"-  HTTP/1.0\" - 0 \"-\" \"-\" 0.000\n");
    assert_string_equal(line_of(PG_LOG_JSON, &e),
                        "{\"time\":\"T\",\"client\":\"2001:db8::1\",\"method\":\"-\",\"target\":\"\","
                        "\"protocol\":\"HTTP/1.0\",\"status\":null,\"bytes\":0,\"duration_ms\":0.000,"
                        "\"upstream\":null,\"referer\":\"\",\"user_agent\":\"\"}\n");
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    e.peer = (struct sockaddr *)&un;
    e.status = 404;
    assert_string_equal(line_of(PG_LOG_COMMON, &e), "unix - - [T] \"-  HTTP/1.0\" 404 0\n");
}

/* The request time: seconds with three decimals (combined), milliseconds with three
 * decimals (JSON). */
static void test_access_request_time(void **state)
{
    static const struct {
        uint64_t us;
        const char *combined, *json;
    } t[] = {
        {0, " 0.000\n", "\"duration_ms\":0.000,"},
        {1, " 0.000\n", "\"duration_ms\":0.001,"},
        {499, " 0.000\n", "\"duration_ms\":0.499,"},
        {501, " 0.001\n", "\"duration_ms\":0.501,"},
        {999999, " 1.000\n", "\"duration_ms\":999.999,"},
        {61234567, " 61.235\n", "\"duration_ms\":61234.567,"},
        {123456789012ull, " 123456.789\n", "\"duration_ms\":123456789.012,"},
    };
    struct sockaddr_in in = v4();
    pg_access_entry_t e = full_entry((struct sockaddr *)&in);
    const char *l;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof t / sizeof t[0]; i++) {
        e.duration_us = t[i].us;
        l = line_of(PG_LOG_COMBINED, &e);
        if (strcmp(l + strlen(l) - strlen(t[i].combined), t[i].combined) != 0)
            fail_msg("%llu us: combined line ends \"%s\"", (unsigned long long)t[i].us,
                     l + strlen(l) - strlen(t[i].combined));
        l = line_of(PG_LOG_JSON, &e);
        if (strstr(l, t[i].json) == NULL)
            fail_msg("%llu us: %s", (unsigned long long)t[i].us, l);
    }
}

/* A line longer than the limit is cut, still ends in a newline, and is written whole. */
static void test_access_long_line_is_cut(void **state)
{
    static char big[10000];
    struct sockaddr_in in = v4();
    pg_access_entry_t e = full_entry((struct sockaddr *)&in);
    const char *l;

    (void)state;
    memset(big, '"', sizeof big - 1);
    e.target = big;
    e.target_len = sizeof big - 1;
    /* at most 4096 bytes with the newline (less the 25 the timestamp's "T" saves), and
     * no escape cut in half */
    l = line_of(PG_LOG_COMBINED, &e);
    assert_in_range(strlen(l), 4096 - 25 - 8, 4096 - 25);
    assert_int_equal(l[strlen(l) - 1], '\n');
    assert_non_null(strstr(l, "\\x22\\x22 H"));
    /* no byte to escape */
    memset(big, 'a', sizeof big - 1);
    l = line_of(PG_LOG_COMBINED, &e);
    assert_in_range(strlen(l), 4096 - 25 - 8, 4096 - 25);
    assert_non_null(strstr(l, "aaaa H"));
    assert_int_equal(l[strlen(l) - 1], '\n');
}

/* The caller's text for the peer is used as given. */
static void test_access_peer_text_from_the_caller(void **state)
{
    struct sockaddr_in in = v4();
    pg_access_entry_t e = full_entry((struct sockaddr *)&in);

    (void)state;
    e.peer_text = "198.51.100.1xyz";
    e.peer_text_len = 12;
    assert_string_equal(line_of(PG_LOG_COMMON, &e),
                        "198.51.100.1 - - [T] \"GET /a?q=\\x22x\\x22\\x5c\\x01\\x7f&b=1 HTTP/1.1\" 200 "
                        "1234567890123\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_combined_line_escapes_client_bytes),
        cmocka_unit_test(test_access_json_line_escapes_client_bytes),
        cmocka_unit_test(test_access_absent_fields),
        cmocka_unit_test(test_access_request_time),
        cmocka_unit_test(test_access_long_line_is_cut),
        cmocka_unit_test(test_access_peer_text_from_the_caller),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
