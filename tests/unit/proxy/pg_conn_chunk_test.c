/* pg_conn_chunk unit tests: the strict reader of chunked framing accepts well-framed bodies
 * however they are split across reads, and refuses each framing fault llhttp 8 lets through,
 * naming it, at the byte where it is, whatever the split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg_conn_int.h"

/* Read body in pieces of `step` bytes; the cause, or NULL when fine (done says whether the
 * body ended where it should). */
static const char *scan_in_steps(const char *body, size_t step, bool *done)
{
    pg_chunk_t k;
    size_t n = strlen(body), i;
    const char *why = NULL;

    pg__chunk_init(&k);
    for (i = 0; i < n && why == NULL; i += step)
        why = pg__chunk_scan(&k, body + i, n - i < step ? n - i : step);
    *done = pg__chunk_done(&k);
    return why;
}

static void expect_good(const char *body)
{
    size_t step;
    bool done;

    for (step = 1; step <= strlen(body); step++) {
        const char *why = scan_in_steps(body, step, &done);

        if (why != NULL || !done)
            fail_msg("\"%s\" in steps of %zu: %s", body, step, why ? why : "not done");
    }
}

static void expect_bad(const char *body, const char *cause)
{
    size_t step;
    bool done;

    for (step = 1; step <= strlen(body); step++) {
        const char *why = scan_in_steps(body, step, &done);

        if (why == NULL || strstr(why, cause) == NULL)
            fail_msg("\"%s\" in steps of %zu: got %s, want %s", body, step, why ? why : "none",
                     cause);
    }
}

static void test_chunk_well_framed_bodies_pass_however_split(void **state)
{
    (void)state;
    expect_good("0\r\n\r\n");
    expect_good("5\r\nhello\r\n0\r\n\r\n");
    expect_good("5;a=b\r\nhello\r\n6;x\r\n world\r\n0\r\n\r\n");
    expect_good("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n");
    expect_good("0005\r\nhello\r\n000\r\n\r\n");
    expect_good("5\r\nhello\r\n0\r\nX-T: 1\r\nY:\r\nZ: a\tb\r\n\r\n");
}

static void test_chunk_data_must_end_in_crlf(void **state)
{
    (void)state;
    expect_bad("5\r\nhelloXX0\r\n\r\n", "chunk data not followed by CRLF");
    expect_bad("5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF");
    expect_bad("5\r\nhello\r0\r\n\r\n", "chunk data not followed by CRLF");
}

static void test_chunk_size_line_must_end_in_crlf(void **state)
{
    (void)state;
    expect_bad("5\rXhello\r\n0\r\n\r\n", "chunk-size line not ended by CRLF");
    expect_bad("5\nhello\r\n0\r\n\r\n", "chunk-size line not ended by CRLF");
    expect_bad("5 \r\nhello\r\n0\r\n\r\n", "chunk-size line not ended by CRLF");
    expect_bad("5;a\nb\r\nhello\r\n0\r\n\r\n", "chunk-size line not ended by CRLF");
    expect_bad("0\rX\r\n", "chunk-size line not ended by CRLF");
}

static void test_chunk_size_is_hex_and_bounded(void **state)
{
    pg_chunk_t k;

    (void)state;
    pg__chunk_init(&k); /* the largest size taken, 2^63 - 1: fine, its data still to come */
    assert_null(pg__chunk_scan(&k, "07fffffffffffffff\r\nabc", 22));
    assert_false(pg__chunk_done(&k));
    pg__chunk_init(&k); /* leading zeros are not digits that count */
    assert_null(pg__chunk_scan(&k, "000000000000000000007fffffffffffffff\r\n", 38));
    expect_bad("g\r\nhello\r\n", "not a hexadecimal number");
    expect_bad("\r\n\r\n", "not a hexadecimal number");
    expect_bad(";a\r\n", "not a hexadecimal number");
    /* past 2^63 - 1 (an int64 reader wraps), up to 2^64 - 1, and past it (17 digits) */
    expect_bad("8000000000000000\r\n", "chunk size too large (more than 2^63 - 1");
    expect_bad("0ffffffffffffffff\r\n", "chunk size too large (more than 2^63 - 1");
    expect_bad("10000000000000000\r\n", "chunk size too large (more than 2^63 - 1");
    expect_bad("00000000000000000000010000000000000000\r\n", "chunk size too large");
}

static void test_chunk_trailers_are_strict(void **state)
{
    (void)state;
    expect_bad("0\r\n\rX", "chunked body not ended by CRLF");
    expect_bad("0\r\nX T: 1\r\n\r\n", "trailer field name is not a token");
    expect_bad("0\r\n: 1\r\n\r\n", "trailer field name is not a token");
    expect_bad("0\r\nX-T: 1\r\n 2\r\n\r\n", "obs-fold in the trailer section");
    expect_bad("0\r\nX-T: 1\rY: 2\r\n\r\n", "trailer line not ended by CRLF");
    expect_bad("0\r\nX-T: 1\nY: 2\r\n\r\n", "trailer line not ended by CRLF");
}

static void test_chunk_nothing_after_the_end_and_faults_stick(void **state)
{
    pg_chunk_t k;
    const char *why;

    (void)state;
    expect_bad("0\r\n\r\nX", "bytes after the last chunk");
    pg__chunk_init(&k);
    why = pg__chunk_scan(&k, "5\r\nhelloXX", 10);
    assert_non_null(why);
    assert_ptr_equal(pg__chunk_scan(&k, "\r\n", 2), why);
    assert_false(pg__chunk_done(&k));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_well_framed_bodies_pass_however_split),
        cmocka_unit_test(test_chunk_data_must_end_in_crlf),
        cmocka_unit_test(test_chunk_size_line_must_end_in_crlf),
        cmocka_unit_test(test_chunk_size_is_hex_and_bounded),
        cmocka_unit_test(test_chunk_trailers_are_strict),
        cmocka_unit_test(test_chunk_nothing_after_the_end_and_faults_stick),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
