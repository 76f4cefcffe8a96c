/* pg_config: see pg_config.h.
 *
 * How a load goes: parse the top file; expand its "include" globs and parse each match; walk
 * every file's tables checking each key against the schema (pg_config_schema.c); then resolve names
 * across files (route -> upstream) and check the rules that span entries (at least one upstream and
 * one route, unique upstream names, unique (host, prefix)). A mistake never stops the walk:
 * every error is collected, then sorted by file and position, so `--check` shows them all in
 * reading order.
 *
 * Includes do not nest: an included file may hold only [[upstream]] and [[route]] (no
 * "include", no [server] or [pprof]), so there is nothing to cycle through; a file is loaded
 * at most once (a glob that matches the top file itself, or two globs matching one file, is
 * an error). A glob with wildcards that matches nothing is fine (an empty conf.d/); a plain
 * name that does not exist is an error. Relative paths (include globs, unix: sockets,
 * token_file, access_log) are relative to the directory of the file they are written in. */
#include "pg_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "pg_config_int.h"
#include "pg_metrics.h"
#include "pg_toml.h"

#define MAX_INCLUDED_FILES 1024

static bool has_errors(const loader_t *L)
{
    return L->oom || L->errs->n > L->first_err;
}

/* The value of key as an array of tables (what [[key]] makes; an inline array of inline
 * tables is the same thing). Calls fn on each. */
static void each_table(loader_t *L, const src_t *src, const char *key,
                       void (*fn)(loader_t *, const src_t *, const pg_toml_value_t *))
{
    const pg_toml_value_t *v = pg_toml_table_get(src->root, key);
    bool is_upstream = strcmp(key, "upstream") == 0;
    size_t i, n;

    if (v == NULL)
        return;
    if (is_upstream)
        L->upstream_seen = true;
    if (pg_toml_type(v) != PG_TOML_ARRAY) {
        pg__config_err(L, src->path, pg_toml_pos(v),
                       "%s: expected an array of tables ([[%s]]), got %s", key, key,
                       pg__config_a_type(v));
        L->names_incomplete |= is_upstream;
        return;
    }
    n = pg_toml_array_len(v);
    for (i = 0; i < n; i++) {
        const pg_toml_value_t *t = pg_toml_array_at(v, i);

        if (pg_toml_type(t) != PG_TOML_TABLE) {
            pg__config_err(L, src->path, pg_toml_pos(t), "%s: expected a table ([[%s]]), got %s",
                           key, key, pg__config_a_type(t));
            L->names_incomplete |= is_upstream;
        } else {
            fn(L, src, t);
        }
    }
}

static void parse_top_tables(loader_t *L, const src_t *src)
{
    const pg_toml_value_t *v;

    if ((v = pg_toml_table_get(src->root, "server")) != NULL) {
        sect_t s = {L, src, "server", v};

        if (pg_toml_type(v) != PG_TOML_TABLE)
            pg__config_err(L, src->path, pg_toml_pos(v),
                           "server: expected a table ([server]), got %s", pg__config_a_type(v));
        else
            pg__config_parse_server(&s, &L->cfg->server);
    }
    if ((v = pg_toml_table_get(src->root, "pprof")) != NULL) {
        sect_t s = {L, src, "pprof", v};

        if (pg_toml_type(v) != PG_TOML_TABLE)
            pg__config_err(L, src->path, pg_toml_pos(v),
                           "pprof: expected a table ([pprof]), got %s", pg__config_a_type(v));
        else
            pg__config_parse_pprof(&s, &L->cfg->pprof, true);
    }
}

/* pprof.admin_listen exists to keep profiles off the public port: the same address as
 * server.listen would defeat it (and could not be bound twice). */
static void check_admin_listen(loader_t *L)
{
    const pg_config_t *cfg = L->cfg;
    const pg_addr_t *a = &cfg->pprof.admin_listen, *l = &cfg->server.listen;
    const pg_toml_value_t *pp;

    if (!cfg->pprof.has_admin_listen || a->salen != l->salen || memcmp(&a->sa, &l->sa, a->salen))
        return;
    pp = pg_toml_table_get(L->srcs[0].root, "pprof");
    pg__config_err(L, L->srcs[0].path, pg_toml_pos(pg_toml_table_get(pp, "admin_listen")),
                   "pprof.admin_listen: \"%s\" is the same address as server.listen; it must be "
                   "a separate one (e.g. 127.0.0.1:8081)",
                   a->text);
}

