/* pg_conn: the client connection state machine.
 *
 * A connection carries a sequence of exchanges (one request, one response). Each side is
 * parsed by llhttp (HTTP_REQUEST for the client, HTTP_RESPONSE for the upstream) only to
 * learn where heads and messages end: the parsers pause (HPE_PAUSED) at the end of every
 * head and every message, and llhttp_get_error_pos() says where. Heads are copied, in wire
 * form, into one head buffer per side and rewritten (hop-by-hop headers dropped,
 * X-Forwarded-* and Via added) into a single write of iovecs; bodies are relayed as the
 * bytes that were read, framing included (Content-Length or chunked), each queued write
 * holding a reference to the read buffer it points into, so the body path makes no copy.
 * Every write is first tried at once (uv_try_write); only what the kernel did not take is
 * queued with uv_write, which saves a request, a callback and an epoll_ctl each time. What one
 * upstream read yields for the client (a response head and the body bytes behind it) is
 * gathered in an outq and leaves in one writev. (Only an HTTP/1.0 client of a chunked
 * response gets the payload without the framing, from llhttp's on_body, and a close.)
 *
 *   IDLE --first byte--> HEAD --head complete--> route (by an absolute-form target's
 *                                                authority, else Host), pprof policy (allow, token,
 *                                                agent, max_seconds, max_concurrent),
 *                                                /metrics, pg_ui
 *        --> local answer (4xx/5xx, then close)                     or
 *        --> upstream acquired (pooled; or connecting: the head is written once connected,
 *            the client's further bytes wait until then, one buffer of them at most)
 *            (a chunked request's head waits until its first chunk-size line has parsed,
 *            with every byte read along with it: bad framing that comes with the head is
 *            answered 400 before anything goes upstream; bad framing later in the body
 *            closes the upstream connection, which then holds a truncated request)
 *            FORWARD: request body -> upstream, response head + body -> client
 *            both messages complete --> upstream back to its pool --> IDLE (keep-alive)
 *                                                                  or close
 *
 * Pipelining: the request parser pauses after each message; bytes after it are held (one
 * buffer reference) with reading stopped until the response is complete, then parsed: so
 * responses go out in request order and nothing more is buffered.
 * Backpressure: reading from one side stops while the other side's write queue is above
 * PG_CONN_WQ_HIGH, and resumes when a write completes below it.
 * Timeouts: one timer per connection, armed for the current state: header_timeout from the
 * first byte of a request (408), idle_timeout between requests (silent close),
 * connect_timeout (502, or an idempotent request tried once more on a pooled connection
 * if one is idle by then: pg_conn_xchg.c), the upstream's timeout between upstream reads
 * (504 before the response head; a cut response after) -- or, for profile requests,
 * seconds + a margin.
 * A reused pooled connection that fails before any response byte, for a request without a
 * body, is retried once on a new connection (the upstream may have closed it meanwhile).
 * A client that leaves: the client is read while its exchange waits on the upstream (its
 * connect, or the response head), so that a reset, or a close before its request is whole,
 * ends the exchange at once (status 499 and cause client_gone in the access log and the
 * metrics, as nginx's "client closed request"; the upstream connection closed, never
 * pooled: it may still be working on the request). What is read meanwhile is kept (c->pend)
 * and reading stops once one buffer is held, as for pipelining, so a client that keeps
 * sending is bounded -- and its close is seen only once reading resumes. An EOF after a
 * complete request is a half-close (shutdown(SHUT_WR): legal, and the client still expects
 * its response): the response is finished, then the connection closes. Neither libuv nor
 * the socket tells that FIN from a full close (both leave our side in CLOSE_WAIT; only a
 * write that draws a RST would), so a client that closes, rather than resets, after a whole
 * request is seen to have gone only when its response is written -- except for profile
 * requests: a FIN there ends the exchange (a profile client never half-closes, and Ctrl-C
 * on go tool pprof must not leave a 30 s profile running on the agent).
 * Closing: after the last response, shutdown (FIN) and then read-and-discard until the
 * client closes (PG_CONN_LINGER_MS at most), so that a body we refused cannot make the
 * kernel answer with a RST that destroys the response before the client reads it.
 * Files: this one has the connection and the request half; the exchange's life (to the
 * upstream, retry or fail, finish) is pg_conn_xchg.c; the response half (parse, rewrite,
 * relay) is pg_resp.c; the write path (try_write, queued writes, the outq) pg_conn_write.c;
 * the request body (chunk checks, holding, 4xx for what llhttp refused) pg_conn_body.c; the
 * request head's line ends pg_conn_lines.c; the gateway's own answers (errors, metrics,
 * viewer, the pprof gate's verdict) pg_conn_own.c; the pprof policy itself is pg_policy.c.
 * What these files share is in pg_conn_int.h. */
#include "pg_conn.h"
#include "pg_conn_int.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>

