/* pa_server: HTTP/1.1 on the agent's Unix socket (see pa_server.h).
 *
 * One poll() loop on the agent thread. A connection is READING (llhttp fed from recv; the
 * parser pauses at the end of each request so pipelined bytes wait in `pending`), HANDLING
 * (inside the handler), DEFERRED (the handler keeps the request open: we poll only for the
 * peer hanging up, and wake the handler at the time it asked for), or WRITING (the response,
 * fully built with its Content-Length, goes out as the socket accepts it). After a response
 * the connection returns to READING, or closes if the client or an error asked for that.
 * Limits: PA_SERVER_MAX_CONNS connections (the listener is not polled while full), bounded
 * URL, header bytes and body (414/431/413), and an idle deadline outside DEFERRED.
 * SIGPIPE: every send uses MSG_NOSIGNAL, so a vanished client never kills the host.
 * The socket file (its directory, mode, stale files) lives in pa_server_sock.c. */
#include "pa_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

enum conn_state { C_READING, C_HANDLING, C_DEFERRED, C_WRITING };

struct pa_req {
    pa_server_t *server;
    int fd;
    enum conn_state state;
    int dead;
    int close_after;
    int64_t deadline_ns; /* idle deadline (READING, WRITING) */
    llhttp_t parser;

    /* the request being parsed, then handled */
    int user_status; /* set by a callback that refuses the request */
    const char *user_msg;
    char method[16];
    int is_head;
    char *url;
    size_t url_len;
    char *body;
    size_t body_len;
    size_t header_bytes;
    char hname[16];
    size_t hname_len;
    char hvalue[32];
    size_t hvalue_len;
    int expect_continue;
    char *path;
    const char *query;

    char *pending; /* input after the current request */
    size_t pending_len;

    char *out; /* the response */
    size_t out_len, out_off;

    pa_req_event_fn ev_fn;
    void *ev_arg;
    int64_t wake_at;
};

typedef struct pa_req conn_t;

struct pa_server {
    pa__server_sock_t sock; /* the listening socket and its file (pa_server_sock.c) */
    int wake_rd, wake_wr;
    char *path;
    pa_server_handler_fn handler;
    void *arg;
    llhttp_settings_t settings;
    conn_t *conns[PA_SERVER_MAX_CONNS];
    size_t nconns;
    _Atomic int stop;
    pa_server_idle_fn idle_fn; /* may be NULL */
    void *idle_arg;
};

int64_t pa_server_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int pa__url_unescape(const char *src, size_t len, char *dst, size_t dstsize, int plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return -EINVAL;
            hi = hexval((unsigned char)src[i + 1]);
            lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (o + 1 >= dstsize)
            return -ENAMETOOLONG;
        dst[o++] = ch;
    }
    if (dstsize == 0)
        return -ENAMETOOLONG;
    dst[o] = '\0';
    return 0;
}

/* ---- connections ---- */

static void reset_request(conn_t *c)
{
    free(c->url);
    free(c->body);
    free(c->path);
    c->url = c->body = c->path = NULL;
    c->url_len = c->body_len = c->header_bytes = 0;
    c->hname_len = c->hvalue_len = 0;
    c->expect_continue = 0;
    c->user_status = 0;
    c->user_msg = NULL;
    c->query = "";
    c->method[0] = '\0';
    c->is_head = 0;
    c->ev_fn = NULL;
    c->ev_arg = NULL;
    c->wake_at = 0;
}

