/* pg_toml: see pg_toml.h. The document half of the parser (pg_toml_int.h says who does what).
 *
 * Memory: every node, key and string of a document lives in one arena (a list of chunks)
 * owned by the root, so a parse error frees everything at once and pg_toml_free() is a walk
 * over the chunks. Growing tables and arrays copy into a fresh arena block; the waste is at
 * most the final size again.
 *
 * Lookup: a table keeps its entries in definition order and, once it holds more than
 * INDEX_MIN entries, an open-addressing index over them, so a config with thousands of
 * [[route]] entries or keys stays linear to parse.
 *
 * Redefinition rules (TOML 1.0.0, "Table", "Inline Table", "Array of Tables"): each table
 * records how it came to be (enum pg__toml_kind). A [header] may define a table only if it
 * does not exist or was created implicitly by an earlier header; a dotted key may go into a
 * table it (or another dotted key) created, and into an implicit one, never into a table
 * defined by a header or an inline table; nothing enters a closed inline table or a static
 * array. */
#include "pg_toml_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_SIZE (64 * 1024)
#define INDEX_MIN 8

struct pg__toml_chunk {
    pg__toml_chunk_t *next;
    size_t used, cap;
    uint64_t data[];
};

/* The root value comes first, so pg_toml_free(root) finds the arena. */
typedef struct toml_doc {
    pg_toml_value_t root;
    pg__toml_chunk_t *arena;
} toml_doc_t;

void *pg__toml_alloc(pg__toml_parser_t *P, size_t size)
{
    pg__toml_chunk_t *c = *P->arena;
    void *p;

    size = (size + 7) & ~(size_t)7; /* nothing in a tree needs more than 8-byte alignment */
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK_SIZE / 4 ? size : CHUNK_SIZE;
        pg__toml_chunk_t *n = malloc(sizeof *n + cap);

        if (n == NULL)
            return NULL;
        n->used = 0;
        n->cap = cap;
        if (c != NULL && cap != CHUNK_SIZE) {
            /* A big block goes behind the current chunk, which keeps serving small ones. */
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            *P->arena = n;
        }
        c = n;
    }
    p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static void arena_free(pg__toml_chunk_t *c)
{
    while (c) {
        pg__toml_chunk_t *next = c->next;

        free(c);
        c = next;
    }
}

/* A node one level below parent. The depth limit counts every way of nesting (arrays, inline
 * tables, dotted keys, header paths), so the parser's recursion and any recursive walk of a
 * tree (a decoder, a dump) are bounded, whatever the input. */