/* ---- files and includes ----------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return strdup("");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Parse path and append it to the loaded files. 0, or the parser's negative errno with the
 * error added. */
static int load_file(loader_t *L, const char *path, const char *real)
{
    src_t *src;
    pg_error_t perr;
    char *copy;
    size_t cap = L->capsrcs;
    int rc;

    if (pg__config_grow((void **)&L->srcs, &L->capsrcs, L->nsrcs + 1, sizeof *L->srcs) < 0 ||
        pg__config_grow((void **)&L->cfg->files, &cap, L->nsrcs + 1, sizeof *L->cfg->files) < 0)
        return -ENOMEM;
    src = &L->srcs[L->nsrcs];
    memset(src, 0, sizeof *src);
    copy = strdup(path);
    src->path = copy;
    src->dir = dir_of(path);
    src->real = real ? strdup(real) : NULL;
    if (copy == NULL || src->dir == NULL || (real && src->real == NULL)) {
        free(copy);
        free(src->dir);
        free(src->real);
        return -ENOMEM;
    }
    L->cfg->files[L->nsrcs] = copy;
    L->cfg->nfiles = ++L->nsrcs;
    memset(&perr, 0, sizeof perr);
    rc = pg_toml_parse_file(path, &src->root, &perr);
    if (rc < 0) {
        src->root = NULL;
        if (perr.msg[0] == '\0')
            pg_error_set(&perr, path, (pg_pos_t){0, 0}, "cannot load: %s", strerror(-rc));
        if (pg_errlist_add(L->errs, &perr) < 0)
            L->oom = true;
        return rc == -ENOMEM ? rc : (rc ? rc : -EINVAL);
    }
    return 0;
}

static bool already_loaded(const loader_t *L, const char *real, const char **by)
{
    size_t i;

    for (i = 0; i < L->nsrcs; i++) {
        if (L->srcs[i].real && strcmp(L->srcs[i].real, real) == 0) {
            *by = L->srcs[i].path;
            return true;
        }
    }
    return false;
}

/* dir with glob's special characters escaped, so only the user's pattern is a pattern. */
static char *glob_join(const char *dir, const char *pattern)
{
    size_t i, j = 0, n = strlen(dir);
    char *out;

    if (pattern[0] == '/' || dir[0] == '\0')
        return strdup(pattern);
    if ((out = malloc(2 * n + strlen(pattern) + 2)) == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (strchr("*?[]\\", dir[i]))
            out[j++] = '\\';
        out[j++] = dir[i];
    }
    if (j == 0 || out[j - 1] != '/')
        out[j++] = '/';
    strcpy(out + j, pattern);
    return out;
}

/* glob() reports unreadable directories here; a missing one just means no match. */
static __thread int glob_errno;

static int on_glob_error(const char *path, int err)
{
    (void)path;
    if (err == ENOENT || err == ENOTDIR)
        return 0;
    glob_errno = err;
    return 1;
}

