/* Unit tests for pa_text: Go's tabwriter alignment byte for byte (golden text produced by Go's
 * text/tabwriter with printCountProfile's settings), the count-profile layout and ordering,
 * symbolized "#" lines and the debug=2 traceback form. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_pprof.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "pa_text.h"

__attribute__((noinline)) int text_test_leaf(int x);
__attribute__((noinline)) int text_test_leaf(int x)
{
    volatile int acc = x;
    for (int i = 0; i < 5; i++)
        acc = acc * 17 + i;
    return acc;
}

__attribute__((noinline)) int text_test_caller(int x);
__attribute__((noinline)) int text_test_caller(int x)
{
    volatile int acc = text_test_leaf(x);
    for (int i = 0; i < 5; i++)
        acc = acc * 13 + i;
    return acc;
}

/* Input and output of Go 1.x text/tabwriter.NewWriter(w, 1, 8, 1, '\t', 0), as
 * printCountProfile configures it (generated with a Go program, not by hand). */
static const char tw_input[] =
    "goroutine profile: total 3\n"
    "2 @ 0x1 0x2\n"
    "#\t0x401000\tf+0x0\t/bin/a\n"
    "#\t0x7f0000001234\ta_much_longer_function_name+0x1f\t/lib/libc.so.6\n"
    "#\t0x7f00000099\n"
    "#\t0x55\tseven77+0x1\t/x\n"
    "#\t0x56\t\xc3\xa9\xc3\xa9+0x1\t/y\n"
    "\n"
    "1 @ 0x3\n"
    "#\t0x3\tabcdefg+0x0\t\n"
    "\n";
static const char tw_golden[] =
    "goroutine profile: total 3\n"
    "2 @ 0x1 0x2\n"
    "#\t0x401000\tf+0x0\t\t\t\t\t/bin/a\n"
    "#\t0x7f0000001234\ta_much_longer_function_name+0x1f\t/lib/libc.so.6\n"
    "#\t0x7f00000099\n"
    "#\t0x55\tseven77+0x1\t/x\n"
    "#\t0x56\t\xc3\xa9\xc3\xa9+0x1\t\t/y\n"
    "\n"
    "1 @ 0x3\n"
    "#\t0x3\tabcdefg+0x0\t\n"
    "\n";

static void test_tabwrite_matches_go_tabwriter_byte_for_byte(void **state)
{
    pa_textbuf_t b;
    (void)state;

    pa_textbuf_init(&b);
    pa__text_tabwrite(&b, tw_input, sizeof(tw_input) - 1);
    assert_int_equal(b.err, 0);
    assert_string_equal(b.data, tw_golden);
    pa_textbuf_destroy(&b);
}

static void test_textbuf_grows_and_hands_over(void **state)
{
    pa_textbuf_t b;
    char *out;
    size_t len;
    (void)state;

    pa_textbuf_init(&b);
    for (int i = 0; i < 1000; i++)
        pa_textbuf_printf(&b, "%04d,", i);
    assert_int_equal(pa_textbuf_take(&b, &out, &len), 0);
    assert_int_equal(len, 5000);
    assert_memory_equal(out, "0000,0001,", 10);
    assert_string_equal(out + 4995, "0999,");
    assert_null(b.data);
    free(out);
}

static pa_stacktab_t *table(void)
{
    pa_stacktab_t *t = NULL;
    assert_int_equal(pa_stacktab_new(1, 16, &t), 0);
    return t;
}

static void add(pa_stacktab_t *t, const uintptr_t *pcs, size_t n, int64_t count)
{
    int64_t v[1] = {count};
    assert_int_equal(pa_stacktab_add(t, pcs, n, v), 0);
}

static void test_count_profile_orders_by_count_then_key_and_adjusts_callers(void **state)
{
    static const uintptr_t c[] = {0x1000, 0x2001};
    static const uintptr_t a[] = {0x1000, 0x2000};
    static const uintptr_t b[] = {0x3000};
    static const char *const comments[] = {"2 threads did not answer"};
    pa_stacktab_t *t = table();
    char *out = NULL;
    size_t len = 0;
    (void)state;

    add(t, c, 2, 1);
    add(t, a, 2, 1);
    add(t, b, 1, 2);
    add(t, b, 1, 1); /* sums to 3 */
    assert_int_equal(pa_text_count_profile("goroutine", t, 0, NULL, comments, 1, &out, &len), 0);
    assert_string_equal(out, "goroutine profile: total 5\n"
                             "3 @ 0x3000\n"
                             "#\t0x3000\n"
                             "\n"
                             "1 @ 0x1000 0x2000\n"
                             "#\t0x1000\n"
                             "#\t0x1fff\n"
                             "\n"
                             "1 @ 0x1000 0x2001\n"
                             "#\t0x1000\n"
                             "#\t0x2000\n"
                             "\n"
                             "# 2 threads did not answer\n");
    assert_int_equal(len, strlen(out));
    free(out);
    pa_stacktab_free(t);
}

