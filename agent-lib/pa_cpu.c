/* pa_cpu: control side of the CPU sampler (see pa_cpu.h); the handler is in pa_cpu_sig.c.
 * The timer lives behind timer_arm/timer_disarm: today one process-wide ITIMER_PROF (the kernel
 * sends SIGPROF to a thread that is using CPU); per-thread CLOCK_THREAD_CPUTIME_ID timers
 * (issue 4) replace these two functions and nothing else. */
#include "pa_cpu.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <libunwind.h>

#include "pa_loader_hook.h"
#include "pa_pprof.h"

/* singleton: the CPU sampler's control state; agent thread only */
static struct {
    int inited;
    int running;
    int foreign_logged;
    int64_t period_ns;
    size_t ring_slots; /* 0: PA_CPU_RING_SLOTS */
    pa_ring_t *ring;
} cpu_singleton;

void pa__cpu_set_ring_slots(size_t n)
{
    cpu_singleton.ring_slots = n;
}

static int warm_up_unwinder(void)
{
    unw_context_t ctx;
    unw_cursor_t c;
    int n = 0;

    if (unw_getcontext(&ctx) < 0 || unw_init_local(&c, &ctx) < 0)
        return -1;
    while (n < PA_RING_MAX_FRAMES && unw_step(&c) > 0)
        n++;
    return n;
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

static int timer_arm(int hz)
{
    struct itimerval it;

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

    memset(&it, 0, sizeof(it));
    (void)setitimer(ITIMER_PROF, &it, NULL);
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
    int64_t values[2] = {1, cpu_singleton.period_ns};

    if (t != NULL && s->npcs > 0)
        (void)pa_stacktab_add(t, s->pcs, s->npcs, values); /* -ENOSPC: counted by t */
}

size_t pa_cpu_drain(pa_stacktab_t *t)
{
    if (!cpu_singleton.running || cpu_singleton.ring == NULL)
        return 0;
    return pa_ring_drain(cpu_singleton.ring, on_slot, t);
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

void pa_cpu_stop(pa_stacktab_t *t, uint64_t *lost)
{
    pa_ring_t *ring = cpu_singleton.ring;
    uint64_t nlost;

    if (lost != NULL)
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
    pa_ring_drain(ring, on_slot, t);
    nlost = pa_ring_dropped(ring);
    if (nlost > 0 && t != NULL) {
        uintptr_t pc = PA_PC_LOST;
        int64_t values[2] = {(int64_t)nlost, (int64_t)nlost * cpu_singleton.period_ns};
        (void)pa_stacktab_add(t, &pc, 1, values);
    }
    if (lost != NULL)
        *lost = nlost;
    pa_ring_free(ring);
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

void pa_cpu_atfork_child(void)
{
    atomic_store(&pa__cpu_ring, NULL);
    atomic_store(&pa__cpu_inflight, 0);
    cpu_singleton.running = 0;
    cpu_singleton.ring = NULL;
}
