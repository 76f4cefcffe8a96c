/* pa_lock: control side of contention profiling (see pa_lock.h): the rates, from the
 * environment at load and from the setters; the hooks and tables are in pa_lock_hook.c. */
#include "pa_lock.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_query.h"

struct pa__lock_singleton pa__lock_singleton;
struct pa__lock_trace_singleton pa__lock_trace_singleton;

#define TSLOT_MASK ((uint64_t)PA_LOCK_TRACE_SLOTS - 1)
_Static_assert((PA_LOCK_TRACE_SLOTS & (PA_LOCK_TRACE_SLOTS - 1)) == 0, "power of two");

void pa_lock_set_block_rate(int64_t rate_ns)
{
    atomic_store(&pa__lock_block_rate, rate_ns > 0 ? rate_ns : 0);
}

int64_t pa_lock_block_rate(void)
{
    return atomic_load(&pa__lock_block_rate);
}

int64_t pa_lock_mutex_fraction(int64_t rate)
{
    if (rate < 0)
        return atomic_load(&pa__lock_mutex_fraction);
    return atomic_exchange(&pa__lock_mutex_fraction, rate);
}

static void from_env(const char *name, void (*set)(int64_t))
{
    const char *v = getenv(name);
    int64_t n;

    if (v == NULL || *v == '\0')
        return;
    if (pa_query_parse_int(v, &n) == 0 && n >= 0)
        set(n);
    else
        fprintf(stderr, "profagent: %s=\"%s\" ignored: want an integer >= 0\n", name, v);
}

static void set_fraction(int64_t n)
{
    (void)pa_lock_mutex_fraction(n);
}

size_t pa_lock_read(int kind, pa_stacktab_t *t)
{
    pa__lock_table_t *tab = &pa__lock_singleton.tabs[kind == PA_LOCK_MUTEX];
    size_t refused = 0;

    for (size_t i = 0; i < PA_LOCK_MAX_STACKS; i++) {
        pa__lock_entry_t *e = &tab->entries[i];
        int64_t v[2];
        if (!atomic_load(&e->ready))
            continue;
        v[0] = atomic_load(&e->v[0]);
        v[1] = atomic_load(&e->v[1]);
        if (pa_stacktab_add(t, e->pcs, e->npcs, v) < 0)
            refused++;
    }
    return refused;
}

size_t pa_lock_count(int kind)
{
    pa__lock_table_t *tab = &pa__lock_singleton.tabs[kind == PA_LOCK_MUTEX];
    size_t n = 0;

    for (size_t i = 0; i < PA_LOCK_MAX_STACKS; i++)
        n += atomic_load(&tab->entries[i].ready) != 0;
    return n;
}

uint64_t pa_lock_dropped(int kind)
{
    return atomic_load(&pa__lock_singleton.tabs[kind == PA_LOCK_MUTEX].dropped);
}

uint64_t pa_lock_untracked_mutexes(void)
{
    return atomic_load(&pa__lock_singleton.untracked);
}

/* The hooks are in this same object (libprofagent.so, or the executable it is linked into):
 * our own address tells which object that is. Another object first may still forward to us. */
int pa_lock_hook_status(const char **who)
{
    Dl_info ours, theirs;
    void *global = dlsym(RTLD_DEFAULT, "pthread_mutex_lock");

    *who = "";
    if (dladdr((void *)pa_lock_hook_status, &ours) == 0 || global == NULL ||
        dladdr(global, &theirs) == 0)
        return -ENOTSUP;
    if (theirs.dli_fbase == ours.dli_fbase)
        return 0;
    *who = theirs.dli_fname != NULL ? theirs.dli_fname : "";
    return pa__lock_hook_probe() ? 0 : -ENOTSUP;
}

/* ---- blocking events for pa_trace ---- */

const char *pa_lock_fn_name(int fn)
{
    static const char *const names[PA_LOCK_FN_COUNT] = {
        "pthread_mutex_lock", "pthread_rwlock_rdlock",  "pthread_rwlock_wrlock",
        "pthread_cond_wait",  "pthread_cond_timedwait", "sem_wait",
    };
    return fn >= 0 && fn < PA_LOCK_FN_COUNT ? names[fn] : "?";
}

static void discard(void *arg, const pa_lock_event_t *ev)
{
    (void)arg;
    (void)ev;
}

void pa_lock_trace_start(void)
{
    /* events a hook published after the last trace stopped are not this trace's */
    pa_lock_trace_drain(discard, NULL);
    atomic_store(&pa__lock_trace_singleton.on, 1);
}

void pa_lock_trace_stop(void)
{
    atomic_store(&pa__lock_trace_singleton.on, 0);
}

size_t pa_lock_trace_drain(pa_lock_event_fn fn, void *arg)
{
    struct pa__lock_trace_singleton *r = &pa__lock_trace_singleton;
    size_t n = 0;

    for (;;) {
        uint64_t pos = r->tail;
        pa__lock_tslot_t *s = &r->slots[pos & TSLOT_MASK];
        pa_lock_event_t ev;

        if (atomic_load_explicit(&s->seq, memory_order_acquire) != (pos & ~TSLOT_MASK) + 1)
            return n; /* empty, or a producer still writing this slot */
        ev.start_ns = atomic_load_explicit(&s->start_ns, memory_order_relaxed);
        ev.dur_ns = atomic_load_explicit(&s->dur_ns, memory_order_relaxed);
        ev.caller = atomic_load_explicit(&s->caller, memory_order_relaxed);
        ev.tid = atomic_load_explicit(&s->tid, memory_order_relaxed);
        ev.fn = atomic_load_explicit(&s->fn, memory_order_relaxed);
        atomic_store_explicit(&s->seq, (pos & ~TSLOT_MASK) + PA_LOCK_TRACE_SLOTS,
                              memory_order_release);
        r->tail = pos + 1;
        fn(arg, &ev);
        n++;
    }
}

uint64_t pa_lock_trace_dropped(void)
{
    return atomic_load(&pa__lock_trace_singleton.dropped);
}

static void atfork_child(void)
{
    /* the child starts with empty profiles (the rates stay, as the child's environment) and
     * no trace (the parent's request is the parent's) */
    memset(&pa__lock_singleton, 0, sizeof(pa__lock_singleton));
    memset(&pa__lock_trace_singleton, 0, sizeof(pa__lock_trace_singleton));
}

__attribute__((constructor)) static void lock_on_load(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
    from_env("PROFAGENT_BLOCK_RATE", pa_lock_set_block_rate);
    from_env("PROFAGENT_MUTEX_FRACTION", set_fraction);
}
