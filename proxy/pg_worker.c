/* pg_worker: see pg_worker.h. */
#include "pg_worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "pg_access.h"
#include "pg_conn.h"
#include "pg_log.h"
#include "pg_route.h"
#include "pg_upstream.h"

/* ---------------- configuration references ---------------- */

pg_cfgref_t *pg_cfgref_new(pg_config_t *cfg, const pg_cfgref_t *prev)
{
    pg_cfgref_t *r = malloc(sizeof *r);

    if (r == NULL)
        return NULL;
    if (pg_policy_limits_new(cfg, prev ? prev->limits : NULL, &r->limits) < 0) {
        free(r);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->cfg = cfg;
    r->access_fd = -1;
    return r;
}

void pg_cfgref_get(pg_cfgref_t *r)
{
    atomic_fetch_add(&r->refs, 1);
}

void pg_cfgref_put(pg_cfgref_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        pg_access_close(r->access_fd);
        pg_policy_limits_free(r->limits);
        pg_config_free(r->cfg);
        free(r);
    }
}

/* ---------------- generations ---------------- */

static int gen_new(pg_worker_t *w, pg_cfgref_t *cref, pg_gen_t **out)
{
    pg_gen_t *g = calloc(1, sizeof *g);
    size_t i;
    int r;

    if (g == NULL)
        return -ENOMEM;
    g->refs = 1;
    g->w = w;
    g->cref = cref;
    g->cfg = cref->cfg;
    r = pg_route_table_new(g->cfg, &g->routes);
    if (r < 0)
        goto fail;
    g->npools = g->cfg->nupstreams;
    g->pools = calloc(g->npools ? g->npools : 1, sizeof *g->pools);
    if (g->pools == NULL) {
        r = -ENOMEM;
        goto fail_routes;
    }
    for (i = 0; i < g->npools; i++)
        pg_pool_init(&g->pools[i], g, &g->cfg->upstreams[i]);
    for (i = 0; i < g->cfg->nroutes; i++)
        if (g->cfg->routes[i].host && strchr(g->cfg->routes[i].host, ':'))
            g->has_port_hosts = true;
    g->route_slots = calloc(g->cfg->nroutes + 1, sizeof *g->route_slots);
    g->up_slots = calloc(g->npools + 1, sizeof *g->up_slots);
    if (g->route_slots == NULL || g->up_slots == NULL) {
        r = -ENOMEM;
        goto fail_slots;
    }
    for (i = 0; i < g->cfg->nroutes; i++) {
        const pg_config_route_t *rt = &g->cfg->routes[i];
        char name[300];

        snprintf(name, sizeof name, "%s%s", rt->host ? rt->host : "", rt->prefix);
        g->route_slots[i] = pg_metrics_slot(w->metrics, PG_SLOT_ROUTE, name);
    }
    for (i = 0; i < g->npools; i++)
        g->up_slots[i] = pg_metrics_slot(w->metrics, PG_SLOT_UPSTREAM, g->cfg->upstreams[i].name);
    g->none_slot = pg_metrics_slot(w->metrics, PG_SLOT_ROUTE, "(none)");
    pg_cfgref_get(cref);
    *out = g;
    return 0;

fail_slots:
    free(g->route_slots);
    free(g->up_slots);
    free(g->pools);
fail_routes:
    pg_route_table_free(g->routes);
fail:
    free(g);
    return r;
}

void pg__gen_ref(pg_gen_t *g)
{
    g->refs++;
}

void pg__gen_unref(pg_gen_t *g)
{
    if (--g->refs > 0)
        return;
    pg_route_table_free(g->routes);
    free(g->pools);
    free(g->route_slots);
    free(g->up_slots);
    pg_cfgref_put(g->cref);
    free(g);
}

/* A newer generation takes over: idle pooled connections close (each holds a reference),
 * requests in flight finish on this one. */
static void gen_retire(pg_gen_t *g)
{
    size_t i;

    g->retired = true;
    for (i = 0; i < g->npools; i++)
        pg_pool_close_idle(&g->pools[i]);
    pg__gen_unref(g);
}

/* ---------------- listening ---------------- */

int pg_worker_listen_socket(const pg_addr_t *addr, int *fd)
{
    int s, one = 1, r;

    if (addr->kind != PG_ADDR_TCP)
        return -EAFNOSUPPORT;
    s = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (addr->sa.ss_family == AF_INET6)
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(s, (const struct sockaddr *)&addr->sa, addr->salen) < 0)
        goto fail;
    if (listen(s, 511) < 0)
        goto fail;
    *fd = s;
    return 0;

fail:
    r = -errno;
    close(s);
    return r;
}

