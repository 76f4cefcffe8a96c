/* pa_handlers_heap: /debug/pprof/heap and /debug/pprof/allocs, with net/http/pprof's
 * parameters, status codes and headers (Go's handler.ServeHTTP and runtime/pprof's
 * writeHeapInternal are the reference).
 *   debug=0 (default)  gzipped profile.proto: sample types alloc_objects/count,
 *                      alloc_space/bytes, inuse_objects/count, inuse_space/bytes (scaled as
 *                      Go's scaleHeapSample), period type space/bytes, period = the rate;
 *                      default sample type unset for heap (pprof takes the last one,
 *                      inuse_space, as with Go's) and alloc_space for allocs. Drops (full
 *                      tables) are reported in the profile's comments.
 *   debug!=0           Go's heap text: "heap profile: I: IB [A: AB] @ heap/2*rate", then one
 *                      record per stack, largest in-use bytes first, with raw (unscaled)
 *                      sampled counts and the "#" frame lines of pa_text.h; then "# " lines
 *                      with the sampler's state in place of Go's runtime.MemStats.
 *   gc=N               accepted and ignored (there is no collector to run).
 *   seconds=N          a delta over N seconds (pa_delta.h), filename "heap-delta".
 * Sanitizer builds: 501 "heap profiling unavailable: built with a sanitizer" (the sanitizer's
 * allocator owns malloc, so the agent's hooks are compiled out).
 * Owns: nothing beyond one request (a delta's state belongs to pa_delta).
 * Threads: the server's thread. Not async-signal-safe. */
#ifndef PA_HANDLERS_HEAP_H
#define PA_HANDLERS_HEAP_H

#include "pa_server.h"

#define PA_HEAP_MSG_SANITIZER "heap profiling unavailable: built with a sanitizer"

/* Serve req if name (the path after /debug/pprof/) is "heap" or "allocs": returns 1 when it
 * took the request (answered or deferred), 0 otherwise. Also excludes the calling thread (the
 * agent's) from heap sampling, so that the agent's own allocations never show up. */
int pa_handlers_heap_serve(pa_req_t *req, const char *name);

#endif
