/* pa_delta: net/http/pprof's `seconds=N` delta profiles (handler.serveDeltaProfile in Go's
 * net/http/pprof/pprof.go): take a snapshot, wait N seconds without blocking the agent thread
 * (pa_req_defer / pa_req_wake_at), take another, answer with after - before. Generic: a
 * profile kind (heap, allocs, block, mutex, goroutine, threadcreate) supplies how to take a
 * snapshot into a pa_stacktab and how to encode the result; everything Go's handler does
 * around them, with its status codes and messages, is here.
 * As Go's profile.Merge does, stacks whose values are all zero after subtraction are left out,
 * and stacks only in the first snapshot stay with negative values. Sample types, period and
 * period type are the kind's own, so both snapshots and the answer agree.
 * Owns: its deferred state, the two snapshots and the diff; the kind's arg until release.
 * Threads: the server's thread. Not async-signal-safe.
 * Errors: negative errno. */
#ifndef PA_DELTA_H
#define PA_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "pa_server.h"
#include "pa_stacktab.h"

/* Go's messages (net/http/pprof/pprof.go, serveDeltaProfile), served with status 400 */
#define PA_DELTA_MSG_BAD_SECONDS "invalid value for \"seconds\" - must be a positive integer"
#define PA_DELTA_MSG_UNSUPPORTED "\"seconds\" parameter is not supported for this profile type"
#define PA_DELTA_MSG_WITH_DEBUG "seconds and debug params are incompatible"
/* ... and with status 500 */
#define PA_DELTA_MSG_COLLECT "failed to collect profile"
#define PA_DELTA_MSG_COMPUTE "failed to compute delta"

#define PA_DELTA_MAX_SECONDS 86400 /* longest wait accepted (Go has no bound but WriteTimeout) */

typedef struct pa_delta_ops {
    const char *name; /* profile name: the answer is attachment; filename="<name>-delta" */
    /* A new snapshot in *out (the caller of ops frees it with pa_stacktab_free). */
    int (*snapshot)(void *arg, pa_stacktab_t **out);
    /* Encode the delta as the kind's pprof profile (gzipped protobuf, *out malloc'd).
     * time_nanos: wall time of the second snapshot; duration_nanos: between the two. */
    int (*encode)(void *arg, const pa_stacktab_t *delta, int64_t time_nanos, int64_t duration_nanos,
                  uint8_t **out, size_t *outlen);
    /* Called exactly once when the request is over (answered, client gone, server stopping,
     * or refused); may be NULL. */
    void (*release)(void *arg);
} pa_delta_ops_t;

/* after - before, stack by stack, into a new table *out (nvalues of both; capacity their two
 * counts, so nothing is dropped); all-zero results are left out. -EINVAL if the tables have
 * different nvalues. */
int pa_delta_diff(const pa_stacktab_t *before, const pa_stacktab_t *after, pa_stacktab_t **out);

/* Serve req, whose query has seconds=<seconds> (the raw decoded value), as Go does for a
 * profile that supports deltas: 400 PA_DELTA_MSG_BAD_SECONDS unless a positive decimal
 * integer (here also above PA_DELTA_MAX_SECONDS), 400 PA_DELTA_MSG_WITH_DEBUG when debug
 * parses (strconv.Atoi) to non-zero, 500 PA_DELTA_MSG_COLLECT if a snapshot fails, 500
 * PA_DELTA_MSG_COMPUTE if the diff or the encoding fails; else 200 application/octet-stream.
 * Errors go out as Go's serveError (text/plain, X-Go-Pprof: 1, message + "\n").
 * ops must outlive the request; arg is released through ops->release in every case. */
void pa_delta_serve(pa_req_t *req, const char *seconds, const pa_delta_ops_t *ops, void *arg);

/* Go's serveError: status, text/plain, X-Go-Pprof: 1, nosniff, msg + "\n". */
void pa_delta_serve_error(pa_req_t *req, int status, const char *msg);

#endif
