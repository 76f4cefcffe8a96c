/* fuzz_conn: libFuzzer target for the gateway's connection state machine (pg_conn, pg_resp,
 * pg_upstream) as it runs: one real worker (pg_worker_start on a generated configuration),
 * its libuv loop driven from this thread, a client on one end of a socketpair or a loopback
 * TCP connection handed to pg_conn_accept, and in-process upstream and agents on Unix
 * sockets the configuration routes to, which record every byte they get and answer each
 * complete request.
 *
 * Why the loop runs here: uv_thread_create is wrapped at link time (-Wl,--wrap, see
 * CMakeLists.txt), so pg_worker_start builds its worker without starting a thread, and this
 * harness runs the loop until nothing is left to do after each piece of client bytes. So a
 * piece is read by the gateway as one read (a socketpair delivers at once; so does loopback
 * TCP with TCP_NODELAY) and the state machine sees exactly the splits the input asks for,
 * run after run. Time is the harness's too: the monotonic clock stands still (conn_clock.c)
 * and moves only when the input says, each timer due meanwhile firing at its time, so the
 * timeouts (ms in the configuration below) are reached as deterministically as the splits.
 *
 * Files: this one sets up, runs the loop, plays the client and runs one input; the input
 * language is in conn_input.h; the clock in conn_clock.c; the upstreams in conn_upstream.c;
 * oracles 1-3 in conn_oracle_up.c (1) and conn_oracle_client.c (2, 3), 5-8 and a run's own
 * worker in conn_oracle_flow.c; what they share, conn_harness.h.
 * Oracles beyond ASan/UBSan:
 * 1. No smuggling: what each upstream connection received is the client's requests as a
 *    strict RFC 9112 reader (ref_http.c) reads them, one for one and in order.
 * 2. Answers: what the client got reads as whole responses; every answer an upstream sent
 *    reaches the client, whole and in order; one final response per complete request, never
 *    more finals than requests; no close-delimited body to an HTTP/1.1 client (a cut would
 *    look whole: the gateway sends it chunked); a big answer's every byte in place; a 502
 *    that says it tried twice answers an idempotent request, and every idempotent one is
 *    tried twice when all connects are refused.
 * 3. No leak, nothing left behind once the client and the upstreams have gone.
 * 4. Progress: the loop settles (no busy loop) within a bound.
 * 5. The clock runs out (an hour passes): every connection state has a timeout, so the
 *    gateway has let go of the connection; the timers answered at most once, with its own
 *    408 or 504, and exactly once when a request was left without an answer (an upstream's
 *    response the timers cut, or ended by closing, is the upstream's answer).
 * 6. Backpressure: while the client does not read, what the gateway queues for it stays
 *    under FC_WQ_BOUND (it stops reading the upstream); while an upstream does not read a
 *    big request body, what it queues for that upstream does too (it stops reading the
 *    client); a client that holds an answer back is never cut as an upstream stall.
 * 7. Drain: after pg_worker_stop, at most the exchange in progress goes upstream (none when
 *    the connection was idle), a connection with nothing in progress is closed at once, and
 *    after the deadline the worker's loop holds nothing.
 * 8. A connect that never completes (conn_upstream.c: the harness defines connect()): once
 *    connect_timeout has passed, the gateway has let go of it and answered its request with
 *    one 502 that says so (or tried it once more), and nothing of it is left after the run.
 * 9. A client that resets (loopback TCP) while the gateway connects for it, none of its bytes
 *    held unparsed: the gateway lets go of the connect at once, not at connect_timeout.
 * The oracles were checked to fail: a pooled connection left open, a response byte dropped,
 * a byte inserted upstream, a connection slot not given back each make a finding; so do (on
 * the seeds) upstream or client reading left on under backpressure (6), a 408 replaced by a silent
 * close, the upstream timer or the idle timer doing nothing (5), a refused connect retried
 * for a POST or never retried (2), pg_conn_drain doing nothing, the worker's wakeup handle
 * left open at the end of a drain (7), a close-delimited body relayed as such to an HTTP/1.1
 * client (2: the seeds big_paused_eof and others); and the proxy before the fixes of F10,
 * F11, F12 and the close-delimited cut fails on their reproducers (corpus/conn/finding_*), as
 * does the proxy before it read the client during a connect (9: finding_reset_while_connecting,
 * a GET to a blackholed upstream, then a reset).
 *
 * Env: FUZZ_CONN_TRACE (what each run sent, what every upstream connection and the client
 * got, on stderr, also after the clock ran out; with a paused client, what the gateway
 * queues: `FUZZ_CONN_TRACE=1 fuzz_conn FILE` explains a finding); PG_FUZZ_KNOWN (ref_http.h:
 * known findings to fuzz on past). Seeds: corpus/conn/, made by seed_conn.py; the files
 * named after a finding are its reproducers. A run takes ~0.5 ms with ASan on average (a
 * corpus of 4,200 replays at ~2,100 a second); one with big answers 30-50 ms.
 * Owns: the worker (and a drain run's own), its configuration, the client's descriptor and
 * the loopback TCP listener (see conn_harness.h).
 * Threads: libFuzzer's; the worker's loop runs on it. Errors: findings abort. */
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
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <uv.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_conn.h"
#include "pg_log.h"
#include "pg_worker.h"
#include "conn_harness.h"
#include "conn_input.h"
#include "ref_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);
int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);
int __real_uv_thread_join(uv_thread_t *tid);
int __wrap_uv_thread_join(uv_thread_t *tid);

