/* pa_handlers_threads: the goroutine and threadcreate endpoints (see pa_handlers_threads.h).
 * Go's net/http/pprof (handler.ServeHTTP, serveDeltaProfile) and runtime/pprof
 * (writeGoroutine, writeThreadCreate, printCountProfile) are the reference. */
#include "pa_handlers_threads.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pa_delta.h"
#include "pa_pprof.h"
#include "pa_query.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "pa_text.h"
#include "pa_thread_hook.h"
#include "pa_threads.h"

#define NH(a) (sizeof(a) / sizeof((a)[0]))
#define POLL_NS 1000000LL       /* how often a collection checks for answers */
#define BUSY_RETRY_NS 5000000LL /* a request finding another collection running retries */
#define BUSY_GIVE_UP_NS 5000000000LL

static const pa_header_t text_headers[] = {
    {"Content-Type", "text/plain; charset=utf-8"},
    {"X-Content-Type-Options", "nosniff"},
};

/* Go's serveError: text/plain, X-Go-Pprof (so go tool pprof shows the text), msg + "\n" */
void pa__serve_error(pa_req_t *req, int status, const char *msg)
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

/* Go: debug, _ := strconv.Atoi(r.FormValue("debug")): anything unparsable is 0 */
int64_t pa__query_debug(pa_req_t *req)
{
    char v[32];
    int64_t d;

    if (pa_query_get(pa_req_query(req), "debug", v, sizeof(v)) != 1 ||
        pa_query_parse_int(v, &d) < 0)
        return 0;
    return d;
}

int pa__serve_delta(pa_req_t *req, const pa_delta_ops_t *ops, void *arg)
{
    char v[64];
    int rc = pa_query_get(pa_req_query(req), "seconds", v, sizeof(v));

    if (rc == 0 || (rc == 1 && v[0] == '\0'))
        return 0; /* Go: FormValue("seconds") == "" means no delta */
    if (rc < 0) {
        pa_delta_serve_error(req, 400, PA_DELTA_MSG_BAD_SECONDS);
        if (ops->release != NULL)
            ops->release(arg);
        return 1;
    }
    pa_delta_serve(req, v, ops, arg); /* Go's checks of seconds and debug, the wait, the diff */
    return 1;
}

/* Proto (debug <= 0) or text: Go sets text/plain for any debug != 0 even when, for a negative
 * value, WriteTo then writes the proto. */
void pa__respond_profile(pa_req_t *req, const char *name, int64_t debug, const void *body,
                         size_t len)
{
    char disp[64];
    pa_header_t hdrs[3] = {
        {"Content-Type", "application/octet-stream"},
        {"Content-Disposition", disp},
        {"X-Content-Type-Options", "nosniff"},
    };

    if (debug != 0) {
        pa_req_respond(req, 200, text_headers, NH(text_headers), body, len);
        return;
    }
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", name);
    pa_req_respond(req, 200, hdrs, NH(hdrs), body, len);
}

/* A count profile (values {count}) as Go's printCountProfile writes the proto: sample and
 * period type name/count, period 1. */
static int encode_count(const char *name, const pa_stacktab_t *tab, int64_t time_nanos,
                        int64_t duration_nanos, const char *const *comments, size_t ncomments,
                        uint8_t **out, size_t *outlen)
{
    const pa_pprof_vt_t type = {name, "count"};
    pa_pprof_desc_t d = {0};
    pa_symtab_t *st = NULL;
    int rc = pa_symtab_new(&st);

    if (rc == 0) {
        d.sample_types = &type;
        d.nsample_types = 1;
        d.period_type = type;
        d.period = 1;
        d.time_nanos = time_nanos;
        d.duration_nanos = duration_nanos;
        d.comments = comments;
        d.ncomments = ncomments;
        rc = pa_pprof_encode(&d, tab, st, 1, out, outlen);
    }
    pa_symtab_free(st);
    return rc;
}

