/* fuzz_conn: libFuzzer target for the gateway's connection state machine (pg_conn, pg_resp,
 * pg_upstream) as it runs: one real worker (pg_worker_start on a generated configuration),
 * its libuv loop driven from this thread, a client on one end of a socketpair handed to
 * pg_conn_accept, and in-process upstream and agents on Unix sockets the configuration routes
 * to, which record every byte they get and answer each complete request.
 *
 * Why the loop runs here: uv_thread_create is wrapped at link time (-Wl,--wrap, see
 * CMakeLists.txt), so pg_worker_start builds its worker without starting a thread, and this
 * harness runs the loop until nothing is left to do after each piece of client bytes. So a
 * piece is read by the gateway as one read (a socketpair delivers at once) and the state
 * machine sees exactly the splits the input asks for, run after run.
 *
 * Input: a 3-byte header, then n (length, control) pairs, then the client's bytes.
 *   [0] mode: bits 0-2 how upstreams answer (see enum below); bit 3 each answer leaves in two
 *       writes (head, then the rest after the gateway has run); bits 4-5 how the client ends
 *       (0 stays open until all is quiet, 1 shutdown(SHUT_WR), 2 close, 3 close with RST)
 *   [1] n: pieces (low nibble); the last piece is whatever bytes are left after them
 *   [2] raw mode: the upstreams' answer is the input's last [2] bytes
 *   per piece: length (0 = 256), control: bit 0 hold the upstreams' answers while this
 *       piece goes (until a piece without it, or the end); bit 1 after this piece is sent,
 *       before the gateway runs, the upstream closes its idle connections (stale pool)
 *
 * Oracles beyond ASan/UBSan:
 * 1. No smuggling: what each upstream connection received, read by a strict RFC 9112 reader
 *    (ref_http.c), is a sequence of complete requests, the last one possibly cut short;
 *    taken in arrival order they are the client's requests as the same reader parses the
 *    client's bytes, one for one and in order (one retry allowed: a request without a body
 *    on a pooled connection the upstream closed): same method, the target in origin form
 *    (agents: /debug/pprof + the rest), the same framing and body bytes, no field the
 *    client did not send (but X-Forwarded-*, Via, and Host when the client sent none), every
 *    field it sent that is not hop-by-hop. A cut request is a prefix of the client's, and
 *    never holds a byte from the first one the reader refuses on.
 * 2. Answers: what the client got reads as whole responses (a cut only at a close), also
 *    when an upstream's answer is any bytes (UP_RAW: bad framing must not reach the client,
 *    the gateway answers 502 or cuts the response; PG_FUZZ_KNOWN=resp tolerates it). With
 *    well-behaved upstreams and a client that stays open: if the gateway did not close, one
 *    final response per complete request; in any case every answer an upstream sent reaches
 *    the client, whole and in order (each carries X-Seq, the upstream's count).
 * 3. No leak, nothing left behind: after the client and the upstreams have gone, the worker
 *    has no connection, the process's connection count is 0, the generation holds only the
 *    worker's reference, pools are empty, every pg_buf is back, no agent slot is taken, the
 *    loop has only the worker's own handles and no request.
 * 4. Progress: the loop settles (no busy loop) within a bound.
 * The oracles were checked to fail: a pooled connection left open, a response byte dropped,
 * a byte inserted upstream, a connection slot not given back each make a finding.
 *
 * Env: FUZZ_CONN_TRACE (what each run sent, what every upstream connection and the client
 * got, on stderr: `FUZZ_CONN_TRACE=1 fuzz_conn FILE` explains a finding); PG_FUZZ_KNOWN
 * (ref_http.h: known findings to fuzz on past). Seeds: corpus/conn/, made by seed_conn.py;
 * the files named after a finding are its reproducers. Each run takes ~0.3 ms with ASan. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <uv.h>

#include "pg_config.h"
#include "pg_conn.h"
#include "pg_log.h"
#include "pg_policy.h"
#include "pg_upstream.h"
#include "pg_worker.h"
#include "ref_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);
int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);

/* how upstreams (and agents) answer each complete request */
enum {
    UP_CL,      /* Content-Length, keep-alive */
    UP_CHUNKED, /* chunked, keep-alive */
    UP_CLOSE,   /* Content-Length and Connection: close, then close */
    UP_EOF,     /* no length: the body ends at close */
    UP_SECOND,  /* the first request on a connection answered (keep-alive); at the second,
                   close without answering */
    UP_EARLY,   /* answered once the head is in, before the body */
    UP_100,     /* 100 Continue, then Content-Length */
    UP_RAW,     /* the input's bytes, whatever they are */
};

