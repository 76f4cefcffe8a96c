/* pa_agent: the agent's life cycle behind profagent.h: options and environment, the agent
 * thread (all signals blocked, so the host's signals and our SIGPROF go to the host's
 * threads), start/stop, the PROFAGENT_SOCKET constructor, and fork.
 *
 * Fork: the child gets a copy of memory but only the forking thread. Any lock the agent
 * thread held at that instant stays held in the child, with no one to release it. glibc's
 * malloc takes care of its own locks at fork, but not every allocator does: GCC 12's ASan
 * allocator does not lock itself around fork, and a host forking while the agent thread was
 * inside it (say, starting up: ASan's thread set-up allocates) left the child's next
 * allocation of that size waiting forever (integration.agent_fork under ASan, ~2% of runs).
 * So the agent thread is a fork gate: our pthread_atfork prepare handler waits (bounded by
 * FORK_WAIT_NS) until the thread is parked in poll(), where it holds nothing, and keeps it
 * there until the fork is done. busy is 1 from just before pthread_create until the thread
 * first parks, while it works between polls, and from its last wake until it has been
 * joined; forking holds a woken thread back. Long work between two polls (building a big
 * profile takes tens of milliseconds, more under a sanitizer) would make a fork wait for all
 * of it, so that work passes fork points (pa_agent_fork_point, pa_agent.h) between its steps,
 * where it holds nothing either: there the thread parks the same way while a fork waits.
 * busy and forking are seq_cst atomics (a Dekker pair: the forker stores forking then reads
 * busy, the thread stores busy then reads forking, so at least one sees the other), and the
 * waits are short sleeps: nothing to re-initialise in the child. */
#include "pa_agent.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "profagent.h"
#include "pa_cpu.h"
#include "pa_handlers.h"
#include "pa_heap.h"
#include "pa_lock.h"
#include "pa_query.h"
#include "pa_server.h"

/* singleton: the one agent of this process */
static struct {
    pthread_mutex_t lock;
    int running;
    int atfork_registered;
    pthread_t thread;
    pa_server_t *server;
    pa_handlers_t handlers;
    char *path;
    /* after fork, in the child: the parent's server and path, never used nor freed (the
     * parent's thread may have been inside them), kept so that they are not leaks */
    pa_server_t *inherited_server;
    char *inherited_path;
    /* the fork gate (see the top of this file) */
    _Atomic int busy;
    _Atomic int forking;
    int fork_locked; /* the prepare handler holds lock (only the forking thread) */
    int fork_gate_warned;
} agent_singleton = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* How long a fork waits for the agent thread to reach a poll() or a fork point (the steps
 * between them take milliseconds; this only bounds an unforeseen wait). */
#define FORK_WAIT_NS (10 * 1000000000LL)
#define FORK_POLL_NS 200000 /* 0.2 ms between looks */

PROFAGENT_API void profagent_options_init(profagent_options_t *opts)
{
    const char *v;

    memset(opts, 0, sizeof(*opts));
    opts->cpu_hz = PROFAGENT_DEFAULT_CPU_HZ;
    v = getenv("PROFAGENT_SOCKET");
    opts->socket_path = v != NULL && *v != '\0' ? v : NULL;
    v = getenv("PROFAGENT_CPU_HZ");
    if (v != NULL) {
        int64_t hz;
        if (pa_query_parse_int(v, &hz) == 0 && hz >= 0 && hz <= PA_CPU_MAX_HZ)
            opts->cpu_hz = (int)hz;
        else
            fprintf(stderr, "profagent: PROFAGENT_CPU_HZ=\"%s\" ignored: want 0..%d\n", v,
                    PA_CPU_MAX_HZ);
    }
    pa_server_options_env(opts); /* PROFAGENT_ALLOW_UID, PROFAGENT_SOCKET_GROUP */
}

static void fork_point_park(void);