static void include_one(loader_t *L, const src_t *top, const pg_toml_value_t *e)
{
    const char *pattern, *by;
    pg_pos_t pos = pg_toml_pos(e);
    char *full;
    glob_t g;
    size_t i;
    int rc;

    if (pg_toml_type(e) != PG_TOML_STRING) {
        pg__config_err(L, top->path, pos, "include: expected a file name or glob string, got %s",
                       pg__config_a_type(e));
        return;
    }
    pattern = pg_toml_string(e, NULL);
    if (pattern[0] == '\0') {
        pg__config_err(L, top->path, pos, "include: empty pattern");
        return;
    }
    if ((full = glob_join(top->dir, pattern)) == NULL) {
        L->oom = true;
        return;
    }
    glob_errno = 0;
    rc = glob(full, GLOB_MARK, on_glob_error, &g);
    if (rc == GLOB_NOMATCH) {
        if (strpbrk(pattern, "*?[") == NULL)
            pg__config_err(L, top->path, pos, "include: \"%s\": no such file (looked for %s)",
                           pattern, full);
        free(full);
        return;
    }
    if (rc != 0) {
        if (rc == GLOB_NOSPACE)
            L->oom = true;
        else
            pg__config_err(L, top->path, pos,
                           "include: \"%s\": cannot read a directory on the way: %s", full,
                           strerror(glob_errno ? glob_errno : EIO));
        globfree(&g);
        free(full);
        return;
    }
    for (i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        struct stat st;
        char *real;

        if (path[0] && path[strlen(path) - 1] == '/') {
            pg__config_err(L, top->path, pos, "include: \"%s\" matches directory \"%s\"", pattern,
                           path);
            continue;
        }
        if (L->nsrcs > MAX_INCLUDED_FILES) {
            pg__config_err(L, top->path, pos, "include: more than %d files included",
                           MAX_INCLUDED_FILES);
            break;
        }
        if ((real = realpath(path, NULL)) == NULL) {
            pg__config_err(L, top->path, pos, "include: \"%s\": %s", path, strerror(errno));
            continue;
        }
        if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
            pg__config_err(L, top->path, pos,
                           "include: \"%s\" matches \"%s\", which is not a regular file", pattern,
                           path);
        else if (already_loaded(L, real, &by))
            pg__config_err(L, top->path, pos,
                           "include: \"%s\" matches \"%s\", which is already loaded%s", pattern,
                           path, strcmp(by, top->path) == 0 ? " (it is this file)" : "");
        else if (load_file(L, path, real) == -ENOMEM)
            L->oom = true;
        free(real);
    }
    globfree(&g);
    free(full);
}

static void process_includes(loader_t *L)
{
    /* a copy: loading included files grows (moves) L->srcs; the strings it points at stay */
    const src_t top_copy = L->srcs[0], *top = &top_copy;
    const pg_toml_value_t *v = pg_toml_table_get(top->root, "include");
    size_t i, n;

    if (v == NULL)
        return;
    if (pg_toml_type(v) != PG_TOML_ARRAY) {
        pg__config_err(
            L, top->path, pg_toml_pos(v),
            "include: expected an array of globs (e.g. include = [\"conf.d/*.toml\"]), got %s",
            pg__config_a_type(v));
        return;
    }
    n = pg_toml_array_len(v);
    for (i = 0; i < n && !L->oom; i++)
        include_one(L, top, pg_toml_array_at(v, i));
}

/* ---- rules across entries --------------------------------------------------------------- */

/* Entries sorted by name (or host and prefix), so duplicates sit side by side and routes
 * find their upstream by binary search: a config with thousands of services stays fast. */
typedef struct ix {
    const char *a, *b; /* upstream: name, NULL; route: host ("" = any), prefix */
    size_t i;          /* index in cfg->upstreams / cfg->routes: ties keep file order */
} ix_t;

static int cmp_ix(const void *pa, const void *pb)
{
    const ix_t *x = pa, *y = pb;
    int c = strcmp(x->a, y->a);

    if (c == 0 && x->b && y->b)
        c = strcmp(x->b, y->b);
    if (c == 0)
        c = x->i < y->i ? -1 : x->i > y->i;
    return c;
}

static int cmp_ix_name(const void *key, const void *elem)
{
    return strcmp(key, ((const ix_t *)elem)->a);
}

/* Upstream names sorted; each duplicate reported against the first of its name. */
static ix_t *check_upstreams(loader_t *L, size_t *nix)
{
    const pg_config_t *cfg = L->cfg;
    ix_t *ix = malloc((cfg->nupstreams + 1) * sizeof *ix);
    size_t i, n = 0, first = 0;

    if (ix == NULL) {
        L->oom = true;
        return NULL;
    }
    for (i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].name)
            ix[n++] = (ix_t){cfg->upstreams[i].name, NULL, i};
    qsort(ix, n, sizeof *ix, cmp_ix);
    for (i = 1; i < n; i++) {
        const pg_config_upstream_t *u, *o;
        pg_pos_t p, op;

        if (strcmp(ix[i].a, ix[first].a) != 0) {
            first = i;
            continue;
        }
        u = &cfg->upstreams[ix[i].i];
        o = &cfg->upstreams[ix[first].i];
        p = pg_toml_pos(pg_toml_table_get(L->upx[ix[i].i].tbl, "name"));
        op = pg_toml_pos(pg_toml_table_get(L->upx[ix[first].i].tbl, "name"));
        pg__config_err(L, u->file, p,
                       "upstream.name: duplicate upstream \"%s\" (first defined at %s:%u:%u)",
                       u->name, o->file, op.line, op.col);
    }
    *nix = n;
    return ix;
}

