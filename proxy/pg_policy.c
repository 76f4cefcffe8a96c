/* pg_policy: see pg_policy.h. */
#include "pg_policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "pg_http.h"

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
    } while (!atomic_compare_exchange_weak_explicit(&a->active, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
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

bool pg_policy_peer_allowed(const pg_config_pprof_t *pp, const struct sockaddr *peer)
{
    size_t i;

    for (i = 0; i < pp->nallow; i++)
        if (pg_cidr_match(&pp->allow[i], peer))
            return true;
    return false;
}

bool pg_policy_metrics_allowed(const pg_config_t *cfg, const struct sockaddr *peer)
{
    size_t i;

    if (!cfg->server.has_metrics_allow)
        return pg_policy_peer_allowed(&cfg->pprof, peer);
    for (i = 0; i < cfg->server.nmetrics_allow; i++)
        if (pg_cidr_match(&cfg->server.metrics_allow[i], peer))
            return true;
    return false;
}

static int refuse(pg_policy_verdict_t *v, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(pg_policy_verdict_t *v, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    v->status = status;
    return status;
}

/* seconds= as the agent will read it, or Go's default; 400 when we could read it otherwise
 * than the agent, or it is above the limit. */
static int check_seconds(const pg_policy_req_t *r, pg_policy_verdict_t *v)
{
    const pg_config_pprof_t *pp = &r->up->pprof;
    const char *q = r->query, *val;
    size_t qlen = r->query_len, vlen;
    unsigned long secs = 0;
    const char *given = "no seconds given";

    /* The agent reads the query as Go's url.ParseQuery does: percent-decoded, pairs holding
     * ';' or a bad escape skipped, first match wins. "seconds=%31%30%30", "second%73=100" or
     * "seconds=1;&seconds=100" would be 100 s there and nothing here: refuse what we could
     * read differently, and a seconds we cannot read, so that max_seconds holds. */
    if (qlen && (memchr(q, '%', qlen) || memchr(q, ';', qlen)))
        return refuse(v, 400,
                      "a pprof query may not hold '%%' escapes or ';' (pprof.max_seconds "
                      "is checked on the query as sent)");
    if (qlen && pg_http_query_get(q, qlen, "seconds", &val, &vlen) && vlen > 0) {
        if (pg_http_parse_uint(val, vlen, &secs) < 0)
            return refuse(v, 400,
                          "seconds=%.*s is not a whole number of seconds up to "
                          "pprof.max_seconds = %u",
                          (int)(vlen > 20 ? 20 : vlen), val, pp->max_seconds);
        if (secs > pp->max_seconds)
            return refuse(v, 400, "seconds=%lu exceeds the limit pprof.max_seconds = %u", secs,
                          pp->max_seconds);
        v->seconds = (uint32_t)secs;
        if (secs > 0)
            return 0;
        /* seconds=0: profile and trace fall back to their defaults, as in Go (a delta
         * profile answers 400 itself) */
        given = "seconds=0";
    }
    /* Go's defaults: profile 30 s, trace 1 s; they are asked for too */
    if (r->rest_len == 8 && memcmp(r->rest, "/profile", 8) == 0)
        secs = 30;
    else if (r->rest_len == 6 && memcmp(r->rest, "/trace", 6) == 0)
        secs = 1;
    if (secs > pp->max_seconds)
        return refuse(v, 400,
                      "%s: the default %lu exceeds the limit pprof.max_seconds = %u (ask for "
                      "seconds=N)",
                      given, secs, pp->max_seconds);
    v->seconds = (uint32_t)secs;
    return 0;
}

int pg_policy_check(const pg_policy_req_t *r, pg_policy_verdict_t *v)
{
    const pg_config_pprof_t *pp = &r->up->pprof;
    pg_policy_agent_t *a;
    char addr[64];

    v->status = 0;
    v->seconds = 0;
    v->agent = NULL;
    v->msg[0] = '\0';
    if (!pp->enabled)
        return refuse(v, 404, "profiling is disabled for upstream \"%s\" (pprof.enabled)",
                      r->up->name);
    if (!pg_policy_peer_allowed(pp, r->peer)) {
        pg_http_addr_text(r->peer, addr, sizeof addr);
        return refuse(v, 403, "pprof access denied: client %s is not in pprof.allow", addr);
    }
    if (pp->token && !pg_http_bearer_ok(r->authorization, r->authorization_len, pp->token))
        return refuse(v, 401,
                      "pprof token required: send Authorization: Bearer <token> "
                      "(the contents of pprof.token_file)");
    if (!r->up->has_agent)
        return refuse(v, 404, "upstream \"%s\" has no agent configured (upstream.agent)",
                      r->up->name);
    if (check_seconds(r, v) != 0)
        return v->status;
    if (!pg_policy_counts(r->rest, r->rest_len))
        return 0;
    a = pg_policy_agent(r->limits, r->up_index);
    if (a && !pg_policy_agent_take(a, pp->max_concurrent))
        return refuse(v, 409,
                      "agent of \"%s\" is busy: %u profile request(s) already running, the "
                      "limit pprof.max_concurrent = %u",
                      r->up->name, pg_policy_agent_active(a), pp->max_concurrent);
    v->agent = a;
    return 0;
}
