/* pa_pprof: the pprof builder. A stack table plus a symbol snapshot become one Profile
 * message (proto/profile.proto, field names below are that file's), packed by protobuf-c and
 * gzipped by zlib.
 *
 * Locations. One Location per distinct address. Stacks hold the leaf's exact PC in pcs[0]
 * and return addresses above it; a return address points after the call instruction, often
 * at the first instruction of the next line or even of the next function (after a call to a
 * noreturn function). So, as Go's own builder does (runtime/pprof writes frame PCs, which
 * are return address - 1 for callers), Location.address is
 *     pcs[0]       for the leaf,
 *     pcs[i] - 1   for i > 0,
 * and that same address is what gets symbolized. The address is then inside the call
 * instruction, so any later tool (addr2line, pprof's own symbolizer given the binary)
 * lands on the calling line and function, and the profile needs no convention of its own
 * to be read right. Pseudo-PCs (< PA_PC_PSEUDO_MAX) are never adjusted; their Locations
 * have address 0, no mapping, and a function named for the marker.
 *
 * Functions. One Function per distinct (name, mapping); name is the demangled name,
 * system_name the name in the object file (mangled for C++). An address no symbol covers
 * is named for where it is: "libfoo.so+0x1234" (file offset) in a file mapping,
 * "0x7f12..." otherwise, so the user still sees the library.
 * filename names the object the function is in, in brackets: "[/usr/lib/x86_64-linux-gnu/
 * libc.so.6]" (main executable or shared library, the path as its Mapping has it; none
 * outside any file). We have no source files to give, and the library is what a native
 * frame's file tells: `pprof -top -filefunctions` shows "memcpy [/usr/lib/.../libc.so.6]",
 * `-files` sums per object, and name stays the bare symbol, for -focus and for merging
 * profiles (pprof merges Functions on name, system_name, filename and start_line; an object
 * keeps its path between snapshots). Line numbers stay 0, so pprof prints the file alone
 * where it would print file:line (graph.NodeInfo.NameComponents). The brackets are pprof's
 * own mark for "object file, no source" ("[libc.so.6]" when it knows only the object), and
 * they keep `pprof -list`, which opens a Function's filename as source text and prints its
 * first lines when a function has line 0, from dumping the ELF file's bytes: it says it
 * cannot find the file instead.
 *
 * Mappings. One Mapping per executable mapping that a Location uses, in the symbol
 * snapshot's order (main executable first, so it gets id 1) with has_functions set, since
 * every Location carries its function already and pprof must not try to re-symbolize.
 *
 * Memory. Two passes over the table: the first counts frames, which bounds everything
 * (locations <= frames, functions <= locations + markers, strings by those), so each array
 * and hash is allocated once, at its final size; only formatted names of unsymbolized
 * addresses take arena chunks. Hashes are open addressing at load <= 0.5. */
#include "pa_pprof.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "profile.pb-c.h"

#include "pa_agent.h"

/* Fork points (pa_agent.h) between steps: every this many samples or locations, between the
 * phases (count, samples, locations, pack, gzip), between the packed pieces of the message
 * (PACK_EVERY elements of a repeated field each, see pack_profile) and between gzip's steps
 * (GZIP_STEP bytes of input each): a fork waits for one piece, not for the whole encoding. */
#define FORK_POINT_EVERY 128
#define PACK_EVERY 2048
#define GZIP_STEP 65536

typedef Perftools__Profiles__Profile profile_t;
typedef Perftools__Profiles__ValueType value_type_t;
typedef Perftools__Profiles__Sample sample_t;
typedef Perftools__Profiles__Mapping mapping_t;
typedef Perftools__Profiles__Location location_t;
typedef Perftools__Profiles__Line line_t;
typedef Perftools__Profiles__Function function_t;

#define NO_MAPPING SIZE_MAX
#define ARENA_CHUNK 65536

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk_t;

typedef struct strtab {
    char **s;       /* string_table */
    uint64_t *hash; /* per string */
    size_t n, cap;
    uint32_t *buckets; /* index + 1; 0 empty */
    size_t mask;
} strtab_t;

typedef struct func_key {
    int64_t name;
    size_t mapping;
} func_key_t;