#include <llhttp.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_head.h"
#include "pg_http.h"
#include "pg_log.h"
#include "pg_metrics.h"
#include "pg_route.h"
#include "pg_ui.h"
#include "pg_upstream.h"

#define PG_CONN_LINGER_MS 5000 /* closing: to send the last response and to see the client go */

static const llhttp_settings_t *req_settings(void);

/* Keep [off, off+len) of b for later (pipelined, or the upstream still connecting). A held
 * buffer can be one with no bytes left (the request head ended the read: kept so that the
 * message is completed once the exchange can take it), which reading while the upstream
 * connects replaces. */
static void pend_set(pg_conn_t *c, pg_buf_t *b, uint32_t off, uint32_t len)
{
    assert(c->pend == NULL || c->pend_len == 0); /* reading stops while bytes are held */
    if (c->pend)
        pg_buf_unref(c->pend);
    c->pend = pg_buf_ref(b);
    c->pend_off = off;
    c->pend_len = len;
}

pg_conn_t *pg__conn_next(pg_conn_t *c)
{
    return c->next;
}

static pg_buf_t *buf_of(const uv_buf_t *buf)
{
    return (pg_buf_t *)(void *)(buf->base - offsetof(pg_buf_t, data));
}

/* ---------------- timers ---------------- */

static void on_timeout(uv_timer_t *t);

/* The state's deadline is now + ms. Restarting a libuv timer on every read is a heap
 * update each time; instead a timer already due no later than the new deadline is left
 * running, and on_timeout re-arms for the rest when it fires early. */
void pg__conn_arm(pg_conn_t *c, int mode, uint64_t ms)
{
    c->timer_mode = mode;
    c->deadline = uv_now(&c->w->loop) + ms;
    if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= ms)
        return;
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* ---------------- closing ---------------- */

static void on_handle_close(uv_handle_t *h)
{
    pg_conn_t *c = h->data;

    if (--c->open_handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pg_metrics_conn(c->w->metrics, -1);
    pg__worker_conn_gone(c->w, c);
    free(c);
}

void pg_conn_abort(pg_conn_t *c)
{
    if (c->closed)
        return;
    c->closed = true;
    c->state = C_CLOSING;
    pg__conn_drop_exchange(c, false);
    if (c->pend) {
        pg_buf_unref(c->pend);
        c->pend = NULL;
    }
    if (c->wb_pending)
        pg_wbatch_flush(c->w->wbatch); /* written, or failed, before the descriptor closes */
    uv_close((uv_handle_t *)&c->tcp, on_handle_close);
    uv_close((uv_handle_t *)&c->timer, on_handle_close);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void on_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pg_conn_t *c = s->data;

    if (buf->base)
        pg_buf_unref((pg_buf_t *)(void *)(buf->base - offsetof(pg_buf_t, data)));
    if (nread < 0)
        pg_conn_abort(c);
}

/* Our FIN is out. Closing now could make the kernel answer bytes the client is still
 * sending (a body we refused) with a RST that destroys the response before the client
 * reads it; so read and discard until the client closes, for PG_CONN_LINGER_MS at most. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    pg_conn_t *c = req->data;

    free(req);
    if (status < 0 || c->closed ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read) < 0) {
        pg_conn_abort(c);
        return;
    }
    if (c->timer_mode == T_FLUSH) /* the last bytes have reached the kernel: linger now */
        pg__conn_arm(c, T_LINGER, PG_CONN_LINGER_MS);
}

/* Close after every pending write has reached the kernel (FIN after the response). */
void pg__conn_close(pg_conn_t *c)
{
    uv_shutdown_t *req;

    if (c->state == C_CLOSING)
        return;
    pg__conn_drop_exchange(c, false);
    req = malloc(sizeof *req);
    if (req == NULL) {
        pg_conn_abort(c);
        return;
    }
    req->data = c;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    c->state = C_CLOSING;
    /* The FIN leaves once our queued writes have; until then the client is still owed part
     * of the last response, and has server.idle_timeout to take some of it (T_FLUSH, see
     * on_timeout): the 5 s of linger cut a client that paused at the end of a large
     * response, with Connection: close, its last ~300 KiB never sent. */
    if (c->wb_pending)
        pg_wbatch_flush(c->w->wbatch); /* the response before the FIN */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0) {
        c->flush_seen = SIZE_MAX;
        pg__conn_arm(c, T_FLUSH, c->w->gen->cfg->server.idle_timeout_ms);
    } else {
        pg__conn_arm(c, T_LINGER, PG_CONN_LINGER_MS);
    }
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        pg_conn_abort(c);
    }
}

void pg_conn_drain(pg_conn_t *c)
{
    c->keep_alive = false;
    if (c->state == C_IDLE && c->x == NULL)
        pg__conn_close(c);
    else
        c->close_after = true;
}

