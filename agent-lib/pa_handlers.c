/* pa_handlers: net/http/pprof's handlers in C (see pa_handlers.h). Go's source
 * (net/http/pprof/pprof.go) is the reference for every status, message and header here. */
#include "pa_handlers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pa_cpu.h"
#include "pa_handlers_heap.h"
#include "pa_handlers_lock.h"
#include "pa_handlers_threads.h"
#include "pa_heap.h"
#include "pa_lock.h"
#include "pa_pprof.h"
#include "pa_query.h"
#include "pa_stacktab.h"
#include "pa_symbol.h"
#include "pa_symbolize.h"
#include "pa_task.h"
#include "pa_thread_hook.h"
#include "pa_trace.h"

#define NH(a) (sizeof(a) / sizeof((a)[0]))

static const pa_header_t text_headers[] = {
    {"Content-Type", "text/plain; charset=utf-8"},
    {"X-Content-Type-Options", "nosniff"},
};

static const pa_header_t profile_headers[] = {
    {"Content-Type", "application/octet-stream"},
    {"Content-Disposition", "attachment; filename=\"profile\""},
    {"X-Content-Type-Options", "nosniff"},
};

/* Go's serveError: text/plain, X-Go-Pprof (so go tool pprof shows the text), msg + "\n" */
static void serve_error(pa_req_t *req, int status, const char *msg)
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

/* ---- index ---- */

/* The record count the index shows beside a profile, as Go's Profile.Count, read from the
 * samplers' tables without building the profile: 0 for what is not a record profile (Go
 * shows 0 for cmdline, profile and trace too). */
typedef uint64_t (*count_fn)(void);

static uint64_t count_threads(void)
{
    size_t n;
    return pa_task_count(&n) == 0 ? n : 0; /* Go: runtime.NumGoroutine() */
}

static uint64_t count_heap_inuse(void)
{
    uint64_t inuse, all;
    return pa_heap_count(&inuse, &all) == 0 ? inuse : 0;
}

static uint64_t count_heap_all(void)
{
    uint64_t inuse, all;
    return pa_heap_count(&inuse, &all) == 0 ? all : 0;
}

/* 0 when the threadcreate profile itself is refused (calls do not reach the hook), as that
 * page answers 500 then */
static uint64_t count_threadcreate(void)
{
    const char *who;
    return pa_thread_hook_status(&who) == 0 ? pa_thread_hook_count() : 0;
}

static uint64_t count_block(void)
{
    return pa_lock_count(PA_LOCK_BLOCK);
}

static uint64_t count_mutex(void)
{
    return pa_lock_count(PA_LOCK_MUTEX);
}

typedef struct profile_entry {
    const char *name;
    count_fn count; /* NULL: 0 */
    const char *desc;
} profile_entry_t;

/* Only what works is listed (Go's wording). Counts, as Go's index shows them where a native
 * equivalent exists: goroutine, the threads now (NumGoroutine); threadcreate, the creations
 * recorded (the profile's total); block and mutex, the stacks recorded (Go's records). heap
 * and allocs (one count in Go: every record) differ: heap counts the stacks with sampled
 * objects still in use, allocs every stack that allocated, so the heap count falls when
 * memory is freed. */
static const profile_entry_t index_entries[] = {
    {"allocs", count_heap_all, "A sampling of all past memory allocations"},
    {"block", count_block,
     "Stack traces that led to blocking on synchronization primitives (pthread mutexes, "
     "rwlocks, condition variables, semaphores); on with PROFAGENT_BLOCK_RATE"},
    {"cmdline", NULL, "The command line invocation of the current program"},
    {"goroutine", count_threads,
     "Stack traces of all current threads (goroutines, for native code). Use "
     "debug=2 as a query parameter to export one block per thread with its id "
     "and name."},
    {"heap", count_heap_inuse, "A sampling of memory allocations of live objects."},
    {"mutex", count_mutex,
     "Stack traces of holders of contended mutexes; on with PROFAGENT_MUTEX_FRACTION"},
    {"profile", NULL,
     "CPU profile. You can specify the duration in the seconds GET parameter. After "
     "you get the profile file, use the go tool pprof command to investigate the "
     "profile."},
    {"threadcreate", count_threadcreate, "Stack traces that led to the creation of new OS threads"},
    {"trace", NULL,
     "A timeline of the process (per-thread CPU samples and blocking events) as Chrome "
     "trace-event JSON, "
     "for Perfetto or chrome://tracing. You can specify the duration in the seconds "
     "GET parameter."},
};

/* Append to buf[*o..cap) like snprintf, never past cap: a page that outgrows the buffer is cut,
 * never written out of bounds. */
static void __attribute__((format(printf, 4, 5)))
index_append(char *buf, size_t cap, size_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*o + 1 >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n > 0)
        *o += (size_t)n < cap - *o ? (size_t)n : cap - *o - 1;
}

