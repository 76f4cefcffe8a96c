/* conn_oracle_flow: fuzz_conn's oracles on what happens over time and under load, and the
 * worker a run may have of its own (a drain ends a worker for good; a big request needs a
 * larger max_body_bytes).
 * 5. The clock runs out (an hour passes): every connection state has a timeout, so the
 *    gateway has let go of the connection; the timers answered at most once, with its own
 *    408 or 504, and exactly once when a request was left without an answer.
 * 6. Backpressure: while the client does not read, what the gateway queues for it stays
 *    under FC_WQ_BOUND (it stops reading the upstream); while an upstream does not read a
 *    big request body, what it queues for that upstream does too (it stops reading the
 *    client). Time passing while only the client holds an answer back (the upstream has the
 *    rest ready) may cut the client, but never counts as the upstream's stall
 *    (profgate_errors_total{cause="upstream_timeout"}).
 * 7. Drain: after pg_worker_stop, at most the exchange in progress goes upstream (none when
 *    the connection was idle), a connection with nothing in progress is closed at once, and
 *    after the deadline the worker's loop holds nothing.
 * 8. A connect that never completes (FC_UP_BLACKHOLE): once connect_timeout has passed the
 *    gateway has let go of it (closed its descriptor), its request has one 502 that says the
 *    connect timed out if the client is still there (conn_oracle_client.c), or is tried
 *    once more, never twice; after the run no such connect is left.
 * 9. A client that resets while the gateway connects for it (a loopback TCP client): if the
 *    gateway held none of its bytes unparsed (c->pend: it stops reading then, so a reset
 *    behind them is seen later), it lets go of the connect at once, the clock not moved --
 *    not when connect_timeout runs out (pg_conn.c: the client is read while it waits).
 * Owns: the run's own worker, from fc_own_worker_start to fc_own_worker_end (fc_gw.w points
 *   to it meanwhile). Threads: the fuzzing thread. Errors: a finding aborts. */
#include "conn_harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pg_buf.h"
#include "pg_conn_int.h"
#include "pg_metrics.h"
#include "pg_worker.h"

#define FC_DRAIN_MS 2000 /* the drain deadline a drain run's worker gets */
/* What the gateway may queue for a client that does not read: PG_CONN_WQ_HIGH (the
 * gateway's own constant, pg_conn_int.h), above which it stops reading the upstream, plus
 * what one upstream read (PG_BUF_SIZE) and a response head add before it looks. */
#define FC_WQ_BOUND (PG_CONN_WQ_HIGH + PG_BUF_SIZE + 16 * 1024)

bool fc_own_worker;
static pg_worker_t *main_worker;
static bool drained;
static bool drain_idle;       /* the client's connection was idle when the drain was asked for */
static int drain_begun;       /* requests begun upstream when the drain was asked for */
static int cref_refs;         /* the configuration's references outside the run */
static pg_cfgref_t *own_cref; /* the configuration of the run's own worker */

void fc_flow_begin(void)
{
    drained = false;
}

/* ---------------- oracle 6: backpressure ---------------- */

typedef struct find_fd {
    int fd;          /* the client's connection (gateway's end) */
    uv_stream_t *s;  /* its handle */
    size_t pipe_max; /* the largest write queue to an upstream or agent */
} find_fd_t;

static void on_walk_find(uv_handle_t *h, void *arg)
{
    find_fd_t *f = arg;
    uv_os_fd_t fd;

    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && uv_fileno(h, &fd) == 0 && fd == f->fd)
        f->s = (uv_stream_t *)h;
    if (h->type == UV_NAMED_PIPE && uv_stream_get_write_queue_size((uv_stream_t *)h) > f->pipe_max)
        f->pipe_max = uv_stream_get_write_queue_size((uv_stream_t *)h);
}

/* While the client does not read, what the gateway queues for it stays under its bound: it
 * stops reading the upstream (which backs up into the upstream's socket) instead of taking
 * in the whole answer; likewise, while an upstream does not read, what the gateway queues
 * for it (it stops reading the client). gw_fd: the gateway's end of the client's
 * connection. */
void fc_check_backpressure(int gw_fd)
{
    find_fd_t f = {gw_fd, NULL, 0};

    uv_walk(&fc_gw.w->loop, on_walk_find, &f);
    if (fc_trace && f.s && fc_cl.paused)
        fprintf(stderr, "client paused: the gateway queues %zu bytes for it\n",
                uv_stream_get_write_queue_size(f.s));
    if (fc_trace && fc_up_stalled())
        fprintf(stderr, "upstream deaf or connecting: the gateway queues up to %zu bytes for it\n",
                f.pipe_max);
    if (fc_cl.paused && f.s && uv_stream_get_write_queue_size(f.s) > FC_WQ_BOUND)
        fc_finding("the gateway queued more than its bound for a client that does not read "
                   "(it kept reading the upstream)",
                   NULL);
    if (f.pipe_max > FC_WQ_BOUND)
        fc_finding("the gateway queued more than its bound for an upstream that does not read "
                   "(it kept reading the client)",
                   NULL);
}

