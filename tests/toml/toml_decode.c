/* toml_decode: the toml-test decoder for pg_toml. Reads a TOML document on stdin, prints it
 * as toml-test "tagged JSON" on stdout (shared/toml-test/README.md) and exits 0; on invalid
 * input prints "FILE:LINE:COL: message" on stderr and exits 1 (2 on usage or I/O errors).
 * Optional argument: a file to read instead of stdin. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_toml.h"

static void put_json_string(const char *s, size_t n, FILE *out)
{
    putc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            putc(c, out);
    }
    putc('"', out);
}

static void put_frac(int ns, FILE *out)
{
    char b[16];
    int n;

    if (ns == 0)
        return;
    n = snprintf(b, sizeof b, "%09d", ns);
    while (n > 1 && b[n - 1] == '0')
        b[--n] = '\0';
    fprintf(out, ".%s", b);
}

static void put_scalar(const pg_toml_value_t *v, FILE *out)
{
    pg_toml_type_t t = pg_toml_type(v);
    const pg_toml_datetime_t *dt;
    const char *s;
    size_t n;
    double f;

    switch (t) {
    case PG_TOML_STRING:
        s = pg_toml_string(v, &n);
        fputs("{\"type\":\"string\",\"value\":", out);
        put_json_string(s, n, out);
        fputs("}", out);
        return;
    case PG_TOML_INTEGER:
        fprintf(out, "{\"type\":\"integer\",\"value\":\"%lld\"}", (long long)pg_toml_int(v));
        return;
    case PG_TOML_FLOAT:
        f = pg_toml_float(v);
        if (isnan(f))
            fputs("{\"type\":\"float\",\"value\":\"nan\"}", out);
        else if (isinf(f))
            fprintf(out, "{\"type\":\"float\",\"value\":\"%sinf\"}", f < 0 ? "-" : "");
        else
            fprintf(out, "{\"type\":\"float\",\"value\":\"%.17g\"}", f);
        return;
    case PG_TOML_BOOL:
        fprintf(out, "{\"type\":\"bool\",\"value\":\"%s\"}", pg_toml_bool(v) ? "true" : "false");
        return;
    default:
        break;
    }
    dt = pg_toml_datetime(v);
    fprintf(out, "{\"type\":\"%s\",\"value\":\"",
            t == PG_TOML_DATETIME         ? "datetime"
            : t == PG_TOML_DATETIME_LOCAL ? "datetime-local"
            : t == PG_TOML_DATE_LOCAL     ? "date-local"
                                          : "time-local");
    if (t != PG_TOML_TIME_LOCAL)
        fprintf(out, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
    if (t != PG_TOML_DATE_LOCAL) {
        fprintf(out, "%s%02d:%02d:%02d", t == PG_TOML_TIME_LOCAL ? "" : "T", dt->hour, dt->minute,
                dt->second);
        put_frac(dt->nanosecond, out);
    }
    if (t == PG_TOML_DATETIME) {
        int off = dt->offset_minutes;

        if (off == 0)
            fputs("Z", out);
        else
            fprintf(out, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
    }
    fputs("\"}", out);
}

static void put_value(const pg_toml_value_t *v, FILE *out)
{
    size_t n;

    switch (pg_toml_type(v)) {
    case PG_TOML_TABLE:
        putc('{', out);
        n = pg_toml_table_len(v);
        for (size_t i = 0; i < n; i++) {
            const char *key;
            size_t klen;
            const pg_toml_value_t *e = pg_toml_table_at_len(v, i, &key, &klen, NULL);

            if (i)
                putc(',', out);
            put_json_string(key, klen, out);
            putc(':', out);
            put_value(e, out);
        }
        putc('}', out);
        return;
    case PG_TOML_ARRAY:
        putc('[', out);
        n = pg_toml_array_len(v);
        for (size_t i = 0; i < n; i++) {
            if (i)
                putc(',', out);
            put_value(pg_toml_array_at(v, i), out);
        }
        putc(']', out);
        return;
    default:
        put_scalar(v, out);
        return;
    }
}

int main(int argc, char **argv)
{
    FILE *in = stdin;
    const char *name = "<stdin>";
    char *buf = NULL;
    size_t len = 0, cap = 0;
    pg_toml_value_t *root;
    pg_error_t err;
    int rc;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: toml_decode [FILE] < TOML > JSON\n");
        return 2;
    }
    if (argc == 2) {
        name = argv[1];
        in = fopen(name, "rb");
        if (in == NULL) {
            fprintf(stderr, "%s: %s\n", name, strerror(errno));
            return 2;
        }
    }
    for (;;) {
        size_t n;

        if (len == cap) {
            char *nb;

            cap = cap ? cap * 2 : 65536;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                fprintf(stderr, "out of memory\n");
                free(buf);
                return 2;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, in);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(in)) {
        fprintf(stderr, "%s: read error\n", name);
        free(buf);
        return 2;
    }
    if (in != stdin)
        fclose(in);
    rc = pg_toml_parse(buf, len, name, &root, &err);
    free(buf);
    if (rc < 0) {
        pg_error_print(&err, stderr);
        return 1;
    }
    put_value(root, stdout);
    putc('\n', stdout);
    pg_toml_free(root);
    return 0;
}
