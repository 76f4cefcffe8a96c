/* pa_handlers_heap: /debug/pprof/heap and /allocs (see pa_handlers_heap.h). References:
 * net/http/pprof/pprof.go (handler.ServeHTTP: parameters, headers) and runtime/pprof's
 * pprof.go (writeHeapInternal: the text form) and protomem.go (writeHeapProto: the proto). */
#include "pa_handlers_heap.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pa_agent.h"
#include "pa_delta.h"
#include "pa_heap.h"
#include "pa_pprof.h"
#include "pa_query.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "pa_text.h"

#define NH(a) (sizeof(a) / sizeof((a)[0]))

typedef struct heap_kind {
    const char *name;
    const char *default_sample_type; /* NULL: pprof's default, the last type */
    pa_delta_ops_t delta;
} heap_kind_t;

static int snapshot_scaled(void *arg, pa_stacktab_t **out);
static int encode(void *arg, const pa_stacktab_t *t, int64_t time_nanos, int64_t duration_nanos,
                  uint8_t **out, size_t *outlen);

/* Go: writeHeap passes "" (so inuse_space, the last type), writeAlloc "alloc_space" */
static const heap_kind_t kind_heap = {"heap", NULL, {"heap", snapshot_scaled, encode, NULL}};
static const heap_kind_t kind_allocs = {
    "allocs", "alloc_space", {"allocs", snapshot_scaled, encode, NULL}};

static const pa_pprof_vt_t sample_types[PA_HEAP_NVALUES] = {
    {"alloc_objects", "count"},
    {"alloc_space", "bytes"},
    {"inuse_objects", "count"},
    {"inuse_space", "bytes"},
};

/* singleton: the sampler's state at the last snapshot (agent thread only), for comments */
static pa_heap_stats_t last_stats_singleton;

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int snapshot(int scaled, pa_stacktab_t **out)
{
    int rc = pa_stacktab_new(PA_HEAP_NVALUES, PA_HEAP_MAX_RECORDS, out);

    if (rc < 0)
        return rc;
    rc = pa_heap_snapshot(*out, scaled, &last_stats_singleton);
    if (rc < 0) {
        pa_stacktab_free(*out);
        *out = NULL;
    }
    return rc;
}

static int snapshot_scaled(void *arg, pa_stacktab_t **out)
{
    (void)arg;
    return snapshot(1, out);
}

/* Drops, one comment each, only when there are some (Go has no comments here). */
static size_t drop_comments(const pa_heap_stats_t *st, char buf[3][128], const char *ptrs[3])
{
    size_t n = 0;

    if (st->dropped_live > 0)
        snprintf(buf[n++], 128,
                 "dropped %" PRIu64 " sampled allocations: live table full (%" PRIu64 " entries)",
                 st->dropped_live, st->live_capacity);
    if (st->dropped_records > 0)
        snprintf(buf[n++], 128,
                 "dropped %" PRIu64 " sampled allocations: stack table full (%" PRIu64 " stacks)",
                 st->dropped_records, st->max_records);
    if (st->dropped_stacks > 0)
        snprintf(buf[n++], 128, "dropped %" PRIu64 " stacks: profile table full",
                 st->dropped_stacks);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = buf[i];
    return n;
}

static int encode(void *arg, const pa_stacktab_t *t, int64_t time_nanos, int64_t duration_nanos,
                  uint8_t **out, size_t *outlen)
{
    const heap_kind_t *k = arg;
    char cbuf[3][128];
    const char *comments[3];
    pa_pprof_desc_t d = {0};
    pa_symtab_t *sym = NULL;
    int rc;

    d.sample_types = sample_types;
    d.nsample_types = NH(sample_types);
    d.period_type.type = "space";
    d.period_type.unit = "bytes";
    d.period = last_stats_singleton.rate;
    d.time_nanos = time_nanos;
    d.duration_nanos = duration_nanos;
    d.default_sample_type = k->default_sample_type;
    d.ncomments = drop_comments(&last_stats_singleton, cbuf, comments);
    d.comments = d.ncomments > 0 ? comments : NULL;
    rc = pa_symtab_new(&sym);
    if (rc == 0)
        rc = pa_pprof_encode(&d, t, sym, 1, out, outlen);
    pa_symtab_free(sym);
    return rc;
}

