/* pg_conn_own: the answers the gateway gives itself, without an upstream: its errors
 * (each naming its cause, counted by cause), server.metrics_path, the viewer page (pg_ui),
 * and the pprof gate that decides whether a profile request goes on to its agent. Each
 * answer is one buffer, written whole, after which the connection closes.
 * Loop thread of the owning worker only; see pg_conn_int.h. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "pg_buf.h"
#include "pg_http.h"
#include "pg_log.h"
#include "pg_metrics.h"
#include "pg_policy.h"
#include "pg_route.h"
#include "pg_ui.h"

#define PG_CONN_PROFILE_MARGIN_MS 10000 /* a profile's upstream budget: its seconds + this */

/* A whole answer of the gateway's own (an error, metrics, the viewer) in one buffer: written,
 * then the connection closed. Takes over the caller's reference to b. The answer to a HEAD
 * is its head only (RFC 9110 9.3.2), Content-Length as for a GET. */
static void answer_and_close(pg_conn_t *c, pg_buf_t *b, size_t len)
{
    const char *e;
    uv_buf_t ub;
    int r;

    if (c->x && c->x->head_done && c->x->method == HTTP_HEAD &&
        (e = memmem(b->data, len, "\r\n\r\n", 4)) != NULL)
        len = (size_t)(e + 4 - b->data);
    ub = uv_buf_init(b->data, (unsigned)len);
    r = pg__conn_client_write(c, &ub, 1, b);

    pg_buf_unref(b);
    if (r < 0)
        pg_conn_abort(c);
    else
        pg__conn_close(c);
}

/* pg__conn_send_error with extra header lines (CRLF-terminated; "" for none). Sets the
 * exchange's cause from the status unless one was set already. Once bytes of a response
 * have gone to the client a status is too late: the connection is cut instead. */
static void send_error_ex(pg_conn_t *c, int status, const char *msg, const char *extra)
{
    bool pprof = c->x && c->x->pprof;
    pg_buf_t *b;
    size_t n;

    pg_log_debug("%d %s", status, msg);
    if (c->x && c->x->cause < 0) {
        switch (status) {
        case 400: c->x->cause = PG_ERR_BAD_REQUEST; break;
        case 401:
        case 403: c->x->cause = PG_ERR_PPROF_DENIED; break;
        case 404: c->x->cause = c->x->pprof ? PG_ERR_PPROF_OFF : PG_ERR_NO_ROUTE; break;
        case 408: c->x->cause = PG_ERR_HEADER_TIMEOUT; break;
        case 413: c->x->cause = PG_ERR_BODY_TOO_LARGE; break;
        case 431: c->x->cause = PG_ERR_HEAD_TOO_LARGE; break;
        case 501: c->x->cause = PG_ERR_UPGRADE; break;
        case 502: c->x->cause = PG_ERR_UNREACHABLE; break;
        case 504: c->x->cause = PG_ERR_UPSTREAM_TIMEOUT; break;
        default: break;
        }
    }
    if (c->x && c->x->resp_out) {
        pg_conn_abort(c); /* too late for a status: cut the response */
        return;
    }
    /* a response head parsed but not sent yet (its outq dropped) is replaced by this one */
    if (c->x)
        c->x->status = status;
    b = pg_buf_get(&c->w->bufs, PG_BUF_SIZE);
    if (b == NULL) {
        pg_conn_abort(c);
        return;
    }
    n = pg_http_error_response_ex(b->data, b->cap, status, msg, pprof, true, extra);
    if (n == 0)
        n = pg_http_error_response(b->data, b->cap, status, "error", pprof, true);
    answer_and_close(c, b, n);
}

void pg__conn_send_error(pg_conn_t *c, int status, const char *msg)
{
    send_error_ex(c, status, msg, "");
}

/* The pprof gate (pg_policy_check) for the exchange's request: true to forward it, with the
 * timeout budget stretched for a profile's duration; false when it was answered. */
bool pg__conn_pprof_gate(pg_conn_t *c)
{
    xchg_t *x = c->x;
    const pg_config_t *cfg = x->gen->cfg;
    pg_policy_req_t r = {
        .up = x->up,
        .up_index = (size_t)(x->up - cfg->upstreams),
        .limits = x->gen->cref->limits,
        .peer = &c->peer.sa,
        .query = x->req.buf->data + x->query_off + (x->query_len ? 1 : 0),
        .query_len = x->query_len ? x->query_len - 1 : 0,
        .rest = x->pprof_rest,
        .rest_len = x->pprof_rest_len,
    };
    pg_policy_verdict_t v;
    uint64_t ms;

    r.authorization = pg_head_get(&x->req, "authorization", &r.authorization_len);
    if (pg_policy_check(&r, &v) != 0) {
        if (v.status == 400)
            x->cause = PG_ERR_PPROF_LIMIT;
        else if (v.status == 409)
            x->cause = PG_ERR_PPROF_BUSY;
        send_error_ex(c, v.status, v.msg,
                      v.status == 401 ? "WWW-Authenticate: Bearer realm=\"profgate pprof\"\r\n"
                                      : "");
        return false;
    }
    x->agent = v.agent;
    ms = (uint64_t)v.seconds * 1000 + PG_CONN_PROFILE_MARGIN_MS;
    if (v.seconds && ms > x->budget_ms)
        x->budget_ms = ms;
    return true;
}

/* GET <server.metrics_path>: Prometheus text, for clients in server.metrics_allow (default:
 * the global pprof.allow). Answered with Connection: close. */
void pg__conn_serve_metrics(pg_conn_t *c)
{
    char *text = NULL, head[256];
    size_t len = 0;
    pg_buf_t *b;
    FILE *f;
    int k;

    if (!pg_policy_metrics_allowed(c->x->gen->cfg, &c->peer.sa)) {
        pg__conn_send_error(c, 403, c->x->gen->cfg->server.has_metrics_allow
                                        ? "metrics access denied: client is not in "
                                          "server.metrics_allow"
                                        : "metrics access denied: client is not in pprof.allow");
        return;
    }
    f = open_memstream(&text, &len);
    if (f == NULL) {
        pg__conn_send_error(c, 500, "out of memory");
        return;
    }
    pg_metrics_render(f);
    fclose(f);
    k = snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 len);
    b = pg_buf_get(&c->w->bufs, (size_t)k + len);
    if (b == NULL) {
        free(text);
        pg__conn_send_error(c, 500, "out of memory");
        return;
    }
    memcpy(b->data, head, (size_t)k);
    memcpy(b->data + k, text, len);
    free(text);
    c->x->status = 200;
    answer_and_close(c, b, (size_t)k + len);
}

/* "<pprof.path>/ui/...": the viewer page, answered here by pg_ui, which applies the matched
 * upstream's pprof policy itself (see pg_ui.h: static files need no token). */
void pg__conn_ui_answer(pg_conn_t *c, const pg_route_match_t *m)
{
    xchg_t *x = c->x;
    pg_ui_request_t r = {.cfg = x->gen->cfg, .routes = x->gen->routes, .up = m->upstream,
                         .peer = &c->peer.sa, .method = llhttp_method_name(x->method),
                         .rest = m->pprof_rest, .rest_len = m->pprof_rest_len};
    pg_buf_t *b;

    r.authorization = pg_head_get(&x->req, "authorization", &r.authorization_len);
    if (pg_ui_respond(&r, &c->w->bufs, &b) < 0) {
        pg__conn_send_error(c, 500, "out of memory");
        return;
    }
    x->status = pg_ui_status(b);
    x->bytes_out = b->len;
    answer_and_close(c, b, b->len);
}
