/* pa_lock_hook: the interposed pthread_mutex_lock/unlock, pthread_rwlock_rdlock/wrlock,
 * pthread_cond_wait/timedwait and sem_wait, and the fixed tables they record into; see
 * pa_lock.h for what is measured.
 *
 * The hooks run in the host's threads, before, during and after the agent's life, and on the
 * host's hottest paths. With both rates 0 a hook costs two atomic loads and an indirect call.
 * They may call only: the real functions (found with dlsym(RTLD_NEXT) on first use; glibc's
 * dlsym takes no pthread lock, so resolving cannot recurse into us, and a thread-local guard
 * turns any re-entry into a plain call); the non-interposed try-variants; clock_gettime; local
 * libunwind with pa__sampler_guard raised (so a profiling signal never re-enters the
 * unwinder), between pa_loader_unwind_begin/end (not inside dlopen, not across a fork), its
 * unw_backtrace only on a thread holding a trace-cache slot (pa_unwcache.h's inline functions:
 * atomics, TLS, pthread_setspecific on a key below 32), else the unw_step walk; C11
 * atomics; memcpy/memcmp into the static tables; syscall(SYS_gettid) for a
 * traced event. They take no lock of ours and never allocate.
 * While a trace runs (pa_lock_trace_start) the waits are timed whatever the rates, and each
 * one of at least PA_LOCK_TRACE_MIN_NS goes into the trace's event ring with the hook's
 * return address (no unwind: the stack stays the block profile's business). */
#include "pa_lock.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>

#include "pa_cpu.h"
#include "pa_loader_hook.h"
#include "pa_unwcache.h"

#define PA_INTERPOSE __attribute__((visibility("default")))
#define TAB_MASK (PA_LOCK_MAX_STACKS - 1)
#define MSLOT_MASK (PA_LOCK_MUTEX_SLOTS - 1)

_Static_assert((PA_LOCK_MAX_STACKS & TAB_MASK) == 0, "power of two");
_Static_assert((PA_LOCK_MUTEX_SLOTS & MSLOT_MASK) == 0, "power of two");

/* Defined here, not in pa_lock.c, so that whoever links the rates (the static library's users)
 * also links the hooks. */
_Atomic int64_t pa__lock_block_rate;
_Atomic int64_t pa__lock_mutex_fraction;

typedef int (*mutex_fn)(pthread_mutex_t *);
typedef int (*rwlock_fn)(pthread_rwlock_t *);
typedef int (*cond_wait_fn)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*cond_timedwait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
typedef int (*sem_wait_fn)(sem_t *);

/* the real functions, resolved on first use */
static struct {
    _Atomic(mutex_fn) lock, unlock;
    _Atomic(rwlock_fn) rdlock, wrlock;
    _Atomic(cond_wait_fn) cwait;
    _Atomic(cond_timedwait_fn) ctimedwait;
    _Atomic(sem_wait_fn) semwait;
    /* the try-variants too: through the global symbol they would re-enter a sanitizer's
     * interceptor that is already calling us (TSan then sees the mutex locked twice) */
    _Atomic(mutex_fn) trylock;
    _Atomic(rwlock_fn) tryrdlock, trywrlock;
    _Atomic(sem_wait_fn) semtrywait;
} real_singleton;

static __thread int in_hook __attribute__((tls_model("initial-exec")));
static __thread uint64_t rng __attribute__((tls_model("initial-exec")));

/* ---- real functions ---- */

/* dlsym(RTLD_NEXT) finds the next interposer (a sanitizer's) or glibc's default version; never
 * dlvsym: a versioned lookup would skip a sanitizer's (unversioned) interceptor, and it would
 * stop seeing the unlock and relock inside pthread_cond_wait. */
static void *resolve(const char *name)
{
    void *f;
    in_hook++;
    f = dlsym(RTLD_NEXT, name);
    in_hook--;
    return f;
}

#define REAL(field, type, name)                                                                    \
    static type real_##field(void)                                                                 \
    {                                                                                              \
        type f = atomic_load(&real_singleton.field);                                               \
        if (f == NULL) {                                                                           \
            f = (type)resolve(name);                                                               \
            atomic_store(&real_singleton.field, f);                                                \
        }                                                                                          \
        return f;                                                                                  \
    }
REAL(lock, mutex_fn, "pthread_mutex_lock")
REAL(unlock, mutex_fn, "pthread_mutex_unlock")
REAL(rdlock, rwlock_fn, "pthread_rwlock_rdlock")
REAL(wrlock, rwlock_fn, "pthread_rwlock_wrlock")
REAL(cwait, cond_wait_fn, "pthread_cond_wait")
REAL(ctimedwait, cond_timedwait_fn, "pthread_cond_timedwait")
REAL(semwait, sem_wait_fn, "sem_wait")
REAL(trylock, mutex_fn, "pthread_mutex_trylock")
REAL(tryrdlock, rwlock_fn, "pthread_rwlock_tryrdlock")
REAL(trywrlock, rwlock_fn, "pthread_rwlock_trywrlock")
REAL(semtrywait, sem_wait_fn, "sem_trywait")