#define SETTLE_ROUNDS 20000
#define ADVANCE_STEPS 10000 /* timers fired while the clock moves on, at most */
#define STR_(x) #x
#define STR(x) STR_(x)
#define UP_TIMEOUTS                                                                                \
    "timeout = \"500ms\"\nconnect_timeout = \"" STR(FC_CONNECT_MS) "ms\"\npool_idle_timeout = \"1s\"\n"

fc_gateway_t fc_gw;
fc_client_t fc_cl = {.fd = -1};
static bool capture_thread;
static int tcp_listen_fd = -1; /* loopback: the client's TCP connections */
static struct sockaddr_in tcp_addr;
static pg_cfgref_t *big_cref; /* max_body_bytes 8 MiB: the worker of a big request's run */
static char dir[64];
bool fc_trace; /* FUZZ_CONN_TRACE set: what each run did, on stderr */

int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg)
{
    if (capture_thread) { /* the worker's thread: its loop runs here instead */
        memset(tid, 0, sizeof *tid);
        return 0;
    }
    return __real_uv_thread_create(tid, entry, arg);
}

/* pg_worker_join of a worker whose thread was never started (a drain run's own worker) */
int __wrap_uv_thread_join(uv_thread_t *tid)
{
    static const uv_thread_t none;

    if (memcmp(tid, &none, sizeof none) == 0)
        return 0;
    return __real_uv_thread_join(tid);
}

void fc_fail(const char *what)
{
    fprintf(stderr, "fuzz_conn: %s\n", what);
    abort();
}

/* ---------------- set-up ---------------- */

int fc_unix_listener(const char *name)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", dir, name);
    unlink(sun.sun_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 128) < 0)
        fc_fail("cannot listen on a unix socket");
    return fd;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
}

int fc_handles(void)
{
    int n = 0;

    uv_walk(&fc_gw.w->loop, count_handle, &n);
    return n;
}

