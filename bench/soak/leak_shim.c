/* leak_shim: a deliberate leak, to show that bench/soak/run.sh's RSS check can fail.
 * LD_PRELOADed into randomstring by run.sh when SOAK_LEAK=1, it wraps read (libuv reads
 * every request from its socket with it; the gateway keeps its upstream connections, so
 * accept would be too rare) and, every LEAK_EVERY reads that returned data (default
 * 10000, about one request each), mallocs LEAK_KB KiB (default 64), touches every page and
 * never frees it: about 6.5 bytes a request, some 280 KiB per traffic cycle of the soak.
 *   SOAK_LEAK=1 bench/soak/run.sh 5      (compiles this file; must print "soak: FAIL")
 * Not part of the build and never linked into anything shipped. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef ssize_t (*read_fn)(int, void *, size_t);

static void *volatile kept; /* the last leaked block; each holds the one before */

static long env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    long v = s != NULL ? strtol(s, NULL, 10) : 0;
    return v > 0 ? v : dflt;
}

ssize_t read(int fd, void *buf, size_t len)
{
    static _Atomic(read_fn) next;
    static atomic_long reads;
    static _Thread_local int inside; /* malloc below may read (the agent's unwinder) */
    read_fn f = atomic_load(&next);

    if (f == NULL) {
        f = (read_fn)dlsym(RTLD_NEXT, "read");
        atomic_store(&next, f);
    }
    ssize_t rc = f(fd, buf, len);
    if (rc > 0 && !inside && (atomic_fetch_add(&reads, 1) + 1) % env_long("LEAK_EVERY", 10000) == 0) {
        size_t n = (size_t)env_long("LEAK_KB", 64) * 1024;
        inside = 1;
        char *p = malloc(n);
        if (p != NULL) {
            memset(p, 0x5a, n); /* resident, and never freed: the leak */
            *(void **)p = kept; /* chained, so the compiler cannot drop malloc and memset */
            kept = p;
        }
        inside = 0;
    }
    return rc;
}