/* ---- text (debug != 0) ---- */

typedef struct text_rec {
    const uintptr_t *pcs; /* borrowed from the stack table */
    size_t npcs;
    int64_t v[PA_HEAP_NVALUES];
} text_rec_t;

typedef struct text_collect {
    text_rec_t *recs;
    size_t n;
    int64_t total[PA_HEAP_NVALUES];
} text_collect_t;

static int on_text_stack(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    text_collect_t *c = arg;
    text_rec_t *r = &c->recs[c->n++];

    r->pcs = pcs;
    r->npcs = npcs;
    for (int i = 0; i < PA_HEAP_NVALUES; i++) {
        r->v[i] = values[i];
        c->total[i] += values[i];
    }
    return 0;
}

/* Go sorts by in-use bytes, largest first */
static int by_inuse_bytes(const void *a, const void *b)
{
    const text_rec_t *x = a, *y = b;

    if (x->v[PA_HEAP_INUSE_SPACE] != y->v[PA_HEAP_INUSE_SPACE])
        return x->v[PA_HEAP_INUSE_SPACE] > y->v[PA_HEAP_INUSE_SPACE] ? -1 : 1;
    if (x->v[PA_HEAP_ALLOC_SPACE] != y->v[PA_HEAP_ALLOC_SPACE])
        return x->v[PA_HEAP_ALLOC_SPACE] > y->v[PA_HEAP_ALLOC_SPACE] ? -1 : 1;
    return 0;
}

static void sampler_state(pa_textbuf_t *b, const pa_heap_stats_t *st)
{
    struct mallinfo2 mi = mallinfo2();

    /* in place of Go's "# runtime.MemStats": pprof ignores these lines */
    pa_textbuf_printf(b, "\n# profagent heap sampler\n");
    pa_textbuf_printf(b, "# SampleRate = %" PRId64 "\n", st->rate);
    pa_textbuf_printf(b, "# Stacks = %" PRIu64 " of %" PRIu64 "\n", st->records, st->max_records);
    pa_textbuf_printf(b, "# LiveSamples = %" PRIu64 " of %" PRIu64 "\n", st->live,
                      st->live_capacity);
    pa_textbuf_printf(b, "# DroppedLiveTableFull = %" PRIu64 "\n", st->dropped_live);
    pa_textbuf_printf(b, "# DroppedStackTableFull = %" PRIu64 "\n", st->dropped_records);
    pa_textbuf_printf(b, "\n# glibc mallinfo2\n");
    pa_textbuf_printf(b, "# Arena = %zu\n", mi.arena);
    pa_textbuf_printf(b, "# Mmapped = %zu\n", mi.hblkhd);
    pa_textbuf_printf(b, "# InUse = %zu\n", mi.uordblks + mi.hblkhd);
    pa_textbuf_printf(b, "# Free = %zu\n", mi.fordblks);
}

static int heap_text(char **out, size_t *outlen)
{
    pa_stacktab_t *t = NULL;
    pa_symtab_t *sym = NULL;
    text_collect_t c;
    pa_textbuf_t b;
    int64_t alloc_bytes;
    int rc;

    memset(&c, 0, sizeof(c));
    pa_textbuf_init(&b);
    rc = snapshot(0, &t); /* raw counts, as Go prints them */
    if (rc < 0)
        goto out;
    c.recs = calloc(pa_stacktab_count(t) + 1, sizeof(*c.recs));
    rc = c.recs == NULL ? -ENOMEM : pa_symtab_new(&sym);
    if (rc < 0)
        goto out;
    pa_stacktab_foreach(t, on_text_stack, &c);
    qsort(c.recs, c.n, sizeof(*c.recs), by_inuse_bytes);
    /* Go: pprof reads alloc == inuse as a 2-column profile, so alloc bytes are bumped */
    alloc_bytes = c.total[PA_HEAP_ALLOC_SPACE];
    if (alloc_bytes == c.total[PA_HEAP_INUSE_SPACE])
        alloc_bytes++;
    pa_textbuf_printf(&b,
                      "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64
                      "] @ heap/%" PRId64 "\n",
                      c.total[PA_HEAP_INUSE_OBJECTS], c.total[PA_HEAP_INUSE_SPACE],
                      c.total[PA_HEAP_ALLOC_OBJECTS], alloc_bytes, 2 * last_stats_singleton.rate);
    for (size_t i = 0; i < c.n; i++) {
        const text_rec_t *r = &c.recs[i];
        if (i % 256 == 255)
            pa_agent_fork_point(); /* between records: a waiting fork goes ahead */
        pa_textbuf_printf(&b, "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] ",
                          r->v[PA_HEAP_INUSE_OBJECTS], r->v[PA_HEAP_INUSE_SPACE],
                          r->v[PA_HEAP_ALLOC_OBJECTS], r->v[PA_HEAP_ALLOC_SPACE]);
        pa_text_stack_key(&b, r->pcs, r->npcs);
        pa_textbuf_append(&b, "\n", 1);
        pa_text_stack_record(&b, sym, r->pcs, r->npcs);
    }
    sampler_state(&b, &last_stats_singleton);
    rc = pa_textbuf_take(&b, out, outlen);
out:
    pa_textbuf_destroy(&b);
    pa_symtab_free(sym);
    free(c.recs);
    pa_stacktab_free(t);
    return rc;
}

