/* pa_symbolize: a snapshot of the process's mappings (/proc/self/maps, with GNU build ids)
 * and symbol lookup for addresses in them (ELF .symtab/.dynsym read from the files on disk,
 * dladdr as fallback), so that profiles carry function names and `go tool pprof` needs no
 * binary. C++ names are demangled when a demangler is available.
 * Owns: a pa_symtab_t owns every string it returns; they stay valid until pa_symtab_free().
 * Threads: one thread at a time. Not async-signal-safe (allocates, opens files).
 * Errors: negative errno. */
#ifndef PA_SYMBOLIZE_H
#define PA_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pa_symtab pa_symtab_t;

typedef struct pa_mapping {
    uintptr_t start, limit;  /* [start, limit) in memory */
    uint64_t offset;         /* file offset of start */
    const char *path;        /* file name as in /proc/self/maps; "" for anonymous */
    const char *build_id;    /* lowercase hex GNU build id, "" if none */
    int is_main;             /* the main executable */
} pa_mapping_t;

typedef struct pa_sym {
    const char *name;        /* function name (demangled if C++); NULL when unknown */
    uintptr_t start;         /* function start address, 0 when unknown */
    const pa_mapping_t *mapping; /* NULL when the address is in no executable mapping */
} pa_sym_t;

/* Snapshot the current mappings (executable ones; the main executable first). Symbol tables
 * are read lazily, on the first lookup in each file. */
int pa_symtab_new(pa_symtab_t **out);
void pa_symtab_free(pa_symtab_t *s);

size_t pa_symtab_mapping_count(const pa_symtab_t *s);
const pa_mapping_t *pa_symtab_mapping_at(const pa_symtab_t *s, size_t i);

/* Look addr up. Returns 0 and fills *out (out->name may still be NULL if the address is in a
 * mapping with no symbol covering it), or -ENOENT if the address is in no known mapping. */
int pa_symtab_lookup(pa_symtab_t *s, uintptr_t addr, pa_sym_t *out);

/* Internals for sibling files (pa_pprof). */

/* Index i such that pa_symtab_mapping_at(s, i) == m; SIZE_MAX if m is not one of s's. */
size_t pa__symtab_mapping_index(const pa_symtab_t *s, const pa_mapping_t *m);
/* pa_symtab_lookup, and also the name as the object file spells it (C++: mangled) in
 * *system_name (NULL when out->name is NULL); same lifetime as out->name. */
int pa__symtab_lookup_raw(pa_symtab_t *s, uintptr_t addr, pa_sym_t *out,
                          const char **system_name);

#endif
