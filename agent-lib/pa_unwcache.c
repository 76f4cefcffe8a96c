/* pa_unwcache: the control side of the trace-cache slots (pa_unwcache.h): the limit from the
 * environment, the key whose destructor gives a slot back at thread exit, the fork handler.
 * Not async-signal-safe except on_thread_exit (atomics and TLS only; it runs at thread exit
 * among the TSD destructors, where a signal may still land). */
#include "pa_unwcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define LOW_KEYS 32 /* PTHREAD_KEY_2NDLEVEL_SIZE: glibc keeps keys below it in the thread */

_Atomic int pa__unwcache_used;
_Atomic int pa__unwcache_limit; /* 0 until pa_unwcache_init */
_Atomic int pa__unwcache_key = -1;
__thread int pa__unwcache_state __attribute__((tls_model("initial-exec")));

#if !defined(__SANITIZE_THREAD__)
static struct {
    int inited;
} unwcache_singleton;

/* The key's destructor: glibc calls it once the thread has exited its start routine (the value
 * set in pa_unwcache_take is the cue). From here on the thread unwinds with unw_step, so its
 * libunwind cache, freed by libunwind's own destructor in this same exit, is no longer
 * counted. A thread whose first slot is taken in the last round of destructors keeps it: glibc
 * runs no further round (rare: its first sample there). */
static void on_thread_exit(void *v)
{
    /* one instruction: a signal sampling this thread lands before it (and may take a slot,
     * given back here) or after it (and takes none) */
    int s = __atomic_exchange_n(&pa__unwcache_state, 2, __ATOMIC_RELAXED);

    (void)v;
    if (s == 1)
        atomic_fetch_sub_explicit(&pa__unwcache_used, 1, memory_order_relaxed);
}

/* The child has one thread: only its slot, if it had one, is held (the others' caches were the
 * parent's threads'; their memory is copied into the child and never freed, as before). */
static void on_fork_child(void)
{
    atomic_store(&pa__unwcache_used, pa__unwcache_state == 1 ? 1 : 0);
}

static int limit_from_env(void)
{
    const char *v = getenv("PROFAGENT_UNWIND_CACHES");
    char *end;
    long n;

    if (v == NULL || *v == '\0')
        return PA_UNWCACHE_DEFAULT;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno == 0 && *end == '\0' && n >= 0 && n <= PA_UNWCACHE_MAX)
        return (int)n;
    fprintf(stderr, "profagent: PROFAGENT_UNWIND_CACHES=\"%s\" ignored: want 0..%d threads\n", v,
            PA_UNWCACHE_MAX);
    return PA_UNWCACHE_DEFAULT;
}

#endif

void pa_unwcache_init(void)
{
#if !defined(__SANITIZE_THREAD__)
    pthread_key_t key;

    if (unwcache_singleton.inited)
        return;
    unwcache_singleton.inited = 1;
    if (pthread_key_create(&key, on_thread_exit) == 0) {
        if ((unsigned)key < LOW_KEYS) {
            atomic_store(&pa__unwcache_key, (int)key);
        } else {
            pthread_key_delete(key);
            fprintf(stderr, "profagent: no pthread key below %d left: a thread keeps its unwind "
                            "cache slot until the process exits\n", LOW_KEYS);
        }
    }
    pthread_atfork(NULL, NULL, on_fork_child);
    atomic_store(&pa__unwcache_limit, limit_from_env());
#endif
}

int pa_unwcache_used(void)
{
    return atomic_load(&pa__unwcache_used);
}

int pa_unwcache_limit(void)
{
    return atomic_load(&pa__unwcache_limit);
}
