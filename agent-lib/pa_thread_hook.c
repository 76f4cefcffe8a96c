/* pa_thread_hook: the interposed pthread_create and its creation-stack table; see
 * pa_thread_hook.h for the design.
 *
 * The hook runs in the host's threads, before, during and after the agent's life. It may call
 * only: the real pthread_create (resolved once with dlsym(RTLD_NEXT)); local libunwind
 * (unw_getcontext, unw_init_local, unw_step, unw_get_reg) with pa__sampler_guard raised, so a
 * SIGPROF or thread-stacks signal landing meanwhile never re-enters the unwinder, and between
 * pa_loader_unwind_begin/end (not inside dlopen, not across a fork); C11 atomics;
 * memcpy/memcmp into the static table. It takes no lock of ours and never allocates itself. */
#include "pa_thread_hook.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <libunwind.h>

#include "pa_cpu.h"
#include "pa_loader_hook.h"

#define PA_INTERPOSE __attribute__((visibility("default")))
#define MASK (PA_THREAD_HOOK_MAX_STACKS - 1)

_Static_assert((PA_THREAD_HOOK_MAX_STACKS & MASK) == 0, "table size must be a power of two");

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

typedef struct entry {
    _Atomic uint64_t hash; /* 0: free; claimed by CAS */
    _Atomic int ready;     /* pcs and npcs are written */
    _Atomic int64_t count;
    uint32_t npcs;
    uintptr_t pcs[PA_MAX_FRAMES];
} entry_t;

/* singleton: the creation stacks of this process, in zeroed static memory */
static struct {
    entry_t entries[PA_THREAD_HOOK_MAX_STACKS];
    _Atomic uint64_t calls;
    _Atomic uint64_t dropped;
    _Atomic(pthread_create_fn) real;
} hook_singleton;

static __thread int in_hook __attribute__((tls_model("initial-exec")));

static uint64_t hash_pcs(const uintptr_t *pcs, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint64_t)pcs[i];
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return h | 1; /* never 0, which marks a free entry */
}

static void record(const uintptr_t *pcs, uint32_t n)
{
    uint64_t h = hash_pcs(pcs, n);
    size_t i = (size_t)h & MASK;

    for (size_t probes = 0; probes < PA_THREAD_HOOK_MAX_STACKS; probes++, i = (i + 1) & MASK) {
        entry_t *e = &hook_singleton.entries[i];
        uint64_t cur = atomic_load(&e->hash);

        if (cur == 0) {
            if (atomic_compare_exchange_strong(&e->hash, &cur, h)) {
                memcpy(e->pcs, pcs, n * sizeof(*pcs));
                e->npcs = n;
                atomic_store(&e->ready, 1);
                atomic_fetch_add(&e->count, 1);
                return;
            }
            /* lost the race: cur holds the winner's hash */
        }
        if (cur == h && atomic_load(&e->ready) && e->npcs == n &&
            memcmp(e->pcs, pcs, n * sizeof(*pcs)) == 0) {
            atomic_fetch_add(&e->count, 1);
            return;
        }
    }
    atomic_fetch_add(&hook_singleton.dropped, 1);
}

/* The caller's stack: pcs[0] is the return address into pthread_create (so the leaf reads
 * "pthread_create", as Go's threadcreate stacks end in the runtime's thread creation), then
 * its caller's frames. */
static __attribute__((noinline)) uint32_t capture(uintptr_t *pcs)
{
    unw_context_t ctx;
    unw_cursor_t c;
    unw_word_t ip;
    uint32_t n = 0;

    if (!pa_loader_unwind_begin())
        return 0; /* inside dlopen, or a fork is under way: counted dropped */
    if (unw_getcontext(&ctx) == 0 && unw_init_local(&c, &ctx) == 0 &&
        unw_step(&c) > 0) { /* our own frame */
        do {
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
                break;
            pcs[n++] = (uintptr_t)ip;
        } while (n < PA_MAX_FRAMES && unw_step(&c) > 0);
    }
    pa_loader_unwind_end();
    return n;
}

static pthread_create_fn get_real(void)
{
    pthread_create_fn f = atomic_load(&hook_singleton.real);
    if (f == NULL) {
        /* two threads racing here store the same value */
        f = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        atomic_store(&hook_singleton.real, f);
    }
    return f;
}

/* The start routine of the thread pa_thread_hook_status creates to see whether calls reach
 * us; its creation is not recorded. */
static void *probe_start(void *arg)
{
    return arg;
}

static _Atomic int probe_seen;
/* Set on the agent thread around the probe's creation. The probe is known by this, not by its
 * start routine: a sanitizer's interceptor passes its own start routine and argument on (ASan's
 * asan_thread_start, TSan's __tsan_thread_start_func), so the routine that reaches us is never
 * probe_start, and the probe once concluded that creations do not reach the hook at all. */