/* ---- serving ---- */

static void serve(pa_req_t *req, const heap_kind_t *k)
{
    static const pa_header_t text_hdrs[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"X-Content-Type-Options", "nosniff"},
    };
    char v[64], disposition[64];
    pa_header_t proto_hdrs[] = {
        {"Content-Type", "application/octet-stream"},
        {"Content-Disposition", disposition},
        {"X-Content-Type-Options", "nosniff"},
    };
    int64_t debug = 0;
    pa_stacktab_t *t = NULL;
    int rc;

    if (!pa_heap_available()) {
        pa_delta_serve_error(req, 501, PA_HEAP_MSG_SANITIZER);
        return;
    }
    /* Go: a non-empty seconds makes it a delta; a too long value is a bad one */
    rc = pa_query_get(pa_req_query(req), "seconds", v, sizeof(v));
    if (rc == -ENAMETOOLONG) {
        pa_delta_serve_error(req, 400, PA_DELTA_MSG_BAD_SECONDS);
        return;
    }
    if (rc == 1 && v[0] != '\0') {
        pa_delta_serve(req, v, &k->delta, (void *)k);
        return;
    }
    /* gc: strconv.Atoi, then runtime.GC() for heap; nothing to collect here */
    if (pa_query_get(pa_req_query(req), "debug", v, sizeof(v)) == 1 &&
        pa_query_parse_int(v, &debug) < 0)
        debug = 0; /* Atoi's error is ignored by Go */
    if (debug != 0) {
        char *text = NULL;
        size_t len = 0;
        rc = heap_text(&text, &len);
        if (rc < 0) {
            fprintf(stderr, "profagent: the %s text profile failed: %s\n", k->name, strerror(-rc));
            pa_delta_serve_error(req, 500, "Could not write the heap profile");
            return;
        }
        pa_req_respond(req, 200, text_hdrs, NH(text_hdrs), text, len);
        free(text);
        return;
    }
    rc = snapshot(1, &t);
    if (rc == 0) {
        uint8_t *body = NULL;
        size_t len = 0;
        rc = encode((void *)k, t, wall_ns(), 0, &body, &len);
        if (rc == 0) {
            snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", k->name);
            pa_req_respond(req, 200, proto_hdrs, NH(proto_hdrs), body, len);
        }
        free(body);
    }
    pa_stacktab_free(t);
    if (rc < 0) {
        fprintf(stderr, "profagent: the %s profile failed: %s\n", k->name, strerror(-rc));
        pa_delta_serve_error(req, 500, "Could not write the heap profile");
    }
}

int pa_handlers_heap_serve(pa_req_t *req, const char *name)
{
    const heap_kind_t *k;

    if (strcmp(name, "heap") == 0)
        k = &kind_heap;
    else if (strcmp(name, "allocs") == 0)
        k = &kind_allocs;
    else
        return 0;
    /* the agent's own work is not the host's heap */
    pa_heap_exclude_this_thread();
    serve(req, k);
    return 1;
}
