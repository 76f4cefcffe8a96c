/* pa_query: Go-compatible query and number parsing (see pa_query.h). */
#include "pa_query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pa_server.h"

int pa_query_get(const char *query, const char *key, char *out, size_t outsize)
{
    const char *p = query;
    size_t klen = strlen(key);

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t rawk = eq ? (size_t)(eq - p) : plen;
        char kbuf[256];

        if (plen > 0 && memchr(p, ';', plen) == NULL &&
            pa__url_unescape(p, rawk, kbuf, sizeof(kbuf), 1) == 0 && strlen(kbuf) == klen &&
            memcmp(kbuf, key, klen) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vlen = eq ? plen - rawk - 1 : 0;
            int rc = pa__url_unescape(v, vlen, out, outsize, 1);
            if (rc == 0)
                return 1;
            if (rc == -ENAMETOOLONG)
                return rc;
            /* a bad escape in the value: Go skips the pair */
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

int pa_query_parse_int(const char *s, int64_t *out)
{
    int neg = 0;
    uint64_t v = 0, lim;

    *out = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (*s == '\0')
        return -EINVAL;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        if (v > (lim - (uint64_t)(*s - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int lower(int c)
{
    return c | 0x20;
}

/* Go's strconv.underscoreOK, for a string without sign */
static int underscore_ok(const char *s, size_t len)
{
    char saw = '^';
    size_t i = 0;
    int hex = 0;

    if (len >= 2 && s[0] == '0' &&
        (lower(s[1]) == 'b' || lower(s[1]) == 'o' || lower(s[1]) == 'x')) {
        i = 2;
        saw = '0';
        hex = lower(s[1]) == 'x';
    }
    for (; i < len; i++) {
        if ((s[i] >= '0' && s[i] <= '9') || (hex && lower(s[i]) >= 'a' && lower(s[i]) <= 'f')) {
            saw = '0';
            continue;
        }
        if (s[i] == '_') {
            if (saw != '0')
                return 0;
            saw = '_';
            continue;
        }
        if (saw == '_')
            return 0;
        saw = '!';
    }
    return saw != '_';
}

int pa_query_parse_uint0(const char *s0, size_t len0, uint64_t *out)
{
    const char *s = s0;
    size_t len = len0;
    unsigned base = 10;
    int underscores = 0;
    uint64_t n = 0;

    *out = 0;
    if (len == 0)
        return -EINVAL;
    if (s[0] == '0') {
        if (len >= 3 && lower(s[1]) == 'b') {
            base = 2;
            s += 2;
            len -= 2;
        } else if (len >= 3 && lower(s[1]) == 'o') {
            base = 8;
            s += 2;
            len -= 2;
        } else if (len >= 3 && lower(s[1]) == 'x') {
            base = 16;
            s += 2;
            len -= 2;
        } else {
            base = 8;
            s += 1;
            len -= 1;
        }
    }
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        unsigned d;
        if (c == '_') {
            underscores = 1;
            continue;
        }
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (lower(c) >= 'a' && lower(c) <= 'z')
            d = (unsigned)(lower(c) - 'a' + 10);
        else
            return -EINVAL;
        if (d >= base)
            return -EINVAL;
        if (n > (UINT64_MAX - d) / base) {
            *out = UINT64_MAX;
            return -ERANGE;
        }
        n = n * base + d;
    }
    if (underscores && !underscore_ok(s0, len0))
        return -EINVAL;
    *out = n;
    return 0;
}
