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
 *   seconds=N    validated as Go does (400 for a bad value, or with debug); the delta itself
 *                waits for pa_delta: 501 until then.
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

#include "pa_server.h"

/* Serve req if name (the path after /debug/pprof/) is one of ours: returns 1 when it took the
 * request (answered or deferred), 0 when name is not ours. */
int pa_handlers_threads_serve(pa_req_t *req, const char *name);

#endif
