/* pg_conn_lines unit tests: the one-pass check of a request head's line ends passes heads
 * whose every line ends in CRLF however they are split across reads, names a bare CR, a bare
 * LF and an obs-fold wherever they fall (at the edges of its 32-byte blocks too, and across
 * reads), and gives the reference's verdict and carries on every input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pg_conn_int.h"

/* Check s in reads of `step` bytes (the last one shorter), carrying the state as pg_conn
 * does; the first cause, or NULL. */
static const char *scan_in_steps(const char *s, size_t n, size_t step, bool *cr, bool *lf)
{
    const char *why = NULL;
    size_t i;

    *cr = *lf = false;
    for (i = 0; i < n && why == NULL; i += step)
        why = pg__conn_lines_scan(cr, lf, s + i, n - i < step ? n - i : step);
    return why;
}

static void expect_good(const char *s)
{
    size_t n = strlen(s), step;
    bool cr, lf;

    for (step = 1; step <= n; step++) {
        const char *why = scan_in_steps(s, n, step, &cr, &lf);

        if (why != NULL || cr || !lf)
            fail_msg("\"%s\" in steps of %zu: %s (cr %d lf %d)", s, step, why ? why : "fine", cr,
                     lf);
    }
}

/* s is refused, naming cause, in one read and in every two-read split */
static void expect_bad(const char *s, const char *cause)
{
    size_t n = strlen(s), cut;
    bool cr, lf;
    const char *why = scan_in_steps(s, n, n, &cr, &lf);

    if (why == NULL || strstr(why, cause) == NULL)
        fail_msg("%zu bytes in one read: got %s, want %s", n, why ? why : "none", cause);
    for (cut = 1; cut < n; cut++) {
        cr = lf = false;
        why = pg__conn_lines_scan(&cr, &lf, s, cut);
        if (why == NULL)
            why = pg__conn_lines_scan(&cr, &lf, s + cut, n - cut);
        if (why == NULL || strstr(why, cause) == NULL)
            fail_msg("%zu bytes cut at %zu: got %s, want %s", n, cut, why ? why : "none", cause);
    }
}

static void test_lines_heads_ended_by_crlf_pass_however_split(void **state)
{
    (void)state;
    expect_good("GET / HTTP/1.1\r\n\r\n");
    expect_good("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    /* the CRLFs at every offset around the 16-byte blocks */
    expect_good("GET /0123456789ab HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: "
                "ApacheBench/2.3\r\nAccept: */*\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n");
    expect_good("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:40000\r\n"
                "User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n");
}

/* before + 0..39 digits + after is refused, naming cause: the fault at every offset around
 * the blocks */
static void expect_bad_padded(const char *before, const char *after, const char *cause)
{
    char s[160];
    int pad;

    for (pad = 0; pad < 40; pad++) {
        snprintf(s, sizeof s, "%s%.*s%s", before, pad, "0123456789012345678901234567890123456789",
                 after);
        expect_bad(s, cause);
    }
}

static void test_lines_a_bare_lf_is_refused_wherever_it_falls(void **state)
{
    (void)state;
    expect_bad_padded("GET /", " HTTP/1.1\nHost: a\r\n\r\n", "not ended by CRLF");
    expect_bad_padded("GET / HTTP/1.1\r\nX: ", "\r\n\n", "not ended by CRLF");
}

static void test_lines_a_cr_without_its_lf_is_refused_wherever_it_falls(void **state)
{
    (void)state;
    expect_bad_padded("GET / HTTP/1.1\r\nX-", ":\rhY: b\r\n\r\n", "not ended by CRLF");
    expect_bad_padded("GET / HTTP/1.1\r\nX: ", "\r\n\rX", "not ended by CRLF");
}

static void test_lines_an_obs_fold_is_refused_wherever_it_falls(void **state)
{
    (void)state;
    expect_bad_padded("GET / HTTP/1.1\r\nX: ", "\r\n b\r\n\r\n", "obs-fold");
    expect_bad_padded("GET / HTTP/1.1\r\nX: ", "\r\n\tb\r\n\r\n", "obs-fold");
}

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random heads, mostly well formed (so that the one pass is what decides), with CR, LF,
 * SP and HTAB sprinkled in, cut into random reads: verdict and carries as the reference's
 * after every read. */
static void test_lines_one_pass_agrees_with_the_reference(void **state)
{
    static const char alpha[] = "aaaaaaaaaaaa:: \t\r\n";
    char s[200];
    unsigned round, fast_clean = 0, faults = 0;

    (void)state;
    rng_state = 0x9e3779b97f4a7c15ull;
    for (round = 0; round < 200000; round++) {
        size_t n = rng() % sizeof s, i = 0, off = 0;
        bool cr1 = false, lf1 = false, cr2, lf2;
        const char *w1 = NULL, *w2;
        unsigned err_every = 1 + (unsigned)(rng() % 400);

        while (i < n) {
            uint64_t r = rng();

            if (r % err_every == 0)
                s[i++] = alpha[(r >> 16) % (sizeof alpha - 1)];
            else if (r % 23 == 1 && i + 2 <= n)
                s[i++] = '\r', s[i++] = '\n';
            else
                s[i++] = (char)('a' + (r >> 20) % 26);
        }
        if (rng() % 2) { /* start where a previous read ended */
            cr1 = rng() % 3 == 0;
            lf1 = !cr1 && rng() % 2;
        }
        while (off < n && w1 == NULL) {
            size_t len = 1 + (size_t)(rng() % (n - off));

            cr2 = cr1;
            lf2 = lf1;
            w2 = pg__conn_lines_scan_ref(&cr2, &lf2, s + off, len);
            w1 = pg__conn_lines_scan(&cr1, &lf1, s + off, len);
            if (w1 != w2 || cr1 != cr2 || (w1 == NULL && lf1 != lf2))
                fail_msg("round %u: %zu bytes at %zu of %zu: one pass %s (cr %d lf %d), "
                         "reference %s (cr %d lf %d)",
                         round, len, off, n, w1 ? w1 : "fine", cr1, lf1, w2 ? w2 : "fine", cr2,
                         lf2);
            fast_clean += w1 == NULL && len >= 32;
            faults += w1 != NULL;
            off += len;
        }
    }
    /* both ways were taken often: the one pass's own verdict, and the reference's */
    print_message("%u reads of 32 bytes or more passed by the one pass; %u refused\n", fast_clean,
                  faults);
    assert_true(fast_clean > 20000);
    assert_true(faults > 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_heads_ended_by_crlf_pass_however_split),
        cmocka_unit_test(test_lines_a_bare_lf_is_refused_wherever_it_falls),
        cmocka_unit_test(test_lines_a_cr_without_its_lf_is_refused_wherever_it_falls),
        cmocka_unit_test(test_lines_an_obs_fold_is_refused_wherever_it_falls),
        cmocka_unit_test(test_lines_one_pass_agrees_with_the_reference),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
