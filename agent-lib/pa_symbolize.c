/* pa_symbolize: mappings of the process and symbol lookup, from the ELF files on disk.
 *
 * Snapshot (pa_symtab_new): /proc/self/maps is read once; every executable mapping is kept
 * (file-backed, [vdso], and anonymous ones such as JIT code, which get no symbols). The
 * main executable is the file whose mapping holds the program headers the kernel passed in
 * AT_PHDR (right even when the program was started as `ld.so ./prog`), else the target of
 * /proc/self/exe; its mappings come first, the others follow in address order. Each
 * distinct file is mmap'd once, for its GNU build id and the load bias of each mapping.
 *
 * Load bias: for a mapping [start, limit) of file offset off, the PT_LOAD segment that holds
 * off gives bias = start - (p_vaddr + off - p_offset) (see pa_elf_load_bias), so a symbol's
 * address in memory is st_value + bias: 0 for ET_EXEC, the load address for PIE executables
 * and shared libraries. This uses only the maps line and the file, so it also holds for
 * files the dynamic loader does not know about.
 *
 * Lookup: symbol tables are read on the first lookup in a file (.symtab, else .dynsym),
 * then binary-searched. When a file cannot be read (deleted, no permission) or has no
 * symbol table, dladdr() is asked instead; its answer is copied, since the object may be
 * unloaded before the snapshot is freed.
 *
 * Demangling: __cxa_demangle is looked up with dlsym(RTLD_DEFAULT) at each snapshot, so C
 * hosts need no libstdc++ and C++ hosts get readable names (without it the name stays the
 * mangled one, which pprof demangles itself when name equals system_name). Symbol versions
 * ("@@GLIBC_2.34") are cut off the shown name. Shown names are cached per symbol. */
#include "pa_symbolize.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pa_agent.h"
#include "pa_elf.h"

#define DELETED " (deleted)"
#define DEBUG_DIR "/usr/lib/debug/.build-id"
#define BUILD_ID_MAX 128 /* hex digits; GNU ids are 40 (SHA-1), anything up to 64 bytes fits */

typedef char *(*demangle_fn)(const char *mangled, char *buf, size_t *len, int *status);

typedef struct file {
    char *path;
    unsigned long inode; /* of the mapped file: two files may have had one name */
    char build_id[BUILD_ID_MAX + 1];
    pa_elf_t elf;
    pa_elf_t dbg; /* separate debug file, when it supplied the symbols */
    int dbg_ok;
    int opened;         /* open_file ran */
    int elf_ok;         /* elf holds the image */
    int syms_loaded;    /* symbol table read (or tried) */
    pa_elf_sym_t *syms; /* sorted, names inside elf */
    size_t nsyms;
    char **demangled; /* per symbol: NULL untried, == syms[i].name when not demangled */
} file_t;

typedef struct copied {
    struct copied *next;
    char name[];
} copied_t;

struct pa_symtab {
    pa_mapping_t *maps; /* main executable first */
    size_t nmaps;
    int *map_file;   /* per mapping: index in files, -1 for anonymous */
    uintptr_t *bias; /* per mapping */
    int *bias_ok;
    size_t *by_addr; /* mapping indexes sorted by start, for lookup */
    file_t *files;
    size_t nfiles;
    demangle_fn demangle;
    copied_t *copies; /* names copied from dladdr */
};

typedef struct raw_map {
    uintptr_t start, limit;
    uint64_t offset;
    unsigned long inode;
    char *path;
} raw_map_t;

static int find_or_add_file(pa_symtab_t *s, const char *path, unsigned long inode)
{
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].inode == inode && strcmp(s->files[i].path, path) == 0)
            return (int)i;
    }
    file_t *f = &s->files[s->nfiles];
    memset(f, 0, sizeof(*f));
    f->inode = inode;
    f->path = strdup(path);
    if (f->path == NULL)
        return -ENOMEM;
    return (int)s->nfiles++;
}

/* Open the file's image and read its build id; failures leave it without symbols.
 * [start, limit) and inode are those of the mapping that made us open it. */
