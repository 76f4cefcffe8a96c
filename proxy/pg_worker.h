/* pg_worker: one worker thread of the gateway: its own libuv loop, its own SO_REUSEPORT
 * listening socket (the kernel spreads connections over workers), its client connections,
 * its upstream pools and its buffer pool. Nothing mutable is shared between workers but
 * the count of open connections under server.max_connections (an atomic); the main thread
 * talks to a worker only through pg_worker_reload()/pg_worker_stop(), which hand over a
 * message and wake the loop with a uv_async_t.
 *
 * Accepting: the worker polls its listening sockets (uv_poll) and accepts itself (accept4,
 * PG_WORKER_ACCEPT_BATCH at a time), so that it can stop: at server.max_connections, and on
 * EMFILE/ENFILE, when it backs off (PG_WORKER_BACKOFF_MS) instead of finding a readable
 * listener it cannot accept from on every loop iteration.
 *
 * A configuration reaches workers as a pg_cfgref_t (an atomically counted reference to an
 * immutable pg_config_t). Each worker turns it into a generation (pg_gen_t): the route
 * table and the upstream pools for that configuration. A request keeps the generation it
 * started in, so a reload never changes a request in flight; a retired generation closes
 * its idle pooled connections and is freed when its last request and connection are done.
 *
 * Access log: lines are gathered in the worker's batch (pg_access.h) and written before the
 * loop waits for events (a uv_prepare handle), so a busy worker writes many lines at once
 * and a quiet one none late; a generation's last reference flushes the batch before it can
 * let the log file close, and the thread flushes once more when its loop has ended.
 *
 * Owns: a worker owns its loop, handles, connections, generations and buffers; it holds a
 *   reference to every pg_cfgref_t it uses.
 * Threads: pg_worker_start/reload/stop/join from the main thread; everything else runs on
 *   the worker's loop thread. Errors: negative errno. */
#ifndef PG_WORKER_H
#define PG_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "pg_access.h"
#include "pg_buf.h"
#include "pg_config.h"
#include "pg_metrics.h"
#include "pg_policy.h"

typedef struct pg_cfgref {
    atomic_int refs;  /* private */
    pg_config_t *cfg; /* read-only, immutable */
    int access_fd;    /* public: the access log (pg_access), -1 when off; closed with the
                         last reference */
    pg_policy_limits_t *limits; /* read-only: pprof.max_concurrent counters, per agent */
} pg_cfgref_t;

/* Takes ownership of cfg; one reference, access_fd -1. prev (may be NULL): the reference
 * this one replaces, whose per-agent counters carry over (requests in flight keep counting).
 * NULL on ENOMEM (cfg is then not freed). */
pg_cfgref_t *pg_cfgref_new(pg_config_t *cfg, const pg_cfgref_t *prev);
void pg_cfgref_get(pg_cfgref_t *r);
/* Drops a reference; the last one frees the config. Any thread. */
void pg_cfgref_put(pg_cfgref_t *r);

/* server.max_connections for the whole process, shared by all workers: the only mutable
 * state workers share, an atomic. A per-worker share would strand connections, since
 * SO_REUSEPORT does not spread them evenly: a worker at its share left accepted connections
 * waiting while another had free slots. The caller provides the memory and keeps it until
 * every worker has been joined. */
/* How often a worker whose accept is paused at the limit looks for a slot another worker's
 * closed connection gave back (its own give theirs back at once). */
#define PG_WORKER_RESUME_MS 10
/* server.event_coalesce_us: the sleep between looks for events while a wait is coalesced */
#define PG_WORKER_COALESCE_STEP_US 20
/* ... and when waits are coalesced at all: while, over the last PG_WORKER_COALESCE_CHECK_MS
 * or more of loop time, at least PG_WORKER_COALESCE_MIN_RESPONSES upstream responses came
 * and three in four of them (one in two, once on) took PG_COALESCE_RATIO (pg_config.h) times
 * the budget or longer (request head to response head) */
#define PG_WORKER_COALESCE_CHECK_MS 50
#define PG_WORKER_COALESCE_MIN_RESPONSES 16
/* accept4 failed with EMFILE/ENFILE (or ENOBUFS/ENOMEM): the worker stops polling its
 * listeners and tries again after this long, or at once when one of its connections closes
 * (descriptors other workers free are seen by the timer). Meanwhile new connections wait in
 * the kernel's backlog. One log line when the shortage begins, one every
 * PG_WORKER_BACKOFF_LOG_MS while it lasts, one when accepting has caught up again (nothing
 * waits in the backlog). */
#define PG_WORKER_BACKOFF_MS 100
#define PG_WORKER_BACKOFF_LOG_MS 10000
/* The most connections one listener's readiness accepts before the loop serves other
 * events (the poll is level-triggered: what is left is taken on the next iteration). */
#define PG_WORKER_ACCEPT_BATCH 32

typedef struct pg_conn_limit {
    atomic_size_t used; /* private: client connections open, all workers */
    size_t max;         /* read-only */
} pg_conn_limit_t;

/* max 0 is taken as 1. */
void pg_conn_limit_init(pg_conn_limit_t *l, size_t max);

typedef struct pg_worker pg_worker_t;

