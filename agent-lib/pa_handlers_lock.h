/* pa_handlers_lock: /debug/pprof/block and /debug/pprof/mutex (pa_lock.h), with
 * net/http/pprof's parameters and Go's formats: debug=0 gzipped profile.proto with sample types
 * contentions/count and delay/nanoseconds, period type contentions/count, period 1 (Go's
 * printCountCycleProfile; delays are nanoseconds, not cycles); debug!=0 Go's legacy text
 * ("--- contention:" / "--- mutex:", pa_text.h). A rate of 0 gives an empty profile, as Go's,
 * with a comment saying which variable turns it on. When the process binds pthread_mutex_lock
 * to another object first (a sanitizer runtime), 500 names it. seconds=N: Go's delta
 * (pa_delta), the difference of the cumulative tables N seconds apart.
 * Owns: nothing past the call. Threads: the server's thread. Not async-signal-safe. */
#ifndef PA_HANDLERS_LOCK_H
#define PA_HANDLERS_LOCK_H

#include "pa_server.h"

/* 1 when name ("block", "mutex") is ours and req was answered, 0 otherwise. */
int pa_handlers_lock_serve(pa_req_t *req, const char *name);

#endif
