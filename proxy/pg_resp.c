/* pg_resp: the response half of an exchange. The upstream's bytes are parsed by llhttp
 * (HTTP_RESPONSE) only to find where the head and the message end; the head is rewritten
 * (pg_head_response_out: hop-by-hop fields dropped, Via, Connection for what we will do
 * with the client) and queued with the body bytes that came in the same read on one outq,
 * which leaves in one writev; body bytes are relayed as read, framing included (or
 * de-chunked for an HTTP/1.0 client). 1xx heads are relayed and followed by the final one.
 * A body the upstream ends by closing goes to an HTTP/1.1 client chunked, as nginx sends it
 * (each read one chunk, its size line and CRLF iovecs of their own): the last chunk leaves
 * only at the upstream's EOF, so a response cut by an upstream timeout or reset does not
 * look whole to the client (a close-delimited one would), and the client connection may
 * stay open after it. An HTTP/1.0 client gets it close-delimited, as it came.
 * A response that ends before the request did closes the client connection (no resync); an
 * upstream that sends bytes past its response is not reused.
 * What llhttp 8 (non-strict) lets through but would reach the client is refused: chunked
 * framing is read strictly (pg_conn_chunk.c) before any body byte is queued; a head's field
 * names, reason phrase and last line end are checked before it is. Refused: 502 naming the
 * cause and the upstream's address while nothing of the response has left (resp_out), else
 * the client connection is cut; the upstream connection is closed, the error counted as
 * upstream_bad_response and logged once (response_error).
 * Functions here run on the owning worker's loop; see pg_conn_int.h. */
#include "pg_conn_int.h"

#include <stdio.h>

#include "pg_log.h"
#include "pg_metrics.h"

static int on_resp_begin(llhttp_t *p)
{
    pg_conn_t *c = p->data;
    xchg_t *x = c->x;

    pg_head_reset(&x->resp, PG_BUF_SIZE - PG_HEAD_RESERVE);
    return 0;
}

static int on_resp_status(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;

    return pg_head_first(&c->x->resp, &c->w->bufs, at, len);
}

static int on_resp_field(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;

    return pg_head_field(&c->x->resp, &c->w->bufs, at, len);
}

static int on_resp_field_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    return pg_head_field_done(&c->x->resp, &c->w->bufs);
}

static int on_resp_value(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;

    return pg_head_append(&c->x->resp, &c->w->bufs, at, len);
}

static int on_resp_value_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    return pg_head_value_done(&c->x->resp, &c->w->bufs);
}

static int on_resp_headers_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    /* "HTTP/1.1 204\r\n\r\n" (no reason phrase, no field: valid) called no callback that
     * takes the head's buffer, which the rewrite writes into */
    if (c->x->resp.buf == NULL && pg_head_first(&c->x->resp, &c->w->bufs, "", 0) < 0)
        return -1;
    c->x->ev_rhead = true;
    /* RFC 9112 6.3 (1): the response to a HEAD, a 1xx (but 101: an upgrade), a 204 and a 304
     * end with their head, whatever Content-Length or Transfer-Encoding say (a 304 may carry
     * the Content-Length a 200 would have, RFC 9110 8.6, and many servers send it). llhttp 8
     * knows that only when neither is there: else it waits for the body they announce, the
     * next response is never read, and a byte that came after the head would go to the
     * client as the start of the next response. So: no body; completes at once. */
    if (c->x->method == HTTP_HEAD ||
        (p->status_code != 200 && /* the common case first: one comparison */
         (p->status_code == 204 || p->status_code == 304 ||
          (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101))))
        return 1;
    return HPE_PAUSED;
}

static int on_resp_body(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;
    xchg_t *x = c->x;

    if (!x->dechunk || x->oq == NULL)
        return 0;
    return pg__outq_add(c, x->oq, at, len, x->rbuf) < 0 ? -1 : 0;
}

static int on_resp_done(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    c->x->ev_rdone = true;
    return HPE_PAUSED;
}

const llhttp_settings_t *pg__resp_settings(void)
{
    static const llhttp_settings_t s = {
        /* constant, as req_settings() says why */
        .on_message_begin = on_resp_begin,
        .on_status = on_resp_status,
        .on_header_field = on_resp_field,
        .on_header_field_complete = on_resp_field_done,
        .on_header_value = on_resp_value,
        .on_header_value_complete = on_resp_value_done,
        .on_headers_complete = on_resp_headers_done,
        .on_body = on_resp_body,
        .on_message_complete = on_resp_done,
    };

    return &s;
}

/* Status line and headers for the client (pg_head_response_out), queued on q, with
 * Connection set for what we will do with the client connection. */
static int write_response_head(pg_conn_t *c, outq_t *q)
{
    xchg_t *x = c->x;
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    int conn = PG_HEAD_CONN_NONE;
    unsigned n, i;
    int r;

    if (!c->keep_alive || c->close_after)
        conn = PG_HEAD_CONN_CLOSE;
    else if (c->req.http_major == 1 && c->req.http_minor == 0)
        conn = PG_HEAD_CONN_KEEP_ALIVE;
    if (x->dechunk)
        conn |= PG_HEAD_DROP_TE;
    if (x->enchunk)
        conn |= PG_HEAD_ADD_CHUNKED;
    r = pg_head_response_out(&x->resp, x->u->parser.status_code, x->gen->cfg->server.add_via, conn,
                             bufs, &n);
    for (i = 0; r == 0 && i < n; i++)
        r = pg__outq_add(c, q, bufs[i].base, bufs[i].len, x->resp.buf);
    return r;
}

