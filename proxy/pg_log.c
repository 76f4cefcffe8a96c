/* pg_log: see pg_log.h. */
#include "pg_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int level_singleton = -1;
static _Thread_local char thread_tag[16] = "main";

static int level_from_env(void)
{
    const char *e = getenv("PG_LOG_LEVEL");

    if (e == NULL)
        return PG_LOG_INFO;
    if (strcasecmp(e, "debug") == 0)
        return PG_LOG_DEBUG;
    if (strcasecmp(e, "warn") == 0)
        return PG_LOG_WARN;
    if (strcasecmp(e, "error") == 0)
        return PG_LOG_ERROR;
    return PG_LOG_INFO;
}

void pg_log_set_level(int level)
{
    atomic_store(&level_singleton, level);
}

void pg_log_set_thread(const char *tag)
{
    snprintf(thread_tag, sizeof thread_tag, "%s", tag);
}

void pg_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    int cur = atomic_load(&level_singleton);
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (cur < 0) {
        cur = level_from_env();
        atomic_store(&level_singleton, cur);
    }
    if (level > cur || level < 0)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02dZ profgate[%s] %s: ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 thread_tag, names[level]);
    if (n < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
