/* pg_conn_xchg: an exchange's life once its request head is routed: the upstream connection
 * acquired (pooled, or connecting: the head is written once connected), the head written
 * rewritten with the body bytes held with it; and its end: finished (both messages
 * complete: the upstream connection back to its pool, then keep-alive, with any pipelined
 * bytes, or close), dropped (the connection closes mid-exchange), or failed (the upstream
 * refused, closed or reset: one retry for an idempotent request that nothing of was
 * answered, else a 502 naming the upstream, or a cut response once bytes have left).
 * Every exchange ends in exchange_done: counted once, one access log line.
 * Loop thread of the owning worker only; see pg_conn_int.h. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <llhttp.h>

#include "pg_access.h"
#include "pg_buf.h"
#include "pg_config.h"
#include "pg_head.h"
#include "pg_http.h"
#include "pg_log.h"
#include "pg_metrics.h"
#include "pg_policy.h"
#include "pg_upstream.h"

/* The client's bytes kept while the exchange could not take them (c->pend: the upstream was
 * connecting, or they are pipelined behind a response) are parsed now; or reading resumes. */
static void resume_client(pg_conn_t *c)
{
    pg_buf_t *pend = c->pend;

    if (pend == NULL) {
        pg__conn_update_reading(c);
        return;
    }
    c->pend = NULL;
    pg__conn_process_client(c, pend, c->pend_off, c->pend_len, true);
    pg_buf_unref(pend);
}

/* ---------------- to the upstream ---------------- */

/* The peer's address text for X-Forwarded-For, made on the connection's first request. */
static void peer_text(pg_conn_t *c)
{
    if (c->peer_text_len == 0)
        c->peer_text_len =
            (uint8_t)pg_http_addr_text(&c->peer.sa, c->peer_text, sizeof c->peer_text);
}

/* The request head, rewritten (pg_head_request_out), in one uv_write of iovecs; then the
 * body bytes held with it. */
static int write_request_head(pg_conn_t *c)
{
    xchg_t *x = c->x;
    const pg_config_server_t *srv = &x->gen->cfg->server;
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    pg_head_req_out_t o = {
        .method = llhttp_method_name(x->method),
        .path_off = x->path_off,
        .pprof = x->pprof,
        .pprof_rest = x->pprof_rest,
        .pprof_rest_len = x->pprof_rest_len,
        .query_off = x->query_off,
        .query_len = x->query_len,
        .add_forwarded = srv->add_forwarded,
        .add_via = srv->add_via,
        .drop_authorization = x->pprof && x->up->pprof.token != NULL,
        .client = &c->peer.sa,
        .default_host = x->pprof ? "localhost" : x->up->address.text,
    };
    unsigned n;
    int r;

    if (x->auth_len) {
        o.host = x->req.buf->data + x->auth_off;
        o.host_len = x->auth_len;
    }
    if (srv->add_forwarded) {
        peer_text(c);
        o.client_text = c->peer_text_len ? c->peer_text : NULL;
        o.client_text_len = c->peer_text_len;
    }
    r = pg_head_request_out(&x->req, &o, bufs, &n);
    if (r < 0)
        return r;
    r = pg__conn_upstream_write(c, bufs, n, x->req.buf);
    if (r == 0 && x->held && x->held->len) {
        uv_buf_t hb = uv_buf_init(x->held->data, x->held->len);

        r = pg__conn_upstream_write(c, &hb, 1, x->held);
    }
    return r;
}

static void on_uconn_connect(pg_uconn_t *u, int status)
{
    pg_conn_t *c = u->owner;
    int r;

    if (status < 0) {
        pg__conn_upstream_failed(c, status);
        return;
    }
    r = write_request_head(c);
    if (r < 0) {
        pg__conn_upstream_failed(c, r);
        return;
    }
    pg__conn_arm(c, T_UPSTREAM, c->x->budget_ms);
    pg_upstream_read(u, true);
    resume_client(c); /* body bytes that came with the head, if any */
}

static const pg_uconn_ops_t uconn_ops = {
    .on_connect = on_uconn_connect,
    .on_read = pg__resp_on_read,
};

void pg__conn_start_upstream(pg_conn_t *c)
{
    xchg_t *x = c->x;
    pg_gen_t *g = x->gen;
    pg_pool_t *pool = x->pprof ? NULL : &g->pools[x->up - g->cfg->upstreams];
    int r;

    r = pg_upstream_acquire(c->w, pool, &x->up->agent, &uconn_ops, c, &x->u);
    if (r < 0) {
        x->u = NULL;
        pg__conn_upstream_failed(c, r);
        return;
    }
    llhttp_init(&x->u->parser, HTTP_RESPONSE, pg__resp_settings());
    x->u->parser.data = c;
    if (!x->u->connected) {
        /* the head is written once connected (a unix: stream is not writable before);
         * meanwhile the client's further bytes wait (pend) */
        pg__conn_arm(c, T_CONNECT, x->up->connect_timeout_ms);
        return;
    }
    r = write_request_head(c);
    if (r < 0) {
        pg__conn_upstream_failed(c, r);
        return;
    }
    pg__conn_arm(c, T_UPSTREAM, x->budget_ms);
    pg_upstream_read(x->u, true);
}