static void open_file(file_t *f, uintptr_t start, uintptr_t limit)
{
    unsigned long inode = f->inode;
    struct stat st;
    char alt[64];
    int rc;

    f->opened = 1;
    if (strcmp(f->path, "[vdso]") == 0) {
        /* The vDSO is an ELF image in memory, headers included, at AT_SYSINFO_EHDR; its
         * mapping bounds the image (pa_elf bounds-checks every read against them). */
        uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
        if (base == 0 || base != start)
            return;
        rc = pa_elf_from_memory((const void *)base, limit - start, &f->elf);
    } else if (f->path[0] == '/') {
        /* A file replaced on disk since it was mapped (a package upgrade) would give wrong
         * symbols and build id: then read the mapped inode itself through map_files (which
         * may be refused without privileges: no symbols beyond dladdr's, then). */
        if (inode == 0 || (stat(f->path, &st) == 0 && st.st_ino == inode)) {
            rc = pa_elf_open(f->path, &f->elf);
        } else {
            snprintf(alt, sizeof(alt), "/proc/self/map_files/%lx-%lx", (unsigned long)start,
                     (unsigned long)limit);
            rc = pa_elf_open(alt, &f->elf);
        }
    } else {
        return; /* other [pseudo] mappings */
    }
    if (rc != 0)
        return;
    f->elf_ok = 1;
    if (pa_elf_build_id(&f->elf, f->build_id, sizeof(f->build_id)) != 0)
        f->build_id[0] = '\0';
}

/* Read f's symbols: its own .symtab; else that of its separate debug file, found by build
 * id as gdb finds it (/usr/lib/debug/.build-id/ab/cdef....debug, e.g. from libc6-dbg), which
 * names the static functions a stripped library's .dynsym lacks; else its .dynsym. A debug
 * file has the same addresses as its object, so the mapping's bias holds. */
static void load_symbols(file_t *f)
{
    char path[sizeof(DEBUG_DIR) + BUILD_ID_MAX + 16];

    f->syms_loaded = 1;
    if (!pa_elf_has_symtab(&f->elf) && strlen(f->build_id) > 2) {
        snprintf(path, sizeof(path), "%s/%.2s/%s.debug", DEBUG_DIR, f->build_id, f->build_id + 2);
        if (pa_elf_open(path, &f->dbg) == 0) {
            if (pa_elf_has_symtab(&f->dbg) && pa_elf_symbols(&f->dbg, &f->syms, &f->nsyms) == 0 &&
                f->nsyms > 0) {
                f->dbg_ok = 1;
                return;
            }
            free(f->syms);
            f->syms = NULL;
            f->nsyms = 0;
            pa_elf_close(&f->dbg);
        }
    }
    if (pa_elf_symbols(&f->elf, &f->syms, &f->nsyms) != 0) {
        f->syms = NULL;
        f->nsyms = 0;
    }
}

static int cmp_start(const void *a, const void *b)
{
    const raw_map_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Read /proc/self/maps: executable mappings into *raw, and the path of the mapping that
 * holds AT_PHDR into main_path (may stay empty). */
static int read_maps(raw_map_t **raw, size_t *nraw, char *main_path, size_t main_cap)
{
    uintptr_t at_phdr = (uintptr_t)getauxval(AT_PHDR);
    FILE *fp = fopen("/proc/self/maps", "re");
    char *line = NULL;
    size_t linecap = 0, n = 0, cap = 0;
    raw_map_t *v = NULL;
    int rc = 0;

    *raw = NULL;
    *nraw = 0;
    main_path[0] = '\0';
    if (fp == NULL)
        return -errno;
    while (getline(&line, &linecap, fp) > 0) {
        unsigned long start, limit, inode = 0;
        unsigned long long off;
        char perms[8];
        int pos = 0;
        char *path, *end;

        if (sscanf(line, "%lx-%lx %7s %llx %*s %lu %n", &start, &limit, perms, &off, &inode, &pos) <
                5 ||
            pos == 0)
            continue;
        path = line + pos;
        end = path + strlen(path);
        while (end > path && (end[-1] == '\n' || end[-1] == ' '))
            *--end = '\0';
        /* " (deleted)" marks a file unlinked since it was mapped; not part of its name
         * (pprof's own maps parser drops it too). open_file finds the mapped inode. */
        if ((size_t)(end - path) > sizeof(DELETED) - 1 &&
            strcmp(end - (sizeof(DELETED) - 1), DELETED) == 0)
            end[-(long)(sizeof(DELETED) - 1)] = '\0';
        if (at_phdr >= start && at_phdr < limit && path[0] == '/')
            snprintf(main_path, main_cap, "%s", path);
        if (strlen(perms) < 3 || perms[2] != 'x')
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            raw_map_t *nv = realloc(v, ncap * sizeof(*nv));
            if (nv == NULL) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n].start = start;
        v[n].limit = limit;
        v[n].offset = off;
        v[n].inode = inode;
        v[n].path = strdup(path);
        if (v[n].path == NULL) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    free(line);
    fclose(fp);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(v[i].path);
        free(v);
        return rc;
    }
    qsort(v, n, sizeof(*v), cmp_start);
    *raw = v;
    *nraw = n;
    return 0;
}