/* ---- sampling and recording ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t next_rand(void)
{
    uint64_t x = rng;
    if (x == 0)
        x = (uint64_t)now_ns() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)syscall(SYS_gettid);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng = x ? x : 1;
    return rng;
}

static uint64_t hash_pcs(const uintptr_t *pcs, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint64_t)pcs[i];
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return h | 1;
}

static void record(pa__lock_table_t *t, const uintptr_t *pcs, uint32_t n, int64_t count,
                   int64_t delay)
{
    uint64_t h = hash_pcs(pcs, n);
    size_t i = (size_t)h & TAB_MASK;

    for (size_t probes = 0; probes < PA_LOCK_MAX_STACKS; probes++, i = (i + 1) & TAB_MASK) {
        pa__lock_entry_t *e = &t->entries[i];
        uint64_t cur = atomic_load(&e->hash);

        if (cur == 0 && atomic_compare_exchange_strong(&e->hash, &cur, h)) {
            memcpy(e->pcs, pcs, n * sizeof(*pcs));
            e->npcs = n;
            atomic_fetch_add(&e->v[0], count);
            atomic_fetch_add(&e->v[1], delay);
            atomic_store(&e->ready, 1);
            return;
        }
        if (cur == h && atomic_load(&e->ready) && e->npcs == n &&
            memcmp(e->pcs, pcs, n * sizeof(*pcs)) == 0) {
            atomic_fetch_add(&e->v[0], count);
            atomic_fetch_add(&e->v[1], delay);
            return;
        }
    }
    atomic_fetch_add(&t->dropped, 1);
}

/* The caller's stack, pcs[0] the return address into the hook that called us (so the leaf
 * names the interposed function, as Go's block stacks start in sync.(*Mutex).Lock). Must be
 * called from the hook itself. unw_backtrace rather than an unw_step loop: Debian's libunwind
 * 1.6 blocks and unblocks signals around every unw_step (two rt_sigprocmask calls per frame),
 * which made a contended acquisition at rate 1/1 cost 28 us instead of 5.7 us
 * (bench/agent/lock_micro.c yield); its cached frame kinds need no system call. */
static __attribute__((noinline)) uint32_t capture(uintptr_t *pcs)
{
    void *buf[PA_MAX_FRAMES + 1];
    uint32_t n = 0;
    int k;

    if (pa__sampler_guard)
        return 0;
    if (!pa_loader_unwind_begin())
        return 0; /* inside dlopen, or a fork is under way: not recorded, counted dropped */
    pa__sampler_guard = 1;
#if defined(__SANITIZE_THREAD__)
    /* Not under TSan: unw_backtrace's per-thread cache has a TSD destructor that takes a
     * mutex at thread exit, after TSan has torn down the thread's state (a crash in
     * __tsan::MutexPreLock seen in integration.agent_lock_gateway); the plain walk has none. */
    (void)buf;
    (void)k;
    n = pa_unwcache_steps(pcs, PA_MAX_FRAMES, 1);
#else
    /* a thread without a trace-cache slot (pa_unwcache.h) walks with unw_step */
    if (pa_unwcache_take()) {
        k = unw_backtrace(buf, PA_MAX_FRAMES + 1);
        for (int i = 1; i < k; i++) /* buf[0] is in capture() itself */
            pcs[n++] = (uintptr_t)buf[i];
    } else {
        n = pa_unwcache_steps(pcs, PA_MAX_FRAMES, 1);
    }
#endif
    pa__sampler_guard = 0;
    pa_loader_unwind_end();
    return n;
}

/* Go's blocksampled + saveblockevent: 0 when not sampled, else the values to record. */
static int block_sampled(int64_t d, int64_t *count, int64_t *delay)
{
    int64_t rate = atomic_load_explicit(&pa__lock_block_rate, memory_order_relaxed);

    if (rate <= 0)
        return 0;
    if (d <= 0)
        d = 1;
    if (rate > d && (int64_t)(next_rand() % (uint64_t)rate) > d)
        return 0;
    if (d < rate) {
        *count = (rate + d / 2) / d;
        *delay = rate;
    } else {
        *count = 1;
        *delay = d;
    }
    return 1;
}

