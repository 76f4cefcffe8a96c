/* pg_policy: who may profile. The pprof gate the connection applies to a request for an
 * agent's endpoints (pg_policy_check), and the concurrency limit per agent
 * (pprof.max_concurrent).
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
#include <sys/socket.h>

#include "pg_config.h"

typedef struct pg_policy_agent pg_policy_agent_t;
typedef struct pg_policy_limits pg_policy_limits_t;

/* A request for "<prefix><pprof.path><rest>", as the gate sees it. Every pointer is
 * borrowed for the call. */
typedef struct pg_policy_req {
    const pg_config_upstream_t *up;   /* the matched route's upstream: whose policy applies */
    size_t up_index;                  /* its index in the configuration */
    const pg_policy_limits_t *limits; /* the request's configuration's counters */
    const struct sockaddr *peer;      /* the client */
    const char *authorization;        /* Authorization value, or NULL */
    size_t authorization_len;
    const char *query;                /* after '?' (without it), not decoded; len 0: none */
    size_t query_len;
    const char *rest;                 /* what follows pprof.path: "", "/heap", ... */
    size_t rest_len;
} pg_policy_req_t;

typedef struct pg_policy_verdict {
    int status;               /* 0: forward to the agent; else answer it with msg */
    uint32_t seconds;         /* the profile's duration (seconds=, or Go's default for
                                 profile and trace); 0 when none */
    pg_policy_agent_t *agent; /* counted against max_concurrent: the caller gives it back
                                 (pg_policy_agent_give) when the exchange ends; or NULL */
    char msg[400];            /* status != 0: the cause, for the response body and the log */
} pg_policy_verdict_t;

/* The pprof gate, in this order: pprof.enabled (404), pprof.allow (403), the token (401;
 * the caller adds WWW-Authenticate), an agent configured (404), the query (400: '%' or ';'
 * in it, an unreadable seconds, seconds -- given or Go's default -- above max_seconds),
 * max_concurrent for the agent (409). Fills *v; returns v->status. */
int pg_policy_check(const pg_policy_req_t *r, pg_policy_verdict_t *v);

/* Is peer in pp->allow? */
bool pg_policy_peer_allowed(const pg_config_pprof_t *pp, const struct sockaddr *peer);
/* May peer read server.metrics_path? server.metrics_allow when set, else the global
 * pprof.allow (what the gateway counts is as private as its profiles by default). */
bool pg_policy_metrics_allowed(const pg_config_t *cfg, const struct sockaddr *peer);

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
