/* pg_conn_batch: the client writes of one loop iteration leave together, in one io_submit
 * (Linux AIO, IOCB_CMD_PWRITEV on the sockets), at the end of the iteration's I/O phase (a
 * uv_check handle) and before the loop waits (pg_worker.c), instead of one writev each as
 * they come (server.batch_writes).
 *
 * Why: a write to a client wakes the client's thread, and when that thread is put on the
 * worker's CPU it preempts the worker as the write returns: the client takes one response
 * per wake-up, two context switches per request (bench/RESULTS.md, "Proxy", session 7). In
 * one io_submit every write of the iteration is made before the worker returns to user
 * space, so a woken client finds all of its responses at once; and n writes cost two system
 * calls (io_submit, io_getevents), not n.
 *
 * What is batched (pg_conn_write.c decides): a write that would have been tried at once (no
 * earlier write of the connection still queued) of at most PG_WBATCH_IOV buffers, on a
 * keep-alive connection that is not closing, with no chunk-size line of its own. What a
 * socket does not take (a partial write, EAGAIN) goes on as any write the kernel did not
 * take at once: uv_write, backpressure. A write to a socket completes inside io_submit (the
 * descriptors are non-blocking, and a socket never answers -EIOCBQUEUED), so io_getevents
 * only collects. A connection with a write in the batch that writes again, shuts down or
 * closes flushes the batch first (pg_conn_write.c, pg_conn.c): bytes leave in order, and
 * before the FIN.
 * Where io_setup fails (no AIO: a seccomp filter, the system's fs.aio-max-nr reached) the
 * worker has no batch and every write goes as before.
 * Loop thread of the owning worker only. */
#include "pg_conn_int.h"

#include <errno.h>
#include <linux/aio_abi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pg_buf.h"

/* writes in one io_submit; a full batch is flushed and the next write starts another. Each
 * write holds the buffers it points into until it is flushed, so a burst of responses keeps
 * at most this many more buffers alive than before (bench/memory: 10,000 connections sent a
 * request at once, 12.2-14.4 MiB peak against 11.6-11.9 without batching) */
#define PG_WBATCH_MAX 64

typedef struct went {
    pg_conn_t *c;
    uv_buf_t v[PG_WBATCH_IOV];
    unsigned n;
    size_t total;
    pg_buf_t *b[2]; /* what v points into, referenced until written */
} went_t;

struct pg_wbatch {
    aio_context_t ctx;
    uv_check_t check;
    unsigned n;
    bool flushing;
    went_t e[PG_WBATCH_MAX];
    struct iocb cb[PG_WBATCH_MAX];
    struct iocb *cbp[PG_WBATCH_MAX];
    struct io_event ev[PG_WBATCH_MAX];
    bool done[PG_WBATCH_MAX];
};

static void on_check(uv_check_t *h)
{
    pg_wbatch_flush(h->data);
}

int pg_wbatch_new(uv_loop_t *loop, pg_wbatch_t **out)
{
    pg_wbatch_t *b = calloc(1, sizeof *b);

    if (b == NULL)
        return UV_ENOMEM;
    if (syscall(SYS_io_setup, PG_WBATCH_MAX, &b->ctx) < 0) {
        int e = -errno;

        free(b);
        return e;
    }
    uv_check_init(loop, &b->check);
    b->check.data = b;
    uv_check_start(&b->check, on_check);
    uv_unref((uv_handle_t *)&b->check); /* it does not keep the loop running */
    *out = b;
    return 0;
}

static void on_check_closed(uv_handle_t *h)
{
    free(h->data);
}

void pg_wbatch_close(pg_wbatch_t *b)
{
    if (b == NULL)
        return;
    pg_wbatch_flush(b);
    syscall(SYS_io_destroy, b->ctx);
    uv_close((uv_handle_t *)&b->check, on_check_closed);
}

bool pg__wbatch_add(pg_wbatch_t *b, pg_conn_t *c, const uv_buf_t *bufs, unsigned n,
                    pg_buf_t *b0, pg_buf_t *b1)
{
    went_t *e;
    unsigned i;

    if (b->flushing || n > PG_WBATCH_IOV)
        return false;
    if (b->n == PG_WBATCH_MAX)
        pg_wbatch_flush(b);
    e = &b->e[b->n++];
    e->c = c;
    memcpy(e->v, bufs, n * sizeof *bufs);
    e->n = n;
    for (e->total = 0, i = 0; i < n; i++)
        e->total += bufs[i].len;
    e->b[0] = b0 ? pg_buf_ref(b0) : NULL;
    e->b[1] = b1 ? pg_buf_ref(b1) : NULL;
    c->wb_pending = true;
    return true;
}

/* One write's outcome: res bytes written, or -errno. */
static void finish(went_t *e, long res)
{
    uv_buf_t rest[PG_WBATCH_IOV];
    size_t done = res > 0 ? (size_t)res : 0;
    unsigned i = 0, nrest = 0;

    while (i < e->n && done >= e->v[i].len) {
        done -= e->v[i].len;
        i++;
    }
    for (; i < e->n; i++, done = 0)
        rest[nrest++] = uv_buf_init(e->v[i].base + done, (unsigned)(e->v[i].len - done));
    pg__conn_batched(e->c, rest, nrest, res < 0 && res != -EAGAIN ? (int)res : 0, e->b[0],
                     e->b[1]);
    for (i = 0; i < 2; i++)
        if (e->b[i])
            pg_buf_unref(e->b[i]);
}

void pg_wbatch_flush(pg_wbatch_t *b)
{
    unsigned n = b->n, i, fd;
    long r, sub, got = 0;
    uv_os_fd_t ofd;

    if (n == 0 || b->flushing)
        return;
    b->flushing = true; /* what finish() sets off (an abort, a rest queued) is not batched */
    for (i = 0; i < n; i++) {
        struct iocb *cb = &b->cb[i];

        fd = uv_fileno((uv_handle_t *)&b->e[i].c->tcp, &ofd) == 0 ? (unsigned)ofd : ~0u;
        memset(cb, 0, sizeof *cb);
        cb->aio_data = i;
        cb->aio_lio_opcode = IOCB_CMD_PWRITEV;
        cb->aio_fildes = fd;
        cb->aio_buf = (uint64_t)(uintptr_t)b->e[i].v;
        cb->aio_nbytes = b->e[i].n;
        b->cbp[i] = cb;
        b->done[i] = false;
    }
    /* io_submit takes them in order, up to the first it cannot, and says how many */
    sub = syscall(SYS_io_submit, b->ctx, (long)n, b->cbp);
    if (sub < 0)
        sub = 0;
    while (got < sub) {
        r = syscall(SYS_io_getevents, b->ctx, sub - got, sub - got, b->ev + got, NULL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += r;
    }
    b->n = 0;
    for (r = 0; r < got; r++) {
        i = (unsigned)b->ev[r].data;
        b->done[i] = true;
        finish(&b->e[i], (long)b->ev[r].res);
    }
    /* not taken by io_submit: not written, so they go on through uv_write; taken but with no
     * completion back (io_getevents failed: not seen with sockets, whose writes complete
     * inside io_submit): how much left is unknown, so the connection is cut, never sent
     * twice */
    for (i = 0; i < n; i++)
        if (!b->done[i])
            finish(&b->e[i], (long)i < sub ? -EIO : 0);
    b->flushing = false;
}
