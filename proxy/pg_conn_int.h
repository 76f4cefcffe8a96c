/* pg_conn_int: what the files of the connection module share: the connection and exchange
 * structs and the functions one file calls in another. pg_conn.c: the connection and the
 * request half; pg_conn_xchg.c: the exchange's life (to the upstream, retry or fail, end);
 * pg_resp.c: the response half; pg_conn_write.c: the write path; pg_conn_body.c: the
 * request body (framing checks, holding); pg_conn_chunk.c: a strict reader of chunked
 * framing; pg_conn_lines.c: the request head's line ends; pg_conn_own.c: the gateway's own
 * answers. Not for other modules: they use pg_conn.h.
 * Owns: see pg_conn.h; an exchange (xchg_t) belongs to its connection, c->x.
 * Threads: owning worker's loop thread only. Errors: negative errno (libuv's UV_E*). */
#ifndef PG_CONN_INT_H
#define PG_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <llhttp.h>
#include <uv.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_conn.h"
#include "pg_head.h"
#include "pg_policy.h"
#include "pg_route.h"
#include "pg_upstream.h"
#include "pg_worker.h"

/* Backpressure: reading one side stops while the other side's write queue holds more than
 * this (pg_conn.c pg__conn_update_reading). Here, not in pg_conn.c, so that fuzz_conn's
 * backpressure oracle (tests/fuzz/conn_oracle_flow.c) bounds the queues by the same number. */
#define PG_CONN_WQ_HIGH (256 * 1024)

enum { C_IDLE, C_HEAD, C_FORWARD, C_CLOSING };
enum { T_NONE, T_IDLE, T_HEAD, T_CONNECT, T_UPSTREAM, T_FLUSH, T_LINGER };

/* Room for a chunk-size line we write: the hex digits of a size_t and CRLF. */
#define PG_CONN_CHUNK_LINE 18

/* Output to the client gathered while one upstream read is parsed, so that a response
 * head and the body bytes that came with it leave in one writev. */
typedef struct outq {
    uv_buf_t v[PG_HEAD_MAX_IOV + 8];
    unsigned n;
    pg_buf_t *hold[2];
    char line[PG_CONN_CHUNK_LINE]; /* the chunk-size line of the chunk queued (enchunk), */
    uint8_t line_len;              /*   copied into the write request if it must wait; 0: none */
} outq_t;

/* Where a strict reading of chunked framing is (pg_conn_chunk.c). Private to it. */
typedef struct pg_chunk {
    uint64_t left;   /* data bytes to come, or the chunk size read so far */
    const char *why; /* once refused: the cause */
    uint8_t state;
} pg_chunk_t;

