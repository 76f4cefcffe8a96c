/* pa_lock: control side of contention profiling (see pa_lock.h): the rates, from the
 * environment at load and from the setters; the hooks and tables are in pa_lock_hook.c. */
#include "pa_lock.h"

#include <stdio.h>
#include <stdlib.h>

#include "pa_query.h"

void pa_lock_set_block_rate(int64_t rate_ns)
{
    atomic_store(&pa__lock_block_rate, rate_ns > 0 ? rate_ns : 0);
}

int64_t pa_lock_block_rate(void)
{
    return atomic_load(&pa__lock_block_rate);
}

int64_t pa_lock_mutex_fraction(int64_t rate)
{
    if (rate < 0)
        return atomic_load(&pa__lock_mutex_fraction);
    return atomic_exchange(&pa__lock_mutex_fraction, rate);
}

static void from_env(const char *name, void (*set)(int64_t))
{
    const char *v = getenv(name);
    int64_t n;

    if (v == NULL || *v == '\0')
        return;
    if (pa_query_parse_int(v, &n) == 0 && n >= 0)
        set(n);
    else
        fprintf(stderr, "profagent: %s=\"%s\" ignored: want an integer >= 0\n", name, v);
}

static void set_fraction(int64_t n)
{
    (void)pa_lock_mutex_fraction(n);
}

__attribute__((constructor)) static void lock_on_load(void)
{
    from_env("PROFAGENT_BLOCK_RATE", pa_lock_set_block_rate);
    from_env("PROFAGENT_MUTEX_FRACTION", set_fraction);
}