static void resolve_routes(loader_t *L, const ix_t *names, size_t nnames)
{
    pg_config_t *cfg = L->cfg;
    const char **cands = NULL;
    ix_t *rix;
    size_t i, n = 0, first = 0;

    for (i = 0; i < cfg->nroutes; i++) {
        pg_config_route_t *r = &cfg->routes[i];
        const pg_toml_value_t *v = pg_toml_table_get(L->rtx[i].tbl, "upstream");
        const ix_t *hit;
        const char *name, *sug;

        if (v == NULL || pg_toml_type(v) != PG_TOML_STRING)
            continue;
        name = pg_toml_string(v, NULL);
        hit = bsearch(name, names, nnames, sizeof *names, cmp_ix_name);
        if (hit) {
            while (hit > names && strcmp(hit[-1].a, name) == 0)
                hit--;
            r->upstream = hit->i;
            continue;
        }
        if (L->names_incomplete)
            continue;
        if (cands == NULL) {
            size_t k;

            if ((cands = malloc((nnames + 1) * sizeof *cands)) == NULL) {
                L->oom = true;
                return;
            }
            for (k = 0; k < nnames; k++)
                cands[k] = names[k].a;
        }
        if ((sug = pg__config_closest(name, cands, nnames)) != NULL)
            pg__config_err(L, r->file, pg_toml_pos(v),
                           "route.upstream: no upstream named \"%s\" (did you mean \"%s\"?)", name,
                           sug);
        else
            pg__config_err(L, r->file, pg_toml_pos(v), "route.upstream: no upstream named \"%s\"",
                           name);
    }
    free(cands);

    /* no two routes with the same (host, prefix) */
    if ((rix = malloc((cfg->nroutes + 1) * sizeof *rix)) == NULL) {
        L->oom = true;
        return;
    }
    for (i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].prefix)
            rix[n++] =
                (ix_t){cfg->routes[i].host ? cfg->routes[i].host : "", cfg->routes[i].prefix, i};
    qsort(rix, n, sizeof *rix, cmp_ix);
    for (i = 1; i < n; i++) {
        const pg_config_route_t *r, *o;

        if (strcmp(rix[i].a, rix[first].a) != 0 || strcmp(rix[i].b, rix[first].b) != 0) {
            first = i;
            continue;
        }
        r = &cfg->routes[rix[i].i];
        o = &cfg->routes[rix[first].i];
        pg__config_err(L, r->file, r->pos,
                       "route: another route has the same host and prefix%s%s%s \"%s\" (first "
                       "defined at %s:%u:%u)",
                       r->host ? " (host \"" : "", r->host ? r->host : "", r->host ? "\")" : "",
                       r->prefix, o->file, o->pos.line, o->pos.col);
    }
    free(rix);
}

/* Errors in reading order: by file (load order), then line and column; the order they were
 * found in breaks ties (qsort is not stable, so the key carries it). */
typedef struct err_key {
    size_t rank, seq;
    pg_pos_t pos;
} err_key_t;

