/* pa_agent_fork: the fork points (pa_agent.h), apart from pa_agent.c so that the builders
 * calling them (pa_pprof, pa_symbolize, pa_heap, pa_handlers_heap, pa_text) link without the
 * agent's life cycle: a program that uses only the builders (the fuzzers, unit tests) gets
 * no agent constructor and none of the hooks that pa_agent.o pulls in from the static
 * library. pa_agent.c hands its parking function over when its thread starts.
 * Threads: pa__agent_fork_points_on on the agent thread; pa_agent_fork_point on any.
 * Not async-signal-safe. */
#include "pa_agent.h"

#include <stdatomic.h>
#include <stddef.h>

/* Set on the agent thread only (initial-exec: no allocation on first use): fork points
 * elsewhere do nothing. */
static __thread int on_agent_thread __attribute__((tls_model("initial-exec")));
static void (*_Atomic park)(void);

void pa__agent_fork_points_on(void (*fn)(void))
{
    atomic_store(&park, fn);
    on_agent_thread = 1;
}

void pa_agent_fork_point(void)
{
    void (*fn)(void);

    if (!on_agent_thread)
        return;
    fn = atomic_load(&park);
    if (fn != NULL)
        fn();
}