static void *agent_main(void *arg)
{
    pa_server_t *s = arg;
    int rc;

    pthread_setname_np(pthread_self(), "profagent");
    pa__agent_fork_points_on(fork_point_park);
    /* The agent's own allocations (profile encoding, symbol tables) are not the host's. */
    pa_heap_exclude_this_thread();
    rc = pa_server_run(s);
    if (rc < 0)
        fprintf(stderr, "profagent: the agent thread stopped: %s\n", strerror(-rc));
    return NULL;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap(void)
{
    struct timespec ts = {0, FORK_POLL_NS};
    nanosleep(&ts, NULL);
}

/* pa_server's idle hook, on the agent thread: parked (idle = 1) or about to work (idle = 0);
 * a thread woken while a fork is under way stays parked until it is over. */
static void on_idle(void *arg, int idle)
{
    (void)arg;
    if (idle) {
        atomic_store(&agent_singleton.busy, 0);
        return;
    }
    for (;;) {
        atomic_store(&agent_singleton.busy, 1);
        if (!atomic_load(&agent_singleton.forking))
            return;
        atomic_store(&agent_singleton.busy, 0);
        while (atomic_load(&agent_singleton.forking))
            nap();
    }
}

/* pa_agent_fork_point on the agent thread (pa_agent_fork.c) */
static void fork_point_park(void)
{
    if (!atomic_load(&agent_singleton.forking))
        return;
    on_idle(NULL, 1); /* the forker, seeing busy 0, goes ahead */
    on_idle(NULL, 0); /* back to work once the fork is done */
}

/* Before fork, on the forking thread (glibc runs prepare handlers one fork at a time): no
 * start or stop under way (the lock), and the agent thread parked. Bounded: past
 * FORK_WAIT_NS the fork goes ahead, and says once that the child may inherit a held lock. */
static void atfork_prepare(void)
{
    int64_t deadline = mono_ns() + FORK_WAIT_NS;
    int late = 0;

    while (pthread_mutex_trylock(&agent_singleton.lock) != 0) {
        if (mono_ns() > deadline) {
            late = 1;
            break;
        }
        nap();
    }
    agent_singleton.fork_locked = !late;
    atomic_store(&agent_singleton.forking, 1);
    if (agent_singleton.running && pthread_equal(pthread_self(), agent_singleton.thread))
        return; /* the agent thread itself forking: it is not inside anything */
    while (!late && atomic_load(&agent_singleton.busy)) {
        if (mono_ns() > deadline)
            late = 1;
        else
            nap();
    }
    if (late && !agent_singleton.fork_gate_warned) {
        static const char msg[] = "profagent: fork went ahead while the agent thread was busy "
                                  "for 10 s; the child may inherit a held lock\n";
        agent_singleton.fork_gate_warned = 1;
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    }
}

static void atfork_parent(void)
{
    atomic_store(&agent_singleton.forking, 0);
    if (agent_singleton.fork_locked) {
        agent_singleton.fork_locked = 0;
        pthread_mutex_unlock(&agent_singleton.lock);
    }
}

/* The child of a fork has no agent thread, and its socket is the parent's: set both aside,
 * so that the child may start its own agent and its exit never removes the parent's socket. */
static void atfork_child(void)
{
    pthread_mutex_init(&agent_singleton.lock, NULL);
    agent_singleton.fork_locked = 0;
    atomic_store(&agent_singleton.busy, 0);
    atomic_store(&agent_singleton.forking, 0);
    if (agent_singleton.running) {
        agent_singleton.inherited_server = agent_singleton.server;
        agent_singleton.inherited_path = agent_singleton.path;
    }
    agent_singleton.running = 0;
    agent_singleton.server = NULL;
    agent_singleton.path = NULL;
    pa_cpu_atfork_child();
}

/* Once, before the first agent thread exists (a fork racing the first start must find the
 * handlers in place). Under agent_singleton.lock. */
static void register_atfork(void)
{
    if (!agent_singleton.atfork_registered) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        agent_singleton.atfork_registered = 1;
    }
}

