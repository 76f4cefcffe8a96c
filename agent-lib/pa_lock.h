/* pa_lock: contention profiling (Go's block and mutex profiles), control side. The
 * interposers and their tables are in pa_lock_hook.c.
 *
 * block: where threads waited. pthread_mutex_lock, pthread_rwlock_rdlock/wrlock, sem_wait
 *   (tried first without waiting: only an acquisition that had to wait is an event) and
 *   pthread_cond_wait/timedwait (always a wait) record the waiter's stack with
 *   contentions/count and delay/nanoseconds. Sampling as Go's SetBlockProfileRate(rate): an
 *   event of d >= rate ns is always kept, a shorter one with probability d/rate and then
 *   counted as rate/d events of rate ns in all (Go's unbiasing, CL 299991). rate 1 keeps every
 *   event; 0 (the default) turns it off.
 * mutex: who held a lock others waited for. pthread_mutex_unlock, when threads are waiting on
 *   that mutex, charges the time they have waited since the last unlock (as Go's semrelease
 *   charges the woken waiter's wait and re-bases the others) to the unlocker's stack. Sampling
 *   as Go's SetMutexProfileFraction(rate): one event in rate on average is kept, and counted
 *   as rate events with rate times its delay. 0 (the default) turns it off. Waiters are found
 *   through a fixed table indexed by the mutex's address; two mutexes contended at once in
 *   the same entry share it, and the later one is not tracked (counted in the comments).
 *   rwlocks, condition variables and semaphores are in the block profile only.
 * Both profiles are cumulative since the rate was set, as Go's. Memory is fixed: stacks that
 *   do not fit the tables are counted, not kept.
 * Environment (read at load, so LD_PRELOAD works before the agent starts):
 *   PROFAGENT_BLOCK_RATE      nanoseconds, >= 0 (Go's SetBlockProfileRate)
 *   PROFAGENT_MUTEX_FRACTION  >= 0 (Go's SetMutexProfileFraction)
 * Owns: nothing the caller frees. Threads: any. Not async-signal-safe.
 * Errors: negative errno. */
#ifndef PA_LOCK_H
#define PA_LOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pa_stacktab.h"

#define PA_LOCK_MAX_STACKS 1024  /* distinct stacks per profile */
#define PA_LOCK_MUTEX_SLOTS 4096 /* mutexes tracked at once for the mutex profile */

enum { PA_LOCK_BLOCK = 0, PA_LOCK_MUTEX = 1 };

/* Go's SetBlockProfileRate / SetMutexProfileFraction; negative values are treated as 0.
 * pa_lock_mutex_fraction(-1) reads it without change, as Go's does. */
void pa_lock_set_block_rate(int64_t rate_ns);
int64_t pa_lock_block_rate(void);
int64_t pa_lock_mutex_fraction(int64_t rate);

/* Add the recorded stacks of profile kind (PA_LOCK_BLOCK or PA_LOCK_MUTEX) to t (nvalues 2:
 * contentions, delay ns). Returns the stacks t refused. */
size_t pa_lock_read(int kind, pa_stacktab_t *t);
/* The stacks recorded for kind, as pa_lock_read would add them, without reading them (for the
 * index page). Two threads recording the same new stack at the same instant may hold two
 * entries, which pa_lock_read's table merges: the count can then exceed the profile's by those. */
size_t pa_lock_count(int kind);
/* Events not recorded: stack table full or not unwound; mutexes not tracked (slot taken). */
uint64_t pa_lock_dropped(int kind);
uint64_t pa_lock_untracked_mutexes(void);

/* 0 when calls to pthread_mutex_lock from anywhere in the process reach the hooks: they bind to
 * them, or to an object that binds first but forwards to them (a sanitizer runtime's
 * interceptor finds its "real" function with dlsym(RTLD_NEXT): ours, when we come after it);
 * then *who names that object, or is "". -ENOTSUP when calls do not reach the hooks (*who
 * names the object that takes them). */
int pa_lock_hook_status(const char **who);

/* Blocking events with timestamps, for pa_trace. While pa_lock_trace_start() is in force (a
 * trace is explicit opt-in for its N seconds), every wait the hooks see (pthread_mutex_lock and
 * rwlock rd/wr that had to wait, cond_wait/timedwait, sem_wait) of at least
 * PA_LOCK_TRACE_MIN_NS is recorded, whatever PROFAGENT_BLOCK_RATE says: thread, start
 * (CLOCK_MONOTONIC), duration, which function, and the hook's return address (the caller: no
 * unwind). The ring is fixed static memory; events that find it full are counted. */