/* A listening TCP socket on addr with SO_REUSEPORT (so every worker can have its own),
 * bound and listening, non-blocking, in *fd. Call it once per worker from the main thread
 * before starting any: a busy port fails here, before anything runs. */
int pg_worker_listen_socket(const pg_addr_t *addr, int *fd);

/* Start worker id (1-based, for logs) serving fd (taken over on success; on failure the
 * caller still owns and closes it) with cfg (a reference is taken); admin_fd (likewise; -1:
 * none) is its pprof.admin_listen socket, whose
 * connections get the pprof paths and metrics that the public listener then refuses.
 * limit (borrowed, shared by all workers): server.max_connections, both listeners together;
 * at it a worker stops accepting, and resumes when a connection closes (at once when the
 * connection was its own, within PG_WORKER_RESUME_MS when it was another worker's). */
int pg_worker_start(int id, int fd, int admin_fd, pg_cfgref_t *cfg, pg_conn_limit_t *limit,
                    pg_worker_t **out);
/* Swap in a new configuration (a reference is taken); in-flight requests keep theirs. */
void pg_worker_reload(pg_worker_t *w, pg_cfgref_t *cfg);
/* Stop accepting, close idle connections, let requests in flight finish; after drain_ms
 * close whatever is left. The loop then ends. */
void pg_worker_stop(pg_worker_t *w, uint64_t drain_ms);
/* Wait for the thread to end, free everything. */
void pg_worker_join(pg_worker_t *w);

/* ---- internals for pg_conn.c and pg_upstream.c ---- */
typedef struct pg_pool pg_pool_t;
typedef struct pg_conn pg_conn_t;
typedef struct pg_wbatch pg_wbatch_t; /* the client writes of one loop iteration (pg_conn.h) */
typedef struct pg_route_table pg_route_table_t;

typedef struct pg_gen {
    int refs;                   /* worker's own + one per request and pooled connection */
    bool retired;               /* a newer generation exists: pooled connections close */
    pg_worker_t *w;
    pg_cfgref_t *cref;
    const pg_config_t *cfg;
    pg_route_table_t *routes;
    bool has_port_hosts;        /* a route's host has ":port" (match the whole Host then) */
    int *route_slots;           /* metrics slot of each route, of each upstream */
    int *up_slots;
    int none_slot;              /* requests that matched no route */
    pg_pool_t *pools;           /* one per upstream, index as cfg->upstreams */
    size_t npools;
} pg_gen_t;

void pg__gen_ref(pg_gen_t *g);
void pg__gen_unref(pg_gen_t *g);

/* A listening socket whose accept the worker does itself (uv_poll + accept4) rather than
 * through uv_listen: libuv's listener cannot be paused, and on EMFILE it retries accept in a
 * loop that never returns to the event loop once its reserve descriptor is gone (another
 * worker thread took the slot it freed), so a full descriptor table made it spin. */
typedef struct pg_listener {
    uv_poll_t poll;             /* private; data: the pg_listener_t */
    pg_worker_t *w;             /* read-only */
    int fd;                     /* read-only: owned, closed with the poll handle */
    bool admin;                 /* read-only: pprof.admin_listen */
    bool polling;               /* private: the poll handle is started */
    bool at_limit;              /* private: paused at server.max_connections */
} pg_listener_t;

struct pg_worker {
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    pg_listener_t listener;
    pg_listener_t admin;        /* pprof.admin_listen, when has_admin */
    uv_async_t wakeup;
    uv_prepare_t before_wait;   /* before the loop waits: write and access log batches,
                                   event_coalesce_us */
    pg_wbatch_t *wbatch;        /* server.batch_writes; NULL: no AIO here */
    uv_timer_t drain_timer;
    pg_bufpool_t bufs;
    pg_access_batch_t alog;     /* access log lines of this worker's requests */
    pg_metrics_t *metrics;
    pg_gen_t *gen;              /* current generation */
    pg_conn_t *conns;           /* all client connections (intrusive list) */
    size_t nconns;
    pg_conn_limit_t *limit;     /* shared with the other workers */
    uv_timer_t resume_timer;    /* while accept is paused at the limit: retries it */
    uv_timer_t backoff_timer;   /* while accept is paused on EMFILE/ENFILE: retries it */
    bool backoff;               /* accept is backing off (descriptors or memory exhausted) */
    bool short_fds;             /* for the log: a shortage goes on until accept catches up */
    uint64_t backoff_since;     /* loop time the shortage began */
    uint64_t backoff_logged;    /*   and of its last log line */
    uint64_t backoff_fails;     /* accepts refused during this shortage */
    int sched;                  /* private: server.worker_sched last applied (PG_SCHED_*), or
                                   -1: started under a policy of the operator's, kept */
    bool coalescing;            /* private: event_coalesce_us is active (on_before_wait) */
    uint64_t co_checked;        /*   loop time of the last decision */
    uint64_t co_total, co_slow; /*   upstream responses then, all and slow ones */
    bool has_admin;
    bool draining;
    bool listener_closed;
    /* mailbox from the main thread, under lock */
    uv_mutex_t lock;
    pg_cfgref_t *pending_cfg;
    bool stop_requested;
    uint64_t drain_ms;
};

/* A client connection has ended (called by pg_conn before it frees itself). */
void pg__worker_conn_gone(pg_worker_t *w, pg_conn_t *c);

#endif