static int start_locked(const profagent_options_t *o)
{
    sigset_t all, old;
    int rc;

    if (agent_singleton.running)
        return strcmp(agent_singleton.path, o->socket_path) == 0 ? 0 : -EALREADY;
    if (o->cpu_hz < 0 || o->cpu_hz > PA_CPU_MAX_HZ) {
        fprintf(stderr, "profagent: cpu_hz %d out of range 0..%d\n", o->cpu_hz, PA_CPU_MAX_HZ);
        return -EINVAL;
    }
    agent_singleton.path = strdup(o->socket_path);
    if (agent_singleton.path == NULL)
        return -ENOMEM;
    agent_singleton.handlers.cpu_hz = o->cpu_hz;
    /* libunwind's lazy set-up and the loader hook's dlsym happen here, not in a handler */
    pa_cpu_init();
    rc =
        pa_server_new_for(o, pa_handlers_serve, &agent_singleton.handlers, &agent_singleton.server);
    if (rc < 0) {
        fprintf(stderr, "profagent: cannot listen on %s: %s\n", o->socket_path,
                rc == -EADDRINUSE ? "another process is serving that socket" : strerror(-rc));
        goto fail;
    }
    pa_server_set_idle_hook(agent_singleton.server, on_idle, NULL);
    register_atfork();
    /* busy before the thread exists: its start-up (the sanitizers' thread set-up) allocates */
    atomic_store(&agent_singleton.busy, 1);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&agent_singleton.thread, NULL, agent_main, agent_singleton.server);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        atomic_store(&agent_singleton.busy, 0);
        fprintf(stderr, "profagent: cannot start the agent thread: %s\n", strerror(-rc));
        pa_server_free(agent_singleton.server);
        agent_singleton.server = NULL;
        goto fail;
    }
    agent_singleton.running = 1;
    return 0;
fail:
    free(agent_singleton.path);
    agent_singleton.path = NULL;
    return rc;
}

PROFAGENT_API int profagent_start(const profagent_options_t *opts)
{
    profagent_options_t env;
    int rc;

    if (opts == NULL) {
        profagent_options_init(&env);
        opts = &env;
    }
    if (opts->socket_path == NULL || opts->socket_path[0] == '\0') {
        fprintf(stderr, "profagent: no socket path (set PROFAGENT_SOCKET)\n");
        return -EINVAL;
    }
    pthread_mutex_lock(&agent_singleton.lock);
    rc = start_locked(opts);
    pthread_mutex_unlock(&agent_singleton.lock);
    return rc;
}

PROFAGENT_API int profagent_stop(void)
{
    pthread_mutex_lock(&agent_singleton.lock);
    if (agent_singleton.running) {
        pa_server_stop(agent_singleton.server);
        pthread_join(agent_singleton.thread, NULL);
        atomic_store(&agent_singleton.busy, 0); /* the thread is gone, and its exit with it */
        pa_server_free(agent_singleton.server);
        agent_singleton.server = NULL;
        free(agent_singleton.path);
        agent_singleton.path = NULL;
        agent_singleton.running = 0;
    }
    pthread_mutex_unlock(&agent_singleton.lock);
    return 0;
}

PROFAGENT_API const char *profagent_socket_path(void)
{
    return agent_singleton.running ? agent_singleton.path : NULL;
}

__attribute__((constructor)) static void profagent_on_load(void)
{
    const char *p = getenv("PROFAGENT_SOCKET");
    if (p != NULL && *p != '\0')
        (void)profagent_start(NULL);
}

/* At exit the thread is left alone (joining it from a destructor could wait on a host
 * thread's state), but the socket file goes, so nothing stale is left behind. */
__attribute__((destructor)) static void profagent_on_unload(void)
{
    if (agent_singleton.running && agent_singleton.server != NULL)
        pa_server_unlink(agent_singleton.server);
}

void profagent_set_block_rate(long long rate_ns)
{
    pa_lock_set_block_rate(rate_ns);
}

int profagent_set_mutex_fraction(int rate)
{
    return (int)pa_lock_mutex_fraction(rate);
}
