/* pa_trace: /debug/pprof/trace?seconds=N, a timeline of the process for N seconds as Chrome
 * trace-event JSON ({"traceEvents": [...]}, the format chrome://tracing and Perfetto open),
 * not Go's binary execution trace, which only Go's runtime writes.
 *
 * What is in it: every CPU sample of the per-thread sampler (pa_cpu), as a complete event
 * ("ph":"X") on its thread, named by its leaf function, lasting the CPU time it stands for
 * (one period, times the expiries the timer folded into it) and ending at the signal's
 * CLOCK_MONOTONIC time; its stack (leaf first) in args.stack. Thread and process names as
 * metadata events ("ph":"M", thread_name/process_name, from /proc/self/task/TID/comm, read
 * while the trace runs so threads that exit keep their names). Instant events ("ph":"i") mark
 * the start and end of the trace and the samples the ring lost. ts in microseconds since the
 * trace started.
 * Blocking events: while the trace runs, every wait the lock hooks (pa_lock_hook.c) see that
 * lasts at least PA_LOCK_TRACE_MIN_NS (pthread_mutex_lock and pthread_rwlock_rdlock/wrlock
 * when they had to wait, pthread_cond_wait/timedwait, sem_wait) is a complete event with
 * "cat":"block" on the waiting thread, named by the function, from the wait's start for its
 * duration; args.caller names the function that called it (the hook's return address: no
 * unwind). This is independent of PROFAGENT_BLOCK_RATE: asking for a trace is the opt-in, for
 * its N seconds. The hooks' ring is fixed (PA_LOCK_TRACE_SLOTS, drained every
 * PA_CPU_DRAIN_MS); events that found it full are counted in otherData.block_events_dropped.
 * Waits that bypass the hooks are absent (under TSan, pthread_cond_wait: its runtime calls
 * glibc's directly).
 * The trace uses the CPU sampler, so a trace and a CPU profile exclude each other (the second
 * gets 500, as a second CPU profile does). seconds: Go's parsing for trace (a float; absent,
 * zero, negative or unparseable means 1), capped at PA_TRACE_MAX_SECONDS; the value used is
 * otherData.seconds, and the end instant is when recording actually stopped (at least that
 * long after the start, later on a loaded machine). Memory is bounded:
 * at most PA_TRACE_MAX_EVENTS samples and PA_TRACE_MAX_BLOCK_EVENTS blocking events are
 * kept, the rest counted in otherData.
 * Owns: the state of a running trace (freed when it answers or its client leaves).
 * Threads: the server's thread. Not async-signal-safe. */
#ifndef PA_TRACE_H
#define PA_TRACE_H

#include "pa_lock.h"
#include "pa_server.h"

#define PA_TRACE_MAX_SECONDS 60
#define PA_TRACE_MAX_EVENTS 200000       /* CPU samples kept per trace */
#define PA_TRACE_FRAMES 12               /* frames kept per sample (leaf first) */
#define PA_TRACE_MAX_BLOCK_EVENTS 200000 /* blocking events kept per trace */

/* Answer GET /debug/pprof/trace at hz (the agent's CPU rate; 0: CPU profiling is off). */
void pa_trace_serve(pa_req_t *req, int hz);

/* --- internals for tests --- */
/* Append s to *buf (JSON string body: quotes, backslashes and control characters escaped). */
typedef struct pa_trace_buf {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the buffer is incomplete */
} pa_trace_buf_t;
void pa__trace_json_string(pa_trace_buf_t *b, const char *s);
/* Append one blocking event (",\n{...}"), ts relative to start_ns, caller already a name. */
void pa__trace_block_event(pa_trace_buf_t *b, int pid, int64_t start_ns, const pa_lock_event_t *ev,
                           const char *caller);
/* Go's trace seconds from the raw query. */
double pa__trace_seconds(const char *query);

#endif
