/* pg_head field-name checks: pg_head_tchar is RFC 9110's tchar set exactly, and
 * pg_head_bad_name finds the first field whose name llhttp 8 let through but is not a token
 * (a space anywhere in it, or nothing at all), whatever the name's length (it reads a word
 * at a time), and not the space after the name's colon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg_head.h"

static pg_bufpool_t pool;

static const pg_head_field_t *bad_name_of(pg_head_t *h, const char *const *names)
{
    size_t i;

    pg_head_reset(h, 8192);
    assert_int_equal(pg_head_first(h, &pool, "OK", 2), 0);
    for (i = 0; names[i]; i++) {
        assert_int_equal(pg_head_field(h, &pool, names[i], strlen(names[i])), 0);
        assert_int_equal(pg_head_field_done(h, &pool), 0);
        assert_int_equal(pg_head_append(h, &pool, "v", 1), 0);
        assert_int_equal(pg_head_value_done(h, &pool), 0);
    }
    return pg_head_bad_name(h);
}

static void test_head_tchar_is_rfc9110s_set(void **state)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned ch;

    (void)state;
    for (ch = 0; ch < 256; ch++)
        assert_int_equal(pg_head_tchar((unsigned char)ch),
                         ch != 0 && memchr(tchar, (int)ch, sizeof tchar - 1) != NULL);
}

static void test_head_bad_name_finds_the_first_non_token(void **state)
{
    static const char *const good[] = {"Content-Length", "X-A", "x_b.c~1!", "Server", "Abcdefgh",
                                       "Abcdefghijklmnopqrstuvw", NULL};
    static const char *const space[] = {"Server", "X A", "Y B", NULL};
    static const char *const trailing[] = {"Server", "Transfer-Encoding ", NULL};
    static const char *const late[] = {"Abcdefghijklmno p", NULL};
    static const char *const empty[] = {"Server", "", NULL};
    pg_head_t h;
    const pg_head_field_t *f;

    (void)state;
    pg_bufpool_init(&pool);
    memset(&h, 0, sizeof h);
    assert_null(bad_name_of(&h, good));
    f = bad_name_of(&h, space);
    assert_non_null(f);
    assert_int_equal(f->name_len, 3);
    assert_memory_equal(pg_head_name(&h, f), "X A", 3);
    f = bad_name_of(&h, trailing);
    assert_non_null(f);
    assert_int_equal(f->name_len, 18);
    f = bad_name_of(&h, late);
    assert_non_null(f);
    assert_int_equal(f->name_len, 17);
    f = bad_name_of(&h, empty);
    assert_non_null(f);
    assert_int_equal(f->name_len, 0);
    pg_head_release(&h);
    pg_bufpool_destroy(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_tchar_is_rfc9110s_set),
        cmocka_unit_test(test_head_bad_name_finds_the_first_non_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
