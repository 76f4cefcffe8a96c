/* pa_symbol: net/http/pprof's Symbol handler, minus the HTTP (see pa_symbol.h). */
#include "pa_symbol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_query.h"

typedef struct outbuf {
    char *p;
    size_t len, cap;
    int oom;
} outbuf_t;

static void put(outbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (b->len + n + 1 > cap)
            cap *= 2;
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

int pa_symbol_answer(const char *in, size_t len, pa_symbol_lookup_fn lookup, void *arg, char **out,
                     size_t *outlen)
{
    static const char head[] = "num_symbols: 1\n";
    outbuf_t b = {0};
    size_t i = 0;

    *out = NULL;
    *outlen = 0;
    put(&b, head, sizeof(head) - 1);
    /* as Go's loop: every word, including the last one (no '+' after it) and empty ones */
    for (;;) {
        const char *w = in + i;
        const char *plus = memchr(w, '+', len - i);
        size_t wlen = plus ? (size_t)(plus - w) : len - i;
        uint64_t pc = 0;

        (void)pa_query_parse_uint0(w, wlen, &pc); /* errors leave 0, or UINT64_MAX as Go */
        if (pc != 0) {
            const char *name = lookup(arg, pc);
            if (name != NULL) {
                char num[32];
                int n = snprintf(num, sizeof(num), "%#llx ", (unsigned long long)pc);
                put(&b, num, (size_t)n);
                put(&b, name, strlen(name));
                put(&b, "\n", 1);
            }
        }
        if (plus == NULL)
            break;
        i += wlen + 1;
    }
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}
