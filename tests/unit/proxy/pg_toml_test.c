/* Unit tests for pg_toml: the tree, positions, and the words of error messages. Full grammar
 * coverage lives in tests/toml (the toml-test corpus); these pin down what the config layer
 * relies on. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pg_toml.h"

static pg_toml_value_t *parse_ok(const char *src)
{
    pg_toml_value_t *root = NULL;
    pg_error_t err;
    int rc = pg_toml_parse(src, strlen(src), "t.toml", &root, &err);

    if (rc != 0)
        fail_msg("unexpected parse error %d: %s:%u:%u: %s", rc, err.file, err.pos.line, err.pos.col,
                 err.msg);
    assert_non_null(root);
    return root;
}

/* Parses src expecting an error; returns the formatted "FILE:LINE:COL: message". */
static const char *parse_err(const char *src, size_t len)
{
    static char buf[1024];
    pg_toml_value_t *root = (pg_toml_value_t *)1;
    pg_error_t err;
    int rc;

    memset(&err, 0, sizeof err);
    rc = pg_toml_parse(src, len, "t.toml", &root, &err);
    assert_int_equal(rc, -EINVAL);
    assert_null(root);
    return pg_error_format(&err, buf, sizeof buf);
}

#define ERR(src) parse_err((src), strlen(src))

static void test_config_shaped_document_reads_back_through_the_api(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("# profgate\n"
                                     "[server]\n"
                                     "listen = \"127.0.0.1:8080\"\n"
                                     "workers = 4\n"
                                     "[[upstream]]\n"
                                     "name = 'a'\n"
                                     "[[upstream]]\n"
                                     "name = 'b'\n"
                                     "tags = [\"x\", \"y\",]\n"
                                     "[pprof]\n"
                                     "enabled = true\n"
                                     "limits.cpu_seconds = 30\n");
    const pg_toml_value_t *server = pg_toml_table_get(root, "server");
    const pg_toml_value_t *ups = pg_toml_table_get(root, "upstream");
    const pg_toml_value_t *pprof = pg_toml_table_get(root, "pprof");
    const char *key;

    assert_int_equal(pg_toml_table_len(root), 3);
    assert_non_null(pg_toml_table_at(root, 2, &key, NULL));
    assert_string_equal(key, "pprof");
    assert_int_equal(pg_toml_type(server), PG_TOML_TABLE);
    assert_string_equal(pg_toml_string(pg_toml_table_get(server, "listen"), NULL),
                        "127.0.0.1:8080");
    assert_int_equal(pg_toml_int(pg_toml_table_get(server, "workers")), 4);
    assert_int_equal(pg_toml_type(ups), PG_TOML_ARRAY);
    assert_int_equal(pg_toml_array_len(ups), 2);
    assert_string_equal(pg_toml_string(pg_toml_table_get(pg_toml_array_at(ups, 1), "name"), NULL),
                        "b");
    assert_int_equal(pg_toml_array_len(pg_toml_table_get(pg_toml_array_at(ups, 1), "tags")), 2);
    assert_null(pg_toml_array_at(ups, 2));
    assert_true(pg_toml_bool(pg_toml_table_get(pprof, "enabled")));
    assert_int_equal(
        pg_toml_int(pg_toml_table_get(pg_toml_table_get(pprof, "limits"), "cpu_seconds")), 30);
    assert_null(pg_toml_table_get(root, "missing"));
    assert_null(pg_toml_table_get(pg_toml_table_get(server, "workers"), "x"));
    pg_toml_free(root);
}

static void test_keys_and_values_carry_line_and_column(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("a = 1\n"
                                     "\n"
                                     "  [tbl]\n"
                                     "    name   =   \"x\"\n"
                                     "[[arr]]\n");
    const pg_toml_value_t *tbl = pg_toml_table_get(root, "tbl");
    pg_pos_t p;

    p = pg_toml_table_key_pos(root, "a");
    assert_int_equal(p.line, 1);
    assert_int_equal(p.col, 1);
    p = pg_toml_pos(pg_toml_table_get(root, "a"));
    assert_int_equal(p.line, 1);
    assert_int_equal(p.col, 5);
    p = pg_toml_pos(tbl); /* a [header] table is where its header is */
    assert_int_equal(p.line, 3);
    assert_int_equal(p.col, 3);
    p = pg_toml_table_key_pos(tbl, "name");
    assert_int_equal(p.line, 4);
    assert_int_equal(p.col, 5);
    p = pg_toml_pos(pg_toml_table_get(tbl, "name"));
    assert_int_equal(p.line, 4);
    assert_int_equal(p.col, 16);
    p = pg_toml_pos(pg_toml_array_at(pg_toml_table_get(root, "arr"), 0));
    assert_int_equal(p.line, 5);
    assert_int_equal(p.col, 1);
    p = pg_toml_table_key_pos(root, "nope");
    assert_int_equal(p.line, 0);
    assert_int_equal(p.col, 0);
    pg_toml_free(root);
}

