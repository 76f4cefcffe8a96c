/* pa_text: Go's text forms of profiles (see pa_text.h). The reference is Go's
 * runtime/pprof (printCountProfile, printStackRecord, keysByCount) and text/tabwriter, whose
 * column algorithm pa__text_tabwrite follows step by step. */
#include "pa_text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_agent.h"
#include "pa_pprof.h"

#define TW_MINWIDTH 1
#define TW_TABWIDTH 8
#define TW_PADDING 1

/* ---- buffer ---- */

void pa_textbuf_init(pa_textbuf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void pa_textbuf_destroy(pa_textbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int reserve(pa_textbuf_t *b, size_t more)
{
    size_t cap;
    char *d;

    if (b->err)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    d = realloc(b->data, cap);
    if (d == NULL) {
        b->err = -ENOMEM;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void pa_textbuf_append(pa_textbuf_t *b, const char *s, size_t len)
{
    if (reserve(b, len) < 0)
        return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void pa_textbuf_printf(pa_textbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->err)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = -EINVAL;
        return;
    }
    if (reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int pa_textbuf_take(pa_textbuf_t *b, char **out, size_t *outlen)
{
    int err = b->err;

    *out = NULL;
    *outlen = 0;
    if (err == 0 && reserve(b, 0) < 0)
        err = b->err;
    if (err) {
        pa_textbuf_destroy(b);
        return err;
    }
    *out = b->data;
    *outlen = b->len;
    memset(b, 0, sizeof(*b));
    return 0;
}

/* ---- tabwriter ---- */

typedef struct cell {
    const char *s;
    size_t size;  /* bytes */
    size_t width; /* runes, as tabwriter counts them */
} cell_t;

typedef struct line {
    cell_t *cells;
    size_t n;
} line_t;

typedef struct tw {
    pa_textbuf_t *out;
    line_t *lines;
    size_t nlines;
    size_t *widths; /* the stack of column widths, as Go's b.widths */
    size_t nwidths;
} tw_t;

static size_t rune_count(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xc0) != 0x80;
    return w;
}

static void write_padding(tw_t *t, size_t textw, size_t cellw)
{
    static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
    size_t n;

    cellw = (cellw + TW_TABWIDTH - 1) / TW_TABWIDTH * TW_TABWIDTH;
    n = (cellw - textw + TW_TABWIDTH - 1) / TW_TABWIDTH;
    while (n > 0) {
        size_t k = n < sizeof(tabs) - 1 ? n : sizeof(tabs) - 1;
        pa_textbuf_append(t->out, tabs, k);
        n -= k;
    }
}

static void write_lines(tw_t *t, size_t line0, size_t line1)
{
    for (size_t i = line0; i < line1; i++) {
        const line_t *l = &t->lines[i];
        for (size_t j = 0; j < l->n; j++) {
            const cell_t *c = &l->cells[j];
            pa_textbuf_append(t->out, c->s, c->size);
            if (j < t->nwidths)
                write_padding(t, c->width, t->widths[j]);
        }
        pa_textbuf_append(t->out, "\n", 1);
    }
}

/* Go's (*Writer).format: a column block is a run of lines that have a cell in this column
 * (the last cell of a line, the text before its newline, is in no column). */
static void format(tw_t *t, size_t line0, size_t line1)
{
    size_t column = t->nwidths;

    for (size_t this = line0; this < line1; this ++) {
        size_t width = TW_MINWIDTH;

        if (column + 1 >= t->lines[this].n)
            continue;
        write_lines(t, line0, this);
        line0 = this;
        for (; this < line1; this ++) {
            const line_t *l = &t->lines[this];
            if (column + 1 >= l->n)
                break;
            if (l->cells[column].width + TW_PADDING > width)
                width = l->cells[column].width + TW_PADDING;
        }
        t->widths[t->nwidths++] = width;
        format(t, line0, this);
        t->nwidths--;
        line0 = this;
        if (this == line1)
            break;
    }
    write_lines(t, line0, line1);
}

void pa__text_tabwrite(pa_textbuf_t *b, const char *text, size_t len)
{
    tw_t t = {.out = b};
    size_t nlines = 0, ncells = 0, maxcells = 0, k = 0, l = 0;
    cell_t *cells = NULL;
    const char *p, *end = text + len;

    for (p = text; p < end; p++) {
        ncells += *p == '\t' || *p == '\n';
        nlines += *p == '\n';
    }
    if (len > 0 && text[len - 1] != '\n') { /* a last line without newline still counts */
        nlines++;
        ncells++;
    }
    if (nlines == 0)
        return;
    t.lines = calloc(nlines, sizeof(*t.lines));
    cells = calloc(ncells, sizeof(*cells));
    if (t.lines == NULL || cells == NULL) {
        b->err = b->err ? b->err : -ENOMEM;
        goto out;
    }
    p = text;
    while (p < end && l < nlines) {
        line_t *ln = &t.lines[l++];
        ln->cells = cells + k;
        for (;;) {
            const char *q = p;
            while (q < end && *q != '\t' && *q != '\n')
                q++;
            cells[k].s = p;
            cells[k].size = (size_t)(q - p);
            cells[k].width = rune_count(p, cells[k].size);
            k++;
            ln->n++;
            p = q < end ? q + 1 : end;
            if (q >= end || *q == '\n')
                break;
        }
        if (ln->n > maxcells)
            maxcells = ln->n;
    }
    t.nlines = l;
    t.widths = calloc(maxcells + 1, sizeof(*t.widths));
    if (t.widths == NULL) {
        b->err = b->err ? b->err : -ENOMEM;
        goto out;
    }
    format(&t, 0, t.nlines);
out:
    free(t.widths);
    free(cells);
    free(t.lines);
}

/* ---- stacks ---- */

/* The address a frame is reported at: the leaf as recorded, callers at return address - 1
 * (inside the call instruction), as pa_pprof and Go's CallersFrames do. */
static uintptr_t frame_pc(const uintptr_t *pcs, size_t i)
{
    if (i == 0 || pcs[i] < PA_PC_PSEUDO_MAX)
        return pcs[i];
    return pcs[i] - 1;
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

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void pa_text_stack_key(pa_textbuf_t *b, const uintptr_t *pcs, size_t npcs)
{
    pa_textbuf_append(b, "@", 1);
    for (size_t i = 0; i < npcs; i++)
        pa_textbuf_printf(b, " 0x%" PRIxPTR, pcs[i]);
}

/* One "#" line, unaligned (cells separated by tabs): see pa_text.h for the columns. */
static void stack_line(pa_textbuf_t *b, pa_symtab_t *sym, uintptr_t pc)
{
    pa_sym_t s;

    if (pc < PA_PC_PSEUDO_MAX) {
        pa_textbuf_printf(b, "#\t0x%" PRIxPTR "\t%s+0x0\t\n", pc, pseudo_name(pc));
        return;
    }
    if (sym == NULL || pa_symtab_lookup(sym, pc, &s) < 0 || s.mapping == NULL) {
        pa_textbuf_printf(b, "#\t0x%" PRIxPTR "\n", pc);
        return;
    }
    if (s.name != NULL)
        pa_textbuf_printf(b, "#\t0x%" PRIxPTR "\t%s+0x%" PRIxPTR "\t%s\n", pc, s.name, pc - s.start,
                          s.mapping->path);
    else
        pa_textbuf_printf(b, "#\t0x%" PRIxPTR "\t%s+0x%" PRIx64 "\t%s\n", pc,
                          base_name(s.mapping->path),
                          (uint64_t)(pc - s.mapping->start + s.mapping->offset), s.mapping->path);
}

void pa_text_stack_record(pa_textbuf_t *b, pa_symtab_t *sym, const uintptr_t *pcs, size_t npcs)
{
    pa_textbuf_t raw;

    pa_textbuf_init(&raw);
    for (size_t i = 0; i < npcs; i++)
        stack_line(&raw, sym, frame_pc(pcs, i));
    if (raw.err)
        b->err = b->err ? b->err : raw.err;
    else
        pa__text_tabwrite(b, raw.data, raw.len);
    pa_textbuf_destroy(&raw);
    pa_textbuf_append(b, "\n", 1);
}

void pa_text_traceback(pa_textbuf_t *b, pa_symtab_t *sym, const uintptr_t *pcs, size_t npcs)
{
    for (size_t i = 0; i < npcs; i++) {
        uintptr_t pc = frame_pc(pcs, i);
        pa_sym_t s;

        if (pc < PA_PC_PSEUDO_MAX) {
            pa_textbuf_printf(b, "%s(...)\n\t?\n", pseudo_name(pc));
        } else if (sym == NULL || pa_symtab_lookup(sym, pc, &s) < 0 || s.mapping == NULL) {
            pa_textbuf_printf(b, "0x%" PRIxPTR "(...)\n\t?\n", pc);
        } else if (s.name != NULL) {
            pa_textbuf_printf(b, "%s(...)\n\t%s +0x%" PRIxPTR "\n", s.name, s.mapping->path,
                              pc - s.start);
        } else {
            uint64_t off = (uint64_t)(pc - s.mapping->start + s.mapping->offset);
            pa_textbuf_printf(b, "%s+0x%" PRIx64 "(...)\n\t%s +0x%" PRIx64 "\n",
                              base_name(s.mapping->path), off, s.mapping->path, off);
        }
    }
}

/* ---- count profiles ---- */

typedef struct record {
    const uintptr_t *pcs;
    size_t npcs;
    int64_t count;
    int64_t other; /* contention profiles: the count, when count holds the delay */
    char *key;
} record_t;

typedef struct collect {
    record_t *recs;
    size_t n;
    size_t value_index; /* the value records are sorted by (count, or delay) */
    int64_t total;
    int err;
} collect_t;

static int on_stack(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *values)
{
    collect_t *c = arg;
    record_t *r = &c->recs[c->n];
    pa_textbuf_t k;
    size_t klen;

    pa_textbuf_init(&k);
    pa_text_stack_key(&k, pcs, npcs);
    if (pa_textbuf_take(&k, &r->key, &klen) < 0) {
        c->err = -ENOMEM;
        return 1;
    }
    r->pcs = pcs;
    r->npcs = npcs;
    r->count = values[c->value_index];
    r->other = values[0];
    c->total += r->count;
    c->n++;
    return 0;
}

/* Go's keysByCount: larger count first, then the key string in byte order. */
static int by_count(const void *a, const void *b)
{
    const record_t *x = a, *y = b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}

int pa_text_count_profile(const char *name, const pa_stacktab_t *t, size_t value_index,
                          pa_symtab_t *sym, const char *const *comments, size_t ncomments,
                          char **out, size_t *outlen)
{
    collect_t c = {.value_index = value_index};
    pa_textbuf_t b;
    size_t n = pa_stacktab_count(t);
    int rc;

    *out = NULL;
    *outlen = 0;
    if (value_index >= pa_stacktab_nvalues(t))
        return -EINVAL;
    c.recs = calloc(n ? n : 1, sizeof(*c.recs));
    if (c.recs == NULL)
        return -ENOMEM;
    pa_stacktab_foreach(t, on_stack, &c);
    pa_textbuf_init(&b);
    if (c.err) {
        rc = c.err;
        goto out;
    }
    qsort(c.recs, c.n, sizeof(*c.recs), by_count);
    pa_textbuf_printf(&b, "%s profile: total %" PRId64 "\n", name, c.total);
    for (size_t i = 0; i < c.n; i++) {
        if (i % 256 == 255)
            pa_agent_fork_point();
        if (c.recs[i].count == 0)
            continue; /* a delta may leave stacks with nothing in them */
        pa_textbuf_printf(&b, "%" PRId64 " %s\n", c.recs[i].count, c.recs[i].key);
        pa_text_stack_record(&b, sym, c.recs[i].pcs, c.recs[i].npcs);
    }
    for (size_t i = 0; i < ncomments; i++)
        pa_textbuf_printf(&b, "# %s\n", comments[i]);
    rc = pa_textbuf_take(&b, out, outlen);
out:
    pa_textbuf_destroy(&b);
    for (size_t i = 0; i < c.n; i++)
        free(c.recs[i].key);
    free(c.recs);
    return rc;
}

int pa_text_contention_profile(const char *name, const pa_stacktab_t *t, int64_t sampling_period,
                               pa_symtab_t *sym, const char *const *comments, size_t ncomments,
                               char **out, size_t *outlen)
{
    collect_t c = {.value_index = 1};
    pa_textbuf_t b;
    size_t n = pa_stacktab_count(t);
    int rc;

    *out = NULL;
    *outlen = 0;
    if (pa_stacktab_nvalues(t) < 2)
        return -EINVAL;
    c.recs = calloc(n ? n : 1, sizeof(*c.recs));
    if (c.recs == NULL)
        return -ENOMEM;
    pa_stacktab_foreach(t, on_stack, &c);
    pa_textbuf_init(&b);
    if (c.err) {
        rc = c.err;
        goto out;
    }
    qsort(c.recs, c.n, sizeof(*c.recs), by_count); /* count holds the delay here */
    pa_textbuf_printf(&b, "--- %s:\ncycles/second=1000000000\n", name);
    if (sampling_period >= 0)
        pa_textbuf_printf(&b, "sampling period=%" PRId64 "\n", sampling_period);
    for (size_t i = 0; i < c.n; i++) {
        if (i % 256 == 255)
            pa_agent_fork_point();
        if (c.recs[i].count == 0 && c.recs[i].other == 0)
            continue;
        pa_textbuf_printf(&b, "%" PRId64 " %" PRId64 " %s\n", c.recs[i].count, c.recs[i].other,
                          c.recs[i].key);
        pa_text_stack_record(&b, sym, c.recs[i].pcs, c.recs[i].npcs);
    }
    for (size_t i = 0; i < ncomments; i++)
        pa_textbuf_printf(&b, "# %s\n", comments[i]);
    rc = pa_textbuf_take(&b, out, outlen);
out:
    pa_textbuf_destroy(&b);
    for (size_t i = 0; i < c.n; i++)
        free(c.recs[i].key);
    free(c.recs);
    return rc;
}
