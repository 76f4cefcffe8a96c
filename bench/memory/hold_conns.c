/* hold_conns: open N keep-alive HTTP/1.1 connections to a server, make one request on each
 * (so that each is an idle keep-alive connection after a completed exchange, as a browser's
 * or a client pool's would be), then hold them all open and idle.
 *   hold_conns --connect 127.0.0.1:PORT [-n N] [--path /] [--hold S] [--batch B] [--wait W]
 * At most B (default 256) connections are connecting or waiting for their response at once,
 * so the server's accept backlog is never the limit. Prints, on stdout:
 *   "held: N served, F failed, P pending" once every connection is served or has failed, or
 *   after W seconds (default 20; a connection the server never accepts stays pending), then
 *   holds for S seconds (default 10; the measuring script reads the server's memory
 *   meanwhile), then
 *   "after S s: K of N still open" (a connection the server closed reads EOF).
 * The response must carry Content-Length (no chunked bodies). Raises RLIMIT_NOFILE to its
 * hard limit itself. Exit 0 when every connection was served and is still open, 1 otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

enum { HC_IDLE, HC_CONNECTING, HC_SENT, HC_SERVED, HC_FAILED };

typedef struct hc_conn {
    int fd;
    int state;
    char *buf; /* response bytes so far; only while HC_SENT */
    size_t len;
} hc_conn_t;

#define HC_BUF 8192

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Is the response in c->buf complete? -1: malformed or not 2xx/3xx, 0: not yet, 1: yes. */
static int response_done(const hc_conn_t *c)
{
    const char *end, *p;
    size_t head, cl = 0;
    int status;

    if (c->len < 12)
        return 0;
    end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->len >= HC_BUF - 1 ? -1 : 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1 || status < 200 || status >= 400)
        return -1;
    head = (size_t)(end - c->buf) + 4;
    for (p = c->buf; p < end; p++) {
        if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            cl = strtoul(p + 15, NULL, 10);
            break;
        }
    }
    return c->len >= head + cl ? 1 : 0;
}

static int open_one(hc_conn_t *c, const struct sockaddr_in *sa, int ep)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS)
        return -errno;
    c->state = HC_CONNECTING;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0 ? -errno : 0;
}

/* One readiness event on c: finish the connect and send, or read the response. Returns
 * true when c left the active set (served or failed). */
static bool step(hc_conn_t *c, int ep, const char *req, size_t reqlen)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    int err = 0, r;
    socklen_t elen = sizeof err;
    ssize_t n;

    if (c->state == HC_CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0)
            goto fail;
        /* a request of a few dozen bytes fits any fresh socket's send buffer */
        if (write(c->fd, req, reqlen) != (ssize_t)reqlen)
            goto fail;
        c->buf = malloc(HC_BUF);
        if (c->buf == NULL || epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
            goto fail;
        c->len = 0;
        c->state = HC_SENT;
        return false;
    }
    n = read(c->fd, c->buf + c->len, HC_BUF - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n <= 0)
        goto fail;
    c->len += (size_t)n;
    r = response_done(c);
    if (r == 0)
        return false;
    if (r < 0)
        goto fail;
    free(c->buf);
    c->buf = NULL;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->state = HC_SERVED;
    return true;

fail:
    free(c->buf);
    c->buf = NULL;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->state = HC_FAILED;
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: hold_conns --connect IPV4:PORT [-n N] [--path P] [--hold S] "
                    "[--batch B] [--wait W]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *target = NULL, *path = "/";
    long n = 10000, hold = 10, batch = 256, wait = 20;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct epoll_event evs[256];
    struct rlimit rl;
    char host[64], req[512];
    hc_conn_t *conns;
    long next = 0, active = 0, served = 0, failed = 0, open_after = 0, i;
    const char *colon;
    double deadline;
    int ep, reqlen, k, nev;

    for (i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--connect") == 0)
            target = argv[++i];
        else if (strcmp(argv[i], "-n") == 0)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "--path") == 0)
            path = argv[++i];
        else if (strcmp(argv[i], "--hold") == 0)
            hold = atol(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atol(argv[++i]);
        else if (strcmp(argv[i], "--wait") == 0)
            wait = atol(argv[++i]);
        else
            usage();
    }
    colon = target ? strrchr(target, ':') : NULL;
    if (colon == NULL || (size_t)(colon - target) >= sizeof(host) || n < 1 || batch < 1 ||
        hold < 0 || wait < 1)
        usage();
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        usage();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)n + 16 > rl.rlim_cur) {
        fprintf(stderr, "hold_conns: %ld connections need more descriptors than the limit %llu\n",
                n, (unsigned long long)rl.rlim_cur);
        return 1;
    }
    reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hold_conns\r\n\r\n",
                      path, target);
    if (reqlen <= 0 || (size_t)reqlen >= sizeof req)
        usage();
    conns = calloc((size_t)n, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || ep < 0) {
        perror("hold_conns");
        return 1;
    }
    for (i = 0; i < n; i++)
        conns[i].fd = -1;

    deadline = now_s() + (double)wait;
    while ((next < n || active > 0) && now_s() < deadline) {
        while (next < n && active < batch) {
            hc_conn_t *c = &conns[next++];
            if (open_one(c, &sa, ep) < 0) {
                c->state = HC_FAILED;
                failed++;
                continue;
            }
            active++;
        }
        nev = epoll_wait(ep, evs, 256, 1000);
        for (k = 0; k < nev; k++) {
            hc_conn_t *c = evs[k].data.ptr;
            if (step(c, ep, req, (size_t)reqlen)) {
                active--;
                if (c->state == HC_SERVED)
                    served++;
                else
                    failed++;
            }
        }
    }
    printf("held: %ld served, %ld failed, %ld pending\n", served, failed, n - served - failed);
    fflush(stdout);

    sleep((unsigned)hold);
    for (i = 0; i < n; i++) {
        char b;
        if (conns[i].state != HC_SERVED)
            continue;
        /* EAGAIN: open and idle; 0: the server closed it; data: the server said something */
        if (recv(conns[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN)
            open_after++;
    }
    printf("after %ld s: %ld of %ld still open\n", hold, open_after, n);
    fflush(stdout);
    for (i = 0; i < n; i++) {
        free(conns[i].buf);
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    free(conns);
    close(ep);
    return served == n && open_after == n ? 0 : 1;
}