typedef struct xchg {
    pg_head_t req;
    pg_head_t resp;
    pg_gen_t *gen;
    pg_policy_agent_t *agent;     /* counted against pprof.max_concurrent: give back at end */
    const pg_config_upstream_t *up;
    pg_uconn_t *u;
    bool pprof;
    const char *pprof_rest;       /* into req.buf */
    uint32_t pprof_rest_len;
    uint32_t query_off, query_len; /* '?' included, into req.buf; len 0 when none */
    uint32_t path_off;            /* where the origin-form path starts in the URL */
    uint32_t auth_off, auth_len;  /* absolute-form: its authority in the URL (routed by, and
                                     sent as Host); len 0: origin-form */
    uint64_t budget_ms;           /* upstream first-byte/idle timeout for this request */
    size_t cl_wq_seen;            /* bytes waiting for the client at the last timeout that
                                     found its queue full (pg_conn.c client_timeout) */
    uint64_t body_sent;           /* bytes relayed, framing included */
    uint64_t body_payload;        /* body bytes without chunk framing */
    bool body_too_big;
    uint8_t method;
    bool req_has_body;
    bool req_done;
    bool resp_started;            /* final (non-1xx) response head sent to the client */
    bool resp_out;                /*   and bytes of it have left (uv_try_write or uv_write):
                                     too late for another status */
    bool resp_chunked;            /* the final response's body is chunked: rchunk reads it */
    pg_chunk_t rchunk;
    bool resp_done;
    bool retried;
    bool retried_refused;         /* the retry was for a refused connect */
    bool retried_timeout;         /*   or for a timed-out one (on a pooled connection) */
    bool got_resp_bytes;
    bool up_dirty;                /* the upstream connection must not be reused */
    bool ev_rhead, ev_rdone;
    bool head_done;               /* the request head was complete (method, target known) */
    bool holding;                 /* chunked request: routed, but its head is not sent (nor
                                     the upstream acquired) until its first chunk-size line
                                     has parsed, so that bad framing that came with the head
                                     sends nothing upstream (pg_conn.c: release_head) */
    bool chunk_seen;              /* the request parser has seen a whole chunk-size line */
    bool expect_continue;         /* Expect: 100-continue */
    pg_buf_t *held;               /* body bytes parsed while holding (a copy), sent after the
                                     head (again after a retried connect); NULL: none */
    pg_chunk_t qchunk;            /* a chunked request body's framing, read strictly before
                                     its bytes go on (pg_conn_body.c); zeroed with the
                                     exchange, which is pg__chunk_init's state */
    bool dechunk;                 /* HTTP/1.0 client, chunked response: relay the payload */
    bool enchunk;                 /* HTTP/1.1 client, body delimited by the upstream's close:
                                     each read goes out as one chunk, the last chunk only at
                                     the upstream's EOF, so that a cut shows (pg_resp.c) */
    outq_t *oq;                   /* while an upstream read is parsed: where on_body queues */
    pg_buf_t *rbuf;               /*   and the buffer it points into */
    int up_writes;                /* uv_writes to u not yet completed */
    int status;                   /* status sent to the client (0: none yet) */
    int cause;                    /* pg_err_cause_t when we answered or cut; -1 otherwise */
    int route_slot;               /* metrics */
    uint64_t t_head;              /* uv_hrtime() at head complete */
    uint64_t bytes_out;           /* to the client, for the access log */
} xchg_t;

struct pg_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    pg_worker_t *w;
    pg_conn_t *next, *prev;
    llhttp_t req;
    xchg_t *x;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    char peer_text[48];           /* the peer as text (X-Forwarded-For), once per connection */
    uint8_t peer_text_len;        /*   0: not yet */
    pg_buf_t *pend;               /* pipelined bytes waiting for the current response */
    uint32_t pend_off, pend_len;
    int state;
    int timer_mode;
    uint64_t deadline;            /* loop time when the current state times out */
    size_t flush_seen;            /* closing: bytes waiting for the client at the last
                                     T_FLUSH timeout (pg_conn.c on_timeout) */
    int open_handles;
    int cl_writes;                /* uv_writes to the client not yet completed */
    bool wb_pending;              /* a write to the client waits in the worker's batch */
    bool ev_head, ev_done;
    bool keep_alive;              /* the client may send another request after this one */
    bool close_after;             /* close once the current response is written */
    bool reading;
    bool closed;                  /* uv_close called */
    bool admin;                   /* accepted on pprof.admin_listen */
    bool head_cr;                 /* the request head bytes parsed so far end in CR (its LF
                                     must begin the next read) */
    bool head_lf;                 /* the request head bytes parsed so far end in LF (an
                                     obs-fold may begin in the next read) */
    bool rd_eof;                  /* the client half-closed after a complete request: never
                                     read again; close once its response is written */
};

/* ---- internals of pg_conn.c, for the other files ---- */
/* The connection times out in mode T_* ms from now. */
void pg__conn_arm(pg_conn_t *c, int mode, uint64_t ms);
/* FIN after the pending writes, then linger (see pg_conn.c); drops the exchange. */
void pg__conn_close(pg_conn_t *c);
/* Start or stop reading either side for backpressure and pipelining. */
void pg__conn_update_reading(pg_conn_t *c);
/* Parse and relay len bytes of b from off (kick: parse once even with none, to complete a
 * message whose end the parser has seen). */