/* ---------------- reading control ---------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    pg_conn_t *c = h->data;
    pg_buf_t *b = pg_buf_get(&c->w->bufs, PG_BUF_SIZE);

    (void)hint;
    buf->base = b ? b->data : NULL;
    buf->len = b ? b->cap : 0;
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void pg__conn_update_reading(pg_conn_t *c)
{
    xchg_t *x = c->x;
    bool want = true;

    if (c->state == C_CLOSING)
        return;
    /* Read while the upstream connects (a client that resets is seen at once), until a
     * buffer with bytes is held: bounded, and a close behind them is seen only later. */
    if ((c->pend != NULL && c->pend_len > 0) || c->rd_eof)
        want = false;
    if (x && x->u && uv_stream_get_write_queue_size(&x->u->h.stream) > PG_CONN_WQ_HIGH)
        want = false;
    if (want != c->reading) {
        if (want)
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_client_read);
        else
            uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = want;
    }
    if (x && x->u && x->u->connected)
        pg_upstream_read(x->u, uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <=
                                   PG_CONN_WQ_HIGH);
}

/* ---------------- request parser callbacks ---------------- */

static int on_req_begin(llhttp_t *p)
{
    pg_conn_t *c = p->data;
    pg_gen_t *g = c->w->gen;
    xchg_t *x = c->x;

    if (x == NULL) {
        x = pg_bufpool_obj_get(&c->w->bufs, sizeof *x);
        if (x == NULL)
            return -1;
        c->x = x;
    }
    /* everything but the header index arrays, which are written before they are read */
    memset(&x->req, 0, offsetof(pg_head_t, f));
    memset(&x->resp, 0, offsetof(pg_head_t, f));
    memset(&x->gen, 0, sizeof *x - offsetof(xchg_t, gen));
    x->gen = g;
    x->cause = -1;
    x->route_slot = g->none_slot;
    pg__gen_ref(g);
    pg_head_reset(&x->req, g->cfg->server.max_header_bytes);
    c->state = C_HEAD;
    pg__conn_arm(c, T_HEAD, g->cfg->server.header_timeout_ms);
    return 0;
}

static int on_req_url(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;

    return pg_head_first(&c->x->req, &c->w->bufs, at, len);
}

/* The field callbacks after the head (head_done) are a chunked body's trailer section: it
 * goes on as body bytes, as read, and must not reach the head, which a held head (see
 * on_request_head) is rewritten from only after the body has parsed: a trailer
 * "Content-Length: 5" would have gone on as a head field beside Transfer-Encoding. */
static int on_req_field(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;

    if (c->x->head_done)
        return 0;
    return pg_head_field(&c->x->req, &c->w->bufs, at, len);
}

static int on_req_field_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    if (c->x->head_done)
        return 0;
    return pg_head_field_done(&c->x->req, &c->w->bufs);
}

static int on_req_value(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;

    if (c->x->head_done)
        return 0;
    return pg_head_append(&c->x->req, &c->w->bufs, at, len);
}

static int on_req_value_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    if (c->x->head_done)
        return 0;
    return pg_head_value_done(&c->x->req, &c->w->bufs);
}

static int on_req_headers_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    c->ev_head = true;
    return HPE_PAUSED;
}

static int on_req_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    c->ev_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t *req_settings(void)
{
    /* constant: workers start parsers concurrently, so no lazy initialisation (a data race
     * under TSan: one worker's llhttp_settings_init memset while another parses) */
    static const llhttp_settings_t s = {
        .on_message_begin = on_req_begin,
        .on_url = on_req_url,
        .on_header_field = on_req_field,
        .on_header_field_complete = on_req_field_done,
        .on_header_value = on_req_value,
        .on_header_value_complete = on_req_value_done,
        .on_headers_complete = on_req_headers_done,
        .on_body = pg__conn_on_req_body,
        .on_chunk_header = pg__conn_on_req_chunk_header,
        .on_message_complete = on_req_done,
    };

    return &s;
}

/* ---------------- request head: route, policy, forward ---------------- */

/* Whether Host value [v, v+n) is uri-host [ ":" port ] as far as its bytes go (RFC 9112 3.2,
 * RFC 3986 3.2.2): unreserved, pct-encoded, sub-delims, ':' and the brackets of an IP
 * literal. Anything else (space, '/', '@', '?', '#', '\\', a control byte) would make an
 * upstream that builds URLs from Host, or routes by it, read another authority than the one
 * we routed. *hostlen: the length of its host part (without ":port"), for route matching;
 * one pass for both. */