/* ---------------- retry or fail ---------------- */

static bool idempotent(uint8_t method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
           method == HTTP_TRACE || method == HTTP_PUT || method == HTTP_DELETE;
}

/* The exchange tries again (x->retried set by the caller, x->u closed): a connection from the
 * pool is written to at once, and then the client's bytes kept meanwhile (c->pend: the rest
 * of the request, which waited while the first connection was connecting) must be parsed
 * here, as on_uconn_connect does for a new one -- else a body-less request never completes
 * and its response closes the connection. */
static void retry_upstream(pg_conn_t *c)
{
    c->x->u = NULL;
    c->x->up_writes = 0;
    pg__conn_start_upstream(c);
    if (c->state == C_FORWARD && c->x && c->x->u && c->x->u->connected)
        resume_client(c);
}

void pg__conn_upstream_failed(pg_conn_t *c, int err)
{
    xchg_t *x = c->x;
    const char *twice;
    char msg[512];

    if (x == NULL)
        return;
    /* A pooled connection the upstream closed meanwhile: try once on a fresh one -- for an
     * idempotent request only (RFC 9110 9.2.2): the upstream may have read the whole request,
     * acted on it, and closed before answering; a POST (even without a body) must not happen
     * twice. */
    if (x->u && x->u->reused && !x->resp_started && !x->retried && !x->req_has_body &&
        idempotent(x->method) && !x->got_resp_bytes &&
        (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE)) {
        pg_pool_t *pool = x->u->pool;

        pg_upstream_close(x->u);
        /* if one pooled connection went stale (upstream restarted?), so did the rest */
        if (pool)
            pg_pool_close_idle(pool);
        x->retried = true;
        if (x->resp.buf)
            x->resp.buf->len = 0;
        retry_upstream(c);
        return;
    }
    /* A refused connect sent nothing: an idempotent request (RFC 9110 9.2.2) tries once
     * more, on a connection that went idle in the pool meanwhile or a new one (another
     * process on an SO_REUSEPORT port, an upstream back from a restart). Agents are one
     * socket of one process: not retried. */
    if (x->u && !x->u->connected && err == UV_ECONNREFUSED && !x->pprof && !x->retried &&
        idempotent(x->method)) {
        pg_upstream_close(x->u);
        x->retried = true;
        x->retried_refused = true;
        retry_upstream(c);
        return;
    }
    if (x->resp_started) {
        pg_log_debug("upstream \"%s\" failed mid-response: %s", x->up->name, uv_strerror(err));
        x->cause = PG_ERR_UPSTREAM_CUT;
        pg_conn_abort(c);
        return;
    }
    twice = x->retried_refused || x->retried_timeout ? " (tried twice)" : "";
    if (x->pprof)
        snprintf(msg, sizeof msg, "agent of \"%s\" (%s) unreachable: %s", x->up->name,
                 x->up->agent.text, uv_strerror(err));
    else
        snprintf(msg, sizeof msg, "upstream \"%s\" (%s) unreachable: %s%s", x->up->name,
                 x->up->address.text, uv_strerror(err), twice);
    if (err == UV_EOF || err == UV_ECONNRESET)
        x->cause = PG_ERR_UPSTREAM_CLOSED;
    if (err == UV_EOF || err == UV_ECONNRESET)
        snprintf(msg, sizeof msg, "%s \"%s\" (%s) closed the connection before responding%s",
                 x->pprof ? "agent of" : "upstream", x->up->name,
                 x->pprof ? x->up->agent.text : x->up->address.text, twice);
    pg_log_warn("%s", msg);
    pg__conn_send_error(c, 502, msg);
}

/* upstream.connect_timeout ran out, so nothing of the request was sent (a stream is written
 * only once connected). An idempotent application request not retried yet goes once more
 * on a connection that went idle in the upstream's pool meanwhile, if there is one (issue
 * 5). No second connect is started: an upstream that answered no SYN within connect_timeout
 * would most likely make the client wait a second connect_timeout for the same 502 (nginx's
 * proxy_next_upstream moves on to another server, never to the same one again); a pooled
 * connection costs no wait, and if it fails (closed meanwhile) that is the 502. Agents are
 * never pooled: not retried. */
