/* pg_head: see pg_head.h. */
#include "pg_head.h"

#include <string.h>
#include <strings.h>

#include "pg_http.h"

void pg_head_reset(pg_head_t *h, uint32_t limit)
{
    if (h->buf)
        h->buf->len = 0;
    h->first_len = 0;
    h->limit = limit;
    h->n = 0;
    h->field_open = false;
    h->overflow = false;
    h->too_many = false;
}

void pg_head_release(pg_head_t *h)
{
    if (h->buf)
        pg_buf_unref(h->buf);
    h->buf = NULL;
}

/* The first byte of a head takes a buffer from the pool; NULL and overflow set when there
 * is no memory. */
static pg_buf_t *head_buf(pg_head_t *h, pg_bufpool_t *pool)
{
    if (h->buf == NULL) {
        h->buf = pg_buf_get(pool, (size_t)h->limit + PG_HEAD_RESERVE);
        if (h->buf == NULL)
            h->overflow = true;
    }
    return h->buf;
}

/* Append c0 c1 (the ": " and CRLF of every line) without a call to memcpy. */
static int put2(pg_head_t *h, pg_bufpool_t *pool, char c0, char c1)
{
    pg_buf_t *b = head_buf(h, pool);

    if (b == NULL)
        return -1;
    if (b->len + 2 > h->limit) {
        h->overflow = true;
        return -1;
    }
    b->data[b->len] = c0;
    b->data[b->len + 1] = c1;
    b->len += 2;
    return 0;
}

/* memcpy of n bytes, short ones without the call: llhttp hands a head over in pieces of a
 * few bytes (each name, each value), and the call was most of their cost. */
static inline void copy(char *d, const char *s, size_t n)
{
    size_t i;

    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        memcpy(d, s, 8); /* two overlapping 8-byte moves */
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        for (i = 0; i < n; i++)
            d[i] = s[i];
    }
}

int pg_head_append(pg_head_t *h, pg_bufpool_t *pool, const char *at, size_t len)
{
    pg_buf_t *b = head_buf(h, pool);

    if (b == NULL)
        return -1;
    if ((size_t)b->len + len > h->limit) {
        h->overflow = true;
        return -1;
    }
    copy(b->data + b->len, at, len);
    b->len += (uint32_t)len;
    return 0;
}

int pg_head_first(pg_head_t *h, pg_bufpool_t *pool, const char *at, size_t len)
{
    if (pg_head_append(h, pool, at, len) < 0)
        return -1;
    h->first_len += (uint32_t)len;
    return 0;
}

int pg_head_field(pg_head_t *h, pg_bufpool_t *pool, const char *at, size_t len)
{
    pg_head_field_t *f = &h->f[h->n];

    if (!h->field_open) {
        if (h->n == PG_HEAD_MAX_FIELDS) {
            h->too_many = true;
            return -1;
        }
        if (head_buf(h, pool) == NULL)
            return -1;
        f->off = h->buf->len;
        f->name_len = 0;
        f->len = 0;
        h->field_open = true;
    }
    if (pg_head_append(h, pool, at, len) < 0)
        return -1;
    f->name_len += (uint32_t)len;
    return 0;
}

int pg_head_field_done(pg_head_t *h, pg_bufpool_t *pool)
{
    return put2(h, pool, ':', ' ');
}

int pg_head_value_done(pg_head_t *h, pg_bufpool_t *pool)
{
    pg_head_field_t *f = &h->f[h->n];

    if (put2(h, pool, '\r', '\n') < 0)
        return -1;
    f->len = h->buf->len - f->off;
    /* classified once here: comparing names at every use was a fifth of the instructions
     * per proxied request (bench/proxy/instructions.sh) */
    f->kind = (uint8_t)pg_http_hdr_kind(h->buf->data + f->off, f->name_len);
    h->n++;
    h->field_open = false;
    return 0;
}

const char *pg_head_name(const pg_head_t *h, const pg_head_field_t *f)
{
    return h->buf->data + f->off;
}

