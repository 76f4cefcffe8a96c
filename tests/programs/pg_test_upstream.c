/* pg_test_upstream: a small HTTP/1.1 server (libuv + llhttp) that the proxy integration
 * tests put behind profgate. Keep-alive and in-order pipelining; every answer is made at the
 * end of the request (the request body is buffered: this is a test program).
 *   pg_test_upstream --listen HOST:PORT|[V6]:PORT | --unix PATH [--name NAME]
 * Endpoints (query parameters in brackets):
 *   /echo            200, body: "NAME METHOD URL conn=N req=M\n" then the request headers
 *                    ("name: value" lines), a blank line, and the request body
 *   /chunked [n=N]   200, chunked: N chunks "chunk i\n" (default 3)
 *   /big [kb=N]      200, N KiB of 'x' with Content-Length (default 1024)
 *   /sleep [ms=N]    200 "slept\n" after N ms (default 1000)
 *   /cut             200 with Content-Length 1000, sends 10 bytes, closes
 *   /eof             200 without Content-Length, body "until close\n", then closes
 *   /status [code=N] that status, body "status N\n" (none for 1xx/204/304)
 *   /close           200 "bye\n" with Connection: close, then closes
 *   anything else    404 "NAME not found URL\n"
 * A leading "/debug/pprof" is ignored when choosing the endpoint (the program then stands
 * in for an agent). A request with "Expect: 100-continue" gets "100 Continue" first. conn=N counts accepted
 * connections, so a test can see whether the proxy reused its upstream connection. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

typedef struct tconn {
    uv_tcp_t tcp; /* or uv_pipe_t: both are streams; union keeps one allocation */
    uv_pipe_t pipe_unused;
    uv_stream_t *s;
    uv_timer_t timer;
    llhttp_t p;
    int id, nreq;
    char *in;           /* bytes read, not yet parsed */
    size_t inlen;
    char url[2048];
    size_t urllen;
    char hdrs[16384];
    size_t hdrlen;
    char *body;
    size_t bodylen, bodycap;
    bool in_value;
    bool closing;
    bool busy;          /* a response is pending (sleep): parsing paused */
    int handles;
} tconn_t;

static uv_loop_t *loop;
static int nconns;
static const char *name = "upstream";
static llhttp_settings_t settings;
static void parse_more(tconn_t *c);

static void on_close(uv_handle_t *h)
{
    tconn_t *c = h->data;

    if (--c->handles == 0) {
        free(c->in);
        free(c->body);
        free(c);
    }
}

static void conn_close(tconn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)c->s, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

typedef struct wr {
    uv_write_t req;
    bool close_after;
    char data[];
} wr_t;

static void on_write(uv_write_t *req, int status)
{
    wr_t *w = (wr_t *)req;
    tconn_t *c = req->handle->data;

    if (status < 0 || w->close_after)
        conn_close(c);
    free(w);
}

static void send_bytes(tconn_t *c, const char *data, size_t len, bool close_after)
{
    wr_t *w = malloc(sizeof *w + len);
    uv_buf_t b;

    memcpy(w->data, data, len);
    w->close_after = close_after;
    b = uv_buf_init(w->data, (unsigned)len);
    if (c->closing || uv_write(&w->req, c->s, &b, 1, on_write) < 0)
        free(w);
}

static void respond(tconn_t *c, int status, const char *extra, const char *body, size_t blen,
                    bool close_after)
{
    char head[512];
    bool nobody = status < 200 || status == 204 || status == 304;
    int n;

    n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\n%s%s", status, extra,
                 close_after ? "Connection: close\r\n" : "");
    if (!nobody)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    send_bytes(c, head, (size_t)n, false);
    if (!nobody && c->p.method != HTTP_HEAD && blen)
        send_bytes(c, body, blen, false);
    if (close_after)
        send_bytes(c, "", 0, true);
}

static long qparam(const tconn_t *c, const char *key, long dflt)
{
    const char *q = memchr(c->url, '?', c->urllen);
    char pat[64];
    const char *f;

    if (q == NULL)
        return dflt;
    snprintf(pat, sizeof pat, "%s=", key);
    f = strstr(q, pat);
    return f ? strtol(f + strlen(pat), NULL, 10) : dflt;
}

/* "/debug/pprof" in front of an endpoint is ignored, so that the program can also stand in
 * for an agent behind profgate's pprof relay. */
