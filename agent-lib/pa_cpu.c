/* pa_cpu: control side of the CPU sampler (see pa_cpu.h); the handler is in pa_cpu_sig.c.
 * The timer lives behind timer_arm/timer_disarm (and the thread rescan at each drain): one
 * CLOCK_THREAD_CPUTIME_ID timer per thread when the kernel gives them, else one process-wide
 * ITIMER_PROF; see "timers" below. */
#include "pa_cpu.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>

#include "pa_loader_hook.h"
#include "pa_pprof.h"
#include "pa_task.h"
#include "pa_thread_hook.h"
#include "pa_unwcache.h"

/* singleton: the CPU sampler's control state; agent thread only */
static struct {
    int inited;
    int running;
    int foreign_logged;
    int force_itimer; /* tests */
    int trace_ok;     /* what the trace probe found (pa__cpu_trace_ok's value unless a test
                         turned it off) */
    int timer_err;    /* 0: per-thread timers; else why ITIMER_PROF is used (negative errno) */
    int64_t period_ns;
    size_t ring_slots; /* 0: PA_CPU_RING_SLOTS */
    pa_ring_t *ring;
} cpu_singleton;

/* Set while per-thread timers are armed: pa_cpu_thread_created's lock-free early exit. */
static _Atomic int per_thread_armed;

void pa__cpu_set_ring_slots(size_t n)
{
    cpu_singleton.ring_slots = n;
}

void pa__cpu_force_itimer(int on)
{
    cpu_singleton.force_itimer = on;
}

/* pa_loader_unwind_begin for a thread that may wait: a fork or a loader call under way holds
 * unwinds off (a walk holds libunwind's locks, which a fork child would inherit held); try for
 * up to ~1 s. 1 when held (then pa_loader_unwind_end), else 0. */
static int unwind_hold(void)
{
    for (int i = 0; i < 1000; i++) {
        struct timespec ms = {0, 1000000};
        if (pa_loader_unwind_begin())
            return 1;
        nanosleep(&ms, NULL);
    }
    return 0;
}

static int warm_up_unwinder(void)
{
    unw_context_t ctx;
    unw_cursor_t c;
    int n = 0;

    if (!unwind_hold())
        return -1;
    if (unw_getcontext(&ctx) == 0 && unw_init_local(&c, &ctx) == 0) {
        while (n < PA_RING_MAX_FRAMES && unw_step(&c) > 0)
            n++;
    }
    pa_loader_unwind_end();
    return n;
}

/* ---- the handler's cached walk (pa_sig_unwind_trace) ----
 * unw_backtrace sets up a per-thread address cache on a thread's first call. Its process-wide
 * part (pthread_once, pthread_key_create, its memory pool) runs here, at the first call in the
 * process. The per-thread part then runs in the handler, on each thread's first sample; it is
 * allocation-free when libunwind's TLS block is static (libunwind loaded at start, as a
 * dependency of the program or of a preloaded or linked libprofagent: a dlopen()ed one gets
 * its TLS from malloc on first use) and its key is below 32 (pthread_setspecific allocates a
 * second-level array for higher keys). A thread of our own, fresh, checks both: its TLS block
 * for the module holding unw_backtrace exists before it calls any of libunwind, and one of
 * keys 0..31 turns non-NULL when it first calls unw_backtrace. Either missing: the handler keeps
 * the unw_step walk. The thread exits at once; libunwind's TSD destructor unmaps its cache. */

#if !defined(__SANITIZE_THREAD__)
#define TRACE_LOW_KEYS 32 /* PTHREAD_KEY_2NDLEVEL_SIZE: glibc's keys kept in the thread itself */

typedef struct trace_probe {
    uintptr_t addr;   /* an address inside libunwind */
    int in_object;    /* dl_iterate_phdr found the object holding addr */
    uintptr_t lo, hi; /* the segment holding addr: libunwind's code */
    int tls_static;   /* its TLS block exists in a thread that never used it (or it has none) */
    int key_low;      /* unw_backtrace's set-up stored under a key below TRACE_LOW_KEYS */
} trace_probe_t;

static int on_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    trace_probe_t *p = arg;

    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && p->addr >= lo && p->addr - lo < ph->p_memsz) {
            p->in_object = 1;
            p->lo = lo;
            p->hi = lo + ph->p_memsz;
            p->tls_static = info->dlpi_tls_modid == 0 || info->dlpi_tls_data != NULL;
            return 1;
        }
    }
    return 0;
}