static int new_node(pg__toml_parser_t *P, const pg_toml_value_t *parent, pg_toml_type_t type,
                    int kind, pg_pos_t pos, pg_toml_value_t **out)
{
    pg_toml_value_t *v;

    if (parent->depth >= PG_TOML_MAX_DEPTH)
        return pg__toml_fail(P, pos,
                             "nested deeper than %d levels (arrays, inline tables and dotted "
                             "keys all count)",
                             PG_TOML_MAX_DEPTH);
    v = pg__toml_alloc(P, sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    memset(v, 0, sizeof *v);
    v->type = (uint8_t)type;
    v->kind = (uint8_t)kind;
    v->depth = (uint16_t)(parent->depth + 1);
    v->pos = pos;
    *out = v;
    return 0;
}

/* --- tables --------------------------------------------------------------------------- */

static uint32_t hash_key(const char *k, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

static pg__toml_entry_t *table_find(const pg_toml_value_t *t, const char *k, size_t n, uint32_t h)
{
    if (t->u.tab.idx) {
        uint32_t mask = t->u.tab.idx_cap - 1;

        for (uint32_t i = h & mask;; i = (i + 1) & mask) {
            uint32_t e = t->u.tab.idx[i];
            pg__toml_entry_t *en;

            if (e == 0)
                return NULL;
            en = &t->u.tab.ents[e - 1];
            if (en->hash == h && en->key_len == n && memcmp(en->key, k, n) == 0)
                return en;
        }
    }
    for (uint32_t i = 0; i < t->u.tab.n; i++) {
        pg__toml_entry_t *en = &t->u.tab.ents[i];

        if (en->hash == h && en->key_len == n && memcmp(en->key, k, n) == 0)
            return en;
    }
    return NULL;
}

static int index_rebuild(pg__toml_parser_t *P, pg_toml_value_t *t, uint32_t cap)
{
    uint32_t *idx = pg__toml_alloc(P, cap * sizeof *idx);

    if (idx == NULL)
        return -ENOMEM;
    memset(idx, 0, cap * sizeof *idx);
    for (uint32_t i = 0; i < t->u.tab.n; i++) {
        uint32_t j = t->u.tab.ents[i].hash & (cap - 1);

        while (idx[j])
            j = (j + 1) & (cap - 1);
        idx[j] = i + 1;
    }
    t->u.tab.idx = idx;
    t->u.tab.idx_cap = cap;
    return 0;
}

/* Append key (copied) -> val; the caller has checked the key is absent. */
static int table_add(pg__toml_parser_t *P, pg_toml_value_t *t, const char *k, size_t n, uint32_t h,
                     pg_pos_t key_pos, pg_toml_value_t *val)
{
    pg__toml_entry_t *en;
    char *kc;

    if (t->u.tab.n == t->u.tab.cap) {
        uint32_t cap = t->u.tab.cap ? t->u.tab.cap * 2 : 4;
        pg__toml_entry_t *ents = pg__toml_alloc(P, cap * sizeof *ents);

        if (ents == NULL)
            return -ENOMEM;
        if (t->u.tab.n)
            memcpy(ents, t->u.tab.ents, t->u.tab.n * sizeof *ents);
        t->u.tab.ents = ents;
        t->u.tab.cap = cap;
    }
    kc = pg__toml_alloc(P, n + 1);
    if (kc == NULL)
        return -ENOMEM;
    memcpy(kc, k, n);
    kc[n] = '\0';
    en = &t->u.tab.ents[t->u.tab.n++];
    en->key = kc;
    en->key_len = (uint32_t)n;
    en->hash = h;
    en->key_pos = key_pos;
    en->val = val;
    if (t->u.tab.n > INDEX_MIN) {
        if (t->u.tab.idx == NULL || t->u.tab.n * 2 > t->u.tab.idx_cap)
            return index_rebuild(P, t, t->u.tab.idx_cap ? t->u.tab.idx_cap * 2 : 32);
        uint32_t j = h & (t->u.tab.idx_cap - 1);

        while (t->u.tab.idx[j])
            j = (j + 1) & (t->u.tab.idx_cap - 1);
        t->u.tab.idx[j] = t->u.tab.n;
    }
    return 0;
}

static int array_add(pg__toml_parser_t *P, pg_toml_value_t *a, pg_toml_value_t *item)
{
    if (a->u.arr.n == a->u.arr.cap) {
        uint32_t cap = a->u.arr.cap ? a->u.arr.cap * 2 : 4;
        pg_toml_value_t **items = pg__toml_alloc(P, cap * sizeof *items);

        if (items == NULL)
            return -ENOMEM;
        if (a->u.arr.n)
            memcpy(items, a->u.arr.items, a->u.arr.n * sizeof *items);
        a->u.arr.items = items;
        a->u.arr.cap = cap;
    }
    a->u.arr.items[a->u.arr.n++] = item;
    return 0;
}

/* --- grammar -------------------------------------------------------------------------- */

static int parse_value(pg__toml_parser_t *P, const pg_toml_value_t *parent, pg_toml_value_t **out);

/* A key or header path as written in the source ("a.b", "a . \"b c\""), formatted only
 * when a message needs it (building it for every key would cost more than parsing), into
 * the parser's buffer, so that nested inline tables do not each carry one on the stack. */
typedef struct keypath {
    const char *start, *end;
} keypath_t;

/* The path as written, clipped; quoted (for use in a sentence) unless it has quotes. */
static const char *kp_fmt(pg__toml_parser_t *P, const keypath_t *kp, bool quote)
{
    size_t n = (size_t)(kp->end - kp->start);
    const char *more = n > 160 ? "..." : "";
    int w = (int)(n > 160 ? 160 : n);

    if (quote && memchr(kp->start, '"', n) == NULL && memchr(kp->start, '\'', n) == NULL)
        snprintf(P->keybuf, sizeof P->keybuf, "\"%.*s%s\"", w, kp->start, more);
    else
        snprintf(P->keybuf, sizeof P->keybuf, "%.*s%s", w, kp->start, more);
    return P->keybuf;
}

#define kp_raw(kp) kp_fmt(P, (kp), false)
#define kp_q(kp) kp_fmt(P, (kp), true)

static const char *what_is(const pg_toml_value_t *v)
{
    if (v->type == PG_TOML_TABLE) {
        switch (v->kind) {
        case PG__TOML_INLINE:
            return "an inline table";
        case PG__TOML_HEADER:
            return "a table defined by a [header]";
        case PG__TOML_DOTTED:
            return "a table defined by dotted keys";
        default:
            return "a table";
        }
    }
    if (v->type == PG_TOML_ARRAY)
        return v->kind == PG__TOML_AOT ? "an array of tables" : "an array";
    switch (v->type) {
    case PG_TOML_STRING:
        return "a string";
    case PG_TOML_INTEGER:
        return "an integer";
    case PG_TOML_FLOAT:
        return "a float";
    case PG_TOML_BOOL:
        return "a boolean";
    default:
        return "a date-time";
    }
}

/* "<what was expected>, found <what is at P->p>". */
static int fail_found(pg__toml_parser_t *P, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail_found(pg__toml_parser_t *P, const char *fmt, ...)
{
    char fb[32], msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pg__toml_fail(P, pg__toml_pos(P, P->p), "%s, found %s", msg,
                         pg__toml_found(P, fb, sizeof fb));
}

/* key = value, inside table t (the current [section] or an inline table). */
static int parse_keyval(pg__toml_parser_t *P, pg_toml_value_t *t)
{
    keypath_t kp = {.start = P->p};
    pg_toml_value_t *val;
    pg_pos_t kpos;
    uint32_t h;
    int rc;

    for (;;) {
        pg__toml_entry_t *en;

        kpos = pg__toml_pos(P, P->p);
        if ((rc = pg__toml_scan_key_part(P)) < 0)
            return rc;
        kp.end = P->p;
        h = hash_key(P->scratch, P->scratch_len);
        pg__toml_skip_ws(P);
        if (P->p >= P->end || *P->p != '.')
            break;
        P->p++;
        pg__toml_skip_ws(P);
        en = table_find(t, P->scratch, P->scratch_len, h);
        if (en == NULL) {
            pg_toml_value_t *sub = NULL;

            if ((rc = new_node(P, t, PG_TOML_TABLE, PG__TOML_DOTTED, kpos, &sub)) < 0)
                return rc;
            if (table_add(P, t, P->scratch, P->scratch_len, h, kpos, sub) < 0)
                return -ENOMEM;
            t = sub;
        } else if (en->val->type == PG_TOML_TABLE &&
                   (en->val->kind == PG__TOML_DOTTED || en->val->kind == PG__TOML_IMPLICIT)) {
            if (en->val->kind == PG__TOML_IMPLICIT) {
                /* Defined here now: a later [header] for it must point at this line. */
                en->val->kind = PG__TOML_DOTTED;
                en->key_pos = kpos;
            }
            t = en->val;
        } else {
            return pg__toml_fail(P, kpos,
                                 "cannot add keys to %s with a dotted key: it is already %s "
                                 "(line %u)",
                                 kp_q(&kp), what_is(en->val), en->key_pos.line);
        }
    }
    if (P->p >= P->end || *P->p != '=')
        return fail_found(P, "expected '=' after key %s", kp_q(&kp));
    P->p++;
    pg__toml_skip_ws(P);
    {
        pg__toml_entry_t *en = table_find(t, P->scratch, P->scratch_len, h);

        if (en)
            return pg__toml_fail(P, kpos, "duplicate key %s (first defined on line %u)", kp_q(&kp),
                                 en->key_pos.line);
    }
    /* The key is added before its value is parsed: the scratch buffer is about to be reused,
     * and nothing in the value can refer to this table. */
    if ((rc = table_add(P, t, P->scratch, P->scratch_len, h, kpos, NULL)) < 0)
        return rc;
    uint32_t slot = t->u.tab.n - 1;

    if (P->p >= P->end || *P->p == '\n' || *P->p == '\r' || *P->p == '#')
        return fail_found(P, "expected a value after %s =", kp_q(&kp));
    if ((rc = parse_value(P, t, &val)) < 0)
        return rc;
    t->u.tab.ents[slot].val = val;
    return 0;
}

static int parse_array(pg__toml_parser_t *P, pg_toml_value_t *a)
{
    int rc;

    P->p++; /* '[' */
    for (;;) {
        pg_toml_value_t *item;

        if ((rc = pg__toml_skip_ws_nl(P)) < 0)
            return rc;
        if (P->p < P->end && *P->p == ']')
            break;
        if (P->p >= P->end)
            return pg__toml_fail(P, a->pos, "unterminated array (no closing ']')");
        if ((rc = parse_value(P, a, &item)) < 0)
            return rc;
        if ((rc = array_add(P, a, item)) < 0)
            return rc;
        if ((rc = pg__toml_skip_ws_nl(P)) < 0)
            return rc;
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            continue;
        }
        if (P->p < P->end && *P->p == ']')
            break;
        if (P->p >= P->end)
            return pg__toml_fail(P, a->pos, "unterminated array (no closing ']')");
        return fail_found(P, "expected ',' or ']' after an array element");
    }
    P->p++;
    return 0;
}

static int parse_inline_table(pg__toml_parser_t *P, pg_toml_value_t *t)
{
    int rc;

    P->p++; /* '{' */
    pg__toml_skip_ws(P);
    if (P->p < P->end && *P->p == '}') {
        P->p++;
        return 0;
    }
    for (;;) {
        if (P->p >= P->end || *P->p == '\n' || *P->p == '\r')
            return fail_found(P, "expected a key in inline table (inline tables must be on "
                                 "one line)");
        if ((rc = parse_keyval(P, t)) < 0)
            return rc;
        pg__toml_skip_ws(P);
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            pg__toml_skip_ws(P);
            if (P->p < P->end && *P->p == '}')
                return pg__toml_fail(P, pg__toml_pos(P, P->p),
                                     "trailing comma is not allowed in an inline table");
            continue;
        }
        if (P->p < P->end && *P->p == '}')
            break;
        return fail_found(P, "expected ',' or '}' after a key/value pair in inline table");
    }
    P->p++;
    return 0;
}

static int parse_value(pg__toml_parser_t *P, const pg_toml_value_t *parent, pg_toml_value_t **out)
{
    pg_pos_t pos = pg__toml_pos(P, P->p);
    pg_toml_value_t *v;
    int rc;

    if (P->p < P->end && (*P->p == '[' || *P->p == '{')) {
        bool arr = *P->p == '[';

        rc = new_node(P, parent, arr ? PG_TOML_ARRAY : PG_TOML_TABLE,
                      arr ? PG__TOML_STATIC : PG__TOML_DOTTED, pos, &v);
        if (rc < 0)
            return rc;
        rc = arr ? parse_array(P, v) : parse_inline_table(P, v);
        if (rc < 0)
            return rc;
        if (!arr)
            v->kind = PG__TOML_INLINE; /* closed: immutable from now on */
        *out = v;
        return 0;
    }
    if (P->p >= P->end)
        return fail_found(P, "expected a value");
    if ((rc = new_node(P, parent, PG_TOML_STRING, 0, pos, &v)) < 0)
        return rc;
    if ((rc = pg__toml_scan_scalar(P, v)) < 0)
        return rc;
    *out = v;
    return 0;
}

/* [a.b.c] or [[a.b.c]]; on success *cur is the table that the following keys go into. */
static int parse_header(pg__toml_parser_t *P, pg_toml_value_t *root, pg_toml_value_t **cur)
{
    const char *start = P->p;
    pg_pos_t hpos = pg__toml_pos(P, start), kpos;
    bool aot = P->end - P->p >= 2 && P->p[1] == '[';
    pg_toml_value_t *t = root, *nt;
    pg__toml_entry_t *en;
    keypath_t kp;
    uint32_t h;
    int rc;

    P->p += aot ? 2 : 1;
    pg__toml_skip_ws(P);
    kp.start = P->p;
    for (;;) {
        kpos = pg__toml_pos(P, P->p);
        if ((rc = pg__toml_scan_key_part(P)) < 0)
            return rc;
        kp.end = P->p;
        h = hash_key(P->scratch, P->scratch_len);
        pg__toml_skip_ws(P);
        if (P->p >= P->end || *P->p != '.')
            break;
        P->p++;
        pg__toml_skip_ws(P);
        en = table_find(t, P->scratch, P->scratch_len, h);
        if (en == NULL) {
            if ((rc = new_node(P, t, PG_TOML_TABLE, PG__TOML_IMPLICIT, hpos, &nt)) < 0)
                return rc;
            if (table_add(P, t, P->scratch, P->scratch_len, h, kpos, nt) < 0)
                return -ENOMEM;
            t = nt;
        } else if (en->val->type == PG_TOML_TABLE && en->val->kind != PG__TOML_INLINE) {
            t = en->val;
        } else if (en->val->type == PG_TOML_ARRAY && en->val->kind == PG__TOML_AOT) {
            t = en->val->u.arr.items[en->val->u.arr.n - 1];
        } else {
            return pg__toml_fail(P, kpos, "cannot use %s as a table: it is already %s (line %u)",
                                 kp_q(&kp), what_is(en->val), en->key_pos.line);
        }
    }
    if (P->p >= P->end || *P->p != ']' || (aot && (P->end - P->p < 2 || P->p[1] != ']')))
        return fail_found(P, "expected '%s' to close %s header %s%s", aot ? "]]" : "]",
                          aot ? "array-of-tables" : "table", aot ? "[[" : "[", kp_raw(&kp));
    P->p += aot ? 2 : 1;
    en = table_find(t, P->scratch, P->scratch_len, h);
    if (!aot) {
        if (en == NULL) {
            if ((rc = new_node(P, t, PG_TOML_TABLE, PG__TOML_HEADER, hpos, &nt)) < 0)
                return rc;
            if (table_add(P, t, P->scratch, P->scratch_len, h, kpos, nt) < 0)
                return -ENOMEM;
            *cur = nt;
            return 0;
        }
        if (en->val->type == PG_TOML_TABLE && en->val->kind == PG__TOML_IMPLICIT) {
            en->val->kind = PG__TOML_HEADER;
            en->val->pos = hpos;
            en->key_pos = kpos;
            *cur = en->val;
            return 0;
        }
        if (en->val->type == PG_TOML_TABLE && en->val->kind == PG__TOML_HEADER)
            return pg__toml_fail(P, hpos, "table [%s] is defined twice (first on line %u)",
                                 kp_raw(&kp), en->val->pos.line);
        return pg__toml_fail(P, hpos, "cannot define table [%s]: it is already %s (line %u)",
                             kp_raw(&kp), what_is(en->val), en->key_pos.line);
    }
    if (en == NULL) {
        pg_toml_value_t *a;

        if ((rc = new_node(P, t, PG_TOML_ARRAY, PG__TOML_AOT, hpos, &a)) < 0 ||
            (rc = new_node(P, a, PG_TOML_TABLE, PG__TOML_HEADER, hpos, &nt)) < 0)
            return rc;
        if (table_add(P, t, P->scratch, P->scratch_len, h, kpos, a) < 0)
            return -ENOMEM;
        rc = array_add(P, a, nt);
    } else if (en->val->type == PG_TOML_ARRAY && en->val->kind == PG__TOML_AOT) {
        if ((rc = new_node(P, en->val, PG_TOML_TABLE, PG__TOML_HEADER, hpos, &nt)) < 0)
            return rc;
        rc = array_add(P, en->val, nt);
    } else {
        return pg__toml_fail(P, hpos, "cannot append to [[%s]]: it is already %s (line %u)",
                             kp_raw(&kp), what_is(en->val), en->key_pos.line);
    }
    *cur = nt;
    return rc;
}

/* After a key/value pair or a header: only whitespace and a comment may end the line. */
static int end_of_line(pg__toml_parser_t *P, const char *after)
{
    int rc;

    pg__toml_skip_ws(P);
    if (P->p < P->end && *P->p == '#' && (rc = pg__toml_skip_comment(P)) < 0)
        return rc;
    if (P->p >= P->end)
        return 0;
    if (*P->p == '\n' || *P->p == '\r')
        return pg__toml_newline(P);
    return fail_found(P, "expected end of line after %s", after);
}

static int parse_document(pg__toml_parser_t *P, pg_toml_value_t *root)
{
    pg_toml_value_t *cur = root;
    int rc;

    if ((rc = pg__toml_check_utf8(P)) < 0)
        return rc;
    if (P->end - P->p >= 3 && memcmp(P->p, "\xef\xbb\xbf", 3) == 0) {
        P->p += 3; /* a byte order mark; columns still count it */
    }
    for (;;) {
        pg__toml_skip_ws(P);
        if (P->p >= P->end)
            return 0;
        switch (*P->p) {
        case '#':
            if ((rc = pg__toml_skip_comment(P)) < 0)
                return rc;
            if (P->p < P->end && (rc = pg__toml_newline(P)) < 0)
                return rc;
            break;
        case '\n':
        case '\r':
            if ((rc = pg__toml_newline(P)) < 0)
                return rc;
            break;
        case '[':
            if ((rc = parse_header(P, root, &cur)) < 0)
                return rc;
            if ((rc = end_of_line(P, "table header")) < 0)
                return rc;
            break;
        default:
            if ((rc = parse_keyval(P, cur)) < 0)
                return rc;
            if ((rc = end_of_line(P, "a key/value pair (one per line)")) < 0)
                return rc;
            break;
        }
    }
}

int pg_toml_parse(const char *buf, size_t len, const char *filename, pg_toml_value_t **root,
                  pg_error_t *err)
{
    pg__toml_chunk_t *arena = NULL;
    pg__toml_parser_t P = {
        .buf = buf,
        .p = buf,
        .end = buf + len,
        .line_start = buf,
        .line = 1,
        .file = filename,
        .err = err,
        .arena = &arena,
    };
    toml_doc_t *doc;
    int rc;

    *root = NULL;
    if (len > UINT32_MAX / 2) {
        pg_error_set(err, filename, (pg_pos_t){0, 0}, "input too large (%zu bytes)", len);
        return -EFBIG;
    }
    doc = pg__toml_alloc(&P, sizeof *doc);
    if (doc == NULL)
        return -ENOMEM;
    memset(doc, 0, sizeof *doc);
    doc->root.type = PG_TOML_TABLE;
    doc->root.kind = PG__TOML_ROOT;
    doc->root.pos = (pg_pos_t){1, 1};
    rc = parse_document(&P, &doc->root);
    free(P.scratch);
    if (P.c_locale != (locale_t)0)
        freelocale(P.c_locale);
    if (rc < 0) {
        if (rc == -ENOMEM && err)
            pg_error_set(err, filename, pg__toml_pos(&P, P.p), "out of memory");
        arena_free(arena);
        return rc;
    }
    doc->arena = arena;
    *root = &doc->root;
    return 0;
}

int pg_toml_parse_file(const char *path, pg_toml_value_t **root, pg_error_t *err)
{
    struct stat st;
    char *buf = NULL;
    size_t off = 0;
    int fd, rc;

    *root = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        pg_error_set(err, path, (pg_pos_t){0, 0}, "cannot open: %s", strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        pg_error_set(err, path, (pg_pos_t){0, 0}, "not a regular file");
        close(fd);
        return rc;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break; /* the file shrank; parse what is there */
        off += (size_t)n;
    }
    close(fd);
    rc = pg_toml_parse(buf, off, path, root, err);
    free(buf);
    return rc;
fail:
    pg_error_set(err, path, (pg_pos_t){0, 0}, "cannot read: %s", strerror(-rc));
    free(buf);
    close(fd);
    return rc;
}

void pg_toml_free(pg_toml_value_t *root)
{
    toml_doc_t *doc = (toml_doc_t *)root;

    if (root == NULL)
        return;
    assert(root->kind == PG__TOML_ROOT);
    arena_free(doc->arena);
}

/* --- read API ------------------------------------------------------------------------- */

pg_toml_type_t pg_toml_type(const pg_toml_value_t *v)
{
    return (pg_toml_type_t)v->type;
}

const char *pg_toml_type_name(pg_toml_type_t t)
{
    switch (t) {
    case PG_TOML_TABLE:
        return "table";
    case PG_TOML_ARRAY:
        return "array";
    case PG_TOML_STRING:
        return "string";
    case PG_TOML_INTEGER:
        return "integer";
    case PG_TOML_FLOAT:
        return "float";
    case PG_TOML_BOOL:
        return "boolean";
    case PG_TOML_DATETIME:
        return "offset date-time";
    case PG_TOML_DATETIME_LOCAL:
        return "local date-time";
    case PG_TOML_DATE_LOCAL:
        return "local date";
    case PG_TOML_TIME_LOCAL:
        return "local time";
    }
    return "unknown";
}

pg_pos_t pg_toml_pos(const pg_toml_value_t *v)
{
    return v->pos;
}

size_t pg_toml_table_len(const pg_toml_value_t *t)
{
    return t && t->type == PG_TOML_TABLE ? t->u.tab.n : 0;
}

const pg_toml_value_t *pg_toml_table_at_len(const pg_toml_value_t *t, size_t i, const char **key,
                                            size_t *key_len, pg_pos_t *key_pos)
{
    const pg__toml_entry_t *en;

    if (t == NULL || t->type != PG_TOML_TABLE || i >= t->u.tab.n)
        return NULL;
    en = &t->u.tab.ents[i];
    if (key)
        *key = en->key;
    if (key_len)
        *key_len = en->key_len;
    if (key_pos)
        *key_pos = en->key_pos;
    return en->val;
}

const pg_toml_value_t *pg_toml_table_at(const pg_toml_value_t *t, size_t i, const char **key,
                                        pg_pos_t *key_pos)
{
    return pg_toml_table_at_len(t, i, key, NULL, key_pos);
}

static const pg__toml_entry_t *table_lookup(const pg_toml_value_t *t, const char *key)
{
    size_t n;

    if (t == NULL || t->type != PG_TOML_TABLE || key == NULL)
        return NULL;
    n = strlen(key);
    return table_find(t, key, n, hash_key(key, n));
}

const pg_toml_value_t *pg_toml_table_get(const pg_toml_value_t *t, const char *key)
{
    const pg__toml_entry_t *en = table_lookup(t, key);

    return en ? en->val : NULL;
}

pg_pos_t pg_toml_table_key_pos(const pg_toml_value_t *t, const char *key)
{
    const pg__toml_entry_t *en = table_lookup(t, key);

    return en ? en->key_pos : (pg_pos_t){0, 0};
}

size_t pg_toml_array_len(const pg_toml_value_t *a)
{
    return a && a->type == PG_TOML_ARRAY ? a->u.arr.n : 0;
}

const pg_toml_value_t *pg_toml_array_at(const pg_toml_value_t *a, size_t i)
{
    if (a == NULL || a->type != PG_TOML_ARRAY || i >= a->u.arr.n)
        return NULL;
    return a->u.arr.items[i];
}

const char *pg_toml_string(const pg_toml_value_t *v, size_t *len)
{
    assert(v->type == PG_TOML_STRING);
    if (len)
        *len = v->u.str.len;
    return v->u.str.s;
}

int64_t pg_toml_int(const pg_toml_value_t *v)
{
    assert(v->type == PG_TOML_INTEGER);
    return v->u.i;
}

double pg_toml_float(const pg_toml_value_t *v)
{
    assert(v->type == PG_TOML_FLOAT);
    return v->u.f;
}

bool pg_toml_bool(const pg_toml_value_t *v)
{
    assert(v->type == PG_TOML_BOOL);
    return v->u.b;
}

const pg_toml_datetime_t *pg_toml_datetime(const pg_toml_value_t *v)
{
    assert(v->type >= PG_TOML_DATETIME && v->type <= PG_TOML_TIME_LOCAL);
    return &v->u.dt;
}
