/* pg_upstream: see pg_upstream.h. */
#include "pg_upstream.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "pg_log.h"

void pg_pool_init(pg_pool_t *p, pg_gen_t *gen, const pg_config_upstream_t *cfg)
{
    p->gen = gen;
    p->cfg = cfg;
    p->idle = NULL;
    p->nidle = 0;
}

static void idle_unlink(pg_uconn_t *u)
{
    pg_pool_t *p = u->pool;

    if (u->prev)
        u->prev->next = u->next;
    else if (p->idle == u)
        p->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    p->nidle--;
}

static void on_uconn_close(uv_handle_t *h)
{
    pg_uconn_t *u = h->data;

    if (--u->open_handles > 0)
        return;
    if (u->pool)
        pg__gen_unref(u->pool->gen);
    free(u);
}

static void uconn_close(pg_uconn_t *u)
{
    if (u->closing)
        return;
    u->closing = true;
    u->owner = NULL;
    uv_close(&u->h.handle, on_uconn_close);
    uv_close((uv_handle_t *)&u->timer, on_uconn_close);
}

void pg_pool_close_idle(pg_pool_t *p)
{
    while (p->idle) {
        pg_uconn_t *u = p->idle;

        idle_unlink(u);
        uconn_close(u);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    pg_uconn_t *u = h->data;
    pg_buf_t *b = pg_buf_get(&u->w->bufs, PG_BUF_SIZE);

    (void)hint;
    if (b == NULL) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = b->data;
    buf->len = b->cap;
}

static pg_buf_t *buf_of(const uv_buf_t *buf)
{
    return (pg_buf_t *)(void *)(buf->base - offsetof(pg_buf_t, data));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pg_uconn_t *u = s->data;
    pg_buf_t *b = buf->base ? buf_of(buf) : NULL;

    if (nread == 0) { /* EAGAIN */
        if (b)
            pg_buf_unref(b);
        return;
    }
    if (nread == UV_ENOBUFS && b == NULL)
        nread = UV_ENOMEM;
    if (u->owner == NULL) {
        /* Idle in the pool: the upstream closed it, or sent bytes nobody asked for. */
        if (b)
            pg_buf_unref(b);
        if (u->pool && !u->closing) {
            idle_unlink(u);
            uconn_close(u);
        }
        return;
    }
    if (nread < 0) {
        if (b)
            pg_buf_unref(b);
        u->ops->on_read(u, nread, NULL);
        return;
    }
    b->len = (uint32_t)nread;
    u->ops->on_read(u, nread, b);
    pg_buf_unref(b);
}

int pg_upstream_read(pg_uconn_t *u, bool on)
{
    int r = 0;

    if (u->closing || !u->connected || u->reading == on)
        return 0;
    if (on)
        r = uv_read_start(&u->h.stream, on_alloc, on_read);
    else
        uv_read_stop(&u->h.stream);
    if (r == 0)
        u->reading = on;
    return r;
}

static void on_connect(uv_connect_t *req, int status)
{
    pg_uconn_t *u = req->data;

    if (u->closing)
        return;
    if (status == 0) {
        u->connected = true;
        if (u->addr->kind == PG_ADDR_TCP)
            uv_tcp_nodelay(&u->h.tcp, 1);
    }
    if (u->owner)
        u->ops->on_connect(u, status);
}

static void on_idle_timeout(uv_timer_t *t)
{
    pg_uconn_t *u = t->data;

    if (u->owner == NULL && u->pool && !u->closing) {
        idle_unlink(u);
        uconn_close(u);
    }
}

int pg_upstream_acquire(pg_worker_t *w, pg_pool_t *pool, const pg_addr_t *addr,
                        const pg_uconn_ops_t *ops, void *owner, pg_uconn_t **out)
{
    pg_uconn_t *u;
    int r;

    if (pool && pool->idle) {
        u = pool->idle;
        idle_unlink(u);
        uv_timer_stop(&u->timer);
        u->ops = ops;
        u->owner = owner;
        u->reused = true;
        *out = u;
        return 0;
    }
    if (pool)
        addr = &pool->cfg->address;
    u = calloc(1, sizeof *u);
    if (u == NULL)
        return UV_ENOMEM;
    u->w = w;
    u->pool = pool;
    u->addr = addr;
    u->ops = ops;
    u->owner = owner;
    if (addr->kind == PG_ADDR_UNIX)
        r = uv_pipe_init(&w->loop, &u->h.pipe, 0);
    else
        r = uv_tcp_init(&w->loop, &u->h.tcp);
    if (r < 0) {
        free(u);
        return r;
    }
    u->h.handle.data = u;
    u->open_handles = 1;
    uv_timer_init(&w->loop, &u->timer);
    u->timer.data = u;
    u->open_handles++;
    if (pool)
        pg__gen_ref(pool->gen);
    u->creq.data = u;
    if (addr->kind == PG_ADDR_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)&addr->sa;

        uv_pipe_connect(&u->creq, &u->h.pipe, sun->sun_path, on_connect);
        r = 0;
    } else {
        r = uv_tcp_connect(&u->creq, &u->h.tcp, (const struct sockaddr *)&addr->sa, on_connect);
    }
    if (r < 0) {
        uconn_close(u);
        return r;
    }
    *out = u;
    return 0;
}

void pg_upstream_release(pg_uconn_t *u, bool reusable)
{
    pg_pool_t *p = u->pool;

    if (u->closing)
        return;
    if (!reusable || p == NULL || !u->connected || p->gen->retired || p->gen->w->draining ||
        p->nidle >= p->cfg->pool_size) {
        uconn_close(u);
        return;
    }
    u->owner = NULL;
    u->ops = NULL;
    u->next = p->idle;
    u->prev = NULL;
    if (p->idle)
        p->idle->prev = u;
    p->idle = u;
    p->nidle++;
    /* Keep reading while idle: an EOF from the upstream removes it from the pool now
     * rather than failing the next request that picks it. */
    if (pg_upstream_read(u, true) < 0) {
        idle_unlink(u);
        uconn_close(u);
        return;
    }
    uv_timer_start(&u->timer, on_idle_timeout, p->cfg->pool_idle_timeout_ms, 0);
}

void pg_upstream_close(pg_uconn_t *u)
{
    uconn_close(u);
}