/* A count profile (values {count}) as proto or debug=1 text. */
static void serve_count_profile(pa_req_t *req, const char *name, int64_t debug,
                                const pa_stacktab_t *tab, int64_t time_nanos,
                                const char *const *comments, size_t ncomments)
{
    pa_symtab_t *st = NULL;
    uint8_t *out = NULL;
    char *text = NULL;
    size_t outlen = 0;
    int rc = 0;

    if (debug > 0) {
        rc = pa_symtab_new(&st);
        if (rc == 0)
            rc = pa_text_count_profile(name, tab, 0, st, comments, ncomments, &text, &outlen);
        pa_symtab_free(st);
    } else {
        rc = encode_count(name, tab, time_nanos, 0, comments, ncomments, &out, &outlen);
    }
    if (rc < 0) {
        fprintf(stderr, "profagent: writing the %s profile failed: %s\n", name, strerror(-rc));
        pa__serve_error(req, 500, "failed to write the profile");
        return;
    }
    pa__respond_profile(req, name, debug, text ? (const void *)text : out, outlen);
    free(text);
    free(out);
}

/* ---- deltas (seconds=N) ---- */

static int goroutine_snapshot(void *arg, pa_stacktab_t **out)
{
    pa_threads_snap_t *s = NULL;
    int rc = pa_threads_collect(PA_THREADS_WAIT_MS, &s); /* blocks <= the bound */

    (void)arg;
    *out = NULL;
    if (rc == 0)
        rc = pa_stacktab_new(1, s->n ? s->n : 1, out);
    if (rc == 0)
        (void)pa_threads_snap_to_stacktab(s, *out); /* capacity s->n: nothing refused */
    pa_threads_snap_free(s);
    return rc;
}

static int threadcreate_snapshot(void *arg, pa_stacktab_t **out)
{
    int rc = pa_stacktab_new(1, PA_THREAD_HOOK_MAX_STACKS, out);

    (void)arg;
    if (rc == 0)
        (void)pa_thread_hook_read(*out);
    return rc;
}

static int goroutine_encode(void *arg, const pa_stacktab_t *delta, int64_t time_nanos,
                            int64_t duration_nanos, uint8_t **out, size_t *outlen)
{
    (void)arg;
    return encode_count("goroutine", delta, time_nanos, duration_nanos, NULL, 0, out, outlen);
}

static int threadcreate_encode(void *arg, const pa_stacktab_t *delta, int64_t time_nanos,
                               int64_t duration_nanos, uint8_t **out, size_t *outlen)
{
    (void)arg;
    return encode_count("threadcreate", delta, time_nanos, duration_nanos, NULL, 0, out, outlen);
}

static const pa_delta_ops_t goroutine_delta = {"goroutine", goroutine_snapshot, goroutine_encode,
                                               NULL};
static const pa_delta_ops_t threadcreate_delta = {"threadcreate", threadcreate_snapshot,
                                                  threadcreate_encode, NULL};

/* ---- goroutine ---- */

typedef struct goroutine_req {
    pa_threads_collect_t *c; /* NULL while waiting for another collection to end */
    int64_t debug;
    int64_t deadline_ns; /* answers awaited until then (or, busy, retries until then) */
} goroutine_req_t;

static const char *state_word(char s)
{
    switch (s) {
    case 'R':
        return "running";
    case 'S':
        return "sleeping";
    case 'D':
        return "disk sleep";
    case 'T':
        return "stopped";
    case 't':
        return "tracing stop";
    case 'Z':
        return "zombie";
    case 'X':
        return "dead";
    default:
        return "unknown";
    }
}