static bool host_scan(const char *v, size_t n, size_t *hostlen)
{
    /* 1: byte c may not be in a Host value; 0 for "A-Za-z0-9-._~%!$&'()*+,;=:[]" (the bytes
     * from 128 on, not listed, are 1 too) */
    static const uint8_t bad[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1,
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0,
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1,
        [128 ... 255] = 1,
    };
    char stop = n > 0 && v[0] == '[' ? ']' : ':'; /* [v6]:port, or host:port */
    unsigned any = 0;
    size_t i;

    for (i = 0; i < n && v[i] != stop; i++)
        any |= bad[(unsigned char)v[i]];
    *hostlen = stop == ']' && i < n ? i + 1 : i;
    for (; i < n; i++)
        any |= bad[(unsigned char)v[i]];
    return any == 0;
}

/* Field names must be tokens (RFC 9110 5.1): llhttp 8 lets "X A" (and an empty name)
 * through, which an upstream may read as another field or refuse (pg_head_bad_name). (obs-fold
 * is refused while the head is parsed: pg__conn_head_bad.) RFC 9112 3.2: an HTTP/1.1 request
 * without Host, with more than one, or with an invalid one is a 400. Returns the reason, or
 * NULL when the head is fine; the Host value in *hostv (NULL: none), *hostn bytes, of which
 * *hostlen before its port. */
static const char *head_unsafe(const pg_head_t *h, bool http11, const char **hostv,
                               size_t *hostn, size_t *hostlen)
{
    const pg_head_field_t *host = pg_head_find_kind(h, PG_HTTP_HDR_HOST), *bad;
    uint16_t i;

    *hostv = NULL;
    *hostn = *hostlen = 0;

    if (host == NULL && http11)
        return "malformed request: an HTTP/1.1 request without Host (RFC 9112 3.2)";
    /* more than one Host: we route on the first, an upstream might read the last */
    for (i = host ? (uint16_t)(host - h->f) + 1 : h->n; i < h->n; i++)
        if (h->f[i].kind == PG_HTTP_HDR_HOST)
            return "malformed request: more than one Host field (RFC 9112 3.2)";
    if (host) {
        *hostv = pg_head_value(h, host, hostn);
        if (!host_scan(*hostv, *hostn, hostlen))
            return "malformed request: Host is not a host and port (RFC 9112 3.2)";
    }
    bad = pg_head_bad_name(h);
    if (bad && bad->name_len == 0) /* ": value", which llhttp 8 accepts */
        return "malformed request: a header field name is empty (RFC 9110 5.1)";
    if (bad)
        return "malformed request: a header field name is not a token (RFC 9110 5.1)";
    return NULL;
}

/* RFC 9112 6.1: the only transfer coding relayed is chunked, alone. llhttp 8 reads a list as
 * chunked when it ends in chunked, whatever comes before it, in one field or two
 * ("identity, chunked", or "identity" then "chunked"), and an empty field as none; a
 * recipient that reads the first coding or the first field frames the body otherwise (the
 * TE.TE desync). As nginx, only "chunked" (any case, OWS around it) in one field passes.
 * Returns the reason, or NULL. */
static const char *te_unsafe(const pg_head_t *h)
{
    const pg_head_field_t *te = pg_head_find_kind(h, PG_HTTP_HDR_TRANSFER_ENCODING);
    const char *v;
    size_t len;
    uint16_t i;

    if (te == NULL)
        return NULL;
    for (i = (uint16_t)(te - h->f) + 1; i < h->n; i++)
        if (h->f[i].kind == PG_HTTP_HDR_TRANSFER_ENCODING)
            return "malformed request: more than one Transfer-Encoding field (RFC 9112 6.1)";
    v = pg_head_value(h, te, &len);
    while (len > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len != 7 || strncasecmp(v, "chunked", 7) != 0)
        return "malformed request: Transfer-Encoding other than chunked alone (RFC 9112 6.1)";
    return NULL;
}

static bool expects_continue(const pg_head_t *h)
{
    size_t n;
    const char *v = pg_head_get(h, "expect", &n);

    return v && n == 12 && strncasecmp(v, "100-continue", 12) == 0;
}

/* The request target: origin-form "/path?q", or absolute-form "scheme://authority/path?q"
 * (RFC 9112 3.2.1, 3.2.2), which must be an http or https URI (any case) whose authority is
 * a host and port by Host's rules (host_scan), with a host (RFC 9110 4.2.1) and without
 * userinfo (RFC 9110 4.2.4). RFC 9112 3.2.2: the authority, not Host, names the target's
 * host, so it routes the request and is the Host sent upstream (pg_head_req_out_t.host).
 * *path_off: where the origin-form part begins; *auth_off, *auth_len: the authority (length 0
 * for origin-form), *auth_host: its bytes before the port. Returns the reason for a 400, or
 * NULL. */
