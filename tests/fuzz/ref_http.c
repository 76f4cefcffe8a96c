/* ref_http: see ref_http.h. Every rule cites RFC 9112 (messages) or RFC 9110 (semantics). */
#include "ref_http.h"

#include <stdlib.h>
#include <string.h>

/* RFC 9110 5.6.2: tchar */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 9110 5.5: field-vchar = VCHAR / obs-text; SP and HTAB inside a value */
static bool is_field_char(unsigned char c)
{
    return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool ci_eq(const char *a, size_t alen, const char *lower_b)
{
    size_t i;

    if (alen != strlen(lower_b))
        return false;
    for (i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower_b[i])
            return false;
    return true;
}

bool ref_field_is(const char *p, const ref_field_t *f, const char *lower_name)
{
    return ci_eq(p + f->name_off, f->name_len, lower_name);
}

const ref_field_t *ref_find(const char *p, const ref_msg_t *m, const char *lower_name)
{
    size_t i;

    for (i = 0; i < m->nf; i++)
        if (ref_field_is(p, &m->f[i], lower_name))
            return &m->f[i];
    return NULL;
}

/* Outcome of one step: 0 = went on, else the message's state was set. */
#define MORE()                                                                                     \
    do {                                                                                           \
        m->state = REF_MORE;                                                                       \
        m->end = n;                                                                                \
        return 1;                                                                                  \
    } while (0)
#define BAD(at, what)                                                                              \
    do {                                                                                           \
        m->state = REF_BAD;                                                                        \
        m->end = (at);                                                                             \
        m->why = (what);                                                                           \
        return 1;                                                                                  \
    } while (0)

int ref_known;

void ref_known_from_env(void)
{
    const char *e = getenv("PG_FUZZ_KNOWN");

    ref_known = 0;
    if (e && strstr(e, "eol"))
        ref_known |= REF_KNOWN_EOL;
    if (e && strstr(e, "te"))
        ref_known |= REF_KNOWN_TE;
    if (e && strstr(e, "head"))
        ref_known |= REF_KNOWN_HEAD;
    if (e && strstr(e, "resp"))
        ref_known |= REF_KNOWN_RESP;
}

/* CRLF at *i (RFC 9112 2.2: a bare CR or LF is refused here, as a strict recipient may);
 * lenient: any byte after the CR (REF_KNOWN_EOL's places only). */
static int crlf_ex(const char *p, size_t n, size_t *i, ref_msg_t *m, bool lenient)
{
    if (*i == n)
        MORE();
    if (p[*i] != '\r')
        BAD(*i, "CR expected");
    if (*i + 1 == n)
        MORE();
    if (p[*i + 1] != '\n' && !lenient)
        BAD(*i + 1, "LF expected after CR");
    *i += 2;
    return 0;
}

static int crlf(const char *p, size_t n, size_t *i, ref_msg_t *m)
{
    return crlf_ex(p, n, i, m, false);
}

/* "HTTP/1.0" or "HTTP/1.1" at *i (RFC 9112 2.3; other versions are not HTTP/1.x here). */
static int version(const char *p, size_t n, size_t *i, ref_msg_t *m)
{
    static const char v[] = "HTTP/1.";

    for (size_t k = 0; k < sizeof v - 1; k++, (*i)++) {
        if (*i == n)
            MORE();
        if (p[*i] != v[k])
            BAD(*i, "HTTP/1.x expected");
    }
    if (*i == n)
        MORE();
    if (p[*i] != '0' && p[*i] != '1')
        BAD(*i, "HTTP/1.0 or HTTP/1.1 expected");
    m->minor = p[*i] - '0';
    (*i)++;
    return 0;
}

/* field-line CRLF ... CRLF (RFC 9112 5: no whitespace before the colon, no obs-fold);
 * into m->f when record, else only checked (a trailer section). */
static int fields(const char *p, size_t n, size_t *i, ref_msg_t *m, bool record)
{
    for (;;) {
        size_t n0, ne, v0, vend;

        if (*i == n)
            MORE();
        if (p[*i] == '\r')
            return crlf_ex(p, n, i, m, (ref_known & REF_KNOWN_EOL)); /* the empty line */
        if (p[*i] == '\n' && (ref_known & REF_KNOWN_EOL)) {
            (*i)++;
            return 0;
        }
        n0 = *i;
        while (*i < n && is_tchar((unsigned char)p[*i]))
            (*i)++;
        if (*i == n)
            MORE();
        if (*i == n0)
            BAD(*i, "field name expected (no whitespace or obs-fold before it)");
        if (p[*i] != ':')
            BAD(*i, "colon expected after the field name");
        ne = (*i)++;
        while (*i < n && is_ws(p[*i]))
            (*i)++;
        v0 = vend = *i;
        while (*i < n && p[*i] != '\r') {
            if (!is_field_char((unsigned char)p[*i]))
                BAD(*i, "control byte in a field value");
            if (!is_ws(p[*i]))
                vend = *i + 1;
            (*i)++;
        }
        /* lenient: llhttp skips the byte after the CR of an empty value */
        if (crlf_ex(p, n, i, m, (ref_known & REF_KNOWN_EOL) && vend == v0))
            return 1;
        if (!record)
            continue;
        if (m->nf == REF_MAX_FIELDS)
            BAD(n0, "too many fields");
        m->f[m->nf++] = (ref_field_t){n0, ne - n0, v0, vend - v0};
    }
}

/* 1*DIGIT, no sign, no list (RFC 9110 8.6), any number of leading zeros, below 2^63 (int64
 * readers); into *v. */
static bool decimal(const char *s, size_t len, uint64_t *v)
{
    size_t k;

    if (len == 0)
        return false;
    *v = 0;
    for (k = 0; k < len; k++) {
        if (s[k] < '0' || s[k] > '9' ||
            *v > ((UINT64_C(1) << 63) - 1 - (uint64_t)(s[k] - '0')) / 10)
            return false;
        *v = *v * 10 + (uint64_t)(s[k] - '0');
    }
    return true;
}

/* chunk-ext (RFC 9112 7.1.1), up to the CR: BWS, then ';' and anything but control bytes.
 * The grammar's names, '=' and quoted strings are not checked: no reader frames a body by
 * them, and the gateway relays what llhttp and its own chunk reader let through (no CTL). */
static int chunk_ext(const char *p, size_t n, size_t *i, ref_msg_t *m)
{
    while (*i < n && is_ws(p[*i]))
        (*i)++;
    if (*i == n)
        MORE();
    if (p[*i] == '\r')
        return 0;
    if (p[*i] != ';')
        BAD(*i, "chunk extension must start with ';'");
    for ((*i)++; *i < n && p[*i] != '\r'; (*i)++)
        if (!is_field_char((unsigned char)p[*i]))
            BAD(*i, "control byte in a chunk extension");
    if (*i == n)
        MORE();
    return 0;
}

/* chunked-body (RFC 9112 7.1) from *i; the chunk data is copied to out (cap bytes at most)
 * when out is not NULL. */
static int chunked(const char *p, size_t n, size_t *i, ref_msg_t *m, char *out, size_t cap)
{
    for (;;) {
        uint64_t size = 0;
        size_t h0 = *i;

        while (*i < n && hexval(p[*i]) >= 0) {
            if (size > (UINT64_C(1) << 63) / 16 - 1) /* int64 readers: below 2^63 */
                BAD(*i, "chunk size overflows");
            size = size * 16 + (uint64_t)hexval(p[*i]);
            (*i)++;
        }
        if (*i == n)
            MORE();
        if (*i == h0)
            BAD(*i, "chunk size expected");
        if (chunk_ext(p, n, i, m) || crlf_ex(p, n, i, m, (ref_known & REF_KNOWN_EOL)))
            return 1;
        if (size == 0)
            return fields(p, n, i, m, false); /* trailer section */
        if ((uint64_t)(n - *i) < size) {
            if (out && m->payload < cap)
                memcpy(out + m->payload, p + *i,
                       n - *i < cap - m->payload ? n - *i : cap - m->payload);
            m->payload += n - *i;
            MORE();
        }
        if (out && m->payload < cap)
            memcpy(out + m->payload, p + *i, size < cap - m->payload ? size : cap - m->payload);
        m->payload += size;
        *i += size;
        if (crlf(p, n, i, m))
            return 1;
    }
}

/* REF_KNOWN_TE: 1 when the codings of every Transfer-Encoding field, in order, end in
 * chunked, and chunked is not among the others; -1 when there are no codings at all (empty
 * fields: no body, as llhttp reads it); else 0. */
static int te_list_chunked(const char *p, const ref_msg_t *m)
{
    size_t k, i, a, e, nchunked = 0, ncodings = 0;
    bool last = false;

    for (k = 0; k < m->nf; k++) {
        const char *v = p + m->f[k].value_off;
        size_t n = m->f[k].value_len;

        if (!ref_field_is(p, &m->f[k], "transfer-encoding"))
            continue;
        for (i = 0; i < n;) {
            while (i < n && (is_ws(v[i]) || v[i] == ','))
                i++;
            a = i;
            while (i < n && v[i] != ',')
                i++;
            e = i;
            while (e > a && is_ws(v[e - 1]))
                e--;
            if (e == a)
                continue;
            last = ci_eq(v + a, e - a, "chunked");
            nchunked += last;
            ncodings++;
        }
    }
    if (ncodings == 0)
        return -1;
    return last && nchunked == 1;
}

/* The framing of a request (RFC 9112 6.1-6.3), strictly: a request is refused when a
 * recipient could read its length in two ways. */
static int request_framing(const char *p, ref_msg_t *m)
{
    size_t k, nte = 0, ncl = 0;
    const ref_field_t *te = NULL, *cl = NULL;

    for (k = 0; k < m->nf; k++) {
        if (ref_field_is(p, &m->f[k], "transfer-encoding"))
            nte++, te = &m->f[k];
        if (ref_field_is(p, &m->f[k], "content-length"))
            ncl++, cl = &m->f[k];
    }
    m->body = REF_BODY_NONE;
    if (nte && (ref_known & REF_KNOWN_TE) && te_list_chunked(p, m) < 0)
        nte = 0; /* no codings: as if there were no Transfer-Encoding */
    if (nte) {
        if (m->minor == 0)
            BAD(m->head_len, "Transfer-Encoding in an HTTP/1.0 request");
        if (ncl)
            BAD(m->head_len, "Transfer-Encoding with Content-Length");
        if (ref_known & REF_KNOWN_TE) {
            if (te_list_chunked(p, m) == 0)
                BAD(m->head_len, "Transfer-Encoding does not end in one chunked");
        } else if (nte > 1 || !ci_eq(p + te->value_off, te->value_len, "chunked")) {
            BAD(m->head_len, "Transfer-Encoding other than one chunked");
        }
        m->body = REF_BODY_CHUNKED;
    } else if (ncl) {
        if (ncl > 1 || !decimal(p + cl->value_off, cl->value_len, &m->cl))
            BAD(m->head_len, "Content-Length twice, or not a plain number");
        m->body = REF_BODY_CL;
    }
    return 0;
}

/* The body per m->body, from m->head_len. */
static void body(const char *p, size_t n, ref_msg_t *m, char *out, size_t cap)
{
    size_t i = m->head_len;

    m->payload = 0;
    switch (m->body) {
    case REF_BODY_NONE:
        m->state = REF_DONE;
        m->end = i;
        return;
    case REF_BODY_CL:
        if ((uint64_t)(n - i) < m->cl) {
            m->payload = n - i;
            if (out)
                memcpy(out, p + i, m->payload < cap ? m->payload : cap);
            m->state = REF_MORE;
            m->end = n;
            return;
        }
        m->payload = (size_t)m->cl;
        if (out)
            memcpy(out, p + i, m->payload < cap ? m->payload : cap);
        m->state = REF_DONE;
        m->end = i + (size_t)m->cl;
        return;
    case REF_BODY_CHUNKED:
        if (chunked(p, n, &i, m, out, cap) == 0) {
            m->state = REF_DONE;
            m->end = i;
        }
        return;
    default: /* REF_BODY_EOF: set by the caller */
        return;
    }
}

static int request_head(const char *p, size_t n, ref_msg_t *m)
{
    size_t i = 0;

    /* RFC 9112 2.2: empty lines before the request line are ignored (lenient: bare CR or LF
     * too, as llhttp skips them) */
    for (;;) {
        if (i == n)
            MORE();
        if (p[i] == '\n' && (ref_known & REF_KNOWN_EOL)) {
            i++;
        } else if (p[i] == '\r') {
            if (i + 1 == n)
                MORE();
            if (p[i + 1] != '\n' && !(ref_known & REF_KNOWN_EOL))
                BAD(i + 1, "LF expected after CR");
            i += p[i + 1] == '\n' ? 2 : 1;
        } else {
            break;
        }
    }
    m->method_off = i;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == n)
        MORE();
    if (i == m->method_off || p[i] != ' ')
        BAD(i, "method token and SP expected");
    m->method_len = i++ - m->method_off;
    while (i < n && p[i] == ' ') /* RFC 9112 3: parsing on whitespace-delimited words */
        i++;
    m->target_off = i;
    /* request-target: no whitespace, no control bytes (RFC 9112 3.2); obs-text allowed */
    while (i < n && (unsigned char)p[i] > 0x20 && p[i] != 0x7f)
        i++;
    if (i == n)
        MORE();
    if (i == m->target_off || p[i] != ' ')
        BAD(i, "request target and SP expected");
    m->target_len = i - m->target_off;
    if (p[m->target_off] != '/' && !(m->target_len == 1 && p[m->target_off] == '*') &&
        memchr(p + m->target_off, ':', m->target_len) == NULL)
        BAD(m->target_off, "request target in none of the four forms (RFC 9112 3.2)");
    while (i < n && p[i] == ' ')
        i++;
    if (version(p, n, &i, m))
        return 1;
    if (i < n && p[i] == '\n' && (ref_known & REF_KNOWN_EOL))
        i++;
    else if (crlf(p, n, &i, m))
        return 1;
    if (fields(p, n, &i, m, true))
        return 1;
    m->head_done = true;
    m->head_len = i;
    return request_framing(p, m);
}

