/* pa_trace: the trace endpoint (see pa_trace.h). Samples come from pa_cpu's ring as raw slots
 * (stack, signal time, tid, overrun), blocking events from pa_lock's event ring; both are
 * copied into growing arrays during the trace, and symbolized and written as JSON once, at
 * the end. */
#include "pa_trace.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pa_cpu.h"
#include "pa_handlers.h"
#include "pa_lock.h"
#include "pa_pprof.h"
#include "pa_query.h"
#include "pa_ring.h"
#include "pa_symbolize.h"

#define MAX_THREADS 1024 /* thread names kept per trace */

typedef struct trace_sample {
    int64_t ts_ns; /* CLOCK_MONOTONIC, at the signal */
    int32_t tid;
    int32_t weight; /* periods this sample stands for */
    uint32_t npcs;
    uintptr_t pcs[PA_TRACE_FRAMES];
} trace_sample_t;

typedef struct thread_name {
    int32_t tid;
    char name[16]; /* comm: at most 15 bytes */
} thread_name_t;

typedef struct trace {
    trace_sample_t *samples;
    size_t n, cap;
    uint64_t dropped; /* samples beyond PA_TRACE_MAX_EVENTS */
    pa_lock_event_t *blocks;
    size_t nblocks, capblocks;
    uint64_t blocks_over_limit;  /* beyond PA_TRACE_MAX_BLOCK_EVENTS */
    uint64_t blocks_lost_before; /* the hooks' ring drop count when the trace started */
    thread_name_t threads[MAX_THREADS];
    size_t nthreads;
    int64_t start_ns, end_ns, period_ns;
    double seconds; /* as asked for (after Go's parsing and our cap) */
} trace_t;

/* ---- output buffer ---- */

static void buf_put(pa_trace_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *d;
        while (cap < b->len + n + 1)
            cap *= 2;
        d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(pa_trace_buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(pa_trace_buf_t *b, const char *fmt,
                                                             ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->failed = 1; /* every format used here fits */
        return;
    }
    buf_put(b, tmp, (size_t)n);
}

void pa__trace_json_string(pa_trace_buf_t *b, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_put(b, e, 2);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_put(b, (const char *)&c, 1);
        }
    }
}

/* ---- collection ---- */

static void remember_thread(trace_t *tr, int32_t tid)
{
    char path[64], name[32];
    ssize_t n;
    FILE *f;

    for (size_t i = 0; i < tr->nthreads; i++)
        if (tr->threads[i].tid == tid)
            return;
    if (tr->nthreads == MAX_THREADS)
        return;
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
    name[0] = '\0';
    if ((f = fopen(path, "re")) != NULL) {
        n = (ssize_t)fread(name, 1, sizeof(name) - 1, f);
        name[n > 0 ? n : 0] = '\0';
        fclose(f);
    }
    name[strcspn(name, "\n")] = '\0';
    if (name[0] == '\0')
        snprintf(name, sizeof(name), "thread %d", (int)tid);
    tr->threads[tr->nthreads].tid = tid;
    /* precision: comm fits, and gcc -O0 -Wformat-truncation (sanitizer builds) sees it does */
    snprintf(tr->threads[tr->nthreads].name, sizeof(tr->threads[0].name), "%.*s",
             (int)sizeof(tr->threads[0].name) - 1, name);
    tr->nthreads++;
}

static void on_slot(void *arg, const pa_ring_slot_t *s)
{
    trace_t *tr = arg;
    trace_sample_t *e;

    if (s->npcs == 0)
        return;
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? tr->cap * 2 : 1024;
        trace_sample_t *d;
        if (cap > PA_TRACE_MAX_EVENTS)
            cap = PA_TRACE_MAX_EVENTS;
        if (tr->n == cap || (d = realloc(tr->samples, cap * sizeof(*d))) == NULL) {
            tr->dropped++;
            return;
        }
        tr->samples = d;
        tr->cap = cap;
    }
    e = &tr->samples[tr->n++];
    e->ts_ns = s->values[0];
    e->tid = (int32_t)s->values[1];
    e->weight = 1 + (int32_t)s->tag;
    e->npcs = s->npcs < PA_TRACE_FRAMES ? s->npcs : PA_TRACE_FRAMES;
    memcpy(e->pcs, s->pcs, e->npcs * sizeof(e->pcs[0]));
    remember_thread(tr, e->tid);
}

