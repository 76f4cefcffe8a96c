/* fuzz_symbol: libFuzzer target for pa_symbol_answer, the /debug/pprof/symbol body parser
 * (words separated by '+', each read as Go's strconv.ParseUint(word, 0, 64)). The lookup
 * resolves a pc when pc % 3 == 0, to the name "f_<pc in hex>". Checks: the answer starts
 * "num_symbols: 1\n"; every further line is "<%#x pc> f_<same pc>\n" with a non-zero pc;
 * there are no more lines than words; the answer is exactly its reported length. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_symbol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char names[4][32];
static unsigned next_name;

static const char *lookup(void *arg, uint64_t pc)
{
    char *n;

    (void)arg;
    if (pc == 0)
        abort(); /* zero pcs are skipped, as Go skips them */
    if (pc % 3 != 0)
        return NULL;
    n = names[next_name++ % 4]; /* valid until the answer is built (it is copied at once) */
    snprintf(n, sizeof names[0], "f_%" PRIx64, pc);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char head[] = "num_symbols: 1\n";
    char *out = NULL, *p, *end;
    size_t outlen = 0, words = 1, lines = 0;

    for (size_t i = 0; i < size; i++)
        words += data[i] == '+';
    if (pa_symbol_answer((const char *)data, size, lookup, NULL, &out, &outlen) < 0)
        return 0; /* -ENOMEM only */
    if (out == NULL || strlen(out) != outlen || outlen < sizeof head - 1 ||
        memcmp(out, head, sizeof head - 1) != 0)
        abort();
    p = out + sizeof head - 1;
    end = out + outlen;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *sp, *e;
        unsigned long long pc, named;

        if (nl == NULL || p[0] != '0' || p[1] != 'x')
            abort();
        pc = strtoull(p, &e, 16);
        sp = e;
        if (pc == 0 || *sp != ' ' || sp[1] != 'f' || sp[2] != '_')
            abort();
        named = strtoull(sp + 3, &e, 16);
        if (e != nl || named != pc)
            abort();
        lines++;
        p = nl + 1;
    }
    if (lines > words)
        abort();
    free(out);
    return 0;
}
