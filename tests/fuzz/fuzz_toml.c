/* fuzz_toml: libFuzzer target for pg_toml_parse(). Any input must either parse or fail with
 * a positioned message; never crash, leak or read out of bounds (ASan + UBSan prove that).
 * A parsed tree is walked through the whole read API, and every key must be found again by
 * pg_toml_table_get() at its own position (checks the hash index against the entry list). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg_toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const pg_toml_value_t *v, int depth)
{
    size_t n = 1;

    if (depth > 600)
        abort(); /* the parser's nesting limit is 512 */
    switch (pg_toml_type(v)) {
    case PG_TOML_TABLE:
        for (size_t i = 0; i < pg_toml_table_len(v); i++) {
            const char *key;
            size_t klen;
            pg_pos_t kp;
            const pg_toml_value_t *e = pg_toml_table_at_len(v, i, &key, &klen, &kp);

            if (e == NULL || key[klen] != '\0' || kp.line == 0)
                abort();
            if (strlen(key) == klen) {
                pg_pos_t kp2 = pg_toml_table_key_pos(v, key);

                if (pg_toml_table_get(v, key) != e || kp2.line != kp.line || kp2.col != kp.col)
                    abort();
            }
            n += walk(e, depth + 1);
        }
        break;
    case PG_TOML_ARRAY:
        for (size_t i = 0; i < pg_toml_array_len(v); i++)
            n += walk(pg_toml_array_at(v, i), depth + 1);
        break;
    case PG_TOML_STRING: {
        size_t len;
        const char *s = pg_toml_string(v, &len);

        if (s[len] != '\0')
            abort();
        break;
    }
    case PG_TOML_INTEGER:
        (void)pg_toml_int(v);
        break;
    case PG_TOML_FLOAT:
        (void)pg_toml_float(v);
        break;
    case PG_TOML_BOOL:
        (void)pg_toml_bool(v);
        break;
    default: {
        const pg_toml_datetime_t *dt = pg_toml_datetime(v);

        if (dt->month < 0 || dt->month > 12 || dt->hour > 23 || dt->nanosecond > 999999999)
            abort();
        break;
    }
    }
    if (pg_toml_pos(v).line == 0)
        abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pg_toml_value_t *root;
    pg_error_t err;
    char buf[1024];

    /* A copy of exactly size bytes, so ASan catches a read past the end. */
    char *copy = malloc(size ? size : 1);

    if (copy == NULL)
        return 0;
    if (size)
        memcpy(copy, data, size);
    if (pg_toml_parse(copy, size, "fuzz.toml", &root, &err) == 0) {
        walk(root, 0);
        pg_toml_free(root);
    } else {
        if (err.msg[0] == '\0' || root != NULL)
            abort();
        pg_error_format(&err, buf, sizeof buf);
    }
    free(copy);
    return 0;
}
