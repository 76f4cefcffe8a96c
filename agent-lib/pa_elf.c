/* pa_elf: build id, load bias and function symbols of a native ELF image. */
#include "pa_elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_DATA ELFDATA2LSB
#else
#define NATIVE_DATA ELFDATA2MSB
#endif
#if __SIZEOF_POINTER__ == 8
#define NATIVE_CLASS ELFCLASS64
#define SYM_TYPE(i) ELF64_ST_TYPE(i)
#define SYM_BIND(i) ELF64_ST_BIND(i)
#else
#define NATIVE_CLASS ELFCLASS32
#define SYM_TYPE(i) ELF32_ST_TYPE(i)
#define SYM_BIND(i) ELF32_ST_BIND(i)
#endif

/* Is [off, off + len) inside the image? Written to be overflow-proof. */
static int in_image(const pa_elf_t *e, uint64_t off, uint64_t len)
{
    return off <= e->size && len <= e->size - off;
}

static const ElfW(Ehdr) * ehdr(const pa_elf_t *e)
{
    return (const ElfW(Ehdr) *)e->base;
}

static int check_header(const pa_elf_t *e)
{
    const ElfW(Ehdr) *h = ehdr(e);
    if (e->size < sizeof(*h) || memcmp(h->e_ident, ELFMAG, SELFMAG) != 0 ||
        h->e_ident[EI_CLASS] != NATIVE_CLASS || h->e_ident[EI_DATA] != NATIVE_DATA)
        return -ENOEXEC;
    return 0;
}

int pa_elf_from_memory(const void *p, size_t size, pa_elf_t *e)
{
    e->base = p;
    e->size = size;
    e->mapped = 0;
    return check_header(e);
}

int pa_elf_open(const char *path, pa_elf_t *e)
{
    struct stat st;
    void *p;
    int fd, rc;

    memset(e, 0, sizeof(*e));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(ElfW(Ehdr))) {
        close(fd);
        return -ENOEXEC;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    rc = p == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc != 0)
        return rc;
    e->base = p;
    e->size = (size_t)st.st_size;
    e->mapped = 1;
    rc = check_header(e);
    if (rc != 0)
        pa_elf_close(e);
    return rc;
}

void pa_elf_close(pa_elf_t *e)
{
    if (e->mapped && e->base != NULL)
        munmap((void *)e->base, e->size);
    memset(e, 0, sizeof(*e));
}

/* Program header i, or NULL if out of the image. */
static const ElfW(Phdr) * phdr(const pa_elf_t *e, size_t i)
{
    const ElfW(Ehdr) *h = ehdr(e);
    uint64_t off = (uint64_t)h->e_phoff + (uint64_t)i * sizeof(ElfW(Phdr));
    if (h->e_phentsize != sizeof(ElfW(Phdr)) || !in_image(e, off, sizeof(ElfW(Phdr))))
        return NULL;
    return (const ElfW(Phdr) *)(e->base + off);
}

static const ElfW(Shdr) * shdr(const pa_elf_t *e, size_t i)
{
    const ElfW(Ehdr) *h = ehdr(e);
    uint64_t off = (uint64_t)h->e_shoff + (uint64_t)i * sizeof(ElfW(Shdr));
    if (h->e_shoff == 0 || h->e_shentsize != sizeof(ElfW(Shdr)) ||
        !in_image(e, off, sizeof(ElfW(Shdr))))
        return NULL;
    return (const ElfW(Shdr) *)(e->base + off);
}