/* The comment lines saying which threads have no stack in the profile, and why. */
static size_t snap_comments(const pa_threads_snap_t *s, size_t refused, char lines[][160])
{
    size_t n = 0;

    snprintf(lines[n++], 160, "threads: %zu listed, %zu with a stack", s->n, s->answered);
    if (s->masked)
        snprintf(lines[n++], 160,
                 "%zu threads not sampled: signal %d blocked or already "
                 "pending in them",
                 s->masked, s->signo);
    if (s->missing)
        snprintf(lines[n++], 160, "%zu threads did not answer within %d ms", s->missing,
                 PA_THREADS_WAIT_MS);
    if (s->gone)
        snprintf(lines[n++], 160, "%zu threads exited while being sampled", s->gone);
    if (s->truncated)
        snprintf(lines[n++], 160, "%zu threads not listed: more than %d", s->truncated,
                 PA_THREADS_MAX);
    if (refused)
        snprintf(lines[n++], 160, "dropped %zu stacks: stack table full", refused);
    return n;
}

static void serve_threads_debug2(pa_req_t *req, const pa_threads_snap_t *s)
{
    pa_symtab_t *st = NULL;
    pa_textbuf_t b;
    char *out = NULL;
    size_t outlen = 0;
    int rc = pa_symtab_new(&st);

    pa_textbuf_init(&b);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const pa_thread_stack_t *t = &s->threads[i];

        if (t->status == PA_THREAD_GONE)
            continue;
        if (i > 0)
            pa_textbuf_append(&b, "\n", 1);
        pa_textbuf_printf(&b, "thread %d [%s, %s]:\n", (int)t->tid, t->name, state_word(t->state));
        if (t->status == PA_THREAD_ANSWERED)
            pa_text_traceback(&b, st, t->pcs, t->npcs);
        else if (t->status == PA_THREAD_MASKED)
            pa_textbuf_printf(&b,
                              "\t(no stack: signal %d is blocked or pending in this "
                              "thread)\n",
                              s->signo);
        else
            pa_textbuf_printf(&b, "\t(no stack: no answer within %d ms)\n", PA_THREADS_WAIT_MS);
    }
    if (rc == 0)
        rc = pa_textbuf_take(&b, &out, &outlen);
    pa_textbuf_destroy(&b);
    pa_symtab_free(st);
    if (rc < 0) {
        pa__serve_error(req, 500, "failed to write the profile");
        return;
    }
    pa_req_respond(req, 200, text_headers, NH(text_headers), out, outlen);
    free(out);
}

static void goroutine_answer(goroutine_req_t *g, pa_req_t *req)
{
    pa_threads_snap_t *s = NULL;
    pa_stacktab_t *tab = NULL;
    char lines[6][160];
    const char *comments[6];
    size_t ncomments, refused = 0;
    int rc = pa_threads_finish(g->c, &s);

    g->c = NULL;
    if (rc < 0) {
        pa__serve_error(req, 500, "failed to collect profile");
        return;
    }
    if (g->debug >= 2) {
        serve_threads_debug2(req, s);
        pa_threads_snap_free(s);
        return;
    }
    rc = pa_stacktab_new(1, s->n ? s->n : 1, &tab);
    if (rc < 0) {
        pa_threads_snap_free(s);
        pa__serve_error(req, 500, "failed to collect profile");
        return;
    }
    refused = pa_threads_snap_to_stacktab(s, tab);
    ncomments = snap_comments(s, refused, lines);
    for (size_t i = 0; i < ncomments; i++)
        comments[i] = lines[i];
    serve_count_profile(req, "goroutine", g->debug, tab, s->time_nanos, comments, ncomments);
    pa_stacktab_free(tab);
    pa_threads_snap_free(s);
}

static void goroutine_free(goroutine_req_t *g)
{
    pa_threads_snap_t *s = NULL;

    if (g->c != NULL && pa_threads_finish(g->c, &s) == 0)
        pa_threads_snap_free(s);
    free(g);
}

/* Begin a collection for g; 1 begun, 0 busy (retry later), -1 answered with an error. */
static int goroutine_begin(goroutine_req_t *g, pa_req_t *req)
{
    char msg[256];
    int rc = pa_threads_begin(&g->c);

    if (rc == -EBUSY)
        return 0;
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "Could not collect thread stacks: %s", pa_threads_strerror(rc));
        pa__serve_error(req, 500, msg);
        return -1;
    }
    g->deadline_ns = pa_server_now_ns() + (int64_t)PA_THREADS_WAIT_MS * 1000000;
    return 1;
}