static int cmp_by_addr_ctx_start(const pa_symtab_t *s, size_t a, size_t b)
{
    return s->maps[a].start < s->maps[b].start ? -1 : s->maps[a].start > s->maps[b].start;
}

int pa_symtab_new(pa_symtab_t **out)
{
    pa_symtab_t *s;
    raw_map_t *raw = NULL;
    size_t nraw = 0, k = 0;
    char main_path[PATH_MAX];
    int rc;

    *out = NULL;
    rc = read_maps(&raw, &nraw, main_path, sizeof(main_path));
    if (rc != 0)
        return rc;
    if (main_path[0] == '\0') {
        ssize_t len = readlink("/proc/self/exe", main_path, sizeof(main_path) - 1);
        main_path[len > 0 ? len : 0] = '\0';
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    s->maps = calloc(nraw ? nraw : 1, sizeof(*s->maps));
    s->map_file = calloc(nraw ? nraw : 1, sizeof(*s->map_file));
    s->bias = calloc(nraw ? nraw : 1, sizeof(*s->bias));
    s->bias_ok = calloc(nraw ? nraw : 1, sizeof(*s->bias_ok));
    s->by_addr = calloc(nraw ? nraw : 1, sizeof(*s->by_addr));
    s->files = calloc(nraw ? nraw : 1, sizeof(*s->files));
    if (!s->maps || !s->map_file || !s->bias || !s->bias_ok || !s->by_addr || !s->files) {
        rc = -ENOMEM;
        goto fail;
    }
    s->demangle = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");

    /* two passes over the address-sorted list: main executable first, then the rest */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nraw; i++) {
            int is_main = main_path[0] != '\0' && strcmp(raw[i].path, main_path) == 0;
            pa_mapping_t *m;
            if (is_main != (pass == 0))
                continue;
            pa_agent_fork_point(); /* between objects: /proc/self/maps is closed by now */
            m = &s->maps[k];
            m->start = raw[i].start;
            m->limit = raw[i].limit;
            m->offset = raw[i].offset;
            m->is_main = is_main;
            m->path = "";
            m->build_id = "";
            s->map_file[k] = -1;
            if (raw[i].path[0] != '\0') {
                int fi = find_or_add_file(s, raw[i].path, raw[i].inode);
                file_t *f;
                if (fi < 0) {
                    rc = fi;
                    goto fail;
                }
                f = &s->files[fi];
                if (!f->opened)
                    open_file(f, m->start, m->limit);
                s->map_file[k] = fi;
                m->path = f->path;
                m->build_id = f->build_id;
                if (f->elf_ok && pa_elf_load_bias(&f->elf, m->offset, m->start, &s->bias[k]) == 0)
                    s->bias_ok[k] = 1;
            }
            k++;
        }
    }
    s->nmaps = k;
    /* insertion sort: few mappings, and mostly sorted already */
    for (size_t i = 0; i < k; i++) {
        size_t j = i;
        s->by_addr[i] = i;
        while (j > 0 && cmp_by_addr_ctx_start(s, s->by_addr[j - 1], s->by_addr[j]) > 0) {
            size_t t = s->by_addr[j - 1];
            s->by_addr[j - 1] = s->by_addr[j];
            s->by_addr[j] = t;
            j--;
        }
    }
    for (size_t i = 0; i < nraw; i++)
        free(raw[i].path);
    free(raw);
    *out = s;
    return 0;
fail:
    for (size_t i = 0; i < nraw; i++)
        free(raw[i].path);
    free(raw);
    pa_symtab_free(s);
    return rc;
}

void pa_symtab_free(pa_symtab_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nfiles; i++) {
        file_t *f = &s->files[i];
        if (f->demangled != NULL) {
            for (size_t j = 0; j < f->nsyms; j++) {
                if (f->demangled[j] != f->syms[j].name)
                    free(f->demangled[j]);
            }
            free(f->demangled);
        }
        free(f->syms);
        if (f->elf_ok)
            pa_elf_close(&f->elf);
        if (f->dbg_ok)
            pa_elf_close(&f->dbg);
        free(f->path);
    }
    while (s->copies != NULL) {
        copied_t *c = s->copies;
        s->copies = c->next;
        free(c);
    }
    free(s->files);
    free(s->maps);
    free(s->map_file);
    free(s->bias);
    free(s->bias_ok);
    free(s->by_addr);
    free(s);
}

size_t pa_symtab_mapping_count(const pa_symtab_t *s)
{
    return s->nmaps;
}

const pa_mapping_t *pa_symtab_mapping_at(const pa_symtab_t *s, size_t i)
{
    return i < s->nmaps ? &s->maps[i] : NULL;
}