#define MAX_UPC 1024 /* upstream connections per run (one per request when they close) */
#define MAX_REQ 512  /* requests tracked per upstream connection, and of the client */
#define FZ_MAX_INPUT 8192
#define SETTLE_ROUNDS 20000

typedef struct upconn {
    int fd;   /* -1: closed (by us or after the gateway's EOF) */
    int role; /* 0 upstream, 1 agent of "app", 2 agent of "svc" */
    char *in;
    size_t in_len, in_cap;
    size_t parsed;    /* bytes of the complete requests read so far */
    int nreq;         /* complete requests */
    int nstart;       /* requests begun (complete or not) */
    int seq[MAX_REQ]; /* arrival order of each begun request (global) */
    bool answered[MAX_REQ];
    bool early_done;  /* UP_EARLY: the request in progress was answered */
    bool eof;         /* the gateway closed it */
    bool by_us;       /* we closed it */
    bool close_after; /* close once out is written */
    int owed;         /* answers held back (hold), to send in order */
    int owed_req[MAX_REQ];
    char *out;
    size_t out_len, out_off, out_pause; /* pause: write up to here, the rest later */
} upconn_t;

static pg_worker_t *w;
static pg_cfgref_t *cref;
static pg_conn_limit_t limit;
static int listen_fd[3] = {-1, -1, -1}; /* upstream, agent 1, agent 2 */
static bool capture_thread;
static int base_handles;
static char dir[64];
static bool trace; /* FUZZ_CONN_TRACE set: what each run did, on stderr */

/* this run */
static upconn_t upc[MAX_UPC];
static int nupc;
static int seq_next;
static int mode, answer_kind;
static bool split_answers, hold;
static const uint8_t *raw;
static size_t raw_len;
static int client_fd = -1;
static char cl_in[1 << 16];
static size_t cl_in_len;
static bool cl_eof, cl_overflow;

int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg)
{
    if (capture_thread) { /* the worker's thread: its loop runs here instead */
        memset(tid, 0, sizeof *tid);
        return 0;
    }
    return __real_uv_thread_create(tid, entry, arg);
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_conn: %s\n", what);
    abort();
}

/* ---------------- set-up ---------------- */

static int unix_listener(const char *name)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", dir, name);
    unlink(sun.sun_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 128) < 0)
        fail("cannot listen on a unix socket");
    return fd;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
}

static int handles(void)
{
    int n = 0;

    uv_walk(&w->loop, count_handle, &n);
    return n;
}

static void settle(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[128];
    pg_config_t *cfg;
    pg_errlist_t errs;
    FILE *f;
    int lfd;

    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as profgate's main: writes to a closed peer fail with EPIPE */
    snprintf(dir, sizeof dir, "/tmp/fuzz_conn.XXXXXX");
    if (mkdtemp(dir) == NULL)
        fail("mkdtemp");
    if (getenv("PG_LOG_LEVEL") == NULL)
        pg_log_set_level(PG_LOG_ERROR); /* quiet: thousands of 4xx and 502 a second */
    trace = getenv("FUZZ_CONN_TRACE") != NULL;
    ref_known_from_env();
    snprintf(path, sizeof path, "%s/fuzz.toml", dir);
    f = fopen(path, "w");
    if (f == NULL)
        fail("cannot write the config");
    /* small limits, so that short inputs reach 413 and 431; long timeouts, so that no timer
     * fires during a run (the runs are deterministic) */
    fputs("[server]\nlisten = \"127.0.0.1:1\"\nmax_header_bytes = \"1KiB\"\n"
          "max_body_bytes = 512\nheader_timeout = \"1h\"\nidle_timeout = \"1h\"\n"
          "metrics_path = \"/metrics\"\n"
          "[[upstream]]\nname = \"app\"\naddress = \"unix:up.sock\"\nagent = \"unix:ag1.sock\"\n"
          "timeout = \"1h\"\nconnect_timeout = \"1h\"\npool_idle_timeout = \"1h\"\n"
          "[[upstream]]\nname = \"svc\"\naddress = \"unix:up.sock\"\nagent = \"unix:ag2.sock\"\n"
          "timeout = \"1h\"\nconnect_timeout = \"1h\"\npool_idle_timeout = \"1h\"\npool_size = 1\n"
          "[[upstream]]\nname = \"api\"\naddress = \"unix:up.sock\"\nagent = \"unix:ag1.sock\"\n"
          "timeout = \"1h\"\nconnect_timeout = \"1h\"\npool_idle_timeout = \"1h\"\n"
          "[upstream.pprof]\nenabled = false\n"
          "[[route]]\nprefix = \"/\"\nupstream = \"app\"\n"
          "[[route]]\nprefix = \"/svc\"\nupstream = \"svc\"\n"
          "[[route]]\nprefix = \"/api/\"\nupstream = \"api\"\n"
          "[pprof]\npath = \"/debug/pprof\"\nmax_seconds = 60\n",
          f);
    fclose(f);
    memset(&errs, 0, sizeof errs);
    if (pg_config_load(path, &cfg, &errs) < 0)
        fail("the config did not load");
    unlink(path);
    cref = pg_cfgref_new(cfg, NULL);
    if (cref == NULL)
        fail("pg_cfgref_new");
    listen_fd[0] = unix_listener("up.sock");
    listen_fd[1] = unix_listener("ag1.sock");
    listen_fd[2] = unix_listener("ag2.sock");
    lfd = unix_listener("gateway.sock"); /* polled by the worker, never connected to */
    pg_conn_limit_init(&limit, 1000);
    capture_thread = true;
    if (pg_worker_start(1, lfd, -1, cref, &limit, &w) < 0)
        fail("pg_worker_start");
    capture_thread = false;
    settle();
    base_handles = handles();
    return 0;
}