static void on_block(void *arg, const pa_lock_event_t *ev)
{
    trace_t *tr = arg;

    if (tr->nblocks == tr->capblocks) {
        size_t cap = tr->capblocks ? tr->capblocks * 2 : 256;
        pa_lock_event_t *d;
        if (cap > PA_TRACE_MAX_BLOCK_EVENTS)
            cap = PA_TRACE_MAX_BLOCK_EVENTS;
        if (tr->nblocks == cap || (d = realloc(tr->blocks, cap * sizeof(*d))) == NULL) {
            tr->blocks_over_limit++;
            return;
        }
        tr->blocks = d;
        tr->capblocks = cap;
    }
    tr->blocks[tr->nblocks++] = *ev;
    remember_thread(tr, ev->tid);
}

static void drain(trace_t *tr)
{
    pa_cpu_drain_slots(on_slot, tr);
    pa_lock_trace_drain(on_block, tr);
}

/* ---- output ---- */

static const char *frame_name(pa_symtab_t *st, uintptr_t pc, int leaf, char *tmp, size_t len)
{
    pa_sym_t sym = {0};

    switch (pc) {
    case PA_PC_LOST:
        return "[lost samples]";
    case PA_PC_IN_LOADER:
        return "[in dynamic loader]";
    case PA_PC_UNWIND_FAIL:
        return "[unknown]";
    default:
        break;
    }
    /* callers' pcs are return addresses: look up the call instruction */
    if (pa_symtab_lookup(st, leaf ? pc : pc - 1, &sym) == 0 && sym.name != NULL)
        return sym.name;
    if (sym.mapping != NULL && sym.mapping->path[0] != '\0') {
        const char *base = strrchr(sym.mapping->path, '/');
        snprintf(tmp, len, "%s+0x%lx", base ? base + 1 : sym.mapping->path,
                 (unsigned long)(pc - sym.mapping->start + sym.mapping->offset));
        return tmp;
    }
    snprintf(tmp, len, "0x%lx", (unsigned long)pc);
    return tmp;
}

static void put_us(pa_trace_buf_t *b, int64_t ns)
{
    buf_printf(b, "%lld.%03lld", (long long)(ns / 1000), (long long)(llabs(ns) % 1000));
}

void pa__trace_block_event(pa_trace_buf_t *b, int pid, int64_t start_ns, const pa_lock_event_t *ev,
                           const char *caller)
{
    buf_str(b, ",\n{\"name\":\"");
    pa__trace_json_string(b, pa_lock_fn_name(ev->fn));
    buf_printf(b, "\",\"cat\":\"block\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":", pid,
               (int)ev->tid);
    put_us(b, ev->start_ns - start_ns);
    buf_str(b, ",\"dur\":");
    put_us(b, ev->dur_ns);
    buf_str(b, ",\"args\":{\"caller\":\"");
    pa__trace_json_string(b, caller);
    buf_str(b, "\"}}");
}

