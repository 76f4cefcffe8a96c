/* rs_server: one connection is a small state machine driven by three events: bytes read, a
 * job finished, a write completed. Each of them ends in conn_pump(), which:
 *   1. feeds buffered bytes to llhttp while the connection may answer (no job running, not
 *      closing, less than RS_OUT_HIGH of output queued); on_message_complete answers a request
 *      at once into the output buffer, or starts its job and pauses the parser, so pipelined
 *      requests are answered in order; the bytes after a pause stay in conn->in;
 *   2. hands the accumulated answers to one uv_write();
 *   3. reads from the socket only when all buffered bytes are parsed and nothing holds it back;
 *   4. closes when a "Connection: close" answer, a parse error or the peer's EOF has been
 *      fully written.
 * Reading stops whenever parsing does, so a client cannot queue unbounded work or output. */
#include "rs_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "rs_api.h"

#define RS_IN_CAP (16 * 1024)     /* one read; bytes not parsed yet wait here after a pause */
#define RS_URL_MAX 8192           /* longer: 414 */
#define RS_HEAD_MAX (32 * 1024)   /* header names and values; longer: 431 */
#define RS_BODY_MAX (1024 * 1024) /* request bodies are read and ignored; longer: 413 */
#define RS_OUT_HIGH (1024 * 1024) /* stop parsing while this much output is queued */

struct rs_conn {
    uv_tcp_t tcp;
    uv_shutdown_t shutdown;
    llhttp_t parser;
    rs_server_t *srv;
    rs_conn_t *prev, *next; /* srv->conns */

    char in[RS_IN_CAP];
    size_t in_off, in_len;
    size_t fed; /* bytes parsed before conn->in + in_off, over the connection's life */
    char url[RS_URL_MAX];
    size_t url_len;
    size_t head_bytes, body_bytes;
    int err_status;      /* set by a parser callback that refuses: the status to answer */
    const char *err_why; /* and why (static) */

    char *out; /* answers not yet handed to uv_write */
    size_t out_len, out_cap;
    size_t writing; /* bytes in uv_write()s not yet completed */

    rs_job_t *job; /* at most one: the parser is paused while it runs */
    bool job_keep_alive, job_head;

    bool eof;  /* peer sent FIN */
    bool last; /* the last answer is queued; parse nothing more */
    bool reading;
    bool closing; /* uv_shutdown or uv_close called */
    bool closed;  /* close callback ran */
};

typedef struct rs_write {
    uv_write_t req;
    rs_conn_t *conn;
    char *buf;
    size_t len;
} rs_write_t;

static void conn_pump(rs_conn_t *conn);
static void conn_close(rs_conn_t *conn, bool graceful);

static int on_message_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_header_bytes(llhttp_t *p, const char *at, size_t len);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static const llhttp_settings_t rs_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_bytes,
    .on_header_value = on_header_bytes,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_maybe_free(rs_conn_t *conn)
{
    if (conn->closed && conn->job == NULL) {
        free(conn->out);
        free(conn);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    rs_conn_t *conn = h->data;
    conn->closed = true;
    conn_maybe_free(conn);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    rs_conn_t *conn = req->data;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

/* graceful: send FIN after what is queued, then close; else close now (pending writes fail). */
static void conn_close(rs_conn_t *conn, bool graceful)
{
    if (conn->closing) {
        return;
    }
    conn->closing = true;
    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        conn->srv->conns = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->shutdown.data = conn;
    if (!graceful || uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
    }
}

static int out_reserve(rs_conn_t *conn, size_t more)
{
    if (conn->out_len + more <= conn->out_cap) {
        return 0;
    }
    size_t cap = conn->out_cap ? conn->out_cap : 4096;
    while (cap < conn->out_len + more) {
        cap *= 2;
    }
    char *p = realloc(conn->out, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    conn->out = p;
    conn->out_cap = cap;
    return 0;
}

/* Queues one answer. Every answer has Content-Length; HEAD gets the headers only. */
static void conn_respond(rs_conn_t *conn, const rs_response_t *resp, bool keep_alive, bool head)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s"
                     "Connection: %s\r\n\r\n",
                     resp->status, rs_status_text(resp->status), resp->len,
                     resp->allow ? "Allow: " : "", resp->allow ? resp->allow : "",
                     resp->allow ? "\r\n" : "", keep_alive ? "keep-alive" : "close");
    size_t blen = head ? 0 : resp->len;
    if (out_reserve(conn, (size_t)n + blen) != 0) {
        /* Nothing sensible can be sent without memory: drop the connection. */
        fprintf(stderr, "randomstring: out of memory answering a request; closing connection\n");
        conn->last = true;
        conn_close(conn, false);
        return;
    }
    memcpy(conn->out + conn->out_len, hdr, (size_t)n);
    conn->out_len += (size_t)n;
    if (blen > 0) {
        memcpy(conn->out + conn->out_len, resp->body, blen);
        conn->out_len += blen;
    }
    if (!keep_alive) {
        conn->last = true;
    }
}

static void on_write(uv_write_t *req, int status)
{
    rs_write_t *w = (rs_write_t *)req;
    rs_conn_t *conn = w->conn;
    conn->writing -= w->len;
    free(w->buf);
    free(w);
    if (status < 0) {
        conn_close(conn, false);
        return;
    }
    conn_pump(conn);
}

static void conn_flush(rs_conn_t *conn)
{
    if (conn->out_len == 0 || conn->closing) {
        return;
    }
    rs_write_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        conn_close(conn, false);
        return;
    }
    w->conn = conn;
    w->buf = conn->out;
    w->len = conn->out_len;
    conn->out = NULL;
    conn->out_len = conn->out_cap = 0;
    uv_buf_t buf = uv_buf_init(w->buf, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write);
    if (rc != 0) {
        free(w->buf);
        free(w);
        conn_close(conn, false);
        return;
    }
    conn->writing += w->len;
}

