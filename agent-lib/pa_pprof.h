/* pa_pprof: builds a pprof Profile message (protobuf-c, proto/profile.proto) from a stack
 * table, with mappings, locations and named functions from a pa_symtab_t, and gzips it.
 * Owns: the output buffer is the caller's (free()); inputs are borrowed for the call.
 * Threads: one thread at a time. Not async-signal-safe.
 * Errors: negative errno. */
#ifndef PA_PPROF_H
#define PA_PPROF_H

#include <stddef.h>
#include <stdint.h>

#include "pa_stacktab.h"
#include "pa_symbolize.h"

/* Pseudo-PCs a sampler may put in a stack instead of addresses; pa_pprof gives each a
 * function of that name (no mapping). */
#define PA_PC_LOST ((uintptr_t)1)        /* "[lost samples]": ring was full, as Go does */
#define PA_PC_IN_LOADER ((uintptr_t)2)   /* "[in dynamic loader]": not unwound, dlopen/dlclose */
#define PA_PC_UNWIND_FAIL ((uintptr_t)3) /* "[unknown]": the unwinder gave up */
#define PA_PC_THREAD_CPU ((uintptr_t)4)  /* reserved */
#define PA_PC_PSEUDO_MAX ((uintptr_t)4096) /* values below this are never real addresses */

typedef struct pa_pprof_vt {
    const char *type;
    const char *unit;
} pa_pprof_vt_t;

typedef struct pa_pprof_desc {
    const pa_pprof_vt_t *sample_types; /* one per value in the stack table */
    size_t nsample_types;
    pa_pprof_vt_t period_type;
    int64_t period;
    int64_t time_nanos;                /* wall clock at the start of collection */
    int64_t duration_nanos;
    const char *default_sample_type;   /* NULL: the last sample type, as pprof assumes */
    const char *const *comments;       /* e.g. "dropped 3 stacks: table full" */
    size_t ncomments;
} pa_pprof_desc_t;

/* Encode the profile described by d with the samples of t (values in t's order matching
 * d->sample_types), symbolized with sym. Non-leaf PCs are looked up at pc-1 (they are return
 * addresses). If gzip is non-zero the output is gzip-compressed (what /debug/pprof serves).
 * *out is malloc'd. */
int pa_pprof_encode(const pa_pprof_desc_t *d, const pa_stacktab_t *t, pa_symtab_t *sym,
                    int gzip, uint8_t **out, size_t *outlen);

#endif
