/* pg_access batch unit tests: lines wait in a thread's batch until it is flushed, fills, or
 * gets a line for another descriptor; each write holds whole lines, at most PIPE_BUF bytes
 * where the descriptor is not a regular file (seen message by message on a SOCK_SEQPACKET
 * socket, which keeps write boundaries); a failed write drops and counts its lines; a
 * forgotten descriptor's number can be reused by another kind of file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg_access.h"
#include "pg_config.h"

static pg_access_batch_t batch;

/* A JSON line whose target is "/t/<i>" padded with 'p' to pad bytes. */
static void write_line(int fd, int i, size_t pad)
{
    char target[PG_ACCESS_LINE_MAX];
    pg_access_entry_t e;
    int n;

    memset(&e, 0, sizeof e);
    e.peer_text = "192.0.2.7";
    e.peer_text_len = 9;
    e.method = "GET";
    n = snprintf(target, sizeof target, "/t/%d/", i);
    assert_true(n > 0 && (size_t)n + pad < sizeof target);
    memset(target + n, 'p', pad);
    e.target = target;
    e.target_len = (size_t)n + pad;
    e.http_major = e.http_minor = 1;
    e.status = 200;
    pg_access_write(fd, PG_LOG_JSON, &e);
}

/* The index in the line's target, or -1 when the line is not a whole line of ours. */
static int index_of(const char *line, size_t len)
{
    const char *t = strstr(line, "\"target\":\"/t/");

    if (len < 2 || line[0] != '{' || line[len - 1] != '}' || t == NULL || t > line + len)
        return -1;
    return atoi(t + 13);
}

/* Checks that buf holds lines 0..n-1 in order, each whole; returns how many it holds. */
static int check_lines(char *buf, size_t len, int first)
{
    size_t off = 0;
    int k = first;

    while (off < len) {
        char *nl = memchr(buf + off, '\n', len - off);

        assert_non_null(nl);
        *nl = '\0';
        assert_int_equal(index_of(buf + off, (size_t)(nl - (buf + off))), k);
        k++;
        off = (size_t)(nl - buf) + 1;
    }
    return k - first;
}

static size_t file_size(int fd)
{
    struct stat st;

    assert_int_equal(fstat(fd, &st), 0);
    return (size_t)st.st_size;
}

/* A log opened by pg_access_open on a new temporary file (already unlinked); *rfd: the
 * same file opened for reading. */
static int temp_log(int *rfd)
{
    char path[] = "/tmp/pg_access_batch_test.XXXXXX";
    int fd = mkstemp(path), lfd;

    assert_true(fd >= 0);
    assert_int_equal(pg_access_open(path, &lfd), 0);
    unlink(path);
    *rfd = fd;
    return lfd;
}

static int setup(void **state)
{
    (void)state;
    pg_access_batch_init(&batch);
    pg_access_batch_attach(&batch);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pg_access_batch_attach(NULL);
    return 0;
}

static void test_lines_wait_in_the_batch_until_it_is_flushed(void **state)
{
    char buf[4096];
    int rfd, fd = temp_log(&rfd);
    ssize_t n;

    (void)state;
    write_line(fd, 0, 0);
    write_line(fd, 1, 0);
    write_line(fd, 2, 0);
    assert_int_equal(file_size(fd), 0);
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    n = pread(rfd, buf, sizeof buf, 0);
    assert_true(n > 0);
    assert_int_equal(check_lines(buf, (size_t)n, 0), 3);
    /* a second flush writes nothing more */
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    assert_int_equal(file_size(fd), (size_t)n);
    pg_access_batch_forget(&batch);
    pg_access_close(fd);
    close(rfd);
}

static void test_a_full_batch_is_written_in_whole_lines_before_the_next_line(void **state)
{
    int rfd, fd = temp_log(&rfd), i, total = 400, seen_write = 0;
    size_t size, before = 0;
    char *buf;
    ssize_t n;

    (void)state;
    for (i = 0; i < total; i++) {
        write_line(fd, i, 1000);
        size = file_size(fd);
        if (size != before) {
            char last;

            /* a write happened: the file still ends at a line's end */
            seen_write++;
            assert_true(size > before);
            assert_int_equal(pread(rfd, &last, 1, (off_t)size - 1), 1);
            assert_int_equal(last, '\n');
            before = size;
        }
    }
    /* 400 lines of ~1.1 KB do not fit 64 KiB: written as the batch filled */
    assert_true(seen_write >= 400 * 1000 / PG_ACCESS_BATCH_BYTES);
    assert_true(seen_write < total / 10);
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    size = file_size(fd);
    buf = malloc(size);
    assert_non_null(buf);
    n = pread(rfd, buf, size, 0);
    assert_int_equal(n, (ssize_t)size);
    assert_int_equal(check_lines(buf, size, 0), total);
    free(buf);
    pg_access_batch_forget(&batch);
    pg_access_close(fd);
    close(rfd);
}

