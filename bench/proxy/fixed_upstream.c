/* fixed_upstream: the benchmark's "fixed small response" upstream. One libuv loop, HTTP/1.1
 * keep-alive, pipelining; every request gets the same 13-byte 200 response, so that a proxy
 * in front of it spends its time on its own work rather than waiting on the upstream.
 *   fixed_upstream --listen 127.0.0.1:PORT
 * A request ends at its blank line ("\r\n\r\n"): this server is for GET requests without a
 * body (what wrk, nginx, HAProxy and profgate send in bench/proxy/run.sh); a request body
 * would be read as the next request. "Connection: close" is not looked at: the client
 * closes. SIGINT/SIGTERM end it (exit 0) after one line on stderr: connections accepted and
 * requests answered (how well the proxies in front reused their upstream connections). Not a test program: bench/proxy/run.sh builds it
 * with cc against libuv. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define FU_WQ_HIGH (1024 * 1024) /* stop reading while this much is unsent */
#define FU_MAX_IOV 256           /* responses per uv_write; more go in further writes */

static const char fu_response[] = "HTTP/1.1 200 OK\r\n"
                                  "Server: fixed_upstream\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 13\r\n"
                                  "\r\n"
                                  "Hello, world\n";

typedef struct fu_conn {
    uv_tcp_t tcp;
    int match;    /* how much of "\r\n\r\n" the bytes read so far end with */
    bool reading;
    char rbuf[16384];
} fu_conn_t;

static uv_loop_t *loop;
static unsigned long long nconns, nrequests; /* printed at exit: was keep-alive used? */

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    fu_conn_t *c = h->data;
    (void)hint;
    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

/* Requests whose head ends in p[0..n), carrying c->match across reads. */
static size_t count_heads(fu_conn_t *c, const char *p, size_t n)
{
    static const char end[] = "\r\n\r\n";
    size_t i, heads = 0;
    int m = c->match;

    for (i = 0; i < n; i++) {
        if (p[i] == end[m]) {
            if (++m == 4) {
                heads++;
                m = 0;
            }
        } else {
            m = p[i] == '\r' ? 1 : 0;
        }
    }
    c->match = m;
    return heads;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    fu_conn_t *c = req->data;
    free(req);
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (!c->reading && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < FU_WQ_HIGH) {
        c->reading = true;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void respond(fu_conn_t *c, size_t n)
{
    uv_buf_t iov[FU_MAX_IOV];
    size_t i, k;

    for (i = 0; i < FU_MAX_IOV; i++)
        iov[i] = uv_buf_init((char *)fu_response, sizeof(fu_response) - 1);
    while (n > 0) {
        uv_write_t *w = malloc(sizeof *w);
        k = n < FU_MAX_IOV ? n : FU_MAX_IOV;
        if (w == NULL) {
            uv_close((uv_handle_t *)&c->tcp, on_close);
            return;
        }
        w->data = c;
        /* the response is static, so the write needs no buffer of its own */
        if (uv_write(w, (uv_stream_t *)&c->tcp, iov, (unsigned)k, on_write) < 0) {
            free(w);
            uv_close((uv_handle_t *)&c->tcp, on_close);
            return;
        }
        n -= k;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= FU_WQ_HIGH) {
        c->reading = false;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    fu_conn_t *c = s->data;

    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (nread > 0) {
        size_t n = count_heads(c, buf->base, (size_t)nread);
        nrequests += n;
        respond(c, n);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    fu_conn_t *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    uv_tcp_t server;
    uv_signal_t sint, sterm;
    const char *listen = NULL, *colon;
    char host[64];
    int r;

    if (argc == 3 && strcmp(argv[1], "--listen") == 0)
        listen = argv[2];
    colon = listen ? strrchr(listen, ':') : NULL;
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host)) {
        fprintf(stderr, "usage: fixed_upstream --listen IPV4:PORT\n");
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) < 0) {
        fprintf(stderr, "fixed_upstream: bad address %s\n", listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    r = uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (r < 0) {
        fprintf(stderr, "fixed_upstream: cannot listen on %s: %s\n", listen, uv_strerror(r));
        return 1;
    }
    uv_signal_init(loop, &sint);
    uv_signal_init(loop, &sterm);
    uv_signal_start(&sint, on_signal, SIGINT);
    uv_signal_start(&sterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    fprintf(stderr, "fixed_upstream: %llu connections accepted, %llu requests answered\n", nconns,
            nrequests);
    return 0;
}
