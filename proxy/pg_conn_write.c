/* pg_conn_write: the connection's write path, both ways. Every write is first tried at once
 * (uv_try_write); only what the kernel did not take is queued with uv_write, with a
 * reference to each buffer it points into (wreq_t), so the relay makes no copy. Client
 * output of one upstream read is gathered in an outq_t and leaves in one writev.
 * Backpressure is decided in pg_conn.c (pg__conn_update_reading), called back from here
 * when a queued write completes. Loop thread of the owning worker only; see pg_conn_int.h. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pg_buf.h"
#include "pg_log.h"
#include "pg_metrics.h"

#define PG_CONN_MAX_IOV (PG_HEAD_MAX_IOV + 8) /* the most buffers one write carries (outq) */

/* A queued uv_write and the buffers its iovecs point into (referenced until it completes);
 * line: a chunk-size line of ours (outq_t.line) the write still has to send. */
typedef struct wreq {
    uv_write_t req;
    pg_buf_t *b[2];
    char line[PG_CONN_CHUNK_LINE];
} wreq_t;

static void on_client_write(uv_write_t *req, int status)
{
    wreq_t *wr = (wreq_t *)req;
    pg_conn_t *c = req->handle->data;

    if (wr->b[0])
        pg_buf_unref(wr->b[0]);
    if (wr->b[1])
        pg_buf_unref(wr->b[1]);
    free(wr);
    c->cl_writes--;
    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        pg_log_debug("client write failed: %s", uv_strerror(status));
        pg_conn_abort(c);
        return;
    }
    pg__conn_update_reading(c);
}

/* Write what the kernel takes now: no write request, no callback, and no epoll_ctl(MOD),
 * which libuv's uv__io_stop issues after every completed uv_write even when POLLOUT was
 * never set (bench/proxy/syscalls.sh: 6.08 -> 4.08 system calls per request). Only when
 * none of ours is queued: bytes must leave in order (uv_try_write refuses while libuv's
 * queue is not empty, too). Returns 1 when all n were written, 0 with what is left in
 * rest[0..*nrest) (n entries at most; pointing into bufs' memory), or a negative error --
 * the one uv_write's callback would have reported. */
static int try_write_all(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, uv_buf_t *rest,
                         unsigned *nrest)
{
    int r = uv_try_write(s, bufs, n);
    size_t done;
    unsigned i = 0;

    if (r == UV_EAGAIN || r == UV_ENOSYS)
        r = 0;
    if (r < 0)
        return r;
    done = (size_t)r;
    while (i < n && done >= bufs[i].len) {
        done -= bufs[i].len;
        i++;
    }
    if (i == n)
        return 1;
    for (*nrest = 0; i < n; i++, done = 0)
        rest[(*nrest)++] = uv_buf_init(bufs[i].base + done, (unsigned)(bufs[i].len - done));
    return 0;
}

static void count_out(pg_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    uint64_t bytes = 0;
    unsigned i;

    for (i = 0; i < n; i++)
        bytes += bufs[i].len;
    if (c->x)
        c->x->bytes_out += bytes;
    pg_metrics_count_bytes(c->w->metrics, 0, bytes);
}

/* What the kernel did not take at once, in a uv_write holding b and b2. */
static int queue_write(pg_conn_t *c, const uv_buf_t *bufs, unsigned n, pg_buf_t *b,
                       pg_buf_t *b2, const char *line, size_t line_len)
{
    uv_buf_t rest[PG_CONN_MAX_IOV];
    wreq_t *wr;
    unsigned i;
    int r;

    wr = malloc(sizeof *wr);
    if (wr == NULL)
        return UV_ENOMEM;
    wr->b[0] = b ? pg_buf_ref(b) : NULL;
    wr->b[1] = b2 ? pg_buf_ref(b2) : NULL;
    if (line_len > 0 && n <= PG_CONN_MAX_IOV) {
        uintptr_t lo = (uintptr_t)line, hi = lo + line_len;

        if (bufs != rest) {
            memcpy(rest, bufs, n * sizeof *bufs);
            bufs = rest;
        }
        memcpy(wr->line, line, line_len);
        for (i = 0; i < n; i++)
            if ((uintptr_t)rest[i].base >= lo && (uintptr_t)rest[i].base < hi)
                rest[i].base = wr->line + ((uintptr_t)rest[i].base - lo);
    }
    r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, n, on_client_write);
    if (r < 0) {
        if (wr->b[0])
            pg_buf_unref(wr->b[0]);
        if (wr->b[1])
            pg_buf_unref(wr->b[1]);
        free(wr);
        return r;
    }
    c->cl_writes++;
    return 0;
}

