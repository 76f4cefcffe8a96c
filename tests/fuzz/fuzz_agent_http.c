/* fuzz_agent_http: libFuzzer target for the agent's HTTP server (pa_server.c): llhttp with the
 * server's callbacks, its limits (URL, header bytes, body), request-target splitting and
 * percent-decoding, pipelining (one request at a time, the rest pending) and its answers to
 * malformed input, through pa__server_feed on one end of a socketpair. The input is fed as
 * two reads split where the first byte says. Each dispatched request is checked: a method is
 * set, the path starts with '/', the query is a NUL-terminated string, the body is within
 * PA_SERVER_MAX_BODY; the handler answers with the path and query (as the pprof handlers
 * would echo a name), and everything the server sent back must start with "HTTP/1.1 ".
 * Not covered: poll(), accept and SO_PEERCRED, deferred requests, idle deadlines. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pa_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t dispatched;

static void on_request(void *arg, pa_req_t *req)
{
    const char *m = pa_req_method(req), *path = pa_req_path(req), *q = pa_req_query(req);
    size_t blen, plen = strlen(path), qlen = strlen(q);
    const char *body = pa_req_body(req, &blen);
    char out[256];
    int n;

    (void)arg;
    dispatched++;
    if (m == NULL || m[0] == '\0' || path[0] != '/' || blen > PA_SERVER_MAX_BODY)
        abort();
    if (plen > PA_SERVER_MAX_URL || qlen > PA_SERVER_MAX_URL)
        abort();
    if (blen > 0 && body == NULL)
        abort();
    n = snprintf(out, sizeof out, "%s %.100s ?%.100s %zu\n", m, path, q, blen);
    if (pa_req_respond(req, 200, NULL, 0, out, (size_t)n) < 0 && errno != ENOMEM)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char sink[1 << 16];
    int sv[2];
    size_t split, got = 0;
    ssize_t r;

    if (size < 1)
        return 0;
    split = data[0] * (size_t)64;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    /* the server writes without blocking; a full socket leaves it waiting (C_WRITING) */
    (void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
    dispatched = 0;
    pa__server_feed(sv[0], (const char *)data + 1, size - 1, split, on_request, NULL);
    while ((r = read(sv[1], sink + (got < sizeof sink ? got : 0),
                     got < sizeof sink ? sizeof sink - got : sizeof sink)) > 0)
        got += (size_t)r;
    if (got > 0 && (got < 9 || memcmp(sink, "HTTP/1.1 ", 9) != 0))
        abort();
    if (dispatched > 0 && got == 0)
        abort(); /* every dispatched request was answered */
    close(sv[1]);
    return 0;
}
