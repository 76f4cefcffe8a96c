/* pg_conn_body: a request's body on its way upstream: its chunk framing read strictly
 * (pg_conn_chunk.c: what llhttp 8 lets through), the body size limit, the copy kept while a
 * chunked request's head is held (see pg_conn.c), and the 4xx answers for a request llhttp
 * refused, naming the cause. (The line-end and obs-fold check of request heads is
 * pg_conn_lines.c.) Loop thread of the owning worker only; see pg_conn_int.h. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <llhttp.h>

#include "pg_buf.h"

/* Counts the payload only: a chunked body's size is known only as it arrives. (Its framing
 * is read strictly in pg__conn_forward_body.) */
int pg__conn_on_req_body(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;
    xchg_t *x = c->x;
    uint64_t max = x->gen->cfg->server.max_body_bytes;

    (void)at;
    x->body_payload += len;
    if (max && x->body_payload > max) {
        x->body_too_big = true;
        return -1;
    }
    return 0;
}

int pg__conn_on_req_chunk_header(llhttp_t *p)
{
    pg_conn_t *c = p->data;

    c->x->chunk_seen = true;
    return 0;
}

/* While the head is held, body bytes [p, p+n) are copied aside (the read buffer is reused).
 * Before the first chunk-size line has parsed they are that line (and what follows it in
 * the same read: at most one read more), so two standard buffers always do, unless the
 * line itself is longer than one: that is refused. */
static int hold_body(pg_conn_t *c, const char *p, size_t n)
{
    xchg_t *x = c->x;
    pg_buf_t *b = x->held;

    if (b == NULL || b->len + n > b->cap) {
        size_t need = (b ? b->len : 0) + n;

        if (need > 2 * (size_t)PG_BUF_SIZE) {
            pg__conn_send_error(c, 400, "malformed request: first chunk-size line longer "
                                        "than 64 KiB");
            return -1;
        }
        b = pg_buf_get(&c->w->bufs, need > PG_BUF_SIZE ? 2 * (size_t)PG_BUF_SIZE : need);
        if (b == NULL) {
            pg__conn_send_error(c, 500, "out of memory");
            return -1;
        }
        if (x->held) {
            memcpy(b->data, x->held->data, x->held->len);
            b->len = x->held->len;
            pg_buf_unref(x->held);
        }
        x->held = b;
    }
    memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    x->body_sent += n;
    return 0;
}

/* Body bytes [p, p+n) of the current request go to the upstream (framing included).
 * A chunked body is read strictly first (pg_conn_chunk.c): llhttp 8 takes any two bytes for
 * the CRLF after chunk data ("5\r\nhelloXX0\r\n\r\n" is a whole message to it), any byte for
 * the LF after a chunk-size line's CR and after the CR of the blank line that ends the
 * trailer section, and an obs-fold in a trailer; an upstream that reads those bytes
 * otherwise frames the body otherwise (the bare CR as a line end: "0\r\n\rG" leaves a "G" in
 * front of the next request the pooled connection carries). Refused (400) before any of the
 * bytes goes on. */
int pg__conn_forward_body(pg_conn_t *c, pg_buf_t *b, const char *p, size_t n)
{
    xchg_t *x = c->x;
    uint64_t max = x->gen->cfg->server.max_body_bytes;
    const char *why;
    char msg[160];
    uv_buf_t ub;

    if (n > 0 && (c->req.flags & F_CHUNKED) && (why = pg__chunk_scan(&x->qchunk, p, n)) != NULL) {
        snprintf(msg, sizeof msg, "malformed request: %s", why);
        pg__conn_send_error(c, 400, msg);
        return -1;
    }
    /* A chunk size that would take the body past server.max_body_bytes is refused as bad
     * framing (400, like a size past 2^63 - 1), as soon as the digits read so far say so
     * (qchunk.left: the size read so far, or the data the chunk still owes): none of it goes
     * upstream, where a reader that keeps it in an int64 (2^63 and more) or in fewer bits
     * frames the body otherwise. */
    if (n > 0 && (c->req.flags & F_CHUNKED) && max && x->qchunk.left > max - x->body_payload) {
        snprintf(msg, sizeof msg,
                 "malformed request: a chunk size past server.max_body_bytes = %llu",
                 (unsigned long long)max);
        pg__conn_send_error(c, 400, msg);
        return -1;
    }
    if (n > 0 && x->holding)
        return hold_body(c, p, n);
    if (n == 0 || x->u == NULL)
        return 0;
    x->body_sent += n;
    ub = uv_buf_init((char *)p, (unsigned)n);
    if (pg__conn_upstream_write(c, &ub, 1, b) < 0) {
        pg__conn_upstream_failed(c, UV_EPIPE);
        return -1;
    }
    return 0;
}

void pg__conn_request_error(pg_conn_t *c, llhttp_errno_t e, const char *p, const char *end)
{
    xchg_t *x = c->x;
    const char *why;
    char msg[300];

    if (x && x->body_too_big) {
        snprintf(msg, sizeof msg, "request body exceeds server.max_body_bytes = %llu",
                 (unsigned long long)x->gen->cfg->server.max_body_bytes);
        pg__conn_send_error(c, 413, msg);
        return;
    }
    /* llhttp stopped somewhere in a chunked body: name the framing fault the strict reading
     * finds in these bytes, if any, rather than where llhttp's own reading ended up */
    if (x && x->head_done && (c->req.flags & F_CHUNKED) && p < end &&
        (why = pg__chunk_scan(&x->qchunk, p, (size_t)(end - p))) != NULL) {
        snprintf(msg, sizeof msg, "malformed request: %s", why);
        pg__conn_send_error(c, 400, msg);
        return;
    }
    if (x && x->req.too_many) {
        pg__conn_send_error(c, 431, "too many header fields (limit 128)");
        return;
    }
    if (x && x->req.overflow) {
        snprintf(msg, sizeof msg, "request head exceeds server.max_header_bytes = %u",
                 x->gen->cfg->server.max_header_bytes);
        pg__conn_send_error(c, 431, msg);
        return;
    }
    snprintf(msg, sizeof msg, "malformed request: %s (%s)", llhttp_get_error_reason(&c->req),
             llhttp_errno_name(e));
    pg__conn_send_error(c, 400, msg);
}
