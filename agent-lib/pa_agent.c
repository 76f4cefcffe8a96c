/* pa_agent: the agent's life cycle behind profagent.h: options and environment, the agent
 * thread (all signals blocked, so the host's signals and our SIGPROF go to the host's
 * threads), start/stop, the PROFAGENT_SOCKET constructor, and fork. */
#include "profagent.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
} agent_singleton = {.lock = PTHREAD_MUTEX_INITIALIZER};

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

static void *agent_main(void *arg)
{
    pa_server_t *s = arg;
    int rc;

    pthread_setname_np(pthread_self(), "profagent");
    /* The agent's own allocations (profile encoding, symbol tables) are not the host's. */
    pa_heap_exclude_this_thread();
    rc = pa_server_run(s);
    if (rc < 0)
        fprintf(stderr, "profagent: the agent thread stopped: %s\n", strerror(-rc));
    return NULL;
}

/* The child of a fork has no agent thread, and its socket is the parent's: set both aside,
 * so that the child may start its own agent and its exit never removes the parent's socket. */
static void atfork_child(void)
{
    pthread_mutex_init(&agent_singleton.lock, NULL);
    if (agent_singleton.running) {
        agent_singleton.inherited_server = agent_singleton.server;
        agent_singleton.inherited_path = agent_singleton.path;
    }
    agent_singleton.running = 0;
    agent_singleton.server = NULL;
    agent_singleton.path = NULL;
    pa_cpu_atfork_child();
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
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&agent_singleton.thread, NULL, agent_main, agent_singleton.server);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        fprintf(stderr, "profagent: cannot start the agent thread: %s\n", strerror(-rc));
        pa_server_free(agent_singleton.server);
        agent_singleton.server = NULL;
        goto fail;
    }
    if (!agent_singleton.atfork_registered) {
        pthread_atfork(NULL, NULL, atfork_child);
        agent_singleton.atfork_registered = 1;
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