void pg__conn_process_client(pg_conn_t *c, pg_buf_t *b, uint32_t off, uint32_t len, bool kick);

/* What a complete request head says before routing: the path and query of its target, and
 * the host routing reads -- the absolute-form authority, else Host (RFC 9112 3.2.2). Offsets
 * into the head buffer (the target starts it). */
typedef struct pg_conn_target {
    const char *host;            /* NULL: none (an HTTP/1.0 request without Host) */
    size_t host_full, host_len;  /*   its bytes, and those before any ":port" */
    size_t path_off, path_len;   /* the origin-form path */
    size_t query_off, query_len; /* "?..." after it; length 0: none */
    size_t auth_off, auth_len;   /* the absolute-form authority; length 0: origin-form */
} pg_conn_target_t;
/* The refusals on_request_head makes from a complete head h alone (req: the parser that read
 * it): the reason (a static string) and *status (400, or 501 for an upgrade), or NULL and *t.
 * Also for fuzz_http_request, which holds the rewrite to what this lets through. */
const char *pg__conn_head_target(const llhttp_t *req, const pg_head_t *h, int *status,
                                 pg_conn_target_t *t);
/* Route t: a route naming host:port is matched on the whole host first when some route does
 * (has_port_hosts), then on the host before its port. pg_route_match's result. */
int pg__conn_route(const pg_route_table_t *routes, bool has_port_hosts, const char *url,
                   const pg_conn_target_t *t, pg_route_match_t *m);

/* ---- internals of pg_conn_xchg.c ---- */
/* The routed request goes upstream: acquire a connection (pooled, or connecting), write the
 * head (and the body bytes held with it) once it can. */
void pg__conn_start_upstream(pg_conn_t *c);
/* The upstream failed (err: negative errno): retry once, 502, or cut the response. */
void pg__conn_upstream_failed(pg_conn_t *c, int err);
/* upstream.connect_timeout ran out (T_CONNECT): retry once on a pooled connection, or 502. */
void pg__conn_connect_timed_out(pg_conn_t *c);
/* Both messages are complete: upstream back to its pool, then keep-alive or close. */
void pg__conn_finish_exchange(pg_conn_t *c);
/* The exchange ends where it is (the connection closes): counted, logged, freed; its upstream
 * connection pooled again only if upstream_reusable and nothing of ours is pending on it. */
void pg__conn_drop_exchange(pg_conn_t *c, bool upstream_reusable);

/* ---- internals of pg_conn_write.c ---- */
/* Write n buffers to the client (or the exchange's upstream): what the kernel does not take
 * at once is queued, b (may be NULL) referenced until it is written. 0 or a negative errno
 * (the connection is left as it was: the caller decides). */
int pg__conn_client_write(pg_conn_t *c, const uv_buf_t *bufs, unsigned n, pg_buf_t *b);
int pg__conn_upstream_write(pg_conn_t *c, const uv_buf_t *bufs, unsigned n, pg_buf_t *b);
/* Client output gathered into q (see outq_t, which starts with n, line_len 0 and no hold):
 * add [p, p+n) of b (referenced until sent; flushes first when q is full), send it all in
 * one write, or drop it. */
int pg__outq_add(pg_conn_t *c, outq_t *q, const char *p, size_t n, pg_buf_t *b);
/* The same for n > 0 bytes sent as one chunk (RFC 9112 7.1): its size line and CRLF around
 * them as iovecs of their own, the bytes not copied. */
int pg__outq_add_chunk(pg_conn_t *c, outq_t *q, const char *p, size_t n, pg_buf_t *b);
int pg__outq_flush(pg_conn_t *c, outq_t *q);

/* ---- the worker's batch of client writes (pg_conn_batch.c) ---- */
#define PG_WBATCH_IOV 8 /* the most buffers a batched write carries */
/* Adds a write of bufs[0..n) to c's socket (b0, b1: what they point into, may be NULL;
 * referenced until written); false when the batch cannot take it (being flushed, or
 * n > PG_WBATCH_IOV); a full batch is flushed first. Sets c->wb_pending. */
