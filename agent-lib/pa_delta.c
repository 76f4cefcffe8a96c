/* pa_delta: delta profiles over `seconds=N` (see pa_delta.h). */
#include "pa_delta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pa_query.h"

#define NH(a) (sizeof(a) / sizeof((a)[0]))

typedef struct delta {
    const pa_delta_ops_t *ops;
    void *arg;
    pa_stacktab_t *before;
    int64_t before_wall_ns;
    int64_t end_ns; /* monotonic */
} delta_t;

void pa_delta_serve_error(pa_req_t *req, int status, const char *msg)
{
    static const pa_header_t hdrs[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"X-Go-Pprof", "1"},
        {"X-Content-Type-Options", "nosniff"},
    };
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", msg);

    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    pa_req_respond(req, status, hdrs, NH(hdrs), body, (size_t)n);
}

/* ---- diff ---- */

typedef struct diff_ctx {
    pa_stacktab_t *t;
    int64_t sign;
    int rc;
} diff_ctx_t;

static int on_add(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    diff_ctx_t *c = arg;
    int64_t v[PA_MAX_VALUES];
    size_t n = pa_stacktab_nvalues(c->t);

    for (size_t i = 0; i < n; i++)
        v[i] = c->sign * values[i];
    c->rc = pa_stacktab_add(c->t, pcs, npcs, v);
    return c->rc;
}

static int on_copy_nonzero(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    diff_ctx_t *c = arg;
    size_t n = pa_stacktab_nvalues(c->t);

    for (size_t i = 0; i < n; i++) {
        if (values[i] != 0) {
            c->rc = pa_stacktab_add(c->t, pcs, npcs, values);
            return c->rc;
        }
    }
    return 0;
}

int pa_delta_diff(const pa_stacktab_t *before, const pa_stacktab_t *after, pa_stacktab_t **out)
{
    size_t nv = pa_stacktab_nvalues(after);
    size_t cap = pa_stacktab_count(before) + pa_stacktab_count(after);
    pa_stacktab_t *sum = NULL, *res = NULL;
    diff_ctx_t c;
    int rc;

    *out = NULL;
    if (pa_stacktab_nvalues(before) != nv)
        return -EINVAL;
    if (cap == 0)
        cap = 1;
    /* after, then minus before, in one table; then only the non-zero stacks, in that order */
    rc = pa_stacktab_new(nv, cap, &sum);
    if (rc < 0)
        return rc;
    c.t = sum;
    c.rc = 0;
    c.sign = 1;
    pa_stacktab_foreach(after, on_add, &c);
    c.sign = -1;
    if (c.rc == 0)
        pa_stacktab_foreach(before, on_add, &c);
    if (c.rc == 0)
        c.rc = pa_stacktab_new(nv, cap, &res);
    if (c.rc == 0) {
        c.t = res;
        pa_stacktab_foreach(sum, on_copy_nonzero, &c);
    }
    pa_stacktab_free(sum);
    if (c.rc < 0) {
        pa_stacktab_free(res);
        return c.rc;
    }
    *out = res;
    return 0;
}

/* ---- serving ---- */

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void delta_free(delta_t *d)
{
    pa_stacktab_free(d->before);
    if (d->ops->release != NULL)
        d->ops->release(d->arg);
    free(d);
}

static void answer(delta_t *d, pa_req_t *req)
{
    char disposition[128];
    pa_header_t hdrs[] = {
        {"Content-Type", "application/octet-stream"},
        {"Content-Disposition", disposition},
        {"X-Content-Type-Options", "nosniff"},
    };
    pa_stacktab_t *after = NULL, *diff = NULL;
    int64_t now;
    uint8_t *body = NULL;
    size_t len = 0;
    int rc;

    rc = d->ops->snapshot(d->arg, &after);
    now = wall_ns();
    if (rc < 0) {
        pa_delta_serve_error(req, 500, PA_DELTA_MSG_COLLECT);
        return;
    }
    rc = pa_delta_diff(d->before, after, &diff);
    if (rc == 0)
        rc = d->ops->encode(d->arg, diff, now, now - d->before_wall_ns, &body, &len);
    pa_stacktab_free(after);
    pa_stacktab_free(diff);
    if (rc < 0) {
        fprintf(stderr, "profagent: the %s delta profile failed: %s\n", d->ops->name,
                strerror(-rc));
        pa_delta_serve_error(req, 500, PA_DELTA_MSG_COMPUTE);
        return;
    }
    snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s-delta\"", d->ops->name);
    pa_req_respond(req, 200, hdrs, NH(hdrs), body, len);
    free(body);
}

static void on_delta_event(void *arg, pa_req_t *req, pa_req_event_t ev)
{
    delta_t *d = arg;

    /* GONE/SHUTDOWN: Go's r.Context().Done(); nobody is left to read an answer */
    if (ev == PA_REQ_WAKE) {
        if (pa_server_now_ns() < d->end_ns) {
            pa_req_wake_at(req, d->end_ns);
            return;
        }
        answer(d, req);
    }
    delta_free(d);
}

void pa_delta_serve(pa_req_t *req, const char *seconds, const pa_delta_ops_t *ops, void *arg)
{
    char dbg[32];
    int64_t sec, debug = 0;
    delta_t *d;
    int rc;

    if (pa_query_parse_int(seconds, &sec) < 0 || sec <= 0 || sec > PA_DELTA_MAX_SECONDS) {
        pa_delta_serve_error(req, 400, PA_DELTA_MSG_BAD_SECONDS);
        goto refuse;
    }
    /* strconv.Atoi(r.FormValue("debug")): unparsable counts as 0 */
    rc = pa_query_get(pa_req_query(req), "debug", dbg, sizeof(dbg));
    if (rc == 1 && pa_query_parse_int(dbg, &debug) < 0)
        debug = 0;
    if (rc == -ENAMETOOLONG)
        debug = 0; /* too long for an int anyway: Atoi fails, 0 */
    if (debug != 0) {
        pa_delta_serve_error(req, 400, PA_DELTA_MSG_WITH_DEBUG);
        goto refuse;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        pa_delta_serve_error(req, 500, PA_DELTA_MSG_COLLECT);
        goto refuse;
    }
    d->ops = ops;
    d->arg = arg;
    if (ops->snapshot(arg, &d->before) < 0) {
        pa_delta_serve_error(req, 500, PA_DELTA_MSG_COLLECT);
        delta_free(d);
        return;
    }
    d->before_wall_ns = wall_ns();
    d->end_ns = pa_server_now_ns() + sec * 1000000000LL;
    pa_req_defer(req, on_delta_event, d);
    pa_req_wake_at(req, d->end_ns);
    return;
refuse:
    if (ops->release != NULL)
        ops->release(arg);
}
