/* conn_upstream: fuzz_conn's in-process upstream and agents. They listen on Unix sockets the
 * generated configuration routes to, accept every connection the gateway opens, record every
 * byte they get, read it with the strict reference reader (ref_http.c) and answer each
 * complete request (UP_EARLY: each head) the way the run's mode says (UP_*), each answer
 * carrying X-Seq, the arrival order of its request among all upstream connections of the run,
 * so that oracle 2 can tell lost, reordered or doubled answers. Answers may be held (the
 * input's hold bit), split in two writes, replaced by the input's raw bytes, or big (the
 * run's first FC_BIG_ANSWERS: FC_BIG_BODY bytes of fc_big_byte, through a socket with a
 * small send buffer, so that a client that stops reading backs up to the upstream).
 * The upstream (not the agents) may also refuse connections (its listener closed: the
 * socket file stays, so a connect gets ECONNREFUSED), close each one as it accepts it, or
 * accept and never read (deaf), from the run's first connection or its second; or its
 * connects may never complete (FC_UP_BLACKHOLE), which a Unix socket cannot do (a full
 * backlog is EAGAIN at once) but a TCP SYN to a blackhole does: the harness defines connect()
 * (as conn_clock.c does clock_gettime), and a connect to up.sock in that mode swaps the
 * gateway's socket for the read end of a pipe and says EINPROGRESS. libuv then waits for
 * the descriptor to become writable, which a pipe's read end never does (nor does it hang up
 * while the harness holds the write end), so only the gateway's connect_timeout ends it.
 * Owns: fc_up: every accepted descriptor and each connection's in/out buffers, and the holes'
 *   write ends, until the run's teardown closes and frees them.
 * Threads: the fuzzing thread (the only one that connects). Errors: fc_fail on a harness
 *   limit or out of memory. */
#include "conn_harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "conn_input.h"

fc_upstreams_t fc_up = {.listen_fd = {-1, -1, -1}};

static void grow(char **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    *cap = need * 2 < 4096 ? 4096 : need * 2;
    *b = realloc(*b, *cap);
    if (*b == NULL)
        fc_fail("out of memory");
}

void fc_up_close(upconn_t *u, bool by_us)
{
    if (u->fd < 0)
        return;
    close(u->fd);
    u->fd = -1;
    u->by_us = by_us;
}

static void out_add(upconn_t *u, const char *p, size_t n)
{
    grow(&u->out, &u->out_cap, u->out_len + n + 1);
    memcpy(u->out + u->out_len, p, n);
    u->out_len += n;
}

const char *fc_big_bytes(int seq)
{
    static char *made[16];
    size_t i;

    if (seq < 0 || seq >= 16)
        fc_fail("fc_big_bytes: no such pattern");
    if (made[seq] == NULL) {
        made[seq] = malloc(FC_BIG_MAX);
        if (made[seq] == NULL)
            fc_fail("out of memory");
        for (i = 0; i < FC_BIG_MAX; i++)
            made[seq][i] = fc_big_byte(seq, i);
    }
    return made[seq];
}

/* FC_BIG_BODY bytes of answer seq, as they go on the wire (chunked: in 16 KiB chunks). */
static void big_body(upconn_t *u, int seq, bool chunked)
{
    const char *b = fc_big_bytes(seq);
    size_t i, step = chunked ? 16384 : FC_BIG_BODY;

    for (i = 0; i < FC_BIG_BODY; i += step) {
        if (chunked)
            out_add(u, "4000\r\n", 6);
        out_add(u, b + i, step);
        if (chunked)
            out_add(u, "\r\n", 2);
    }
    if (chunked)
        out_add(u, "0\r\n\r\n", 5);
}

/* what an answer owes to its request */
enum { ANS_HEAD = 1, ANS_COND = 2 };

/* The answer to request k of u (how: ANS_HEAD it was a HEAD; ANS_COND it was conditional,
 * If-None-Match or If-Modified-Since: the answer is a 304 that keeps the Content-Length a
 * 200 would have had, and no body, as RFC 9110 8.6 and 15.4.5 allow). */
