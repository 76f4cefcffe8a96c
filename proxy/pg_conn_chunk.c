/* pg_conn_chunk: a strict reader of chunked framing (RFC 9112 7.1), run beside llhttp over
 * the body bytes that are relayed as read. llhttp 8 as Debian builds it (without
 * LLHTTP_STRICT_MODE) does not look at the two bytes after chunk data, at the byte after the
 * CR that ends a chunk-size line, or at the byte after the CR of the blank line that ends the
 * trailer section; it lets a space into a trailer field's name and an obs-fold into a
 * trailer. A body relayed framing and all then reaches a client (or the next proxy) that
 * may frame it differently from us. This reader refuses all of that and knows nothing else
 * of HTTP: llhttp still finds the message's end; this only says whether the bytes on the
 * way there were well framed.
 * Pure functions on caller-provided state; no allocation. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_CHUNK_SIZE_MAX ((uint64_t)INT64_MAX) /* 2^63 - 1 */

enum {
    K_SIZE0,    /* the first hex digit of a chunk size */
    K_SIZE,     /* more digits, ';' or CR */
    K_EXT,      /* chunk extensions, up to CR */
    K_SIZE_LF,  /* the LF of the chunk-size line */
    K_DATA,     /* chunk data: left bytes to come */
    K_DATA_CR,  /* the CRLF after chunk data */
    K_DATA_LF,
    K_TR_START, /* a trailer field line, or the CR of the blank line that ends the body */
    K_TR_NAME,  /* a trailer field's name, up to ':' */
    K_TR_VALUE, /* its value, up to CR */
    K_TR_LF,    /* the LF of a trailer line */
    K_END_LF,   /* the LF of the last line */
    K_DONE,
    K_BAD,
};

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* A control character other than HTAB (RFC 9110 5.5: not in a field value; CR and LF are
 * the framing's). */
static bool is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

void pg__chunk_init(pg_chunk_t *k)
{
    k->left = 0;
    k->state = K_SIZE0;
    k->why = NULL;
}

bool pg__chunk_done(const pg_chunk_t *k)
{
    return k->state == K_DONE;
}

static const char *bad(pg_chunk_t *k, const char *why)
{
    k->state = K_BAD;
    k->why = why;
    return why;
}

const char *pg__chunk_scan(pg_chunk_t *k, const char *p, size_t n)
{
    const char *end = p + n;

    for (; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        int v;

        switch (k->state) {
        case K_DATA:
            if ((uint64_t)(end - p) < k->left) {
                k->left -= (uint64_t)(end - p);
                return NULL;
            }
            p += k->left - 1; /* the loop's p++ steps past the data */
            k->left = 0;
            k->state = K_DATA_CR;
            break;
        case K_SIZE0:
        case K_SIZE:
            v = hex_value(ch);
            if (v >= 0) {
                /* RFC 9112 7.1: recipients must guard against integer overflow. Upstreams
                 * and clients often keep a size in an int64 (nginx's off_t, Go's int64):
                 * one past 2^63 - 1 wraps there and frames the body otherwise, so it is
                 * refused here, digit by digit (whatever the reads' splits), which also
                 * refuses more than 16 significant digits; leading zeros are not counted */
                if (k->left > (PG_CHUNK_SIZE_MAX - (uint64_t)v) / 16)
                    return bad(k, "chunk size too large (more than 2^63 - 1, RFC 9112 7.1)");
                k->left = k->left * 16 + (uint64_t)v;
                k->state = K_SIZE;
            } else if (k->state == K_SIZE0) {
                return bad(k, "chunk size is not a hexadecimal number (RFC 9112 7.1)");
            } else if (ch == ';') {
                k->state = K_EXT;
            } else if (ch == '\r') {
                k->state = K_SIZE_LF;
            } else {
                return bad(k, "chunk-size line not ended by CRLF (RFC 9112 7.1)");
            }
            break;
        case K_EXT:
            if (ch == '\r')
                k->state = K_SIZE_LF;
            else if (is_ctl(ch))
                return bad(k, "chunk-size line not ended by CRLF (RFC 9112 7.1)");
            break;
        case K_SIZE_LF:
            if (ch != '\n')
                return bad(k, "chunk-size line not ended by CRLF (RFC 9112 7.1)");
            k->state = k->left > 0 ? K_DATA : K_TR_START;
            break;
        case K_DATA_CR:
        case K_DATA_LF:
            if (ch != (k->state == K_DATA_CR ? '\r' : '\n'))
                return bad(k, "chunk data not followed by CRLF (RFC 9112 7.1)");
            if (k->state == K_DATA_CR) {
                k->state = K_DATA_LF;
            } else {
                k->state = K_SIZE0;
            }
            break;
        case K_TR_START:
            if (ch == '\r')
                k->state = K_END_LF;
            else if (ch == ' ' || ch == '\t')
                return bad(k, "obs-fold in the trailer section (RFC 9112 5.2)");
            else if (pg_head_tchar(ch))
                k->state = K_TR_NAME;
            else
                return bad(k, "trailer field name is not a token (RFC 9110 5.1)");
            break;
        case K_TR_NAME:
            if (ch == ':')
                k->state = K_TR_VALUE;
            else if (!pg_head_tchar(ch))
                return bad(k, "trailer field name is not a token (RFC 9110 5.1)");
            break;
        case K_TR_VALUE:
            if (ch == '\r')
                k->state = K_TR_LF;
            else if (is_ctl(ch))
                return bad(k, "trailer line not ended by CRLF (RFC 9112 7.1.2)");
            break;
        case K_TR_LF:
            if (ch != '\n')
                return bad(k, "trailer line not ended by CRLF (RFC 9112 7.1.2)");
            k->state = K_TR_START;
            break;
        case K_END_LF:
            if (ch != '\n')
                return bad(k, "chunked body not ended by CRLF (RFC 9112 7.1)");
            k->state = K_DONE;
            break;
        case K_DONE:
            return bad(k, "bytes after the last chunk");
        default:
            return k->why;
        }
    }
    return NULL;
}