static void write_json(trace_t *tr, pa_symtab_t *st, uint64_t lost, pa_trace_buf_t *b)
{
    int pid = (int)getpid();
    char comm[32] = "", timer[160], tmp[128];
    uint64_t uncovered;
    FILE *f;

    if ((f = fopen("/proc/self/comm", "re")) != NULL) {
        size_t n = fread(comm, 1, sizeof(comm) - 1, f);
        comm[n] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    pa_cpu_timer_describe(timer, sizeof(timer), &uncovered);
    buf_printf(b,
               "{\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,"
               "\"tid\":%d,\"args\":{\"name\":\"",
               pid, pid);
    pa__trace_json_string(b, comm);
    buf_str(b, "\"}}");
    for (size_t i = 0; i < tr->nthreads; i++) {
        buf_printf(b,
                   ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
                   "\"args\":{\"name\":\"",
                   pid, (int)tr->threads[i].tid);
        pa__trace_json_string(b, tr->threads[i].name);
        buf_str(b, "\"}}");
    }
    buf_printf(b,
               ",\n{\"name\":\"trace start\",\"ph\":\"i\",\"s\":\"g\",\"pid\":%d,\"tid\":%d,"
               "\"ts\":0}",
               pid, pid);
    for (size_t i = 0; i < tr->n; i++) {
        const trace_sample_t *e = &tr->samples[i];
        int64_t dur = tr->period_ns * e->weight;
        buf_str(b, ",\n{\"name\":\"");
        pa__trace_json_string(b, frame_name(st, e->pcs[0], 1, tmp, sizeof(tmp)));
        buf_printf(b, "\",\"cat\":\"cpu\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":", pid,
                   (int)e->tid);
        put_us(b, e->ts_ns - dur - tr->start_ns);
        buf_str(b, ",\"dur\":");
        put_us(b, dur);
        buf_str(b, ",\"args\":{\"stack\":\"");
        for (uint32_t k = 0; k < e->npcs; k++) {
            if (k > 0)
                buf_str(b, " <- ");
            pa__trace_json_string(b, frame_name(st, e->pcs[k], k == 0, tmp, sizeof(tmp)));
        }
        buf_str(b, "\"}}");
    }
    for (size_t i = 0; i < tr->nblocks; i++)
        pa__trace_block_event(b, pid, tr->start_ns, &tr->blocks[i],
                              frame_name(st, tr->blocks[i].caller, 0, tmp, sizeof(tmp)));
    if (lost > 0)
        buf_printf(b,
                   ",\n{\"name\":\"lost samples: %llu\",\"ph\":\"i\",\"s\":\"p\",\"pid\":%d,"
                   "\"tid\":%d,\"ts\":0}",
                   (unsigned long long)lost, pid, pid);
    buf_printf(b,
               ",\n{\"name\":\"trace end\",\"ph\":\"i\",\"s\":\"g\",\"pid\":%d,\"tid\":%d,"
               "\"ts\":",
               pid, pid);
    put_us(b, tr->end_ns - tr->start_ns);
    buf_printf(b,
               "}\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"profagent\","
               "\"seconds\":\"%g\",\"cpu_period_ns\":\"%lld\",\"cpu_timer\":\"",
               tr->seconds, (long long)tr->period_ns);
    pa__trace_json_string(b, timer);
    buf_printf(b,
               "\",\"threads_without_timer\":\"%llu\",\"samples_lost\":\"%llu\","
               "\"samples_over_limit\":\"%llu\",",
               (unsigned long long)uncovered, (unsigned long long)lost,
               (unsigned long long)tr->dropped);
    buf_printf(b,
               "\"blocking\":\"recorded: waits of at least %d ns in pthread_mutex_lock, "
               "pthread_rwlock_rdlock/wrlock, pthread_cond_wait/timedwait, sem_wait, whatever "
               "PROFAGENT_BLOCK_RATE says\",",
               PA_LOCK_TRACE_MIN_NS);
    buf_printf(b,
               "\"block_events\":\"%zu\",\"block_events_dropped\":\"%llu\","
               "\"block_events_over_limit\":\"%llu\"}}\n",
               tr->nblocks, (unsigned long long)(pa_lock_trace_dropped() - tr->blocks_lost_before),
               (unsigned long long)tr->blocks_over_limit);
}

static void trace_free(trace_t *tr)
{
    free(tr->samples);
    free(tr->blocks);
    free(tr);
}

static void serve_error(pa_req_t *req, int status, const char *msg)
{
    static const pa_header_t hdrs[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"X-Go-Pprof", "1"},
        {"X-Content-Type-Options", "nosniff"},
    };
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", msg);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    pa_req_respond(req, status, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), body, (size_t)n);
}