/* profgate_errors_total{cause="<cause>"} as pg_metrics_render shows it now. */
static unsigned long long error_count(const char *cause)
{
    char *buf = NULL, key[96];
    size_t len = 0;
    unsigned long long n = 0;
    const char *p;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        fc_fail("open_memstream");
    pg_metrics_render(f);
    fclose(f);
    snprintf(key, sizeof key, "profgate_errors_total{cause=\"%s\"} ", cause);
    p = buf ? strstr(buf, key) : NULL;
    if (p)
        n = strtoull(p + strlen(key), NULL, 10);
    free(buf);
    return n;
}

/* An upstream has answered and holds the rest of its answer ready, written as far as its
 * socket takes it (the gateway stopped reading it). */
static bool upstream_held_back(void)
{
    int i;

    for (i = 0; i < fc_up.n; i++) {
        const upconn_t *u = &fc_up.c[i];

        if (u->fd >= 0 && !u->deaf && u->out_pause == 0 && u->out_off < u->out_len)
            return true;
    }
    return false;
}

void fc_advance_watched(uint64_t ms)
{
    bool held = fc_cl.paused && fc_cl.fd >= 0 && upstream_held_back();
    unsigned long long before = held ? error_count("upstream_timeout") : 0;

    fc_advance(ms);
    if (held && error_count("upstream_timeout") != before)
        fc_finding("a client that did not read was cut as an upstream stall (upstream_timeout)",
                   NULL);
}

/* ---------------- oracle 5: the clock runs out ---------------- */

/* [p, p+n) has begun a request: a byte other than the CR and LF a request may follow. */
static bool request_begun(const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n')
            return true;
    return false;
}

/* After everything settled, an hour passes: every state of a connection has a timeout, so
 * the gateway must have let go of it; what the timers sent the client is at most one final
 * response, the gateway's own 408 or 504, and exactly one when a request was left without an
 * answer (504: the upstream never answered; 408: the client never finished a head it had
 * begun, or a chunked body's first size line; 502: its connect never completed, oracle 8).
 * nk: complete requests before a PRI (oracle 2). */
void fc_run_out(const uint8_t *cin, int answered, bool strict, bool early)
{
    fc_finals_t before = fc_finals;
    bool was_eof = fc_cl.eof, open = fc_cl.fd >= 0;
    size_t len_before = fc_cl.in_len;
    const creq_t *t = &fc_sent.r[fc_sent.n];
    int nk = fc_sent.n, k, fresh, ended, want_min = 0;

    for (k = 0; k < fc_sent.n; k++)
        if (fc_sent.r[k].m.method_len == 3 &&
            memcmp(cin + fc_sent.r[k].off + fc_sent.r[k].m.method_off, "PRI", 3) == 0)
            nk = k;
    fc_cl.paused = false;
    fc_up.hold = false;
    fc_advance(3600 * 1000);
    if (fc_gw.w->nconns != 0)
        fc_finding("a client connection outlived every timeout (a state without a timer)", NULL);
    if (!open || fc_cl.overflow)
        return;
    if (!fc_cl.eof)
        fc_finding("the client's connection is still open after every timeout", NULL);
    if (was_eof) {
        if (fc_cl.in_len != len_before)
            fc_finding("the client got bytes after the gateway closed", NULL);
        return;
    }
    fc_check_client(cin, answered, strict, true, early);
    /* an upstream's response the timers ended by closing is the upstream's answer, not the
     * timers': one cut (chunked, without its last chunk), or a close-delimited one to an
     * HTTP/1.0 client, which may have been cut as well (it cannot tell) */
    ended = fc_finals.eof_bodies - before.eof_bodies;
    fresh = fc_finals.finals - before.finals - ended;
    ended += fc_finals.cut;
    if (fresh > 1)
        fc_finding("the timers answered more than once", NULL);
    if (fresh == 1 &&
        (fc_finals.own == before.own ||
         (fc_finals.last_status != 408 && fc_finals.last_status != 504 &&
          !(fc_finals.last_status == 502 && fc_finals.connect_502 > before.connect_502))))
        fc_finding("the timers' answer is not the gateway's 408 or 504", NULL);
    if (before.finals < nk && nk == fc_sent.n)
        want_min = 1; /* a complete request was left unanswered */
    else if (before.finals == fc_sent.n && fc_sent.tail_len > 0 && t->m.state == REF_MORE &&
             !t->m.head_done && request_begun(cin + t->off, fc_sent.tail_len))
        want_min = 1; /* a head left unfinished */
    if (fresh + ended < want_min)
        fc_finding(before.finals < nk ? "a request was left unanswered when the timers ran out"
                                      : "an unfinished head got no 408",
                   NULL);
    if (want_min && before.finals == fc_sent.n && fc_finals.last_status != 408)
        fc_finding("an unfinished head got an answer other than 408", NULL);
}

/* ---------------- oracle 8: connects that never complete ---------------- */