static void test_positions_count_lines_inside_multiline_strings_and_crlf(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("s = \"\"\"\r\none\r\ntwo\"\"\"\r\nk = 1\r\n");

    assert_string_equal(pg_toml_string(pg_toml_table_get(root, "s"), NULL), "one\ntwo");
    assert_int_equal(pg_toml_table_key_pos(root, "k").line, 4);
    pg_toml_free(root);
}

static void test_missing_equals_names_file_line_column_and_key(void **state)
{
    (void)state;
    assert_string_equal(ERR("[server]\nname \"x\"\n"),
                        "t.toml:2:6: expected '=' after key \"name\", found '\"'");
}

static void test_duplicate_key_points_at_the_second_and_names_the_first_line(void **state)
{
    (void)state;
    assert_string_equal(ERR("[s]\nport = 1\nport = 2\n"),
                        "t.toml:3:1: duplicate key \"port\" (first defined on line 2)");
}

static void test_table_defined_twice_is_an_error(void **state)
{
    (void)state;
    assert_string_equal(ERR("[a]\nx = 1\n[b]\n[a]\n"),
                        "t.toml:4:1: table [a] is defined twice (first on line 1)");
}

static void test_implicit_table_may_be_defined_later_once(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("[a.b]\nx = 1\n[a]\ny = 2\n");

    assert_int_equal(pg_toml_pos(pg_toml_table_get(root, "a")).line, 3);
    pg_toml_free(root);
    assert_string_equal(ERR("[a.b]\n[a]\n[a]\n"),
                        "t.toml:3:1: table [a] is defined twice (first on line 2)");
}

static void test_dotted_keys_cannot_reopen_a_header_table(void **state)
{
    (void)state;
    const char *e = ERR("[a.b]\nz = 1\n[a]\nb.y = 2\n");

    assert_non_null(strstr(e, "t.toml:4:1: cannot add keys to \"b\" with a dotted key"));
    /* A dotted key defines an implicit table; a header may not define it again. */
    assert_string_equal(ERR("[a.b.c]\n[a]\nb.x = 1\n[a.b]\n"),
                        "t.toml:4:1: cannot define table [a.b]: it is already a table defined "
                        "by dotted keys (line 3)");
}

static void test_inline_tables_are_immutable(void **state)
{
    (void)state;
    const char *e = ERR("a = { b = 1 }\n[a.c]\n");

    assert_non_null(strstr(e, "t.toml:2:2: cannot use \"a\" as a table: it is already an "
                              "inline table"));
    e = ERR("a = { b = 1 }\na.c = 2\n");
    assert_non_null(strstr(e, "it is already an inline table"));
}

static void test_array_of_tables_cannot_extend_a_static_array(void **state)
{
    (void)state;
    const char *e = ERR("a = []\n[[a]]\n");

    assert_non_null(strstr(e, "t.toml:2:1: cannot append to [[a]]: it is already an array"));
}

static void test_integers_in_every_base_and_at_the_limits(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("d = 1_000\nh = 0xDEAD_beef\no = 0o755\nb = 0b1101\n"
                                     "max = 9223372036854775807\nmin = -9223372036854775808\n"
                                     "hmax = 0x7fffffffffffffff\n");

    assert_int_equal(pg_toml_int(pg_toml_table_get(root, "d")), 1000);
    assert_int_equal(pg_toml_int(pg_toml_table_get(root, "h")), 0xdeadbeef);
    assert_int_equal(pg_toml_int(pg_toml_table_get(root, "o")), 0755);
    assert_int_equal(pg_toml_int(pg_toml_table_get(root, "b")), 13);
    assert_true(pg_toml_int(pg_toml_table_get(root, "max")) == INT64_MAX);
    assert_true(pg_toml_int(pg_toml_table_get(root, "min")) == INT64_MIN);
    assert_true(pg_toml_int(pg_toml_table_get(root, "hmax")) == INT64_MAX);
    pg_toml_free(root);
    assert_string_equal(ERR("n = 9223372036854775808\n"),
                        "t.toml:1:5: integer '9223372036854775808' does not fit in 64 bits");
    assert_non_null(strstr(ERR("n = 0x8000000000000000\n"), "does not fit in 64 bits"));
    assert_non_null(strstr(ERR("n = 1__0\n"), "malformed number '1__0'"));
    assert_non_null(strstr(ERR("n = 012\n"), "leading zeros are not allowed"));
    assert_non_null(strstr(ERR("n = +0x1\n"), "malformed number"));
}

