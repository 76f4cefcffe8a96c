/* pg_head: one HTTP message head as profgate keeps it while relaying: the first-line part
 * llhttp reports (request target, or reason phrase) and the header lines, copied in wire form
 * ("Name: value\r\n") into one pg_buf, with an index of the lines; and the rewrites that
 * turn a received head into the one sent on (hop-by-hop headers dropped, X-Forwarded-* and
 * Via added), produced as iovecs that point into the buffer, static strings, and the
 * buffer's reserve after the head (PG_HEAD_RESERVE bytes) where added lines are written.
 * Owns: a pg_head_t holds one reference to its buffer (taken from the pool given to
 *   pg_head_append); pg_head_release drops it. Iovecs from the _out functions point into
 *   the buffer and stay valid while a reference is held.
 * Threads: one owner. Errors: -1 from the append functions (limit reached: overflow or
 *   too_many set; no memory: overflow set), UV_E2BIG from the _out functions. */
#ifndef PG_HEAD_H
#define PG_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "pg_buf.h"

#define PG_HEAD_MAX_FIELDS 128
#define PG_HEAD_RESERVE 1024 /* room after the head for the fixed parts of the lines we add
                              (the client values they carry stay in the head) */
#define PG_HEAD_MAX_IOV (PG_HEAD_MAX_FIELDS + 12)
#define PG_HEAD_FLAT_MAX 4096 /* heads up to this size are sent as one iovec, see below */

typedef struct pg_head_field {
    uint32_t off;      /* line start in buf */
    uint32_t len;      /* whole line, CRLF included */
    uint32_t name_len;
    uint8_t kind;      /* pg_http_hdr_t of the name, set when the field is complete */
} pg_head_field_t;

typedef struct pg_head {
    pg_buf_t *buf;       /* read-only; NULL until the first byte */
    uint32_t first_len;  /* read-only: bytes of target / reason at buf->data */
    uint32_t limit;      /* private: head bytes allowed */
    uint16_t n;          /* read-only: complete fields */
    bool field_open;     /* private */
    bool overflow;       /* read-only: limit passed (or no memory) */
    bool too_many;       /* read-only: more than PG_HEAD_MAX_FIELDS fields */
    pg_head_field_t f[PG_HEAD_MAX_FIELDS]; /* read-only */
} pg_head_t;

/* Start a new head of at most limit bytes; the buffer (if any) is kept for reuse. Only the
 * fields before f[] are written: the index is written before it is read. */
void pg_head_reset(pg_head_t *h, uint32_t limit);
void pg_head_release(pg_head_t *h);

/* Feed llhttp's callbacks: the first-line part (on_url / on_status), a header name part
 * (on_header_field), its end (on_header_field_complete), a value part (on_header_value,
 * through pg_head_append) and its end (on_header_value_complete). */
int pg_head_append(pg_head_t *h, pg_bufpool_t *pool, const char *at, size_t len);
int pg_head_first(pg_head_t *h, pg_bufpool_t *pool, const char *at, size_t len);
int pg_head_field(pg_head_t *h, pg_bufpool_t *pool, const char *at, size_t len);
int pg_head_field_done(pg_head_t *h, pg_bufpool_t *pool);
int pg_head_value_done(pg_head_t *h, pg_bufpool_t *pool);

/* The first field named lower (a lower-case name), or NULL. */
const pg_head_field_t *pg_head_find(const pg_head_t *h, const char *lower);
/* The first field of kind k (a pg_http_hdr_t other than PG_HTTP_HDR_OTHER), or NULL. */
const pg_head_field_t *pg_head_find_kind(const pg_head_t *h, int k);
const char *pg_head_name(const pg_head_t *h, const pg_head_field_t *f);
const char *pg_head_value(const pg_head_t *h, const pg_head_field_t *f, size_t *len);
/* Value of the first field named lower; NULL (and *len 0) when absent. */
const char *pg_head_get(const pg_head_t *h, const char *lower, size_t *len);
/* The first field whose name is not a token (RFC 9110 5.1), or NULL -- for a head llhttp 8
 * has parsed: its name table refuses every byte outside tchar but the space, and it lets an
 * empty name through; this looks for those two only (a word at a time: every request and
 * response passes here). */
const pg_head_field_t *pg_head_bad_name(const pg_head_t *h);
/* Whether ch may be in a token (tchar, RFC 9110 5.6.2). */
bool pg_head_tchar(unsigned char ch);
/* Dropped when relaying: hop-by-hop, or listed in the Connection field. */
bool pg_head_is_hop(const pg_head_t *h, const pg_head_field_t *f);

/* How a request head is sent on. */
typedef struct pg_head_req_out {
    const char *method;       /* llhttp_method_name() */
    uint32_t path_off;        /* origin-form part of the target (after any scheme://host) */
    bool pprof;               /* send "/debug/pprof" + pprof_rest + query instead */
    const char *pprof_rest;   /* into the head buffer */
    uint32_t pprof_rest_len;
    uint32_t query_off, query_len; /* "?..." in the target; len 0 when none */
    bool add_forwarded;       /* X-Forwarded-For (appended to), -Proto, -Host (replaced) */
    bool add_via;             /* Via: [theirs, ]1.1 profgate */
    bool drop_authorization;  /* the credential was for the gateway (pprof token) */
    const struct sockaddr *client;
    const char *client_text;  /* client's address as text when the caller has it (a
                                 connection's many requests), or NULL: from client */
    size_t client_text_len;
    const char *default_host; /* Host to add when the client sent none (HTTP/1.0) */
    const char *host;         /* Host to send in place of the client's (its lines dropped),
                                 the first line after the request line, and X-Forwarded-Host
                                 to carry: the absolute-form target's authority (RFC 9112
                                 3.2.2), pointing into the head buffer; NULL: the client's */
    uint32_t host_len;
} pg_head_req_out_t;

/* "METHOD target HTTP/1.1\r\n", the kept fields, ours, "\r\n" into bufs (at least
 * PG_HEAD_MAX_IOV entries); *n set. A head of at most PG_HEAD_FLAT_MAX bytes is copied
 * into one iovec when the buffer has room for it after the head (so it leaves in one
 * write(2) rather than a writev of several pieces); otherwise adjacent kept lines share
 * one iovec. */
int pg_head_request_out(pg_head_t *h, const pg_head_req_out_t *o, uv_buf_t *bufs, unsigned *n);

enum {
    PG_HEAD_CONN_NONE = 0,
    PG_HEAD_CONN_CLOSE = 1,      /* add "Connection: close" */
    PG_HEAD_CONN_KEEP_ALIVE = 2, /* add "Connection: keep-alive" (HTTP/1.0 clients) */
    PG_HEAD_DROP_TE = 4,         /* drop Transfer-Encoding (the body is sent de-chunked) */
    PG_HEAD_ADD_CHUNKED = 8,     /* add "Transfer-Encoding: chunked" (a close-delimited body
                                    sent chunked to an HTTP/1.1 client) */
};

/* "HTTP/1.1 STATUS reason\r\n", the kept fields, Via when add_via and the status is final,
 * "Transfer-Encoding: chunked" and "Connection: close|keep-alive" as flags say, "\r\n"; in one iovec under the same
 * condition as pg_head_request_out. */
int pg_head_response_out(pg_head_t *h, unsigned status, bool add_via, int flags, uv_buf_t *bufs,
                         unsigned *n);

#endif
