/* pg_worker: see pg_worker.h. */
#include "pg_worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

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
    /* lines for this generation's log may wait in the batch: written before the reference
     * that keeps the file open is dropped (the descriptor's number may then be reused) */
    pg_access_batch_forget(&g->w->alog);
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

static void on_listener_ready(uv_poll_t *p, int status, int events);

static void listener_poll(pg_listener_t *l, bool on)
{
    if (l->polling == on || l->w->listener_closed)
        return;
    if (on)
        on = uv_poll_start(&l->poll, UV_READABLE, on_listener_ready) == 0;
    else
        uv_poll_stop(&l->poll);
    l->polling = on;
}

static void on_backoff_tick(uv_timer_t *t);

/* accept4 failed for want of descriptors or memory (err: an errno): stop polling both
 * listeners, so that a listener the kernel keeps reporting readable cannot make the loop
 * spin, and try again on the timer or when one of our connections closes.
 * The log: a shortage begins with the first refused accept and ends only when accepting has
 * caught up (nothing waits); the accepts a freed descriptor allows in between do not end it,
 * or a table kept full under load would log twice per connection. */
static void backoff_start(pg_worker_t *w, int err)
{
    uint64_t now = uv_now(&w->loop);

    w->backoff = true;
    w->backoff_fails++;
    if (!w->short_fds) {
        w->short_fds = true;
        w->backoff_since = now;
        w->backoff_logged = now;
        pg_log_warn("accept: %s: not accepting; retrying every %d ms and whenever a "
                    "connection closes",
                    uv_strerror(-err), PG_WORKER_BACKOFF_MS);
    } else if (now - w->backoff_logged >= PG_WORKER_BACKOFF_LOG_MS) {
        w->backoff_logged = now;
        pg_log_warn("accept: %s: still not accepting after %llu ms (%llu attempts refused)",
                    uv_strerror(-err), (unsigned long long)(now - w->backoff_since),
                    (unsigned long long)w->backoff_fails);
    }
    /* the back-off retries every paused listener, whatever paused it */
    w->listener.at_limit = w->admin.at_limit = false;
    uv_timer_stop(&w->resume_timer);
    listener_poll(&w->listener, false);
    if (w->has_admin)
        listener_poll(&w->admin, false);
    if (!uv_is_active((uv_handle_t *)&w->backoff_timer))
        uv_timer_start(&w->backoff_timer, on_backoff_tick, PG_WORKER_BACKOFF_MS, 0);
}

/* An accept worked: stop backing off. caught_up: nothing more waits, the shortage is over. */
static void backoff_end(pg_worker_t *w, bool caught_up)
{
    if (w->backoff) {
        w->backoff = false;
        uv_timer_stop(&w->backoff_timer);
    }
    if (caught_up && w->short_fds) {
        w->short_fds = false;
        pg_log_info("accept: accepting again after %llu ms (%llu attempts refused)",
                    (unsigned long long)(uv_now(&w->loop) - w->backoff_since),
                    (unsigned long long)w->backoff_fails);
        w->backoff_fails = 0;
    }
}

static void on_resume_tick(uv_timer_t *t);

/* Accepts what waits on l, PG_WORKER_ACCEPT_BATCH connections at most, each holding one of
 * the process's connection slots (given back in pg__worker_conn_gone). Leaves l polled when
 * it stops because nothing (more) waits or the batch is done; leaves it paused at the
 * connection limit (resume timer) or, on EMFILE and the like, paused with the other
 * listener (backoff_start). */