static void test_floats_including_inf_nan_and_exponents(void **state)
{
    (void)state;
    pg_toml_value_t *root =
        parse_ok("a = 3.14\nb = -1e-3\nc = 6.626e-34\nd = inf\ne = -inf\nf = nan\ng = 1_0.5_0\n");

    assert_true(pg_toml_float(pg_toml_table_get(root, "a")) == 3.14);
    assert_true(pg_toml_float(pg_toml_table_get(root, "b")) == -1e-3);
    assert_true(pg_toml_float(pg_toml_table_get(root, "c")) == 6.626e-34);
    assert_true(isinf(pg_toml_float(pg_toml_table_get(root, "d"))));
    assert_true(pg_toml_float(pg_toml_table_get(root, "e")) < 0);
    assert_true(isnan(pg_toml_float(pg_toml_table_get(root, "f"))));
    assert_true(pg_toml_float(pg_toml_table_get(root, "g")) == 10.5);
    pg_toml_free(root);
    assert_non_null(strstr(ERR("x = 1.\n"), "malformed number"));
    assert_non_null(strstr(ERR("x = .5\n"), "expected a value"));
    assert_non_null(strstr(ERR("x = 1e_3\n"), "malformed number"));
    /* Found by fuzz_toml: an empty exponent at the very end of the input. */
    assert_non_null(strstr(parse_err("x = 0e", 6), "malformed number '0e'"));
}

static void test_strings_of_all_four_kinds_with_escapes(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("a = \"tab\\there \\u00e9 \\U0001F600 \\\"q\\\"\"\n"
                                     "b = 'C:\\path\\n'\n"
                                     "c = \"\"\"\nline1\\\n    line2 \"\"\"\"\n"
                                     "d = '''\nraw\\n ''quoted'' '''\n"
                                     "e = \"nul\\u0000byte\"\n");
    size_t len;

    assert_string_equal(pg_toml_string(pg_toml_table_get(root, "a"), NULL),
                        "tab\there \xc3\xa9 \xf0\x9f\x98\x80 \"q\"");
    assert_string_equal(pg_toml_string(pg_toml_table_get(root, "b"), NULL), "C:\\path\\n");
    assert_string_equal(pg_toml_string(pg_toml_table_get(root, "c"), NULL), "line1line2 \"");
    assert_string_equal(pg_toml_string(pg_toml_table_get(root, "d"), NULL), "raw\\n ''quoted'' ");
    assert_memory_equal(pg_toml_string(pg_toml_table_get(root, "e"), &len), "nul\0byte", 9);
    assert_int_equal(len, 8);
    pg_toml_free(root);
}

static void test_bad_escapes_and_control_characters_are_rejected(void **state)
{
    (void)state;
    assert_non_null(strstr(ERR("s = \"\\uD800\"\n"), "not a Unicode scalar value"));
    assert_non_null(strstr(ERR("s = \"\\U00110000\"\n"), "not a Unicode scalar value"));
    assert_non_null(strstr(ERR("s = \"\\x41\"\n"), "t.toml:1:7: invalid escape"));
    assert_non_null(strstr(ERR("s = \"a\x01\"\n"), "control character 0x01"));
    assert_non_null(strstr(ERR("s = \"abc\nd\"\n"), "unterminated string"));
    assert_non_null(strstr(ERR("k = 1 # bell\x07\n"), "not allowed in a comment"));
    assert_non_null(strstr(ERR("k = 1\rj = 2\n"), "carriage return"));
}

static void test_invalid_utf8_is_rejected_with_its_position(void **state)
{
    (void)state;
    assert_string_equal(ERR("a = 1\n# caf\xc3\n"),
                        "t.toml:2:6: invalid UTF-8 sequence (byte 0x0a after 0xc3)");
    assert_non_null(strstr(ERR("s = \"\xed\xa0\x80\"\n"), "t.toml:1:6: invalid UTF-8"));
    assert_non_null(strstr(ERR("s = \"\xc0\xaf\"\n"), "invalid UTF-8"));
}

