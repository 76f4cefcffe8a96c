/* pa_loader_hook: the interposed dlopen/dlmopen/dlclose; see pa_loader_hook.h for why.
 * These run in the host's threads, before, during and after the agent's life: they must work
 * uninitialised, and they only touch atomics besides calling the real function. */
#include "pa_loader_hook.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <time.h>

#include "profagent.h"

#define PA_INTERPOSE __attribute__((visibility("default")))

_Atomic int pa__loader_depth;
_Atomic int pa__loader_unwinders;
_Atomic unsigned long pa__loader_calls;

typedef void *(*dlopen_fn)(const char *, int);
typedef void *(*dlmopen_fn)(Lmid_t, const char *, int);
typedef int (*dlclose_fn)(void *);

static _Atomic(dlopen_fn) real_dlopen;
static _Atomic(dlmopen_fn) real_dlmopen;
static _Atomic(dlclose_fn) real_dlclose;

/* dlsym does not call dlopen, so resolving from inside the hook cannot recurse; two threads
 * racing here store the same value. */
static void *resolve(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static dlopen_fn get_dlopen(void)
{
    dlopen_fn f = atomic_load(&real_dlopen);
    if (f == NULL) {
        f = (dlopen_fn)resolve("dlopen");
        atomic_store(&real_dlopen, f);
    }
    return f;
}

static dlmopen_fn get_dlmopen(void)
{
    dlmopen_fn f = atomic_load(&real_dlmopen);
    if (f == NULL) {
        f = (dlmopen_fn)resolve("dlmopen");
        atomic_store(&real_dlmopen, f);
    }
    return f;
}

static dlclose_fn get_dlclose(void)
{
    dlclose_fn f = atomic_load(&real_dlclose);
    if (f == NULL) {
        f = (dlclose_fn)resolve("dlclose");
        atomic_store(&real_dlclose, f);
    }
    return f;
}

int pa_loader_hook_init(void)
{
    if (get_dlopen() == NULL || get_dlclose() == NULL)
        return -ENOSYS;
    (void)get_dlmopen();
    return 0;
}

/* Raise the depth, then wait for handlers that began unwinding before they could see it.
 * They never wait on us (see the header), so this ends; the sleep keeps a preempted
 * handler's CPU from being eaten by our spinning. */
static void enter(void)
{
    struct timespec ts = {0, 50000};
    int spins = 0;

    atomic_fetch_add(&pa__loader_calls, 1);
    atomic_fetch_add(&pa__loader_depth, 1);
    while (atomic_load(&pa__loader_unwinders) > 0) {
        if (++spins < 100)
            sched_yield();
        else
            nanosleep(&ts, NULL);
    }
}

static void leave(void)
{
    atomic_fetch_sub(&pa__loader_depth, 1);
}

/* fork (see the header): hold unwinds off like a loader call, wait for those under way */
static void fork_prepare(void)
{
    struct timespec ts = {0, 50000};

    atomic_fetch_add(&pa__loader_depth, 1);
    for (int i = 0; i < PA_LOADER_FORK_WAIT_MS * 20 && atomic_load(&pa__loader_unwinders) > 0; i++)
        nanosleep(&ts, NULL);
}

static void fork_parent(void)
{
    atomic_fetch_sub(&pa__loader_depth, 1);
}

/* the child has only the forking thread, which is in no loader call and no unwind */
static void fork_child(void)
{
    atomic_store(&pa__loader_depth, 0);
    atomic_store(&pa__loader_unwinders, 0);
}

__attribute__((constructor)) static void loader_hook_on_load(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

PA_INTERPOSE void *dlopen(const char *file, int mode)
{
    dlopen_fn f = get_dlopen();
    void *h;

    if (f == NULL)
        return NULL;
    enter();
    h = f(file, mode);
    leave();
    return h;
}

PA_INTERPOSE void *dlmopen(Lmid_t lmid, const char *file, int mode)
{
    dlmopen_fn f = get_dlmopen();
    void *h;

    if (f == NULL)
        return NULL;
    enter();
    h = f(lmid, file, mode);
    leave();
    return h;
}

PA_INTERPOSE int dlclose(void *handle)
{
    dlclose_fn f = get_dlclose();
    int rc;

    if (f == NULL)
        return -1;
    enter();
    rc = f(handle);
    leave();
    return rc;
}
