/* pa_symbol: the /debug/pprof/symbol protocol of net/http/pprof. The request is a list of
 * program counters separated by '+' (POST body, or for GET the raw query string), each word
 * parsed as strconv.ParseUint(word, 0, 64); the answer is "num_symbols: 1\n" and one line
 * "%#x NAME\n" for each non-zero pc that resolves, in request order.
 * Owns: the answer buffer is the caller's (free()). Threads: any; lookup is called on the
 * caller's thread. Not async-signal-safe. Errors: negative errno. */
#ifndef PA_SYMBOL_H
#define PA_SYMBOL_H

#include <stddef.h>
#include <stdint.h>

/* Name of the function containing pc, or NULL when pc resolves to nothing. The string must
 * stay valid until pa_symbol_answer returns. */
typedef const char *(*pa_symbol_lookup_fn)(void *arg, uint64_t pc);

int pa_symbol_answer(const char *in, size_t len, pa_symbol_lookup_fn lookup, void *arg, char **out,
                     size_t *outlen);

#endif
