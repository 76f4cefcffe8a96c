/* pg_metrics: see pg_metrics.h. */
#include "pg_metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pg_access.h"

typedef struct slot {
    char name[128];                     /* "" = unused; written under the registry lock */
    atomic_uint_fast64_t count[6];      /* route: by status class; [0] = no status */
    atomic_uint_fast64_t bucket[PG_METRICS_BUCKETS]; /* upstream: latency histogram */
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t n;
} slot_t;

struct pg_metrics {
    pg_metrics_t *next;
    slot_t slots[2][PG_METRICS_SLOTS];
    atomic_uint_fast64_t errors[PG__ERR_N];
    atomic_uint_fast64_t profiles[PG__PROF_N];
    atomic_uint_fast64_t bytes_in, bytes_out;
    atomic_int_fast64_t conns_active;
    atomic_uint_fast64_t conns_total;
    atomic_int coalescing;              /* 0/1: server.event_coalesce_us is active */
};

static uv_mutex_t lock_singleton;
static uv_once_t once_singleton = UV_ONCE_INIT;
static pg_metrics_t *blocks_singleton;

/* upper bounds in microseconds; the last is +Inf */
static const uint64_t bucket_us[PG_METRICS_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000,
};

static const char *const cause_names[PG__ERR_N] = {
    "bad_request",       "head_too_large",   "body_too_large",   "header_timeout",
    "no_route",          "upgrade_refused",  "pprof_denied",     "pprof_seconds_limit",
    "pprof_unavailable", "upstream_unreachable", "upstream_closed", "upstream_bad_response",
    "upstream_timeout",  "upstream_cut",     "client_gone",      "pprof_busy",
    "client_timeout",
};

static const char *const prof_names[PG__PROF_N] = {
    "index", "profile", "heap", "allocs", "goroutine", "threadcreate",
    "block", "mutex",   "trace", "cmdline", "symbol", "other",
};

static void init_lock(void)
{
    uv_mutex_init(&lock_singleton);
}

int pg_metrics_new(pg_metrics_t **out)
{
    pg_metrics_t *m = calloc(1, sizeof *m);

    if (m == NULL)
        return -ENOMEM;
    uv_once(&once_singleton, init_lock);
    uv_mutex_lock(&lock_singleton);
    m->next = blocks_singleton;
    blocks_singleton = m;
    uv_mutex_unlock(&lock_singleton);
    *out = m;
    return 0;
}