static const char *target_scan(const char *url, size_t urllen, size_t *path_off, size_t *auth_off,
                               size_t *auth_len, size_t *auth_host)
{
    const char *s;
    size_t i, n;

    *path_off = *auth_off = *auth_len = *auth_host = 0;
    if (urllen > 0 && url[0] == '/')
        return NULL;
    s = memchr(url, ':', urllen);
    if (s == NULL || (size_t)(s - url) + 3 > urllen || s[1] != '/' || s[2] != '/')
        return "request target must be a path (origin-form) or an http URI (absolute-form)";
    n = (size_t)(s - url);
    if (!((n == 4 && strncasecmp(url, "http", 4) == 0) ||
          (n == 5 && strncasecmp(url, "https", 5) == 0)))
        return "malformed request: the request target's scheme is not http or https (RFC 9110 "
               "4.2)";
    i = n + 3;
    while (i < urllen && url[i] != '/' && url[i] != '?')
        i++;
    *auth_off = n + 3;
    *auth_len = i - (n + 3);
    *path_off = i;
    if (memchr(url + *auth_off, '@', *auth_len) != NULL)
        return "malformed request: userinfo (user@) in the request target (RFC 9110 4.2.4)";
    if (!host_scan(url + *auth_off, *auth_len, auth_host))
        return "malformed request: the request target's authority is not a host and port (RFC "
               "9112 3.2.2)";
    if (*auth_host == 0)
        return "malformed request: the request target's authority has no host (RFC 9110 4.2.1)";
    return NULL;
}

const char *pg__conn_head_target(const llhttp_t *req, const pg_head_t *h, int *status,
                                 pg_conn_target_t *t)
{
    const char *url = h->buf->data, *bad;
    size_t urllen = h->first_len, i, auth_host;

    memset(t, 0, sizeof *t);
    *status = 400;
    if (req->upgrade) {
        *status = 501;
        return "protocol upgrade (Upgrade header, CONNECT) is not supported";
    }
    /* A request line without a version (HTTP/0.9) or the HTTP/2 preface ("PRI * HTTP/2.0")
     * would go on as an HTTP/1.1 request it never was */
    if (req->http_major != 1 || req->method == HTTP_PRI)
        return "malformed request: only HTTP/1.0 and HTTP/1.1 are served";
    /* RFC 9112 6.1: a request whose Transfer-Encoding does not end in chunked has no length
     * an upstream would agree on; llhttp says so only after the head, when it has gone on */
    if ((req->flags & F_TRANSFER_ENCODING) && !(req->flags & F_CHUNKED))
        return "malformed request: Transfer-Encoding must end in chunked (RFC 9112 6.1)";
    /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing (a 1.0
     * recipient does not know it, and would read the chunks as the next request) */
    if ((req->flags & F_TRANSFER_ENCODING) && req->http_minor == 0)
        return "malformed request: Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)";
    if ((bad = head_unsafe(h, req->http_minor == 1, &t->host, &t->host_full, &t->host_len)) !=
            NULL ||
        (bad = te_unsafe(h)) != NULL)
        return bad;
    /* llhttp 8 lets HTAB through in the target; an upstream that splits the request line on
     * any whitespace (RFC 9112 3 allows it) would read another target than the one routed */
    for (i = 0; i < urllen; i++)
        if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f)
            return "malformed request: a control character in the request target";
    /* origin-form "/path?q"; absolute-form "http://host/path?q" is routed by its authority
     * (in place of Host) and goes on as its path, with the authority as Host */
    if ((bad = target_scan(url, urllen, &i, &t->auth_off, &t->auth_len, &auth_host)) != NULL)
        return bad;
    if (t->auth_len > 0) {
        t->host = url + t->auth_off;
        t->host_full = t->auth_len;
        t->host_len = auth_host;
    }
    t->path_off = i;
    for (t->path_len = 0; i + t->path_len < urllen && url[i + t->path_len] != '?'; t->path_len++)
        ;
    t->query_off = i + t->path_len;
    t->query_len = urllen - t->query_off;
    return NULL;
}

int pg__conn_route(const pg_route_table_t *routes, bool has_port_hosts, const char *url,
                   const pg_conn_target_t *t, pg_route_match_t *m)
{
    const char *path = t->path_len ? url + t->path_off : "/";
    size_t pathlen = t->path_len ? t->path_len : 1;

    /* some route names a host with its port: match on the whole Host value first */
    if (t->host && has_port_hosts && pg_route_match(routes, t->host, t->host_full, path, pathlen,
                                                    m) == 0 && m->route->host)
        return 0;
    return pg_route_match(routes, t->host, t->host_len, path, pathlen, m);
}

