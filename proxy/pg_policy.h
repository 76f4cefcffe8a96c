/* pg_policy: who may profile. The pprof gate the connection applies to a request for an
 * agent's endpoints, and the concurrency limit per agent (pprof.max_concurrent).
 *
 * The limit is a count of profile requests in flight per agent, shared by every worker: one
 * atomic counter per agent (keyed by the agent's socket path, so two upstreams naming the
 * same agent share it), owned by a pg_policy_limits_t that hangs off a configuration
 * reference. A reload's new limits take over the counters of the agents the old
 * configuration also had, so requests started before a reload still count against the new
 * one and release the same counter when they end.
 *
 * Owns: pg_policy_limits_t holds one reference to each of its counters; a counter is freed
 *   with its last reference (atomic). A pg_policy_agent_t * obtained from a limits object
 *   stays valid while that limits object lives.
 * Threads: pg_policy_limits_new/free on the main thread (or any one thread at a time);
 *   take/give from any thread (atomics only). Errors: negative errno. */
#ifndef PG_POLICY_H
#define PG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_config.h"

typedef struct pg_policy_agent pg_policy_agent_t;
typedef struct pg_policy_limits pg_policy_limits_t;

/* Counters for cfg's agents: shared with prev (may be NULL) for every agent address both
 * have, new (zero) for the others. */
int pg_policy_limits_new(const pg_config_t *cfg, const pg_policy_limits_t *prev,
                         pg_policy_limits_t **out);
void pg_policy_limits_free(pg_policy_limits_t *l);

/* The counter of cfg->upstreams[up]'s agent; NULL when that upstream has no agent. */
pg_policy_agent_t *pg_policy_agent(const pg_policy_limits_t *l, size_t up);

/* Count one more request in flight to a, unless max are already: true when counted (the
 * caller then owes one pg_policy_agent_give), false when the limit is reached. */
bool pg_policy_agent_take(pg_policy_agent_t *a, uint32_t max);
void pg_policy_agent_give(pg_policy_agent_t *a);
/* Requests in flight now (for tests and messages). */
uint32_t pg_policy_agent_active(const pg_policy_agent_t *a);

/* Does a request for rest (what follows pprof.path: "", "/", "/heap", ...) count against
 * max_concurrent? Profiles do; the index, cmdline and symbol (cheap lookups go tool pprof
 * makes beside a profile) do not. */
bool pg_policy_counts(const char *rest, size_t len);

#endif