static void close_conn(conn_t *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void free_conn(conn_t *c)
{
    reset_request(c);
    free(c->pending);
    free(c->out);
    free(c);
}

static int refuse(llhttp_t *p, int status, const char *msg)
{
    conn_t *c = p->data;
    c->user_status = status;
    c->user_msg = msg;
    return HPE_USER;
}

static int append(char **buf, size_t *len, const char *at, size_t n)
{
    char *nb = realloc(*buf, *len + n + 1);
    if (nb == NULL)
        return -1;
    memcpy(nb + *len, at, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    reset_request(p->data);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->url_len + n > PA_SERVER_MAX_URL)
        return refuse(p, 414, "URI Too Long");
    if (append(&c->url, &c->url_len, at, n) < 0)
        return refuse(p, 503, "out of memory");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    c->header_bytes += n;
    if (c->header_bytes > PA_SERVER_MAX_HEADERS)
        return refuse(p, 431, "Request Header Fields Too Large");
    for (size_t i = 0; i < n && c->hname_len < sizeof(c->hname); i++)
        c->hname[c->hname_len++] = at[i];
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    c->header_bytes += n;
    if (c->header_bytes > PA_SERVER_MAX_HEADERS)
        return refuse(p, 431, "Request Header Fields Too Large");
    for (size_t i = 0; i < n && c->hvalue_len < sizeof(c->hvalue); i++)
        c->hvalue[c->hvalue_len++] = at[i];
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if (c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0 && c->hvalue_len == 12 &&
        strncasecmp(c->hvalue, "100-continue", 12) == 0)
        c->expect_continue = 1;
    c->hname_len = c->hvalue_len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    const char *m = llhttp_method_name((llhttp_method_t)p->method);

    snprintf(c->method, sizeof(c->method), "%s", m);
    c->is_head = p->method == HTTP_HEAD;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > PA_SERVER_MAX_BODY) {
        (void)refuse(p, 413, "Payload Too Large");
        return -1; /* this callback's error value (llhttp.h) */
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->body_len + n > PA_SERVER_MAX_BODY)
        return refuse(p, 413, "Payload Too Large");
    if (append(&c->body, &c->body_len, at, n) < 0)
        return refuse(p, 503, "out of memory");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->close_after = !llhttp_should_keep_alive(p);
    return HPE_PAUSED; /* one request at a time: the rest waits in pending */
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 301:
        return "Moved Permanently";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void finish_response(conn_t *c)
{
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    reset_request(c);
    if (c->close_after) {
        close_conn(c);
        return;
    }
    c->state = C_READING;
    c->deadline_ns = pa_server_now_ns() + (int64_t)PA_SERVER_IDLE_MS * 1000000;
}

static void try_write(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* poll for POLLOUT */
            close_conn(c);
            return;
        }
        c->out_off += (size_t)n;
        c->deadline_ns = pa_server_now_ns() + (int64_t)PA_SERVER_IDLE_MS * 1000000;
    }
    finish_response(c);
}

int pa_req_respond(pa_req_t *r, int status, const pa_header_t *headers, size_t nheaders,
                   const void *body, size_t len)
{
    size_t cap = 128 + len;
    size_t o;
    char *out;

    for (size_t i = 0; i < nheaders; i++)
        cap += strlen(headers[i].name) + strlen(headers[i].value) + 4;
    out = malloc(cap);
    if (out == NULL) {
        close_conn(r);
        return -ENOMEM;
    }
    o = (size_t)snprintf(out, cap, "HTTP/1.1 %d %s\r\n", status, reason(status));
    for (size_t i = 0; i < nheaders; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s: %s\r\n", headers[i].name, headers[i].value);
    o += (size_t)snprintf(out + o, cap - o, "Content-Length: %zu\r\n%s\r\n", len,
                          r->close_after ? "Connection: close\r\n" : "");
    if (!r->is_head && len > 0) {
        memcpy(out + o, body, len);
        o += len;
    }
    r->out = out;
    r->out_len = o;
    r->out_off = 0;
    r->state = C_WRITING;
    try_write(r);
    return 0;
}

static void respond_error(conn_t *c, int status, const char *msg)
{
    static const pa_header_t hdrs[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"X-Go-Pprof", "1"},
        {"X-Content-Type-Options", "nosniff"},
    };
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", msg);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    pa_req_respond(c, status, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), body, (size_t)n);
}