static bool path_is(const tconn_t *c, const char *path)
{
    const char *u = c->url;
    size_t n = strlen(path), len = c->urllen;

    if (len >= 12 && memcmp(u, "/debug/pprof", 12) == 0)
        u += 12, len -= 12;
    return len >= n && memcmp(u, path, n) == 0 && (len == n || u[n] == '?');
}

static void on_sleep_done(uv_timer_t *t)
{
    tconn_t *c = t->data;

    respond(c, 200, "", "slept\n", 6, false);
    c->busy = false;
    llhttp_resume(&c->p);
    parse_more(c);
}

static void handle(tconn_t *c)
{
    char *buf;
    size_t n, i;
    long k;

    c->nreq++;
    if (path_is(c, "/echo")) {
        buf = malloc(256 + c->urllen + c->hdrlen + c->bodylen);
        n = (size_t)sprintf(buf, "%s %s %.*s conn=%d req=%d\n", name,
                            llhttp_method_name(c->p.method), (int)c->urllen, c->url, c->id,
                            c->nreq);
        memcpy(buf + n, c->hdrs, c->hdrlen);
        n += c->hdrlen;
        buf[n++] = '\n';
        if (c->bodylen)
            memcpy(buf + n, c->body, c->bodylen);
        n += c->bodylen;
        respond(c, 200, "X-Upstream: yes\r\nConnection: X-Upstream\r\nKeep-Alive: timeout=5\r\n",
                buf, n, false);
        free(buf);
    } else if (path_is(c, "/chunked")) {
        char line[64];
        const char *h = "HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n";

        k = qparam(c, "n", 3);
        send_bytes(c, h, strlen(h), false);
        for (i = 0; i < (size_t)k; i++) {
            int m = snprintf(line, sizeof line, "chunk %zu\n", i);
            char frame[96];
            int f = snprintf(frame, sizeof frame, "%x\r\n%s\r\n", m, line);

            send_bytes(c, frame, (size_t)f, false);
        }
        send_bytes(c, "0\r\n\r\n", 5, false);
    } else if (path_is(c, "/big")) {
        k = qparam(c, "kb", 1024);
        n = (size_t)k * 1024;
        buf = malloc(n + 1);
        memset(buf, 'x', n);
        respond(c, 200, "", buf, n, false);
        free(buf);
    } else if (path_is(c, "/sleep")) {
        c->busy = true;
        uv_timer_start(&c->timer, on_sleep_done, (uint64_t)qparam(c, "ms", 1000), 0);
    } else if (path_is(c, "/cut")) {
        const char *h = "HTTP/1.1 200 X\r\nContent-Length: 1000\r\n\r\n0123456789";

        send_bytes(c, h, strlen(h), true);
    } else if (path_is(c, "/eof")) {
        const char *h = "HTTP/1.1 200 X\r\n\r\nuntil close\n";

        send_bytes(c, h, strlen(h), true);
    } else if (path_is(c, "/status")) {
        char b[64];

        k = qparam(c, "code", 200);
        n = (size_t)snprintf(b, sizeof b, "status %ld\n", k);
        respond(c, (int)k, "", b, n, false);
    } else if (path_is(c, "/close")) {
        respond(c, 200, "", "bye\n", 4, true);
    } else {
        char nf[2200];

        n = (size_t)snprintf(nf, sizeof nf, "%s not found %.*s\n", name, (int)c->urllen,
                             c->url);
        respond(c, 404, "", nf, n, false);
    }
}

static int on_begin(llhttp_t *p)
{
    tconn_t *c = p->data;

    c->urllen = c->hdrlen = c->bodylen = 0;
    c->in_value = false;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;

    if (c->urllen + len >= sizeof c->url)
        return -1;
    memcpy(c->url + c->urllen, at, len);
    c->urllen += len;
    c->url[c->urllen] = '\0';
    return 0;
}

static int hdr_add(tconn_t *c, const char *at, size_t len)
{
    if (c->hdrlen + len + 4 >= sizeof c->hdrs)
        return -1;
    memcpy(c->hdrs + c->hdrlen, at, len);
    c->hdrlen += len;
    return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;

    if (c->in_value) {
        hdr_add(c, "\n", 1);
        c->in_value = false;
    }
    return hdr_add(c, at, len);
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;

    if (!c->in_value) {
        hdr_add(c, ": ", 2);
        c->in_value = true;
    }
    return hdr_add(c, at, len);
}