typedef struct builder {
    pa_symtab_t *sym;
    size_t nvalues;

    /* pass 1 */
    size_t nsamples, nframes;

    /* pass 2: samples and distinct addresses */
    sample_t *samples;
    sample_t **sample_ptrs;
    uint64_t *loc_ids; /* all samples' location_id, back to back */
    int64_t *values;
    size_t isample, iframe;
    uintptr_t *loc_addr; /* per location (id - 1): the address (pseudo-PC unchanged) */
    size_t nloc;
    uint32_t *loc_buckets; /* location index + 1; 0 empty */
    size_t loc_mask;

    /* locations, functions, mappings */
    location_t *locs;
    location_t **loc_ptrs;
    line_t *lines;
    line_t **line_ptrs;
    size_t *loc_mapping; /* per location: mapping index or NO_MAPPING */
    function_t *funcs;
    function_t **func_ptrs;
    func_key_t *func_keys;
    size_t nfunc;
    uint32_t *func_buckets;
    size_t func_mask;
    uint64_t *mapping_id;     /* per symtab mapping: id in the profile, 0 if unused */
    const char **object_name; /* per symtab mapping: "[path]" for Function.filename, or NULL */
    mapping_t *maps;
    mapping_t **map_ptrs;
    size_t nmaps;

    strtab_t str;
    chunk_t *arena;
} builder_t;

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t hash_word(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int strtab_init(strtab_t *st, size_t cap)
{
    st->cap = cap;
    st->n = 0;
    st->mask = pow2_at_least(2 * cap) - 1;
    st->s = malloc(cap * sizeof(*st->s));
    st->hash = malloc(cap * sizeof(*st->hash));
    st->buckets = calloc(st->mask + 1, sizeof(*st->buckets));
    if (st->s == NULL || st->hash == NULL || st->buckets == NULL)
        return -ENOMEM;
    return 0;
}

static void strtab_destroy(strtab_t *st)
{
    free(st->s);
    free(st->hash);
    free(st->buckets);
}

/* Index of s in the string table, added if new. s must outlive the encoding (it is borrowed
 * from the descriptor, the symbol snapshot or the arena). -1 only if the bound computed
 * up front was wrong, which would be a bug. */
static int64_t intern(strtab_t *st, const char *s)
{
    uint64_t h;
    size_t b;

    if (s == NULL)
        s = "";
    /* FNV's low bits mix poorly (bit 0 is the parity of the bytes' bit 0s), and buckets
     * are chosen by low bits: finalize first. */
    h = hash_word(hash_bytes(s, strlen(s)));
    for (b = (size_t)h & st->mask;; b = (b + 1) & st->mask) {
        uint32_t i = st->buckets[b];
        if (i == 0)
            break;
        if (st->hash[i - 1] == h && strcmp(st->s[i - 1], s) == 0)
            return (int64_t)(i - 1);
    }
    if (st->n == st->cap)
        return -1;
    st->s[st->n] = (char *)s;
    st->hash[st->n] = h;
    st->buckets[b] = (uint32_t)(++st->n);
    return (int64_t)(st->n - 1);
}

/* Add s without looking for it: for names known to be new (see function_id). */
static int64_t append_new(strtab_t *st, const char *s)
{
    if (st->n == st->cap)
        return -1;
    st->s[st->n] = (char *)s;
    st->hash[st->n] = 0;
    return (int64_t)st->n++;
}

/* len bytes that live until the builder is destroyed. */
static char *arena_alloc(builder_t *b, size_t len)
{
    chunk_t *c = b->arena;
    if (c == NULL || c->cap - c->used < len) {
        size_t cap = len > ARENA_CHUNK ? len : ARENA_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = b->arena;
        b->arena = c;
    }
    c->used += len;
    return c->data + c->used - len;
}

static int on_count(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    builder_t *b = arg;
    (void)pcs;
    (void)values;
    b->nsamples++;
    b->nframes += npcs;
    return 0;
}

/* The Location key of frame i: see "Locations" above. */
static uintptr_t frame_address(const uintptr_t *pcs, size_t i)
{
    if (pcs[i] < PA_PC_PSEUDO_MAX || i == 0)
        return pcs[i];
    return pcs[i] - 1;
}

static uint64_t location_id(builder_t *b, uintptr_t addr)
{
    size_t k;
    for (k = (size_t)hash_word(addr) & b->loc_mask;; k = (k + 1) & b->loc_mask) {
        uint32_t i = b->loc_buckets[k];
        if (i == 0)
            break;
        if (b->loc_addr[i - 1] == addr)
            return i;
    }
    b->loc_addr[b->nloc] = addr;
    b->loc_buckets[k] = (uint32_t)(++b->nloc);
    return b->nloc;
}

static int on_sample(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    builder_t *b = arg;
    sample_t *s = &b->samples[b->isample];

    perftools__profiles__sample__init(s);
    s->n_location_id = npcs;
    s->location_id = b->loc_ids + b->iframe;
    for (size_t i = 0; i < npcs; i++)
        s->location_id[i] = location_id(b, frame_address(pcs, i));
    s->n_value = b->nvalues;
    s->value = b->values + b->isample * b->nvalues;
    memcpy(s->value, values, b->nvalues * sizeof(*values));
    b->sample_ptrs[b->isample] = s;
    b->isample++;
    b->iframe += npcs;
    if (b->isample % FORK_POINT_EVERY == 0)
        pa_agent_fork_point();
    return 0;
}

static const char *pseudo_name(uintptr_t pc)
{
    switch (pc) {
    case PA_PC_LOST:
        return "[lost samples]";
    case PA_PC_IN_LOADER:
        return "[in dynamic loader]";
    default:
        return "[unknown]";
    }
}

/* Name for an address no symbol covers: "libname+0xoffset", or "0xaddr". */
static const char *unknown_name(builder_t *b, uintptr_t addr, const pa_mapping_t *m)
{
    char buf[64];
    const char *base = "";
    size_t blen, nlen;
    char *out;
    int n;

    if (m != NULL && m->path[0] != '\0') {
        base = strrchr(m->path, '/');
        base = base ? base + 1 : m->path;
        n = snprintf(buf, sizeof(buf), "+0x%" PRIx64, (uint64_t)(addr - m->start + m->offset));
    } else {
        n = snprintf(buf, sizeof(buf), "0x%" PRIxPTR, addr);
    }
    blen = strlen(base);
    nlen = (size_t)(n > 0 ? n : 0);
    out = arena_alloc(b, blen + nlen + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, base, blen);
    memcpy(out + blen, buf, nlen + 1);
    return out;
}

/* Function.filename for code in symtab mapping mi: "[path]" (see "Functions" above), made
 * once per mapping; NULL for anonymous mappings, or without memory. */
static const char *object_name(builder_t *b, size_t mi, const pa_mapping_t *m)
{
    size_t len;
    char *s;

    if (b->object_name[mi] != NULL || m->path[0] == '\0')
        return b->object_name[mi];
    len = strlen(m->path);
    s = arena_alloc(b, len + 3);
    if (s == NULL)
        return NULL;
    s[0] = '[';
    memcpy(s + 1, m->path, len);
    s[len + 1] = ']';
    s[len + 2] = '\0';
    b->object_name[mi] = s;
    return s;
}

/* Id of the Function (name, mapping), created if new. unique: name is an address's own
 * ("libc.so.6+0x1234", "0x7f..."), made once per distinct address, so it is new and nothing
 * else will be called that: skip both lookups (profiles of code without symbols are made of
 * such names, one per location). */
static uint64_t function_id(builder_t *b, const char *name, const char *system_name,
                            const char *filename, size_t mapping, int unique)
{
    int64_t ni = unique ? append_new(&b->str, name) : intern(&b->str, name);
    func_key_t key = {ni, mapping};
    size_t k = 0;
    function_t *f;

    if (ni < 0)
        return 0;
    for (k = (size_t)hash_word((uint64_t)ni * 0x9e3779b97f4a7c15ULL ^ mapping) & b->func_mask;
         !unique; k = (k + 1) & b->func_mask) {
        uint32_t i = b->func_buckets[k];
        if (i == 0)
            break;
        if (b->func_keys[i - 1].name == key.name && b->func_keys[i - 1].mapping == mapping)
            return i;
    }
    f = &b->funcs[b->nfunc];
    perftools__profiles__function__init(f);
    f->id = b->nfunc + 1;
    f->name = ni;
    /* most names are their own system name (C): skip the second lookup */
    f->system_name = system_name == NULL || system_name == name || strcmp(system_name, name) == 0
                         ? ni
                         : intern(&b->str, system_name);
    if (f->system_name < 0)
        return 0;
    if (filename != NULL && filename[0] != '\0') {
        f->filename = intern(&b->str, filename); /* one per mapping: counted in the bound */
        if (f->filename < 0)
            return 0;
    }
    b->func_keys[b->nfunc] = key;
    b->func_ptrs[b->nfunc] = f;
    b->nfunc++;
    if (!unique)
        b->func_buckets[k] = (uint32_t)b->nfunc;
    return f->id;
}

/* Symbolize every distinct address into its Location, Line and Function. */
static int build_locations(builder_t *b)
{
    size_t nsym_maps = b->sym ? pa_symtab_mapping_count(b->sym) : 0;

    for (size_t i = 0; i < b->nloc; i++) {
        uintptr_t addr = b->loc_addr[i];
        location_t *l = &b->locs[i];
        line_t *ln = &b->lines[i];
        const char *name = NULL, *system_name = NULL;
        int unique = 0;
        size_t mi = NO_MAPPING;
        pa_sym_t sym = {NULL, 0, NULL};

        if (i % FORK_POINT_EVERY == FORK_POINT_EVERY - 1)
            pa_agent_fork_point(); /* a first lookup in an object loads its symbols */
        perftools__profiles__location__init(l);
        perftools__profiles__line__init(ln);
        l->id = i + 1;
        if (addr < PA_PC_PSEUDO_MAX) {
            name = pseudo_name(addr);
        } else {
            l->address = addr;
            if (b->sym != NULL && pa__symtab_lookup_raw(b->sym, addr, &sym, &system_name) == 0)
                mi = pa__symtab_mapping_index(b->sym, sym.mapping);
            if (mi >= nsym_maps)
                mi = NO_MAPPING;
            name = sym.name;
            if (name == NULL) {
                name = unknown_name(b, addr, mi == NO_MAPPING ? NULL : sym.mapping);
                system_name = NULL;
                unique = 1;
                if (name == NULL)
                    return -ENOMEM;
            }
        }
        ln->function_id =
            function_id(b, name, system_name,
                        mi == NO_MAPPING ? NULL : object_name(b, mi, sym.mapping), mi, unique);
        if (ln->function_id == 0)
            return -EOVERFLOW;
        b->loc_mapping[i] = mi;
        if (mi != NO_MAPPING)
            b->mapping_id[mi] = 1; /* used; numbered below */
        b->line_ptrs[i] = ln;
        l->n_line = 1;
        l->line = &b->line_ptrs[i];
        b->loc_ptrs[i] = l;
    }
    return 0;
}

/* Mappings that locations use, numbered in the snapshot's order (main executable first). */
static int build_mappings(builder_t *b)
{
    size_t n = b->sym ? pa_symtab_mapping_count(b->sym) : 0;

    for (size_t i = 0; i < n; i++) {
        const pa_mapping_t *m;
        mapping_t *pm;
        if (b->mapping_id[i] == 0)
            continue;
        m = pa_symtab_mapping_at(b->sym, i);
        pm = &b->maps[b->nmaps];
        perftools__profiles__mapping__init(pm);
        pm->id = ++b->nmaps;
        pm->memory_start = m->start;
        pm->memory_limit = m->limit;
        pm->file_offset = m->offset;
        pm->filename = intern(&b->str, m->path);
        pm->build_id = intern(&b->str, m->build_id);
        pm->has_functions = 1;
        if (pm->filename < 0 || pm->build_id < 0)
            return -EOVERFLOW;
        b->mapping_id[i] = pm->id;
        b->map_ptrs[pm->id - 1] = pm;
    }
    for (size_t i = 0; i < b->nloc; i++) {
        if (b->loc_mapping[i] != NO_MAPPING)
            b->locs[i].mapping_id = b->mapping_id[b->loc_mapping[i]];
    }
    return 0;
}

static void builder_destroy(builder_t *b)
{
    free(b->samples);
    free(b->sample_ptrs);
    free(b->loc_ids);
    free(b->values);
    free(b->loc_addr);
    free(b->loc_buckets);
    free(b->locs);
    free(b->loc_ptrs);
    free(b->lines);
    free(b->line_ptrs);
    free(b->loc_mapping);
    free(b->funcs);
    free(b->func_ptrs);
    free(b->func_keys);
    free(b->func_buckets);
    free(b->mapping_id);
    free(b->object_name);
    free(b->maps);
    free(b->map_ptrs);
    strtab_destroy(&b->str);
    while (b->arena != NULL) {
        chunk_t *c = b->arena;
        b->arena = c->next;
        free(c);
    }
}

/* gzip in GZIP_STEP pieces of input, with a fork point between them (we are inside no zlib
 * call there: its state is plain memory). Level 1, as Go's pprof writer (gzip.BestSpeed):
 * profiles are served while the host runs, and the string table compresses well at any level.
 * 16 + MAX_WBITS: gzip framing. deflateBound holds for any run of Z_NO_FLUSH calls ended by
 * Z_FINISH, so the output buffer is allocated once and every call consumes its whole input. */
static int gzip_buffer(const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    z_stream z;
    uint8_t *buf;
    uLong bound;
    size_t off = 0;
    int zrc;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    bound = deflateBound(&z, (uLong)inlen);
    buf = malloc(bound);
    if (buf == NULL) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_out = buf;
    z.avail_out = (uInt)bound;
    for (;;) {
        size_t n = inlen - off < GZIP_STEP ? inlen - off : GZIP_STEP;
        int last = off + n == inlen;
        z.next_in = (Bytef *)in + off;
        z.avail_in = (uInt)n;
        off += n;
        zrc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
        if (last || zrc != Z_OK || z.avail_in != 0)
            break;
        pa_agent_fork_point();
    }
    deflateEnd(&z);
    if (zrc != Z_STREAM_END) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *outlen = bound - z.avail_out;
    return 0;
}

/* The next run of a repeated field of n elements, from *off: at most PACK_EVERY of them,
 * starting at *at, *len long. 0 when the field is done. */
static int next_run(size_t n, size_t *off, size_t *at, size_t *len)
{
    if (*off >= n)
        return 0;
    *at = *off;
    *len = n - *off < PACK_EVERY ? n - *off : PACK_EVERY;
    *off += *len;
    return 1;
}

/* The next piece of p into q (a Profile with only that piece's fields set); 0 after the last.
 * Pieces follow the field numbers, as protobuf-c packs a whole message, with each repeated
 * field in runs of at most PACK_EVERY elements; zero scalars and empty fields encode to
 * nothing. So the pieces' encodings, end to end, are byte for byte p's own
 * (unit.pa_pprof checks it), and a parser reading them sees one message: repeated fields
 * append. *group and *off: where the walk is, both 0 at the start. */
static int next_piece(const profile_t *p, int *group, size_t *off, profile_t *q)
{
    size_t at, n;

    perftools__profiles__profile__init(q);
    for (;; (*group)++, *off = 0) {
        switch (*group) {
        case 0: /* sample_type = 1 */
            q->n_sample_type = p->n_sample_type;
            q->sample_type = p->sample_type;
            (*group)++;
            return 1;
        case 1: /* sample = 2 */
            if (!next_run(p->n_sample, off, &at, &n))
                continue;
            q->n_sample = n;
            q->sample = p->sample + at;
            return 1;
        case 2: /* mapping = 3: one per object, few */
            q->n_mapping = p->n_mapping;
            q->mapping = p->mapping;
            (*group)++;
            return 1;
        case 3: /* location = 4 */
            if (!next_run(p->n_location, off, &at, &n))
                continue;
            q->n_location = n;
            q->location = p->location + at;
            return 1;
        case 4: /* function = 5 */
            if (!next_run(p->n_function, off, &at, &n))
                continue;
            q->n_function = n;
            q->function = p->function + at;
            return 1;
        case 5: /* string_table = 6 */
            if (!next_run(p->n_string_table, off, &at, &n))
                continue;
            q->n_string_table = n;
            q->string_table = p->string_table + at;
            return 1;
        case 6: /* drop_frames = 7 and every later field: scalars and the comments */
            q->drop_frames = p->drop_frames;
            q->keep_frames = p->keep_frames;
            q->time_nanos = p->time_nanos;
            q->duration_nanos = p->duration_nanos;
            q->period_type = p->period_type;
            q->period = p->period;
            q->n_comment = p->n_comment;
            q->comment = p->comment;
            q->default_sample_type = p->default_sample_type;
            q->doc_url = p->doc_url;
            (*group)++;
            return 1;
        default:
            return 0;
        }
    }
}

/* p packed piece by piece (next_piece) into a buffer that doubles as it fills, with a fork
 * point between pieces. *out is malloc'd. */
static int pack_profile(const profile_t *p, uint8_t **out, size_t *outlen)
{
    profile_t q;
    size_t off = 0, pos = 0, cap = GZIP_STEP;
    int group = 0;
    uint8_t *buf = malloc(cap), *grown;

    if (buf == NULL)
        return -ENOMEM;
    while (next_piece(p, &group, &off, &q)) {
        size_t n = perftools__profiles__profile__get_packed_size(&q);
        if (pos + n > cap) {
            while (pos + n > cap)
                cap *= 2;
            if ((grown = realloc(buf, cap)) == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = grown;
        }
        if (perftools__profiles__profile__pack(&q, buf + pos) != n) {
            free(buf);
            return -EIO;
        }
        pos += n;
        pa_agent_fork_point();
    }
    *out = buf;
    *outlen = pos;
    return 0;
}

int pa_pprof_encode(const pa_pprof_desc_t *d, const pa_stacktab_t *t, pa_symtab_t *sym, int gzip,
                    uint8_t **out, size_t *outlen)
{
    builder_t b;
    profile_t p = PERFTOOLS__PROFILES__PROFILE__INIT;
    value_type_t *st = NULL, **st_ptrs = NULL, period_type = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    int64_t *comments = NULL;
    uint8_t *raw = NULL;
    size_t rawlen, nsym_maps, nstr, nfunc_max;
    int rc = -ENOMEM;

    *out = NULL;
    *outlen = 0;
    if (d == NULL || t == NULL || d->nsample_types != pa_stacktab_nvalues(t) ||
        (d->ncomments > 0 && d->comments == NULL))
        return -EINVAL;
    memset(&b, 0, sizeof(b));
    b.sym = sym;
    b.nvalues = pa_stacktab_nvalues(t);
    nsym_maps = sym ? pa_symtab_mapping_count(sym) : 0;

    pa_stacktab_foreach(t, on_count, &b);
    pa_agent_fork_point();
    if (b.nframes >= UINT32_MAX / 2)
        return -E2BIG;
    nfunc_max = b.nframes + 1;
    /* "", sample types, period type, default type, comments, 3 per mapping (filename,
     * build id, object name), 2 per function */
    nstr = 1 + 2 * d->nsample_types + 2 + 1 + d->ncomments + 3 * nsym_maps + 2 * nfunc_max;
    b.samples = malloc((b.nsamples + 1) * sizeof(*b.samples));
    b.sample_ptrs = malloc((b.nsamples + 1) * sizeof(*b.sample_ptrs));
    b.loc_ids = malloc((b.nframes + 1) * sizeof(*b.loc_ids));
    b.values = malloc((b.nsamples * b.nvalues + 1) * sizeof(*b.values));
    b.loc_addr = malloc((b.nframes + 1) * sizeof(*b.loc_addr));
    b.loc_mask = pow2_at_least(2 * b.nframes) - 1;
    b.loc_buckets = calloc(b.loc_mask + 1, sizeof(*b.loc_buckets));
    b.mapping_id = calloc(nsym_maps + 1, sizeof(*b.mapping_id));
    b.object_name = calloc(nsym_maps + 1, sizeof(*b.object_name));
    b.maps = malloc((nsym_maps + 1) * sizeof(*b.maps));
    b.map_ptrs = malloc((nsym_maps + 1) * sizeof(*b.map_ptrs));
    st = malloc((d->nsample_types + 1) * sizeof(*st));
    st_ptrs = malloc((d->nsample_types + 1) * sizeof(*st_ptrs));
    comments = malloc((d->ncomments + 1) * sizeof(*comments));
    if (strtab_init(&b.str, nstr) != 0 || !b.samples || !b.sample_ptrs || !b.loc_ids || !b.values ||
        !b.loc_addr || !b.loc_buckets || !b.mapping_id || !b.object_name || !b.maps ||
        !b.map_ptrs || !st || !st_ptrs || !comments)
        goto fail;
    intern(&b.str, ""); /* string_table[0] must be "" */

    pa_stacktab_foreach(t, on_sample, &b);
    pa_agent_fork_point();

    /* now the number of distinct addresses is known */
    b.locs = malloc((b.nloc + 1) * sizeof(*b.locs));
    b.loc_ptrs = malloc((b.nloc + 1) * sizeof(*b.loc_ptrs));
    b.lines = malloc((b.nloc + 1) * sizeof(*b.lines));
    b.line_ptrs = malloc((b.nloc + 1) * sizeof(*b.line_ptrs));
    b.loc_mapping = malloc((b.nloc + 1) * sizeof(*b.loc_mapping));
    b.funcs = malloc((b.nloc + 1) * sizeof(*b.funcs));
    b.func_ptrs = malloc((b.nloc + 1) * sizeof(*b.func_ptrs));
    b.func_keys = malloc((b.nloc + 1) * sizeof(*b.func_keys));
    b.func_mask = pow2_at_least(2 * (b.nloc + 1)) - 1;
    b.func_buckets = calloc(b.func_mask + 1, sizeof(*b.func_buckets));
    if (!b.locs || !b.loc_ptrs || !b.lines || !b.line_ptrs || !b.loc_mapping || !b.funcs ||
        !b.func_ptrs || !b.func_keys || !b.func_buckets)
        goto fail;
    rc = build_locations(&b);
    if (rc == 0)
        rc = build_mappings(&b);
    if (rc != 0)
        goto fail;

    for (size_t i = 0; i < d->nsample_types; i++) {
        perftools__profiles__value_type__init(&st[i]);
        st[i].type = intern(&b.str, d->sample_types[i].type);
        st[i].unit = intern(&b.str, d->sample_types[i].unit);
        st_ptrs[i] = &st[i];
    }
    period_type.type = intern(&b.str, d->period_type.type);
    period_type.unit = intern(&b.str, d->period_type.unit);
    for (size_t i = 0; i < d->ncomments; i++)
        comments[i] = intern(&b.str, d->comments[i]);
    if (d->default_sample_type != NULL)
        p.default_sample_type = intern(&b.str, d->default_sample_type);

    p.n_sample_type = d->nsample_types;
    p.sample_type = st_ptrs;
    p.n_sample = b.nsamples;
    p.sample = b.sample_ptrs;
    p.n_mapping = b.nmaps;
    p.mapping = b.map_ptrs;
    p.n_location = b.nloc;
    p.location = b.loc_ptrs;
    p.n_function = b.nfunc;
    p.function = b.func_ptrs;
    p.n_string_table = b.str.n;
    p.string_table = b.str.s;
    p.time_nanos = d->time_nanos;
    p.duration_nanos = d->duration_nanos;
    if (d->period_type.type != NULL || d->period_type.unit != NULL)
        p.period_type = &period_type;
    p.period = d->period;
    p.n_comment = d->ncomments;
    p.comment = comments;

    pa_agent_fork_point();
    rc = pack_profile(&p, &raw, &rawlen);
    if (rc != 0)
        goto fail;
    if (gzip) {
        pa_agent_fork_point();
        rc = gzip_buffer(raw, rawlen, out, outlen);
        pa_agent_fork_point();
        free(raw);
        raw = NULL;
        if (rc != 0)
            goto fail;
    } else {
        *out = raw;
        *outlen = rawlen;
        raw = NULL;
    }
    rc = 0;
fail:
    free(raw);
    free(comments);
    free(st_ptrs);
    free(st);
    builder_destroy(&b);
    pa_agent_fork_point();
    return rc;
}