/* Walk the notes in [off, off + len) for NT_GNU_BUILD_ID owned by "GNU". */
static int find_build_id(const pa_elf_t *e, uint64_t off, uint64_t len, char *hex, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    uint64_t end;

    if (!in_image(e, off, len))
        return -ENOENT;
    end = off + len;
    while (end - off >= sizeof(ElfW(Nhdr))) {
        const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)(e->base + off);
        uint64_t name_off = off + sizeof(*n);
        uint64_t desc_off = name_off + (((uint64_t)n->n_namesz + 3) & ~(uint64_t)3);
        uint64_t next = desc_off + (((uint64_t)n->n_descsz + 3) & ~(uint64_t)3);
        if (next > end || next <= off)
            break;
        if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
            memcmp(e->base + name_off, "GNU", 4) == 0 && n->n_descsz > 0) {
            const uint8_t *d = e->base + desc_off;
            if (cap < (size_t)n->n_descsz * 2 + 1)
                return -ENOSPC;
            for (size_t i = 0; i < n->n_descsz; i++) {
                hex[2 * i] = digits[d[i] >> 4];
                hex[2 * i + 1] = digits[d[i] & 15];
            }
            hex[2 * (size_t)n->n_descsz] = '\0';
            return 0;
        }
        off = next;
    }
    return -ENOENT;
}

int pa_elf_build_id(const pa_elf_t *e, char *hex, size_t cap)
{
    const ElfW(Ehdr) *h = ehdr(e);
    int rc;

    /* Loaded images (the vDSO) may have no usable sections; notes are in PT_NOTE. */
    for (size_t i = 0; i < h->e_phnum; i++) {
        const ElfW(Phdr) *p = phdr(e, i);
        if (p == NULL)
            break;
        if (p->p_type == PT_NOTE) {
            rc = find_build_id(e, p->p_offset, p->p_filesz, hex, cap);
            if (rc != -ENOENT)
                return rc;
        }
    }
    for (size_t i = 0; i < h->e_shnum; i++) {
        const ElfW(Shdr) *s = shdr(e, i);
        if (s == NULL)
            break;
        if (s->sh_type == SHT_NOTE) {
            rc = find_build_id(e, s->sh_offset, s->sh_size, hex, cap);
            if (rc != -ENOENT)
                return rc;
        }
    }
    return -ENOENT;
}

int pa_elf_load_bias(const pa_elf_t *e, uint64_t off, uintptr_t start, uintptr_t *bias)
{
    const ElfW(Ehdr) *h = ehdr(e);
    const ElfW(Phdr) *best = NULL;

    for (size_t i = 0; i < h->e_phnum; i++) {
        const ElfW(Phdr) *p = phdr(e, i);
        uint64_t align, lo;
        if (p == NULL)
            break;
        if (p->p_type != PT_LOAD)
            continue;
        /* The kernel maps from the page below p_offset; a mapping's offset is that page. */
        align = (uint64_t)sysconf(_SC_PAGESIZE);
        lo = p->p_offset & ~(align - 1);
        if (off < lo || off >= p->p_offset + (p->p_filesz ? p->p_filesz : 1))
            continue;
        if (best == NULL || ((p->p_flags & PF_X) && !(best->p_flags & PF_X)))
            best = p;
    }
    if (best == NULL)
        return -ENOENT;
    /* unsigned arithmetic: off - p_offset may wrap when off is the page below p_offset */
    *bias = start - (uintptr_t)(best->p_vaddr + (off - best->p_offset));
    return 0;
}

typedef struct cand {
    pa_elf_sym_t sym;
    int rank;
} cand_t;

static int cmp_cand(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->sym.value != y->sym.value)
        return x->sym.value < y->sym.value ? -1 : 1;
    /* best first among symbols at one address */
    if (x->rank != y->rank)
        return y->rank - x->rank;
    return strcmp(x->sym.name, y->sym.name);
}

static int rank_of(const ElfW(Sym) * s, const char *name)
{
    /* glibc defines most functions as a strong __name with a weak name alias: the user
     * knows the alias, so the underscore counts for more than the binding. */
    int r = 0;
    if (s->st_size > 0)
        r += 8;
    if (name[0] != '_' || (name[1] == 'Z' && name[2] != '\0'))
        r += 4;
    if (SYM_BIND(s->st_info) == STB_GLOBAL)
        r += 2;
    else if (SYM_BIND(s->st_info) == STB_WEAK)
        r += 1;
    return r;
}