static void on_goroutine_event(void *arg, pa_req_t *req, pa_req_event_t ev)
{
    goroutine_req_t *g = arg;
    int64_t now = pa_server_now_ns();
    int rc;

    if (ev != PA_REQ_WAKE) {
        goroutine_free(g);
        return;
    }
    if (g->c == NULL) {
        rc = goroutine_begin(g, req);
        if (rc < 0 || (rc == 0 && now >= g->deadline_ns)) {
            if (rc == 0)
                pa__serve_error(req, 500,
                                "Could not collect thread stacks: another collection "
                                "kept running");
            goroutine_free(g);
            return;
        }
        pa_req_wake_at(req, now + (rc == 0 ? BUSY_RETRY_NS : POLL_NS));
        return;
    }
    if (!pa_threads_poll(g->c) && now < g->deadline_ns) {
        pa_req_wake_at(req, now + POLL_NS);
        return;
    }
    goroutine_answer(g, req);
    goroutine_free(g);
}

static void serve_goroutine(pa_req_t *req)
{
    goroutine_req_t *g;
    int rc;

    if (pa__serve_delta(req, &goroutine_delta, NULL))
        return;
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        pa__serve_error(req, 500, "failed to collect profile");
        return;
    }
    g->debug = pa__query_debug(req);
    rc = goroutine_begin(g, req);
    if (rc < 0) {
        free(g);
        return;
    }
    if (rc == 0)
        g->deadline_ns = pa_server_now_ns() + BUSY_GIVE_UP_NS;
    pa_req_defer(req, on_goroutine_event, g);
    pa_req_wake_at(req, pa_server_now_ns() + (rc == 0 ? BUSY_RETRY_NS : 0));
}

/* ---- threadcreate ---- */

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void serve_threadcreate(pa_req_t *req)
{
    char msg[512], line[2][160];
    const char *comments[2], *who;
    size_t ncomments = 0, refused;
    uint64_t dropped;
    pa_stacktab_t *tab = NULL;
    int64_t debug;
    int rc;

    rc = pa_thread_hook_status(&who);
    if (rc < 0) {
        if (rc == -ENOSYS)
            snprintf(msg, sizeof(msg),
                     "threadcreate profile unavailable: no pthread_create "
                     "found behind libprofagent's");
        else
            snprintf(msg, sizeof(msg),
                     "threadcreate profile unavailable: pthread_create is "
                     "bound to %s ahead of libprofagent (a sanitizer runtime or another "
                     "preloaded library interposes it), so thread creations are not seen",
                     who[0] ? who : "another object");
        pa__serve_error(req, 500, msg);
        return;
    }
    if (pa__serve_delta(req, &threadcreate_delta, NULL))
        return;
    debug = pa__query_debug(req);
    if (pa_stacktab_new(1, PA_THREAD_HOOK_MAX_STACKS, &tab) < 0) {
        pa__serve_error(req, 500, "failed to write the profile");
        return;
    }
    refused = pa_thread_hook_read(tab);
    dropped = pa_thread_hook_dropped();
    if (dropped > 0)
        snprintf(line[ncomments++], 160,
                 "%" PRIu64 " thread creations not recorded: creation "
                 "table full or stack not unwound",
                 dropped);
    if (refused > 0)
        snprintf(line[ncomments++], 160, "dropped %zu stacks: stack table full", refused);
    for (size_t i = 0; i < ncomments; i++)
        comments[i] = line[i];
    serve_count_profile(req, "threadcreate", debug, tab, wall_ns(), comments, ncomments);
    pa_stacktab_free(tab);
}

int pa_handlers_threads_serve(pa_req_t *req, const char *name)
{
    if (strcmp(name, "goroutine") == 0)
        serve_goroutine(req);
    else if (strcmp(name, "threadcreate") == 0)
        serve_threadcreate(req);
    else
        return 0;
    return 1;
}