/* Write n buffers (PG_CONN_MAX_IOV at most) to the client; b and b2 (may be NULL) are
 * referenced until what the kernel did not take at once is written. Iovecs pointing into
 * [line, line+line_len) (an outq's chunk-size line, which does not outlive the outq) are
 * pointed at a copy in the write request when they must wait. */
static int client_write2(pg_conn_t *c, const uv_buf_t *bufs, unsigned n, pg_buf_t *b,
                         pg_buf_t *b2, const char *line, size_t line_len)
{
    uv_buf_t rest[PG_CONN_MAX_IOV];
    unsigned nrest = 0;
    int r;

    if (c->wb_pending)
        pg_wbatch_flush(c->w->wbatch); /* in order: the batched write leaves first */
    if (c->cl_writes == 0 && n <= PG_CONN_MAX_IOV) {
        /* with the iteration's other client writes, in one io_submit (pg_conn_batch.c) */
        if (line_len == 0 && c->w->wbatch && c->keep_alive && !c->close_after &&
            c->w->gen->cfg->server.batch_writes &&
            pg__wbatch_add(c->w->wbatch, c, bufs, n, b, b2)) {
            count_out(c, bufs, n);
            return 0;
        }
        r = try_write_all((uv_stream_t *)&c->tcp, bufs, n, rest, &nrest);
        if (r < 0)
            return r;
        count_out(c, bufs, n);
        if (r == 1)
            return 0;
        bufs = rest;
        n = nrest;
    } else {
        count_out(c, bufs, n);
    }
    return queue_write(c, bufs, n, b, b2, line, line_len);
}

int pg__conn_client_write(pg_conn_t *c, const uv_buf_t *bufs, unsigned n, pg_buf_t *b)
{
    return client_write2(c, bufs, n, b, NULL, NULL, 0);
}

void pg__conn_batched(pg_conn_t *c, const uv_buf_t *rest, unsigned nrest, int err, pg_buf_t *b0,
                      pg_buf_t *b1)
{
    c->wb_pending = false;
    if (err == 0 && nrest > 0)
        err = queue_write(c, rest, nrest, b0, b1, NULL, 0);
    if (err < 0) {
        pg_log_debug("client write failed: %s", uv_strerror(err));
        pg_conn_abort(c);
    }
}

void pg__outq_drop(outq_t *q)
{
    unsigned i;

    for (i = 0; i < 2; i++)
        if (q->hold[i]) {
            pg_buf_unref(q->hold[i]);
            q->hold[i] = NULL;
        }
    q->n = 0;
    q->line_len = 0;
}

/* Send what q gathered, in one uv_write. */
int pg__outq_flush(pg_conn_t *c, outq_t *q)
{
    int r = 0;

    if (q->n) {
        if (c->x && c->x->resp_started)
            c->x->resp_out = true;
        r = client_write2(c, q->v, q->n, q->hold[0], q->hold[1], q->line, q->line_len);
    }
    pg__outq_drop(q);
    return r;
}

/* Whether q has no room for k more iovecs into b (a third buffer to hold, or too many). */
static bool outq_full(const outq_t *q, unsigned k, const pg_buf_t *b)
{
    return q->n + k > sizeof q->v / sizeof q->v[0] ||
           (b && b != q->hold[0] && b != q->hold[1] && q->hold[0] && q->hold[1]);
}