static void *trace_probe_main(void *arg)
{
    trace_probe_t *p = arg;
    void *before[TRACE_LOW_KEYS], *buf[4];

    if (!unwind_hold())
        return NULL; /* no verdict: the handler keeps the unw_step walk */
    dl_iterate_phdr(on_object, p);
    for (unsigned k = 0; k < TRACE_LOW_KEYS; k++)
        before[k] = pthread_getspecific((pthread_key_t)k);
    if (unw_backtrace(buf, 4) > 0) {
        for (unsigned k = 0; k < TRACE_LOW_KEYS; k++)
            if (before[k] == NULL && pthread_getspecific((pthread_key_t)k) != NULL)
                p->key_low = 1;
    }
    pa_loader_unwind_end();
    return NULL;
}

#endif

/* 1 when the handler may use the cached walk (see above). Not under TSan (pa_cpu_sig.c). */
static int probe_trace(void)
{
#if defined(__SANITIZE_THREAD__)
    return 0;
#else
    trace_probe_t p = {.addr = (uintptr_t)&unw_backtrace};
    sigset_t all, old;
    pthread_t t;
    int rc;

    /* no signal of the host's, nor SIGPROF, lands on the probe */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pa__thread_hook_create_unrecorded(&t, trace_probe_main, &p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return 0;
    pthread_join(t, NULL);
    if (!p.in_object || !p.tls_static || !p.key_low)
        return 0;
    atomic_store(&pa__cpu_unw_text_lo, p.lo);
    atomic_store(&pa__cpu_unw_text_hi, p.hi);
    return 1;
#endif
}

void pa__cpu_use_trace(int on)
{
    atomic_store(&pa__cpu_trace_ok, on ? cpu_singleton.trace_ok : 0);
}

int pa_cpu_init(void)
{
    if (cpu_singleton.inited)
        return 0;
    /* Per-thread caches need no lock where libunwind has them. Debian 12's 1.6.2 accepts the
     * request but keeps its global cache, whose mutex it takes with every signal blocked: a
     * handler may wait for another thread's unwind, which itself waits only for the loader's
     * lock, and pa_loader_hook keeps handlers from unwinding while a dlopen/dlclose holds it
     * (observed: without that rule, integration.agent_dlopen_stress hangs in this lock). */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    (void)warm_up_unwinder();
    (void)pa_loader_hook_init();
    pa_unwcache_init(); /* before the first sample: which threads may use unw_backtrace */
    cpu_singleton.trace_ok = probe_trace();
    atomic_store(&pa__cpu_trace_ok, cpu_singleton.trace_ok);
    cpu_singleton.inited = 1;
    return 0;
}

/* 0 when SIGPROF is free or already ours (then *installed is set), -EEXIST when someone else's
 * handler is there: that one is left alone. */
static int install_handler(void)
{
    struct sigaction old, sa;

    if (sigaction(SIGPROF, NULL, &old) < 0)
        return -errno;
    if (old.sa_flags & SA_SIGINFO) {
        if (old.sa_sigaction == pa__cpu_on_sigprof)
            return 0;
        return -EEXIST;
    }
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
        return -EEXIST;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = pa__cpu_on_sigprof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    /* The handler stays installed after the profile (a no-op without a ring): a SIGPROF still
     * pending at stop would otherwise kill the process with SIGPROF's default action. */
    if (sigaction(SIGPROF, &sa, NULL) < 0)
        return -errno;
    return 0;
}

/* ---- timers ----
 * Per-thread mode (as Go since 1.18): one POSIX timer per thread on that thread's CPU clock,
 * sending SIGPROF to that very thread (SIGEV_THREAD_ID), so every busy thread is sampled in
 * proportion to its own CPU time. ITIMER_PROF, the fallback, counts the whole process's CPU
 * time and the kernel picks the thread to signal, which skews shares between busy threads.
 * Threads are found three ways: /proc/self/task (pa_task) at start; pa_cpu_thread_created, called
 * by the interposed pthread_create right after a thread exists; and a rescan at every drain
 * (threads made by clone(2) directly, or created before the hook saw the profile). A thread
 * that exits takes its clock with it: its timer never fires again (timer_gettime then reads
 * disarmed) and is deleted at the next drain; every timer is deleted at stop.
 * The table is shared by the agent thread and creating threads under a spin lock held only
 * around timer syscalls (never taken by a signal handler; not a pthread mutex, which the
 * agent interposes). */

typedef struct thread_timer {
    pid_t tid; /* 0: free */
    timer_t timer;
} thread_timer_t;

/* singleton: the per-thread timers of the running profile; under timers_lock */
static struct {
    atomic_flag lock;
    int armed; /* per-thread mode and a profile runs: new threads get timers */
    struct timespec period;
    size_t n;           /* entries in use are anywhere in [0, PA_CPU_MAX_THREADS) */
    uint64_t uncovered; /* threads that got no timer (table full, or timer_create failed) */
    thread_timer_t t[PA_CPU_MAX_THREADS];
} timers_singleton = {.lock = ATOMIC_FLAG_INIT};

static void timers_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&timers_singleton.lock, memory_order_acquire))
        sched_yield();
}