static int cmp_err_keys(const void *pa, const void *pb)
{
    const err_key_t *a = pa, *b = pb;

    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->pos.line != b->pos.line)
        return a->pos.line < b->pos.line ? -1 : 1;
    if (a->pos.col != b->pos.col)
        return a->pos.col < b->pos.col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void sort_errors(loader_t *L)
{
    pg_error_t *items = L->errs->items + L->first_err, *sorted;
    size_t n = L->errs->n - L->first_err, i, j;
    err_key_t *keys;

    if (n < 2)
        return;
    keys = malloc(n * sizeof *keys);
    sorted = malloc(n * sizeof *sorted);
    if (keys == NULL || sorted == NULL)
        goto done; /* unsorted is still every error */
    for (i = 0; i < n; i++) {
        keys[i].rank = SIZE_MAX;
        for (j = 0; j < L->nsrcs; j++) {
            if (strcmp(L->srcs[j].path, items[i].file) == 0) {
                keys[i].rank = j;
                break;
            }
        }
        keys[i].seq = i;
        keys[i].pos = items[i].pos;
    }
    qsort(keys, n, sizeof *keys, cmp_err_keys);
    for (i = 0; i < n; i++)
        sorted[i] = items[keys[i].seq];
    memcpy(items, sorted, n * sizeof *items);
done:
    free(keys);
    free(sorted);
}

/* ---- load / free ------------------------------------------------------------------------- */

static int set_defaults(pg_config_t *cfg)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1/128"};
    const char *why;
    size_t i;

    if (pg_addr_parse("127.0.0.1:8080", &cfg->server.listen, &why) < 0)
        return -EINVAL;
    cfg->server.workers = 1;
    cfg->server.max_connections = 10000;
    cfg->server.max_header_bytes = 32768;
    cfg->server.max_body_bytes = 1ULL << 30;
    cfg->server.header_timeout_ms = 10000;
    cfg->server.idle_timeout_ms = 60000;
    cfg->server.drain_timeout_ms = 10000;
    cfg->server.access_log_format = PG_LOG_COMBINED;
    cfg->server.add_forwarded = true;
    cfg->server.add_via = true;
    cfg->server.batch_writes = true;
    cfg->server.worker_sched = PG_SCHED_NORMAL;
    cfg->server.event_coalesce_us = 100;
    cfg->pprof.max_seconds = 60;
    cfg->pprof.enabled = true;
    cfg->pprof.max_concurrent = 8;
    if ((cfg->pprof.path = strdup("/debug/pprof")) == NULL ||
        (cfg->pprof.allow = calloc(PG__NKEYS(loopback), sizeof *cfg->pprof.allow)) == NULL)
        return -ENOMEM;
    for (i = 0; i < PG__NKEYS(loopback); i++)
        if (pg_cidr_parse(loopback[i], &cfg->pprof.allow[i], &why) < 0)
            return -EINVAL;
    cfg->pprof.nallow = PG__NKEYS(loopback);
    return 0;
}

int pg_config_load(const char *path, pg_config_t **out, pg_errlist_t *errs)
{
    ix_t *names;
    size_t nnames = 0;
    struct stat st;
    loader_t L;
    pg_config_t *cfg;
    char *real;
    size_t i;
    int rc;

    *out = NULL;
    memset(&L, 0, sizeof L);
    L.errs = errs;
    L.first_err = errs->n;
    if ((cfg = calloc(1, sizeof *cfg)) == NULL)
        return -ENOMEM;
    L.cfg = cfg;
    if ((cfg->path = strdup(path)) == NULL || (rc = set_defaults(cfg)) < 0) {
        rc = -ENOMEM;
        goto done;
    }
    /* a FIFO or device would block or never end; say so instead */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        pg__config_err(&L, path, (pg_pos_t){0, 0}, "not a regular file");
        rc = L.oom ? -ENOMEM : -EINVAL;
        goto done;
    }
    real = realpath(path, NULL);
    rc = load_file(&L, path, real);
    free(real);
    if (rc < 0)
        goto done;

    /* [server] and [pprof] first: every upstream starts from the global pprof policy. */
    pg__config_check_top_keys(&L, &L.srcs[0], true);
    parse_top_tables(&L, &L.srcs[0]);
    check_admin_listen(&L);
    process_includes(&L);
    for (i = 1; i < L.nsrcs; i++)
        if (L.srcs[i].root)
            pg__config_check_top_keys(&L, &L.srcs[i], false);
    for (i = 0; i < L.nsrcs; i++)
        if (L.srcs[i].root)
            each_table(&L, &L.srcs[i], "upstream", pg__config_parse_upstream);
    for (i = 0; i < L.nsrcs; i++)
        if (L.srcs[i].root)
            each_table(&L, &L.srcs[i], "route", pg__config_parse_route);
    if (L.nsrcs == 1 || !has_errors(&L)) {
        /* "none at all" is only worth saying when no included file failed to load */
        if (cfg->nupstreams == 0 && !L.upstream_seen)
            pg__config_err(&L, path, (pg_pos_t){1, 1},
                           "upstream: at least one [[upstream]] is required");
        if (cfg->nroutes == 0)
            pg__config_err(&L, path, (pg_pos_t){1, 1}, "route: at least one [[route]] is required");
    }
    names = check_upstreams(&L, &nnames);
    if (names)
        resolve_routes(&L, names, nnames);
    free(names);
    rc = L.oom ? -ENOMEM : has_errors(&L) ? -EINVAL : 0;