static __thread int probing __attribute__((tls_model("initial-exec")));

PA_INTERPOSE int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*start)(void *), void *arg)
{
    pthread_create_fn real;
    uintptr_t pcs[PA_MAX_FRAMES];
    uint32_t n;
    int guard;

    if (probing) {
        atomic_store(&probe_seen, 1);
        real = get_real();
        return real != NULL ? real(thread, attr, start, arg) : EAGAIN;
    }
    if (in_hook) { /* re-entered while resolving or unwinding: no record */
        real = atomic_load(&hook_singleton.real);
        return real != NULL ? real(thread, attr, start, arg) : EAGAIN;
    }
    in_hook = 1;
    real = get_real();
    if (real == NULL) {
        in_hook = 0;
        return EAGAIN;
    }
    atomic_fetch_add(&hook_singleton.calls, 1);
    guard = pa__sampler_guard;
    pa__sampler_guard = 1;
    n = guard ? 0 : capture(pcs);
    pa__sampler_guard = guard;
    if (n > 0)
        record(pcs, n);
    else
        atomic_fetch_add(&hook_singleton.dropped, 1);
    in_hook = 0;
    return pa_cpu_thread_created(real(thread, attr, start, arg), thread, attr);
}

int pa__thread_hook_create_unrecorded(pthread_t *thread, void *(*start)(void *), void *arg)
{
    int rc;

    if (get_real() == NULL)
        return EAGAIN;
    in_hook++; /* our hook, reached through any interceptor in front, makes a plain call */
    rc = pthread_create(thread, NULL, start, arg);
    in_hook--;
    return rc;
}

static void atfork_child(void)
{
    /* the child has one thread and a history of its own from here */
    for (size_t i = 0; i < PA_THREAD_HOOK_MAX_STACKS; i++) {
        entry_t *e = &hook_singleton.entries[i];
        atomic_store(&e->ready, 0);
        atomic_store(&e->count, 0);
        atomic_store(&e->hash, 0);
    }
    atomic_store(&hook_singleton.calls, 0);
    atomic_store(&hook_singleton.dropped, 0);
}

__attribute__((constructor)) static void thread_hook_on_load(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/* Whether calls reach us even though another object binds pthread_create first (a sanitizer's
 * interceptor calling its "real" pthread_create, found with dlsym(RTLD_NEXT), which is ours
 * when we come after it): create one thread through the process's pthread_create, once. */
static int probe(void)
{
    static int result = -1; /* agent thread only */
    int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    pthread_t t;

    if (result >= 0)
        return result;
    create = (pthread_create_fn)dlsym(RTLD_DEFAULT, "pthread_create");
    probing = 1;
    if (create == NULL || create(&t, NULL, probe_start, NULL) != 0) {
        probing = 0;
        return 0; /* not cached: it may work next time */
    }
    probing = 0;
    pthread_join(t, NULL);
    result = atomic_load(&probe_seen);
    return result;
}

int pa_thread_hook_status(const char **who)
{
    void *global;
    Dl_info ours, theirs;

    *who = "";
    if (get_real() == NULL)
        return -ENOSYS;
    global = dlsym(RTLD_DEFAULT, "pthread_create");
    if (dladdr((void *)capture, &ours) == 0)
        return -ENOTSUP;
    if (global == NULL || dladdr(global, &theirs) == 0)
        return -ENOTSUP;
    if (theirs.dli_fbase == ours.dli_fbase)
        return 0;
    *who = theirs.dli_fname != NULL ? theirs.dli_fname : "";
    return probe() ? 0 : -ENOTSUP;
}

size_t pa_thread_hook_read(pa_stacktab_t *t)
{
    size_t refused = 0;

    for (size_t i = 0; i < PA_THREAD_HOOK_MAX_STACKS; i++) {
        entry_t *e = &hook_singleton.entries[i];
        int64_t v[1];
        if (!atomic_load(&e->ready))
            continue;
        v[0] = atomic_load(&e->count);
        if (v[0] > 0 && pa_stacktab_add(t, e->pcs, e->npcs, v) < 0)
            refused++;
    }
    return refused;
}

uint64_t pa_thread_hook_count(void)
{
    uint64_t n = 0;

    for (size_t i = 0; i < PA_THREAD_HOOK_MAX_STACKS; i++) {
        entry_t *e = &hook_singleton.entries[i];
        int64_t c;
        if (!atomic_load(&e->ready))
            continue;
        c = atomic_load(&e->count);
        n += c > 0 ? (uint64_t)c : 0;
    }
    return n;
}

uint64_t pa_thread_hook_calls(void)
{
    return atomic_load(&hook_singleton.calls);
}

uint64_t pa_thread_hook_dropped(void)
{
    return atomic_load(&hook_singleton.dropped);
}
