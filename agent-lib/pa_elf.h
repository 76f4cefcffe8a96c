/* pa_elf: read-only access to an ELF image (a file mmap'd from disk, or an image already in
 * memory such as the vDSO): GNU build id, load bias of a mapping, function symbols.
 * Only the native class and byte order (ElfW) are understood; anything else is refused.
 * Every offset read from the image is bounds-checked, so a truncated or hostile file yields
 * an error, never a fault.
 * Owns: the file mapping (pa_elf_close unmaps it). Symbol names returned by pa_elf_symbols
 *   point into the image and stay valid until pa_elf_close.
 * Threads: an image may be read from several threads; no shared state.
 * Not async-signal-safe (mmap, malloc). Errors: negative errno. */
#ifndef PA_ELF_H
#define PA_ELF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pa_elf {
    const uint8_t *base; /* read-only: the image */
    size_t size;         /* read-only */
    int mapped;          /* private: unmap on close */
} pa_elf_t;

typedef struct pa_elf_sym {
    uint64_t value;   /* st_value: virtual address in the file's address space */
    uint64_t size;    /* st_size, 0 when unknown */
    const char *name; /* NUL-terminated, inside the image */
} pa_elf_sym_t;

/* mmap path read-only. -ENOEXEC when it is not a native ELF file. */
int pa_elf_open(const char *path, pa_elf_t *e);
/* Use size bytes at p (e.g. the vDSO); nothing is copied, p must outlive e. */
int pa_elf_from_memory(const void *p, size_t size, pa_elf_t *e);
void pa_elf_close(pa_elf_t *e);

/* Lowercase hex of the NT_GNU_BUILD_ID note (program headers first, then sections) into
 * hex[cap]. -ENOENT when there is none, -ENOSPC when cap is too small. */
int pa_elf_build_id(const pa_elf_t *e, char *hex, size_t cap);

/* Load bias of a mapping [start, ...) of file offset off: the value that, added to a
 * symbol's st_value, gives its address in memory. Found from the PT_LOAD segment holding
 * file offset off (preferring an executable one):
 *   bias = start - (p_vaddr + (off - p_offset))
 * which is 0 for ET_EXEC and the load address for PIE executables and shared libraries.
 * -ENOENT when no PT_LOAD holds off. */
int pa_elf_load_bias(const pa_elf_t *e, uint64_t off, uintptr_t start, uintptr_t *bias);

/* Function symbols (STT_FUNC, STT_GNU_IFUNC; defined, non-zero address) of .symtab, or of
 * .dynsym when there is no .symtab, sorted by value with one symbol per address (preferring
 * a sized, not underscore-prefixed, global one). *out is malloc'd (free()); *n may be 0. */
int pa_elf_symbols(const pa_elf_t *e, pa_elf_sym_t **out, size_t *n);

/* Whether the image has a full symbol table (.symtab): if not, a separate debug file may
 * have one (see pa_symbolize). */
int pa_elf_has_symtab(const pa_elf_t *e);

/* Index of the symbol covering vaddr in syms (sorted, as pa_elf_symbols returns them):
 * the last symbol at or below vaddr if vaddr is inside its size, or if its size is 0 (then
 * it is the nearest preceding symbol); -1 if none. */
long pa_elf_sym_find(const pa_elf_sym_t *syms, size_t n, uint64_t vaddr);

#endif
