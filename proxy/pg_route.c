/* pg_route: see pg_route.h. */
#include "pg_route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pg_route_table {
    const pg_config_t *cfg;
    size_t n;
    size_t *order; /* route indexes, longest prefix first, host-specific first on ties */
    size_t *plen;  /* strlen of each route's prefix, by route index */
    size_t *hlen;  /* strlen of each route's host (0: none), by route index */
    const char *pp; /* pprof.path without trailing '/' (pplen bytes): measured once here,
                       not at every request */
    size_t pplen;
};

static int by_specificity(const void *a, const void *b, void *arg)
{
    const pg_config_t *cfg = arg;
    const pg_config_route_t *ra = &cfg->routes[*(const size_t *)a];
    const pg_config_route_t *rb = &cfg->routes[*(const size_t *)b];
    size_t la = strlen(ra->prefix), lb = strlen(rb->prefix);

    if (la != lb)
        return la > lb ? -1 : 1;
    if ((ra->host != NULL) != (rb->host != NULL))
        return ra->host != NULL ? -1 : 1;
    /* keep file order otherwise */
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

int pg_route_table_new(const pg_config_t *cfg, pg_route_table_t **out)
{
    pg_route_table_t *t;
    size_t i;

    t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->cfg = cfg;
    t->n = cfg->nroutes;
    t->order = calloc(t->n ? t->n : 1, sizeof *t->order);
    t->plen = calloc(t->n ? t->n : 1, sizeof *t->plen);
    t->hlen = calloc(t->n ? t->n : 1, sizeof *t->hlen);
    if (t->order == NULL || t->plen == NULL || t->hlen == NULL) {
        pg_route_table_free(t);
        return -ENOMEM;
    }
    for (i = 0; i < t->n; i++) {
        t->order[i] = i;
        t->plen[i] = strlen(cfg->routes[i].prefix);
        t->hlen[i] = cfg->routes[i].host ? strlen(cfg->routes[i].host) : 0;
    }
    t->pp = cfg->pprof.path ? cfg->pprof.path : "/debug/pprof";
    t->pplen = strlen(t->pp);
    while (t->pplen > 1 && t->pp[t->pplen - 1] == '/')
        t->pplen--;
    /* qsort_r, not a static context: every worker builds its table at once on a reload (a
     * static reset to NULL by one worker while another still sorts was a crash) */
    qsort_r(t->order, t->n, sizeof *t->order, by_specificity, (void *)cfg);
    *out = t;
    return 0;
}

void pg_route_table_free(pg_route_table_t *t)
{
    if (t == NULL)
        return;
    free(t->order);
    free(t->plen);
    free(t->hlen);
    free(t);
}

bool pg_route_prefix_matches(const char *prefix, size_t plen, const char *path, size_t pathlen)
{
    if (pathlen < plen || memcmp(prefix, path, plen) != 0)
        return false;
    if (pathlen == plen)
        return true;
    return plen > 0 && (prefix[plen - 1] == '/' || path[plen] == '/');
}

static bool host_matches(const char *want, size_t wlen, const char *host, size_t hostlen)
{
    if (want == NULL)
        return true;
    return host != NULL && wlen == hostlen && strncasecmp(want, host, hostlen) == 0;
}

/* The pprof endpoints of a route live at <prefix without trailing '/'><pprof.path>. */
static void check_pprof(const pg_route_table_t *t, const char *prefix, size_t plen,
                        const char *path, size_t pathlen, pg_route_match_t *m)
{
    size_t base = plen;

    while (base > 0 && prefix[base - 1] == '/')
        base--;
    m->pprof = false;
    if (pathlen < base + t->pplen || memcmp(path, prefix, base) != 0)
        return;
    if (!pg_route_prefix_matches(t->pp, t->pplen, path + base, pathlen - base))
        return;
    m->pprof = true;
    m->pprof_rest = path + base + t->pplen;
    m->pprof_rest_len = pathlen - base - t->pplen;
}

int pg_route_match(const pg_route_table_t *t, const char *host, size_t hostlen, const char *path,
                   size_t pathlen, pg_route_match_t *m)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        size_t ri = t->order[i];
        const pg_config_route_t *r = &t->cfg->routes[ri];

        if (!host_matches(r->host, t->hlen[ri], host, hostlen))
            continue;
        if (!pg_route_prefix_matches(r->prefix, t->plen[ri], path, pathlen))
            continue;
        m->route = r;
        m->route_index = ri;
        m->upstream = &t->cfg->upstreams[r->upstream];
        check_pprof(t, r->prefix, t->plen[ri], path, pathlen, m);
        return 0;
    }
    return -ENOENT;
}
