/* pa_thread_hook: the interposed pthread_create, which records the creator's stack for the
 * threadcreate profile (Go's: "stack traces that led to the creation of new OS threads").
 *
 * The record is a fixed table in static memory (no allocation, no set-up: it works before the
 * agent starts), aggregated in place without locks: a stack's entry is claimed by CAS on its
 * hash, filled, then marked ready; later creations at the same stack add to its count
 * atomically. Two threads racing to create the same new stack may leave two entries, which
 * pa_stacktab merges when the profile is read. A full table counts the creation as dropped.
 * The table is cumulative for the life of the process, as Go's; a fork child starts empty.
 * The real pthread_create is found with dlsym(RTLD_NEXT) on first use (pthread_create is never
 * called from malloc, so dlsym cannot recurse into us); a thread-local guard turns a re-entrant
 * call (the unwinder creating a thread, or the resolution itself) into a plain call with no
 * record, and if the real function cannot be found pthread_create fails with EAGAIN.
 *
 * Interposition needs calls to reach this library's pthread_create. A sanitizer runtime (ASan,
 * TSan) earlier in the search order takes them first, but its interceptor then calls the next
 * pthread_create (dlsym(RTLD_NEXT)), which is ours when libprofagent comes after it; another
 * preloaded interposer may not forward. pa_thread_hook_status finds out, and the endpoint
 * reports a hook calls do not reach instead of serving an empty profile.
 *
 * Owns: the static table. Threads: any; the hook is re-entrancy-safe and takes no lock of
 *   ours. Readers (pa_thread_hook_read) on any thread. Not async-signal-safe (pthread_create
 *   is not either). Errors: negative errno. */
#ifndef PA_THREAD_HOOK_H
#define PA_THREAD_HOOK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pa_stacktab.h"

#define PA_THREAD_HOOK_MAX_STACKS 512 /* distinct creation stacks kept */

/* 0 when calls to pthread_create from anywhere in the process reach this hook: they bind to it,
 * or to an object that binds first and forwards to it (a sanitizer runtime's interceptor; *who
 * then names it, else ""); found out once by creating one short thread through the process's
 * pthread_create (not recorded). -ENOTSUP when calls do not reach the hook (*who names the
 * object that takes them: a static string or one owned by the loader, "" if unknown);
 * -ENOSYS when no real pthread_create is found. Agent thread only. */
int pa_thread_hook_status(const char **who);

/* Add every recorded creation stack to t (nvalues 1), values {count}. Returns the stacks t
 * refused (table full). */
size_t pa_thread_hook_read(pa_stacktab_t *t);

/* Creations recorded (the sum of the counts pa_thread_hook_read adds: the profile's total,
 * which Go's index shows for threadcreate), without building a table. */
uint64_t pa_thread_hook_count(void);
/* Creations seen by the hook, and those not recorded (table full). */
uint64_t pa_thread_hook_calls(void);
uint64_t pa_thread_hook_dropped(void);

/* --- internals for sibling files --- */
/* pthread_create through the process's pthread_create (a sanitizer's interceptor first, then
 * this hook) with no record: the agent's own short-lived helper threads. Returns 0 or the
 * positive error of pthread_create. Not async-signal-safe. */
int pa__thread_hook_create_unrecorded(pthread_t *thread, void *(*start)(void *), void *arg);

#endif