/* The configuration the worker runs, with server.max_body_bytes = max_body (TOML). */
static pg_cfgref_t *load_config(const char *max_body)
{
    char path[128];
    pg_config_t *cfg;
    pg_errlist_t errs;
    pg_cfgref_t *r;
    FILE *f;

    snprintf(path, sizeof path, "%s/fuzz.toml", dir);
    f = fopen(path, "w");
    if (f == NULL)
        fc_fail("cannot write the config");
    /* small limits, so that short inputs reach 413 and 431; short timeouts on the virtual
     * clock (conn_clock.c), which moves only when an input says (conn_input.h) */
    fprintf(f,
            "[server]\nlisten = \"127.0.0.1:1\"\nmax_header_bytes = \"1KiB\"\n"
            "max_body_bytes = %s\nheader_timeout = \"100ms\"\nidle_timeout = \"300ms\"\n"
            "metrics_path = \"/metrics\"\n"
            "[[upstream]]\nname = \"app\"\naddress = \"unix:up.sock\"\nagent = "
            "\"unix:ag1.sock\"\n" UP_TIMEOUTS
            "[[upstream]]\nname = \"svc\"\naddress = \"unix:up.sock\"\nagent = "
            "\"unix:ag2.sock\"\n" UP_TIMEOUTS "pool_size = 1\n"
            "[[upstream]]\nname = \"api\"\naddress = \"unix:up.sock\"\nagent = "
            "\"unix:ag1.sock\"\n" UP_TIMEOUTS "[upstream.pprof]\nenabled = false\n"
            "[[route]]\nprefix = \"/\"\nupstream = \"app\"\n"
            "[[route]]\nprefix = \"/svc\"\nupstream = \"svc\"\n"
            "[[route]]\nprefix = \"/api/\"\nupstream = \"api\"\n"
            "[pprof]\npath = \"/debug/pprof\"\nmax_seconds = 60\n",
            max_body);
    fclose(f);
    memset(&errs, 0, sizeof errs);
    if (pg_config_load(path, &cfg, &errs) < 0)
        fc_fail("the config did not load");
    unlink(path);
    r = pg_cfgref_new(cfg, NULL);
    if (r == NULL)
        fc_fail("pg_cfgref_new");
    return r;
}

void fc_worker_start(int id, int lfd, pg_cfgref_t *cref, pg_worker_t **w)
{
    capture_thread = true;
    if (pg_worker_start(id, lfd, -1, cref, &fc_gw.limit, w) < 0)
        fc_fail("pg_worker_start");
    capture_thread = false;
}

/* At exit: the harness's directory and its sockets go (libFuzzer's fork mode starts a
 * process per job; a crash leaves its directory, with the reproducer's sockets). */
static void remove_dir(void)
{
    static const char *const names[] = {"up.sock",      "ag1.sock",   "ag2.sock",
                                        "gateway.sock", "drain.sock", "fuzz.toml"};
    char path[128];
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int lfd;

    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as profgate's main: writes to a closed peer fail with EPIPE */
    snprintf(dir, sizeof dir, "/tmp/fuzz_conn.XXXXXX");
    if (mkdtemp(dir) == NULL)
        fc_fail("mkdtemp");
    atexit(remove_dir);
    if (getenv("PG_LOG_LEVEL") == NULL)
        pg_log_set_level(PG_LOG_ERROR); /* quiet: thousands of 4xx and 502 a second */
    fc_trace = getenv("FUZZ_CONN_TRACE") != NULL;
    ref_known_from_env();
    fc_gw.cref = load_config("512");
    big_cref = load_config("\"8MiB\"");
    fc_up.listen_fd[0] = fc_unix_listener("up.sock");
    fc_up.listen_fd[1] = fc_unix_listener("ag1.sock");
    fc_up.listen_fd[2] = fc_unix_listener("ag2.sock");
    lfd = fc_unix_listener("gateway.sock"); /* polled by the worker, never connected to */
    tcp_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    tcp_addr.sin_family = AF_INET;
    tcp_addr.sin_addr.s_addr = htonl(0x7f000001);
    if (tcp_listen_fd < 0 || bind(tcp_listen_fd, (struct sockaddr *)&tcp_addr, sizeof tcp_addr) ||
        listen(tcp_listen_fd, 16) ||
        getsockname(tcp_listen_fd, (struct sockaddr *)&tcp_addr, &(socklen_t){sizeof tcp_addr}))
        fc_fail("cannot listen on loopback TCP");
    pg_conn_limit_init(&fc_gw.limit, 1000);
    fc_worker_start(1, lfd, fc_gw.cref, &fc_gw.w);
    fc_settle();
    fc_gw.base_handles = fc_handles();
    return 0;
}

