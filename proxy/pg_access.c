/* pg_access: see pg_access.h. */
#include "pg_access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_config.h"
#include "pg_http.h"

#define LINE_MAX_BYTES 4096

static atomic_uint_fast64_t dropped_singleton;

int pg_access_open(const char *spec, int *fd)
{
    *fd = -1;
    if (spec == NULL || strcmp(spec, "off") == 0)
        return 0;
    if (strcmp(spec, "stderr") == 0) {
        *fd = STDERR_FILENO;
        return 0;
    }
    *fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return *fd < 0 ? -errno : 0;
}

void pg_access_close(int fd)
{
    if (fd > STDERR_FILENO)
        close(fd);
}

uint64_t pg_access_dropped(void)
{
    return atomic_load(&dropped_singleton);
}

typedef struct out {
    char *p;
    size_t n, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->n + n > o->cap)
        n = o->cap - o->n;
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(out_t *o, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        o->n += (size_t)k < o->cap - o->n ? (size_t)k : o->cap - o->n - 1;
}

/* Bytes a client sent, made safe for a quoted log field: '"', '\' and control bytes as
 * \xHH (nginx's escaping), or JSON's escapes. */
static void put_escaped(out_t *o, const char *s, size_t n, int json)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n && o->n + 6 < o->cap; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\' || ch < 0x20 || ch == 0x7f) {
            char e[6];

            if (json) {
                if (ch == '"' || ch == '\\') {
                    e[0] = '\\', e[1] = (char)ch;
                    put(o, e, 2);
                } else {
                    e[0] = '\\', e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[ch >> 4],
                    e[5] = hex[ch & 15];
                    put(o, e, 6);
                }
            } else {
                e[0] = '\\', e[1] = 'x', e[2] = hex[ch >> 4], e[3] = hex[ch & 15];
                put(o, e, 4);
            }
        } else {
            put(o, (const char *)&ch, 1);
        }
    }
}

static const char *timestamp(int json)
{
    static _Thread_local time_t last[2] = {-1, -1};
    static _Thread_local char buf[2][40];
    time_t now = time(NULL);
    struct tm tm;

    if (now != last[json]) {
        gmtime_r(&now, &tm);
        strftime(buf[json], sizeof buf[json], json ? "%Y-%m-%dT%H:%M:%SZ" : "%d/%b/%Y:%H:%M:%S +0000",
                 &tm);
        last[json] = now;
    }
    return buf[json];
}

void pg_access_write(int fd, int format, const pg_access_entry_t *e)
{
    char line[LINE_MAX_BYTES], addr[64];
    out_t o = {line, 0, sizeof line - 1};
    ssize_t w;

    if (fd < 0)
        return;
    if (pg_http_addr_text(e->peer, addr, sizeof addr) == 0)
        snprintf(addr, sizeof addr, "-");
    if (format == PG_LOG_JSON) {
        putf(&o, "{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"", timestamp(1), addr);
        put_escaped(&o, e->method, strlen(e->method), 1);
        puts_(&o, "\",\"target\":\"");
        put_escaped(&o, e->target, e->target_len, 1);
        putf(&o, "\",\"protocol\":\"HTTP/%d.%d\",\"status\":", e->http_major, e->http_minor);
        if (e->status)
            putf(&o, "%d", e->status);
        else
            puts_(&o, "null");
        putf(&o, ",\"bytes\":%llu,\"duration_ms\":%.3f,\"upstream\":",
             (unsigned long long)e->bytes_out, (double)e->duration_us / 1000.0);
        if (e->upstream) {
            puts_(&o, "\"");
            put_escaped(&o, e->upstream, strlen(e->upstream), 1);
            puts_(&o, "\"");
        } else {
            puts_(&o, "null");
        }
        puts_(&o, ",\"referer\":\"");
        if (e->referer)
            put_escaped(&o, e->referer, e->referer_len, 1);
        puts_(&o, "\",\"user_agent\":\"");
        if (e->ua)
            put_escaped(&o, e->ua, e->ua_len, 1);
        puts_(&o, "\"");
        if (e->cause)
            putf(&o, ",\"cause\":\"%s\"", e->cause);
        puts_(&o, "}");
    } else {
        putf(&o, "%s - - [%s] \"", addr, timestamp(0));
        put_escaped(&o, e->method, strlen(e->method), 0);
        puts_(&o, " ");
        put_escaped(&o, e->target, e->target_len, 0);
        putf(&o, " HTTP/%d.%d\" ", e->http_major, e->http_minor);
        if (e->status)
            putf(&o, "%d", e->status);
        else
            puts_(&o, "-");
        putf(&o, " %llu", (unsigned long long)e->bytes_out);
        if (format == PG_LOG_COMBINED) {
            puts_(&o, " \"");
            if (e->referer)
                put_escaped(&o, e->referer, e->referer_len, 0);
            else
                puts_(&o, "-");
            puts_(&o, "\" \"");
            if (e->ua)
                put_escaped(&o, e->ua, e->ua_len, 0);
            else
                puts_(&o, "-");
            putf(&o, "\" %.3f", (double)e->duration_us / 1e6);
        }
    }
    line[o.n++] = '\n';
    w = write(fd, line, o.n);
    if (w != (ssize_t)o.n)
        atomic_fetch_add(&dropped_singleton, 1);
}