#define PA_LOCK_TRACE_MIN_NS 10000 /* shorter waits are not recorded */
#define PA_LOCK_TRACE_SLOTS 8192   /* power of two */

enum {
    PA_LOCK_FN_MUTEX = 0,
    PA_LOCK_FN_RDLOCK,
    PA_LOCK_FN_WRLOCK,
    PA_LOCK_FN_COND_WAIT,
    PA_LOCK_FN_COND_TIMEDWAIT,
    PA_LOCK_FN_SEM_WAIT,
    PA_LOCK_FN_COUNT
};

typedef struct pa_lock_event {
    int64_t start_ns; /* CLOCK_MONOTONIC when the wait began */
    int64_t dur_ns;
    uintptr_t caller; /* return address into the caller of the interposed function */
    int32_t tid;
    int32_t fn; /* PA_LOCK_FN_* */
} pa_lock_event_t;

/* The interposed function's name ("pthread_mutex_lock"), or "?" */
const char *pa_lock_fn_name(int fn);
/* Turn recording on (discarding events left from an earlier trace) or off. One trace at a
 * time (the caller's to ensure: pa_trace holds the CPU sampler). */
void pa_lock_trace_start(void);
void pa_lock_trace_stop(void);
/* Consumer (one thread): call fn for each recorded event in order; returns how many. */
typedef void (*pa_lock_event_fn)(void *arg, const pa_lock_event_t *ev);
size_t pa_lock_trace_drain(pa_lock_event_fn fn, void *arg);
/* Events not recorded since load because the ring was full. */
uint64_t pa_lock_trace_dropped(void);

/* --- internals shared with pa_lock_hook.c --- */
/* Record one event (async-signal-safe, lock-free; no-op when recording is off). */
void pa__lock_trace_record(int fn, int64_t start_ns, int64_t dur_ns, uintptr_t caller);

/* The event ring, zeroed static memory. A slot's seq is stored relative to its index, so that
 * zeroed memory is an empty ring: for position pos, slot pos & mask is free when
 * seq == pos & ~mask, published when seq == (pos & ~mask) + 1 (Vyukov's bounded queue, as
 * pa_ring.h). The event's fields are relaxed atomics, ordered by seq's release/acquire: under
 * TSan a hook may run inside the runtime's blocking-call interceptor (sem_wait), where TSan
 * ignores atomics as synchronisation, and plain fields would be reported as a race. */
typedef struct pa__lock_tslot {
    _Atomic uint64_t seq;
    _Atomic int64_t start_ns;
    _Atomic int64_t dur_ns;
    _Atomic uintptr_t caller;
    _Atomic int32_t tid;
    _Atomic int32_t fn;
} pa__lock_tslot_t;

extern struct pa__lock_trace_singleton {
    _Atomic int on;
    _Atomic uint64_t head;
    _Atomic uint64_t dropped;
    uint64_t tail; /* consumer only */
    pa__lock_tslot_t slots[PA_LOCK_TRACE_SLOTS];
} pa__lock_trace_singleton;

extern _Atomic int64_t pa__lock_block_rate;
extern _Atomic int64_t pa__lock_mutex_fraction;
/* Lock a private mutex through the process's pthread_mutex_lock: 1 if the hook saw it. */
int pa__lock_hook_probe(void);

/* One stack of a profile, aggregated in place: claimed by CAS on hash (0: free), filled, then
 * marked ready; later events add to v atomically. */
typedef struct pa__lock_entry {
    _Atomic uint64_t hash;
    _Atomic int ready;
    _Atomic int64_t v[2]; /* contentions, delay ns */
    uint32_t npcs;
    uintptr_t pcs[PA_MAX_FRAMES];
} pa__lock_entry_t;

typedef struct pa__lock_table {
    pa__lock_entry_t entries[PA_LOCK_MAX_STACKS];
    _Atomic uint64_t dropped;
} pa__lock_table_t;

/* Waiters of one contended mutex (mutex profile). */
typedef struct pa__lock_mslot {
    _Atomic uintptr_t mutex; /* 0 free */
    _Atomic int nwaiters;
    _Atomic int64_t since; /* earliest wait start not yet charged to an unlocker */
} pa__lock_mslot_t;

/* singleton: the contention tables, zeroed static memory (usable before any set-up) */
extern struct pa__lock_singleton {
    pa__lock_table_t tabs[2]; /* PA_LOCK_BLOCK, PA_LOCK_MUTEX */
    pa__lock_mslot_t mslots[PA_LOCK_MUTEX_SLOTS];
    _Atomic uint64_t untracked;
} pa__lock_singleton;

#endif
