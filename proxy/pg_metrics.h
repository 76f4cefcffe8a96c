/* pg_metrics: the gateway's counters for Prometheus (text format 0.0.4). Each worker owns
 * one block and is its only writer (relaxed atomic loads and stores, not locked adds: a
 * second writer would lose counts); /metrics, served by whichever worker gets the request,
 * sums every registered block. Routes and upstreams get labelled slots by name, so
 * counters survive reloads that keep the names.
 * Owns: the registry owns the blocks; pg_metrics_new() registers one, pg_metrics_free()
 *   unregisters and frees it. Slot names are copied.
 * Threads: pg_metrics_count_*, pg_metrics_observe and pg_metrics_conn from the owning
 *   worker only; pg_metrics_slot (locks) and pg_metrics_render from any thread.
 *   Errors: negative errno. */
#ifndef PG_METRICS_H
#define PG_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PG_METRICS_SLOTS 64    /* distinct route / upstream names; more share slot "other" */
#define PG_METRICS_BUCKETS 14  /* latency histogram buckets, +Inf included */

/* Why we answered on our own or cut an exchange (label "cause"). */
typedef enum pg_err_cause {
    PG_ERR_BAD_REQUEST,      /* 400 malformed */
    PG_ERR_HEAD_TOO_LARGE,   /* 431 */
    PG_ERR_BODY_TOO_LARGE,   /* 413 */
    PG_ERR_HEADER_TIMEOUT,   /* 408 */
    PG_ERR_NO_ROUTE,         /* 404 */
    PG_ERR_UPGRADE,          /* 501 */
    PG_ERR_PPROF_DENIED,     /* 403 */
    PG_ERR_PPROF_LIMIT,      /* 400 seconds > max_seconds */
    PG_ERR_PPROF_OFF,        /* 404 no agent / disabled */
    PG_ERR_UNREACHABLE,      /* 502 connect failed / refused / timed out */
    PG_ERR_UPSTREAM_CLOSED,  /* 502 closed before responding */
    PG_ERR_BAD_RESPONSE,     /* 502 invalid response */
    PG_ERR_UPSTREAM_TIMEOUT, /* 504, or stalled mid-response */
    PG_ERR_UPSTREAM_CUT,     /* response cut by the upstream */
    PG_ERR_CLIENT_GONE,      /* client closed mid-exchange */
    PG_ERR_PPROF_BUSY,       /* 409 pprof.max_concurrent reached for the agent */
    PG_ERR_CLIENT_TIMEOUT,   /* client took none of the response it was owed, cut */
    PG__ERR_N
} pg_err_cause_t;

/* pprof endpoint kinds (label "kind"). */
typedef enum pg_prof_kind {
    PG_PROF_INDEX, PG_PROF_PROFILE, PG_PROF_HEAP, PG_PROF_ALLOCS, PG_PROF_GOROUTINE,
    PG_PROF_THREADCREATE, PG_PROF_BLOCK, PG_PROF_MUTEX, PG_PROF_TRACE, PG_PROF_CMDLINE,
    PG_PROF_SYMBOL, PG_PROF_OTHER, PG__PROF_N
} pg_prof_kind_t;

typedef struct pg_metrics pg_metrics_t;

int pg_metrics_new(pg_metrics_t **out);
void pg_metrics_free(pg_metrics_t *m);

enum { PG_SLOT_ROUTE = 0, PG_SLOT_UPSTREAM = 1 };
/* Slot index for a route (name: its prefix, with "host" before it when it has one) or an
 * upstream name; the last slot is shared by names beyond PG_METRICS_SLOTS. */
int pg_metrics_slot(pg_metrics_t *m, int kind, const char *name);

/* A request on route slot finished with status (0: none was sent). */
void pg_metrics_count_request(pg_metrics_t *m, int route_slot, int status);
/* Time from request head to response head on upstream slot. */
void pg_metrics_observe(pg_metrics_t *m, int upstream_slot, uint64_t ns);
void pg_metrics_count_error(pg_metrics_t *m, pg_err_cause_t cause);
void pg_metrics_count_profile(pg_metrics_t *m, pg_prof_kind_t kind);
void pg_metrics_count_bytes(pg_metrics_t *m, uint64_t in, uint64_t out);
void pg_metrics_conn(pg_metrics_t *m, int delta); /* +1 accepted, -1 closed */
/* The worker's upstream responses so far, all upstreams (owning thread): returns how many
 * took longer than over_us from request head to response head -- counted by histogram
 * bucket: those in buckets whose lower bound is at least over_us -- and sets *total to how
 * many there were. server.event_coalesce_us decides with it (pg_worker.c). */
uint64_t pg_metrics_slow_responses(pg_metrics_t *m, uint64_t over_us, uint64_t *total);
/* Where pg_metrics_slow_responses(m, over_us, ...) really starts counting: the first bucket
 * bound at or above over_us (1000, 2500, 5000, 10000 ... microseconds). */
uint64_t pg_metrics_slow_bound_us(uint64_t over_us);
/* The worker coalesces its waits now or not: the gauge profgate_event_coalesce_workers. */
void pg_metrics_coalescing(pg_metrics_t *m, bool on);

/* "/profile" -> PG_PROF_PROFILE etc. (what follows the pprof path). */
pg_prof_kind_t pg_metrics_prof_kind(const char *rest, size_t len);
const char *pg_metrics_cause_name(pg_err_cause_t cause);

/* Every registered block, summed, in Prometheus text format. */
void pg_metrics_render(FILE *out);

#endif