static void test_date_times_are_split_into_fields_and_validated(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("odt = 1979-05-27T00:32:00.999999-07:30\n"
                                     "ldt = 1979-05-27 07:32:00\n"
                                     "ld = 2024-02-29\n"
                                     "lt = 07:32:00.5\n");
    const pg_toml_datetime_t *dt = pg_toml_datetime(pg_toml_table_get(root, "odt"));

    assert_int_equal(pg_toml_type(pg_toml_table_get(root, "odt")), PG_TOML_DATETIME);
    assert_int_equal(dt->year, 1979);
    assert_int_equal(dt->month, 5);
    assert_int_equal(dt->day, 27);
    assert_int_equal(dt->minute, 32);
    assert_int_equal(dt->nanosecond, 999999000);
    assert_int_equal(dt->offset_minutes, -450);
    assert_int_equal(pg_toml_type(pg_toml_table_get(root, "ldt")), PG_TOML_DATETIME_LOCAL);
    assert_int_equal(pg_toml_datetime(pg_toml_table_get(root, "ldt"))->hour, 7);
    assert_int_equal(pg_toml_type(pg_toml_table_get(root, "ld")), PG_TOML_DATE_LOCAL);
    assert_int_equal(pg_toml_type(pg_toml_table_get(root, "lt")), PG_TOML_TIME_LOCAL);
    assert_int_equal(pg_toml_datetime(pg_toml_table_get(root, "lt"))->nanosecond, 500000000);
    pg_toml_free(root);
    assert_string_equal(ERR("d = 2023-02-29\n"), "t.toml:1:5: day 29 out of range for 2023-02");
    assert_non_null(strstr(ERR("d = 1900-02-29\n"), "out of range"));
    assert_non_null(strstr(ERR("t = 24:00:00\n"), "out of range"));
    assert_non_null(strstr(ERR("t = 07:32\n"), "malformed time"));
    assert_non_null(strstr(ERR("d = 2000-01-01T00:00:00+24:00\n"), "offset"));
}

static void test_nesting_deeper_than_the_limit_is_an_error_not_a_crash(void **state)
{
    (void)state;
    size_t n = 100000;
    char *src = malloc(n + 8);
    pg_toml_value_t *root;

    assert_non_null(src);
    memcpy(src, "a = ", 4);
    memset(src + 4, '[', n);
    assert_non_null(strstr(parse_err(src, n + 4), "nested deeper than 512"));
    for (size_t i = 0; i + 3 <= n; i += 3)
        src[4 + i] = '{', src[5 + i] = 'b', src[6 + i] = '=';
    assert_non_null(strstr(parse_err(src, n + 4), "nested deeper than 512"));
    /* Dotted keys and header paths nest too: a walker recursing over the tree is bounded. */
    for (size_t i = 0; i < 1200; i += 2)
        src[i] = 'a', src[i + 1] = '.';
    memcpy(src + 1199, " = 1\n", 5);
    assert_non_null(strstr(parse_err(src, 1204), "t.toml:1:1025: nested deeper than 512"));
    src[0] = '[';
    for (size_t i = 1; i < 1200; i += 2)
        src[i] = 'a', src[i + 1] = '.';
    memcpy(src + 1200, "]\n", 2);
    assert_non_null(strstr(parse_err(src, 1202), "nested deeper than 512"));
    /* 512 levels are fine. */
    memcpy(src, "a = ", 4);
    memset(src + 4, '[', 512);
    memset(src + 4 + 512, ']', 512);
    src[4 + 1024] = '\0';
    root = parse_ok(src);
    assert_int_equal(pg_toml_array_len(pg_toml_table_get(root, "a")), 1);
    pg_toml_free(root);
    free(src);
}

static void test_input_is_bounded_by_len_not_by_a_nul(void **state)
{
    (void)state;
    const char src[] = "a = 12345"; /* only "a = 12" is passed */
    pg_toml_value_t *root = NULL;
    pg_error_t err;

    assert_int_equal(pg_toml_parse(src, 6, NULL, &root, &err), 0);
    assert_int_equal(pg_toml_int(pg_toml_table_get(root, "a")), 12);
    pg_toml_free(root);
    assert_string_equal(parse_err("a = \"x", 6), "t.toml:1:5: unterminated string (no closing \")");
}