done:
    if (L.errs->n > L.first_err)
        sort_errors(&L);
    if (rc == 0 && L.oom)
        rc = -ENOMEM;
    for (i = 0; i < L.nsrcs; i++) {
        pg_toml_free(L.srcs[i].root);
        free(L.srcs[i].dir);
        free(L.srcs[i].real);
    }
    free(L.srcs);
    free(L.upx);
    free(L.rtx);
    if (rc < 0) {
        if (rc == -ENOMEM && !L.oom)
            pg__config_err(&L, path, (pg_pos_t){0, 0}, "out of memory while loading");
        pg_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

void pg_config_free(pg_config_t *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->server.access_log);
    free(cfg->server.metrics_path);
    free(cfg->server.metrics_allow);
    for (i = 0; i < cfg->nupstreams; i++) {
        free(cfg->upstreams[i].name);
        pg__config_pprof_destroy(&cfg->upstreams[i].pprof);
    }
    free(cfg->upstreams);
    for (i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].prefix);
        free(cfg->routes[i].host);
    }
    free(cfg->routes);
    pg__config_pprof_destroy(&cfg->pprof);
    for (i = 0; i < cfg->nfiles; i++)
        free(cfg->files[i]);
    free(cfg->files);
    free(cfg);
}

/* ---- describe --------------------------------------------------------------------------- */

static const char *addr_str(const pg_addr_t *a, char *buf, size_t size)
{
    if (a->kind == PG_ADDR_UNIX)
        snprintf(buf, size, "unix:%s", ((const struct sockaddr_un *)&a->sa)->sun_path);
    else
        snprintf(buf, size, "%s", a->text);
    return buf;
}

static void describe_pprof(const pg_config_pprof_t *pp, FILE *out)
{
    char buf[64];
    size_t i;

    if (!pp->enabled) {
        fprintf(out, "off");
        return;
    }
    fprintf(out, "allow");
    if (pp->nallow == 0)
        fprintf(out, " nobody");
    for (i = 0; i < pp->nallow; i++) {
        const pg_cidr_t *c = &pp->allow[i];

        fprintf(out, " %s/%d", inet_ntop(c->family, c->addr, buf, sizeof buf) ? buf : "?",
                c->prefix);
    }
    fprintf(out, ", max_seconds %u, max_concurrent %u%s", pp->max_seconds, pp->max_concurrent,
            pp->token ? ", bearer token required" : "");
}