static void on_request_head(pg_conn_t *c)
{
    xchg_t *x = c->x;
    const pg_config_t *cfg = x->gen->cfg;
    const char *url = x->req.buf->data, *path, *bad;
    size_t pathlen;
    pg_conn_target_t t;
    pg_route_match_t m;
    char msg[512];
    int status;

    x->method = c->req.method;
    x->head_done = true;
    x->t_head = uv_hrtime();
    c->keep_alive = llhttp_should_keep_alive(&c->req) && !c->w->draining;
    x->req_has_body = (c->req.flags & F_CHUNKED) || c->req.content_length > 0;
    if ((bad = pg__conn_head_target(&c->req, &x->req, &status, &t)) != NULL) {
        pg__conn_send_error(c, status, bad);
        return;
    }
    x->auth_off = (uint32_t)t.auth_off;
    x->auth_len = (uint32_t)t.auth_len;
    x->path_off = (uint32_t)t.path_off;
    x->query_off = (uint32_t)t.query_off;
    x->query_len = (uint32_t)t.query_len;
    path = url + t.path_off;
    pathlen = t.path_len;
    /* with pprof.admin_listen the public listener does not know the metrics path: an
     * application's own /metrics is routed to it like any path */
    if (cfg->server.metrics_path && strlen(cfg->server.metrics_path) == pathlen &&
        memcmp(cfg->server.metrics_path, path, pathlen) == 0 &&
        (c->admin || !cfg->pprof.has_admin_listen)) {
        pg__conn_serve_metrics(c);
        return;
    }
    if (pg__conn_route(x->gen->routes, x->gen->has_port_hosts, url, &t, &m) < 0) {
        snprintf(msg, sizeof msg, "no route for \"%.*s\"", (int)(pathlen > 200 ? 200 : pathlen),
                 path);
        pg__conn_send_error(c, 404, msg);
        return;
    }
    x->up = m.upstream;
    x->route_slot = x->gen->route_slots[m.route_index];
    if (!m.pprof && c->admin) {
        pg__conn_send_error(c, 404, "pprof.admin_listen serves only the pprof paths and "
                           "server.metrics_path");
        return;
    }
    if (m.pprof && !c->admin && cfg->pprof.has_admin_listen) {
        /* pprof paths live on admin_listen; here they answer as a path nobody serves (not
         * routed to the application: its own net/http/pprof would escape the gate) */
        pg_log_debug("pprof path on the public listener (pprof.admin_listen is set)");
        snprintf(msg, sizeof msg, "no route for \"%.*s\"", (int)(pathlen > 200 ? 200 : pathlen),
                 path);
        pg__conn_send_error(c, 404, msg);
        return;
    }
    x->pprof = m.pprof;
    x->budget_ms = x->up->timeout_ms;
    if (m.pprof && pg_ui_path(m.pprof_rest, m.pprof_rest_len)) {
        pg__conn_ui_answer(c, &m);
        return;
    }
    if (m.pprof) {
        x->pprof_rest = m.pprof_rest;
        x->pprof_rest_len = (uint32_t)m.pprof_rest_len;
        if (!pg__conn_pprof_gate(c))
            return;
        pg_metrics_count_profile(c->w->metrics,
                                 pg_metrics_prof_kind(x->pprof_rest, x->pprof_rest_len));
    }
    if (cfg->server.max_body_bytes && c->req.content_length > cfg->server.max_body_bytes) {
        snprintf(msg, sizeof msg, "request body of %llu bytes exceeds server.max_body_bytes = %llu",
                 (unsigned long long)c->req.content_length,
                 (unsigned long long)cfg->server.max_body_bytes);
        pg__conn_send_error(c, 413, msg);
        return;
    }
    c->state = C_FORWARD;
    if (c->req.flags & F_CHUNKED) {
        /* Chunk framing is checked only as the body is parsed; a bad chunk-size line that
         * came with the head must not find the head already upstream. So the upstream waits
         * (under header_timeout) until the first chunk-size line has parsed and the bytes
         * read with it have been checked -- unless the client waits for a 100 first. */
        x->holding = true;
        x->expect_continue = expects_continue(&x->req);
        return;
    }
    pg__conn_start_upstream(c);
}

/* ---------------- client reading ---------------- */

/* The held head goes upstream now (with the body bytes held so far). */
static void release_head(pg_conn_t *c)
{
    c->x->holding = false;
    pg__conn_start_upstream(c);
}

/* Parse and relay len bytes of b from off. Runs until the bytes are used up, the request
 * is complete (the rest is kept for later), or the connection closes. */