/* Split the request target into a decoded path and a raw query. */
static int split_target(conn_t *c)
{
    const char *u = c->url ? c->url : "";
    const char *q, *p = u;
    size_t plen;

    if (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) {
        p = strchr(strstr(u, "//") + 2, '/'); /* absolute-form (RFC 9112 3.2.2) */
        if (p == NULL)
            p = "/";
    }
    q = strchr(p, '?');
    plen = q ? (size_t)(q - p) : strlen(p);
    c->query = q ? q + 1 : "";
    c->path = malloc(plen + 1);
    if (c->path == NULL)
        return -ENOMEM;
    if (pa__url_unescape(p, plen, c->path, plen + 1, 0) < 0)
        return -EINVAL;
    if (c->path[0] != '/')
        return -EINVAL;
    return 0;
}

static void dispatch(pa_server_t *s, conn_t *c)
{
    c->state = C_HANDLING;
    if (split_target(c) < 0) {
        c->close_after = 1;
        respond_error(c, 400, "bad request target");
        return;
    }
    s->handler(s->arg, c);
    if (!c->dead && c->state == C_HANDLING)
        respond_error(c, 500, "no response");
}

/* Feed bytes to the parser; dispatches at most one request (then the rest waits). */
static void feed(pa_server_t *s, conn_t *c, const char *data, size_t len)
{
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);

    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (used < len) {
            c->pending = malloc(len - used);
            if (c->pending == NULL) {
                close_conn(c);
                return;
            }
            memcpy(c->pending, data + used, len - used);
            c->pending_len = len - used;
        }
        llhttp_resume(&c->parser);
        dispatch(s, c);
        return;
    }
    c->close_after = 1;
    c->state = C_HANDLING;
    if (c->user_status)
        respond_error(c, c->user_status, c->user_msg);
    else
        respond_error(c, 400, llhttp_get_error_reason(&c->parser)); /* llhttp's own words */
}

/* Handle input that arrived with an earlier request, one request at a time. */
static void pump(pa_server_t *s, conn_t *c)
{
    while (!c->dead && c->state == C_READING && c->pending != NULL) {
        char *p = c->pending;
        size_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        feed(s, c, p, n);
        free(p);
    }
}

static void on_readable(pa_server_t *s, conn_t *c)
{
    char buf[16384];

    for (int i = 0; i < 4 && !c->dead && c->state == C_READING && c->pending == NULL; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close_conn(c);
            return;
        }
        c->deadline_ns = pa_server_now_ns() + (int64_t)PA_SERVER_IDLE_MS * 1000000;
        feed(s, c, buf, (size_t)n);
        pump(s, c);
    }
}

