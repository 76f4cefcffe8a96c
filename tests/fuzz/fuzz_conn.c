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
 * Files: this one sets up, runs the loop, plays the client and runs one input; the input
 * language is in conn_input.h; the upstreams in conn_upstream.c; the oracles in
 * conn_oracle_up.c (1) and conn_oracle_client.c (2, 3); what they share, conn_harness.h.
 * Oracles beyond ASan/UBSan:
 * 1. No smuggling: what each upstream connection received is the client's requests as a
 *    strict RFC 9112 reader (ref_http.c) reads them, one for one and in order.
 * 2. Answers: what the client got reads as whole responses; every answer an upstream sent
 *    reaches the client, whole and in order; one final response per complete request.
 * 3. No leak, nothing left behind once the client and the upstreams have gone.
 * 4. Progress: the loop settles (no busy loop) within a bound.
 * The oracles were checked to fail: a pooled connection left open, a response byte dropped,
 * a byte inserted upstream, a connection slot not given back each make a finding.
 *
 * Env: FUZZ_CONN_TRACE (what each run sent, what every upstream connection and the client
 * got, on stderr: `FUZZ_CONN_TRACE=1 fuzz_conn FILE` explains a finding); PG_FUZZ_KNOWN
 * (ref_http.h: known findings to fuzz on past). Seeds: corpus/conn/, made by seed_conn.py;
 * the files named after a finding are its reproducers. Each run takes ~0.3 ms with ASan.
 * Owns: the worker, its configuration and the client's descriptor (see conn_harness.h).
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
#include <sys/socket.h>
#include <sys/un.h>

#include <uv.h>

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

#define SETTLE_ROUNDS 20000

fc_gateway_t fc_gw;
fc_client_t fc_cl = {.fd = -1};
static bool capture_thread;
static char dir[64];
static bool trace; /* FUZZ_CONN_TRACE set: what each run did, on stderr */

int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg)
{
    if (capture_thread) { /* the worker's thread: its loop runs here instead */
        memset(tid, 0, sizeof *tid);
        return 0;
    }
    return __real_uv_thread_create(tid, entry, arg);
}

void fc_fail(const char *what)
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
        fc_fail("mkdtemp");
    if (getenv("PG_LOG_LEVEL") == NULL)
        pg_log_set_level(PG_LOG_ERROR); /* quiet: thousands of 4xx and 502 a second */
    trace = getenv("FUZZ_CONN_TRACE") != NULL;
    ref_known_from_env();
    snprintf(path, sizeof path, "%s/fuzz.toml", dir);
    f = fopen(path, "w");
    if (f == NULL)
        fc_fail("cannot write the config");
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
        fc_fail("the config did not load");
    unlink(path);
    fc_gw.cref = pg_cfgref_new(cfg, NULL);
    if (fc_gw.cref == NULL)
        fc_fail("pg_cfgref_new");
    fc_up.listen_fd[0] = unix_listener("up.sock");
    fc_up.listen_fd[1] = unix_listener("ag1.sock");
    fc_up.listen_fd[2] = unix_listener("ag2.sock");
    lfd = unix_listener("gateway.sock"); /* polled by the worker, never connected to */
    pg_conn_limit_init(&fc_gw.limit, 1000);
    capture_thread = true;
    if (pg_worker_start(1, lfd, -1, fc_gw.cref, &fc_gw.limit, &fc_gw.w) < 0)
        fc_fail("pg_worker_start");
    capture_thread = false;
    fc_settle();
    fc_gw.base_handles = fc_handles();
    return 0;
}

/* ---------------- the client ---------------- */

bool fc_client_service(void)
{
    bool did = false;
    ssize_t r;

    while (fc_cl.fd >= 0 && !fc_cl.eof) {
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
        did = true;
    }
    return did;
}

/* ---------------- the loop ---------------- */

/* Nothing ready in the loop: no pending callback, closing handle or due timer
 * (uv_backend_timeout 0), and no event on its epoll descriptor. */
static bool loop_quiet(void)
{
    struct pollfd pf = {.fd = uv_backend_fd(&fc_gw.w->loop), .events = POLLIN};

    return uv_backend_timeout(&fc_gw.w->loop) != 0 && poll(&pf, 1, 0) == 0;
}

/* Run the gateway, the upstreams and the client until none of them has anything to do. */
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

size_t fc_client_send(const uint8_t *p, size_t n)
{
    size_t done = 0;
    int tries = 0;

    while (done < n && fc_cl.fd >= 0) {
        ssize_t r = send(fc_cl.fd, p + done, n - done, MSG_NOSIGNAL);

        if (r < 0) {
            if (errno != EAGAIN)
                break; /* the gateway closed: the rest cannot go */
            if (++tries > 100)
                fc_fail("the client cannot send (gateway not reading, ever)");
            fc_settle();
            continue;
        }
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
    for (i = 0; i < fc_up.n; i++) {
        fc_up_close(&fc_up.c[i], true);
        free(fc_up.c[i].in);
        free(fc_up.c[i].out);
    }
    fc_up.n = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    fc_input_t in;
    size_t off = 0, sent = 0, i, before;
    int sv[2], answered;

    if (!fc_input_decode(data, size, &in))
        return 0;
    fc_up.answer_kind = in.answer_kind;
    fc_up.split = in.split;
    fc_up.raw = in.raw;
    fc_up.raw_len = in.raw_len;
    fc_up.n = 0;
    fc_up.seq_next = 0;
    fc_up.hold = false;
    fc_cl.in_len = 0;
    fc_cl.eof = fc_cl.overflow = false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        fc_fail("socketpair");
    fc_cl.fd = sv[1];
    peer.sin_addr.s_addr = htonl(0x7f000001);
    /* as the worker's accept does: one of the process's connection slots */
    atomic_fetch_add(&fc_gw.limit.used, 1);
    before = fc_gw.w->nconns;
    pg_conn_accept(fc_gw.w, sv[0], (const struct sockaddr *)&peer, sizeof peer, false);
    if (fc_gw.w->nconns == before)
        atomic_fetch_sub(&fc_gw.limit.used, 1);
    fc_settle();
    for (i = 0; i <= in.npieces; i++) {
        size_t len = i < in.npieces ? in.piece_len[i] : in.cn - off;
        uint8_t ctl = i < in.npieces ? in.piece_ctl[i] : 0;

        if (len > in.cn - off)
            len = in.cn - off;
        fc_up.hold = (ctl & FC_HOLD) != 0;
        sent += fc_client_send(in.cin + off, len);
        off += len;
        if (ctl & FC_STALE)
            close_idle_upstreams();
        fc_settle();
    }
    fc_up.hold = false;
    fc_settle();
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
    if (trace)
        fc_trace_run(in.cin, sent, in.mode);
    answered = fc_check_upstreams(in.cin, sent);
    fc_check_client(in.cin, answered, in.answer_kind != UP_RAW, in.end == FC_END_OPEN,
                    in.answer_kind == UP_EARLY);
    teardown();
    fc_check_clean();
    return 0;
}