void pg_metrics_free(pg_metrics_t *m)
{
    pg_metrics_t **p;

    if (m == NULL)
        return;
    uv_mutex_lock(&lock_singleton);
    for (p = &blocks_singleton; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    uv_mutex_unlock(&lock_singleton);
    free(m);
}

int pg_metrics_slot(pg_metrics_t *m, int kind, const char *name)
{
    slot_t *s = m->slots[kind];
    int i;

    uv_mutex_lock(&lock_singleton);
    for (i = 0; i < PG_METRICS_SLOTS - 1; i++) {
        if (s[i].name[0] == '\0')
            snprintf(s[i].name, sizeof s[i].name, "%s", name);
        if (strcmp(s[i].name, name) == 0)
            break;
    }
    if (i == PG_METRICS_SLOTS - 1)
        snprintf(s[i].name, sizeof s[i].name, "other");
    uv_mutex_unlock(&lock_singleton);
    return i;
}

/* Add v to a counter of the calling worker's block. Each block has one writer, so a
 * relaxed load and store suffice: a plain add, where a read-modify-write is a locked
 * instruction (~20 cycles, several per request). Readers load relaxed and see a whole
 * value, at worst one that is a few increments old. */
static inline void bump(atomic_uint_fast64_t *a, uint64_t v)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

void pg_metrics_count_request(pg_metrics_t *m, int route_slot, int status)
{
    int cls = status >= 100 && status < 600 ? status / 100 : 0;

    bump(&m->slots[PG_SLOT_ROUTE][route_slot].count[cls], 1);
}

void pg_metrics_observe(pg_metrics_t *m, int upstream_slot, uint64_t ns)
{
    slot_t *s = &m->slots[PG_SLOT_UPSTREAM][upstream_slot];
    uint64_t us = ns / 1000;
    int i;

    for (i = 0; i < PG_METRICS_BUCKETS - 1 && us > bucket_us[i]; i++)
        ;
    bump(&s->bucket[i], 1);
    bump(&s->sum_us, us);
    bump(&s->n, 1);
}

void pg_metrics_count_error(pg_metrics_t *m, pg_err_cause_t cause)
{
    bump(&m->errors[cause], 1);
}

void pg_metrics_count_profile(pg_metrics_t *m, pg_prof_kind_t kind)
{
    bump(&m->profiles[kind], 1);
}

void pg_metrics_count_bytes(pg_metrics_t *m, uint64_t in, uint64_t out)
{
    if (in)
        bump(&m->bytes_in, in);
    if (out)
        bump(&m->bytes_out, out);
}

void pg_metrics_conn(pg_metrics_t *m, int delta)
{
    atomic_store_explicit(&m->conns_active,
                          atomic_load_explicit(&m->conns_active, memory_order_relaxed) + delta,
                          memory_order_relaxed);
    if (delta > 0)
        bump(&m->conns_total, 1);
}

/* bucket j holds (bucket_us[j - 1], bucket_us[j]]: the first whose lower bound is at least
 * over_us (the last, +Inf, at most) */
static int first_bucket_from(uint64_t over_us)
{
    int first;

    for (first = 1; first < PG_METRICS_BUCKETS - 1 && bucket_us[first - 1] < over_us; first++)
        ;
    return first;
}

uint64_t pg_metrics_slow_bound_us(uint64_t over_us)
{
    return bucket_us[first_bucket_from(over_us) - 1];
}

uint64_t pg_metrics_slow_responses(pg_metrics_t *m, uint64_t over_us, uint64_t *total)
{
    uint64_t slow = 0, all = 0, v;
    int first = first_bucket_from(over_us), i, j;

    /* slots are handed out in order (pg_metrics_slot, by this worker or before it started):
     * stop at the first free one */
    for (i = 0; i < PG_METRICS_SLOTS && m->slots[PG_SLOT_UPSTREAM][i].name[0]; i++) {
        slot_t *s = &m->slots[PG_SLOT_UPSTREAM][i];

        for (j = 0; j < PG_METRICS_BUCKETS; j++) {
            v = atomic_load_explicit(&s->bucket[j], memory_order_relaxed);
            all += v;
            if (j >= first)
                slow += v;
        }
    }
    *total = all;
    return slow;
}

void pg_metrics_coalescing(pg_metrics_t *m, bool on)
{
    atomic_store_explicit(&m->coalescing, on, memory_order_relaxed);
}

pg_prof_kind_t pg_metrics_prof_kind(const char *rest, size_t len)
{
    size_t i;

    if (len <= 1)
        return PG_PROF_INDEX;
    rest++, len--; /* the '/' */
    for (i = PG_PROF_PROFILE; i < PG_PROF_OTHER; i++)
        if (strlen(prof_names[i]) == len && memcmp(prof_names[i], rest, len) == 0)
            return (pg_prof_kind_t)i;
    return PG_PROF_OTHER;
}

const char *pg_metrics_cause_name(pg_err_cause_t cause)
{
    return cause_names[cause];
}

static uint64_t rd(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* A label value with '\' '"' and newlines escaped, as the text format requires. */
static void put_label(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out), fputc(*s, out);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

/* Sum of one slot name over every block (names map to different indexes per block). */
static void sum_slot(int kind, const char *name, slot_t *acc)
{
    pg_metrics_t *m;
    int i, j;

    memset(acc, 0, sizeof *acc);
    for (m = blocks_singleton; m; m = m->next)
        for (i = 0; i < PG_METRICS_SLOTS; i++) {
            slot_t *s = &m->slots[kind][i];

            if (strcmp(s->name, name) != 0)
                continue;
            for (j = 0; j < 6; j++)
                acc->count[j] += rd(&s->count[j]);
            for (j = 0; j < PG_METRICS_BUCKETS; j++)
                acc->bucket[j] += rd(&s->bucket[j]);
            acc->sum_us += rd(&s->sum_us);
            acc->n += rd(&s->n);
        }
}

/* Distinct names of a slot kind, over every block, in first-seen order. */
static size_t slot_names(int kind, const char *names[], size_t max)
{
    pg_metrics_t *m;
    size_t n = 0, k;
    int i;

    for (m = blocks_singleton; m; m = m->next)
        for (i = 0; i < PG_METRICS_SLOTS; i++) {
            const char *nm = m->slots[kind][i].name;

            if (nm[0] == '\0')
                break;
            for (k = 0; k < n && strcmp(names[k], nm) != 0; k++)
                ;
            if (k == n && n < max)
                names[n++] = nm;
        }
    return n;
}

void pg_metrics_render(FILE *out)
{
    static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    const char *names[PG_METRICS_SLOTS * 8];
    uint64_t errors[PG__ERR_N] = {0}, profiles[PG__PROF_N] = {0}, in = 0, outb = 0, total = 0;
    int64_t active = 0;
    int coalescing = 0;
    pg_metrics_t *m;
    size_t n, i;
    slot_t acc;
    int j;

    uv_once(&once_singleton, init_lock);
    uv_mutex_lock(&lock_singleton);
    for (m = blocks_singleton; m; m = m->next) {
        for (j = 0; j < PG__ERR_N; j++)
            errors[j] += rd(&m->errors[j]);
        for (j = 0; j < PG__PROF_N; j++)
            profiles[j] += rd(&m->profiles[j]);
        in += rd(&m->bytes_in);
        outb += rd(&m->bytes_out);
        total += rd(&m->conns_total);
        active += atomic_load_explicit(&m->conns_active, memory_order_relaxed);
        coalescing += atomic_load_explicit(&m->coalescing, memory_order_relaxed);
    }
    fputs("# HELP profgate_requests_total Requests answered, by route and status class.\n"
          "# TYPE profgate_requests_total counter\n", out);
    n = slot_names(PG_SLOT_ROUTE, names, sizeof names / sizeof names[0]);
    for (i = 0; i < n; i++) {
        sum_slot(PG_SLOT_ROUTE, names[i], &acc);
        for (j = 0; j < 6; j++) {
            if (acc.count[j] == 0)
                continue;
            fputs("profgate_requests_total{route=\"", out);
            put_label(out, names[i]);
            fprintf(out, "\",code=\"%s\"} %llu\n", cls[j], (unsigned long long)acc.count[j]);
        }
    }
    fputs("# HELP profgate_upstream_latency_seconds Request head to response head, by "
          "upstream.\n# TYPE profgate_upstream_latency_seconds histogram\n", out);
    n = slot_names(PG_SLOT_UPSTREAM, names, sizeof names / sizeof names[0]);
    for (i = 0; i < n; i++) {
        uint64_t cum = 0;

        sum_slot(PG_SLOT_UPSTREAM, names[i], &acc);
        for (j = 0; j < PG_METRICS_BUCKETS; j++) {
            cum += acc.bucket[j];
            fputs("profgate_upstream_latency_seconds_bucket{upstream=\"", out);
            put_label(out, names[i]);
            if (j < PG_METRICS_BUCKETS - 1)
                fprintf(out, "\",le=\"%g\"} %llu\n", (double)bucket_us[j] / 1e6,
                        (unsigned long long)cum);
            else
                fprintf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        fputs("profgate_upstream_latency_seconds_sum{upstream=\"", out);
        put_label(out, names[i]);
        fprintf(out, "\"} %.6f\n", (double)acc.sum_us / 1e6);
        fputs("profgate_upstream_latency_seconds_count{upstream=\"", out);
        put_label(out, names[i]);
        fprintf(out, "\"} %llu\n", (unsigned long long)acc.n);
    }
    uv_mutex_unlock(&lock_singleton);
    fprintf(out,
            "# HELP profgate_connections_active Client connections open now.\n"
            "# TYPE profgate_connections_active gauge\n"
            "profgate_connections_active %lld\n"
            "# HELP profgate_connections_total Client connections accepted.\n"
            "# TYPE profgate_connections_total counter\n"
            "profgate_connections_total %llu\n"
            "# HELP profgate_bytes_total Bytes from clients (in) and to clients (out).\n"
            "# TYPE profgate_bytes_total counter\n"
            "profgate_bytes_total{direction=\"in\"} %llu\n"
            "profgate_bytes_total{direction=\"out\"} %llu\n"
            "# HELP profgate_event_coalesce_workers Workers coalescing their waits now "
            "(server.event_coalesce_us).\n"
            "# TYPE profgate_event_coalesce_workers gauge\n"
            "profgate_event_coalesce_workers %d\n",
            (long long)active, (unsigned long long)total, (unsigned long long)in,
            (unsigned long long)outb, coalescing);
    fputs("# HELP profgate_profiles_total pprof requests relayed to agents, by kind.\n"
          "# TYPE profgate_profiles_total counter\n", out);
    for (j = 0; j < PG__PROF_N; j++)
        fprintf(out, "profgate_profiles_total{kind=\"%s\"} %llu\n", prof_names[j],
                (unsigned long long)profiles[j]);
    fputs("# HELP profgate_errors_total Requests answered by profgate itself or cut, by cause.\n"
          "# TYPE profgate_errors_total counter\n", out);
    for (j = 0; j < PG__ERR_N; j++)
        fprintf(out, "profgate_errors_total{cause=\"%s\"} %llu\n", cause_names[j],
                (unsigned long long)errors[j]);
    fprintf(out,
            "# HELP profgate_access_log_dropped_total Access log lines lost to failed writes.\n"
            "# TYPE profgate_access_log_dropped_total counter\n"
            "profgate_access_log_dropped_total %llu\n",
            (unsigned long long)pg_access_dropped());
}