static void block_record(const uintptr_t *pcs, uint32_t n, int64_t count, int64_t delay)
{
    if (n > 0)
        record(&pa__lock_singleton.tabs[PA_LOCK_BLOCK], pcs, n, count, delay);
    else
        atomic_fetch_add(&pa__lock_singleton.tabs[PA_LOCK_BLOCK].dropped, 1);
}

static int block_on(void)
{
    return atomic_load_explicit(&pa__lock_block_rate, memory_order_relaxed) > 0;
}

/* a trace is running: time every wait, whatever the block rate */
static int trace_on(void)
{
    return atomic_load_explicit(&pa__lock_trace_singleton.on, memory_order_relaxed) != 0;
}

#define TSLOT_MASK ((uint64_t)PA_LOCK_TRACE_SLOTS - 1)

/* Claim the slot at head (see pa_lock.h for the relative seq), fill it, publish it. */
void pa__lock_trace_record(int fn, int64_t start_ns, int64_t dur_ns, uintptr_t caller)
{
    struct pa__lock_trace_singleton *r = &pa__lock_trace_singleton;
    uint64_t pos, seq;
    pa__lock_tslot_t *s;

    if (dur_ns < PA_LOCK_TRACE_MIN_NS || !trace_on())
        return;
    pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        s = &r->slots[pos & TSLOT_MASK];
        seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq == (pos & ~TSLOT_MASK)) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if ((int64_t)(seq - (pos & ~TSLOT_MASK)) < 0) {
            atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
            return; /* full: the consumer has not given this slot back yet */
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
    atomic_store_explicit(&s->start_ns, start_ns, memory_order_relaxed);
    atomic_store_explicit(&s->dur_ns, dur_ns, memory_order_relaxed);
    atomic_store_explicit(&s->caller, caller, memory_order_relaxed);
    atomic_store_explicit(&s->tid, (int32_t)syscall(SYS_gettid), memory_order_relaxed);
    atomic_store_explicit(&s->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&s->seq, (pos & ~TSLOT_MASK) + 1, memory_order_release);
}

static int mutex_on(void)
{
    return atomic_load_explicit(&pa__lock_mutex_fraction, memory_order_relaxed) > 0;
}

/* ---- waiters of a mutex (mutex profile) ---- */

static pa__lock_mslot_t *mslot_of(const pthread_mutex_t *m)
{
    uintptr_t a = (uintptr_t)m;
    return &pa__lock_singleton.mslots[(size_t)((a >> 3) ^ (a >> 15)) & MSLOT_MASK];
}

static pa__lock_mslot_t *waiter_enter(pthread_mutex_t *m, int64_t t0)
{
    pa__lock_mslot_t *s = mslot_of(m);
    uintptr_t cur = 0;
    int64_t zero = 0;

    if (!atomic_compare_exchange_strong(&s->mutex, &cur, (uintptr_t)m) && cur != (uintptr_t)m) {
        atomic_fetch_add(&pa__lock_singleton.untracked, 1);
        return NULL;
    }
    atomic_fetch_add(&s->nwaiters, 1);
    atomic_compare_exchange_strong(&s->since, &zero, t0);
    return s;
}

static void waiter_leave(pa__lock_mslot_t *s, pthread_mutex_t *m)
{
    uintptr_t mine = (uintptr_t)m;

    if (s != NULL && atomic_fetch_sub(&s->nwaiters, 1) == 1) {
        atomic_store(&s->since, 0);
        atomic_compare_exchange_strong(&s->mutex, &mine, 0);
    }
}

/* ---- the hooks ---- */

/* A mutex only pa_lock_hook_probe locks: seeing it proves calls reach this hook. */
static pthread_mutex_t probe_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int probe_seen;

int pa__lock_hook_probe(void)
{
    mutex_fn lock = (mutex_fn)dlsym(RTLD_DEFAULT, "pthread_mutex_lock");
    mutex_fn unlock = (mutex_fn)dlsym(RTLD_DEFAULT, "pthread_mutex_unlock");

    if (lock == NULL || unlock == NULL || lock(&probe_mutex) != 0)
        return 0;
    unlock(&probe_mutex);
    return atomic_load(&probe_seen);
}

PA_INTERPOSE int pthread_mutex_lock(pthread_mutex_t *m)
{
    mutex_fn f = real_lock();
    uintptr_t pcs[PA_MAX_FRAMES];
    int64_t t0, t1, count, delay;
    pa__lock_mslot_t *s = NULL;
    uint32_t n = 0;
    int rc;

    if (f == NULL)
        return EAGAIN;
    if (m == &probe_mutex)
        atomic_store(&probe_seen, 1);
    if (in_hook || (!block_on() && !mutex_on() && !trace_on()))
        return f(m);
    rc = real_trylock()(m);
    if (rc != EBUSY)
        return rc;
    in_hook = 1;
    t0 = now_ns();
    if (mutex_on())
        s = waiter_enter(m, t0);
    rc = f(m);
    waiter_leave(s, m);
    t1 = now_ns();
    pa__lock_trace_record(PA_LOCK_FN_MUTEX, t0, t1 - t0, (uintptr_t)__builtin_return_address(0));
    if (block_sampled(t1 - t0, &count, &delay)) {
        n = capture(pcs);
        block_record(pcs, n, count, delay);
    }
    in_hook = 0;
    return rc;
}