static int on_headers(llhttp_t *p)
{
    tconn_t *c = p->data;

    if (c->in_value)
        hdr_add(c, "\n", 1);
    c->in_value = false;
    c->hdrs[c->hdrlen] = '\0';
    if (strcasestr(c->hdrs, "expect: 100-continue"))
        send_bytes(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, false);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;

    if (c->bodylen + len > c->bodycap) {
        c->bodycap = (c->bodylen + len) * 2;
        c->body = realloc(c->body, c->bodycap);
    }
    memcpy(c->body + c->bodylen, at, len);
    c->bodylen += len;
    return 0;
}

static int on_done(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static void parse_more(tconn_t *c)
{
    while (c->inlen > 0 && !c->busy && !c->closing) {
        llhttp_errno_t e = llhttp_execute(&c->p, c->in, c->inlen);
        size_t used = e == HPE_OK ? c->inlen : (size_t)(llhttp_get_error_pos(&c->p) - c->in);

        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
        if (e == HPE_OK)
            break;
        if (e != HPE_PAUSED) {
            respond(c, 400, "", "bad request\n", 12, true);
            return;
        }
        handle(c);
        if (!c->busy)
            llhttp_resume(&c->p);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    b->base = malloc(65536);
    b->len = 65536;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    tconn_t *c = s->data;

    if (nread < 0) {
        conn_close(c);
    } else if (nread > 0) {
        c->in = realloc(c->in, c->inlen + (size_t)nread);
        memcpy(c->in + c->inlen, b->base, (size_t)nread);
        c->inlen += (size_t)nread;
        parse_more(c);
    }
    free(b->base);
}

static void on_conn(uv_stream_t *server, int status)
{
    tconn_t *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof *c);
    if (server->type == UV_TCP) {
        uv_tcp_init(loop, &c->tcp);
        c->s = (uv_stream_t *)&c->tcp;
    } else {
        uv_pipe_init(loop, &c->pipe_unused, 0);
        c->s = (uv_stream_t *)&c->pipe_unused;
    }
    c->s->data = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    c->id = ++nconns;
    llhttp_init(&c->p, HTTP_REQUEST, &settings);
    c->p.data = c;
    if (uv_accept(server, c->s) < 0) {
        conn_close(c);
        return;
    }
    if (server->type == UV_TCP)
        uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start(c->s, on_alloc, on_read);
}

static void on_signal(uv_signal_t *s, int sig)
{
    (void)sig;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *unixp = NULL;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_signal_t sig;
    struct sockaddr_storage ss;
    uv_stream_t *srv;
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen = argv[i + 1];
        else if (strcmp(argv[i], "--unix") == 0)
            unixp = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0)
            name = argv[i + 1];
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_field;
    settings.on_header_value = on_value;
    settings.on_headers_complete = on_headers;
    settings.on_body = on_body;
    settings.on_message_complete = on_done;
    if (unixp) {
        uv_pipe_init(loop, &pipe, 0);
        unlink(unixp);
        if (uv_pipe_bind(&pipe, unixp) < 0) {
            fprintf(stderr, "cannot bind %s\n", unixp);
            return 1;
        }
        srv = (uv_stream_t *)&pipe;
    } else {
        char host[64];
        const char *colon;

        if (listen == NULL || (colon = strrchr(listen, ':')) == NULL) {
            fprintf(stderr, "usage: pg_test_upstream --listen HOST:PORT | --unix PATH\n");
            return 2;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
        if (host[0] == '[') { /* "[v6]:port" */
            memmove(host, host + 1, strlen(host));
            host[strcspn(host, "]")] = '\0';
            uv_ip6_addr(host, atoi(colon + 1), (struct sockaddr_in6 *)&ss);
        } else {
            uv_ip4_addr(host, atoi(colon + 1), (struct sockaddr_in *)&ss);
        }
        uv_tcp_init(loop, &tcp);
        if (uv_tcp_bind(&tcp, (struct sockaddr *)&ss, 0) < 0) {
            fprintf(stderr, "cannot bind %s\n", listen);
            return 1;
        }
        srv = (uv_stream_t *)&tcp;
    }
    if (uv_listen(srv, 128, on_conn) < 0) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    uv_signal_init(loop, &sig);
    uv_signal_start(&sig, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