/* Messages read from a SOCK_SEQPACKET socket (one per write) until none is waiting: each
 * whole lines, at most PIPE_BUF bytes; their count in *writes; the lines in *lines. */
static void read_messages(int s, int first, int *writes, int *lines)
{
    char msg[PG_ACCESS_BATCH_BYTES + 1];
    ssize_t n;

    *writes = *lines = 0;
    while ((n = recv(s, msg, sizeof msg, MSG_DONTWAIT)) > 0) {
        assert_true(n <= PIPE_BUF);
        assert_int_equal(msg[n - 1], '\n');
        *lines += check_lines(msg, (size_t)n, first + *lines);
        (*writes)++;
    }
}

static void test_on_a_socket_each_write_is_whole_lines_of_at_most_pipe_buf(void **state)
{
    int sv[2], i, writes, lines;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    for (i = 0; i < 100; i++)
        write_line(sv[0], i, 150);
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    read_messages(sv[1], 0, &writes, &lines);
    assert_int_equal(lines, 100);
    /* ~350-byte lines: several per write (none past PIPE_BUF, checked per message) */
    assert_true(writes > 1);
    assert_true(writes <= lines / 5);
    pg_access_batch_forget(&batch);
    close(sv[0]);
    close(sv[1]);
}

static void test_a_line_for_another_descriptor_writes_the_held_ones_first(void **state)
{
    char buf[4096];
    int rfd, a = temp_log(&rfd), sv[2], writes, lines;
    ssize_t n;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    write_line(a, 0, 0);
    write_line(a, 1, 0);
    assert_int_equal(file_size(a), 0);
    write_line(sv[0], 2, 0);
    n = pread(rfd, buf, sizeof buf, 0);
    assert_true(n > 0);
    assert_int_equal(check_lines(buf, (size_t)n, 0), 2);
    read_messages(sv[1], 2, &writes, &lines);
    assert_int_equal(lines, 0);
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    read_messages(sv[1], 2, &writes, &lines);
    assert_int_equal(lines, 1);
    pg_access_batch_forget(&batch);
    pg_access_close(a);
    close(rfd);
    close(sv[0]);
    close(sv[1]);
}

static void test_a_failed_write_drops_and_counts_its_lines(void **state)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC), i;
    uint64_t before = pg_access_dropped();

    (void)state;
    if (fd < 0)
        skip();
    for (i = 0; i < 7; i++)
        write_line(fd, i, 0);
    assert_int_equal(pg_access_batch_flush(&batch), -ENOSPC);
    assert_int_equal(pg_access_dropped() - before, 7);
    /* nothing is kept for a retry */
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    assert_int_equal(pg_access_dropped() - before, 7);
    pg_access_batch_forget(&batch);
    close(fd);
}

/* After forget, the descriptor's number may come back as another kind of file: a socket
 * taking a regular file's number gets PIPE_BUF-sized writes, not one large one. */
static void test_a_forgotten_descriptor_number_is_looked_at_again(void **state)
{
    int rfd, fd = temp_log(&rfd), sv[2], i, writes, lines;

    (void)state;
    write_line(fd, 0, 0);
    pg_access_batch_forget(&batch);
    assert_true(file_size(fd) > 0); /* forget flushed */
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_int_equal(dup2(sv[0], fd), fd);
    close(sv[0]);
    for (i = 0; i < 60; i++)
        write_line(fd, i, 200);
    assert_int_equal(pg_access_batch_flush(&batch), 0);
    read_messages(sv[1], 0, &writes, &lines);
    assert_int_equal(lines, 60);
    assert_true(writes > 1);
    pg_access_batch_forget(&batch);
    close(fd);
    close(rfd);
    close(sv[1]);
}

static void test_without_a_batch_each_line_is_written_at_once(void **state)
{
    int sv[2], writes, lines;

    (void)state;
    pg_access_batch_attach(NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    write_line(sv[0], 0, 0);
    write_line(sv[0], 1, 0);
    read_messages(sv[1], 0, &writes, &lines);
    assert_int_equal(lines, 2);
    assert_int_equal(writes, 2);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines_wait_in_the_batch_until_it_is_flushed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_full_batch_is_written_in_whole_lines_before_the_next_line, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_on_a_socket_each_write_is_whole_lines_of_at_most_pipe_buf, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_line_for_another_descriptor_writes_the_held_ones_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_drops_and_counts_its_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_forgotten_descriptor_number_is_looked_at_again,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_a_batch_each_line_is_written_at_once, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
