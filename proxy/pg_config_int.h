/* pg_config_int: what the two halves of pg_config share — pg_config.c (files, includes, rules
 * across entries, load/free, describe) and pg_config_schema.c (the keys of each table, their
 * types, ranges and messages). Private to them; nothing else includes this.
 * Owns: a loader lives for one pg_config_load() call and owns the parsed trees; entries point
 *   at file names owned by the config. Threads: one load, one thread. Errors: each mistake is
 *   appended to the loader's error list (pg__config_err); functions go on after one. */
#ifndef PG_CONFIG_INT_H
#define PG_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_config.h"
#include "pg_toml.h"

typedef struct src {
    const char *path; /* as given, or as the glob produced it: what errors show (owned by
                         cfg->files, so entries can point at it after the load) */
    char *dir;        /* directory that relative paths in it are relative to; "" = cwd */
    char *real;       /* realpath, to load each file once */
    pg_toml_value_t *root;
} src_t;

/* What resolution and duplicate checks need beyond pg_config_*_t, parallel to them. */
typedef struct entry_extra {
    const src_t *src;
    const pg_toml_value_t *tbl;
} entry_extra_t;

typedef struct loader {
    pg_config_t *cfg;
    pg_errlist_t *errs;
    size_t first_err; /* errs->n when the load began */
    bool oom;
    bool upstream_seen;    /* some file has an "upstream" key */
    bool names_incomplete; /* some upstream's name is unknown: "no upstream named" would guess */
    src_t *srcs;
    size_t nsrcs, capsrcs;
    entry_extra_t *upx;
    size_t capup;
    entry_extra_t *rtx;
    size_t caprt;
} loader_t;

/* One table being checked: which file, and the dotted name errors use ("upstream"). */
typedef struct sect {
    loader_t *L;
    const src_t *src;
    const char *name;
    const pg_toml_value_t *t;
} sect_t;

#define PG__NKEYS(a) (sizeof(a) / sizeof(a[0]))

/* Append "FILE:LINE:COL: message" to the load's errors (sets L->oom if the list cannot grow). */
void pg__config_err(loader_t *L, const char *file, pg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The candidate closest to word, when close enough to be what was meant; else NULL. */
const char *pg__config_closest(const char *word, const char *const *cands, size_t n);
/* "a string", "an integer", ... for "expected X, got Y". */
const char *pg__config_a_type(const pg_toml_value_t *v);
/* ms as the shortest duration string that says it exactly ("90s", "2m", "1500ms"). */
const char *pg__config_fmt_ms(uint64_t ms, char *buf, size_t size);
/* Make room for need items of size bytes in *arr (capacity *cap); -ENOMEM. */
int pg__config_grow(void **arr, size_t *cap, size_t need, size_t size);

/* The tables of the schema; each checks its keys and fills the config, adding every error. */
void pg__config_check_top_keys(loader_t *L, const src_t *src, bool top);
void pg__config_parse_server(const sect_t *s, pg_config_server_t *srv);
void pg__config_parse_pprof(const sect_t *s, pg_config_pprof_t *pp, bool global);
void pg__config_parse_upstream(loader_t *L, const src_t *src, const pg_toml_value_t *t);
void pg__config_parse_route(loader_t *L, const src_t *src, const pg_toml_value_t *t);
void pg__config_pprof_destroy(pg_config_pprof_t *pp);

#endif