static void on_response_head(pg_conn_t *c, outq_t *q)
{
    xchg_t *x = c->x;
    llhttp_t *p = &x->u->parser;
    bool has_len = p->flags & (F_CHUNKED | F_CONTENT_LENGTH);
    bool bodyless = x->method == HTTP_HEAD || p->status_code == 204 || p->status_code == 304 ||
                    p->status_code < 200;

    if (p->status_code >= 200 || p->status_code == 101) {
        x->resp_started = true;
        x->status = p->status_code;
        pg_metrics_observe(c->w->metrics, x->gen->up_slots[x->up - x->gen->cfg->upstreams],
                           uv_hrtime() - x->t_head);
        /* a body delimited by the upstream closing (RFC 9112 6.3 (8)): an HTTP/1.1 client
         * gets it chunked, the last chunk at the upstream's EOF. Not when the upstream named
         * codings of its own (a Transfer-Encoding without chunked last: RFC 9112 6.3 (4)),
         * which chunked would have to follow, once: that rare one, and an HTTP/1.0
         * client's, end with our close */
        if (!has_len && !bodyless) {
            if ((p->flags & F_TRANSFER_ENCODING) ||
                (c->req.http_major == 1 && c->req.http_minor == 0))
                c->close_after = true;
            else
                x->enchunk = true;
        }
        /* an HTTP/1.0 client cannot read chunked framing: send the payload, end by closing */
        if ((p->flags & F_CHUNKED) && !bodyless && c->req.http_major == 1 &&
            c->req.http_minor == 0) {
            x->dechunk = true;
            c->close_after = true;
        }
        if (p->status_code == 101)
            c->close_after = true;
        /* relayed as read, framing included: pg_conn_chunk checks what llhttp lets through */
        if ((p->flags & F_CHUNKED) && !bodyless) {
            x->resp_chunked = true;
            pg__chunk_init(&x->rchunk);
        }
    }
    if (write_response_head(c, q) < 0) {
        pg__outq_drop(q);
        pg_conn_abort(c);
        return;
    }
    /* the queued write holds the head buffer; a 1xx is followed by another head */
    pg_buf_unref(x->resp.buf);
    x->resp.buf = NULL;
}

/* The upstream's response cannot be relayed: 502 naming why (the upstream's address
 * included) if nothing of it has reached the client, else the client connection is cut
 * (pg__conn_send_error decides). Either way the upstream connection is closed, the error
 * counted once (upstream_bad_response) and logged once. what and why: static strings ("a
 * malformed chunked body", "chunk data not followed by CRLF"), or NULL for llhttp's error e. */
static void response_error(pg_conn_t *c, llhttp_errno_t e, const char *what, const char *why)
{
    xchg_t *x = c->x;
    const char *who = x->pprof ? "agent of" : "upstream";
    const char *addr = x->pprof ? x->up->agent.text : x->up->address.text;
    char msg[400];

    x->cause = PG_ERR_BAD_RESPONSE;
    x->up_dirty = true;
    if (why)
        snprintf(msg, sizeof msg, "%s \"%s\" (%s) sent %s: %s", who, x->up->name, addr, what,
                 why);
    else if (x->resp.overflow || x->resp.too_many)
        snprintf(msg, sizeof msg, "%s \"%s\" (%s) sent a response head too large", who,
                 x->up->name, addr);
    else
        snprintf(msg, sizeof msg, "%s \"%s\" (%s) sent an invalid response: %s (%s)", who,
                 x->up->name, addr, llhttp_get_error_reason(&x->u->parser), llhttp_errno_name(e));
    pg_log_warn("%s", msg);
    pg__conn_send_error(c, 502, msg);
}

/* RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); llhttp 8 refuses only CR
 * and LF in it, and the phrase goes to the client as it came. */
static bool reason_bad(const pg_head_t *h)
{
    uint32_t i;

    for (i = 0; i < h->first_len; i++) {
        unsigned char ch = (unsigned char)h->buf->data[i];

        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return true;
    }
    return false;
}