static void serve_index(pa_req_t *req)
{
    static const pa_header_t hdrs[] = {
        {"Content-Type", "text/html; charset=utf-8"},
        {"X-Content-Type-Options", "nosniff"},
    };
    char buf[8192];
    size_t o = 0;

    index_append(buf, sizeof buf, &o, "%s",
                 "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n"
                 ".profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n"
                 "</style>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\n"
                 "Types of profiles available:\n<table>\n"
                 "<thead><td>Count</td><td>Profile</td></thead>\n");
    for (size_t i = 0; i < NH(index_entries); i++) {
        const profile_entry_t *e = &index_entries[i];
        index_append(buf, sizeof buf, &o,
                     "<tr><td>%" PRIu64 "</td><td><a href='%s?debug=1'>%s</a></td></tr>\n",
                     e->count != NULL ? e->count() : 0, e->name, e->name);
    }
    index_append(buf, sizeof buf, &o, "%s", "</table>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n");
    for (size_t i = 0; i < NH(index_entries); i++)
        index_append(buf, sizeof buf, &o, "<li><div class=profile-name>%s: </div> %s</li>\n",
                     index_entries[i].name, index_entries[i].desc);
    index_append(buf, sizeof buf, &o, "%s", "</ul>\n</p>\n</body>\n</html>");
    pa_req_respond(req, 200, hdrs, NH(hdrs), buf, o);
}

/* ---- cmdline ---- */

/* /proc/self/cmdline is argv with a NUL after each; Go joins os.Args with NUL (none after) */
static void serve_cmdline(pa_req_t *req)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        serve_error(req, 500, "reading /proc/self/cmdline failed");
        return;
    }
    for (;;) {
        ssize_t n;
        if (len == cap) {
            char *nb = realloc(buf, cap ? cap * 2 : 4096);
            if (nb == NULL)
                break;
            buf = nb;
            cap = cap ? cap * 2 : 4096;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len > 0 && buf[len - 1] == '\0')
        len--;
    pa_req_respond(req, 200, text_headers, NH(text_headers), buf ? buf : "", len);
    free(buf);
}

/* ---- symbol ---- */

static const char *lookup_symbol(void *arg, uint64_t pc)
{
    pa_sym_t sym;

    if (pa_symtab_lookup(arg, (uintptr_t)pc, &sym) < 0)
        return NULL;
    return sym.name;
}

static void serve_symbol(pa_req_t *req)
{
    pa_symtab_t *st = NULL;
    const char *in;
    size_t inlen;
    char *out = NULL;
    size_t outlen = 0;
    int rc;

    if (strcmp(pa_req_method(req), "POST") == 0) {
        in = pa_req_body(req, &inlen);
    } else {
        in = pa_req_query(req);
        inlen = strlen(in);
    }
    rc = pa_symtab_new(&st);
    if (rc == 0)
        rc = pa_symbol_answer(in, inlen, lookup_symbol, st, &out, &outlen);
    pa_symtab_free(st);
    if (rc < 0) {
        serve_error(req, 500, "symbolization failed");
        return;
    }
    pa_req_respond(req, 200, text_headers, NH(text_headers), out, outlen);
    free(out);
}

/* ---- profile (CPU) ---- */

typedef struct cpu_profile {
    pa_stacktab_t *tab;
    int64_t start_wall_ns;
    int64_t start_ns, end_ns; /* monotonic */
} cpu_profile_t;

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void cpu_profile_free(cpu_profile_t *p)
{
    pa_stacktab_free(p->tab);
    free(p);
}

static int64_t next_wake(const cpu_profile_t *p, int64_t now)
{
    int64_t t = now + (int64_t)PA_CPU_DRAIN_MS * 1000000;
    return t < p->end_ns ? t : p->end_ns;
}

static void cpu_profile_answer(cpu_profile_t *p, pa_req_t *req, uint64_t lost)
{
    static const pa_pprof_vt_t types[] = {{"samples", "count"}, {"cpu", "nanoseconds"}};
    char comment[96], timer[128], uncovered[96];
    const char *comments[3];
    uint64_t nuncovered;
    pa_pprof_desc_t d = {0};
    pa_symtab_t *st = NULL;
    uint8_t *out = NULL;
    size_t outlen = 0;
    int rc;

    d.sample_types = types;
    d.nsample_types = NH(types);
    d.period_type = types[1];
    d.period = pa_cpu_period_ns();
    d.time_nanos = p->start_wall_ns;
    d.duration_nanos = pa_server_now_ns() - p->start_ns;
    d.comments = comments;
    pa_cpu_timer_describe(timer, sizeof(timer), &nuncovered);
    comments[d.ncomments++] = timer;
    if (nuncovered > 0) {
        snprintf(uncovered, sizeof(uncovered), "%llu threads not sampled: no CPU timer for them",
                 (unsigned long long)nuncovered);
        comments[d.ncomments++] = uncovered;
    }
    if (pa_stacktab_dropped(p->tab) > 0) {
        snprintf(comment, sizeof(comment), "dropped %llu samples: stack table full",
                 (unsigned long long)pa_stacktab_dropped(p->tab));
        comments[d.ncomments++] = comment;
    }
    (void)lost; /* already in the table as [lost samples] */
    rc = pa_symtab_new(&st);
    if (rc == 0)
        rc = pa_pprof_encode(&d, p->tab, st, 1, &out, &outlen);
    pa_symtab_free(st);
    if (rc < 0) {
        fprintf(stderr, "profagent: encoding the CPU profile failed: %s\n", strerror(-rc));
        serve_error(req, 500, "Could not encode the CPU profile");
        return;
    }
    pa_req_respond(req, 200, profile_headers, NH(profile_headers), out, outlen);
    free(out);
}

