/* pg_upstream: connections from one worker to upstreams and agents. For each upstream of a
 * generation a pool keeps up to pool_size idle keep-alive connections (each with an idle
 * timer of pool_idle_timeout, and reading so that a close by the upstream is noticed at
 * once); pg_upstream_acquire() hands out an idle one or starts a new connection (TCP or
 * unix:). Agent connections (pool NULL) are never pooled: a profile is long and rare.
 * Owns: a pool owns its idle connections; a caller owns the connection it acquired until
 *   pg_upstream_release() or pg_upstream_close(); the connection frees itself after its
 *   handles have closed. Buffers given to ops->on_read are borrowed for the call (take a
 *   reference to keep one).
 * Threads: owning worker's loop thread only. Errors: negative errno (libuv's UV_E*). */
#ifndef PG_UPSTREAM_H
#define PG_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <llhttp.h>
#include <uv.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_worker.h"

typedef struct pg_uconn pg_uconn_t;

typedef struct pg_uconn_ops {
    /* The connection was established (status 0) or failed (negative errno). */
    void (*on_connect)(pg_uconn_t *u, int status);
    /* Bytes read (b holds nread bytes at b->data), or nread < 0: UV_EOF or an error
     * (then b is NULL). */
    void (*on_read)(pg_uconn_t *u, ssize_t nread, pg_buf_t *b);
} pg_uconn_ops_t;

struct pg_pool {
    pg_gen_t *gen;                      /* read-only */
    const pg_config_upstream_t *cfg;    /* read-only */
    pg_uconn_t *idle;                   /* private: list of idle connections */
    size_t nidle;                       /* read-only */
};

struct pg_uconn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;                                /* public: write to h.stream */
    uv_timer_t timer;                   /* private: pool idle timer */
    uv_connect_t creq;                  /* private */
    pg_worker_t *w;                     /* read-only */
    pg_pool_t *pool;                    /* read-only; NULL for agent connections */
    const pg_addr_t *addr;              /* read-only; borrowed from the generation's config */
    const pg_uconn_ops_t *ops;          /* private */
    void *owner;                        /* public: the caller's context */
    llhttp_t parser;                    /* public: the caller's response parser */
    bool connected;                     /* read-only */
    bool reused;                        /* read-only: came from the pool */
    bool closing;                       /* read-only */
    bool reading;                       /* private */
    int open_handles;                   /* private */
    pg_uconn_t *next, *prev;            /* private: pool idle list */
};

void pg_pool_init(pg_pool_t *p, pg_gen_t *gen, const pg_config_upstream_t *cfg);
/* Close every idle connection (a retired generation, or shutdown). */
void pg_pool_close_idle(pg_pool_t *p);

/* pool NULL: a fresh, unpooled connection to addr (an agent). Otherwise addr is ignored and
 * the pool's upstream address is used. When an idle connection is reused, *out is ready
 * (connected, reused set) and ops->on_connect is not called. */
int pg_upstream_acquire(pg_worker_t *w, pg_pool_t *pool, const pg_addr_t *addr,
                        const pg_uconn_ops_t *ops, void *owner, pg_uconn_t **out);
/* Done with u: if reusable and its pool has room and is current, it goes idle in the pool;
 * otherwise it is closed. */
void pg_upstream_release(pg_uconn_t *u, bool reusable);
/* Close now (pending writes are cancelled). */
void pg_upstream_close(pg_uconn_t *u);
/* Start/stop delivering reads to ops->on_read (backpressure). */
int pg_upstream_read(pg_uconn_t *u, bool on);

#endif
