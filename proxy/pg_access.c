/* pg_access: see pg_access.h. */
#include "pg_access.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pg_config.h"
#include "pg_http.h"

_Static_assert(PG_ACCESS_LINE_MAX <= PIPE_BUF, "a line must fit one atomic pipe write");
_Static_assert(PG_ACCESS_BATCH_BYTES >= 2 * PG_ACCESS_LINE_MAX, "a batch holds lines");

static atomic_uint_fast64_t dropped_singleton;
/* the calling thread's batch (pg_access_batch_attach), NULL: lines are written at once */
static _Thread_local pg_access_batch_t *batch_tls;

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

static void put_cut(out_t *o, const char *s, size_t n)
{
    n = o->cap - o->n;
    memcpy(o->p + o->n, s, n);
    o->n = o->cap;
}

/* Inlined: with n a constant (PUT_LIT) the copy that fits is a few moves, not a call. */
static inline void put(out_t *o, const char *s, size_t n)
{
    if (o->n + n > o->cap) {
        put_cut(o, s, n);
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* a string literal, its length known at compile time */
#define PUT_LIT(o, lit) put((o), "" lit, sizeof(lit) - 1)

/* The line is formatted with plain copies and digit loops, not stdio: vsnprintf was ~60% of
 * the instructions of a request with the access log on (bench/proxy/instructions.sh
 * --server-toml 'access_log = ...': 19,672 per request against 10,984 with it off). */
static void put_u64(out_t *o, uint64_t v)
{
    char d[20];
    size_t i = sizeof d;

    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, d + i, sizeof d - i);
}

/* "1.1": one digit each, as every version llhttp accepts has */
static void put_version(out_t *o, int major, int minor)
{
    char d[3] = {(char)('0' + major), '.', (char)('0' + minor)};

    if (major < 0 || major > 9 || minor < 0 || minor > 9) {
        put_u64(o, (uint64_t)major);
        put(o, ".", 1);
        put_u64(o, (uint64_t)minor);
        return;
    }
    put(o, d, 3);
}

/* whole.frac with frac (< 1000) as three digits */
static void put_milli(out_t *o, uint64_t whole, unsigned frac)
{
    char d[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                 (char)('0' + frac % 10)};

    put_u64(o, whole);
    put(o, d, 4);
}

/* 1 for the bytes put_escaped escapes: '"', '\\', control bytes and DEL */
static const unsigned char escaped[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00-0x1f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1,
};

/* Bytes a client sent, made safe for a quoted log field: '"', '\' and control bytes as
 * \xHH (nginx's escaping), or JSON's escapes. Runs of bytes that need none are copied at
 * once. */
static void put_escaped(out_t *o, const char *s, size_t n, int json)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run;

    while (i < n && o->n + 6 < o->cap) {
        unsigned char ch;
        char e[6];

        run = i;
        while (run < n && !escaped[(unsigned char)s[run]])
            run++;
        if (run > i) {
            /* as many as leave room for one escape after them, as byte by byte did */
            size_t k = run - i, room = o->cap - o->n - 6;

            if (k > room)
                k = room;
            put(o, s + i, k);
            i += k;
            continue;
        }
        ch = (unsigned char)s[i++];
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

/* The line for e, its '\n' included, into line (PG_ACCESS_LINE_MAX bytes); its length. */
static size_t format_line(char *line, int format, const pg_access_entry_t *e)
{
    char addr[64];
    out_t o = {line, 0, PG_ACCESS_LINE_MAX - 1};
    const char *atext = e->peer_text;
    size_t alen = e->peer_text_len;
    uint64_t ms;

    if (atext == NULL) {
        alen = pg_http_addr_text(e->peer, addr, sizeof addr);
        atext = addr;
        if (alen == 0)
            atext = "-", alen = 1;
    }
    if (format == PG_LOG_JSON) {
        PUT_LIT(&o, "{\"time\":\"");
        puts_(&o, timestamp(1));
        PUT_LIT(&o, "\",\"client\":\"");
        put(&o, atext, alen);
        PUT_LIT(&o, "\",\"method\":\"");
        put_escaped(&o, e->method, strlen(e->method), 1);
        PUT_LIT(&o, "\",\"target\":\"");
        put_escaped(&o, e->target, e->target_len, 1);
        PUT_LIT(&o, "\",\"protocol\":\"HTTP/");
        put_version(&o, e->http_major, e->http_minor);
        PUT_LIT(&o, "\",\"status\":");
        if (e->status)
            put_u64(&o, (uint64_t)e->status);
        else
            PUT_LIT(&o, "null");
        PUT_LIT(&o, ",\"bytes\":");
        put_u64(&o, e->bytes_out);
        PUT_LIT(&o, ",\"duration_ms\":");
        put_milli(&o, e->duration_us / 1000, (unsigned)(e->duration_us % 1000));
        PUT_LIT(&o, ",\"upstream\":");
        if (e->upstream) {
            PUT_LIT(&o, "\"");
            put_escaped(&o, e->upstream, strlen(e->upstream), 1);
            PUT_LIT(&o, "\"");
        } else {
            PUT_LIT(&o, "null");
        }
        PUT_LIT(&o, ",\"referer\":\"");
        if (e->referer)
            put_escaped(&o, e->referer, e->referer_len, 1);
        PUT_LIT(&o, "\",\"user_agent\":\"");
        if (e->ua)
            put_escaped(&o, e->ua, e->ua_len, 1);
        PUT_LIT(&o, "\"");
        if (e->cause) {
            PUT_LIT(&o, ",\"cause\":\"");
            puts_(&o, e->cause);
            PUT_LIT(&o, "\"");
        }
        PUT_LIT(&o, "}");
    } else {
        put(&o, atext, alen);
        PUT_LIT(&o, " - - [");
        puts_(&o, timestamp(0));
        PUT_LIT(&o, "] \"");
        put_escaped(&o, e->method, strlen(e->method), 0);
        PUT_LIT(&o, " ");
        put_escaped(&o, e->target, e->target_len, 0);
        PUT_LIT(&o, " HTTP/");
        put_version(&o, e->http_major, e->http_minor);
        PUT_LIT(&o, "\" ");
        if (e->status)
            put_u64(&o, (uint64_t)e->status);
        else
            PUT_LIT(&o, "-");
        PUT_LIT(&o, " ");
        put_u64(&o, e->bytes_out);
        if (format == PG_LOG_COMBINED) {
            PUT_LIT(&o, " \"");
            if (e->referer)
                put_escaped(&o, e->referer, e->referer_len, 0);
            else
                PUT_LIT(&o, "-");
            PUT_LIT(&o, "\" \"");
            if (e->ua)
                put_escaped(&o, e->ua, e->ua_len, 0);
            else
                PUT_LIT(&o, "-");
            /* seconds, rounded half up to the millisecond */
            PUT_LIT(&o, "\" ");
            ms = (e->duration_us + 500) / 1000;
            put_milli(&o, ms / 1000, (unsigned)(ms % 1000));
        }
    }
    line[o.n++] = '\n';
    return o.n;
}

static size_t count_lines(const char *p, size_t n)
{
    const char *end = p + n;
    size_t k = 0;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        k++;
    }
    return k;
}

/* Most bytes one write to fd may carry and stay whole among other threads' writes: any
 * number on a regular file (an O_APPEND write, or one at a shared offset, is done under the
 * file's lock), PIPE_BUF elsewhere (atomic on a pipe; a stream socket or a terminal may let
 * another writer in between larger pieces). */
static size_t chunk_of(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        return SIZE_MAX;
    return PIPE_BUF;
}

void pg_access_batch_init(pg_access_batch_t *b)
{
    b->fd = -1;
    b->chunk = PIPE_BUF;
    b->n = 0;
}

void pg_access_batch_attach(pg_access_batch_t *b)
{
    batch_tls = b;
}

int pg_access_batch_flush(pg_access_batch_t *b)
{
    size_t off = 0, len;
    const char *nl;
    ssize_t w;
    int r = 0;

    while (off < b->n) {
        len = b->n - off;
        if (len > b->chunk) {
            /* whole lines only: one ends within every chunk (a line <= PIPE_BUF bytes) */
            nl = memrchr(b->buf + off, '\n', b->chunk);
            len = (size_t)(nl - (b->buf + off)) + 1;
        }
        w = write(b->fd, b->buf + off, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r = w < 0 ? -errno : -EIO;
            atomic_fetch_add(&dropped_singleton, count_lines(b->buf + off, b->n - off));
            break;
        }
        /* a short write (a regular file running out of room): the rest is tried, and a
         * failure then drops it; its first line is then cut */
        off += (size_t)w;
    }
    b->n = 0;
    return r;
}

int pg_access_batch_forget(pg_access_batch_t *b)
{
    int r = pg_access_batch_flush(b);

    b->fd = -1;
    return r;
}

void pg_access_write(int fd, int format, const pg_access_entry_t *e)
{
    pg_access_batch_t *b = batch_tls;
    char line[PG_ACCESS_LINE_MAX];
    size_t n;

    if (fd < 0)
        return;
    if (b == NULL) {
        n = format_line(line, format, e);
        if (write(fd, line, n) != (ssize_t)n)
            atomic_fetch_add(&dropped_singleton, 1);
        return;
    }
    if (b->fd != fd) {
        /* lines keep their order, and each its descriptor */
        pg_access_batch_flush(b);
        b->fd = fd;
        b->chunk = chunk_of(fd);
    } else if (sizeof b->buf - b->n < PG_ACCESS_LINE_MAX) {
        pg_access_batch_flush(b);
    }
    b->n += format_line(b->buf + b->n, format, e);
}
