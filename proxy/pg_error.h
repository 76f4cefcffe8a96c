/* pg_error: a user-facing error with its place in a file ("FILE:LINE:COL: message"), and a
 * growable list of them (so that --check can report every error, not only the first).
 * Owns: pg_errlist_t owns its items; pg_error_t is a plain value.
 * Threads: any; a list is not shared. Errors: negative errno (-ENOMEM). */
#ifndef PG_ERROR_H
#define PG_ERROR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A place in a source file; line and col are 1-based, 0 when unknown. col counts bytes. */
typedef struct pg_pos {
    uint32_t line;
    uint32_t col;
} pg_pos_t;

typedef struct pg_error {
    char file[256]; /* as given by the caller; "" when the input has no file name */
    pg_pos_t pos;
    char msg[512];
} pg_error_t;

typedef struct pg_errlist {
    pg_error_t *items; /* read-only */
    size_t n;          /* read-only */
    size_t cap;        /* private */
} pg_errlist_t;

/* Fill *err; fmt is printf-style. err may be NULL (then nothing happens). */
void pg_error_set(pg_error_t *err, const char *file, pg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write "FILE:LINE:COL: msg" (parts that are unknown are left out) and a newline. */
void pg_error_print(const pg_error_t *err, FILE *out);

/* Format into buf like pg_error_print, without the newline; returns buf. */
const char *pg_error_format(const pg_error_t *err, char *buf, size_t size);

void pg_errlist_init(pg_errlist_t *l);
void pg_errlist_destroy(pg_errlist_t *l);
/* Append a copy of *err; -ENOMEM if the list cannot grow (the error is then dropped). */
int pg_errlist_add(pg_errlist_t *l, const pg_error_t *err);
/* Format and append in one step; returns 0 or -ENOMEM. */
int pg_errlist_addf(pg_errlist_t *l, const char *file, pg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