static bool conn_may_parse(const rs_conn_t *conn)
{
    return conn->job == NULL && !conn->last && !conn->closing &&
           conn->out_len + conn->writing < RS_OUT_HIGH;
}

/* llhttp refused the request: answer with its reason and close. */
static void conn_parse_error(rs_conn_t *conn, llhttp_errno_t err)
{
    rs_response_t resp = {0};
    int status = conn->err_status ? conn->err_status : 400;
    const char *reason = conn->err_why ? conn->err_why : llhttp_get_error_reason(&conn->parser);
    const char *pos = llhttp_get_error_pos(&conn->parser);
    size_t at = conn->fed + (pos != NULL ? (size_t)(pos - (conn->in + conn->in_off)) : 0);
    rs_response_set(&resp, status, "%s: %s (%s at byte %zu of the connection)\n",
                    rs_status_text(status), reason ? reason : "malformed request",
                    llhttp_errno_name(err), at);
    conn_respond(conn, &resp, false, false);
    rs_response_destroy(&resp);
    conn->last = true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    rs_conn_t *conn = h->data;
    *buf = uv_buf_init(conn->in + conn->in_len, (unsigned)(RS_IN_CAP - conn->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    rs_conn_t *conn = s->data;
    if (nread == UV_EOF) {
        conn->eof = true;
    } else if (nread < 0) {
        conn_close(conn, false);
        return;
    } else {
        conn->in_len += (size_t)nread;
    }
    conn_pump(conn);
}

static void conn_pump(rs_conn_t *conn)
{
    while (conn_may_parse(conn) && conn->in_off < conn->in_len) {
        const char *start = conn->in + conn->in_off;
        llhttp_errno_t err = llhttp_execute(&conn->parser, start, conn->in_len - conn->in_off);
        if (err == HPE_OK) {
            conn->fed += conn->in_len - conn->in_off;
            conn->in_off = conn->in_len;
        } else if (err == HPE_PAUSED) {
            size_t off = (size_t)(llhttp_get_error_pos(&conn->parser) - conn->in);
            conn->fed += off - conn->in_off;
            conn->in_off = off;
            llhttp_resume(&conn->parser);
        } else if (err == HPE_PAUSED_UPGRADE) {
            /* Upgrade/CONNECT: answered as a plain request already; we speak nothing else. */
            conn->last = true;
        } else {
            conn_parse_error(conn, err);
            conn->in_off = conn->in_len;
        }
    }
    if (conn->in_off == conn->in_len) {
        conn->in_off = conn->in_len = 0;
    } else if (conn->in_off > 0) {
        memmove(conn->in, conn->in + conn->in_off, conn->in_len - conn->in_off);
        conn->in_len -= conn->in_off;
        conn->in_off = 0;
    }
    if (conn->closing) {
        return;
    }
    conn_flush(conn);
    if (conn->closing) {
        return;
    }
    bool done = conn->last || (conn->eof && conn->in_len == 0);
    if (done && conn->job == NULL && conn->out_len == 0 && conn->writing == 0) {
        conn_close(conn, true);
        return;
    }
    bool want = !conn->eof && conn_may_parse(conn) && conn->in_len < RS_IN_CAP;
    if (want && !conn->reading) {
        if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
            conn_close(conn, false);
            return;
        }
    } else if (!want && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
    }
    conn->reading = want;
}

static int on_message_begin(llhttp_t *p)
{
    rs_conn_t *conn = p->data;
    conn->url_len = 0;
    conn->head_bytes = 0;
    conn->body_bytes = 0;
    conn->err_status = 0;
    conn->err_why = NULL;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    rs_conn_t *conn = p->data;
    if (conn->url_len + len > RS_URL_MAX) {
        conn->err_status = 414;
        conn->err_why = "request target longer than 8192 bytes";
        return -1;
    }
    memcpy(conn->url + conn->url_len, at, len);
    conn->url_len += len;
    return 0;
}

static int on_header_bytes(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    rs_conn_t *conn = p->data;
    conn->head_bytes += len;
    if (conn->head_bytes > RS_HEAD_MAX) {
        conn->err_status = 431;
        conn->err_why = "request headers longer than 32768 bytes";
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    rs_conn_t *conn = p->data;
    conn->body_bytes += len;
    if (conn->body_bytes > RS_BODY_MAX) {
        conn->err_status = 413;
        conn->err_why = "request body longer than 1048576 bytes";
        return -1;
    }
    return 0;
}

static void on_work(uv_work_t *w)
{
    rs_job_t *job = w->data;
    job->run(job);
}

static void on_work_done(uv_work_t *w, int status)
{
    rs_job_t *job = w->data;
    rs_conn_t *conn = job->owner;
    conn->job = NULL;
    if (conn->closing) {
        rs_job_free(job);
        conn_maybe_free(conn);
        return;
    }
    if (status != 0) {
        rs_response_set(&job->resp, 503, "job did not run: %s\n", uv_strerror(status));
    }
    conn_respond(conn, &job->resp, conn->job_keep_alive, conn->job_head);
    rs_job_free(job);
    conn_pump(conn);
}

/* origin-form "/path?query", or absolute-form "http://host/path?query" (RFC 9112 3.2). */
static void split_url(const char *url, size_t len, rs_request_t *req)
{
    const char *end = url + len, *p = url;
    if (len > 0 && url[0] != '/') {
        const char *scheme = memchr(url, ':', len);
        if (scheme != NULL && end - scheme > 3 && memcmp(scheme, "://", 3) == 0) {
            p = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
            if (p == NULL) {
                p = end;
            }
        }
    }
    const char *q = memchr(p, '?', (size_t)(end - p));
    req->path = p == end ? "/" : p;
    req->path_len = p == end ? 1 : (size_t)((q ? q : end) - p);
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? (size_t)(end - q - 1) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    rs_conn_t *conn = p->data;
    rs_request_t req = {.method = llhttp_get_method(p)};
    rs_response_t resp = {0};
    rs_job_t *job = NULL;
    bool keep_alive = llhttp_should_keep_alive(p) && !conn->srv->closing;
    bool head = req.method == HTTP_HEAD;

    split_url(conn->url, conn->url_len, &req);
    if (rs_api_handle(&req, &resp, &job) != 0) {
        rs_response_set(&resp, 500, "out of memory\n");
    }
    if (job != NULL) {
        job->owner = conn;
        job->work.data = job;
        conn->job_keep_alive = keep_alive;
        conn->job_head = head;
        int rc = uv_queue_work(conn->srv->loop, &job->work, on_work, on_work_done);
        if (rc == 0) {
            conn->job = job;
            rs_response_destroy(&resp);
            return HPE_PAUSED;
        }
        rs_job_free(job);
        rs_response_set(&resp, 503, "cannot queue work: %s\n", uv_strerror(rc));
    }
    conn_respond(conn, &resp, keep_alive, head);
    rs_response_destroy(&resp);
    return conn_may_parse(conn) ? 0 : HPE_PAUSED;
}

static void on_connection(uv_stream_t *listener, int status)
{
    rs_server_t *srv = listener->data;
    if (status < 0) {
        fprintf(stderr, "randomstring: accept: %s\n", uv_strerror(status));
        return;
    }
    rs_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL || uv_tcp_init(srv->loop, &conn->tcp) != 0) {
        /* Leave the connection in the backlog; libuv retries on the next event. */
        fprintf(stderr, "randomstring: out of memory accepting a connection\n");
        free(conn);
        return;
    }
    conn->tcp.data = conn;
    conn->srv = srv;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
        conn->closing = true;
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    llhttp_init(&conn->parser, HTTP_REQUEST, &rs_settings);
    conn->parser.data = conn;
    conn->next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->prev = conn;
    }
    srv->conns = conn;
    conn_pump(conn);
}

int rs_server_init(rs_server_t *srv, uv_loop_t *loop, const struct sockaddr *addr)
{
    int rc;
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    rc = uv_tcp_init(loop, &srv->listener);
    if (rc != 0) {
        return rc;
    }
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    }
    if (rc != 0) {
        srv->closing = true;
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
    return rc;
}

void rs_server_close(rs_server_t *srv)
{
    if (srv->closing) {
        return;
    }
    srv->closing = true;
    uv_close((uv_handle_t *)&srv->listener, NULL);
    while (srv->conns != NULL) {
        conn_close(srv->conns, false);
    }
}
