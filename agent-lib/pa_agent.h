/* pa_agent: the agent's life cycle (pa_agent.c, behind profagent.h); this header is only for
 * sibling files: the fork gate's points.
 * Threads: as each function says. Not async-signal-safe. */
#ifndef PA_AGENT_H
#define PA_AGENT_H

/* A fork point. A host thread's fork() waits until the agent thread holds nothing (the fork
 * gate, see pa_agent.c): parked in poll(), or here. Long work on the agent thread (building a
 * profile: snapshot, symbols, encoding) calls this between its steps, where it is inside no
 * function of anyone's that may hold a lock (malloc, the loader's dl_iterate_phdr or dladdr,
 * stdio, libunwind, our own spin locks): a fork that waits then goes ahead now, and this
 * returns when it is done; without one waiting it is one atomic load. On any other thread
 * (tests calling the builders directly) it does nothing. */
void pa_agent_fork_point(void);

/* pa_agent.c, on the agent thread as it starts: fork points on this thread call fn, which
 * parks while a fork waits (pa_agent_fork.c keeps it apart from pa_agent.c, so that the
 * builders link without the agent's life cycle). */
void pa__agent_fork_points_on(void (*fn)(void));

#endif
