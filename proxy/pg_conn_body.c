/* pg_conn_body: a request's body on its way upstream: the chunk framing checks llhttp 8 does
 * not make (the CRLF after chunk data, RFC 9112 7.1), the body size limit, the copy kept
 * while a chunked request's head is held (see pg_conn.c), and the 4xx answers for a request
 * llhttp refused, naming llhttp's reason. Also the obs-fold check of heads and trailers.
 * Loop thread of the owning worker only; see pg_conn_int.h. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <llhttp.h>

#include "pg_buf.h"

/* Whether the n bytes at p are the CRLF that ends chunk data, from its byte off on. */
static bool is_crlf_part(const char *p, size_t n, size_t off)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] != "\r\n"[off + i])
            return false;
    return true;
}

/* Counts the payload only: a chunked body's size is known only as it arrives.
 * At the end of a chunk's data (RFC 9112 7.1) llhttp 8 (non-strict, as Debian builds it)
 * skips the next two bytes whatever they are, so "5\r\nhelloXX0\r\n\r\n" would pass as a
 * whole message; an upstream that checks them reads another framing. They are checked here
 * (the rest at the start of the next read when the data ends a read). */
int pg__conn_on_req_body(llhttp_t *p, const char *at, size_t len)
{
    pg_conn_t *c = p->data;
    xchg_t *x = c->x;
    uint64_t max = x->gen->cfg->server.max_body_bytes;

    x->body_payload += len;
    if (max && x->body_payload > max) {
        x->body_too_big = true;
        return -1;
    }
    if ((p->flags & F_CHUNKED) && p->content_length == 0) { /* this chunk's data ends here */
        size_t avail = (size_t)(c->parse_end - (at + len));

        if (avail > 2)
            avail = 2;
        if (!is_crlf_part(at + len, avail, 0)) {
            x->bad_chunk_end = true;
            return -1;
        }
        x->crlf_left = (uint8_t)(2 - avail);
    }
    return 0;
}

/* The CRLF after chunk data that on_req_body could not see whole: its rest, at the start of
 * the next read [p, end). false when it is not (answered 400). */
bool pg__conn_chunk_end_rest(pg_conn_t *c, const char *p, const char *end)
{
    xchg_t *x = c->x;
    size_t n = (size_t)(end - p) < x->crlf_left ? (size_t)(end - p) : x->crlf_left;

    if (!is_crlf_part(p, n, 2 - x->crlf_left)) {
        x->bad_chunk_end = true;
        pg__conn_request_error(c, HPE_USER);
        return false;
    }
    x->crlf_left -= (uint8_t)n;
    return true;
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
 * A chunked body is read strictly first (pg_conn_chunk.c): llhttp 8 takes any byte for the
 * LF after a chunk-size line's CR and after the CR of the blank line that ends the trailer
 * section, and an upstream that reads those bytes otherwise frames the body otherwise (the
 * bare CR as a line end: "0\r\n\rG" leaves a "G" in front of the next request the pooled
 * connection carries). Refused (400) before any of the bytes goes on. */
int pg__conn_forward_body(pg_conn_t *c, pg_buf_t *b, const char *p, size_t n)
{
    xchg_t *x = c->x;
    const char *why;
    char msg[160];
    uv_buf_t ub;

    if (n > 0 && (c->req.flags & F_CHUNKED) && (why = pg__chunk_scan(&x->qchunk, p, n)) != NULL) {
        snprintf(msg, sizeof msg, "malformed request: %s", why);
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

void pg__conn_request_error(pg_conn_t *c, llhttp_errno_t e)
{
    xchg_t *x = c->x;
    char msg[300];

    if (x && x->body_too_big) {
        snprintf(msg, sizeof msg, "request body exceeds server.max_body_bytes = %llu",
                 (unsigned long long)x->gen->cfg->server.max_body_bytes);
        pg__conn_send_error(c, 413, msg);
        return;
    }
    if (x && x->bad_chunk_end) {
        pg__conn_send_error(c, 400, "malformed request: chunk data not followed by CRLF "
                                    "(RFC 9112 7.1)");
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

/* The head's line ends (and folds, as pg__conn_head_has_fold). RFC 9112 2.2 lets a recipient
 * take a bare LF for a line end; llhttp 8 (non-strict, as Debian builds it) takes one for the
 * end of the request line and of the head, and takes any byte for the LF after the CR that
 * ends the head or a field line with an empty value ("Host: h\r\n\rX"). A proxy in front of
 * us, or an upstream, that reads those bytes otherwise frames the request otherwise (where
 * the head ends, which line is which): every line of a head must end in CRLF. [p, p+n) are
 * head bytes as llhttp consumed them. */
const char *pg__conn_head_bad(pg_conn_t *c, const char *p, size_t n)
{
    static const char fold[] = "malformed request: obs-fold (a header line starting with "
                               "whitespace) is not accepted (RFC 9112 5.2)";
    static const char eol[] = "malformed request: a line of the head not ended by CRLF (bare "
                              "CR or LF, RFC 9112 2.2)";
    const char *s, *end = p + n;
    size_t ncr = 0, nlf = 0;

    if (n == 0)
        return NULL;
    if (c->head_cr ? p[0] != '\n' : c->head_lf && (p[0] == ' ' || p[0] == '\t'))
        return c->head_cr ? eol : fold;
    for (s = memchr(p, '\n', n); s; s = memchr(s + 1, '\n', (size_t)(end - s - 1))) {
        if (s == p ? !c->head_cr : s[-1] != '\r')
            return eol;
        if (s + 1 < end && (s[1] == ' ' || s[1] == '\t'))
            return fold;
        nlf += s > p; /* its CR is in these bytes */
    }
    for (s = memchr(p, '\r', n); s; s = memchr(s + 1, '\r', (size_t)(end - s - 1)))
        ncr++;
    /* every CR here is followed by its LF, but a last one, whose LF comes next */
    c->head_cr = end[-1] == '\r';
    if (ncr != nlf + c->head_cr)
        return eol;
    c->head_lf = end[-1] == '\n';
    return NULL;
}

/* RFC 9112 5.2: a line of the head that starts with SP or HTAB continues the previous one
 * (obs-fold); llhttp 8 accepts it and hands the value on unfolded. A proxy may refuse it, and
 * we do: an upstream that reads the fold differently (as a line of its own, or one that ends
 * the head) would frame the request differently. [p, p+n) are head bytes; c->head_lf carries
 * a LF at the end of the previous read. (Every LF of a head llhttp accepts ends a line: a bare
 * LF is an error of its own.) */
bool pg__conn_head_has_fold(pg_conn_t *c, const char *p, size_t n)
{
    const char *lf, *end = p + n;

    if (n == 0)
        return false;
    if (c->head_lf && (p[0] == ' ' || p[0] == '\t'))
        return true;
    for (lf = memchr(p, '\n', n); lf && lf + 1 < end; lf = memchr(lf + 1, '\n', end - lf - 1))
        if (lf[1] == ' ' || lf[1] == '\t')
            return true;
    c->head_lf = end[-1] == '\n';
    return false;
}
