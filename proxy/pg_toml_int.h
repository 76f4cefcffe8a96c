/* pg_toml_int: internals shared by the two halves of the TOML parser:
 *   pg_toml.c      the document: arena, tables (with a hash index once they grow), arrays,
 *                  the grammar of lines, headers, key paths, arrays and inline tables, the
 *                  redefinition rules, and the public read API;
 *   pg_toml_scan.c the bytes: UTF-8 validation, whitespace, comments, newlines, keys, and
 *                  every scalar (four kinds of string, integers, floats, booleans, date-times).
 * Owns: a parser owns its scratch buffer; every tree node lives in the document's arena.
 * Threads: one parser per thread. Errors: -EINVAL with P->err filled (first error wins),
 *   -ENOMEM. Not a public header: only pg_toml*.c include it. */
#ifndef PG_TOML_INT_H
#define PG_TOML_INT_H

#include <locale.h>

#include "pg_toml.h"

/* Depth limit of a tree (arrays, inline tables, dotted keys, header paths all nest): the parser
 * recurses once per array or inline table level and readers walk trees recursively, so hostile
 * input ("[[[[[[...", "a.a.a.a...") must not be able to exhaust a stack. */
#define PG_TOML_MAX_DEPTH 512

/* How a table came to exist; decides what may later define or extend it (TOML 1.0 "Table"
 * and "Inline Table" sections). */
enum pg__toml_kind {
    PG__TOML_ROOT = 1,
    PG__TOML_IMPLICIT, /* an intermediate of a [a.b.c] header: a later [a] may define it */
    PG__TOML_HEADER,   /* defined by [header] or [[header]]: never defined again */
    PG__TOML_DOTTED,   /* created by a dotted key: headers may go through, not define it */
    PG__TOML_INLINE,   /* { ... }: immutable once closed */
    PG__TOML_STATIC,   /* arrays: a [ ... ] value; [[x]] may not append to it */
    PG__TOML_AOT,      /* arrays: created by [[x]] */
};

typedef struct pg__toml_entry {
    const char *key;  /* NUL-terminated copy in the arena */
    uint32_t key_len; /* a quoted key may hold \u0000; inputs are < 2 GiB */
    uint32_t hash;
    pg_pos_t key_pos;
    pg_toml_value_t *val;
} pg__toml_entry_t;

struct pg_toml_value {
    uint8_t type;   /* pg_toml_type_t */
    uint8_t kind;   /* enum pg__toml_kind, tables and arrays */
    uint16_t depth; /* root 0; at most PG_TOML_MAX_DEPTH */
    pg_pos_t pos;
    union {
        struct {
            pg__toml_entry_t *ents;
            uint32_t n, cap;
            uint32_t *idx; /* open addressing, entry index + 1, 0 = empty; NULL while small */
            uint32_t idx_cap;
        } tab;
        struct {
            pg_toml_value_t **items;
            uint32_t n, cap;
        } arr;
        struct {
            char *s;
            size_t len;
        } str;
        int64_t i;
        double f;
        bool b;
        pg_toml_datetime_t dt;
    } u;
};

typedef struct pg__toml_chunk pg__toml_chunk_t;

typedef struct pg__toml_parser {
    const char *buf, *p, *end;
    const char *line_start; /* first byte of the current line, for columns */
    uint32_t line;
    const char *file;
    pg_error_t *err;
    bool failed;
    pg__toml_chunk_t **arena;
    char *scratch; /* decoded key or string; grows; owned by the parser */
    size_t scratch_len, scratch_cap;
    locale_t c_locale; /* for strtod_l: "1.5" whatever setlocale() the program made */
    char keybuf[200];  /* a key path formatted for an error message */
} pg__toml_parser_t;

static inline pg_pos_t pg__toml_pos(const pg__toml_parser_t *P, const char *at)
{
    pg_pos_t pos = {P->line, (uint32_t)(at - P->line_start) + 1};
    return pos;
}

/* pg_toml_scan.c */
int pg__toml_fail(pg__toml_parser_t *P, pg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "end of file", "end of line", "'x'", "byte 0x01": what stands at P->p, for messages. */
const char *pg__toml_found(const pg__toml_parser_t *P, char *buf, size_t size);
/* Whole-input check: valid UTF-8, no overlongs, no surrogates, nothing past U+10FFFF. */
int pg__toml_check_utf8(pg__toml_parser_t *P);
void pg__toml_skip_ws(pg__toml_parser_t *P);
/* At '#': skip the comment up to (not including) the line end; refuses control characters. */
int pg__toml_skip_comment(pg__toml_parser_t *P);
/* At LF or CRLF: consume it and start a new line. Returns 0, or -EINVAL on a bare CR. */
int pg__toml_newline(pg__toml_parser_t *P);
/* Skip spaces, tabs, comments and newlines (inside arrays). */
int pg__toml_skip_ws_nl(pg__toml_parser_t *P);
/* One part of a key (bare, "basic" or 'literal') into P->scratch / P->scratch_len. */
int pg__toml_scan_key_part(pg__toml_parser_t *P);
/* Any value but arrays and inline tables, into *v (whose pos is set by the caller). Strings
 * are decoded into the scratch buffer, then copied into the arena. */
int pg__toml_scan_scalar(pg__toml_parser_t *P, pg_toml_value_t *v);
void *pg__toml_alloc(pg__toml_parser_t *P, size_t size);

#endif
