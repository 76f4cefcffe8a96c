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
    if (t->order == NULL || t->plen == NULL) {
        pg_route_table_free(t);
        return -ENOMEM;
    }
    for (i = 0; i < t->n; i++) {
        t->order[i] = i;
        t->plen[i] = strlen(cfg->routes[i].prefix);
    }
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

static bool host_matches(const char *want, const char *host, size_t hostlen)
{
    if (want == NULL)
        return true;
    return host != NULL && strlen(want) == hostlen && strncasecmp(want, host, hostlen) == 0;
}

/* The pprof endpoints of a route live at <prefix without trailing '/'><pprof.path>. */
static void check_pprof(const pg_config_t *cfg, const char *prefix, size_t plen, const char *path,
                        size_t pathlen, pg_route_match_t *m)
{
    const char *pp = cfg->pprof.path ? cfg->pprof.path : "/debug/pprof";
    size_t pplen = strlen(pp), base = plen;

    while (pplen > 1 && pp[pplen - 1] == '/')
        pplen--;
    while (base > 0 && prefix[base - 1] == '/')
        base--;
    m->pprof = false;
    if (pathlen < base + pplen || memcmp(path, prefix, base) != 0)
        return;
    if (!pg_route_prefix_matches(pp, pplen, path + base, pathlen - base))
        return;
    m->pprof = true;
    m->pprof_rest = path + base + pplen;
    m->pprof_rest_len = pathlen - base - pplen;
}

int pg_route_match(const pg_route_table_t *t, const char *host, size_t hostlen, const char *path,
                   size_t pathlen, pg_route_match_t *m)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        size_t ri = t->order[i];
        const pg_config_route_t *r = &t->cfg->routes[ri];

        if (!host_matches(r->host, host, hostlen))
            continue;
        if (!pg_route_prefix_matches(r->prefix, t->plen[ri], path, pathlen))
            continue;
        m->route = r;
        m->route_index = ri;
        m->upstream = &t->cfg->upstreams[r->upstream];
        check_pprof(t->cfg, r->prefix, t->plen[ri], path, pathlen, m);
        return 0;
    }
    return -ENOENT;
}