static void timers_unlock(void)
{
    atomic_flag_clear_explicit(&timers_singleton.lock, memory_order_release);
}

/* The CPU clock of any thread of this process, by its tid (Linux's encoding, which glibc's
 * pthread_getcpuclockid uses too: CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_SCHED). */
static clockid_t thread_clock(pid_t tid)
{
    return (clockid_t)(((unsigned int)~tid << 3) | 6);
}

static int create_timer(pid_t tid, const struct timespec *period, timer_t *out)
{
    struct sigevent sev;
    struct itimerspec its;

    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev._sigev_un._tid = tid;
    sev.sigev_value.sival_int = tid;
    if (timer_create(thread_clock(tid), &sev, out) < 0)
        return -errno;
    its.it_interval = *period;
    its.it_value = *period;
    if (timer_settime(*out, 0, &its, NULL) < 0) {
        int err = -errno;
        timer_delete(*out);
        return err;
    }
    return 0;
}

/* A timer whose thread has exited reads as disarmed. */
static int timer_dead(timer_t t)
{
    struct itimerspec its;
    if (timer_gettime(t, &its) < 0)
        return 1;
    return its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0;
}

/* Under timers_lock: make sure tid has a live timer. */
static void cover_locked(pid_t tid)
{
    thread_timer_t *free_slot = NULL;
    int err;

    for (size_t i = 0; i < PA_CPU_MAX_THREADS; i++) {
        thread_timer_t *e = &timers_singleton.t[i];
        if (e->tid == tid) {
            if (!timer_dead(e->timer))
                return;
            /* the tid was reused by a new thread: its old timer is dead */
            timer_delete(e->timer);
            e->tid = 0;
            timers_singleton.n--;
        }
        if (e->tid == 0 && free_slot == NULL)
            free_slot = e;
    }
    if (free_slot == NULL) {
        timers_singleton.uncovered++;
        return;
    }
    err = create_timer(tid, &timers_singleton.period, &free_slot->timer);
    if (err == 0) {
        free_slot->tid = tid;
        timers_singleton.n++;
    } else if (err != -EINVAL && err != -ESRCH) {
        timers_singleton.uncovered++; /* EINVAL: the thread exited meanwhile */
    }
}

/* Under timers_lock: delete the timers of threads that exited. */
static void reap_locked(void)
{
    for (size_t i = 0; i < PA_CPU_MAX_THREADS; i++) {
        thread_timer_t *e = &timers_singleton.t[i];
        if (e->tid != 0 && timer_dead(e->timer)) {
            timer_delete(e->timer);
            e->tid = 0;
            timers_singleton.n--;
        }
    }
}

static void rescan_threads(void)
{
    static pid_t tids[PA_CPU_MAX_THREADS]; /* agent thread only */
    size_t n;

    if (pa_task_list(tids, PA_CPU_MAX_THREADS, &n, NULL) < 0)
        n = 0; /* the timers already armed keep running; exited ones are still reaped */
    timers_lock();
    if (timers_singleton.armed) {
        reap_locked();
        for (size_t i = 0; i < n; i++)
            cover_locked(tids[i]);
    }
    timers_unlock();
}