static void accept_some(pg_listener_t *l)
{
    pg_worker_t *w = l->w;
    struct sockaddr_storage peer;
    socklen_t len;
    size_t before;
    int i, fd, e;

    if (w->draining || w->listener_closed)
        return;
    for (i = 0; i < PG_WORKER_ACCEPT_BATCH; i++) {
        if (!slot_take(w->limit)) {
            /* a slot freed by another worker's connection is seen by the timer (workers
             * share only the counter), one freed by ours at once, in pg__worker_conn_gone */
            listener_poll(l, false);
            l->at_limit = true;
            if (!uv_is_active((uv_handle_t *)&w->resume_timer))
                uv_timer_start(&w->resume_timer, on_resume_tick, PG_WORKER_RESUME_MS,
                               PG_WORKER_RESUME_MS);
            return;
        }
        len = sizeof peer;
        fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            e = errno;
            slot_give(w->limit);
            if (e == EAGAIN || e == EWOULDBLOCK) {
                backoff_end(w, true);
                break; /* nothing (more) waits */
            }
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                backoff_start(w, e);
                return;
            }
            /* ECONNABORTED, EINTR, and the network errors Linux reports on accept for a
             * connection that failed in the backlog (accept(2)): that one is lost, go on */
            if (e != ECONNABORTED && e != EINTR && e != EPROTO && e != ENETDOWN &&
                e != ENOPROTOOPT && e != EHOSTDOWN && e != ENONET && e != EHOSTUNREACH &&
                e != EOPNOTSUPP && e != ENETUNREACH && e != EPERM) {
                /* not ours to retry at once: treat as a back-off, never as a spin */
                backoff_start(w, e);
                return;
            }
            continue;
        }
        backoff_end(w, false);
        before = w->nconns;
        e = pg_conn_accept(w, fd, (const struct sockaddr *)&peer, len, l->admin);
        if (w->nconns == before) /* no connection was made (out of memory) */
            slot_give(w->limit);
        if (e < 0)
            pg_log_warn("accept: %s", uv_strerror(e));
    }
    l->at_limit = false;
    if (!w->backoff)
        listener_poll(l, true);
}

static void on_listener_ready(uv_poll_t *p, int status, int events)
{
    pg_listener_t *l = p->data;

    (void)events;
    if (status < 0) {
        /* an error on the listening socket itself: back off rather than spin on it */
        pg_log_warn("listener: %s", uv_strerror(status));
        backoff_start(l->w, -status);
        return;
    }
    accept_some(l);
}

/* Tries every listener that is not polled (paused at the limit or backing off), the
 * operator's (admin) listener first, until one is still paused; the resume timer stops once
 * none is paused at the limit. */
static void accept_retry(pg_worker_t *w)
{
    pg_listener_t *ls[2] = {&w->admin, &w->listener};
    int i;

    if (w->draining || w->listener_closed)
        return;
    for (i = w->has_admin ? 0 : 1; i < 2; i++) {
        if (ls[i]->polling)
            continue;
        accept_some(ls[i]);
        if (ls[i]->at_limit || w->backoff)
            break;
    }
    if (!w->admin.at_limit && !w->listener.at_limit)
        uv_timer_stop(&w->resume_timer);
}

static void on_resume_tick(uv_timer_t *t)
{
    accept_retry(t->data);
}

static void on_backoff_tick(uv_timer_t *t)
{
    accept_retry(t->data);
}

static void on_listener_close(uv_handle_t *h)
{
    pg_listener_t *l = h->data;

    close(l->fd);
    l->fd = -1;
}

static void close_listener(pg_worker_t *w)
{
    if (w->listener_closed)
        return;
    w->listener_closed = true;
    uv_close((uv_handle_t *)&w->listener.poll, on_listener_close);
    if (w->has_admin)
        uv_close((uv_handle_t *)&w->admin.poll, on_listener_close);
}