/* Read the symbol table section symsec (its sh_link is the string table). */
static int read_symtab(const pa_elf_t *e, const ElfW(Shdr) * symsec, pa_elf_sym_t **out, size_t *n)
{
    const ElfW(Shdr) *strsec = shdr(e, symsec->sh_link);
    const char *strtab;
    size_t nsyms, nc = 0, nout = 0;
    cand_t *c;
    pa_elf_sym_t *res;

    if (strsec == NULL || symsec->sh_entsize != sizeof(ElfW(Sym)) ||
        !in_image(e, symsec->sh_offset, symsec->sh_size) ||
        !in_image(e, strsec->sh_offset, strsec->sh_size))
        return -ENOEXEC;
    strtab = (const char *)e->base + strsec->sh_offset;
    nsyms = symsec->sh_size / sizeof(ElfW(Sym));
    c = malloc((nsyms ? nsyms : 1) * sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nsyms; i++) {
        const ElfW(Sym) *s = (const ElfW(Sym) *)(e->base + symsec->sh_offset) + i;
        int type = SYM_TYPE(s->st_info);
        const char *name;
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
            s->st_value == 0 || s->st_name == 0 || s->st_name >= strsec->sh_size)
            continue;
        name = strtab + s->st_name;
        if (memchr(name, '\0', strsec->sh_size - s->st_name) == NULL || name[0] == '\0')
            continue;
        c[nc].sym.value = s->st_value;
        c[nc].sym.size = s->st_size;
        c[nc].sym.name = name;
        c[nc].rank = rank_of(s, name);
        nc++;
    }
    qsort(c, nc, sizeof(*c), cmp_cand);
    res = malloc((nc ? nc : 1) * sizeof(*res));
    if (res == NULL) {
        free(c);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nc; i++) {
        if (nout > 0 && res[nout - 1].value == c[i].sym.value)
            continue; /* a worse alias of the previous one */
        res[nout++] = c[i].sym;
    }
    free(c);
    *out = res;
    *n = nout;
    return 0;
}

int pa_elf_symbols(const pa_elf_t *e, pa_elf_sym_t **out, size_t *n)
{
    const ElfW(Ehdr) *h = ehdr(e);
    const ElfW(Shdr) *symtab = NULL, *dynsym = NULL;

    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < h->e_shnum; i++) {
        const ElfW(Shdr) *s = shdr(e, i);
        if (s == NULL)
            break;
        if (s->sh_type == SHT_SYMTAB && symtab == NULL)
            symtab = s;
        else if (s->sh_type == SHT_DYNSYM && dynsym == NULL)
            dynsym = s;
    }
    if (symtab != NULL)
        return read_symtab(e, symtab, out, n);
    if (dynsym != NULL)
        return read_symtab(e, dynsym, out, n);
    return -ENOENT;
}

int pa_elf_has_symtab(const pa_elf_t *e)
{
    const ElfW(Ehdr) *h = ehdr(e);

    for (size_t i = 0; i < h->e_shnum; i++) {
        const ElfW(Shdr) *s = shdr(e, i);
        if (s == NULL)
            break;
        if (s->sh_type == SHT_SYMTAB)
            return 1;
    }
    return 0;
}

long pa_elf_sym_find(const pa_elf_sym_t *syms, size_t n, uint64_t vaddr)
{
    size_t lo = 0, hi = n;

    /* first index with value > vaddr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (syms[mid].value <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    /* The nearest symbol below may be a small one nested in, or sized short of, a bigger
     * function (local labels, cold parts): look a few symbols further back for one whose
     * range covers vaddr before giving up. */
    for (size_t i = lo, tries = 0; i > 0 && tries < 8; i--, tries++) {
        const pa_elf_sym_t *s = &syms[i - 1];
        if (s->size == 0 && tries == 0)
            return (long)(i - 1);
        if (s->size > 0 && vaddr - s->value < s->size)
            return (long)(i - 1);
    }
    return -1;
}
