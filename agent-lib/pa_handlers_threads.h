/* pa_handlers_threads: /debug/pprof/goroutine (every thread's current stack) and
 * /debug/pprof/threadcreate (where threads were created), with net/http/pprof's parameters,
 * status codes and headers.
 *   goroutine    debug=0 (default) gzipped profile.proto, sample and period type
 *                goroutine/count, period 1 (as Go writes it); debug=1 text aggregated by
 *                identical stacks ("N @ ..." records, pa_text.h); debug>=2 one block per
 *                thread (below). Threads that did not answer are counted in the comments
 *                (proto) or "# " lines (text), never waited for longer than
 *                PA_THREADS_WAIT_MS. The agent's own thread is included, named "profagent".
 *   threadcreate debug=0 proto, threadcreate/count; debug!=0 text. Cumulative since start.
 *                500 with the reason when pthread_create is interposed ahead of us (e.g. a
 *                sanitizer runtime), rather than an empty profile.
 *   seconds=N    Go's delta (pa_delta): the difference of two snapshots N seconds apart,
 *                proto only (400 with debug, as Go); each goroutine snapshot is a blocking
 *                collection of at most PA_THREADS_WAIT_MS on the agent thread.
 * debug=2 block, Go's "goroutine N [state]:" traceback adapted to threads:
 *     thread 4242 [park-3, sleeping]:
 *     park_here(...)
 *     	/usr/bin/prog +0x19
 *     start_thread(...)
 *     	/usr/lib/x86_64-linux-gnu/libc.so.6 +0x2f1
 *
 * (pa_text_traceback), and a thread without a stack says why, e.g.
 *     thread 4243 [worker, sleeping]:
 *     	(no stack: signal 61 is blocked by this thread)
 * Owns: the state of a collection in progress (freed when it answers or its client leaves).
 * Threads: the server's thread. Not async-signal-safe. */
#ifndef PA_HANDLERS_THREADS_H
#define PA_HANDLERS_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "pa_delta.h"
#include "pa_server.h"

/* Serve req if name (the path after /debug/pprof/) is one of ours: returns 1 when it took the
 * request (answered or deferred), 0 when name is not ours. */
int pa_handlers_threads_serve(pa_req_t *req, const char *name);

/* --- internals for sibling handler files (pa_handlers_lock.c) --- */
/* Go's serveError: text/plain, X-Go-Pprof: 1, msg + "\n". */
void pa__serve_error(pa_req_t *req, int status, const char *msg);
/* Go's strconv.Atoi(r.FormValue("debug")), 0 when absent or unparsable. */
int64_t pa__query_debug(pa_req_t *req);
/* 0 when the request asks for no delta (no or empty seconds); otherwise 1, the request being
 * served by pa_delta with ops and arg (Go's 400s for bad seconds or seconds with debug). */
int pa__serve_delta(pa_req_t *req, const pa_delta_ops_t *ops, void *arg);
/* 200 with Go's headers: proto (debug 0, Content-Disposition naming the profile) or text. */
void pa__respond_profile(pa_req_t *req, const char *name, int64_t debug, const void *body,
                         size_t len);

#endif
