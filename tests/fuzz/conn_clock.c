/* conn_clock: fuzz_conn's virtual monotonic clock. The harness defines clock_gettime, so that
 * libuv's loop time (uv_now, uv_hrtime: CLOCK_MONOTONIC or _COARSE through the PLT) and
 * pg_buf's CLOCK_MONOTONIC_COARSE read a clock that stands still unless the run moves it
 * (fc_clock_add). So a connection's timers (header_timeout's 408, idle_timeout, an
 * upstream's connect_timeout and timeout's 504, the pool's idle timeout, the linger after a
 * close, the drain deadline) fire exactly when the input says, whatever the machine's speed,
 * and a run that waits an hour takes no time. CLOCK_REALTIME and the other clocks are the
 * real ones (libFuzzer times its runs with the system clock). The definition overrides
 * ASan's interceptor of the same name (a weak symbol); the real function is looked up once.
 * Owns: the clock's offset. Threads: any (an atomic); only the fuzzing thread moves it.
 * Errors: clock_gettime's own (EINVAL for an unknown clock). */
#include "conn_harness.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts);

typedef int (*gettime_fn)(clockid_t, struct timespec *);

static _Atomic(gettime_fn) real_gettime;
static atomic_uint_fast64_t virtual_ns; /* 0 until the first read of a monotonic clock */

static int real_clock(clockid_t id, struct timespec *ts)
{
    gettime_fn f = atomic_load(&real_gettime);

    if (f == NULL) {
        f = (gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        if (f == NULL)
            fc_fail("clock_gettime: no real function behind the harness's");
        atomic_store(&real_gettime, f);
    }
    return f(id, ts);
}

static uint64_t now_ns(void)
{
    uint64_t v = atomic_load(&virtual_ns);
    struct timespec t;

    if (v != 0)
        return v;
    if (real_clock(CLOCK_MONOTONIC, &t) < 0)
        fc_fail("clock_gettime(CLOCK_MONOTONIC)");
    v = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
    {
        uint_fast64_t zero = 0;

        if (!atomic_compare_exchange_strong(&virtual_ns, &zero, v))
            v = zero;
    }
    return v;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    uint64_t v;

    if (id != CLOCK_MONOTONIC && id != CLOCK_MONOTONIC_COARSE && id != CLOCK_MONOTONIC_RAW)
        return real_clock(id, ts);
    v = now_ns();
    ts->tv_sec = (time_t)(v / 1000000000u);
    ts->tv_nsec = (long)(v % 1000000000u);
    return 0;
}

uint64_t fc_clock_ms(void)
{
    return now_ns() / 1000000u;
}

void fc_clock_add(uint64_t ms)
{
    now_ns();
    atomic_fetch_add(&virtual_ns, ms * 1000000u);
}