void pg__conn_process_client(pg_conn_t *c, pg_buf_t *b, uint32_t off, uint32_t len, bool kick)
{
    const char *p = b->data + off, *end = p + len, *q, *bad;
    bool again = kick, in_head;
    llhttp_errno_t e;

    while ((p < end || again) && c->state != C_CLOSING) {
        if (c->x && (c->x->req_done || (c->x->u && !c->x->u->connected))) {
            /* pipelined (keep the rest until this response is complete), or the upstream
             * is still connecting (keep it until the head is written) */
            pend_set(c, b, (uint32_t)(p - b->data), (uint32_t)(end - p));
            pg__conn_update_reading(c);
            return;
        }
        again = false;
        in_head = c->x == NULL || !c->x->head_done;
        if (in_head && c->state == C_IDLE)
            c->head_lf = c->head_cr = false;
        e = llhttp_execute(&c->req, p, (size_t)(end - p));
        q = e == HPE_OK ? end : llhttp_get_error_pos(&c->req);
        if (e != HPE_OK && e != HPE_PAUSED) {
            pg__conn_request_error(c, e, p, end);
            return;
        }
        if (in_head && (bad = pg__conn_head_bad(c, p, (size_t)(q - p))) != NULL) {
            pg__conn_send_error(c, 400, bad);
            return;
        }
        /* once the head is handled, what the parser consumed is body (framing included) */
        if (c->state == C_FORWARD && !c->ev_head &&
            pg__conn_forward_body(c, b, p, (size_t)(q - p)) < 0)
            return;
        p = q;
        if (e == HPE_PAUSED)
            llhttp_resume(&c->req);
        if (c->ev_head) {
            c->ev_head = false;
            on_request_head(c);
            if (c->state == C_CLOSING)
                return;
            again = true; /* a body-less message completes on the next (empty) execute */
        }
        if (c->ev_done) {
            c->ev_done = false;
            c->x->req_done = true;
            if (c->x->holding) { /* the whole body came, and parsed */
                release_head(c);
                if (c->state == C_CLOSING)
                    return;
            }
            if (c->x->resp_done) {
                pg__conn_finish_exchange(c);
                if (p < end && c->state == C_IDLE) {
                    again = false;
                    continue;
                }
                return;
            }
        } else if (c->x && c->x->holding && p == end &&
                   (c->x->chunk_seen || (c->x->expect_continue && c->x->held == NULL))) {
            /* every byte read so far parsed, the first chunk-size line among them; or the
             * client waits for a 100 before it sends the body */
            release_head(c);
            if (c->state == C_CLOSING)
                return;
        }
    }
    if (c->state != C_CLOSING)
        pg__conn_update_reading(c);
}

/* Whether x's request has been read whole: its message complete, or a head that announces
 * no body (complete once parsed again, which waits while the upstream connects). */
static bool request_whole(const xchg_t *x)
{
    return x->req_done || (x->head_done && !x->req_has_body && !x->holding);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pg_conn_t *c = s->data;
    pg_buf_t *b = buf->base ? buf_of(buf) : NULL;

    if (nread > 0 && c->state != C_CLOSING) {
        b->len = (uint32_t)nread;
        pg_metrics_count_bytes(c->w->metrics, (uint64_t)nread, 0);
        if (c->x && c->x->req_done) {
            /* pipelined bytes (or a client speaking early): keep them, stop reading */
            pend_set(c, b, 0, (uint32_t)nread);
            pg__conn_update_reading(c);
        } else {
            if (c->state == C_FORWARD && c->x && c->x->u && c->timer_mode == T_UPSTREAM)
                pg__conn_arm(c, T_UPSTREAM, c->x->budget_ms);
            pg__conn_process_client(c, b, 0, (uint32_t)nread, false);
        }
    } else if (nread < 0 && c->state != C_CLOSING) {
        if (nread != UV_EOF)
            pg_log_debug("client read: %s", uv_strerror((int)nread));
        if (c->state == C_HEAD && nread == UV_EOF && c->x && c->x->req.buf && c->x->req.buf->len)
            pg_log_debug("client closed mid-head");
        if (nread == UV_EOF && c->state == C_FORWARD && c->x && request_whole(c->x) &&
            !c->x->pprof) {
            /* a half-close after a whole request: answer it, then close (see the top) */
            uv_read_stop(s);
            c->reading = false;
            c->rd_eof = true;
            c->keep_alive = false;
            c->close_after = true;
        } else {
            /* The client went away (reset, or closed mid-request; a FIN during a profile):
             * as nginx does, drop the exchange and close its upstream connection (an agent
             * sees it close and stops the profile early). 499: nginx's "client closed
             * request", for the access log and the metrics; nothing is sent. */
            if (c->x && c->x->head_done) {
                c->x->cause = PG_ERR_CLIENT_GONE;
                if (c->x->status == 0)
                    c->x->status = 499;
            }
            pg_conn_abort(c);
        }
    }
    if (b)
        pg_buf_unref(b);
}

/* ---------------- timeouts ---------------- */

/* Bytes written for the client that it has not taken: our queue, and the kernel's send
 * queue (SIOCOUTQ: not yet acknowledged), since ours moves only once the kernel has room for
 * a good part of its buffer again, which takes a slow reader long. */
static size_t client_waiting(pg_conn_t *c)
{
    size_t n = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    uv_os_fd_t fd;
    int kq = 0;

    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &kq) == 0 && kq > 0)
        n += (size_t)kq;
    return n;
}