void pg__conn_connect_timed_out(pg_conn_t *c)
{
    xchg_t *x = c->x;
    const pg_gen_t *g = x->gen;
    const pg_pool_t *pool = x->pprof ? NULL : &g->pools[x->up - g->cfg->upstreams];
    char msg[300];

    if (pool && pool->nidle > 0 && !x->retried && idempotent(x->method)) {
        pg_log_info("upstream \"%s\" (%s): connect timed out after %llu ms; retried on a "
                    "pooled connection", x->up->name, x->up->address.text,
                    (unsigned long long)x->up->connect_timeout_ms);
        pg_upstream_close(x->u);
        x->retried = true;
        x->retried_timeout = true;
        retry_upstream(c);
        return;
    }
    snprintf(msg, sizeof msg, "%s \"%s\" (%s) unreachable: connect timed out after %llu ms%s",
             x->pprof ? "agent of" : "upstream", x->up->name,
             x->pprof ? x->up->agent.text : x->up->address.text,
             (unsigned long long)x->up->connect_timeout_ms,
             x->retried_refused ? " (tried twice)" : "");
    pg_log_warn("%s", msg);
    pg__conn_send_error(c, 502, msg);
}

/* ---------------- the end ---------------- */

/* The exchange is over (answered, or cut): count it and write its access log line. */
static void exchange_done(pg_conn_t *c)
{
    xchg_t *x = c->x;
    pg_metrics_t *m = c->w->metrics;
    pg_cfgref_t *cref;
    pg_access_entry_t e;

    if (x && x->agent) {
        pg_policy_agent_give(x->agent);
        x->agent = NULL;
    }
    if (x == NULL || x->gen == NULL || x->req.buf == NULL)
        return; /* nothing of a request was received */
    pg_metrics_count_request(m, x->route_slot, x->status);
    if (x->cause >= 0)
        pg_metrics_count_error(m, (pg_err_cause_t)x->cause);
    cref = x->gen->cref;
    if (cref->access_fd < 0)
        return;
    memset(&e, 0, sizeof e);
    e.peer = &c->peer.sa;
    e.method = x->head_done ? llhttp_method_name(x->method) : "-";
    e.target = x->req.buf->data;
    e.target_len = x->req.first_len;
    e.http_major = c->req.http_major;
    e.http_minor = c->req.http_minor;
    e.status = x->status;
    e.bytes_out = x->bytes_out;
    e.referer = pg_head_get(&x->req, "referer", &e.referer_len);
    e.ua = pg_head_get(&x->req, "user-agent", &e.ua_len);
    e.upstream = x->up ? x->up->name : NULL;
    e.duration_us = x->t_head ? (uv_hrtime() - x->t_head) / 1000 : 0;
    e.cause = x->cause >= 0 ? pg_metrics_cause_name((pg_err_cause_t)x->cause) : NULL;
    pg_access_write(cref->access_fd, cref->cfg->server.access_log_format, &e);
}

/* The exchange ends here, whatever state it is in: counted and logged, its upstream
 * connection back to the pool (upstream_reusable, and no write of ours pending) or closed,
 * its buffers and its memory given back. */
void pg__conn_drop_exchange(pg_conn_t *c, bool upstream_reusable)
{
    xchg_t *x = c->x;

    if (x == NULL)
        return;
    exchange_done(c);
    if (x->u) {
        x->u->owner = NULL;
        if (upstream_reusable && x->up_writes == 0)
            pg_upstream_release(x->u, true);
        else
            pg_upstream_close(x->u);
        x->u = NULL;
    }
    pg_head_release(&x->req);
    pg_head_release(&x->resp);
    if (x->held)
        pg_buf_unref(x->held);
    if (x->gen)
        pg__gen_unref(x->gen);
    pg_bufpool_obj_put(&c->w->bufs, x);
    c->x = NULL;
}

/* Both messages of the exchange are complete: give the upstream connection back, and
 * either go on with the client (keep-alive, maybe with pipelined bytes) or close it. */
void pg__conn_finish_exchange(pg_conn_t *c)
{
    xchg_t *x = c->x;
    bool reusable =
        x->u && x->up_writes == 0 && !x->up_dirty && llhttp_should_keep_alive(&x->u->parser);

    exchange_done(c);
    if (x->u) {
        pg_uconn_t *u = x->u;

        x->u = NULL;
        u->owner = NULL;
        pg_upstream_release(u, reusable);
    }
    /* the exchange's memory goes back to the worker for the next request (any connection's) */
    if (x->gen) {
        pg__gen_unref(x->gen);
        x->gen = NULL;
    }
    if (x->resp.buf) {
        pg_buf_unref(x->resp.buf);
        x->resp.buf = NULL;
    }
    if (x->req.buf) {
        pg_buf_unref(x->req.buf);
        x->req.buf = NULL;
    }
    if (x->held)
        pg_buf_unref(x->held);
    pg_bufpool_obj_put(&c->w->bufs, x);
    c->x = NULL;
    if (!c->keep_alive || c->close_after || c->w->draining) {
        pg__conn_close(c);
        return;
    }
    c->state = C_IDLE;
    pg__conn_arm(c, T_IDLE, c->w->gen->cfg->server.idle_timeout_ms);
    resume_client(c);
}