int pa_cpu_thread_created(int rc, const pthread_t *th, const pthread_attr_t *attr)
{
    clockid_t cid;
    pid_t tid;
    int detached = PTHREAD_CREATE_JOINABLE;

    /* a relaxed peek first: creating threads pay nothing when no per-thread profile runs */
    if (rc != 0 || !atomic_load_explicit(&per_thread_armed, memory_order_relaxed))
        return rc;
    /* a detached thread may be gone, and its pthread_t freed, already: the rescan finds it */
    if (attr != NULL &&
        (pthread_attr_getdetachstate(attr, &detached) != 0 || detached != PTHREAD_CREATE_JOINABLE))
        return rc;
    if (pthread_getcpuclockid(*th, &cid) != 0)
        return rc;
    tid = (pid_t) ~(cid >> 3); /* inverse of thread_clock */
    if (tid <= 0)
        return rc; /* already exited: its tid was cleared */
    timers_lock();
    if (timers_singleton.armed)
        cover_locked(tid);
    timers_unlock();
    return rc;
}

/* Whether this kernel and libc give per-thread CPU timers: one on the agent thread itself. */
static int per_thread_available(void)
{
    struct timespec period = {1, 0};
    timer_t t;
    int err = create_timer(gettid(), &period, &t);

    if (err == 0)
        timer_delete(t);
    return err;
}

static int timer_arm(int hz)
{
    struct itimerval it;
    int err;

    timers_singleton.period.tv_sec = 0;
    timers_singleton.period.tv_nsec = 1000000000L / hz;
    timers_singleton.uncovered = 0;
    /* PROFAGENT_CPU_TIMER=process: the old process-wide timer, for comparisons */
    if (getenv("PROFAGENT_CPU_TIMER") != NULL &&
        strcmp(getenv("PROFAGENT_CPU_TIMER"), "process") == 0)
        cpu_singleton.force_itimer = 1;
    err = cpu_singleton.force_itimer ? -ENOTSUP : per_thread_available();
    if (err == 0) {
        cpu_singleton.timer_err = 0;
        timers_lock();
        timers_singleton.armed = 1;
        timers_unlock();
        atomic_store(&per_thread_armed, 1);
        rescan_threads();
        return 0;
    }
    cpu_singleton.timer_err = err;
    it.it_interval.tv_sec = 0;
    it.it_interval.tv_usec = 1000000 / hz;
    it.it_value = it.it_interval;
    if (setitimer(ITIMER_PROF, &it, NULL) < 0)
        return -errno;
    return 0;
}

static void timer_disarm(void)
{
    struct itimerval it;

    if (cpu_singleton.timer_err != 0) {
        memset(&it, 0, sizeof(it));
        (void)setitimer(ITIMER_PROF, &it, NULL);
        return;
    }
    atomic_store(&per_thread_armed, 0);
    timers_lock();
    timers_singleton.armed = 0;
    for (size_t i = 0; i < PA_CPU_MAX_THREADS; i++) {
        thread_timer_t *e = &timers_singleton.t[i];
        if (e->tid != 0) {
            timer_delete(e->timer);
            e->tid = 0;
        }
    }
    timers_singleton.n = 0;
    timers_unlock();
}

int pa_cpu_start(int hz)
{
    pa_ring_t *ring = NULL;
    int err;

    if (hz <= 0)
        return -ENOTSUP;
    if (hz > PA_CPU_MAX_HZ)
        return -EINVAL;
    if (cpu_singleton.running)
        return -EBUSY;
    pa_cpu_init();
    err = install_handler();
    if (err == -EEXIST && !cpu_singleton.foreign_logged) {
        fprintf(stderr, "profagent: SIGPROF already has a handler that is not ours; CPU "
                        "profiling stays off and the handler is left alone\n");
        cpu_singleton.foreign_logged = 1;
    }
    if (err < 0)
        return err;
    err =
        pa_ring_new(cpu_singleton.ring_slots ? cpu_singleton.ring_slots : PA_CPU_RING_SLOTS, &ring);
    if (err < 0)
        return err;
    cpu_singleton.period_ns = 1000000000LL / hz;
    cpu_singleton.ring = ring;
    atomic_store(&pa__cpu_ring, ring); /* before the timer runs */
    err = timer_arm(hz);
    if (err < 0) {
        atomic_store(&pa__cpu_ring, NULL);
        cpu_singleton.ring = NULL;
        pa_ring_free(ring);
        return err;
    }
    cpu_singleton.running = 1;
    return 0;
}

int pa_cpu_running(void)
{
    return cpu_singleton.running;
}

int64_t pa_cpu_period_ns(void)
{
    return cpu_singleton.period_ns;
}