void fc_check_holes(bool end)
{
    uint64_t now = fc_clock_ms();
    int i;

    for (i = 0; i < fc_up.nholes; i++) {
        fc_hole_t *h = &fc_up.holes[i];

        if (!h->expired && now >= h->made_ms + FC_CONNECT_MS) {
            h->expired = true;
            h->client_open = fc_cl.fd >= 0; /* it could still read a 502 */
        }
        if ((h->expired || end) && fc_up_hole_open(h))
            fc_finding(end ? "a connect that never completed was never let go of"
                           : "a connect that never completes was waited on past connect_timeout",
                       NULL);
    }
}

/* ---------------- oracle 9: a client that leaves ---------------- */

bool fc_gw_reads_client(void)
{
    const pg_conn_t *c;

    if (fc_own_worker)
        return false; /* the client may be on the other worker */
    for (c = fc_gw.w->conns; c; c = c->next)
        if (c->closed || c->state == C_CLOSING || (c->pend != NULL && c->pend_len > 0))
            return false;
    return true;
}

void fc_check_reset_seen(void)
{
    int i;

    for (i = 0; i < fc_up.nholes; i++)
        if (fc_up_hole_open(&fc_up.holes[i]))
            fc_finding("a client's reset left its connect waiting (for connect_timeout)", NULL);
}

/* ---------------- oracle 7: drain ---------------- */

static int begun_upstream(void)
{
    int i, n = 0;

    for (i = 0; i < fc_up.n; i++)
        n += fc_up.c[i].nstart;
    return n;
}

void fc_own_worker_start(pg_cfgref_t *cref)
{
    int lfd = fc_unix_listener("drain.sock");

    main_worker = fc_gw.w;
    cref_refs = atomic_load(&cref->refs);
    own_cref = cref;
    fc_worker_start(2, lfd, cref, &fc_gw.w);
    fc_own_worker = true;
    drained = false;
    fc_settle();
}

/* No exchange in progress on the client's connection: what it sent so far ends with a whole
 * request, every request an upstream began was answered and written, the client reads. */
static bool client_idle(const uint8_t *cin, size_t sent)
{
    int i, k;

    fc_parse_sent(cin, sent);
    if (fc_sent.tail_len != 0 || fc_cl.paused || fc_up.hold)
        return false;
    for (i = 0; i < fc_up.n; i++) {
        const upconn_t *u = &fc_up.c[i];

        if (u->fd < 0)
            continue;
        if (u->deaf || u->owed || u->out_off != u->out_len || u->nstart != u->nreq)
            return false;
        for (k = 0; k < u->nreq; k++)
            if (!u->answered[k])
                return false;
    }
    return true;
}

void fc_drain(const uint8_t *cin, size_t sent)
{
    if (drained)
        return;
    drained = true;
    drain_begun = begun_upstream();
    drain_idle = client_idle(cin, sent);
    pg_worker_stop(fc_gw.w, FC_DRAIN_MS);
    fc_settle();
}

/* After the drain was asked for: at most the exchange in progress (and its one retry) went
 * upstream, none when the connection was idle; once it is done, with nothing more of a
 * request in, the connection is closed (no timer needed). An exchange whose connect never
 * completes is not done until connect_timeout (oracle 8 holds it to that). Not strict (UP_RAW:
 * the upstream's bytes need not be a whole response, so the exchange may still be waiting
 * for the rest, up to the upstream's timeout -- oracle 5 holds it to that): only the first
 * half. */
void fc_check_drain(bool strict)
{
    if (!drained)
        return;
    if (begun_upstream() - drain_begun > (drain_idle ? 0 : 2))
        fc_finding(drain_idle ? "a request went upstream after the drain of an idle connection"
                              : "requests went upstream after the drain began (beyond the one "
                                "in progress)",
                   NULL);
    if (strict && fc_cl.fd >= 0 && !fc_cl.eof && fc_sent.tail_len == 0 && !fc_timed &&
        !fc_up_stalled())
        fc_finding("a drained connection with no request in progress stayed open", NULL);
}

/* After the drain deadline and the teardown: the worker has ended, holding nothing. */
void fc_own_worker_end(void)
{
    pg_worker_t *w = fc_gw.w;

    if (drained) {
        if (w->nconns != 0 || uv_loop_alive(&w->loop))
            fc_finding("a drained worker still has connections or handles after its deadline",
                       NULL);
        if (w->bufs.nlive != 0)
            fc_finding("pg_buf references leaked (drained worker)", NULL);
    } else {
        pg_worker_stop(w, 0);
        fc_settle();
        if (uv_loop_alive(&w->loop))
            fc_fail("a drain run's worker did not stop");
    }
    pg_worker_join(w);
    fc_gw.w = main_worker;
    fc_own_worker = false;
    if (atomic_load(&fc_gw.limit.used) != 0)
        fc_finding("server.max_connections slots not given back (drained worker)", NULL);
    if (atomic_load(&own_cref->refs) != cref_refs)
        fc_finding("configuration references left by a drained worker", NULL);
}
