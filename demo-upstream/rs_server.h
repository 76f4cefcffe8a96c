/* rs_server: randomstring's HTTP/1.1 server: one TCP listener on a libuv loop, llhttp on each
 * connection, keep-alive, and pipelined requests answered strictly in order (a request whose
 * endpoint blocks runs on libuv's threadpool while the connection's parser stays paused).
 * Owns: the caller provides the rs_server_t; the server owns its connections and frees each
 *   one when its handle has closed and no job of it is running.
 * Threads: the loop's thread only. Errors: negative errno (UV_E* values). */
#ifndef RS_SERVER_H
#define RS_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct rs_conn rs_conn_t;

typedef struct rs_server {
    /* private */
    uv_loop_t *loop;
    uv_tcp_t listener;
    rs_conn_t *conns; /* open connections, for rs_server_close() */
    bool closing;
} rs_server_t;

/* Binds addr and listens. On failure nothing is left open (run the loop once to let the
 * listener's close complete) and the error names the cause (e.g. UV_EADDRINUSE). */
int rs_server_init(rs_server_t *srv, uv_loop_t *loop, const struct sockaddr *addr);

/* Stops accepting and closes every connection; jobs already running finish first (they are
 * bounded), their answers are dropped. srv may be reused or freed once uv_run() returns. */
void rs_server_close(rs_server_t *srv);

#endif