void ref_parse_request(const char *p, size_t n, ref_msg_t *m)
{
    memset(m, 0, offsetof(ref_msg_t, f));
    m->nf = 0;
    m->body = REF_BODY_NONE;
    if (request_head(p, n, m) == 0)
        body(p, n, m, NULL, 0);
}

static int response_head(const char *p, size_t n, ref_msg_t *m)
{
    size_t i = 0, k;

    if (version(p, n, &i, m))
        return 1;
    if (i == n)
        MORE();
    if (p[i] != ' ')
        BAD(i, "SP expected after the version");
    i++;
    for (k = 0; k < 3; k++, i++) {
        if (i == n)
            MORE();
        if (p[i] < '0' || p[i] > '9')
            BAD(i, "three-digit status expected");
        m->status = m->status * 10 + (p[i] - '0');
    }
    if (m->status < 100)
        BAD(i - 3, "status below 100");
    if (i == n)
        MORE();
    if (p[i] != ' ')
        BAD(i, "SP expected after the status");
    for (i++; i < n && p[i] != '\r'; i++)
        if (!is_field_char((unsigned char)p[i]))
            BAD(i, "control byte in the reason phrase");
    if (crlf(p, n, &i, m) || fields(p, n, &i, m, true))
        return 1;
    m->head_done = true;
    m->head_len = i;
    return 0;
}

