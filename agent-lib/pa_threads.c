/* pa_threads: control side of the thread-stacks collector (see pa_threads.h); the handler is
 * in pa_threads_sig.c. */
#include "pa_threads.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>

#include "pa_cpu.h"
#include "pa_query.h"
#include "pa_task.h"

#define FINISH_WAIT_MS 2000 /* handlers still running at finish: then the table is leaked */

int pa__threads_ignore_mask;

typedef struct meta {
    char name[16];
    char state;
    unsigned char status; /* PA_THREAD_*, for slots no handler fills */
} meta_t;

struct pa_threads_collect {
    pa__threads_table_t table;
    meta_t *meta; /* parallel to table.slots */
    size_t nsent;
    size_t masked, gone, failed, truncated;
    pid_t self;
    uint32_t self_npcs;
    uintptr_t self_pcs[PA_MAX_FRAMES];
    int64_t time_nanos;
};

/* singleton: the collector's control state; one collecting thread at a time */
static struct {
    int signo;
    int installed;
    int foreign_logged;
    pa_threads_collect_t *current;
} threads_singleton;

static void atfork_child(void)
{
    /* a collection the parent was running is not ours: forget it (leaked) */
    atomic_store(&pa__threads_table, NULL);
    atomic_store(&pa__threads_inflight, 0);
    threads_singleton.current = NULL;
}

/* At load, not at the first collection: that runs on the agent thread, and pthread_atfork
 * takes glibc's fork-handler lock, which a host thread in fork holds while pa_agent's prepare
 * handler waits for the agent thread to park (pa_agent.c). */