static void test_big_tables_are_looked_up_by_index_in_definition_order(void **state)
{
    (void)state;
    size_t n = 5000, cap = n * 32, len = 0;
    char *src = malloc(cap), key[32];
    pg_toml_value_t *root;

    assert_non_null(src);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(src + len, cap - len, "k%zu = %zu\n", i * 7919 % n, i);
    root = parse_ok(src);
    assert_int_equal(pg_toml_table_len(root), n);
    for (size_t i = 0; i < n; i++) {
        const char *k;

        snprintf(key, sizeof key, "k%zu", i * 7919 % n);
        assert_int_equal(pg_toml_int(pg_toml_table_get(root, key)), i);
        assert_int_equal(pg_toml_table_key_pos(root, key).line, i + 1);
        pg_toml_table_at(root, i, &k, NULL);
        assert_string_equal(k, key);
    }
    pg_toml_free(root);
    /* The index must also catch duplicates. */
    len += (size_t)snprintf(src + len, cap - len, "k4999 = 0\n");
    assert_non_null(strstr(parse_err(src, len), "duplicate key \"k4999\""));
    free(src);
}

static void test_parse_file_reads_a_file_and_names_it_in_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_toml_test_XXXXXX";
    int fd = mkstemp(path);
    pg_toml_value_t *root;
    pg_error_t err;
    char buf[600];

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x = 1\ny = \n", 11), 11);
    close(fd);
    assert_int_equal(pg_toml_parse_file(path, &root, &err), -EINVAL);
    assert_null(root);
    snprintf(buf, sizeof buf, "%s:2:5: expected a value after \"y\" =, found end of line", path);
    assert_string_equal(pg_error_format(&err, buf + 300, 300), buf);
    unlink(path);
    assert_int_equal(pg_toml_parse_file(path, &root, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_string_equal(err.file, path);
}

static void test_empty_input_and_byte_order_mark_give_an_empty_root(void **state)
{
    (void)state;
    pg_toml_value_t *root = parse_ok("");

    assert_int_equal(pg_toml_type(root), PG_TOML_TABLE);
    assert_int_equal(pg_toml_table_len(root), 0);
    pg_toml_free(root);
    root = parse_ok("\xef\xbb\xbf# only a comment\n");
    assert_int_equal(pg_toml_table_len(root), 0);
    pg_toml_free(root);
}

static void test_type_names_are_plain_words(void **state)
{
    (void)state;
    assert_string_equal(pg_toml_type_name(PG_TOML_TABLE), "table");
    assert_string_equal(pg_toml_type_name(PG_TOML_STRING), "string");
    assert_string_equal(pg_toml_type_name(PG_TOML_INTEGER), "integer");
    assert_string_equal(pg_toml_type_name(PG_TOML_BOOL), "boolean");
    assert_string_equal(pg_toml_type_name(PG_TOML_DATE_LOCAL), "local date");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_shaped_document_reads_back_through_the_api),
        cmocka_unit_test(test_keys_and_values_carry_line_and_column),
        cmocka_unit_test(test_positions_count_lines_inside_multiline_strings_and_crlf),
        cmocka_unit_test(test_missing_equals_names_file_line_column_and_key),
        cmocka_unit_test(test_duplicate_key_points_at_the_second_and_names_the_first_line),
        cmocka_unit_test(test_table_defined_twice_is_an_error),
        cmocka_unit_test(test_implicit_table_may_be_defined_later_once),
        cmocka_unit_test(test_dotted_keys_cannot_reopen_a_header_table),
        cmocka_unit_test(test_inline_tables_are_immutable),
        cmocka_unit_test(test_array_of_tables_cannot_extend_a_static_array),
        cmocka_unit_test(test_integers_in_every_base_and_at_the_limits),
        cmocka_unit_test(test_floats_including_inf_nan_and_exponents),
        cmocka_unit_test(test_strings_of_all_four_kinds_with_escapes),
        cmocka_unit_test(test_bad_escapes_and_control_characters_are_rejected),
        cmocka_unit_test(test_invalid_utf8_is_rejected_with_its_position),
        cmocka_unit_test(test_date_times_are_split_into_fields_and_validated),
        cmocka_unit_test(test_nesting_deeper_than_the_limit_is_an_error_not_a_crash),
        cmocka_unit_test(test_input_is_bounded_by_len_not_by_a_nul),
        cmocka_unit_test(test_big_tables_are_looked_up_by_index_in_definition_order),
        cmocka_unit_test(test_parse_file_reads_a_file_and_names_it_in_errors),
        cmocka_unit_test(test_empty_input_and_byte_order_mark_give_an_empty_root),
        cmocka_unit_test(test_type_names_are_plain_words),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
