/* pa_stacktab: fixed-capacity aggregation of raw stacks into stack -> summed values.
 *
 * Layout, all allocated by pa_stacktab_new and never grown:
 *   entries[max_stacks]            hash and depth of each distinct stack, in insertion order
 *   pcs[max_stacks * PA_MAX_FRAMES] the frames of entry i at pcs + i * PA_MAX_FRAMES
 *   values[max_stacks * nvalues]   the summed values of entry i
 *   buckets[nbuckets]              open addressing (linear probing) over entry indexes,
 *                                  nbuckets a power of two >= 2 * max_stacks, so the load
 *                                  factor stays <= 0.5 and probes stay short.
 * Entries are never removed one by one (only reset as a whole), so probing needs no
 * tombstones, and entries' index order is insertion order, which foreach walks. */
#include "pa_stacktab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY UINT32_MAX

typedef struct entry {
    uint64_t hash;
    uint32_t npcs;
} entry_t;

struct pa_stacktab {
    size_t nvalues;
    size_t cap;       /* max distinct stacks */
    size_t count;     /* distinct stacks now */
    size_t mask;      /* nbuckets - 1 */
    uint64_t dropped; /* stacks refused because the table was full */
    entry_t *entries;
    uintptr_t *pcs;
    int64_t *values;
    uint32_t *buckets;
};

/* FNV-1a would be byte-wise; this mixes whole words (splitmix64 finaliser per PC), which is
 * cheaper for PC arrays and spreads the low bits that pointers share. */
static uint64_t hash_pcs(const uintptr_t *pcs, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = h ^ (uint64_t)pcs[i];
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        h = x + 0x9e3779b97f4a7c15ULL;
    }
    return h;
}

int pa_stacktab_new(size_t nvalues, size_t max_stacks, pa_stacktab_t **out)
{
    pa_stacktab_t *t = NULL;
    size_t nb = 2;

    *out = NULL;
    if (nvalues < 1 || nvalues > PA_MAX_VALUES || max_stacks < 1 || max_stacks >= EMPTY / 2)
        return -EINVAL;
    while (nb < 2 * max_stacks)
        nb <<= 1;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->nvalues = nvalues;
    t->cap = max_stacks;
    t->mask = nb - 1;
    t->entries = calloc(max_stacks, sizeof(*t->entries));
    t->pcs = calloc(max_stacks, sizeof(*t->pcs) * PA_MAX_FRAMES);
    t->values = calloc(max_stacks, sizeof(*t->values) * nvalues);
    t->buckets = malloc(nb * sizeof(*t->buckets));
    if (t->entries == NULL || t->pcs == NULL || t->values == NULL || t->buckets == NULL) {
        pa_stacktab_free(t);
        return -ENOMEM;
    }
    memset(t->buckets, 0xff, nb * sizeof(*t->buckets));
    *out = t;
    return 0;
}

void pa_stacktab_free(pa_stacktab_t *t)
{
    if (t == NULL)
        return;
    free(t->entries);
    free(t->pcs);
    free(t->values);
    free(t->buckets);
    free(t);
}

void pa_stacktab_reset(pa_stacktab_t *t)
{
    memset(t->buckets, 0xff, (t->mask + 1) * sizeof(*t->buckets));
    /* Values must restart at zero; pcs and entries are overwritten on reuse. */
    memset(t->values, 0, t->count * t->nvalues * sizeof(*t->values));
    t->count = 0;
    t->dropped = 0;
}

int pa_stacktab_add(pa_stacktab_t *t, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    uint64_t h;
    size_t b;
    uint32_t idx;
    int64_t *v;

    /* Truncate at the root: the leaf end is what a profile is read for. */
    if (npcs > PA_MAX_FRAMES)
        npcs = PA_MAX_FRAMES;
    h = hash_pcs(pcs, npcs);
    for (b = (size_t)h & t->mask;; b = (b + 1) & t->mask) {
        idx = t->buckets[b];
        if (idx == EMPTY)
            break;
        if (t->entries[idx].hash == h && t->entries[idx].npcs == npcs &&
            (npcs == 0 ||
             memcmp(t->pcs + (size_t)idx * PA_MAX_FRAMES, pcs, npcs * sizeof(*pcs)) == 0))
            goto found;
    }
    if (t->count == t->cap) {
        t->dropped++;
        return -ENOSPC;
    }
    idx = (uint32_t)t->count++;
    t->buckets[b] = idx;
    t->entries[idx].hash = h;
    t->entries[idx].npcs = (uint32_t)npcs;
    if (npcs > 0)
        memcpy(t->pcs + (size_t)idx * PA_MAX_FRAMES, pcs, npcs * sizeof(*pcs));
found:
    v = t->values + (size_t)idx * t->nvalues;
    for (size_t i = 0; i < t->nvalues; i++)
        v[i] += values[i];
    return 0;
}

size_t pa_stacktab_count(const pa_stacktab_t *t)
{
    return t->count;
}

size_t pa_stacktab_nvalues(const pa_stacktab_t *t)
{
    return t->nvalues;
}

uint64_t pa_stacktab_dropped(const pa_stacktab_t *t)
{
    return t->dropped;
}

int pa_stacktab_foreach(const pa_stacktab_t *t, pa_stacktab_visit_fn fn, void *arg)
{
    for (size_t i = 0; i < t->count; i++) {
        int rc =
            fn(arg, t->pcs + i * PA_MAX_FRAMES, t->entries[i].npcs, t->values + i * t->nvalues);
        if (rc != 0)
            return rc;
    }
    return 0;
}