/* RFC 9112 6.3 for responses */
static int response_framing(const char *p, ref_msg_t *m, bool head_request)
{
    const ref_field_t *te = ref_find(p, m, "transfer-encoding"), *cl;
    size_t k, ncl = 0;

    m->body = REF_BODY_EOF;
    if (head_request || m->status < 200 || m->status == 204 || m->status == 304) {
        m->body = REF_BODY_NONE;
        return 0;
    }
    for (k = 0; k < m->nf; k++)
        if (ref_field_is(p, &m->f[k], "content-length"))
            ncl++, cl = &m->f[k];
    if (te) {
        if (ncl)
            BAD(m->head_len, "response with Transfer-Encoding and Content-Length");
        if (ci_eq(p + te->value_off, te->value_len, "chunked"))
            m->body = REF_BODY_CHUNKED;
        return 0;
    }
    if (ncl) {
        if (ncl > 1 || !decimal(p + cl->value_off, cl->value_len, &m->cl))
            BAD(m->head_len, "response Content-Length twice, or not a plain number");
        m->body = REF_BODY_CL;
    }
    return 0;
}

void ref_parse_response(const char *p, size_t n, bool head_request, bool eof, ref_msg_t *m)
{
    memset(m, 0, offsetof(ref_msg_t, f));
    m->nf = 0;
    if (response_head(p, n, m) || response_framing(p, m, head_request))
        return;
    if (m->body == REF_BODY_EOF) {
        m->payload = n - m->head_len;
        m->state = eof ? REF_DONE : REF_MORE;
        m->end = n;
        return;
    }
    body(p, n, m, NULL, 0);
}

size_t ref_payload(const char *p, const ref_msg_t *m, char *out, size_t cap)
{
    ref_msg_t copy;
    size_t n = m->end; /* DONE: the message; MORE: all given; BAD: up to the bad byte */

    if (!m->head_done)
        return 0;
    if (m->body == REF_BODY_EOF) {
        size_t len = n - m->head_len;

        memcpy(out, p + m->head_len, len < cap ? len : cap);
        return len;
    }
    copy = *m;
    body(p, n, &copy, out, cap);
    return copy.payload;
}