static void maybe_finish_drain(pg_worker_t *w)
{
    if (w->draining && w->nconns == 0) {
        uv_timer_stop(&w->drain_timer);
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
        uv_close((uv_handle_t *)&w->resume_timer, NULL);
        uv_close((uv_handle_t *)&w->backoff_timer, NULL);
        uv_close((uv_handle_t *)&w->wakeup, NULL);
        uv_close((uv_handle_t *)&w->before_wait, NULL);
        pg_wbatch_close(w->wbatch);
        w->wbatch = NULL;
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
    /* one connection closed: one slot (at the limit) and one descriptor (back-off) free */
    if (!w->listener.polling || (w->has_admin && !w->admin.polling))
        accept_retry(w);
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
    uv_timer_stop(&w->backoff_timer);
    close_listener(w);
    for (c = w->conns; c; c = next) {
        next = pg__conn_next(c);
        pg_conn_drain(c);
    }
    uv_timer_start(&w->drain_timer, on_drain_deadline, drain_ms, 0);
    maybe_finish_drain(w);
}

/* server.worker_sched, applied by the worker to its own thread (at start and on reload).
 * "batch" is SCHED_BATCH: the same share of CPU as SCHED_NORMAL (nice level and fairness
 * unchanged), but a worker that wakes does not preempt the task running on the CPU it wakes
 * on; it runs when that task blocks or its slice ends, or at once on an idle CPU. In front of
 * a busy service that is the service: a worker woken by the service's own write otherwise
 * preempts it there (bench/RESULTS.md, "Proxy"). No privilege is needed for either policy.
 * A worker started under another policy (chrt -f, -r, -i) keeps it. */
static void apply_sched(pg_worker_t *w)
{
    int want = w->gen->cfg->server.worker_sched;
    struct sched_param sp = {.sched_priority = 0};
    int r;

    if (want == w->sched || w->sched < 0)
        return;
    r = pthread_setschedparam(pthread_self(), want == PG_SCHED_BATCH ? SCHED_BATCH : SCHED_OTHER,
                              &sp);
    if (r != 0)
        pg_log_warn("server.worker_sched = \"%s\": cannot set the scheduling policy: %s; "
                    "the worker keeps its policy",
                    want == PG_SCHED_BATCH ? "batch" : "normal", strerror(r));
    w->sched = want; /* tried once per change, not on every reload */
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
            apply_sched(w);
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

/* server.event_coalesce_us: a worker holding connections that runs out of events does not
 * block in epoll_wait at once; for up to that long it sleeps PG_WORKER_COALESCE_STEP_US at a
 * time and looks for events (poll of the loop's epoll descriptor, no timeout), then blocks.
 * A thread blocked in epoll_wait is woken by whoever sends it bytes, inside that sender's
 * write: on a virtual machine that wake-up of an idle vCPU (an IPI through the hypervisor) is
 * a few microseconds of the sender's CPU, and the sender is the upstream service. A worker
 * asleep on its own timer is not woken by anyone. It costs up to one step (plus the kernel's
 * timer slack) of latency per event and the worker's own timer wake-ups, so it is done only
 * while the upstreams' answers are slow next to that (coalesce_pays); bench/RESULTS.md,
 * "Proxy". */
static void coalesce_wait(pg_worker_t *w, uint32_t budget_us)
{
    struct pollfd pfd = {.fd = uv_backend_fd(&w->loop), .events = POLLIN};
    struct timespec step = {0, PG_WORKER_COALESCE_STEP_US * 1000L};
    uint64_t end = uv_hrtime() + (uint64_t)budget_us * 1000;

    while (poll(&pfd, 1, 0) == 0 && uv_hrtime() < end)
        nanosleep(&step, NULL);
}

static void coalescing_set(pg_worker_t *w, bool on)
{
    if (on != w->coalescing) {
        w->coalescing = on;
        pg_metrics_coalescing(w->metrics, on);
    }
}

/* Whether to coalesce: decided anew every PG_WORKER_COALESCE_CHECK_MS of loop time from the
 * worker's upstream latency histogram (pg_worker.h). In front of a fast upstream the worker
 * itself is the bottleneck and a step is a large share of a request's time: never there. */
static bool coalesce_pays(pg_worker_t *w, uint32_t budget_us)
{
    uint64_t now = uv_now(&w->loop), total, slow, dt, ds;
    bool on;

    if (now - w->co_checked < PG_WORKER_COALESCE_CHECK_MS)
        return w->coalescing;
    slow = pg_metrics_slow_responses(w->metrics, (uint64_t)budget_us * PG_COALESCE_RATIO,
                                     &total);
    dt = total - w->co_total;
    ds = slow - w->co_slow;
    /* on at three in four slow, off below one in two: a share near the line does not flap */
    on = dt >= PG_WORKER_COALESCE_MIN_RESPONSES &&
         (w->coalescing ? ds * 2 >= dt : ds * 4 >= dt * 3);
    if (on != w->coalescing)
        pg_log_debug("event_coalesce_us: %s (%llu of %llu upstream responses in %llu ms took "
                     "%u us or more)", on ? "on" : "off", (unsigned long long)ds,
                     (unsigned long long)dt, (unsigned long long)(now - w->co_checked),
                     budget_us * PG_COALESCE_RATIO);
    coalescing_set(w, on);
    w->co_checked = now;
    w->co_total = total;
    w->co_slow = slow;
    return on;
}

/* No connection left to wait on: not coalescing (the gauge does not say "on" while the worker
 * sleeps), and the next decision counts only responses from here on, not the last ones of a
 * load that ended. Off the request path: the worker is about to block. */
static void coalesce_idle(pg_worker_t *w, uint32_t budget_us)
{
    coalescing_set(w, false);
    w->co_checked = uv_now(&w->loop);
    w->co_slow = pg_metrics_slow_responses(w->metrics, (uint64_t)budget_us * PG_COALESCE_RATIO,
                                           &w->co_total);
}

/* Runs before every wait for events: the lines of the iteration (of any phase) reach the
 * log before the loop can sleep; then the wait may be coalesced (above). */
static void on_before_wait(uv_prepare_t *p)
{
    pg_worker_t *w = p->data;
    uint32_t coalesce = w->gen->cfg->server.event_coalesce_us;

    if (w->wbatch)
        pg_wbatch_flush(w->wbatch); /* what timer callbacks wrote, before the loop sleeps */
    pg_access_batch_flush(&w->alog);
    if (coalesce == 0)
        coalescing_set(w, false); /* turned off by a reload */
    else if (w->nconns == 0)
        coalesce_idle(w, coalesce);
    else if (!w->draining && coalesce_pays(w, coalesce) &&
             uv_backend_timeout(&w->loop) != 0)
        coalesce_wait(w, coalesce);
}

static void worker_main(void *arg)
{
    pg_worker_t *w = arg;
    char tag[16], name[16];
    int policy = sched_getscheduler(0);

    snprintf(tag, sizeof tag, "w%d", w->id);
    pg_log_set_thread(tag);
    /* top -H, perf and /proc/PID/task/TID/comm tell the workers apart; cut at 15 bytes */
    if (snprintf(name, sizeof name, "pg-worker-%d", w->id) >= (int)sizeof name)
        name[sizeof name - 1] = '\0';
    pthread_setname_np(pthread_self(), name);
    /* the policy the thread inherited; one the operator chose with chrt (real-time, idle) is
     * theirs and stays */
    w->sched = policy == SCHED_OTHER ? PG_SCHED_NORMAL : policy == SCHED_BATCH ? PG_SCHED_BATCH : -1;
    apply_sched(w);
    pg_access_batch_attach(&w->alog);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* lines of the last callbacks (closing connections), if any were left */
    pg_access_batch_forget(&w->alog);
    pg_access_batch_attach(NULL);
}

static int listener_init(pg_worker_t *w, pg_listener_t *l, int fd, bool admin)
{
    int r;

    l->w = w;
    l->fd = fd;
    l->admin = admin;
    r = uv_poll_init_socket(&w->loop, &l->poll, fd);
    if (r < 0)
        return r;
    l->poll.data = l;
    listener_poll(l, true);
    return l->polling ? 0 : UV_EINVAL;
}

static int no_aio_said;

int pg_worker_start(int id, int fd, int admin_fd, pg_cfgref_t *cfg, pg_conn_limit_t *limit,
                    pg_worker_t **out)
{
    pg_worker_t *w = calloc(1, sizeof *w);
    int r;

    if (w == NULL)
        return -ENOMEM;
    w->id = id;
    pg_bufpool_init(&w->bufs);
    pg_access_batch_init(&w->alog);
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
    uv_prepare_init(&w->loop, &w->before_wait);
    w->before_wait.data = w;
    uv_prepare_start(&w->before_wait, on_before_wait);
    r = pg_wbatch_new(&w->loop, &w->wbatch);
    if (r < 0 && !no_aio_said++) /* pg_worker_start runs on the main thread only */
        pg_log_info("server.batch_writes: no Linux AIO here (io_setup: %s); client writes go "
                    "one at a time", uv_strerror(r));
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->resume_timer);
    w->resume_timer.data = w;
    uv_timer_init(&w->loop, &w->backoff_timer);
    w->backoff_timer.data = w;
    r = listener_init(w, &w->listener, fd, false);
    if (r < 0)
        goto fail_timers;
    if (admin_fd >= 0) {
        r = listener_init(w, &w->admin, admin_fd, true);
        if (r < 0)
            goto fail_listener;
        w->has_admin = true;
    }
    r = uv_thread_create(&w->thread, worker_main, w);
    if (r < 0)
        goto fail_admin;
    *out = w;
    return 0;

    /* the caller keeps and closes the listening sockets when this fails */
fail_admin:
    if (w->has_admin)
        uv_close((uv_handle_t *)&w->admin.poll, NULL);
fail_listener:
    uv_close((uv_handle_t *)&w->listener.poll, NULL);
fail_timers:
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->before_wait, NULL);
    pg_wbatch_close(w->wbatch);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->resume_timer, NULL);
    uv_close((uv_handle_t *)&w->backoff_timer, NULL);
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
