/* pa_stacktab: aggregation of raw stacks (program counters) into stack -> values, off the
 * hot path. A fixed-capacity hash table: memory is bounded at creation, and a stack that does
 * not fit is counted as dropped.
 * Stack convention (every sampler follows it): pcs[0] is the leaf; pcs[0] is the exact PC
 *   where the thread was (signal context) and pcs[1..] are return addresses. Pseudo-PCs below
 *   PA_PC_PSEUDO_MAX are not addresses but markers named by pa_pprof (see pa_pprof.h).
 * Owns: its memory; pcs passed to add are copied.
 * Threads: one thread at a time (the agent thread). Not async-signal-safe.
 * Errors: negative errno. */
#ifndef PA_STACKTAB_H
#define PA_STACKTAB_H

#include <stddef.h>
#include <stdint.h>

#define PA_MAX_FRAMES 64   /* deepest stack kept; deeper stacks are truncated at the root */
#define PA_MAX_VALUES 4    /* most values per sample any profile kind needs */

typedef struct pa_stacktab pa_stacktab_t;

/* nvalues in 1..PA_MAX_VALUES; max_stacks distinct stacks at most (memory is allocated now). */
int pa_stacktab_new(size_t nvalues, size_t max_stacks, pa_stacktab_t **out);
void pa_stacktab_free(pa_stacktab_t *t);
/* Forget every stack (keeps the memory); dropped count back to 0. */
void pa_stacktab_reset(pa_stacktab_t *t);

/* Add values[0..nvalues) to the entry for this stack (created if new). npcs is clamped to
 * PA_MAX_FRAMES. -ENOSPC when the table is full (the stack is counted as dropped). */
int pa_stacktab_add(pa_stacktab_t *t, const uintptr_t *pcs, size_t npcs, const int64_t *values);

size_t pa_stacktab_count(const pa_stacktab_t *t);   /* distinct stacks */
size_t pa_stacktab_nvalues(const pa_stacktab_t *t);
uint64_t pa_stacktab_dropped(const pa_stacktab_t *t);

/* Call fn for each stack, in insertion order; stops early and returns fn's value if non-zero. */
typedef int (*pa_stacktab_visit_fn)(void *arg, const uintptr_t *pcs, size_t npcs,
                                    const int64_t *values);
int pa_stacktab_foreach(const pa_stacktab_t *t, pa_stacktab_visit_fn fn, void *arg);

#endif