/* ---------------- accepting ---------------- */

void pg_conn_limit_init(pg_conn_limit_t *l, size_t max)
{
    atomic_init(&l->used, 0);
    l->max = max ? max : 1;
}

/* Reserves one of the process's connection slots; false at the limit. A compare-and-swap,
 * not add-then-check, so that workers racing for the last slot never overshoot it. */
static bool slot_take(pg_conn_limit_t *l)
{
    size_t n = atomic_load_explicit(&l->used, memory_order_relaxed);

    do {
        if (n >= l->max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&l->used, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void slot_give(pg_conn_limit_t *l)
{
    atomic_fetch_sub_explicit(&l->used, 1, memory_order_relaxed);
}

/* Accepts the connection waiting in server if a slot is free; false at the limit (the
 * connection then stays where it is). Every connection counted in w->nconns holds a slot
 * until pg__worker_conn_gone(). */
static bool accept_one(pg_worker_t *w, uv_stream_t *server, bool admin)
{
    size_t before = w->nconns;
    int r;

    if (!slot_take(w->limit))
        return false;
    r = pg_conn_accept(w, server, admin);
    if (w->nconns == before) /* no connection was made (out of memory) */
        slot_give(w->limit);
    if (r < 0)
        pg_log_warn("accept: %s", uv_strerror(r));
    return true;
}

/* Accepts what waits in paused listeners while slots are free, the operator's (admin)
 * listener first; the retry timer stops once nothing waits. */
static void resume_accept(pg_worker_t *w)
{
    if (w->draining)
        return;
    if (w->admin_pending) {
        if (!accept_one(w, (uv_stream_t *)&w->admin, true))
            return;
        w->admin_pending = false;
    }
    if (w->accept_pending) {
        if (!accept_one(w, (uv_stream_t *)&w->listener, false))
            return;
        w->accept_pending = false;
    }
    uv_timer_stop(&w->resume_timer);
}

static void on_resume_tick(uv_timer_t *t)
{
    resume_accept(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    pg_worker_t *w = server->data;
    bool admin = server == (uv_stream_t *)&w->admin;

    if (status < 0) {
        /* EMFILE and friends: libuv already backs off by closing a reserve fd */
        pg_log_warn("accept: %s", uv_strerror(status));
        return;
    }
    if (w->draining || accept_one(w, server, admin))
        return;
    /* At the limit. Not accepting makes libuv stop polling the listener until we do; a slot
     * freed by another worker's connection is seen by the timer (workers share only the
     * counter), one freed by ours at once, in pg__worker_conn_gone. */
    if (admin)
        w->admin_pending = true;
    else
        w->accept_pending = true;
    if (!uv_is_active((uv_handle_t *)&w->resume_timer))
        uv_timer_start(&w->resume_timer, on_resume_tick, PG_WORKER_RESUME_MS,
                       PG_WORKER_RESUME_MS);
}

static void close_listener(pg_worker_t *w)
{
    if (w->listener_closed)
        return;
    w->listener_closed = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    if (w->has_admin)
        uv_close((uv_handle_t *)&w->admin, NULL);
}

static void maybe_finish_drain(pg_worker_t *w)
{
    if (w->draining && w->nconns == 0) {
        uv_timer_stop(&w->drain_timer);
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
        uv_close((uv_handle_t *)&w->resume_timer, NULL);
        uv_close((uv_handle_t *)&w->wakeup, NULL);
        close_listener(w);
        if (w->gen) {
            gen_retire(w->gen);
            w->gen = NULL;
        }
    }
}

void pg__worker_conn_gone(pg_worker_t *w, pg_conn_t *c)
{
    (void)c; /* already unlinked from w->conns by pg_conn */
    w->nconns--;
    slot_give(w->limit);
    /* one connection closed, one accepted */
    if (w->admin_pending || w->accept_pending)
        resume_accept(w);
    maybe_finish_drain(w);
}

/* ---------------- mailbox ---------------- */

static void on_drain_deadline(uv_timer_t *t)
{
    pg_worker_t *w = t->data;
    pg_conn_t *c, *next;

    pg_log_warn("drain deadline passed: closing %zu connection(s) still busy", w->nconns);
    for (c = w->conns; c; c = next) {
        next = pg__conn_next(c);
        pg_conn_abort(c);
    }
}

static void start_drain(pg_worker_t *w, uint64_t drain_ms)
{
    pg_conn_t *c, *next;

    if (w->draining)
        return;
    w->draining = true;
    uv_timer_stop(&w->resume_timer);
    close_listener(w);
    for (c = w->conns; c; c = next) {
        next = pg__conn_next(c);
        pg_conn_drain(c);
    }
    uv_timer_start(&w->drain_timer, on_drain_deadline, drain_ms, 0);
    maybe_finish_drain(w);
}

static void on_wakeup(uv_async_t *a)
{
    pg_worker_t *w = a->data;
    pg_cfgref_t *cfg;
    bool stop;
    uint64_t drain_ms;
    pg_gen_t *g;

    uv_mutex_lock(&w->lock);
    cfg = w->pending_cfg;
    w->pending_cfg = NULL;
    stop = w->stop_requested;
    drain_ms = w->drain_ms;
    uv_mutex_unlock(&w->lock);
    if (cfg && !w->draining) {
        if (gen_new(w, cfg, &g) == 0) {
            pg_gen_t *old = w->gen;

            w->gen = g;
            gen_retire(old);
            pg_log_info("configuration reloaded");
        } else {
            pg_log_error("reload: out of memory; keeping the old configuration");
        }
    }
    if (cfg)
        pg_cfgref_put(cfg);
    if (stop)
        start_drain(w, drain_ms);
}

/* ---------------- thread ---------------- */

static void worker_main(void *arg)
{
    pg_worker_t *w = arg;
    char tag[16];

    snprintf(tag, sizeof tag, "w%d", w->id);
    pg_log_set_thread(tag);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

int pg_worker_start(int id, int fd, int admin_fd, pg_cfgref_t *cfg, pg_conn_limit_t *limit,
                    pg_worker_t **out)
{
    pg_worker_t *w = calloc(1, sizeof *w);
    int r;

    if (w == NULL)
        return -ENOMEM;
    w->id = id;
    w->listen_fd = fd;
    pg_bufpool_init(&w->bufs);
    r = uv_loop_init(&w->loop);
    if (r < 0)
        goto fail;
    w->loop.data = w;
    r = pg_metrics_new(&w->metrics);
    if (r < 0)
        goto fail_loop;
    r = gen_new(w, cfg, &w->gen);
    if (r < 0)
        goto fail_loop;
    w->limit = limit;
    uv_mutex_init(&w->lock);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->resume_timer);
    w->resume_timer.data = w;
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    r = uv_tcp_open(&w->listener, fd);
    if (r < 0)
        goto fail_handles;
    r = uv_listen((uv_stream_t *)&w->listener, 511, on_connection);
    if (r < 0)
        goto fail_handles;
    if (admin_fd >= 0) {
        uv_tcp_init(&w->loop, &w->admin);
        w->admin.data = w;
        w->has_admin = true;
        r = uv_tcp_open(&w->admin, admin_fd);
        if (r < 0)
            goto fail_handles;
        r = uv_listen((uv_stream_t *)&w->admin, 511, on_connection);
        if (r < 0)
            goto fail_handles;
    }
    r = uv_thread_create(&w->thread, worker_main, w);
    if (r < 0)
        goto fail_handles;
    *out = w;
    return 0;

fail_handles:
    uv_close((uv_handle_t *)&w->listener, NULL);
    if (w->has_admin)
        uv_close((uv_handle_t *)&w->admin, NULL);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->resume_timer, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_mutex_destroy(&w->lock);
    gen_retire(w->gen);
fail_loop:
    pg_metrics_free(w->metrics);
    uv_loop_close(&w->loop);
fail:
    pg_bufpool_destroy(&w->bufs);
    free(w);
    return r;
}

void pg_worker_reload(pg_worker_t *w, pg_cfgref_t *cfg)
{
    pg_cfgref_t *old;

    pg_cfgref_get(cfg);
    uv_mutex_lock(&w->lock);
    old = w->pending_cfg;
    w->pending_cfg = cfg;
    uv_mutex_unlock(&w->lock);
    if (old)
        pg_cfgref_put(old);
    uv_async_send(&w->wakeup);
}

void pg_worker_stop(pg_worker_t *w, uint64_t drain_ms)
{
    uv_mutex_lock(&w->lock);
    w->stop_requested = true;
    w->drain_ms = drain_ms;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wakeup);
}

void pg_worker_join(pg_worker_t *w)
{
    uv_thread_join(&w->thread);
    /* every handle is closed once the loop has ended: pooled connections closed with
     * their generation */
    if (w->pending_cfg)
        pg_cfgref_put(w->pending_cfg);
    if (uv_loop_close(&w->loop) != 0)
        pg_log_warn("worker %d: loop closed with handles still open", w->id);
    uv_mutex_destroy(&w->lock);
    pg_bufpool_destroy(&w->bufs);
    pg_metrics_free(w->metrics);
    free(w);
}