void pg_config_describe(const pg_config_t *cfg, FILE *out)
{
    const pg_config_server_t *srv = &cfg->server;
    char b1[160], b2[160], d1[32], d2[32], d3[32];
    size_t i;

    fprintf(out, "config %s", cfg->path);
    if (cfg->nfiles > 1) {
        fprintf(out, " (including");
        for (i = 1; i < cfg->nfiles; i++)
            fprintf(out, " %s", cfg->files[i]);
        fprintf(out, ")");
    }
    fprintf(out, "\nlisten %s (%d worker%s)\n", addr_str(&srv->listen, b1, sizeof b1), srv->workers,
            srv->workers == 1 ? "" : "s");
    fprintf(out, "limits max_connections %u, max_header_bytes %u, max_body_bytes ",
            srv->max_connections, srv->max_header_bytes);
    if (srv->max_body_bytes)
        fprintf(out, "%llu", (unsigned long long)srv->max_body_bytes);
    else
        fprintf(out, "unlimited");
    fprintf(out, "; timeouts header %s, idle %s, drain %s\n",
            pg__config_fmt_ms(srv->header_timeout_ms, d1, sizeof d1),
            pg__config_fmt_ms(srv->idle_timeout_ms, d2, sizeof d2),
            pg__config_fmt_ms(srv->drain_timeout_ms, d3, sizeof d3));
    fprintf(out, "access_log %s%s%s, metrics %s, add X-Forwarded-* %s, Via %s\n",
            srv->access_log ? srv->access_log : "off", srv->access_log ? " format " : "",
            srv->access_log ? (srv->access_log_format == PG_LOG_JSON     ? "json"
                               : srv->access_log_format == PG_LOG_COMMON ? "common"
                                                                         : "combined")
                            : "",
            srv->metrics_path ? srv->metrics_path : "off", srv->add_forwarded ? "yes" : "no",
            srv->add_via ? "yes" : "no");
    if (srv->event_coalesce_us)
        fprintf(out, "event_coalesce_us %u (while upstream responses take %llu us or more)\n",
                srv->event_coalesce_us,
                (unsigned long long)pg_metrics_slow_bound_us((uint64_t)srv->event_coalesce_us *
                                                             PG_COALESCE_RATIO));
    else
        fprintf(out, "event_coalesce_us off\n");
    fprintf(out, "worker_sched %s\n", srv->worker_sched == PG_SCHED_BATCH ? "batch" : "normal");
    fprintf(out, "batch_writes %s\n", srv->batch_writes ? "yes" : "no");
    if (srv->metrics_path && srv->has_metrics_allow) {
        char buf[64];

        fprintf(out, "metrics_allow");
        if (srv->nmetrics_allow == 0)
            fprintf(out, " nobody");
        for (i = 0; i < srv->nmetrics_allow; i++) {
            const pg_cidr_t *c = &srv->metrics_allow[i];

            fprintf(out, " %s/%d", inet_ntop(c->family, c->addr, buf, sizeof buf) ? buf : "?",
                    c->prefix);
        }
        fprintf(out, "\n");
    }
    for (i = 0; i < cfg->nupstreams; i++) {
        const pg_config_upstream_t *u = &cfg->upstreams[i];

        fprintf(out, "upstream %s %s", u->name, addr_str(&u->address, b1, sizeof b1));
        if (u->has_agent)
            fprintf(out, " (agent %s)", addr_str(&u->agent, b2, sizeof b2));
        else
            fprintf(out, " (no agent)");
        fprintf(out, ": connect_timeout %s, timeout %s, pool %u idle %s; pprof ",
                pg__config_fmt_ms(u->connect_timeout_ms, d1, sizeof d1),
                pg__config_fmt_ms(u->timeout_ms, d2, sizeof d2), u->pool_size,
                pg__config_fmt_ms(u->pool_idle_timeout_ms, d3, sizeof d3));
        describe_pprof(&u->pprof, out);
        fprintf(out, "   [%s:%u]\n", u->file, u->pos.line);
    }
    for (i = 0; i < cfg->nroutes; i++) {
        const pg_config_route_t *r = &cfg->routes[i];
        const pg_config_upstream_t *u = &cfg->upstreams[r->upstream];

        fprintf(out, "route %s%s%s -> upstream %s %s", r->host ? r->host : "", r->host ? " " : "",
                r->prefix, u->name, addr_str(&u->address, b1, sizeof b1));
        if (u->has_agent) {
            size_t plen = strlen(r->prefix);

            while (plen && r->prefix[plen - 1] == '/')
                plen--;
            fprintf(out, " (agent %s, profiles at %.*s%s)", addr_str(&u->agent, b2, sizeof b2),
                    (int)plen, r->prefix, cfg->pprof.path);
        }
        fprintf(out, "   [%s:%u]\n", r->file, r->pos.line);
    }
    fprintf(out, "pprof path %s", cfg->pprof.path);
    if (cfg->pprof.has_admin_listen)
        fprintf(out, " on admin_listen %s only", addr_str(&cfg->pprof.admin_listen, b1, sizeof b1));
    fprintf(out, ", ");
    describe_pprof(&cfg->pprof, out);
    fprintf(out, "\n");
}
