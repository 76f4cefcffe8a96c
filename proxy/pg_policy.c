/* pg_policy: see pg_policy.h. */
#include "pg_policy.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct pg_policy_agent {
    atomic_uint active; /* profile requests in flight to this agent, all workers */
    atomic_int refs;    /* one per pg_policy_limits_t that holds it */
    char key[sizeof(((struct sockaddr_un *)0)->sun_path) + 1]; /* the socket path */
};

struct pg_policy_limits {
    size_t n;
    pg_policy_agent_t **agents; /* by upstream index; NULL: no agent */
};

static void agent_unref(pg_policy_agent_t *a)
{
    if (a && atomic_fetch_sub(&a->refs, 1) == 1)
        free(a);
}

/* The path an agent address connects to (what identifies the agent). */
static void agent_key(const pg_config_upstream_t *u, char *key, size_t size)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)&u->agent.sa;

    memset(key, 0, size);
    if (u->agent.kind == PG_ADDR_UNIX)
        memcpy(key, sun->sun_path, strnlen(sun->sun_path, sizeof sun->sun_path));
    else
        memcpy(key, u->agent.text, strnlen(u->agent.text, size - 1));
}

/* An agent with key among l's (or NULL). */
static pg_policy_agent_t *find(const pg_policy_limits_t *l, const char *key)
{
    size_t i;

    for (i = 0; l && i < l->n; i++)
        if (l->agents[i] && strcmp(l->agents[i]->key, key) == 0)
            return l->agents[i];
    return NULL;
}

int pg_policy_limits_new(const pg_config_t *cfg, const pg_policy_limits_t *prev,
                         pg_policy_limits_t **out)
{
    pg_policy_limits_t *l = calloc(1, sizeof *l);
    char key[sizeof(((pg_policy_agent_t *)0)->key)];
    pg_policy_agent_t *a;
    size_t i;

    if (l == NULL)
        return -ENOMEM;
    l->n = cfg->nupstreams;
    l->agents = calloc(l->n ? l->n : 1, sizeof *l->agents);
    if (l->agents == NULL)
        goto fail;
    for (i = 0; i < l->n; i++) {
        if (!cfg->upstreams[i].has_agent)
            continue;
        agent_key(&cfg->upstreams[i], key, sizeof key);
        a = find(l, key);
        if (a == NULL)
            a = find(prev, key);
        if (a == NULL) {
            a = calloc(1, sizeof *a);
            if (a == NULL)
                goto fail;
            atomic_init(&a->active, 0);
            atomic_init(&a->refs, 0);
            memcpy(a->key, key, sizeof a->key);
        }
        atomic_fetch_add(&a->refs, 1);
        l->agents[i] = a;
    }
    *out = l;
    return 0;

fail:
    pg_policy_limits_free(l);
    return -ENOMEM;
}

void pg_policy_limits_free(pg_policy_limits_t *l)
{
    size_t i;

    if (l == NULL)
        return;
    for (i = 0; l->agents && i < l->n; i++)
        agent_unref(l->agents[i]);
    free(l->agents);
    free(l);
}

pg_policy_agent_t *pg_policy_agent(const pg_policy_limits_t *l, size_t up)
{
    return l && up < l->n ? l->agents[up] : NULL;
}

bool pg_policy_agent_take(pg_policy_agent_t *a, uint32_t max)
{
    unsigned cur = atomic_load_explicit(&a->active, memory_order_relaxed);

    /* a compare-and-swap loop, so that the count never goes past max even for a moment */
    do {
        if (cur >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&a->active, &cur, cur + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

void pg_policy_agent_give(pg_policy_agent_t *a)
{
    atomic_fetch_sub_explicit(&a->active, 1, memory_order_relaxed);
}

uint32_t pg_policy_agent_active(const pg_policy_agent_t *a)
{
    return atomic_load_explicit(&((pg_policy_agent_t *)a)->active, memory_order_relaxed);
}

bool pg_policy_counts(const char *rest, size_t len)
{
    if (len <= 1)
        return false; /* the index */
    return !(len == 8 && memcmp(rest, "/cmdline", 8) == 0) &&
           !(len == 7 && memcmp(rest, "/symbol", 7) == 0);
}