/* ---------------- the upstreams ---------------- */

static void grow(char **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    *cap = need * 2 < 4096 ? 4096 : need * 2;
    *b = realloc(*b, *cap);
    if (*b == NULL)
        fail("out of memory");
}

static void up_close(upconn_t *u, bool by_us)
{
    if (u->fd < 0)
        return;
    close(u->fd);
    u->fd = -1;
    u->by_us = by_us;
}

static void out_add(upconn_t *u, const char *p, size_t n)
{
    u->out = realloc(u->out, u->out_len + n + 1);
    if (u->out == NULL)
        fail("out of memory");
    memcpy(u->out + u->out_len, p, n);
    u->out_len += n;
}

/* The answer to request k of u (head_req: it was a HEAD). */
static void answer(upconn_t *u, int k, bool head_req)
{
    char head[256];
    const char *body = "", *hv = "";
    int len;

    u->answered[k] = true;
    switch (answer_kind) {
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
        out_add(u, (const char *)raw, raw_len);
        return;
    default:
        hv = "Content-Length: 6\r\n";
        body = "hello\n";
        break;
    }
    if (answer_kind == UP_100)
        out_add(u, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    len = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nX-Seq: %d\r\n%s\r\n", u->seq[k], hv);
    out_add(u, head, (size_t)len);
    if (split_answers && u->out_pause == 0)
        u->out_pause = u->out_len;
    if (!head_req)
        out_add(u, body, strlen(body));
}

static void owe(upconn_t *u, int k, bool head_req)
{
    if (hold || u->owed) {
        u->owed_req[u->owed++] = k * 2 + head_req;
        return;
    }
    answer(u, k, head_req);
}

/* RFC 9110 9.2.2 */
static bool idempotent(const char *p, const ref_msg_t *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    size_t i;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (m->method_len == strlen(ok[i]) && memcmp(p + m->method_off, ok[i], m->method_len) == 0)
            return true;
    return false;
}

static bool is_head(const char *p, const ref_msg_t *m)
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
            u->seq[u->nstart++] = seq_next++;
        }
        ref_parse_request(p, u->in_len - u->parsed, &m);
        if (m.state == REF_MORE && answer_kind == UP_EARLY && m.head_done && !u->early_done &&
            u->role == 0) {
            u->early_done = true;
            owe(u, u->nreq, is_head(p, &m));
        }
        if (m.state != REF_DONE)
            return; /* the rest later, or never (oracle 1 reads it at the end) */
        if (answer_kind == UP_SECOND && u->nreq == 1) {
            u->nreq++;
            up_close(u, true);
            return;
        }
        if (!u->early_done || u->role != 0)
            owe(u, u->nreq, is_head(p, &m));
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
        up_close(u, false); /* the gateway closed it: EPIPE */
        return true;
    }
    u->out_off += (size_t)r;
    if (u->out_off == u->out_pause)
        u->out_pause = 0; /* the rest on the next round, after the gateway has run */
    if (u->out_off == u->out_len && u->close_after)
        up_close(u, true);
    return true;
}