__attribute__((constructor)) static void threads_on_load(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

int pa_threads_signal(void)
{
    const char *v;
    int64_t n;

    if (threads_singleton.signo != 0)
        return threads_singleton.signo;
    threads_singleton.signo = SIGRTMAX - 3;
    v = getenv("PROFAGENT_THREADS_SIGNAL");
    if (v != NULL && *v != '\0') {
        if (pa_query_parse_int(v, &n) == 0 && n >= SIGRTMIN && n <= SIGRTMAX)
            threads_singleton.signo = (int)n;
        else
            fprintf(stderr, "profagent: PROFAGENT_THREADS_SIGNAL=\"%s\" ignored: want %d..%d\n", v,
                    SIGRTMIN, SIGRTMAX);
    }
    return threads_singleton.signo;
}

/* 0 when the signal is free or already ours; -EEXIST when someone else handles it. */
static int install_handler(int signo)
{
    struct sigaction old, sa;

    if (sigaction(signo, NULL, &old) < 0)
        return -errno;
    if (old.sa_flags & SA_SIGINFO) {
        if (old.sa_sigaction == pa__threads_on_signal)
            return 0;
        return -EEXIST;
    }
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
        return -EEXIST;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = pa__threads_on_signal;
    /* stays installed: a late signal must find a (no-op) handler, not the default action */
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) < 0)
        return -errno;
    return 0;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n, total = 0;

    if (fd < 0)
        return -1;
    while ((size_t)total < size - 1) {
        n = read(fd, buf + total, size - 1 - (size_t)total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
    close(fd);
    buf[total] = '\0';
    return total;
}

static uint64_t status_mask(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    return p ? strtoull(p + strlen(key), NULL, 16) : 0;
}

/* Name and state of tid; returns 1 if the signal is blocked or already pending there. */
static int read_task(pid_t tid, int signo, meta_t *m)
{
    char path[64], buf[2048];
    uint64_t bit = 1ULL << (signo - 1);
    const char *p;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
    n = read_small(path, m->name, sizeof(m->name));
    if (n > 0 && m->name[n - 1] == '\n')
        m->name[n - 1] = '\0';
    else if (n < 0)
        m->name[0] = '\0';
    snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
    if (read_small(path, buf, sizeof(buf)) <= 0) {
        m->state = '?';
        return 0;
    }
    p = strstr(buf, "\nState:\t");
    m->state = p ? p[8] : '?';
    if (pa__threads_ignore_mask)
        return 0;
    return (status_mask(buf, "\nSigBlk:\t") & bit) || (status_mask(buf, "\nSigPnd:\t") & bit);
}

/* The collecting thread's own stack; its leaf is the return address into this function. */
static __attribute__((noinline)) uint32_t unwind_self(uintptr_t *pcs)
{
    unw_context_t ctx;
    unw_cursor_t c;
    unw_word_t ip;
    uint32_t n = 0;
    int guard = pa__sampler_guard;

    pa__sampler_guard = 1;
    if (unw_getcontext(&ctx) == 0 && unw_init_local(&c, &ctx) == 0) {
        do {
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
                break;
            pcs[n++] = (uintptr_t)ip;
        } while (n < PA_MAX_FRAMES && unw_step(&c) > 0);
    }
    pa__sampler_guard = guard;
    return n;
}

static void collect_free(pa_threads_collect_t *c)
{
    if (c == NULL)
        return;
    free(c->table.slots);
    free(c->meta);
    free(c);
}

/* 0, or -ENOMEM with c freed */
static int collect_alloc(size_t n, pa_threads_collect_t **out)
{
    pa_threads_collect_t *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return -ENOMEM;
    c->table.slots = calloc(n ? n : 1, sizeof(*c->table.slots));
    c->meta = calloc(n ? n : 1, sizeof(*c->meta));
    if (c->table.slots == NULL || c->meta == NULL) {
        collect_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

int pa_threads_begin(pa_threads_collect_t **out)
{
    pa_threads_collect_t *c = NULL;
    pid_t *tids;
    size_t n, truncated;
    int signo = pa_threads_signal(), rc;
    pid_t pid = getpid();

    *out = NULL;
    if (threads_singleton.current != NULL)
        return -EBUSY;
    pa_cpu_init(); /* libunwind's policy and lazy set-up, outside any handler */
    if (!threads_singleton.installed) {
        rc = install_handler(signo);
        if (rc == -EEXIST && !threads_singleton.foreign_logged) {
            fprintf(stderr,
                    "profagent: signal %d already has a handler that is not ours; "
                    "thread stacks stay off and the handler is left alone "
                    "(PROFAGENT_THREADS_SIGNAL picks another)\n",
                    signo);
            threads_singleton.foreign_logged = 1;
        }
        if (rc < 0)
            return rc;
        threads_singleton.installed = 1;
    }
    tids = malloc(PA_THREADS_MAX * sizeof(*tids));
    if (tids == NULL)
        return -ENOMEM;
    rc = pa_task_list(tids, PA_THREADS_MAX, &n, &truncated);
    if (rc == 0)
        rc = collect_alloc(n, &c);
    if (rc < 0) {
        free(tids);
        return rc;
    }
    c->truncated = truncated;
    c->time_nanos = wall_ns();
    c->self = (pid_t)syscall(SYS_gettid);
    c->table.nslots = n;
    for (size_t i = 0; i < n; i++) {
        pa__threads_slot_t *s = &c->table.slots[i];
        s->tid = tids[i];
        atomic_init(&s->state, PA__SLOT_WAITING);
        if (read_task(s->tid, signo, &c->meta[i]) && s->tid != c->self) {
            atomic_init(&s->state, PA__SLOT_UNUSED);
            c->meta[i].status = PA_THREAD_MASKED;
            c->masked++;
        }
        if (s->tid == c->self)
            atomic_init(&s->state, PA__SLOT_UNUSED);
    }
    free(tids);
    c->self_npcs = unwind_self(c->self_pcs);
    threads_singleton.current = c;
    atomic_store(&pa__threads_table, &c->table); /* before the first signal */
    for (size_t i = 0; i < n; i++) {
        pa__threads_slot_t *s = &c->table.slots[i];
        int expect = PA__SLOT_WAITING;
        if (atomic_load(&s->state) != PA__SLOT_WAITING)
            continue;
        if (syscall(SYS_tgkill, pid, s->tid, signo) == 0) {
            c->nsent++;
            continue;
        }
        /* ESRCH: exited since the listing; EAGAIN: its queue of signals is full */
        if (atomic_compare_exchange_strong(&s->state, &expect, PA__SLOT_UNUSED)) {
            if (errno == ESRCH) {
                c->meta[i].status = PA_THREAD_GONE;
                c->gone++;
            } else {
                c->meta[i].status = PA_THREAD_MISSING;
                c->failed++;
            }
        }
    }
    *out = c;
    return 0;
}

int pa_threads_poll(const pa_threads_collect_t *c)
{
    return atomic_load(&((pa_threads_collect_t *)c)->table.done) >= c->nsent;
}

static int wait_handlers(void)
{
    struct timespec ts = {0, 1000000};

    for (int i = 0; i < FINISH_WAIT_MS; i++) {
        if (atomic_load(&pa__threads_inflight) == 0)
            return 0;
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

int pa_threads_finish(pa_threads_collect_t *c, pa_threads_snap_t **out)
{
    pa_threads_snap_t *s;
    int leak = 0;

    *out = NULL;
    atomic_store(&pa__threads_table, NULL);
    threads_singleton.current = NULL;
    if (wait_handlers() < 0) {
        /* a handler is stuck mid-unwind (a debugger stopped it?): DONE slots are complete
         * and readable, but the memory must outlive it */
        fprintf(stderr,
                "profagent: a thread-stacks handler did not finish within %d ms; its "
                "table is leaked\n",
                FINISH_WAIT_MS);
        leak = 1;
    }
    s = calloc(1, sizeof(*s));
    if (s != NULL)
        s->threads = calloc(c->table.nslots ? c->table.nslots : 1, sizeof(*s->threads));
    if (s == NULL || s->threads == NULL) {
        free(s);
        if (!leak)
            collect_free(c);
        return -ENOMEM;
    }
    s->n = c->table.nslots;
    s->masked = c->masked;
    s->gone = c->gone;
    s->missing = c->failed;
    s->truncated = c->truncated;
    s->signo = pa_threads_signal();
    s->time_nanos = c->time_nanos;
    for (size_t i = 0; i < c->table.nslots; i++) {
        pa__threads_slot_t *slot = &c->table.slots[i];
        pa_thread_stack_t *t = &s->threads[i];
        int st = atomic_load(&slot->state);

        t->tid = slot->tid;
        memcpy(t->name, c->meta[i].name, sizeof(t->name));
        t->state = c->meta[i].state;
        t->status = c->meta[i].status;
        if (slot->tid == c->self) {
            t->self = 1;
            t->status = c->self_npcs > 0 ? PA_THREAD_ANSWERED : PA_THREAD_MISSING;
            t->npcs = c->self_npcs;
            memcpy(t->pcs, c->self_pcs, c->self_npcs * sizeof(uintptr_t));
        } else if (st == PA__SLOT_DONE) {
            t->status = PA_THREAD_ANSWERED;
            t->npcs = slot->npcs;
            memcpy(t->pcs, slot->pcs, slot->npcs * sizeof(uintptr_t));
        } else if (st == PA__SLOT_WAITING || st == PA__SLOT_FILLING) {
            t->status = PA_THREAD_MISSING;
            s->missing++;
        }
        s->answered += t->status == PA_THREAD_ANSWERED;
    }
    if (!leak)
        collect_free(c);
    *out = s;
    return 0;
}

int pa_threads_collect(int wait_ms, pa_threads_snap_t **out)
{
    struct timespec ts = {0, 200000};
    pa_threads_collect_t *c;
    int rc = pa_threads_begin(&c);

    *out = NULL;
    if (rc < 0)
        return rc;
    for (int64_t waited = 0; !pa_threads_poll(c) && waited < (int64_t)wait_ms * 5; waited++)
        nanosleep(&ts, NULL);
    return pa_threads_finish(c, out);
}

void pa_threads_snap_free(pa_threads_snap_t *s)
{
    if (s == NULL)
        return;
    free(s->threads);
    free(s);
}

size_t pa_threads_snap_to_stacktab(const pa_threads_snap_t *s, pa_stacktab_t *t)
{
    const int64_t one[1] = {1};
    size_t refused = 0;

    for (size_t i = 0; i < s->n; i++) {
        const pa_thread_stack_t *th = &s->threads[i];
        if (th->status == PA_THREAD_ANSWERED && pa_stacktab_add(t, th->pcs, th->npcs, one) < 0)
            refused++;
    }
    return refused;
}

const char *pa_threads_strerror(int err)
{
    switch (err) {
    case -EBUSY:
        return "another thread-stacks collection is running";
    case -EEXIST:
        return "the thread-stacks signal already has a handler in this process (profagent "
               "leaves it alone; set PROFAGENT_THREADS_SIGNAL to a free real-time signal)";
    case -ENOMEM:
        return "out of memory";
    default:
        return "listing the threads failed";
    }
}
