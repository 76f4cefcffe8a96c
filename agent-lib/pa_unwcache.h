/* pa_unwcache: which threads may have libunwind's fast-trace cache. libunwind 1.6 gives each
 * thread that calls unw_backtrace (the samplers' cached walk) a trace cache of its own:
 * 16,384 frames x 16 bytes = 256 KiB, every page written when it is made (Gtrace.c
 * trace_cache_buckets), kept until the thread exits (its TSD destructor unmaps it); the size
 * is fixed when libunwind is built (unw_set_cache_size sizes the unw_step walk's caches, not
 * this one). Sampled by the agent, 1,000 threads would hold 250 MiB. So at most
 * PROFAGENT_UNWIND_CACHES threads at once (default PA_UNWCACHE_DEFAULT) hold a slot, and only a
 * thread holding one calls unw_backtrace; every other thread is unwound with unw_step (same
 * stacks, ~0.5 us a frame more: pa_sig_unwind.h). A thread takes a slot at its first sample
 * while one is free and keeps it until it exits: a pthread key's destructor gives it back (the
 * thread unwinds with unw_step from then on; libunwind frees the cache itself later in the
 * same exit). A thread without a slot asks again at each sample.
 * Async-signal-safe: the inline functions here are called by the SIGPROF handler and the malloc
 * and lock hooks: C11 atomics on lock-free types, initial-exec TLS, pthread_setspecific on a
 * key below 32 (glibc stores it in the thread itself: no allocation, no lock), local
 * libunwind's unw_getcontext / unw_init_local / unw_step / unw_get_reg. The rest (pa_unwcache.c)
 * is control code.
 * Owns: the slot count. Threads: any. */
#ifndef PA_UNWCACHE_H
#define PA_UNWCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <libunwind.h>

/* 64 x 256 KiB = 16 MiB at most */
#define PA_UNWCACHE_DEFAULT 64
#define PA_UNWCACHE_MAX 65536

/* Read the limit from PROFAGENT_UNWIND_CACHES (0..PA_UNWCACHE_MAX; invalid: logged, the default
 * kept), make the key that gives slots back (the key is below 32 or slots are kept until the
 * process exits, said once on stderr) and the fork handler (the child's count is its one
 * thread's). Before it runs no thread gets a slot. Idempotent; not async-signal-safe. Under
 * TSan nothing is done: the samplers never call unw_backtrace there. */
void pa_unwcache_init(void);

/* Slots held now, and the limit (for tests and the bench). */
int pa_unwcache_used(void);
int pa_unwcache_limit(void);

/* ---- internals for the inline functions ---- */
extern _Atomic int pa__unwcache_used;
extern _Atomic int pa__unwcache_limit;
extern _Atomic int pa__unwcache_key; /* -1: none, slots are never given back */
/* 0: no slot; 1: holds one; 2: exiting (never takes one again) */
extern __thread int pa__unwcache_state __attribute__((tls_model("initial-exec")));

/* 1 when the calling thread holds a slot (taking a free one if it has none): it may call
 * unw_backtrace. Async-signal-safe. */
static inline int pa_unwcache_take(void)
{
    int s = pa__unwcache_state, used, key;

    if (s != 0)
        return s == 1;
    used = atomic_load_explicit(&pa__unwcache_used, memory_order_relaxed);
    do {
        if (used >= atomic_load_explicit(&pa__unwcache_limit, memory_order_relaxed))
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&pa__unwcache_used, &used, used + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    key = atomic_load_explicit(&pa__unwcache_key, memory_order_relaxed);
    if (key >= 0)
        (void)pthread_setspecific((pthread_key_t)key, (void *)1); /* the destructor's cue */
    pa__unwcache_state = 1;
    return 1;
}

/* The unw_step walk from an initialised cursor: the pc of each frame into pcs[0..max), up to
 * the first that has none. Returns the count. Async-signal-safe. */
static inline uint32_t pa_unwcache_collect(unw_cursor_t *c, uintptr_t *pcs, uint32_t max)
{
    unw_word_t ip;
    uint32_t n = 0;

    do {
        if (unw_get_reg(c, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        pcs[n++] = (uintptr_t)ip;
    } while (n < max && unw_step(c) > 0);
    return n;
}

/* The unw_step walk of the calling function's stack: pcs[0] is the return address `skip`
 * frames up from the function this is inlined into (skip 0: a pc inside that function), as
 * unw_backtrace's buf[skip] would be. Returns the frame count (0 when libunwind gives nothing).
 * Always inlined: unw_getcontext records the frame it is called in (pa_sig_unwind.h). The
 * caller holds pa_loader_unwind_begin. Async-signal-safe. */
static inline __attribute__((always_inline)) uint32_t pa_unwcache_steps(uintptr_t *pcs,
                                                                        uint32_t max, int skip)
{
    unw_context_t ctx;
    unw_cursor_t c;

    if (unw_getcontext(&ctx) < 0 || unw_init_local(&c, &ctx) < 0)
        return 0;
    for (int i = 0; i < skip; i++)
        if (unw_step(&c) <= 0)
            return 0;
    return pa_unwcache_collect(&c, pcs, max);
}

#endif