static void answer(trace_t *tr, pa_req_t *req)
{
    static const pa_header_t hdrs[] = {
        {"Content-Type", "application/json"},
        {"Content-Disposition", "attachment; filename=\"trace.json\""},
        {"X-Content-Type-Options", "nosniff"},
    };
    pa_trace_buf_t b = {0};
    pa_symtab_t *st = NULL;
    uint64_t lost = 0;

    pa_lock_trace_stop();
    pa_cpu_stop_slots(on_slot, tr, &lost);
    pa_lock_trace_drain(on_block, tr);
    tr->end_ns = pa_server_now_ns();
    if (pa_symtab_new(&st) < 0) {
        serve_error(req, 500, "Could not symbolize the trace");
        return;
    }
    write_json(tr, st, lost, &b);
    pa_symtab_free(st);
    if (b.failed)
        serve_error(req, 500, "Could not write the trace: out of memory");
    else
        pa_req_respond(req, 200, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), b.data, b.len);
    free(b.data);
}

static void on_event(void *arg, pa_req_t *req, pa_req_event_t ev)
{
    trace_t *tr = arg;
    int64_t now = pa_server_now_ns(), next;
    uint64_t lost;

    if (ev != PA_REQ_WAKE) {
        pa_lock_trace_stop();
        pa_cpu_stop_slots(on_slot, tr, &lost); /* client gone or agent stopping */
        trace_free(tr);
        return;
    }
    drain(tr);
    if (now < tr->end_ns) {
        next = now + (int64_t)PA_CPU_DRAIN_MS * 1000000;
        pa_req_wake_at(req, next < tr->end_ns ? next : tr->end_ns);
        return;
    }
    answer(tr, req);
    trace_free(tr);
}

double pa__trace_seconds(const char *query)
{
    char v[64], *end;
    double sec;

    /* Go: sec, err := strconv.ParseFloat(r.FormValue("seconds"), 64); if sec <= 0 || err != nil
     * { sec = 1 } */
    if (pa_query_get(query, "seconds", v, sizeof(v)) != 1 || v[0] == '\0')
        return 1;
    errno = 0;
    sec = strtod(v, &end);
    if (*end != '\0' || errno != 0 || !(sec > 0) || isinf(sec))
        return 1;
    return sec > PA_TRACE_MAX_SECONDS ? PA_TRACE_MAX_SECONDS : sec;
}

void pa_trace_serve(pa_req_t *req, int hz)
{
    char msg[160];
    double sec = pa__trace_seconds(pa_req_query(req));
    trace_t *tr = calloc(1, sizeof(*tr));
    int rc;

    if (tr == NULL) {
        serve_error(req, 500, "Could not enable tracing: out of memory");
        return;
    }
    /* The window opens before the timers are armed: a sample stands for the period of thread
     * CPU before its signal, all of it used after its timer was armed, so no sample starts
     * before ts 0 however long the start-up below takes on a loaded machine. */
    tr->start_ns = pa_server_now_ns();
    rc = pa_cpu_start(hz);
    if (rc < 0) {
        free(tr);
        snprintf(msg, sizeof(msg), "Could not enable tracing: %s", pa_cpu_strerror(rc));
        serve_error(req, 500, msg);
        return;
    }
    /* only now: pa_cpu_start is what makes this the one trace (lock recording is shared) */
    tr->period_ns = pa_cpu_period_ns();
    tr->blocks_lost_before = pa_lock_trace_dropped();
    pa_lock_trace_start();
    tr->seconds = sec;
    tr->end_ns = tr->start_ns + (int64_t)(sec * 1e9);
    pa_req_defer(req, on_event, tr);
    pa_req_wake_at(req, tr->start_ns + (int64_t)PA_CPU_DRAIN_MS * 1000000 < tr->end_ns
                            ? tr->start_ns + (int64_t)PA_CPU_DRAIN_MS * 1000000
                            : tr->end_ns);
}