bool pg__wbatch_add(pg_wbatch_t *b, pg_conn_t *c, const uv_buf_t *bufs, unsigned n,
                    pg_buf_t *b0, pg_buf_t *b1);
/* Called back by a flush for each write (pg_conn_write.c): rest[0..nrest) is what the socket
 * did not take (b0, b1 hold it), err a write error (negative) or 0. Clears c->wb_pending. */
void pg__conn_batched(pg_conn_t *c, const uv_buf_t *rest, unsigned nrest, int err, pg_buf_t *b0,
                      pg_buf_t *b1);
void pg__outq_drop(outq_t *q);

/* ---- internals of pg_conn_body.c, for pg_conn.c ---- */
/* on_body and on_chunk_header of the request parser (parser.data: the pg_conn_t). */
int pg__conn_on_req_body(llhttp_t *p, const char *at, size_t len);
int pg__conn_on_req_chunk_header(llhttp_t *p);
/* Body bytes [p, p+n) of b go upstream (framing included), or are held with the head. 0, or
 * -1 when the exchange failed (answered or closed). */
int pg__conn_forward_body(pg_conn_t *c, pg_buf_t *b, const char *p, size_t n);
/* The answer to a request llhttp refused with e while parsing [p, end) (413, 400 or 431
 * naming the cause; in a chunked body the strict reading's cause when it finds one). */
void pg__conn_request_error(pg_conn_t *c, llhttp_errno_t e, const char *p, const char *end);

/* ---- internals of pg_conn_lines.c ---- */
/* Why head bytes [p, p+n) are refused (a line not ended by CRLF, an obs-fold), or NULL;
 * c->head_cr and c->head_lf carry the end of the previous read's head bytes. */
const char *pg__conn_head_bad(pg_conn_t *c, const char *p, size_t n);
/* The same on explicit carries (*cr: the bytes so far end in CR, *lf: in LF), in one pass;
 * and the two-pass reference it defers to whenever the bytes are not plainly fine. The same
 * verdict (the same static string, or NULL) and the same carries, by construction. */
const char *pg__conn_lines_scan(bool *cr, bool *lf, const char *p, size_t n);
const char *pg__conn_lines_scan_ref(bool *cr, bool *lf, const char *p, size_t n);

/* ---- internals of pg_conn_chunk.c ---- */
/* A strict reader of chunked framing (RFC 9112 7.1), from a body's first byte on. */
void pg__chunk_init(pg_chunk_t *k);
/* Read the body's next n bytes at p: NULL while well framed, else the cause (a static
 * string, returned again for every later call). */
const char *pg__chunk_scan(pg_chunk_t *k, const char *p, size_t n);
/* Whether the last chunk and the trailer section have been read whole. */
bool pg__chunk_done(const pg_chunk_t *k);

/* ---- internals of pg_conn_own.c, for pg_conn.c and pg_resp.c ---- */
/* A short text/plain answer of our own naming the cause; the connection closes after it. */
void pg__conn_send_error(pg_conn_t *c, int status, const char *msg);
/* The pprof gate (pg_policy_check) for c->x: true to forward the request (its upstream budget
 * stretched for a profile's seconds), false when it was answered. */
bool pg__conn_pprof_gate(pg_conn_t *c);
/* GET server.metrics_path: the Prometheus text for allowed clients, else 403. */
void pg__conn_serve_metrics(pg_conn_t *c);
/* A request for "<pprof.path>/ui/...": answered by pg_ui. */
void pg__conn_ui_answer(pg_conn_t *c, const pg_route_match_t *m);

/* ---- internals of pg_resp.c, for pg_conn.c ---- */
/* llhttp settings of every upstream response parser (parser.data: the pg_conn_t). */
const llhttp_settings_t *pg__resp_settings(void);
/* ops->on_read of the exchange's upstream connection (u->owner: the pg_conn_t). */
void pg__resp_on_read(pg_uconn_t *u, ssize_t nread, pg_buf_t *b);

#endif