static bool up_service(void)
{
    bool did = false;
    int i, fd;

    for (i = 0; i < 3; i++)
        while ((fd = accept4(listen_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            if (nupc == MAX_UPC)
                fail("more upstream connections in one run than tracked");
            memset(&upc[nupc], 0, sizeof upc[nupc]);
            upc[nupc].fd = fd;
            upc[nupc].role = i;
            nupc++;
            did = true;
        }
    for (i = 0; i < nupc; i++) {
        upconn_t *u = &upc[i];
        char buf[8192];
        ssize_t r;

        while (u->fd >= 0 && (r = read(u->fd, buf, sizeof buf)) != 0) {
            if (r < 0) {
                if (errno != EAGAIN)
                    up_close(u, false);
                break;
            }
            grow(&u->in, &u->in_cap, u->in_len + (size_t)r);
            memcpy(u->in + u->in_len, buf, (size_t)r);
            u->in_len += (size_t)r;
            did = true;
        }
        if (u->fd >= 0 && r == 0) {
            u->eof = true;
            up_close(u, false);
            did = true;
        }
        up_requests(u);
        if (!hold)
            while (u->owed && u->fd >= 0) {
                int k = u->owed_req[0];

                memmove(u->owed_req, u->owed_req + 1, (size_t)--u->owed * sizeof u->owed_req[0]);
                answer(u, k / 2, k & 1);
            }
        did |= up_write(u);
    }
    return did;
}

/* ---------------- the client ---------------- */

static bool client_service(void)
{
    bool did = false;
    ssize_t r;

    while (client_fd >= 0 && !cl_eof) {
        if (cl_in_len == sizeof cl_in) { /* more than any answer here: keep reading, count */
            char sink[4096];

            r = read(client_fd, sink, sizeof sink);
            if (r > 0)
                cl_overflow = true;
        } else {
            r = read(client_fd, cl_in + cl_in_len, sizeof cl_in - cl_in_len);
            if (r > 0)
                cl_in_len += (size_t)r;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            cl_eof = true;
            did = true;
            break;
        }
        if (r < 0)
            break;
        did = true;
    }
    return did;
}

/* ---------------- the loop ---------------- */

/* Nothing ready in the loop: no pending callback, closing handle or due timer
 * (uv_backend_timeout 0), and no event on its epoll descriptor. */
static bool loop_quiet(void)
{
    struct pollfd pf = {.fd = uv_backend_fd(&w->loop), .events = POLLIN};

    return uv_backend_timeout(&w->loop) != 0 && poll(&pf, 1, 0) == 0;
}

/* Run the gateway, the upstreams and the client until none of them has anything to do. */
static void settle(void)
{
    int i;

    for (i = 0; i < SETTLE_ROUNDS; i++) {
        bool did;

        uv_run(&w->loop, UV_RUN_NOWAIT);
        did = up_service();
        did |= client_service();
        if (!did && loop_quiet())
            return;
    }
    fail("the loop did not settle (busy loop?)");
}

/* Returns the bytes that went (fewer when the gateway has closed). */
static size_t client_send(const uint8_t *p, size_t n)
{
    size_t done = 0;
    int tries = 0;

    while (done < n && client_fd >= 0) {
        ssize_t r = send(client_fd, p + done, n - done, MSG_NOSIGNAL);

        if (r < 0) {
            if (errno != EAGAIN)
                break; /* the gateway closed: the rest cannot go */
            if (++tries > 100)
                fail("the client cannot send (gateway not reading, ever)");
            settle();
            continue;
        }
        done += (size_t)r;
    }
    return done;
}

/* ---------------- oracle 1: what the upstreams received ---------------- */

typedef struct creq { /* a request as the client sent it (the reference's reading) */
    size_t off;
    ref_msg_t m;
} creq_t;

static creq_t creqs[MAX_REQ + 1];
static int ncreq; /* complete ones; creqs[ncreq] is the tail when tail_len > 0 */
static size_t tail_len;

static void parse_client(const uint8_t *p, size_t n)
{
    size_t off = 0;

    ncreq = 0;
    tail_len = 0;
    while (off < n && ncreq < MAX_REQ) {
        creqs[ncreq].off = off;
        ref_parse_request((const char *)p + off, n - off, &creqs[ncreq].m);
        if (creqs[ncreq].m.state != REF_DONE) {
            tail_len = n - off;
            return;
        }
        off += creqs[ncreq].m.end;
        ncreq++;
    }
    if (off < n) { /* beyond what is tracked: treat as an unknown tail */
        creqs[ncreq].off = off;
        creqs[ncreq].m.state = REF_BAD;
        creqs[ncreq].m.end = 0;
        creqs[ncreq].m.head_done = false;
        tail_len = n - off;
    }
}

static void finding(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_conn: FINDING: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static bool ci_same(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;

    if (an != bn)
        return false;
    for (i = 0; i < an; i++)
        if ((a[i] | 0x20) != (b[i] | 0x20) && !(a[i] == b[i]))
            return false;
    return true;
}

static bool same_field(const char *a, const ref_field_t *fa, const char *b, const ref_field_t *fb)
{
    return ci_same(a + fa->name_off, fa->name_len, b + fb->name_off, fb->name_len) &&
           fa->value_len == fb->value_len &&
           memcmp(a + fa->value_off, b + fb->value_off, fa->value_len) == 0;
}

/* Does the token list value [v, v+n) (a Connection field) name the field name [s, s+len)? */
static bool conn_lists(const char *v, size_t n, const char *s, size_t len)
{
    size_t i = 0, a, e;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        a = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > a && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > a && ci_same(v + a, e - a, s, len))
            return true;
    }
    return false;
}

/* Fields the gateway drops or replaces on the way up (a superset: every Connection field's
 * names count, the gateway reads the first). */
static bool dropped_up(const char *p, const ref_msg_t *m, const ref_field_t *f, bool agent)
{
    static const char *const hop[] = {
        "connection",      "keep-alive",        "proxy-connection",   "te",
        "trailer",         "upgrade",           "proxy-authenticate", "proxy-authorization",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",   "via"};
    size_t i;

    for (i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (ref_field_is(p, f, hop[i]))
            return true;
    if (agent && ref_field_is(p, f, "authorization"))
        return true;
    for (i = 0; i < m->nf; i++)
        if (ref_field_is(p, &m->f[i], "connection") &&
            conn_lists(p + m->f[i].value_off, m->f[i].value_len, p + f->name_off, f->name_len))
            return true;
    return false;
}

/* Fields the gateway adds. */
static bool added_up(const char *p, const ref_field_t *f, bool client_had_host)
{
    return ref_field_is(p, f, "x-forwarded-for") || ref_field_is(p, f, "x-forwarded-proto") ||
           ref_field_is(p, f, "x-forwarded-host") || ref_field_is(p, f, "via") ||
           (!client_had_host && ref_field_is(p, f, "host"));
}

/* The target the upstream must get for the client's target (origin form; agents get
 * /debug/pprof + what follows the route's pprof path). Into out; false when the gateway
 * must not forward this target at all. */
static bool expected_target(const char *t, size_t n, int role, char *out, size_t cap, size_t *olen)
{
    size_t i = 0, k = 0;

    if (n >= cap - 1)
        return false;
    if (n > 0 && t[0] != '/') {
        const char *s = memchr(t, ':', n);

        if (s == NULL || (size_t)(s - t) + 3 > n || s[1] != '/' || s[2] != '/')
            return false;
        i = (size_t)(s - t) + 3;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        if (i == n || t[i] == '?')
            out[k++] = '/';
    }
    if (role == 2) { /* agent of route "/svc": the prefix goes */
        if (n - i < 4 || memcmp(t + i, "/svc", 4) != 0)
            return false;
        i += 4;
    }
    memcpy(out + k, t + i, n - i);
    *olen = k + n - i;
    return true;
}

/* Upstream request u (at p, parsed as um) against the client's request c. */
static void compare(const char *p, const ref_msg_t *um, int role, const creq_t *c,
                    const uint8_t *cin, bool last)
{
    const char *cp = (const char *)cin + c->off;
    const ref_msg_t *cm = &c->m;
    char want[FZ_MAX_INPUT + 2];
    size_t wlen, i, j;
    bool had_host = ref_find(cp, cm, "host") != NULL;
    size_t ub, cb;

    if (um->state == REF_BAD)
        finding("an upstream received bytes a strict reader refuses", um->why);
    if (um->state == REF_MORE && !last)
        finding("an upstream got a cut request, and then another one", NULL);
    if (um->state == REF_DONE && cm->state != REF_DONE)
        finding("an upstream got a whole request the client never sent whole",
                cm->state == REF_BAD ? cm->why : "client's is incomplete");
    if (!um->head_done)
        return; /* a head cut short: nothing more to compare */
    if (!cm->head_done || (cm->state == REF_BAD && cm->end < cm->head_len) ||
        (cm->state == REF_BAD && cm->body == REF_BODY_NONE))
        finding("an upstream got a head the client's bytes do not hold", cm->why);
    if (um->method_len != cm->method_len ||
        memcmp(p + um->method_off, cp + cm->method_off, um->method_len) != 0)
        finding("method differs upstream", NULL);
    if (!expected_target(cp + cm->target_off, cm->target_len, role, want, sizeof want, &wlen))
        finding("a target the gateway must not forward went upstream", NULL);
    if (um->target_len != wlen || memcmp(p + um->target_off, want, wlen) != 0)
        finding("target differs upstream", NULL);
    if (um->body != cm->body || (um->body == REF_BODY_CL && um->cl != cm->cl))
        finding("framing differs upstream", NULL);
    /* fields: upstream's (but added ones) a subsequence of the client's; the client's (but
     * dropped ones) a subsequence of the upstream's */
    for (i = 0, j = 0; i < um->nf; i++) {
        if (added_up(p, &um->f[i], had_host))
            continue;
        while (j < cm->nf && !same_field(p, &um->f[i], cp, &cm->f[j]))
            j++;
        if (j == cm->nf)
            finding("an upstream got a field the client did not send", NULL);
        j++;
    }
    for (i = 0, j = 0; i < cm->nf; i++) {
        if (dropped_up(cp, cm, &cm->f[i], role != 0))
            continue;
        while (j < um->nf && !same_field(cp, &cm->f[i], p, &um->f[j]))
            j++;
        if (j == um->nf)
            finding("a field the client sent did not reach the upstream", NULL);
        j++;
    }
    /* body bytes: the same as far as they went (raw, framing included) */
    ub = um->end - um->head_len;
    cb = (cm->state == REF_DONE   ? cm->end
          : cm->state == REF_MORE ? tail_len
                                  : cm->end) -
         cm->head_len;
    if (ub > cb)
        finding("an upstream got body bytes past what the client sent validly", cm->why);
    if (memcmp(p + um->head_len, cp + cm->head_len, ub) != 0)
        finding("body bytes differ upstream", NULL);
    if (um->state == REF_DONE && ub != cb)
        finding("body length differs upstream", NULL);
}

typedef struct uref {
    int seq, conn, k;
    size_t off;
} uref_t;

static int by_seq(const void *a, const void *b)
{
    return ((const uref_t *)a)->seq - ((const uref_t *)b)->seq;
}

static int check_upstreams(const uint8_t *cin, size_t cn)
{
    static uref_t r[4 * MAX_REQ + MAX_UPC]; /* requests begun upstream: the client's, retries */
    static ref_msg_t m;
    int nr = 0, i, k, next = 0, answered = 0;
    const uref_t *prev = NULL;

    parse_client(cin, cn);
    for (i = 0; i < nupc; i++) {
        size_t off = 0;

        for (k = 0; k < upc[i].nstart; k++) {
            if (nr == (int)(sizeof r / sizeof r[0]))
                fail("more upstream requests in one run than tracked");
            r[nr++] = (uref_t){upc[i].seq[k], i, k, off};
            ref_parse_request(upc[i].in + off, upc[i].in_len - off, &m);
            if (m.state != REF_DONE)
                break;
            off += m.end;
        }
    }
    qsort(r, (size_t)nr, sizeof r[0], by_seq);
    for (i = 0; i < nr; i++) {
        upconn_t *u = &upc[r[i].conn];
        const char *p = u->in + r[i].off;

        ref_parse_request(p, u->in_len - r[i].off, &m);
        /* a retry: the same request again after a pooled connection the upstream closed
         * took it without an answer (only for idempotent requests without a body: none, or
         * Content-Length: 0; RFC 9110 9.2.2) */
        if (prev && m.state == REF_DONE && !upc[prev->conn].answered[prev->k] &&
            upc[prev->conn].by_us && next > 0 &&
            (creqs[next - 1].m.body == REF_BODY_NONE ||
             (creqs[next - 1].m.body == REF_BODY_CL && creqs[next - 1].m.cl == 0)) &&
            creqs[next - 1].m.state == REF_DONE &&
            idempotent((const char *)cin + creqs[next - 1].off, &creqs[next - 1].m)) {
            ref_msg_t pm;
            const char *pp = upc[prev->conn].in + prev->off;

            ref_parse_request(pp, upc[prev->conn].in_len - prev->off, &pm);
            if (pm.state == REF_DONE && pm.end == m.end && memcmp(pp, p, m.end) == 0) {
                prev = &r[i];
                answered += u->answered[r[i].k];
                continue;
            }
        }
        if (next > ncreq || (next == ncreq && tail_len == 0))
            finding("an upstream got more requests than the client sent", NULL);
        compare(p, &m, u->role, &creqs[next], cin, i == nr - 1);
        answered += u->answered[r[i].k];
        prev = &r[i];
        next++;
    }
    return answered;
}

static void trace_run(const uint8_t *cin, size_t sent)
{
    int i;

    parse_client(cin, sent);
    fprintf(stderr, "run: mode %#x, sent %zu bytes: %d complete request(s), tail %zu (%s%s%s)\n",
            mode, sent, ncreq, tail_len,
            tail_len == 0                      ? "none"
            : creqs[ncreq].m.state == REF_MORE ? "incomplete"
                                               : "bad",
            tail_len && creqs[ncreq].m.why ? ": " : "",
            tail_len && creqs[ncreq].m.why ? creqs[ncreq].m.why : "");
    for (i = 0; i < nupc; i++)
        fprintf(stderr,
                "  upstream conn %d (role %d): %zu bytes, %d begun, %d complete, %s:\n%.*s\n", i,
                upc[i].role, upc[i].in_len, upc[i].nstart, upc[i].nreq,
                upc[i].eof     ? "closed by the gateway"
                : upc[i].by_us ? "closed by us"
                               : "open",
                (int)(upc[i].in_len > 2000 ? 2000 : upc[i].in_len), upc[i].in);
    fprintf(stderr, "  client got %zu bytes%s:\n%.*s\n", cl_in_len, cl_eof ? " and a close" : "",
            (int)(cl_in_len > 2000 ? 2000 : cl_in_len), cl_in);
}

/* ---------------- oracle 2: what the client received ---------------- */

static int seq_value(const char *p, const ref_field_t *f)
{
    int v = 0;
    size_t i;

    for (i = 0; i < f->value_len && i < 6; i++)
        v = v * 10 + (p[f->value_off + i] - '0');
    return v;
}

/* answered: answers the upstreams sent; strict: the upstreams were well-behaved; open: the
 * client stayed; early: answers may have gone before the request was whole. */
static void check_client(const uint8_t *cin, int answered, bool strict, bool open, bool early)
{
    static ref_msg_t m;
    size_t off = 0;
    int finals = 0, k = 0, last_seq = -1, ups = 0;

    if (cl_overflow)
        return;
    while (off < cl_in_len) {
        const char *p = cl_in + off;
        /* the request this answers: a complete one, or the tail whose request line parsed */
        bool head_req = k < ncreq + (tail_len > 0) && creqs[k].m.method_len > 0 &&
                        is_head((const char *)cin + creqs[k].off, &creqs[k].m);
        const ref_field_t *s;

        ref_parse_response(p, cl_in_len - off, head_req, cl_eof, &m);
        if (head_req && m.state == REF_DONE && ref_find(p, &m, "x-seq") == NULL) {
            /* The gateway's own answer to a HEAD: no body once it has read the whole head
             * (404, 413, metrics...); a head it refused before its end (400, 408, 431) may
             * have been answered as any request. */
            static ref_msg_t g;

            ref_parse_response(p, cl_in_len - off, false, cl_eof, &g);
            if (g.state == REF_DONE && g.end > m.end) {
                if (!(ref_known & REF_KNOWN_HEAD) && k < ncreq && m.status != 400 &&
                    m.status != 408 && m.status != 431)
                    finding("the gateway's own answer to a HEAD request has a body", NULL);
                m = g;
            }
        }
        if (m.state == REF_BAD) {
            if (strict || !(ref_known & REF_KNOWN_RESP))
                finding(strict ? "the client got bytes a strict reader refuses as a response"
                               : "an upstream's bad response framing reached the client",
                        m.why);
            return;
        }
        if (m.state == REF_MORE) {
            if (strict && open && !early)
                finding(cl_eof ? "a response was cut" : "a response was left unfinished", NULL);
            break;
        }
        if (m.status >= 200) {
            s = ref_find(p, &m, "x-seq");
            if (s) {
                int v = seq_value(p, s);

                if (v <= last_seq)
                    finding("upstream answers reached the client out of order, or twice", NULL);
                last_seq = v;
                ups++;
            }
            finals++;
            k++;
        }
        off += m.end;
    }
    if (!strict || !open)
        return;
    if (ups > answered || (!early && ups != answered))
        finding("an upstream's answer did not reach the client whole", NULL);
    /* llhttp reads a PRI request as the start of the HTTP/2 preface and waits for the rest of
     * it ("\r\n\r\nSM\r\n\r\n") whatever the version; the gateway refuses it once it is in */
    for (k = 0; k < ncreq; k++)
        if (creqs[k].m.method_len == 3 &&
            memcmp((const char *)cin + creqs[k].off + creqs[k].m.method_off, "PRI", 3) == 0)
            break;
    if (!cl_eof && finals != k)
        finding("the connection stayed open with complete requests unanswered", NULL);
}

/* ---------------- oracle 3: nothing left behind ---------------- */

static void check_clean(void)
{
    size_t i;

    if (w->nconns != 0)
        finding("a client connection outlived its client", NULL);
    if (atomic_load(&limit.used) != 0)
        finding("server.max_connections slots not given back", NULL);
    if (w->gen->refs != 1)
        finding("generation references left (a request or pooled connection leaked)", NULL);
    for (i = 0; i < w->gen->npools; i++)
        if (w->gen->pools[i].nidle != 0)
            finding("a pool kept a connection the upstream closed", NULL);
    if (w->bufs.nlive != 0)
        finding("pg_buf references leaked", NULL);
    if (w->loop.active_reqs.count != 0)
        finding("libuv requests left active", NULL);
    if (handles() != base_handles)
        finding("libuv handles left open", NULL);
    for (i = 0; i < cref->cfg->nupstreams; i++) {
        pg_policy_agent_t *a = pg_policy_agent(cref->limits, i);

        if (a && pg_policy_agent_active(a) != 0)
            finding("a pprof.max_concurrent slot was not given back", NULL);
    }
}

/* ---------------- one run ---------------- */

static void close_idle_upstreams(void)
{
    int i;

    for (i = 0; i < nupc; i++)
        if (upc[i].fd >= 0 && upc[i].nstart == upc[i].nreq && upc[i].owed == 0 &&
            upc[i].out_off == upc[i].out_len)
            up_close(&upc[i], true);
}

static void teardown(void)
{
    int round, i;
    bool open;

    if (client_fd >= 0) {
        close(client_fd);
        client_fd = -1;
    }
    for (round = 0; round < 8; round++) {
        open = false;
        for (i = 0; i < nupc; i++) {
            open |= upc[i].fd >= 0;
            up_close(&upc[i], true);
        }
        settle();
        if (!open)
            break;
    }
    for (i = 0; i < nupc; i++) {
        up_close(&upc[i], true);
        free(upc[i].in);
        free(upc[i].out);
    }
    nupc = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    const uint8_t *cin;
    size_t npieces, hdr, cn, off = 0, sent = 0, i, before;
    int sv[2], end_mode, answered;

    if (size < 3 || size > FZ_MAX_INPUT)
        return 0;
    mode = data[0];
    answer_kind = mode & 7;
    split_answers = (mode & 8) != 0;
    end_mode = (mode >> 4) & 3;
    npieces = data[1] & 15;
    hdr = 3 + 2 * npieces;
    if (size < hdr)
        return 0;
    if (answer_kind == UP_RAW && (ref_known & REF_KNOWN_RAW))
        answer_kind = UP_CL;
    raw_len = answer_kind == UP_RAW ? data[2] : 0;
    if (raw_len > size - hdr)
        raw_len = size - hdr;
    raw = data + size - raw_len;
    cin = data + hdr;
    cn = size - hdr - raw_len;

    nupc = 0;
    seq_next = 0;
    hold = false;
    cl_in_len = 0;
    cl_eof = cl_overflow = false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        fail("socketpair");
    client_fd = sv[1];
    peer.sin_addr.s_addr = htonl(0x7f000001);
    /* as the worker's accept does: one of the process's connection slots */
    atomic_fetch_add(&limit.used, 1);
    before = w->nconns;
    pg_conn_accept(w, sv[0], (const struct sockaddr *)&peer, sizeof peer, false);
    if (w->nconns == before)
        atomic_fetch_sub(&limit.used, 1);
    settle();
    for (i = 0; i <= npieces; i++) {
        size_t len = i < npieces ? (data[3 + 2 * i] ? data[3 + 2 * i] : 256) : cn - off;
        uint8_t ctl = i < npieces ? data[4 + 2 * i] : 0;

        if (len > cn - off)
            len = cn - off;
        hold = (ctl & 1) != 0;
        sent += client_send(cin + off, len);
        off += len;
        if (ctl & 2)
            close_idle_upstreams();
        settle();
    }
    hold = false;
    settle();
    if (end_mode == 1) {
        shutdown(client_fd, SHUT_WR);
    } else if (end_mode >= 2) {
        if (end_mode == 3) {
            struct linger l = {1, 0};

            setsockopt(client_fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(client_fd);
        client_fd = -1;
    }
    settle();
    if (trace)
        trace_run(cin, sent);
    answered = check_upstreams(cin, sent);
    check_client(cin, answered, answer_kind != UP_RAW, end_mode == 0, answer_kind == UP_EARLY);
    teardown();
    check_clean();
    return 0;
}