const char *pg_head_value(const pg_head_t *h, const pg_head_field_t *f, size_t *len)
{
    *len = f->len - f->name_len - 4;
    return h->buf->data + f->off + f->name_len + 2;
}

const pg_head_field_t *pg_head_find_kind(const pg_head_t *h, int k)
{
    uint16_t i;

    for (i = 0; i < h->n; i++)
        if (h->f[i].kind == k)
            return &h->f[i];
    return NULL;
}

const pg_head_field_t *pg_head_find(const pg_head_t *h, const char *lower)
{
    size_t n = strlen(lower);
    pg_http_hdr_t k = pg_http_hdr_kind(lower, n);
    uint16_t i;

    if (h->buf == NULL)
        return NULL;
    if (k != PG_HTTP_HDR_OTHER)
        return pg_head_find_kind(h, k);
    for (i = 0; i < h->n; i++)
        if (h->f[i].name_len == n && h->f[i].kind == PG_HTTP_HDR_OTHER &&
            strncasecmp(pg_head_name(h, &h->f[i]), lower, n) == 0)
            return &h->f[i];
    return NULL;
}

/* tchar (RFC 9110 5.6.2), for bytes below 128; none above */
static const uint8_t tchar[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
};

bool pg_head_tchar(unsigned char ch)
{
    return ch < 128 && tchar[ch];
}

/* Whether the n > 0 bytes at p hold a space, a word at a time; may read up to 7 bytes past
 * p + n, which must still be inside the buffer (end). */
static bool has_space(const char *p, size_t n, const char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, spaces = 0x20 * ones;
    uint64_t w;

    while (n > 0) {
        if (end - p < 8) {
            for (; n > 0; n--, p++)
                if (*p == ' ')
                    return true;
            return false;
        }
        memcpy(&w, p, 8);
        w ^= spaces; /* a space is now a zero byte */
        if (n < 8)
            w |= ~0ULL << (8 * n); /* bytes past the name: not zero */
        if ((w - ones) & ~w & (ones << 7))
            return true;
        p += n < 8 ? n : 8;
        n -= n < 8 ? n : 8;
    }
    return false;
}

const pg_head_field_t *pg_head_bad_name(const pg_head_t *h)
{
    const char *end = h->n ? h->buf->data + h->buf->cap : NULL;
    uint16_t i;

    for (i = 0; i < h->n; i++) {
        const pg_head_field_t *f = &h->f[i];

        if (f->kind != PG_HTTP_HDR_OTHER)
            continue; /* a name we know is a token */
        if (f->name_len == 0 || has_space(h->buf->data + f->off, f->name_len, end))
            return f;
    }
    return NULL;
}

