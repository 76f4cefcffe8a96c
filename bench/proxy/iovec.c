/* iovec: what a writev's iovec count costs on loopback TCP, the question behind sending a
 * proxied head as one piece (pg_head's flatten). One connected 127.0.0.1 pair, a reader
 * thread draining it; the writer sends the same 148-byte request head ROUNDS x N times,
 * alternately as 1 iovec (write(2)) and as the 6 pieces profgate used to send it in
 * ("GET", " ", "/", " HTTP/1.1\r\n", the Host line, the added lines); each round is timed
 * with the writer thread's CPU clock, which includes the loopback receive work the kernel
 * does in the writer's context. Prints the median ns of CPU per call for each shape.
 *   cc -O2 -o iovec bench/proxy/iovec.c -lpthread && ./iovec [N] [ROUNDS]
 * Not a ctest: a figure for bench/RESULTS.md, noisy on a shared machine (use the medians). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEAD_BYTES 148
#define MAX_ROUNDS 64

static int rfd;

static void *drain(void *arg)
{
    char b[65536];

    (void)arg;
    while (read(rfd, b, sizeof b) > 0)
        ;
    return NULL;
}

static double thread_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* ns of writer CPU per call, n calls of iov[0..k) */
static double one_round(int fd, const struct iovec *iov, int k, long n)
{
    double t0 = thread_ns();
    long i;

    for (i = 0; i < n; i++)
        if (writev(fd, iov, k) != HEAD_BYTES) {
            perror("writev");
            exit(1);
        }
    return (thread_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    static const int piece[6] = {3, 1, 1, 11, 23, 109};
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7, one = 1, ls, w, i, r, off = 0;
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    double t1[MAX_ROUNDS], t6[MAX_ROUNDS];
    static char head[HEAD_BYTES];
    struct iovec v1, v6[6];
    pthread_t th;

    if (n <= 0 || rounds <= 0 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: iovec [N > 0] [ROUNDS 1..%d]\n", MAX_ROUNDS);
        return 2;
    }
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) < 0 || listen(ls, 1) < 0) {
        perror("listen");
        return 1;
    }
    w = socket(AF_INET, SOCK_STREAM, 0);
    if (w < 0 || connect(w, (struct sockaddr *)&a, sizeof a) < 0 ||
        (rfd = accept(ls, NULL, NULL)) < 0) {
        perror("connect");
        return 1;
    }
    setsockopt(w, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as profgate's sockets */
    if (pthread_create(&th, NULL, drain, NULL) != 0)
        return 1;
    memset(head, 'x', sizeof head);
    v1.iov_base = head;
    v1.iov_len = sizeof head;
    for (i = 0; i < 6; i++) {
        v6[i].iov_base = head + off;
        v6[i].iov_len = (size_t)piece[i];
        off += piece[i];
    }
    one_round(w, &v1, 1, n / 10); /* warm-up */
    for (r = 0; r < rounds; r++) {
        t1[r] = one_round(w, &v1, 1, n);
        t6[r] = one_round(w, v6, 6, n);
    }
    qsort(t1, (size_t)rounds, sizeof t1[0], cmp);
    qsort(t6, (size_t)rounds, sizeof t6[0], cmp);
    printf("148-byte writes on loopback TCP, %d rounds x %ld calls, median CPU ns per call:\n"
           "  1 iovec  %.0f\n  6 iovecs %.0f\n  difference per extra iovec %.0f\n",
           rounds, n, t1[rounds / 2], t6[rounds / 2], (t6[rounds / 2] - t1[rounds / 2]) / 5);
    shutdown(w, SHUT_WR);
    pthread_join(th, NULL);
    return 0;
}