static void test_count_profile_names_pseudo_frames_and_skips_zero_counts(void **state)
{
    static const uintptr_t lost[] = {PA_PC_LOST};
    static const uintptr_t gone[] = {0x5000};
    pa_stacktab_t *t = table();
    char *out = NULL;
    size_t len = 0;
    (void)state;

    add(t, lost, 1, 2);
    add(t, gone, 1, 0);
    assert_int_equal(pa_text_count_profile("threadcreate", t, 0, NULL, NULL, 0, &out, &len), 0);
    assert_string_equal(out, "threadcreate profile: total 2\n"
                             "2 @ 0x1\n"
                             "#\t0x1\t[lost samples]+0x0\t\n"
                             "\n");
    free(out);
    assert_int_equal(pa_text_count_profile("x", t, 1, NULL, NULL, 0, &out, &len), -EINVAL);
    pa_stacktab_free(t);
}

static void exe_path(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    assert_true(n > 0);
    buf[n] = '\0';
}

static void test_stack_record_names_functions_offsets_and_object_files(void **state)
{
    uintptr_t pcs[2] = {(uintptr_t)text_test_leaf + 4, (uintptr_t)text_test_caller + 9};
    pa_symtab_t *sym = NULL;
    pa_textbuf_t b;
    char exe[PATH_MAX], want[PATH_MAX + 128];
    (void)state;

    exe_path(exe, sizeof(exe));
    assert_int_equal(pa_symtab_new(&sym), 0);
    pa_textbuf_init(&b);
    pa_text_stack_record(&b, sym, pcs, 2);
    assert_int_equal(b.err, 0);
    /* the leaf as recorded; the caller at return address - 1 */
    snprintf(want, sizeof(want), "#\t0x%" PRIxPTR "\ttext_test_leaf+0x4\t", pcs[0]);
    assert_non_null(strstr(b.data, want));
    snprintf(want, sizeof(want), "#\t0x%" PRIxPTR "\ttext_test_caller+0x8\t", pcs[1] - 1);
    assert_non_null(strstr(b.data, want));
    snprintf(want, sizeof(want), "\t%s\n", exe);
    assert_non_null(strstr(b.data, want));
    assert_int_equal(b.data[b.len - 1], '\n');
    assert_int_equal(b.data[b.len - 2], '\n'); /* the record ends with an empty line */
    pa_textbuf_destroy(&b);
    pa_symtab_free(sym);
}

static void test_traceback_has_go_like_frame_pairs(void **state)
{
    uintptr_t pcs[3] = {(uintptr_t)text_test_leaf + 4, (uintptr_t)text_test_caller + 9,
                        PA_PC_UNWIND_FAIL};
    pa_symtab_t *sym = NULL;
    pa_textbuf_t b;
    char exe[PATH_MAX], want[2 * PATH_MAX + 128];
    (void)state;

    exe_path(exe, sizeof(exe));
    assert_int_equal(pa_symtab_new(&sym), 0);
    pa_textbuf_init(&b);
    pa_text_traceback(&b, sym, pcs, 3);
    snprintf(want, sizeof(want),
             "text_test_leaf(...)\n\t%s +0x4\ntext_test_caller(...)\n\t%s +0x8\n"
             "[unknown](...)\n\t?\n",
             exe, exe);
    assert_string_equal(b.data, want);
    pa_textbuf_destroy(&b);
    pa_symtab_free(sym);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tabwrite_matches_go_tabwriter_byte_for_byte),
        cmocka_unit_test(test_textbuf_grows_and_hands_over),
        cmocka_unit_test(test_count_profile_orders_by_count_then_key_and_adjusts_callers),
        cmocka_unit_test(test_count_profile_names_pseudo_frames_and_skips_zero_counts),
        cmocka_unit_test(test_stack_record_names_functions_offsets_and_object_files),
        cmocka_unit_test(test_traceback_has_go_like_frame_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