const char *pg_head_get(const pg_head_t *h, const char *lower, size_t *len)
{
    const pg_head_field_t *f = pg_head_find(h, lower);

    *len = 0;
    return f ? pg_head_value(h, f, len) : NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* conn (the first Connection field, or NULL) when it lists a name other than the hop-by-hop
 * ones, which go anyway; else NULL. Looked at once per head, so that the usual
 * "keep-alive" costs no token search per field. Tokens as in pg_http_token_list_has. */
static const pg_head_field_t *conn_names_others(const pg_head_t *h, const pg_head_field_t *conn)
{
    const char *v;
    size_t len, i = 0, start, end;

    if (conn == NULL)
        return NULL;
    v = pg_head_value(h, conn, &len);
    while (i < len) {
        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        start = i;
        while (i < len && v[i] != ',')
            i++;
        end = i;
        while (end > start && is_ows(v[end - 1]))
            end--;
        if (end == start)
            continue;
        if (!PG_HTTP_HDR_IS_HOP(pg_http_hdr_kind(v + start, end - start)))
            return conn; /* "close" too: a field named Close goes, as RFC 9110 7.6.1 says */
    }
    return NULL;
}

/* conn: from conn_names_others (computed once per head, not per field) */
/* f is named by the Connection field conn (not NULL): a connection option. Host and the
 * framing fields are for every recipient, never a connection option (RFC 9110 7.6.1): a
 * Connection field that lists them ("Connection: Content-Length") does not drop them.
 * Dropped, the next hop framed the body otherwise -- a request's body read as the next
 * request, a response's as close-delimited -- or got no Host. */
static bool conn_lists(const pg_head_t *h, const pg_head_field_t *f, const pg_head_field_t *conn)
{
    const char *v;
    size_t vlen;

    if (f->kind == PG_HTTP_HDR_HOST || f->kind == PG_HTTP_HDR_CONTENT_LENGTH ||
        f->kind == PG_HTTP_HDR_TRANSFER_ENCODING)
        return false;
    v = pg_head_value(h, conn, &vlen);
    return pg_http_token_list_has(v, vlen, pg_head_name(h, f), f->name_len);
}

/* Hop-by-hop: by its name, or named by the Connection field conn (NULL: none). Called for
 * every field of every head, so the common case (no Connection options) stays inline. */
static inline bool is_hop(const pg_head_t *h, const pg_head_field_t *f,
                          const pg_head_field_t *conn)
{
    return PG_HTTP_HDR_IS_HOP(f->kind) || (conn != NULL && conn_lists(h, f, conn));
}

bool pg_head_is_hop(const pg_head_t *h, const pg_head_field_t *f)
{
    return is_hop(h, f, conn_names_others(h, pg_head_find_kind(h, PG_HTTP_HDR_CONNECTION)));
}

/* Append [p, p+len) to the reserve at *e (one byte is always left over). Plain copies, not
 * snprintf: formatting was a quarter of the instructions per proxied request
 * (bench/proxy/instructions.sh). Returns 0, or UV_E2BIG with nothing appended. */
static int cat(char **e, size_t *room, const char *p, size_t len)
{
    if (len >= *room)
        return UV_E2BIG;
    memcpy(*e, p, len);
    *e += len, *room -= len;
    return 0;
}

#define CAT(lit) cat(&e, &room, lit, sizeof lit - 1)

/* bufs[k..]: the reserve's bytes written since *start (none when empty), then [p, p+len),
 * which stays where it is (a value in the head); *start moves to e. Returns the new k. */
static unsigned put_ref(uv_buf_t *bufs, unsigned k, char **start, char *e, const char *p,
                        size_t len)
{
    if (e > *start)
        bufs[k++] = uv_buf_init(*start, (unsigned)(e - *start));
    *start = e;
    if (len > 0)
        bufs[k++] = uv_buf_init((char *)p, (unsigned)len);
    return k;
}

/* The head as one iovec: copied after the lines we added (dst, in the same buffer, past
 * every byte the iovecs point at) when it is at most PG_HEAD_FLAT_MAX bytes and fits.
 * On loopback each iovec of a writev costs the kernel ~35 ns more (bench/proxy/iovec.c:
 * a 148-byte head in 6 pieces, 1,600 ns of CPU per call against 1,440 ns in one), more
 * than copying a small head here costs; the usual request head goes out in one write().
 * Returns the number of iovecs now in bufs. */
static unsigned flatten(const pg_head_t *h, char *dst, uv_buf_t *bufs, unsigned k)
{
    size_t total = 0, room = (size_t)(h->buf->data + h->buf->cap - dst);
    unsigned i;

    for (i = 0; i < k; i++)
        total += bufs[i].len;
    if (k < 2 || total > PG_HEAD_FLAT_MAX || total > room)
        return k;
    for (i = 0, total = 0; i < k; i++) {
        copy(dst + total, bufs[i].base, bufs[i].len);
        total += bufs[i].len;
    }
    bufs[0] = uv_buf_init(dst, (unsigned)total);
    return 1;
}

int pg_head_request_out(pg_head_t *h, const pg_head_req_out_t *o, uv_buf_t *bufs, unsigned *n)
{
    static char sp[] = " ", ver[] = " HTTP/1.1\r\n", pprof_base[] = "/debug/pprof",
                hostname[] = "Host: ", crlf[] = "\r\n";
    const pg_head_field_t *xff = NULL, *via = NULL, *host = NULL, *conn = NULL;
    uint32_t ext = h->buf->len, i;
    char addr[64], *e, *start;
    size_t room, vlen;
    const char *v;
    unsigned k = 0;
    int bad = 0;

    /* the first of each, in one pass */
    for (i = h->n; i-- > 0;) {
        const pg_head_field_t *f = &h->f[i];

        switch (f->kind) {
        case PG_HTTP_HDR_X_FORWARDED_FOR:
            xff = o->add_forwarded ? f : NULL;
            break;
        case PG_HTTP_HDR_VIA:
            via = o->add_via ? f : NULL;
            break;
        case PG_HTTP_HDR_HOST:
            host = f;
            break;
        case PG_HTTP_HDR_CONNECTION:
            conn = f;
            break;
        default:
            break;
        }
    }
    conn = conn_names_others(h, conn);
    bufs[k++] = uv_buf_init((char *)o->method, (unsigned)strlen(o->method));
    bufs[k++] = uv_buf_init(sp, 1);
    if (o->pprof) {
        bufs[k++] = uv_buf_init(pprof_base, sizeof pprof_base - 1);
        if (o->pprof_rest_len)
            bufs[k++] = uv_buf_init((char *)o->pprof_rest, o->pprof_rest_len);
        if (o->query_len)
            bufs[k++] = uv_buf_init(h->buf->data + o->query_off, o->query_len);
    } else if (h->first_len > o->path_off) {
        /* absolute-form with an empty path ("http://host?q"): origin-form is "/?q"
         * (RFC 9112 3.2.2), never a target that starts with '?' */
        if (h->buf->data[o->path_off] != '/')
            bufs[k++] = uv_buf_init(pprof_base, 1); /* "/" */
        bufs[k++] = uv_buf_init(h->buf->data + o->path_off, h->first_len - o->path_off);
    } else {
        bufs[k++] = uv_buf_init(pprof_base, 1); /* "/" */
    }
    bufs[k++] = uv_buf_init(ver, sizeof ver - 1);
    if (o->host) {
        /* as iovecs, not in the reserve: an authority may be as long as the head allows */
        bufs[k++] = uv_buf_init(hostname, sizeof hostname - 1);
        bufs[k++] = uv_buf_init((char *)o->host, o->host_len);
        bufs[k++] = uv_buf_init(crlf, sizeof crlf - 1);
    }
    for (i = 0; i < h->n; i++) {
        const pg_head_field_t *f = &h->f[i];

        if (is_hop(h, f, conn) || f == xff || f == via ||
            (o->host && f->kind == PG_HTTP_HDR_HOST) ||
            (o->drop_authorization && f->kind == PG_HTTP_HDR_AUTHORIZATION) ||
            (o->add_forwarded && (f->kind == PG_HTTP_HDR_X_FORWARDED_PROTO ||
                                  f->kind == PG_HTTP_HDR_X_FORWARDED_HOST)))
            continue;
        if (bufs[k - 1].base + bufs[k - 1].len == h->buf->data + f->off)
            bufs[k - 1].len += f->len; /* adjacent kept lines: one iovec */
        else
            bufs[k++] = uv_buf_init(h->buf->data + f->off, f->len);
    }
    /* ours go after the head, in the buffer's reserve; bad collects any overflow. The
     * client's values they carry (its X-Forwarded-For and Via, the Host or authority sent
     * as X-Forwarded-Host) are iovecs into the head, not copies: as long as the head they
     * came in, so the reserve holds only our fixed parts, which a head up to its limit
     * always leaves room for (a Host near server.max_header_bytes made the copy overflow
     * the reserve: a 502 "argument list too long") */
    start = e = h->buf->data + ext;
    room = h->buf->cap - ext;
    if (o->add_forwarded) {
        const char *atext = o->client_text;
        size_t alen = o->client_text_len;

        if (atext == NULL) {
            alen = pg_http_addr_text(o->client, addr, sizeof addr);
            atext = addr;
        }
        bad |= CAT("X-Forwarded-For: ");
        if (xff) {
            v = pg_head_value(h, xff, &vlen);
            k = put_ref(bufs, k, &start, e, v, vlen);
            bad |= CAT(", ");
        }
        bad |= cat(&e, &room, atext, alen);
        bad |= CAT("\r\nX-Forwarded-Proto: http\r\n");
        if (o->host || host) {
            if (o->host)
                v = o->host, vlen = o->host_len;
            else
                v = pg_head_value(h, host, &vlen);
            bad |= CAT("X-Forwarded-Host: ");
            k = put_ref(bufs, k, &start, e, v, vlen);
            bad |= CAT("\r\n");
        }
    }
    /* HTTP/1.0 clients may omit Host; HTTP/1.1 upstreams require one */
    if (host == NULL && o->host == NULL) {
        bad |= CAT("Host: ");
        bad |= cat(&e, &room, o->default_host, strlen(o->default_host));
        bad |= CAT("\r\n");
    }
    if (o->add_via) {
        bad |= CAT("Via: ");
        if (via) {
            v = pg_head_value(h, via, &vlen);
            k = put_ref(bufs, k, &start, e, v, vlen);
            bad |= CAT(", ");
        }
        bad |= CAT("1.1 profgate\r\n");
    }
    bad |= CAT("\r\n");
    if (bad)
        return UV_E2BIG;
    bufs[k++] = uv_buf_init(start, (unsigned)(e - start));
    *n = flatten(h, e, bufs, k);
    return 0;
}

int pg_head_response_out(pg_head_t *h, unsigned status, bool add_via, int flags, uv_buf_t *bufs,
                         unsigned *n)
{
    const pg_head_field_t *conn =
        conn_names_others(h, pg_head_find_kind(h, PG_HTTP_HDR_CONNECTION));
    uint32_t ext = h->buf->len, i;
    char *e = h->buf->data + ext, *start;
    size_t room = h->buf->cap - ext;
    unsigned k = 0;
    int len;

    /* the reason phrase is copied after the head in the same buffer (no overlap) */
    if (status > 999 || 13 + h->first_len + 2 >= room)
        return UV_E2BIG; /* llhttp allows three digits */
    memcpy(e, "HTTP/1.1 ", 9);
    e[9] = (char)('0' + status / 100);
    e[10] = (char)('0' + status / 10 % 10);
    e[11] = (char)('0' + status % 10);
    e[12] = ' ';
    len = 13;
    memmove(e + len, h->buf->data, h->first_len);
    memcpy(e + len + h->first_len, "\r\n", 2);
    len += (int)h->first_len + 2;
    bufs[k++] = uv_buf_init(e, (unsigned)len);
    e += len, room -= (size_t)len;
    for (i = 0; i < h->n; i++) {
        const pg_head_field_t *f = &h->f[i];

        if (is_hop(h, f, conn) ||
            ((flags & PG_HEAD_DROP_TE) && f->kind == PG_HTTP_HDR_TRANSFER_ENCODING))
            continue;
        if (k > 1 && bufs[k - 1].base + bufs[k - 1].len == h->buf->data + f->off)
            bufs[k - 1].len += f->len;
        else
            bufs[k++] = uv_buf_init(h->buf->data + f->off, f->len);
    }
    start = e;
    if (status >= 200) {
        if (add_via && CAT("Via: 1.1 profgate\r\n") < 0)
            return UV_E2BIG;
        if ((flags & PG_HEAD_ADD_CHUNKED) && CAT("Transfer-Encoding: chunked\r\n") < 0)
            return UV_E2BIG;
        if ((flags & PG_HEAD_CONN_CLOSE) && CAT("Connection: close\r\n") < 0)
            return UV_E2BIG;
        if ((flags & PG_HEAD_CONN_KEEP_ALIVE) && CAT("Connection: keep-alive\r\n") < 0)
            return UV_E2BIG;
    }
    if (CAT("\r\n") < 0)
        return UV_E2BIG;
    bufs[k++] = uv_buf_init(start, (unsigned)(e - start));
    *n = flatten(h, e, bufs, k);
    return 0;
}