/* T_UPSTREAM ran out mid-response while reading the upstream is stopped because the
 * client's write queue is full (pg__conn_update_reading): the upstream is not the one that
 * stalls (fuzz_conn F10: a slow client downloading a large profile was cut, and the upstream
 * blamed). As nginx's send_timeout, the client then has the exchange's budget to take bytes:
 * bytes waiting for it (ours and the kernel's) that changed since the last look are progress
 * (the timer runs again); none is a client that took nothing for a whole budget: cut
 * (client_timeout). So a client
 * that reads nothing is cut after one to two budgets. Returns whether the timeout was the
 * client's (handled). */
static bool client_timeout(pg_conn_t *c)
{
    xchg_t *x = c->x;
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp), seen;

    if (q <= PG_CONN_WQ_HIGH)
        return false;
    seen = client_waiting(c);
    if (seen != x->cl_wq_seen) {
        x->cl_wq_seen = seen;
        pg__conn_arm(c, T_UPSTREAM, x->budget_ms);
        return true;
    }
    pg_log_warn("client took none of the response from %s \"%s\" for %llu ms (%zu bytes "
                "waiting for it); connection cut",
                x->pprof ? "the agent of" : "upstream", x->up->name,
                (unsigned long long)x->budget_ms, q);
    x->cause = PG_ERR_CLIENT_TIMEOUT;
    pg_conn_abort(c);
    return true;
}

static void on_timeout(uv_timer_t *t)
{
    pg_conn_t *c = t->data;
    xchg_t *x = c->x;
    char msg[300];

    if (c->closed)
        return;
    if (uv_now(&c->w->loop) < c->deadline) { /* pushed back since armed */
        uv_timer_start(&c->timer, on_timeout, c->deadline - uv_now(&c->w->loop), 0);
        return;
    }
    if (c->timer_mode == T_LINGER) {
        pg_conn_abort(c);
        return;
    }
    if (c->timer_mode == T_FLUSH) { /* closing, the last bytes not all sent: see pg__conn_close */
        size_t w = client_waiting(c);
        uint64_t ms = c->w->gen->cfg->server.idle_timeout_ms;

        if (w != c->flush_seen) { /* the client took some (or this is the first look) */
            c->flush_seen = w;
            pg__conn_arm(c, T_FLUSH, ms);
            return;
        }
        pg_log_debug("client took none of the last %zu bytes for %llu ms; connection cut", w,
                     (unsigned long long)ms);
        pg_conn_abort(c);
        return;
    }
    if (c->state == C_CLOSING)
        return;
    switch (c->timer_mode) {
    case T_IDLE:
        pg__conn_close(c);
        break;
    case T_HEAD:
        if (x && x->holding)
            pg__conn_send_error(c, 408, "first chunk of the request body not received within "
                                        "server.header_timeout");
        else if (x && (x->req.buf || pg_head_first(&x->req, &c->w->bufs, "", 0) == 0))
            /* the request has begun (on_req_begin: its first byte), maybe only its method so
             * far: the head buffer, which the access log line and the count need, starts
             * with the target (fuzz_conn F11: "GET " got a silent close, "GET /" a 408) */
            pg__conn_send_error(c, 408, "request head not received within server.header_timeout");
        else
            pg__conn_close(c);
        break;
    case T_CONNECT:
        pg__conn_connect_timed_out(c);
        break;
    case T_UPSTREAM:
        if (x && x->resp_started && client_timeout(c)) /* the client, not the upstream */
            break;
        if (x && !x->resp_started) {
            snprintf(msg, sizeof msg, "%s \"%s\" did not respond within %llu ms",
                     x->pprof ? "agent of" : "upstream", x->up->name,
                     (unsigned long long)x->budget_ms);
            pg_log_warn("%s", msg);
            pg__conn_send_error(c, 504, msg);
        } else {
            pg_log_warn("upstream \"%s\" stalled mid-response; connection cut",
                        x ? x->up->name : "?");
            if (x)
                x->cause = PG_ERR_UPSTREAM_TIMEOUT;
            pg_conn_abort(c);
        }
        break;
    default:
        break;
    }
}

/* ---------------- accept ---------------- */

int pg_conn_accept(pg_worker_t *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                   bool admin)
{
    pg_conn_t *c = calloc(1, sizeof *c);
    int r;

    if (c == NULL) {
        close(fd);
        return UV_ENOMEM;
    }
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->state = C_IDLE;
    c->keep_alive = true;
    c->admin = admin;
    /* linked before anything can fail, so that close always finds it in the list */
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    pg_metrics_conn(w->metrics, 1);
    r = uv_tcp_open(&c->tcp, fd);
    if (r < 0) {
        close(fd);
        pg_conn_abort(c);
        return r;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (peer_len > 0 && (size_t)peer_len <= sizeof c->peer)
        memcpy(&c->peer, peer, peer_len);
    llhttp_init(&c->req, HTTP_REQUEST, req_settings());
    pg__resp_settings();
    c->req.data = c;
    pg__conn_arm(c, T_IDLE, w->gen->cfg->server.header_timeout_ms);
    pg__conn_update_reading(c);
    return 0;
}
