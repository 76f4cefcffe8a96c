/* pg_toml: a TOML 1.0.0 parser producing a tree of typed values, each with its source
 * position, and a small read API for the config layer and the conformance decoder.
 * Owns: pg_toml_parse() returns the root table, which owns the whole tree; every pointer
 *   obtained from it (values, keys, strings, datetimes) stays valid until pg_toml_free(root).
 * Threads: any; one tree must not be used by two threads at once without a lock (read-only
 *   use from several threads is fine).
 * Errors: negative errno (-ENOMEM, -EINVAL for a syntax or semantic error, -EIO etc. for
 *   files); a parse error also fills *err with FILE:LINE:COL and a plain-words message. */
#ifndef PG_TOML_H
#define PG_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_error.h"

typedef enum pg_toml_type {
    PG_TOML_TABLE = 1,      /* includes the root, [tables], inline tables, [[array]] items */
    PG_TOML_ARRAY,          /* includes arrays of tables */
    PG_TOML_STRING,
    PG_TOML_INTEGER,
    PG_TOML_FLOAT,
    PG_TOML_BOOL,
    PG_TOML_DATETIME,       /* offset date-time */
    PG_TOML_DATETIME_LOCAL,
    PG_TOML_DATE_LOCAL,
    PG_TOML_TIME_LOCAL,
} pg_toml_type_t;

/* Date/time values, as written. Fields a kind does not have are 0. */
typedef struct pg_toml_datetime {
    int year, month, day;        /* date kinds */
    int hour, minute, second;    /* time kinds */
    int nanosecond;              /* fractional seconds, truncated to ns */
    int offset_minutes;          /* PG_TOML_DATETIME only; Z is 0 */
} pg_toml_datetime_t;

typedef struct pg_toml_value pg_toml_value_t; /* opaque */

/* Parse len bytes of buf (need not be NUL-terminated; any bytes accepted as input, invalid
 * UTF-8 is a parse error). filename is used only in error messages (may be NULL).
 * On success *root is a PG_TOML_TABLE. */
int pg_toml_parse(const char *buf, size_t len, const char *filename, pg_toml_value_t **root,
                  pg_error_t *err);
/* Read a whole file and parse it; I/O errors also fill *err naming the file. */
int pg_toml_parse_file(const char *path, pg_toml_value_t **root, pg_error_t *err);
void pg_toml_free(pg_toml_value_t *root);

pg_toml_type_t pg_toml_type(const pg_toml_value_t *v);
const char *pg_toml_type_name(pg_toml_type_t t); /* "table", "array", "string", "integer", ... */
/* Where the value starts in the source (for a table from a [header], the header). */
pg_pos_t pg_toml_pos(const pg_toml_value_t *v);

/* Tables: entries in the order they were defined. */
size_t pg_toml_table_len(const pg_toml_value_t *t);
/* i-th entry; *key (NUL-terminated) and *key_pos are set when non-NULL. */
const pg_toml_value_t *pg_toml_table_at(const pg_toml_value_t *t, size_t i, const char **key,
                                        pg_pos_t *key_pos);
/* Like pg_toml_table_at, also giving the key's length (a quoted key may hold \u0000). */
const pg_toml_value_t *pg_toml_table_at_len(const pg_toml_value_t *t, size_t i, const char **key,
                                            size_t *key_len, pg_pos_t *key_pos);
/* NULL when absent (or t is not a table). */
const pg_toml_value_t *pg_toml_table_get(const pg_toml_value_t *t, const char *key);
/* Position of key's name in t, for "unknown key" errors; {0,0} if absent. */
pg_pos_t pg_toml_table_key_pos(const pg_toml_value_t *t, const char *key);

/* Arrays. */
size_t pg_toml_array_len(const pg_toml_value_t *a);
const pg_toml_value_t *pg_toml_array_at(const pg_toml_value_t *a, size_t i);

/* Scalars; calling one on a value of another type is a programmer error (asserts). */
const char *pg_toml_string(const pg_toml_value_t *v, size_t *len); /* NUL-terminated; len
                                                         excludes it (a string may hold \u0000) */
int64_t pg_toml_int(const pg_toml_value_t *v);
double pg_toml_float(const pg_toml_value_t *v);
bool pg_toml_bool(const pg_toml_value_t *v);
const pg_toml_datetime_t *pg_toml_datetime(const pg_toml_value_t *v); /* all 4 date/time kinds */

#endif