size_t pa__symtab_mapping_index(const pa_symtab_t *s, const pa_mapping_t *m)
{
    if (m == NULL || m < s->maps || m >= s->maps + s->nmaps)
        return SIZE_MAX;
    return (size_t)(m - s->maps);
}

/* Mapping index holding addr, or -1. */
static long find_mapping(const pa_symtab_t *s, uintptr_t addr)
{
    size_t lo = 0, hi = s->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->maps[s->by_addr[mid]].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    size_t i = s->by_addr[lo - 1];
    return addr < s->maps[i].limit ? (long)i : -1;
}

/* The name to show for symbol i of f, made once: without a symbol version ("name@@GLIBC_2.34"
 * and "name@GLIBC_2.2.5" as a .symtab spells versioned symbols, e.g. libc's debug file: the
 * frame is the function, whichever version was called), and demangled if it is a C++ name.
 * The raw name stays the system name. */
static const char *display_name(pa_symtab_t *s, file_t *f, size_t i)
{
    const char *raw = f->syms[i].name;
    const char *at = strchr(raw, '@');
    int cxx = s->demangle != NULL && raw[0] == '_' && raw[1] == 'Z';
    char *base = NULL;
    int status = -1;
    char *d;

    if (!cxx && (at == NULL || at == raw))
        return raw;
    if (f->demangled == NULL) {
        f->demangled = calloc(f->nsyms, sizeof(*f->demangled));
        if (f->demangled == NULL)
            return raw;
    }
    if (f->demangled[i] != NULL)
        return f->demangled[i];
    if (at != NULL && at != raw)
        base = strndup(raw, (size_t)(at - raw));
    d = cxx ? s->demangle(base ? base : raw, NULL, NULL, &status) : NULL;
    if (status == 0 && d != NULL) {
        f->demangled[i] = d;
        free(base);
    } else {
        free(d);
        f->demangled[i] = base ? base : (char *)raw;
    }
    return f->demangled[i];
}

/* dladdr's answer for addr, copied into s (name, then the raw name); NULL when it knows
 * none. */
static const char *lookup_dladdr(pa_symtab_t *s, uintptr_t addr, uintptr_t *start,
                                 const char **system_name)
{
    Dl_info info;
    const char *raw, *name;
    char *d = NULL;
    int status = -1;
    copied_t *c;
    size_t len, rawlen;

    if (dladdr((void *)addr, &info) == 0 || info.dli_sname == NULL || info.dli_saddr == NULL)
        return NULL;
    raw = name = info.dli_sname;
    if (s->demangle != NULL && name[0] == '_' && name[1] == 'Z') {
        d = s->demangle(name, NULL, NULL, &status);
        if (status == 0 && d != NULL)
            name = d;
    }
    len = strlen(name);
    rawlen = strlen(raw);
    c = malloc(sizeof(*c) + len + 1 + rawlen + 1);
    if (c != NULL) {
        memcpy(c->name, name, len + 1);
        memcpy(c->name + len + 1, raw, rawlen + 1);
        c->next = s->copies;
        s->copies = c;
        *start = (uintptr_t)info.dli_saddr;
        if (system_name != NULL)
            *system_name = c->name + len + 1;
    }
    free(d);
    return c ? c->name : NULL;
}

int pa_symtab_lookup(pa_symtab_t *s, uintptr_t addr, pa_sym_t *out)
{
    return pa__symtab_lookup_raw(s, addr, out, NULL);
}

int pa__symtab_lookup_raw(pa_symtab_t *s, uintptr_t addr, pa_sym_t *out, const char **system_name)
{
    long mi = find_mapping(s, addr);
    file_t *f;
    long si;

    if (system_name != NULL)
        *system_name = NULL;
    out->name = NULL;
    out->start = 0;
    out->mapping = NULL;
    if (mi < 0)
        return -ENOENT;
    out->mapping = &s->maps[mi];
    if (s->map_file[mi] < 0)
        return 0; /* anonymous: JIT code and the like */
    f = &s->files[s->map_file[mi]];
    if (f->elf_ok && !f->syms_loaded)
        load_symbols(f);
    if (f->nsyms == 0 || !s->bias_ok[mi]) {
        out->name = lookup_dladdr(s, addr, &out->start, system_name);
        return 0;
    }
    si = pa_elf_sym_find(f->syms, f->nsyms, (uint64_t)(addr - s->bias[mi]));
    if (si >= 0) {
        out->name = display_name(s, f, (size_t)si);
        if (system_name != NULL)
            *system_name = f->syms[si].name;
        out->start = (uintptr_t)f->syms[si].value + s->bias[mi];
    }
    return 0;
}