/* ---------------- the client ---------------- */

bool fc_client_service(void)
{
    bool did = false;
    ssize_t r;

    while (fc_cl.fd >= 0 && !fc_cl.eof && !fc_cl.paused) {
        if (fc_cl.in_len == sizeof fc_cl.in) { /* more than any answer here: keep reading, count */
            char sink[4096];

            r = read(fc_cl.fd, sink, sizeof sink);
            if (r > 0)
                fc_cl.overflow = true;
        } else {
            r = read(fc_cl.fd, fc_cl.in + fc_cl.in_len, sizeof fc_cl.in - fc_cl.in_len);
            if (r > 0)
                fc_cl.in_len += (size_t)r;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            fc_cl.eof = true;
            did = true;
            break;
        }
        if (r < 0)
            break;
        fc_cl.got += (size_t)r;
        did = true;
    }
    return did;
}

/* ---------------- the loop ---------------- */

/* Nothing ready in the loop: no pending callback, closing handle or due timer
 * (uv_backend_timeout 0), and no event on its epoll descriptor; or nothing at all left in
 * it (a drained worker). */
static bool loop_quiet(void)
{
    struct pollfd pf = {.fd = uv_backend_fd(&fc_gw.w->loop), .events = POLLIN};

    if (!uv_loop_alive(&fc_gw.w->loop))
        return true;
    return uv_backend_timeout(&fc_gw.w->loop) != 0 && poll(&pf, 1, 0) == 0;
}

void fc_settle(void)
{
    int i;

    for (i = 0; i < SETTLE_ROUNDS; i++) {
        bool did;

        uv_run(&fc_gw.w->loop, UV_RUN_NOWAIT);
        did = fc_up_service();
        did |= fc_client_service();
        if (!did && loop_quiet())
            return;
    }
    fc_fail("the loop did not settle (busy loop?)");
}

void fc_advance(uint64_t ms)
{
    uint64_t end = fc_clock_ms() + ms;
    int i;

    for (i = 0; i < ADVANCE_STEPS; i++) {
        uint64_t now;
        int t;

        fc_settle();
        now = fc_clock_ms();
        t = uv_loop_alive(&fc_gw.w->loop) ? uv_backend_timeout(&fc_gw.w->loop) : -1;
        if (t < 0 || now + (uint64_t)t >= end) {
            fc_clock_add(end - now);
            fc_settle();
            fc_check_holes(false);
            return;
        }
        fc_clock_add((uint64_t)t);
    }
    fc_fail("timers kept firing while the clock moved on (one re-armed with no delay?)");
}

size_t fc_client_send(const uint8_t *p, size_t n)
{
    size_t done = 0;
    /* stuck behind a deaf upstream before: one try, not a hundred of a 1 MiB send */
    int tries = 0, most = fc_cl.stuck && fc_up_stalled() ? 1 : 100;

    while (done < n && fc_cl.fd >= 0) {
        ssize_t r = send(fc_cl.fd, p + done, n - done, MSG_NOSIGNAL);

        if (r < 0) {
            if (errno != EAGAIN)
                break; /* the gateway closed: the rest cannot go */
            if (++tries >= most && fc_up_stalled()) {
                fc_cl.stuck = true; /* a deaf upstream, or one connecting: the rest waits */
                break;
            }
            if (tries > 100)
                fc_fail("the client cannot send (gateway not reading, ever)");
            fc_settle();
            continue;
        }
        fc_cl.stuck = false;
        done += (size_t)r;
    }
    return done;
}

/* ---------------- one run ---------------- */

static void close_idle_upstreams(void)
{
    int i;

    for (i = 0; i < fc_up.n; i++)
        if (fc_up.c[i].fd >= 0 && fc_up.c[i].nstart == fc_up.c[i].nreq && fc_up.c[i].owed == 0 &&
            fc_up.c[i].out_off == fc_up.c[i].out_len)
            fc_up_close(&fc_up.c[i], true);
}