static void on_cpu_profile_event(void *arg, pa_req_t *req, pa_req_event_t ev)
{
    cpu_profile_t *p = arg;
    int64_t now = pa_server_now_ns();
    uint64_t lost = 0;

    if (ev != PA_REQ_WAKE) {
        /* client gone or agent stopping: stop now, keep nothing */
        pa_cpu_stop(NULL, NULL);
        cpu_profile_free(p);
        return;
    }
    pa_cpu_drain(p->tab);
    if (now < p->end_ns) {
        pa_req_wake_at(req, next_wake(p, now));
        return;
    }
    pa_cpu_stop(p->tab, &lost);
    cpu_profile_answer(p, req, lost);
    cpu_profile_free(p);
}

/* seconds, as Go's pprof.Profile reads it: absent, unreadable or not positive -> 30 s;
 * above PA_MAX_SECONDS -> -ERANGE (400, as Go refuses a duration beyond its WriteTimeout) */
static int parse_seconds(pa_req_t *req, int64_t *sec)
{
    char v[32];
    int rc = pa_query_get(pa_req_query(req), "seconds", v, sizeof(v));

    if (rc <= 0 || pa_query_parse_int(v, sec) < 0 || *sec <= 0)
        *sec = 30;
    return *sec > PA_MAX_SECONDS ? -ERANGE : 0;
}

static void serve_profile(const pa_handlers_t *h, pa_req_t *req)
{
    char msg[160];
    cpu_profile_t *p;
    int64_t sec;
    int rc;

    if (parse_seconds(req, &sec) < 0) {
        snprintf(msg, sizeof(msg), "profile duration exceeds the agent's limit of %d seconds",
                 PA_MAX_SECONDS);
        serve_error(req, 400, msg);
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || pa_stacktab_new(2, PA_CPU_MAX_STACKS, &p->tab) < 0) {
        free(p);
        serve_error(req, 500, "Could not enable CPU profiling: out of memory");
        return;
    }
    rc = pa_cpu_start(h->cpu_hz);
    if (rc < 0) {
        cpu_profile_free(p);
        snprintf(msg, sizeof(msg), "Could not enable CPU profiling: %s", pa_cpu_strerror(rc));
        serve_error(req, 500, msg);
        return;
    }
    p->start_wall_ns = wall_ns();
    p->start_ns = pa_server_now_ns();
    p->end_ns = p->start_ns + sec * 1000000000LL;
    pa_req_defer(req, on_cpu_profile_event, p);
    pa_req_wake_at(req, next_wake(p, p->start_ns));
}

/* ---- dispatch ---- */

void pa_handlers_serve(void *arg, pa_req_t *req)
{
    static const char prefix[] = "/debug/pprof/";
    const pa_handlers_t *h = arg;
    const char *path = pa_req_path(req);
    const char *name;

    if (strcmp(path, "/debug/pprof") == 0) {
        /* Go's ServeMux redirects a subtree root without its slash */
        static const pa_header_t hdrs[] = {
            {"Location", "/debug/pprof/"},
            {"Content-Type", "text/html; charset=utf-8"},
        };
        static const char body[] = "<a href=\"/debug/pprof/\">Moved Permanently</a>.\n\n";
        pa_req_respond(req, 301, hdrs, NH(hdrs), body, sizeof(body) - 1);
        return;
    }
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        serve_error(req, 404, "404 page not found");
        return;
    }
    name = path + sizeof(prefix) - 1;
    if (*name == '\0')
        serve_index(req);
    else if (strcmp(name, "cmdline") == 0)
        serve_cmdline(req);
    else if (strcmp(name, "profile") == 0)
        serve_profile(h, req);
    else if (strcmp(name, "symbol") == 0)
        serve_symbol(req);
    else if (strcmp(name, "trace") == 0)
        pa_trace_serve(req, h->cpu_hz); /* Chrome trace-event JSON: pa_trace.c */
    else if (pa_handlers_heap_serve(req, name))
        ; /* heap, allocs: pa_handlers_heap.c */
    else if (pa_handlers_threads_serve(req, name))
        ; /* goroutine, threadcreate: pa_handlers_threads.c */
    else if (pa_handlers_lock_serve(req, name))
        ; /* block, mutex: pa_handlers_lock.c */
    else
        serve_error(req, 404, "Unknown profile");
}