static void accept_conns(pa_server_t *s)
{
    while (s->nconns < PA_SERVER_MAX_CONNS) {
        conn_t *c;
        int fd = accept4(s->sock.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
            return; /* EAGAIN, or a transient error: poll again */
        if (pa__server_sock_admit(&s->sock, fd) < 0) {
            close(fd);
            continue;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->server = s;
        c->fd = fd;
        c->query = "";
        c->state = C_READING;
        c->deadline_ns = pa_server_now_ns() + (int64_t)PA_SERVER_IDLE_MS * 1000000;
        llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
        c->parser.data = c;
        s->conns[s->nconns++] = c;
    }
}

static void sweep(pa_server_t *s)
{
    size_t o = 0;
    for (size_t i = 0; i < s->nconns; i++) {
        if (s->conns[i]->dead)
            free_conn(s->conns[i]);
        else
            s->conns[o++] = s->conns[i];
    }
    s->nconns = o;
}

static void deferred_event(pa_server_t *s, conn_t *c, pa_req_event_t ev)
{
    pa_req_event_fn fn = c->ev_fn;

    if (ev != PA_REQ_WAKE) {
        c->state = C_HANDLING; /* no response may follow */
        fn(c->ev_arg, c, ev);
        close_conn(c);
        return;
    }
    c->wake_at = 0;
    fn(c->ev_arg, c, ev);
    if (!c->dead && c->state == C_DEFERRED && c->wake_at == 0) {
        c->close_after = 1; /* the handler forgot to respond or wake again */
        respond_error(c, 500, "no response");
    }
    pump(s, c);
}

static int poll_timeout(pa_server_t *s, int64_t now)
{
    int64_t next = INT64_MAX;

    for (size_t i = 0; i < s->nconns; i++) {
        conn_t *c = s->conns[i];
        int64_t t = c->state == C_DEFERRED ? (c->wake_at ? c->wake_at : INT64_MAX) : c->deadline_ns;
        if (t < next)
            next = t;
    }
    if (next == INT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    return (int)((next - now + 999999) / 1000000 > 60000 ? 60000 : (next - now + 999999) / 1000000);
}

int pa_server_run(pa_server_t *s)
{
    struct pollfd pfd[2 + PA_SERVER_MAX_CONNS];
    conn_t *pc[2 + PA_SERVER_MAX_CONNS];

    while (!atomic_load(&s->stop)) {
        int64_t now = pa_server_now_ns();
        nfds_t n = 0;
        int rc;

        pfd[n].fd = s->wake_rd;
        pfd[n].events = POLLIN;
        pc[n++] = NULL;
        if (s->nconns < PA_SERVER_MAX_CONNS) {
            pfd[n].fd = s->sock.fd;
            pfd[n].events = POLLIN;
            pc[n++] = NULL;
        }
        for (size_t i = 0; i < s->nconns; i++) {
            conn_t *c = s->conns[i];
            short ev = c->state == C_READING   ? POLLIN | POLLRDHUP
                       : c->state == C_WRITING ? POLLOUT
                                               : POLLRDHUP;
            pfd[n].fd = c->fd;
            pfd[n].events = ev;
            pc[n++] = c;
        }
        if (s->idle_fn != NULL)
            s->idle_fn(s->idle_arg, 1);
        rc = poll(pfd, n, poll_timeout(s, now));
        if (rc < 0)
            rc = errno == EINTR ? 0 : -errno;
        if (s->idle_fn != NULL)
            s->idle_fn(s->idle_arg, 0);
        if (rc < 0)
            return rc;
        if (atomic_load(&s->stop))
            break;
        for (nfds_t i = 0; rc > 0 && i < n; i++) {
            conn_t *c = pc[i];
            short re = pfd[i].revents;
            if (re == 0)
                continue;
            if (c == NULL) {
                if (pfd[i].fd == s->sock.fd)
                    accept_conns(s);
                else {
                    char drain[64];
                    while (read(s->wake_rd, drain, sizeof(drain)) > 0) {
                    }
                }
                continue;
            }
            if (c->dead)
                continue;
            if (c->state == C_DEFERRED) {
                if (re & (POLLRDHUP | POLLHUP | POLLERR))
                    deferred_event(s, c, PA_REQ_GONE);
            } else if (c->state == C_WRITING) {
                if (re & (POLLHUP | POLLERR))
                    close_conn(c);
                else
                    try_write(c);
                pump(s, c);
            } else if (c->state == C_READING) {
                on_readable(s, c);
            }
        }
        now = pa_server_now_ns();
        for (size_t i = 0; i < s->nconns; i++) {
            conn_t *c = s->conns[i];
            if (c->dead)
                continue;
            if (c->state == C_DEFERRED) {
                if (c->wake_at != 0 && c->wake_at <= now)
                    deferred_event(s, c, PA_REQ_WAKE);
            } else if (c->deadline_ns <= now) {
                close_conn(c);
            }
        }
        sweep(s);
    }
    for (size_t i = 0; i < s->nconns; i++) {
        conn_t *c = s->conns[i];
        if (!c->dead && c->state == C_DEFERRED)
            deferred_event(s, c, PA_REQ_SHUTDOWN);
        close_conn(c);
    }
    sweep(s);
    return 0;
}

static void init_settings(llhttp_settings_t *st)
{
    llhttp_settings_init(st);
    st->on_message_begin = on_message_begin;
    st->on_url = on_url;
    st->on_header_field = on_header_field;
    st->on_header_value = on_header_value;
    st->on_header_value_complete = on_header_value_complete;
    st->on_headers_complete = on_headers_complete;
    st->on_body = on_body;
    st->on_message_complete = on_message_complete;
}

int pa_server_new(const char *path, pa_server_handler_fn handler, void *arg, pa_server_t **out)
{
    return pa_server_new_access(path, NULL, handler, arg, out);
}

int pa_server_new_access(const char *path, const pa_server_access_t *acc,
                         pa_server_handler_fn handler, void *arg, pa_server_t **out)
{
    pa_server_t *s;
    int fds[2];
    int rc;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->sock.fd = s->wake_rd = s->wake_wr = -1;
    s->handler = handler;
    s->arg = arg;
    s->path = strdup(path);
    if (s->path == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        goto fail;
    }
    s->wake_rd = fds[0];
    s->wake_wr = fds[1];
    init_settings(&s->settings);
    if ((rc = pa__server_sock_listen(&s->sock, s->path, acc)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (s->wake_rd >= 0)
        close(s->wake_rd);
    if (s->wake_wr >= 0)
        close(s->wake_wr);
    free(s->path);
    free(s);
    return rc;
}

void pa_server_stop(pa_server_t *s)
{
    char b = 1;
    atomic_store(&s->stop, 1);
    (void)!write(s->wake_wr, &b, 1);
}

void pa_server_set_idle_hook(pa_server_t *s, pa_server_idle_fn fn, void *arg)
{
    s->idle_fn = fn;
    s->idle_arg = arg;
}

void pa_server_unlink(pa_server_t *s)
{
    pa__server_sock_unlink(&s->sock, s->path);
}

void pa_server_free(pa_server_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nconns; i++) {
        close_conn(s->conns[i]);
        free_conn(s->conns[i]);
    }
    if (s->sock.fd >= 0)
        close(s->sock.fd);
    pa_server_unlink(s);
    close(s->wake_rd);
    close(s->wake_wr);
    free(s->path);
    free(s);
}

const char *pa_req_method(const pa_req_t *r)
{
    return r->method;
}

const char *pa_req_path(const pa_req_t *r)
{
    return r->path ? r->path : "/";
}

const char *pa_req_query(const pa_req_t *r)
{
    return r->query ? r->query : "";
}

const char *pa_req_body(const pa_req_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : "";
}

void pa_req_defer(pa_req_t *r, pa_req_event_fn fn, void *arg)
{
    r->state = C_DEFERRED;
    r->ev_fn = fn;
    r->ev_arg = arg;
}

void pa_req_wake_at(pa_req_t *r, int64_t at_ns)
{
    r->wake_at = at_ns > 0 ? at_ns : 1;
}

int pa__server_feed(int fd, const char *data, size_t len, size_t split,
                    pa_server_handler_fn handler, void *arg)
{
    pa_server_t s = {.sock.fd = -1, .wake_rd = -1, .wake_wr = -1, .handler = handler, .arg = arg};
    conn_t *c;

    if (split > len)
        split = len;
    init_settings(&s.settings);
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    c->server = &s;
    c->fd = fd;
    c->query = "";
    c->state = C_READING;
    llhttp_init(&c->parser, HTTP_REQUEST, &s.settings);
    c->parser.data = c;
    /* two reads, as on_readable takes them: only while reading and nothing is pending */
    for (int i = 0; i < 2; i++) {
        const char *p = i ? data + split : data;
        size_t n = i ? len - split : split;

        if (c->dead || c->state != C_READING || c->pending != NULL)
            break;
        if (n == 0)
            continue;
        feed(&s, c, p, n);
        pump(&s, c);
    }
    close_conn(c);
    free_conn(c);
    return 0;
}