static void on_upstream_data(pg_conn_t *c, pg_buf_t *b)
{
    xchg_t *x = c->x;
    pg_uconn_t *u = x->u;
    const char *p = b->data, *end = p + b->len, *q, *what, *why;
    bool again = false;
    llhttp_errno_t e;
    outq_t oq;

    oq.n = 0;
    oq.line_len = 0;
    oq.hold[0] = oq.hold[1] = NULL;
    x->oq = &oq;
    x->rbuf = b;
    pg__conn_arm(c, T_UPSTREAM, x->budget_ms);
    x->got_resp_bytes = true;
    while (p < end || again) {
        again = false;
        e = llhttp_execute(&u->parser, p, (size_t)(end - p));
        q = e == HPE_OK ? end : llhttp_get_error_pos(&u->parser);
        /* body bytes (framing included) are checked before any of them is queued; when
         * llhttp refused a byte, the strict reading names the cause if it can */
        if (e != HPE_OK && e != HPE_PAUSED)
            q = end;
        what = "a malformed chunked body";
        why = NULL;
        if (x->resp_chunked && !x->ev_rhead && q > p)
            why = pg__chunk_scan(&x->rchunk, p, (size_t)(q - p));
        if (why || (e != HPE_OK && e != HPE_PAUSED)) {
            pg__outq_drop(&oq);
            response_error(c, e, what, why);
            return;
        }
        if (!x->ev_rhead && q > p && x->resp_started && !x->dechunk &&
            (x->enchunk ? pg__outq_add_chunk(c, &oq, p, (size_t)(q - p), b)
                        : pg__outq_add(c, &oq, p, (size_t)(q - p), b)) < 0) {
            pg__outq_drop(&oq);
            pg_conn_abort(c);
            return;
        }
        p = q;
        if (e == HPE_PAUSED)
            llhttp_resume(&u->parser);
        if (x->ev_rhead) {
            x->ev_rhead = false;
            /* The head goes on rewritten from its fields, so llhttp 8's leniencies in line
             * ends (any byte taken for the LF after the status line's CR or an empty value's)
             * do not reach the client -- but three things would: a field name that is not a
             * token ("Transfer-Encoding :" to a lenient client), relayed as it is (a
             * request's is refused too: pg_conn.c head_unsafe), control bytes in the reason
             * phrase, and the byte taken for the LF of the head's last line, which shifts
             * the body by one. q is just past the head, and that byte was read in this
             * execute. */
            why = q[-1] != '\n'                     ? "its last line not ended by CRLF (RFC 9112 2.2)"
                  : pg_head_bad_name(&x->resp) != NULL ? "a header field name is not a token "
                                                         "(RFC 9110 5.1)"
                  : reason_bad(&x->resp)             ? "a control character in the reason phrase "
                                                         "(RFC 9112 4)"
                  : x->u->parser.status_code < 100 || x->u->parser.status_code > 599
                      ? "a status code outside 100-599 (RFC 9110 15)"
                      : NULL;
            if (why) {
                pg__outq_drop(&oq);
                response_error(c, HPE_OK, "a malformed response head", why);
                return;
            }
            on_response_head(c, &oq);
            if (c->state == C_CLOSING)
                return;
            again = true;
        }
        if (x->ev_rdone) {
            x->ev_rdone = false;
            if (u->parser.status_code < 200 && u->parser.status_code != 101)
                continue; /* 100 Continue etc.: the final response follows */
            if (x->resp_chunked && !pg__chunk_done(&x->rchunk)) {
                /* llhttp saw an end that a strict reading does not (cannot happen while
                 * every byte is checked: a last line of defence) */
                pg__outq_drop(&oq);
                response_error(c, HPE_OK, "a malformed chunked body", "it ended early");
                return;
            }
            x->resp_done = true;
            if (p < end) /* bytes after the response: the upstream cannot be trusted */
                x->up_dirty = true;
            if (pg__outq_flush(c, &oq) < 0) {
                pg_conn_abort(c);
                return;
            }
            if (x->req_done) {
                pg__conn_finish_exchange(c);
            } else {
                /* answered before the request was complete: no way to resync */
                c->close_after = true;
                pg__conn_close(c);
            }
            return;
        }
    }
    if (pg__outq_flush(c, &oq) < 0) {
        pg_conn_abort(c);
        return;
    }
    pg__conn_update_reading(c);
}

void pg__resp_on_read(pg_uconn_t *u, ssize_t nread, pg_buf_t *b)
{
    pg_conn_t *c = u->owner;
    xchg_t *x = c->x;
    llhttp_errno_t e;

    if (nread > 0) {
        on_upstream_data(c, b);
        return;
    }
    if (nread == UV_EOF && x->resp_started && !x->resp_done) {
        /* a body delimited by close, or a cut response */
        x->oq = NULL; /* on_body is not called by llhttp_finish; be sure */
        e = llhttp_finish(&u->parser);
        if ((e == HPE_OK || e == HPE_PAUSED) && x->ev_rdone) {
            x->resp_done = true;
            if (x->enchunk) {
                /* the whole body came: its end, and the client connection may go on */
                static char last[] = "0\r\n\r\n";
                uv_buf_t lb = uv_buf_init(last, sizeof last - 1);

                if (pg__conn_client_write(c, &lb, 1, NULL) < 0) {
                    pg_conn_abort(c);
                    return;
                }
            } else {
                c->close_after = true;
            }
            if (x->req_done) {
                x->up_dirty = true;
                pg__conn_finish_exchange(c);
            } else {
                pg__conn_close(c);
            }
            return;
        }
        pg_log_warn("upstream \"%s\" closed the connection mid-response", x->up->name);
        x->cause = PG_ERR_UPSTREAM_CUT;
        pg_conn_abort(c);
        return;
    }
    pg__conn_upstream_failed(c, (int)nread);
}