static void teardown(void)
{
    int round, i;
    bool open;

    if (fc_cl.fd >= 0) {
        if (fc_cl.tcp) { /* a reset leaves no port in TIME_WAIT, run after run */
            struct linger l = {1, 0};

            setsockopt(fc_cl.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(fc_cl.fd);
        fc_cl.fd = -1;
    }
    for (round = 0; round < 8; round++) {
        open = false;
        for (i = 0; i < fc_up.n; i++) {
            open |= fc_up.c[i].fd >= 0;
            fc_up_close(&fc_up.c[i], true);
        }
        fc_settle();
        if (!open)
            break;
    }
    /* A connect that never completes holds its client connection until connect_timeout:
     * the gateway does not read the client meanwhile, so it has not seen it go */
    for (i = 0; i < fc_up.nholes; i++)
        if (fc_up_hole_open(&fc_up.holes[i])) {
            fc_advance(FC_CONNECT_MS);
            break;
        }
    fc_check_holes(true);
    fc_up_holes_close();
    for (i = 0; i < fc_up.n; i++) {
        fc_up_close(&fc_up.c[i], true);
        free(fc_up.c[i].in);
        free(fc_up.c[i].out);
    }
    fc_up.n = 0;
}

static void start_run(const fc_input_t *in)
{
    fc_up.answer_kind = in->answer_kind;
    fc_up.split = in->split;
    fc_up.raw = in->raw;
    fc_up.raw_len = in->raw_len;
    fc_up.big = in->big;
    fc_up.conn_mode = in->up_conn;
    fc_up.conn_second = in->up_second;
    fc_up.n = 0;
    fc_up.seq_next = 0;
    fc_up.hold = false;
    fc_cl.in_len = fc_cl.got = 0;
    fc_cl.eof = fc_cl.overflow = fc_cl.paused = fc_cl.stuck = false;
    fc_timed = false;
    fc_flow_begin();
    if (in->drain || in->big_req)
        fc_own_worker_start(in->big_req ? big_cref : fc_gw.cref);
    fc_up_begin();
}

/* A loopback TCP connection (listener set up once): the client's end in *cfd, the
 * gateway's returned, or -1 when the system cannot make one now (ports in TIME_WAIT). */
static int tcp_pair(int *cfd, struct sockaddr_in *peer)
{
    socklen_t plen = sizeof *peer;
    struct pollfd pf = {.fd = tcp_listen_fd, .events = POLLIN};
    int one = 1, c, g = -1;

    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c < 0)
        fc_fail("socket");
    if (connect(c, (struct sockaddr *)&tcp_addr, sizeof tcp_addr) < 0 && errno != EINPROGRESS) {
        close(c);
        return -1;
    }
    if (poll(&pf, 1, 1000) == 1)
        g = accept4(tcp_listen_fd, (struct sockaddr *)peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (g < 0) {
        close(c);
        return -1;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* each piece goes at once */
    *cfd = c;
    return g;
}

/* The client connects (TCP on loopback, or a socketpair): its end is fc_cl.fd, the
 * gateway's is returned. small_buffer: the connection buffers little (backpressure). */
static int client_connect(bool small_buffer, bool tcp)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    size_t before;
    int sv[2] = {-1, -1};

    fc_cl.tcp = false;
    peer.sin_addr.s_addr = htonl(0x7f000001);
    if (tcp && (sv[0] = tcp_pair(&sv[1], &peer)) >= 0)
        fc_cl.tcp = true;
    else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        fc_fail("socketpair");
    /* what the gateway sends waits in its queue sooner; not over TCP: with buffers below
     * loopback's MSS (64 KiB) a window opens only by the sender's persist timer, real time
     * that the harness does not run */
    if (small_buffer && !fc_cl.tcp) {
        int sz = 32768;

        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    fc_cl.fd = sv[1];
    /* as the worker's accept does: one of the process's connection slots */
    atomic_fetch_add(&fc_gw.limit.used, 1);
    before = fc_gw.w->nconns;
    pg_conn_accept(fc_gw.w, sv[0], (const struct sockaddr *)&peer, sizeof peer, false);
    if (fc_gw.w->nconns == before)
        atomic_fetch_sub(&fc_gw.limit.used, 1);
    return sv[0];
}

/* The client's bytes of the run into b: a POST with a body of body_len bytes (a big
 * request), then the input's. Returns the POST's length. */
static size_t big_request(uint8_t *b, size_t body_len)
{
    int n = snprintf((char *)b, 128, "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n",
                     body_len);
    memcpy(b + n, fc_big_bytes(9), body_len);
    return (size_t)n + body_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t cbuf[63 * FC_BIG_REQ_UNIT + 128 + FZ_MAX_INPUT];
    fc_input_t in;
    size_t off = 0, sent = 0, i;
    int gw_fd, answered;
    bool strict, early, reset_seen;

    if (!fc_input_decode(data, size, &in))
        return 0;
    start_run(&in);
    gw_fd = client_connect(in.big, in.tcp);
    fc_settle();
    if (in.big_req) { /* sent first, as a piece of its own */
        off = big_request(cbuf, in.big_req);
        memcpy(cbuf + off, in.cin, in.cn);
        in.cin = cbuf;
        in.cn += off;
        sent = fc_client_send(cbuf, off);
        fc_settle();
        fc_check_backpressure(gw_fd);
    }
    for (i = 0; i <= in.npieces; i++) {
        size_t len = i < in.npieces ? in.piece_len[i] : in.cn - off;
        uint8_t ctl = i < in.npieces ? in.piece_ctl[i] : 0;

        if (len > in.cn - off)
            len = in.cn - off;
        fc_cl.paused = ((ctl & FC_PAUSE) != 0 || fc_cl.paused) && (ctl & FC_RESUME) == 0;
        if (ctl & FC_RESUME)
            fc_up_wake();
        fc_up.hold = (ctl & FC_HOLD) != 0;
        /* what an earlier piece could not send goes first (an upstream that did not read) */
        sent += fc_client_send(in.cin + sent, off + len - sent);
        off += len;
        if (ctl & FC_STALE)
            close_idle_upstreams();
        fc_settle();
        fc_check_backpressure(gw_fd);
        if (FC_ADVANCE(ctl)) {
            fc_timed = true;
            fc_advance_watched(fc_advance_ms[FC_ADVANCE(ctl)]);
            fc_check_backpressure(gw_fd);
        }
        if (ctl & FC_DRAIN)
            fc_drain(in.cin, sent);
    }
    fc_up.hold = false;
    fc_cl.paused = false;
    fc_settle();
    reset_seen = in.end == FC_END_RST && fc_cl.tcp && fc_gw_reads_client();
    if (in.end == FC_END_SHUT) {
        shutdown(fc_cl.fd, SHUT_WR);
    } else if (in.end >= FC_END_CLOSE) {
        if (in.end == FC_END_RST) {
            struct linger l = {1, 0};

            setsockopt(fc_cl.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(fc_cl.fd);
        fc_cl.fd = -1;
    }
    fc_settle();
    if (reset_seen)
        fc_check_reset_seen();
    if (fc_trace)
        fc_trace_run(in.cin, sent, in.mode);
    answered = fc_check_upstreams(in.cin, sent);
    strict = in.answer_kind != UP_RAW;
    early = in.answer_kind == UP_EARLY;
    fc_check_client(in.cin, answered, strict, in.end == FC_END_OPEN, early);
    fc_check_drain(strict);
    if (in.run_out || fc_own_worker) {
        fc_run_out(in.cin, answered, strict, early);
        if (fc_trace) {
            fprintf(stderr, "after the clock ran out (%s):\n",
                    fc_cl.eof ? "the gateway closed" : "still open");
            fc_trace_run(in.cin, sent, in.mode);
        }
    }
    teardown();
    if (fc_own_worker)
        fc_own_worker_end();
    else
        fc_check_clean();
    fc_up_end();
    return 0;
}