/* q references b until it is sent (once, however many iovecs point into it). */
static void outq_hold(outq_t *q, pg_buf_t *b)
{
    if (b && b != q->hold[0] && b != q->hold[1])
        q->hold[q->hold[0] ? 1 : 0] = pg_buf_ref(b);
}

/* Queue [p, p+n) of b (referenced until sent); flushes first when q is full. */
int pg__outq_add(pg_conn_t *c, outq_t *q, const char *p, size_t n, pg_buf_t *b)
{
    int r;

    if (outq_full(q, 1, b)) {
        r = pg__outq_flush(c, q);
        if (r < 0)
            return r;
    }
    outq_hold(q, b);
    if (q->n && q->v[q->n - 1].base + q->v[q->n - 1].len == p)
        q->v[q->n - 1].len += (unsigned)n;
    else
        q->v[q->n++] = uv_buf_init((char *)p, (unsigned)n);
    return 0;
}

/* Queue [p, p+n) of b as one chunk: size line (q->line: one per outq, so a second chunk
 * flushes the first), the bytes, CRLF. */
int pg__outq_add_chunk(pg_conn_t *c, outq_t *q, const char *p, size_t n, pg_buf_t *b)
{
    static const char hex[] = "0123456789abcdef";
    static char crlf[] = "\r\n";
    char digits[sizeof(size_t) * 2];
    unsigned k = 0, i;
    size_t v = n;
    int r;

    if (q->line_len > 0 || outq_full(q, 3, b)) {
        r = pg__outq_flush(c, q);
        if (r < 0)
            return r;
    }
    do {
        digits[k++] = hex[v & 15];
        v >>= 4;
    } while (v > 0);
    for (i = 0; i < k; i++)
        q->line[i] = digits[k - 1 - i];
    q->line[k] = '\r';
    q->line[k + 1] = '\n';
    q->line_len = (uint8_t)(k + 2);
    outq_hold(q, b);
    q->v[q->n++] = uv_buf_init(q->line, q->line_len);
    q->v[q->n++] = uv_buf_init((char *)p, (unsigned)n);
    q->v[q->n++] = uv_buf_init(crlf, 2);
    return 0;
}

static void on_upstream_write(uv_write_t *req, int status)
{
    wreq_t *wr = (wreq_t *)req;
    pg_uconn_t *u = req->handle->data;
    pg_conn_t *c = u->owner;

    if (wr->b[0])
        pg_buf_unref(wr->b[0]);
    free(wr);
    if (c == NULL || c->x == NULL || c->x->u != u)
        return;
    c->x->up_writes--;
    if (status < 0) {
        /* before the connect completes, its callback reports the real cause */
        if (status != UV_ECANCELED && u->connected)
            pg__conn_upstream_failed(c, status);
        return;
    }
    pg__conn_update_reading(c);
}

/* Write n buffers (PG_CONN_MAX_IOV at most) to the exchange's upstream connection; b (may
 * be NULL) is referenced until what the kernel did not take at once is written. */
int pg__conn_upstream_write(pg_conn_t *c, const uv_buf_t *bufs, unsigned n, pg_buf_t *b)
{
    uv_buf_t rest[PG_CONN_MAX_IOV];
    unsigned nrest = 0;
    wreq_t *wr;
    int r;

    if (c->x->up_writes == 0 && c->x->u->connected && n <= PG_CONN_MAX_IOV) {
        r = try_write_all(&c->x->u->h.stream, bufs, n, rest, &nrest);
        if (r < 0)
            return r;
        if (r == 1)
            return 0;
        bufs = rest;
        n = nrest;
    }
    wr = malloc(sizeof *wr);
    if (wr == NULL)
        return UV_ENOMEM;
    wr->b[0] = b ? pg_buf_ref(b) : NULL;
    wr->b[1] = NULL;
    r = uv_write(&wr->req, &c->x->u->h.stream, bufs, n, on_upstream_write);
    if (r < 0) {
        if (wr->b[0])
            pg_buf_unref(wr->b[0]);
        free(wr);
        return r;
    }
    c->x->up_writes++;
    return 0;
}