static void answer(upconn_t *u, int k, int how)
{
    char head[256];
    const char *body = "", *hv = "", *status = "200 OK";
    char cl[64];
    bool head_req = how & ANS_HEAD, cond = how & ANS_COND;
    bool big = fc_up.big && u->seq[k] < FC_BIG_ANSWERS && !cond;
    int len;

    u->answered[k] = true;
    switch (fc_up.answer_kind) {
    case UP_CHUNKED:
        hv = "Transfer-Encoding: chunked\r\n";
        body = "6\r\nhello\n\r\n0\r\n\r\n";
        break;
    case UP_CLOSE:
        hv = "Content-Length: 6\r\nConnection: close\r\n";
        body = "hello\n";
        u->close_after = true;
        break;
    case UP_EOF:
        hv = "Connection: close\r\n";
        body = "hello\n";
        u->close_after = true;
        break;
    case UP_RAW:
        out_add(u, (const char *)fc_up.raw, fc_up.raw_len);
        return;
    default:
        hv = "Content-Length: 6\r\n";
        body = "hello\n";
        break;
    }
    if (big && fc_up.answer_kind != UP_CHUNKED && fc_up.answer_kind != UP_EOF) {
        snprintf(cl, sizeof cl, "Content-Length: %d\r\n%s", FC_BIG_BODY,
                 fc_up.answer_kind == UP_CLOSE ? "Connection: close\r\n" : "");
        hv = cl;
    }
    if (cond) {
        status = "304 Not Modified";
        if (fc_up.answer_kind == UP_CHUNKED)
            hv = "Content-Length: 6\r\n";
    }
    if (fc_up.answer_kind == UP_100)
        out_add(u, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    len = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nX-Seq: %d\r\n%s\r\n", status, u->seq[k], hv);
    out_add(u, head, (size_t)len);
    if (fc_up.split && u->out_pause == 0)
        u->out_pause = u->out_len;
    if (head_req || cond)
        return;
    if (big)
        big_body(u, u->seq[k], fc_up.answer_kind == UP_CHUNKED);
    else
        out_add(u, body, strlen(body));
}

static void owe(upconn_t *u, int k, int how)
{
    if (fc_up.hold || u->owed) {
        u->owed_req[u->owed++] = k * 4 + how;
        return;
    }
    answer(u, k, how);
}

/* How request (p, m) is answered: ANS_*. */
static int how(const char *p, const ref_msg_t *m)
{
    return (fc_is_head(p, m) ? ANS_HEAD : 0) |
           (ref_find(p, m, "if-none-match") || ref_find(p, m, "if-modified-since") ? ANS_COND : 0);
}

bool fc_is_head(const char *p, const ref_msg_t *m)
{
    return m->method_len == 4 && memcmp(p + m->method_off, "HEAD", 4) == 0;
}

/* Requests that are complete (or, UP_EARLY, whose head is) get their answer. */
static void up_requests(upconn_t *u)
{
    static ref_msg_t m;

    while (u->fd >= 0 && u->parsed < u->in_len) {
        const char *p = u->in + u->parsed;

        if (u->nstart == u->nreq) { /* bytes of a request not counted yet */
            if (u->nstart == MAX_REQ)
                return;
            u->seq[u->nstart++] = fc_up.seq_next++;
        }
        ref_parse_request(p, u->in_len - u->parsed, &m);
        if (m.state == REF_MORE && fc_up.answer_kind == UP_EARLY && m.head_done && !u->early_done &&
            u->role == 0) {
            u->early_done = true;
            owe(u, u->nreq, how(p, &m));
        }
        if (m.state != REF_DONE)
            return; /* the rest later, or never (oracle 1 reads it at the end) */
        if (fc_up.answer_kind == UP_SECOND && u->nreq == 1) {
            u->nreq++;
            fc_up_close(u, true);
            return;
        }
        if (!u->early_done || u->role != 0)
            owe(u, u->nreq, how(p, &m));
        u->early_done = false;
        u->nreq++;
        u->parsed += m.end;
    }
}

static bool up_write(upconn_t *u)
{
    size_t until = u->out_pause > u->out_off ? u->out_pause : u->out_len;
    ssize_t r;

    if (u->fd < 0 || u->out_off == u->out_len)
        return false;
    r = send(u->fd, u->out + u->out_off, until - u->out_off, MSG_NOSIGNAL);
    if (r < 0) {
        if (errno == EAGAIN)
            return false;
        fc_up_close(u, false); /* the gateway closed it: EPIPE */
        return true;
    }
    u->out_off += (size_t)r;
    if (u->out_off == u->out_pause)
        u->out_pause = 0; /* the rest on the next round, after the gateway has run */
    if (u->out_off == u->out_len && u->close_after)
        fc_up_close(u, true);
    return true;
}

static bool misbehaving(void)
{
    return fc_up.conn_mode != FC_UP_OK && (!fc_up.conn_second || fc_up.accepted > 0);
}

void fc_up_begin(void)
{
    fc_up.accepted = 0;
    fc_up.woken = false;
    if (fc_up.conn_mode == FC_UP_REFUSE && misbehaving()) {
        close(fc_up.listen_fd[0]);
        fc_up.listen_fd[0] = -1;
        fc_up.refusing = true;
    }
}

void fc_up_end(void)
{
    if (fc_up.refusing)
        fc_up.listen_fd[0] = fc_unix_listener("up.sock");
    fc_up.refusing = false;
}

static void accept_all(int i)
{
    int fd;

    while (fc_up.listen_fd[i] >= 0 &&
           (fd = accept4(fc_up.listen_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        upconn_t *u = &fc_up.c[fc_up.n];
        bool odd = i == 0 && misbehaving();

        if (fc_up.n == MAX_UPC)
            fc_fail("more upstream connections in one run than tracked");
        memset(u, 0, sizeof *u);
        u->fd = fd;
        u->role = i;
        fc_up.n++;
        if (fc_up.big) {
            int sz = 32768;

            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        }
        if (i == 0)
            fc_up.accepted++;
        if (odd && fc_up.conn_mode == FC_UP_CLOSE)
            fc_up_close(u, true);
        if (odd && fc_up.conn_mode == FC_UP_DEAF && !fc_up.woken)
            u->deaf = true;
        if (i == 0 && fc_up.conn_mode == FC_UP_REFUSE && misbehaving()) {
            /* from the second connection on: those queued behind the first are reset */
            close(fc_up.listen_fd[0]);
            fc_up.listen_fd[0] = -1;
            fc_up.refusing = true;
        }
    }
}

void fc_up_wake(void)
{
    int i;

    fc_up.woken = true;
    for (i = 0; i < fc_up.n; i++)
        fc_up.c[i].deaf = false;
}

bool fc_up_stalled(void)
{
    int i;

    for (i = 0; i < fc_up.n; i++)
        if (fc_up.c[i].deaf)
            return true;
    for (i = 0; i < fc_up.nholes; i++)
        if (fc_up_hole_open(&fc_up.holes[i]))
            return true;
    return false;
}

/* ---------------- connects that never complete ---------------- */

int connect(int fd, const struct sockaddr *sa, socklen_t len);

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

/* sa names the upstream's socket (not an agent's) */
static bool to_upstream(const struct sockaddr *sa, socklen_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)sa;
    const char *name;

    if (sa == NULL || sa->sa_family != AF_UNIX ||
        len <= (socklen_t)offsetof(struct sockaddr_un, sun_path))
        return false;
    name = strrchr(sun->sun_path, '/');
    return strcmp(name ? name + 1 : sun->sun_path, "up.sock") == 0;
}

bool fc_up_hole_open(const fc_hole_t *h)
{
    struct pollfd pf = {.fd = h->wfd, .events = POLLOUT};

    /* a pipe's write end polls POLLERR once no read end is left open */
    return h->wfd >= 0 && poll(&pf, 1, 0) >= 0 && !(pf.revents & POLLERR);
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static connect_fn real;
    fc_hole_t *h, *prev;
    int p[2];

    if (real == NULL) {
        real = (connect_fn)dlsym(RTLD_NEXT, "connect");
        if (real == NULL)
            fc_fail("connect: no real function behind the harness's");
    }
    if (fc_up.conn_mode != FC_UP_BLACKHOLE || !to_upstream(sa, len) ||
        (fc_up.conn_second && fc_up.connects++ == 0))
        return real(fd, sa, len);
    /* a run has one client connection, answered at most once after a connect timed out */
    if (fc_up.nholes == FC_MAX_HOLES)
        fc_finding("connects that never complete, again and again for one client connection",
                   NULL);
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        fc_fail("pipe2");
    if (dup3(p[0], fd, O_CLOEXEC) < 0) /* fd is now the pipe's read end: never writable */
        fc_fail("dup3");
    close(p[0]);
    prev = fc_up.nholes ? &fc_up.holes[fc_up.nholes - 1] : NULL;
    h = &fc_up.holes[fc_up.nholes++];
    h->wfd = p[1];
    h->made_ms = fc_clock_ms();
    /* The gateway answers a request at most once and then closes the client's connection: a
     * connect after one that has just timed out (let go of) can only be its request again */
    h->retry = prev && prev->made_ms + FC_CONNECT_MS <= h->made_ms && !fc_up_hole_open(prev);
    h->expired = h->client_open = false;
    if (h->retry && prev->retry)
        fc_finding("a request was tried a third time after connects that never completed", NULL);
    errno = EINPROGRESS;
    return -1;
}

void fc_up_holes_close(void)
{
    int i;

    for (i = 0; i < fc_up.nholes; i++)
        if (fc_up.holes[i].wfd >= 0) {
            close(fc_up.holes[i].wfd);
            fc_up.holes[i].wfd = -1;
        }
    fc_up.nholes = 0;
    fc_up.connects = 0;
}

bool fc_up_service(void)
{
    bool did = false;
    int i, before = fc_up.n;

    for (i = 0; i < 3; i++)
        accept_all(i);
    did = fc_up.n != before;
    for (i = 0; i < fc_up.n; i++) {
        upconn_t *u = &fc_up.c[i];
        char buf[8192];
        ssize_t r;

        if (u->deaf)
            continue;
        while (u->fd >= 0 && (r = read(u->fd, buf, sizeof buf)) != 0) {
            if (r < 0) {
                if (errno != EAGAIN)
                    fc_up_close(u, false);
                break;
            }
            grow(&u->in, &u->in_cap, u->in_len + (size_t)r);
            memcpy(u->in + u->in_len, buf, (size_t)r);
            u->in_len += (size_t)r;
            did = true;
        }
        if (u->fd >= 0 && r == 0) {
            u->eof = true;
            fc_up_close(u, false);
            did = true;
        }
        up_requests(u);
        if (!fc_up.hold)
            while (u->owed && u->fd >= 0) {
                int k = u->owed_req[0];

                memmove(u->owed_req, u->owed_req + 1, (size_t)--u->owed * sizeof u->owed_req[0]);
                answer(u, k / 4, k & 3);
            }
        did |= up_write(u);
    }
    return did;
}
