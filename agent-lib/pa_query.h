/* pa_query: the few pieces of Go's net/url and strconv that the pprof endpoints need to read
 * their parameters exactly as net/http/pprof reads them.
 * Owns: nothing. Threads: any. Pure functions, not async-signal-safe (no reason to be).
 * Errors: negative errno. */
#ifndef PA_QUERY_H
#define PA_QUERY_H

#include <stddef.h>
#include <stdint.h>

/* Value of key in a raw query string, as Go's url.ParseQuery(q).Get(key) (what FormValue
 * returns for a GET): pairs separated by '&'; a pair containing ';' is skipped (Go >= 1.17);
 * key and value are percent-decoded with '+' as space, and a pair with a bad escape is
 * skipped; the first match wins. Returns 1 and the decoded value in out, 0 if absent,
 * -ENAMETOOLONG if the value does not fit outsize. */
int pa_query_get(const char *query, const char *key, char *out, size_t outsize);

/* strconv.ParseInt(s, 10, 64): optional sign, decimal digits only. -EINVAL, -ERANGE. */
int pa_query_parse_int(const char *s, int64_t *out);

/* strconv.ParseUint(s[0..len), 0, 64): 0x/0X hex, 0b/0B binary, 0o/0O or a leading 0 octal,
 * else decimal; underscores between digits allowed as Go allows them. -EINVAL, -ERANGE (then
 * *out is UINT64_MAX, as Go returns). */
int pa_query_parse_uint0(const char *s, size_t len, uint64_t *out);

#endif
