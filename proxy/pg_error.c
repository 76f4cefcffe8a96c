/* pg_error: see pg_error.h. */
#include "pg_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 4, 0)))
static void error_vset(pg_error_t *err, const char *file, pg_pos_t pos, const char *fmt,
                       va_list ap)
{
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->pos = pos;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

void pg_error_set(pg_error_t *err, const char *file, pg_pos_t pos, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    error_vset(err, file, pos, fmt, ap);
    va_end(ap);
}

const char *pg_error_format(const pg_error_t *err, char *buf, size_t size)
{
    size_t off = 0;
    int n;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (err->file[0]) {
        n = snprintf(buf, size, "%s:", err->file);
        off = n > 0 ? (size_t)n : 0;
    }
    if (err->pos.line && off < size) {
        if (err->pos.col)
            n = snprintf(buf + off, size - off, "%u:%u:", err->pos.line, err->pos.col);
        else
            n = snprintf(buf + off, size - off, "%u:", err->pos.line);
        off += n > 0 ? (size_t)n : 0;
    }
    if (off < size)
        snprintf(buf + off, size - off, "%s%s", off ? " " : "", err->msg);
    return buf;
}

void pg_error_print(const pg_error_t *err, FILE *out)
{
    char buf[1024];

    fprintf(out, "%s\n", pg_error_format(err, buf, sizeof buf));
}

void pg_errlist_init(pg_errlist_t *l)
{
    memset(l, 0, sizeof *l);
}

void pg_errlist_destroy(pg_errlist_t *l)
{
    free(l->items);
    memset(l, 0, sizeof *l);
}

int pg_errlist_add(pg_errlist_t *l, const pg_error_t *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        pg_error_t *items = realloc(l->items, cap * sizeof *items);

        if (items == NULL)
            return -ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = *err;
    return 0;
}

int pg_errlist_addf(pg_errlist_t *l, const char *file, pg_pos_t pos, const char *fmt, ...)
{
    pg_error_t err;
    va_list ap;

    va_start(ap, fmt);
    error_vset(&err, file, pos, fmt, ap);
    va_end(ap);
    return pg_errlist_add(l, &err);
}
