/* fuzz_pprof: libFuzzer target for pa_pprof_encode: an arbitrary stack table (1..3 values per
 * sample, stacks of 0..63 pcs mixing pseudo-PCs, addresses inside this program, which
 * resolve to symbols and a mapping, and arbitrary addresses, which resolve to nothing) is
 * encoded, then unpacked with protobuf-c, and the profile must say what was put in:
 * string_table[0] == ""; one sample type per value; every id non-zero; every sample's
 * location, every location's mapping and every line's function resolve; every string index
 * is in range; as many samples as distinct stacks, with the same number of locations in
 * total and the same per-value sums. With gzip the output is a gzip stream (1f 8b). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_pprof.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "profile.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef Perftools__Profiles__Profile profile_t;

static pa_symtab_t *sym;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (pa_symtab_new(&sym) < 0)
        abort();
    return 0;
}

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader_t;

static uint64_t take(reader_t *r, size_t bytes)
{
    uint64_t v = 0;

    for (size_t i = 0; i < bytes && r->n > 0; i++, r->p++, r->n--)
        v |= (uint64_t)r->p[0] << (8 * i);
    return v;
}

typedef struct sums {
    size_t stacks, pcs, nvalues;
    int64_t total[3];
} sums_t;

static int visit(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    sums_t *s = arg;

    (void)pcs;
    s->stacks++;
    s->pcs += npcs;
    for (size_t i = 0; i < s->nvalues; i++)
        s->total[i] = (int64_t)((uint64_t)s->total[i] + (uint64_t)values[i]);
    return 0;
}

static void check_str(const profile_t *p, int64_t i)
{
    if (i < 0 || (size_t)i >= p->n_string_table)
        abort();
}

static int has_id(void **arr, size_t n, size_t off, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (*(const uint64_t *)(const void *)((const char *)arr[i] + off) == id)
            return 1;
    return 0;
}

static void check_profile(const profile_t *p, const sums_t *s)
{
    size_t nloc = 0;
    int64_t total[3] = {0};

    if (p->n_string_table < 1 || p->string_table[0][0] != '\0')
        abort();
    if (p->n_sample_type != s->nvalues)
        abort();
    for (size_t i = 0; i < p->n_sample_type; i++)
        check_str(p, p->sample_type[i]->type), check_str(p, p->sample_type[i]->unit);
    for (size_t i = 0; i < p->n_comment; i++)
        check_str(p, p->comment[i]);
    for (size_t i = 0; i < p->n_mapping; i++) {
        if (p->mapping[i]->id == 0)
            abort();
        check_str(p, p->mapping[i]->filename), check_str(p, p->mapping[i]->build_id);
    }
    for (size_t i = 0; i < p->n_function; i++) {
        if (p->function[i]->id == 0)
            abort();
        check_str(p, p->function[i]->name), check_str(p, p->function[i]->system_name);
        check_str(p, p->function[i]->filename);
    }
    for (size_t i = 0; i < p->n_location; i++) {
        const Perftools__Profiles__Location *l = p->location[i];

        if (l->id == 0)
            abort();
        if (l->mapping_id &&
            !has_id((void **)p->mapping, p->n_mapping,
                    offsetof(Perftools__Profiles__Mapping, id), l->mapping_id))
            abort();
        for (size_t j = 0; j < l->n_line; j++)
            if (!has_id((void **)p->function, p->n_function,
                        offsetof(Perftools__Profiles__Function, id), l->line[j]->function_id))
                abort();
    }
    if (p->n_sample != s->stacks)
        abort();
    for (size_t i = 0; i < p->n_sample; i++) {
        const Perftools__Profiles__Sample *sm = p->sample[i];

        if (sm->n_value != s->nvalues)
            abort();
        for (size_t j = 0; j < sm->n_value; j++)
            total[j] = (int64_t)((uint64_t)total[j] + (uint64_t)sm->value[j]);
        for (size_t j = 0; j < sm->n_location_id; j++)
            if (!has_id((void **)p->location, p->n_location,
                        offsetof(Perftools__Profiles__Location, id), sm->location_id[j]))
                abort();
        nloc += sm->n_location_id;
    }
    if (nloc != s->pcs)
        abort();
    for (size_t j = 0; j < s->nvalues; j++)
        if (total[j] != s->total[j])
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const pa_pprof_vt_t types[] = {{"samples", "count"}, {"cpu", "nanoseconds"},
                                          {"alloc_space", "bytes"}};
    static const char *const comments[] = {"fuzz"};
    reader_t r = {data, size};
    pa_stacktab_t *t;
    sums_t s = {0};
    uint8_t *out = NULL;
    size_t outlen = 0, nvalues;
    int gzip, rc;

    if (size < 2)
        return 0;
    nvalues = 1 + take(&r, 1) % 3;
    gzip = (int)(take(&r, 1) & 1);
    if (pa_stacktab_new(nvalues, 64, &t) < 0)
        return 0;
    while (r.n > 0) {
        uintptr_t pcs[64];
        int64_t values[3];
        size_t npcs = take(&r, 1) % 64;

        for (size_t i = 0; i < npcs; i++) {
            uint64_t kind = take(&r, 1) % 4, v = take(&r, 2);

            if (kind == 0)
                pcs[i] = (uintptr_t)(v % PA_PC_PSEUDO_MAX);
            else if (kind == 1) /* in this program: a symbol and a mapping */
                pcs[i] = (uintptr_t)&LLVMFuzzerTestOneInput + v % 4096;
            else if (kind == 2)
                pcs[i] = (uintptr_t)&check_profile + v % 256;
            else
                pcs[i] = (uintptr_t)(v << 32 | take(&r, 4));
        }
        for (size_t i = 0; i < nvalues; i++)
            values[i] = (int64_t)take(&r, 2) - 100;
        (void)pa_stacktab_add(t, pcs, npcs, values); /* full table: dropped, counted */
    }
    s.nvalues = nvalues;
    pa_stacktab_foreach(t, visit, &s);
    {
        pa_pprof_desc_t d = {
            .sample_types = types,
            .nsample_types = nvalues,
            .period_type = {"cpu", "nanoseconds"},
            .period = 10000000,
            .time_nanos = 1,
            .duration_nanos = 2,
            .comments = comments,
            .ncomments = 1,
        };
        rc = pa_pprof_encode(&d, t, sym, gzip, &out, &outlen);
    }
    if (rc == 0) {
        if (gzip) {
            if (outlen < 2 || out[0] != 0x1f || out[1] != 0x8b)
                abort();
        } else {
            profile_t *p = perftools__profiles__profile__unpack(NULL, outlen, out);

            if (p == NULL) {
                fprintf(stderr, "encoded profile (%zu bytes) does not unpack\n", outlen);
                abort();
            }
            check_profile(p, &s);
            perftools__profiles__profile__free_unpacked(p, NULL);
        }
        free(out);
    }
    pa_stacktab_free(t);
    return 0;
}
