/* pg_route: the route table of one configuration: which route a request belongs to
 * (longest path prefix, matching at a path-segment boundary; a route with a host only
 * for that host), and whether the request is for the route's application or for the pprof
 * endpoints of its upstream's agent ("<prefix><pprof.path>/...").
 * Owns: a pg_route_table_t borrows the pg_config_t it was built from (which must outlive
 *   it) and owns only its ordering. A pg_route_match_t points into the config and into the
 *   caller's path.
 * Threads: immutable once built; any thread may match. Errors: negative errno. */
#ifndef PG_ROUTE_H
#define PG_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "pg_config.h"

typedef struct pg_route_table pg_route_table_t;

typedef struct pg_route_match {
    const pg_config_route_t *route;       /* the winning route */
    size_t route_index;                   /* index into cfg->routes */
    const pg_config_upstream_t *upstream; /* the route's upstream */
    bool pprof;                           /* path is <prefix><pprof.path>[/...] */
    const char *pprof_rest;               /* pprof only: what follows pprof.path in the path */
    size_t pprof_rest_len;                /* ("" or "/..."), to be sent as /debug/pprof<rest> */
} pg_route_match_t;

int pg_route_table_new(const pg_config_t *cfg, pg_route_table_t **out);
void pg_route_table_free(pg_route_table_t *t);

/* path: the request path without the query (need not be NUL-terminated); host: the
 * request's host -- an absolute-form target's authority (RFC 9112 3.2.2), else the Host
 * header -- without port (or with it, where a route names one), or NULL. Among the routes whose host matches (case-insensitive) or
 * that have none, the longest prefix that matches path wins; on a tie a route with a host
 * beats one without. A prefix matches when path equals it, or starts with it and either
 * the prefix ends in '/' or the next path byte is '/'. Returns 0, or -ENOENT. */
int pg_route_match(const pg_route_table_t *t, const char *host, size_t hostlen, const char *path,
                   size_t pathlen, pg_route_match_t *m);

/* Does prefix match path by the rule above? (Exposed for tests and the pprof check.) */
bool pg_route_prefix_matches(const char *prefix, size_t plen, const char *path, size_t pathlen);

#endif
