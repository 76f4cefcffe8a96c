/* pa_threads: every thread's current stack (the native "goroutine" profile), control side.
 *
 * How: list /proc/self/task (pa_task); for each thread read its name (comm), state and signal masks
 * (status); publish a table of slots sorted by thread id; send each thread PA_THREADS_SIGNAL
 * with tgkill; its handler (pa_threads_sig.c) unwinds from the interrupted context into its own
 * slot. The collecting thread's own stack is unwound in place (it is the agent thread when the
 * agent serves the request, and is then listed under its name, "profagent"). The collector
 * never waits unbounded: a thread that does not answer within the caller's bound (blocked in
 * uninterruptible sleep, stopped, or masking the signal after it was listed) is counted as
 * missing; a thread that already blocks the signal, or has one of ours pending from an
 * earlier request, is not signalled at all and is counted as masked.
 *
 * The signal: SIGRTMAX-3 by default (glibc keeps the first real-time signals for itself and
 * applications usually take SIGRTMIN+n), or PROFAGENT_THREADS_SIGNAL=N (a signal number). If
 * the host already has a handler on it, it is left alone and collection fails with -EEXIST.
 * Our handler stays installed once set (a no-op between collections) with SA_RESTART, so a
 * late signal never kills the host; as with any profiling signal, calls the kernel never
 * restarts (nanosleep, poll, epoll_wait, select) may return EINTR or early in the host.
 *
 * Collection is split in steps so the agent thread can serve other requests while it waits:
 * pa_threads_begin, then pa_threads_poll until it says done or the caller's deadline passes,
 * then pa_threads_finish. One collection at a time per process (-EBUSY).
 *
 * Owns: the collection until finish; the snapshot is the caller's (pa_threads_snap_free).
 * Threads: begin/poll/finish/collect on one thread at a time. Not async-signal-safe.
 * Errors: negative errno; -EBUSY another collection runs; -EEXIST the signal has another
 *   handler (left alone). */
#ifndef PA_THREADS_H
#define PA_THREADS_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pa_stacktab.h"

#define PA_THREADS_MAX 4096    /* threads listed per collection; more are counted */
#define PA_THREADS_WAIT_MS 500 /* default bound on waiting for the handlers */

enum {
    PA_THREAD_ANSWERED = 0, /* its handler (or, for the collecting thread, we) unwound it */
    PA_THREAD_MASKED,       /* not signalled: blocks the signal, or one is already pending */
    PA_THREAD_MISSING,      /* signalled, no answer within the bound (or the signal failed) */
    PA_THREAD_GONE,         /* exited between the listing and the signal */
};

typedef struct pa_thread_stack {
    pid_t tid;     /* public */
    char name[16]; /* public: comm, NUL-terminated */
    char state;    /* public: /proc state letter at listing (R, S, D, T, ...) */
    int self;      /* public: the collecting thread, unwound in place */
    int status;    /* public: PA_THREAD_*; pcs hold its stack only if PA_THREAD_ANSWERED */
    uint32_t npcs; /* public */
    uintptr_t pcs[PA_MAX_FRAMES]; /* public: leaf first (pa_stacktab.h convention) */
} pa_thread_stack_t;

typedef struct pa_threads_snap {
    pa_thread_stack_t *threads; /* public: sorted by tid; answered or not */
    size_t n;                   /* public */
    size_t answered;            /* public: threads with a stack */
    size_t masked;              /* public: not signalled: signal blocked or already pending */
    size_t missing;             /* public: signalled, no answer within the bound */
    size_t gone;                /* public: exited between listing and signal */
    size_t truncated;           /* public: threads beyond PA_THREADS_MAX, not listed */
    int signo;                  /* public: the signal used */
    int64_t time_nanos;         /* public: wall clock at listing */
} pa_threads_snap_t;

typedef struct pa_threads_collect pa_threads_collect_t;

/* List the threads and signal them. */
int pa_threads_begin(pa_threads_collect_t **out);
/* 1 when every signalled thread has answered, 0 while some have not. */
int pa_threads_poll(const pa_threads_collect_t *c);
/* End the collection (whatever has answered by now), hand over the snapshot. c is freed. */
int pa_threads_finish(pa_threads_collect_t *c, pa_threads_snap_t **out);
/* begin, wait up to wait_ms, finish: for callers that may block. */
int pa_threads_collect(int wait_ms, pa_threads_snap_t **out);
void pa_threads_snap_free(pa_threads_snap_t *s);

/* Add one sample {1} per answered thread to t (nvalues 1). Returns stacks the table refused. */
size_t pa_threads_snap_to_stacktab(const pa_threads_snap_t *s, pa_stacktab_t *t);

/* The signal collections use (after PROFAGENT_THREADS_SIGNAL is read). */
int pa_threads_signal(void);
/* The message for an error of pa_threads_begin. */
const char *pa_threads_strerror(int err);

/* --- internals shared with pa_threads_sig.c and tests --- */
typedef struct pa__threads_slot {
    pid_t tid;         /* set before publishing, sorted ascending */
    _Atomic int state; /* PA__SLOT_* */
    uint32_t npcs;
    uintptr_t pcs[PA_MAX_FRAMES];
} pa__threads_slot_t;

enum { PA__SLOT_WAITING = 0, PA__SLOT_FILLING = 1, PA__SLOT_DONE = 2, PA__SLOT_UNUSED = 3 };

typedef struct pa__threads_table {
    pa__threads_slot_t *slots;
    size_t nslots;
    _Atomic size_t done; /* slots filled by handlers */
} pa__threads_table_t;

/* The table handlers fill; NULL between collections. Changed only by the collector. */
extern _Atomic(pa__threads_table_t *) pa__threads_table;
/* Handlers between their entry and their last access to the table. */
extern _Atomic int pa__threads_inflight;
/* Tests: signal threads even when /proc says they block the signal (to exercise the bound). */
extern int pa__threads_ignore_mask;

void pa__threads_on_signal(int sig, siginfo_t *si, void *uc);

#endif