PA_INTERPOSE int pthread_mutex_unlock(pthread_mutex_t *m)
{
    mutex_fn f = real_unlock();
    uintptr_t pcs[PA_MAX_FRAMES];
    int64_t rate, since, now;
    pa__lock_mslot_t *s;
    uint32_t n;

    if (f == NULL)
        return EPERM;
    if (in_hook || !mutex_on())
        return f(m);
    s = mslot_of(m);
    if (atomic_load(&s->mutex) != (uintptr_t)m || atomic_load(&s->nwaiters) <= 0)
        return f(m);
    in_hook = 1;
    now = now_ns();
    since = atomic_exchange(&s->since, now); /* the waiters' time from here is the next's */
    rate = atomic_load(&pa__lock_mutex_fraction);
    if (since > 0 && now > since && rate > 0 && next_rand() % (uint64_t)rate == 0) {
        n = capture(pcs);
        if (n > 0)
            record(&pa__lock_singleton.tabs[PA_LOCK_MUTEX], pcs, n, rate, rate * (now - since));
        else
            atomic_fetch_add(&pa__lock_singleton.tabs[PA_LOCK_MUTEX].dropped, 1);
    }
    in_hook = 0;
    return f(m);
}

/* A wait that may block: try first, time the real wait only when the try failed. */
#define TIMED_WAIT(fn, call)                                                                       \
    do {                                                                                           \
        uintptr_t pcs_[PA_MAX_FRAMES];                                                             \
        int64_t t0_, t1_, count_, delay_;                                                          \
        in_hook = 1;                                                                               \
        t0_ = now_ns();                                                                            \
        rc = (call);                                                                               \
        t1_ = now_ns();                                                                            \
        pa__lock_trace_record((fn), t0_, t1_ - t0_, (uintptr_t)__builtin_return_address(0));       \
        if (block_sampled(t1_ - t0_, &count_, &delay_))                                            \
            block_record(pcs_, capture(pcs_), count_, delay_);                                     \
        in_hook = 0;                                                                               \
    } while (0)

PA_INTERPOSE int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    rwlock_fn f = real_rdlock();
    int rc;

    if (f == NULL)
        return EAGAIN;
    if (in_hook || (!block_on() && !trace_on()))
        return f(l);
    rc = real_tryrdlock()(l);
    if (rc != EBUSY)
        return rc;
    TIMED_WAIT(PA_LOCK_FN_RDLOCK, f(l));
    return rc;
}

PA_INTERPOSE int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    rwlock_fn f = real_wrlock();
    int rc;

    if (f == NULL)
        return EAGAIN;
    if (in_hook || (!block_on() && !trace_on()))
        return f(l);
    rc = real_trywrlock()(l);
    if (rc != EBUSY)
        return rc;
    TIMED_WAIT(PA_LOCK_FN_WRLOCK, f(l));
    return rc;
}

PA_INTERPOSE int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    cond_wait_fn f = real_cwait();
    int rc;

    if (f == NULL)
        return EINVAL;
    if (in_hook || (!block_on() && !trace_on()))
        return f(c, m);
    TIMED_WAIT(PA_LOCK_FN_COND_WAIT, f(c, m));
    return rc;
}

PA_INTERPOSE int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                        const struct timespec *abstime)
{
    cond_timedwait_fn f = real_ctimedwait();
    int rc;

    if (f == NULL)
        return EINVAL;
    if (in_hook || (!block_on() && !trace_on()))
        return f(c, m, abstime);
    TIMED_WAIT(PA_LOCK_FN_COND_TIMEDWAIT, f(c, m, abstime));
    return rc;
}

PA_INTERPOSE int sem_wait(sem_t *sem)
{
    sem_wait_fn f = real_semwait();
    int rc, saved;

    if (f == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (in_hook || (!block_on() && !trace_on()))
        return f(sem);
    saved = errno;
    if (real_semtrywait()(sem) == 0)
        return 0;
    if (errno != EAGAIN)
        return -1;
    errno = saved;
    TIMED_WAIT(PA_LOCK_FN_SEM_WAIT, f(sem));
    return rc;
}