static void on_slot(void *arg, const pa_ring_slot_t *s)
{
    pa_stacktab_t *t = arg;
    int64_t n = 1 + (int64_t)s->tag; /* the signal and the expiries it folded (overrun) */
    int64_t values[2] = {n, n * cpu_singleton.period_ns};

    if (t != NULL && s->npcs > 0)
        (void)pa_stacktab_add(t, s->pcs, s->npcs, values); /* -ENOSPC: counted by t */
}

size_t pa_cpu_drain_slots(pa_ring_drain_fn fn, void *arg)
{
    if (!cpu_singleton.running || cpu_singleton.ring == NULL)
        return 0;
    if (cpu_singleton.timer_err == 0)
        rescan_threads();
    return pa_ring_drain(cpu_singleton.ring, fn, arg);
}

size_t pa_cpu_drain(pa_stacktab_t *t)
{
    return pa_cpu_drain_slots(on_slot, t);
}

/* Handlers that loaded the ring before it was cleared finish within microseconds; a thread
 * stopped inside one (a debugger) must not hang the agent: after 2 s the ring is leaked. */
static int wait_handlers(void)
{
    struct timespec ts = {0, 1000000};

    for (int i = 0; i < 2000; i++) {
        if (atomic_load(&pa__cpu_inflight) == 0)
            return 0;
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

void pa_cpu_stop_slots(pa_ring_drain_fn fn, void *arg, uint64_t *lost)
{
    pa_ring_t *ring = cpu_singleton.ring;

    *lost = 0;
    if (!cpu_singleton.running)
        return;
    timer_disarm();
    atomic_store(&pa__cpu_ring, NULL);
    cpu_singleton.running = 0;
    cpu_singleton.ring = NULL;
    if (wait_handlers() < 0) {
        fprintf(stderr, "profagent: a SIGPROF handler did not finish within 2 s; its sample "
                        "ring is leaked\n");
        return;
    }
    pa_ring_drain(ring, fn, arg);
    *lost = pa_ring_dropped(ring);
    pa_ring_free(ring);
}

void pa_cpu_stop(pa_stacktab_t *t, uint64_t *lost)
{
    uint64_t nlost;

    pa_cpu_stop_slots(on_slot, t, &nlost);
    if (nlost > 0 && t != NULL) {
        uintptr_t pc = PA_PC_LOST;
        int64_t values[2] = {(int64_t)nlost, (int64_t)nlost * cpu_singleton.period_ns};
        (void)pa_stacktab_add(t, &pc, 1, values);
    }
    if (lost != NULL)
        *lost = nlost;
}

const char *pa_cpu_strerror(int err)
{
    switch (err) {
    case -EBUSY:
        return "cpu profiling already in use";
    case -EEXIST:
        return "SIGPROF already has a handler in this process (profagent leaves it alone)";
    case -ENOTSUP:
        return "cpu profiling is turned off (PROFAGENT_CPU_HZ=0)";
    case -EINVAL:
        return "invalid sampling rate";
    case -ENOMEM:
        return "out of memory";
    default:
        return "setting the profiling timer failed";
    }
}

size_t pa__cpu_timers(void)
{
    size_t n;
    timers_lock();
    n = timers_singleton.n;
    timers_unlock();
    return n;
}

int pa_cpu_timer_describe(char *buf, size_t len, uint64_t *uncovered)
{
    *uncovered = cpu_singleton.timer_err == 0 ? timers_singleton.uncovered : 0;
    if (cpu_singleton.timer_err == 0)
        return snprintf(buf, len,
                        "cpu timer: per-thread (timer_create CLOCK_THREAD_CPUTIME_ID, "
                        "SIGEV_THREAD_ID)");
    return snprintf(buf, len, "cpu timer: process-wide ITIMER_PROF (per-thread timers: %s)",
                    cpu_singleton.force_itimer ? "turned off" : strerror(-cpu_singleton.timer_err));
}

void pa_cpu_atfork_child(void)
{
    /* POSIX timers are not inherited: forget the parent's without deleting them */
    memset(timers_singleton.t, 0, sizeof(timers_singleton.t));
    timers_singleton.n = 0;
    timers_singleton.armed = 0;
    atomic_flag_clear(&timers_singleton.lock);
    atomic_store(&per_thread_armed, 0);
    atomic_store(&pa__cpu_ring, NULL);
    atomic_store(&pa__cpu_inflight, 0);
    cpu_singleton.running = 0;
    cpu_singleton.ring = NULL;
}
